"""d3rlpy's side of benchmarks/ope.py (runs in benchmarks/.venv-d3rlpy): trains one algorithm on the
.npz of a dataset with its reproduction settings (the quality worker's `build`), and every `--every`
updates saves the greedy policy as TorchScript and fits d3rlpy's own FQE (FQEConfig defaults) on
the same data for that snapshot, reporting FQE's initial-state value estimate. One JSON line out."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _d3rlpy_quality_worker import build, prepare


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--algo", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--every", type=int, required=True)
    p.add_argument("--fqe_steps", type=int, required=True)
    p.add_argument("--out_dir", required=True, help="snapshot policies go here as step_N.pt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--medium", action="store_true")
    args = p.parse_args()
    data = prepare(args)
    import d3rlpy
    dataset = d3rlpy.dataset.MDPDataset(
        observations=data["observations"], actions=data["actions"], rewards=data["rewards"],
        terminals=data["terminals"], timeouts=data["timeouts"], action_space=d3rlpy.ActionSpace.CONTINUOUS)
    algo = build(args.algo, args.steps, args.medium).create(device="cpu:0")
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    quiet = dict(show_progress=False, save_interval=10**9, logger_adapter=d3rlpy.logging.NoopAdapterFactory())
    snapshots = []
    for step in range(args.every, args.steps + 1, args.every):
        algo.fit(dataset, n_steps=args.every, n_steps_per_epoch=args.every, **quiet)  # continues training
        policy = out / f"step_{step}.pt"
        algo.save_policy(str(policy))
        t0 = time.perf_counter()
        fqe = d3rlpy.ope.FQE(algo=algo, config=d3rlpy.ope.FQEConfig())
        history = fqe.fit(dataset, n_steps=args.fqe_steps, n_steps_per_epoch=args.fqe_steps,
                          evaluators={"init_value": d3rlpy.metrics.InitialStateValueEstimationEvaluator()}, **quiet)
        snapshots.append({"snapshot": policy.stem, "policy": str(policy), "fqe_estimate": float(history[-1][1]["init_value"]),
                          "fqe_seconds": round(time.perf_counter() - t0, 1)})
    print("RESULT " + json.dumps({"snapshots": snapshots}), flush=True)


if __name__ == "__main__":
    main()
