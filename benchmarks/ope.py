"""Does FQE rank checkpoints as the environment does? Spearman's rho between seqrl's FQE estimates
(`seqrl ope`) and the true returns, over the evaluation snapshots of several training runs.

Each seqrl run trains with its v5-short YAML (the quality table's settings) and `--snapshot_evals`,
so every evaluation leaves a loadable policy and its true return (10 deterministic episodes on reset
seeds 10,000 + k). FQE then estimates every snapshot's value from the same dataset it learned from
(d3rlpy's FQE defaults, `--fqe-steps` updates).

d3rlpy's FQE takes only d3rlpy's own algorithms, so the peer side runs on d3rlpy's policies: d3rlpy
2.8.1 trains the same algorithms (its reproduction settings, benchmarks/_d3rlpy_ope_worker.py in
benchmarks/.venv-d3rlpy) with a snapshot every `--every` updates, fits its FQE on each, and exports
each snapshot as TorchScript; seqrl evaluates those in its own environment build (the true
returns) and fits seqrl's FQE on the same snapshots, so both estimators rank the same policies.
Writes benchmarks/results/ope.json and markdown rows.

    python benchmarks/ope.py                                                # hopper medium, IQL + BC runs
    python benchmarks/ope.py --dataset seqrl/invertedpendulum/mixed-v0 --algos iql,bc --steps 2000 --every 500
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1, ties given their average rank (Spearman's convention)."""
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(len(x))
    _, group, counts = np.unique(x, return_inverse=True, return_counts=True)
    return (np.bincount(group, weights=r) / counts)[group]  # one pass, not one scan per distinct value


def spearman(a, b) -> float:
    ra, rb = ranks(np.asarray(a, float)), ranks(np.asarray(b, float))
    return float(np.corrcoef(ra, rb)[0, 1])


def scripted_policy(path: Path, obs_dim: int, act_dim: int, low, high):
    """A d3rlpy TorchScript policy (raw observations -> env actions) as a seqrl policy for FQE."""
    import torch

    from seqrl.algos.base import OfflineAlgorithm, OfflineConfig

    class Scripted(OfflineAlgorithm):
        def __init__(self):
            super().__init__(OfflineConfig(), obs_dim, act_dim, action_low=low, action_high=high)
            self.module = torch.jit.load(str(path))

        def _act(self, obs, deterministic):  # obs_mean 0 / std 1: raw observations; back to [-1, 1]
            a = self.module(obs)
            return 2.0 * (a - self.action_low) / (self.action_high - self.action_low) - 1.0

    return Scripted().eval()


