"""seqrl's side of benchmarks/model_based.py: the same timings as _d3rlpy1_model_based_worker.py on
the same synthetic Hopper-shaped data (its `make_dataset`, same seed), in seqrl's code paths:

    a. ensemble training: `DynamicsTrainer.update` on bootstrap batches (7 x 256 rows, 4 x 200 Swish)
    b. rollouts: `seqrl.algos.model_based.rollout`, 50,000 starts x h 5, the SAC actor's samples, no
       termination (as d3rlpy 1.1.1, which has none; the Hopper rule is timed as well); MOPO's (every
       member runs, for the penalty) and COMBO's (no penalty: only each row's sampled elite runs)
    c. MOPO / COMBO updates on mixed batches from `ModelRollouts.next_batch` (sampling included)

Prints one JSON line; FLOP per operation from torch's FLOP counter.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

HERE = Path(__file__).resolve().parent


def peer_dataset(n: int, seed: int):
    spec = importlib.util.spec_from_file_location("peer_worker", HERE / "_d3rlpy1_model_based_worker.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_dataset(n, seed)


def flops(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def timed(fn, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--transitions", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--combo-steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--rollout-starts", type=int, default=50_000)
    ap.add_argument("--horizon", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from seqrl.algos import COMBO, MOPO, COMBOConfig, MOPOConfig
    from seqrl.algos.dynamics import DynamicsTrainer
    from seqrl.algos.model_based import ModelRollouts, rollout
    from seqrl.data import BufferConfig, EpisodeDataset, TransitionBuffer
    from seqrl.data.termination import termination_function
    from seqrl.models.dynamics import DynamicsConfig, DynamicsEnsemble

    obs, actions, rewards, terminals, ends, _ = peer_dataset(args.transitions, args.seed)
    nxt = obs.copy()
    nxt[:-1] = obs[1:]
    episodes = EpisodeDataset.from_d4rl({"observations": obs, "actions": actions, "rewards": rewards,
                                         "terminals": terminals.astype(bool), "next_observations": nxt,
                                         "timeouts": (ends.astype(bool) & ~terminals.astype(bool))},
                                        metadata={"env_id": "Hopper-v5"})
    buffer = TransitionBuffer(episodes, BufferConfig(normalize_observations=True), seed=args.seed)
    torch.manual_seed(args.seed)
    out = {"impl": "seqrl", "torch": torch.__version__, "threads": torch.get_num_threads(), "transitions": len(buffer)}

    # a. ensemble training step
    config = DynamicsConfig(batch_size=256)
    model = DynamicsEnsemble(config, obs.shape[1], actions.shape[1])
    trainer = DynamicsTrainer(model, buffer.raw_transitions(), config)
    g = torch.Generator().manual_seed(1)
    batch_idx = lambda: torch.randint(len(trainer.train_targets), (7, 256), generator=g)  # noqa: E731
    step = timed(lambda: trainer.update(batch_idx()), args.warmup, args.steps)
    f = flops(lambda: trainer.update(batch_idx()))
    out["dynamics_train"] = {"updates_per_s": 1 / step, "ms_per_update": 1e3 * step, "gflop_per_update": f / 1e9,
                             "gflop_per_s": f / step / 1e9, "parameters": model.num_parameters(),
                             "ensemble": config.ensemble_size, "hidden": list(config.hidden_dims)}
    model.eval()

    # b. rollouts with the MOPO SAC actor (untrained, like the peer's)
    mopo = MOPO(MOPOConfig(rollout_batch_size=args.rollout_starts, rollout_length=args.horizon, real_ratio=0.05,
                           batch_size=256), obs.shape[1], actions.shape[1],
                obs_mean=buffer.obs_mean, obs_std=buffer.obs_std)
    mean, std = torch.as_tensor(buffer.obs_mean), torch.as_tensor(buffer.obs_std)
    never = lambda s: torch.zeros(s.shape[:-1], dtype=torch.bool)  # noqa: E731
    starts = buffer.observations[torch.randint(len(buffer), (args.rollout_starts,), generator=g)]
    go = lambda fn, coef=1.0, n=None: rollout(model, mopo.actor, starts[:n], args.horizon, fn, mean, std,  # noqa: E731
                                              "aleatoric", coef, 1.0, g)

    def timed_rollout(terminated, coef: float) -> dict:
        t0 = time.perf_counter()
        n = len(go(terminated, coef)[0]["rewards"])
        seconds = time.perf_counter() - t0
        return {"transitions_generated": n, "seconds": seconds, "transitions_per_s": n / seconds}

    def with_flops(res: dict, coef: float) -> dict:
        f = flops(lambda: go(never, coef))
        return res | {"gflop": f / 1e9, "gflop_per_s": f / res["seconds"] / 1e9}

    go(never, 1.0, 1000)  # warm-up
    out["rollout"] = {"starts": args.rollout_starts, "horizon": args.horizon} | with_flops(timed_rollout(never, 1.0), 1.0)
    hopper = timed_rollout(termination_function("Hopper-v5"), 1.0)
    out["rollout"]["with_hopper_termination"] = {k: hopper[k] for k in ("transitions_generated", "seconds")}
    # COMBO's rollouts (no penalty): only each row's sampled elite runs (DynamicsEnsemble.step(every_member=False))
    go(never, 0.0, 1000)  # warm-up of that path
    out["rollout_unpenalised"] = with_flops(timed_rollout(never, 0.0), 0.0)

    # c. policy updates on mixed batches
    def updates(algo, real_ratio: float, steps: int) -> dict:
        algo.config.real_ratio = real_ratio
        source = ModelRollouts(buffer, model, algo, never, algo.config, 256, args.seed)
        source.refill()
        source.batches = 1  # the next rollout is rollout_freq batches away: time the updates alone
        step = timed(lambda: algo.update(source.next_batch()), args.warmup, steps)
        f = flops(lambda: algo.update(source.next_batch()))
        return {"updates_per_s": 1 / step, "ms_per_update": 1e3 * step, "gflop_per_update": f / 1e9,
                "gflop_per_s": f / step / 1e9, "real_per_batch": source.n_real, "hidden": list(algo.config.hidden_dims)}

    mopo.config.rollout_batch_size = 50_000
    out["mopo_update"] = updates(mopo, 0.05, args.steps)
    # "model": push down at the model rows only, d3rlpy 1.1.1's work; "mix" (seqrl's default): every row
    for states, key in (("model", "combo_update"), ("mix", "combo_mix_update")):
        combo = COMBO(COMBOConfig(hidden_dims=(256, 256), rollout_batch_size=50_000, rollout_length=args.horizon,
                                  batch_size=256, combo_states=states), obs.shape[1], actions.shape[1],
                      obs_mean=buffer.obs_mean, obs_std=buffer.obs_std)
        if args.combo_steps:
            out[key] = updates(combo, 0.5, args.combo_steps)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
