"""d3rlpy's side of benchmarks/quality.py (runs in benchmarks/.venv-d3rlpy): trains one algorithm
on one dataset (an .npz written by quality.py from the same Minari dataset seqrl reads) with its
reproduction settings (reproductions/offline/*.py), saves the greedy policy as TorchScript
(`save_policy`) for quality.py to evaluate in seqrl's environment, and also evaluates it here on the
same reset seeds (d3rlpy pins gymnasium 1.0 / mujoco 3.2.7: another simulator build). One JSON line out."""

from __future__ import annotations

import argparse
import json
import time
import warnings


def build(algo: str, steps: int, medium: bool):
    import d3rlpy
    from d3rlpy.models.encoders import VectorEncoderFactory
    from d3rlpy.optimizers import AdamFactory, CosineAnnealingLRFactory

    if algo == "bc":
        return d3rlpy.algos.BCConfig()  # no reproduction script: the class defaults (deterministic, lr 1e-3, batch 100)
    if algo == "iql":  # reproductions/offline/iql.py
        return d3rlpy.algos.IQLConfig(
            actor_learning_rate=3e-4, critic_learning_rate=3e-4, batch_size=256, weight_temp=3.0,
            max_weight=100.0, expectile=0.7,
            actor_optim_factory=AdamFactory(lr_scheduler_factory=CosineAnnealingLRFactory(T_max=500_000)),
            reward_scaler=d3rlpy.preprocessing.ReturnBasedRewardScaler(multiplier=1000.0))
    if algo == "cql":  # reproductions/offline/cql.py
        enc = VectorEncoderFactory([256, 256, 256])
        return d3rlpy.algos.CQLConfig(
            actor_learning_rate=1e-4, critic_learning_rate=3e-4, temp_learning_rate=1e-4,
            actor_encoder_factory=enc, critic_encoder_factory=enc, batch_size=256, n_action_samples=10,
            alpha_learning_rate=0.0, conservative_weight=10.0 if medium else 5.0)
    if algo == "awac":  # reproductions/offline/awac.py
        enc = VectorEncoderFactory([256, 256, 256, 256])
        return d3rlpy.algos.AWACConfig(
            actor_learning_rate=3e-4, actor_encoder_factory=enc, actor_optim_factory=AdamFactory(weight_decay=1e-4),
            critic_learning_rate=3e-4, critic_encoder_factory=enc, batch_size=1024, lam=1.0)
    raise SystemExit(f"unknown algorithm {algo}")


def prepare(args):
    """What every d3rlpy worker (any version) does first: quiet warnings, the torch thread count,
    d3rlpy's global seed; returns the arrays of the .npz that quality.py exported."""
    warnings.simplefilter("ignore")
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    import d3rlpy

    d3rlpy.seed(args.seed)
    return np.load(args.data)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--algo", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--env", required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--eval_seed", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--medium", action="store_true", help="a *-medium dataset (CQL's weight 10)")
    p.add_argument("--policy_out", default="", help="also save the greedy policy as TorchScript here")
    args = p.parse_args()
    data = prepare(args)
    import d3rlpy
    import gymnasium as gym
    import numpy as np
    dataset = d3rlpy.dataset.MDPDataset(
        observations=data["observations"], actions=data["actions"], rewards=data["rewards"],
        terminals=data["terminals"], timeouts=data["timeouts"], action_space=d3rlpy.ActionSpace.CONTINUOUS)
    algo = build(args.algo, args.steps, args.medium).create(device="cpu:0")
    start = time.perf_counter()
    algo.fit(dataset, n_steps=args.steps, n_steps_per_epoch=args.steps, show_progress=False, save_interval=10**9,
             logger_adapter=d3rlpy.logging.NoopAdapterFactory())
    train_s = time.perf_counter() - start
    if args.policy_out:  # evaluated by quality.py in seqrl's environment (its gymnasium/mujoco versions)
        algo.save_policy(args.policy_out)
    env = gym.make(args.env, max_episode_steps=1000)
    returns = []
    for k in range(args.episodes):  # seqrl's evaluation resets episode k with eval_seed + k
        obs, _ = env.reset(seed=args.eval_seed + k)
        total, done = 0.0, False
        while not done:
            obs, r, term, trunc, _ = env.step(algo.predict(np.asarray(obs, np.float32)[None])[0])
            total += float(r)
            done = term or trunc
        returns.append(total)
    print("RESULT " + json.dumps({"returns": returns, "train_seconds": train_s,
                                  "seconds": time.perf_counter() - start}), flush=True)


if __name__ == "__main__":
    main()