def d3rlpy_side(args, episodes, work: Path, evaluate_offline, FQEConfig) -> list[dict]:
    from quality import export_npz, run as run_cell
    from value_based import ensure_d3rlpy_venv

    from seqrl.evaluation import evaluate, evaluation_env

    python = ensure_d3rlpy_venv()
    npz = work / f"{args.dataset.replace('/', '_')}.npz"
    meta = export_npz(args.dataset, npz)
    rows = []
    for algo in args.algos.split(","):
        snaps = work / f"d3rlpy_{algo}_{args.dataset.replace('/', '_')}"
        cmd = [str(python), str(HERE / "_d3rlpy_ope_worker.py"), "--algo", algo, "--data", str(npz),
               "--steps", str(args.steps), "--every", str(args.every), "--fqe_steps", str(args.fqe_steps),
               "--out_dir", str(snaps), "--threads", str(args.threads)]
        cmd += ["--medium"] if args.dataset.endswith("/medium-v0") else []
        done = snaps / "snapshots.json"  # d3rlpy's training and FQE, kept: a rerun fits only seqrl's FQE again
        if not (done.exists() and json.loads(done.read_text())["cmd"] == cmd):
            done.parent.mkdir(parents=True, exist_ok=True)
            done.write_text(json.dumps({"cmd": cmd, **run_cell(cmd, args.threads)}))
        for snap in json.loads(done.read_text())["snapshots"]:
            a = episodes.arrays()["action"]
            low = meta.get("action_low") or a.min(0).tolist()
            high = meta.get("action_high") or a.max(0).tolist()
            policy = scripted_policy(Path(snap["policy"]), episodes.observation_dim, episodes.action_dim, low, high)
            ev = evaluate(lambda obs: policy.act(obs), n_episodes=args.episodes, **evaluation_env(meta), seed=10_000,
                          progress=False, ref_min_score=meta.get("ref_min_score"), ref_max_score=meta.get("ref_max_score"))
            est = evaluate_offline(policy, episodes, FQEConfig(max_steps=args.fqe_steps),
                                   work / "fqe" / f"{snaps.name}_{snap['snapshot']}", progress=False)
            rows.append({"lib": "d3rlpy", "run": algo, "snapshot": snap["snapshot"], "return_mean": ev.mean,
                         "normalized_score": ev.normalized_mean, "fqe_estimate": est["estimate"],
                         "d3rlpy_fqe_estimate": snap["fqe_estimate"], "data_value": est["data_value"]})
            print(f"d3rlpy {algo} {snap['snapshot']}: return {ev.mean:.1f}, seqrl FQE {est['estimate']:.2f}, "
                  f"d3rlpy FQE {snap['fqe_estimate']:.2f}", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="seqrl/hopper/medium-v0")
    p.add_argument("--algos", default="iql,bc", help="one training run each; their snapshots are ranked together")
    p.add_argument("--steps", type=int, default=10_000, help="updates per training run")
    p.add_argument("--every", type=int, default=2_000, help="updates between snapshots")
    p.add_argument("--episodes", type=int, default=10, help="true-return episodes per snapshot")
    p.add_argument("--fqe-steps", type=int, default=10_000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--libs", default="seqrl,d3rlpy", help="whose policies are ranked: seqrl's runs, d3rlpy's, or both")
    p.add_argument("--work", default=str(HERE / "results" / "ope_work"))
    p.add_argument("--out", default=str(HERE / "results" / "ope.json"))
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from seqrl.algos.fqe import FQEConfig
    from seqrl.hub import from_pretrained
    from seqrl.training.datasets import load_episodes
    from seqrl.training.ope import evaluate_offline
    from seqrl.training.run import main as train, starting_yaml

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    episodes = load_episodes(args.dataset)
    rows = []
    for algo in (args.algos.split(",") if "seqrl" in args.libs else []):
        run = work / f"{algo}_{args.dataset.replace('/', '_')}"
        # the YAML `seqrl train ALGO --dataset` starts from (v5-short.yaml on the v5 families)
        argv = ["--config", starting_yaml(algo, False, args.dataset), "--dataset", args.dataset, "--max_steps", str(args.steps),
                "--eval_every", str(args.every), "--eval_episodes", str(args.episodes), "--snapshot_evals", "--save_every", "0",
                "--output_dir", str(run), "--no-resume", "--threads", str(args.threads)]
        if not (run / "model").exists():
            train(algo, argv)
        for snap in sorted((run / "snapshots").iterdir(), key=lambda d: int(d.name.split("_")[1])):
            policy = from_pretrained(str(snap))
            t0 = time.perf_counter()
            est = evaluate_offline(policy, episodes, FQEConfig(max_steps=args.fqe_steps), work / "fqe" / f"{run.name}_{snap.name}",
                                   progress=False)
            ev = policy.metadata["evaluation"]
            rows.append({"lib": "seqrl", "run": algo, "snapshot": snap.name, "return_mean": ev["return_mean"],
                         "normalized_score": ev.get("normalized_score"), "fqe_estimate": est["estimate"],
                         "fqe_normalized": est.get("normalized_estimate"), "data_value": est["data_value"],
                         "fqe_seconds": round(time.perf_counter() - t0, 1)})
            print(f"{algo} {snap.name}: return {ev['return_mean']:.1f}, FQE {est['estimate']:.2f}", flush=True)
    if "d3rlpy" in args.libs:
        rows += d3rlpy_side(args, episodes, work, evaluate_offline, FQEConfig)
    table = []
    for lib in ("seqrl", "d3rlpy"):
        mine = [r for r in rows if r["lib"] == lib]
        if len(mine) < 2:
            continue
        returns = [r["return_mean"] for r in mine]
        entry = {"policies": f"{lib}'s {args.algos} snapshots", "n": len(mine),
                 "seqrl_fqe_rho": spearman(returns, [r["fqe_estimate"] for r in mine])}
        if lib == "d3rlpy":
            entry["d3rlpy_fqe_rho"] = spearman(returns, [r["d3rlpy_fqe_estimate"] for r in mine])
        table.append(entry)
    result = {"dataset": args.dataset, "algos": args.algos, "steps": args.steps, "every": args.every,
              "fqe_steps": args.fqe_steps, "threads": args.threads, "table": table, "rows": rows}
    Path(args.out).write_text(json.dumps(result, indent=1))
    print("| dataset | policies ranked | seqrl FQE: Spearman rho | d3rlpy FQE: Spearman rho |")
    print("|---|---|---|---|")
    for e in table:
        peer = f"{e['d3rlpy_fqe_rho']:.2f}" if "d3rlpy_fqe_rho" in e else "n/a (reads d3rlpy algorithms only)"
        print(f"| {args.dataset} | {e['n']} {e['policies']} (FQE {args.fqe_steps:,} updates) | "
              f"**{e['seqrl_fqe_rho']:.2f}** | {peer} |")


if __name__ == "__main__":
    main()
