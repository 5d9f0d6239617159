"""Where a dynamics model is wrong: its error on the data against its error where a policy goes.

MOPO trusts the model where the penalty u(s, a) is small. This script measures whether that holds for
one trained policy: it runs the policy's deterministic actions in the real environment, then asks the
model about every real transition the policy made, and compares with the same questions on the data.

    one-step error   the elites' mean prediction of (s', r) against the real (s', r), per dimension
                     divided by the data's std of that dimension, RMS over dimensions
    h-step error     the elites' mean rolled open-loop h steps with the real actions, from every state
                     (data episodes and the policy's episodes), against the real state h steps later
    penalty          MOPO's u(s, a) (the model's `--penalty`), and its Spearman correlation with the
                     one-step error on the policy's transitions (does u rank the model's mistakes?)
    termination      of the real terminations, the share the model's mean prediction also terminates
                     (the env's rule applied to it): a model that never predicts falls lets a policy
                     learn actions that fall

    python benchmarks/model_error.py --policy RUN/model            # dynamics from the MOPO checkpoint
    python benchmarks/model_error.py --policy RUN/model --dynamics DYN/model --episodes 10 --horizon 5

Prints a small table; --out writes it as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from ope import spearman  # benchmarks/ope.py: Spearman's rho with tied ranks averaged

import seqrl
from seqrl.data.collect import rollout
from seqrl.data.sources import load_dataset
from seqrl.data.termination import termination_function
from seqrl.data.transitions import TransitionBuffer
from seqrl.training.ope import unit_actions
from seqrl.models.dynamics import uncertainty


def policy_episodes(policy, meta: dict, episodes: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """Real transitions of the policy's deterministic actions (actions in the model's [-1, 1]), one
    dict of tensors per episode."""
    out = []
    for ep in rollout(meta["env_id"], policy, n_episodes=episodes, seed=seed, env_kwargs=meta.get("env_kwargs"),
                      max_episode_steps=meta.get("max_episode_steps")):
        obs = torch.as_tensor(ep["observations"], dtype=torch.float32)
        out.append({"observations": obs[:-1], "next_observations": obs[1:],
                    "actions": unit_actions(torch.as_tensor(ep["actions"]), policy.action_low, policy.action_high),
                    "rewards": torch.as_tensor(ep["rewards"], dtype=torch.float32),
                    "terminals": torch.as_tensor(ep["terminations"], dtype=torch.float32)})
    return out


def elite_mean(model, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean over elites of the predicted (s', r), every member's mean, every member's std)."""
    mean, std = model.predict(obs, act)
    return mean[model.elites].mean(0), mean, std


def one_step(model, rows: dict[str, torch.Tensor], scale: torch.Tensor, penalty: str
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row: the scaled RMS error of the elites' mean (s', r), the penalty u(s, a), and that mean."""
    pred, mean, std = elite_mean(model, rows["observations"], rows["actions"])
    target = torch.cat([rows["next_observations"], rows["rewards"][:, None]], dim=-1)
    error = ((pred - target) / scale).pow(2).mean(-1).sqrt()
    return error, uncertainty(mean, std, penalty), pred


def h_step(model, episodes: list[dict[str, torch.Tensor]], horizon: int, scale: torch.Tensor) -> float:
    """Mean scaled RMS state error after `horizon` open-loop model steps with the real actions, over
    every start that has `horizon` real steps after it."""
    errors = []
    for ep in episodes:
        n = len(ep["actions"]) - horizon + 1
        if n <= 0:
            continue
        obs = ep["observations"][:n]
        for t in range(horizon):
            obs = elite_mean(model, obs, ep["actions"][t:t + n])[0][:, :-1]
        target = ep["next_observations"][horizon - 1:horizon - 1 + n]
        errors.append(((obs - target) / scale[:-1]).pow(2).mean(-1).sqrt())
    return float(torch.cat(errors).mean()) if errors else float("nan")


def split_episodes(transitions: dict[str, torch.Tensor], starts: np.ndarray, lengths: np.ndarray, count: int):
    return [{k: v[s:s + n] for k, v in transitions.items()} for s, n in zip(starts[:count], lengths[:count])]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", required=True, help="a seqrl policy checkpoint (a run's model/ folder)")
    p.add_argument("--dynamics", default=None,
                   help="a dynamics checkpoint (default: the dynamics/ folder the MOPO or COMBO checkpoint carries)")
    p.add_argument("--dataset", default=None, help="the data the model learned (default: the policy's dataset)")
    p.add_argument("--episodes", type=int, default=5, help="real episodes of the policy")
    p.add_argument("--horizon", type=int, default=5, help="open-loop steps of the h-step error (MOPO's h)")
    p.add_argument("--penalty", default="aleatoric", help="u(s, a): aleatoric, pairwise-diff or ensemble-std")
    p.add_argument("--seed", type=int, default=10_000, help="reset seed of the first episode (as the quality table)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    policy = seqrl.from_pretrained(args.policy)
    model = seqrl.from_pretrained(args.dynamics or args.policy, subfolder="" if args.dynamics else "dynamics")
    meta = policy.metadata
    dataset = args.dataset or meta["dataset"]["source"].removeprefix("minari:")
    data = load_dataset(dataset)
    buffer = TransitionBuffer(data)
    real = buffer.raw_transitions()
    target = torch.cat([real["next_observations"], real["rewards"][:, None]], dim=-1)
    scale = target.std(0).clamp_min(1e-6)

    pol = policy_episodes(policy, meta, args.episodes, args.seed)
    pol_all = {k: torch.cat([ep[k] for ep in pol]) for k in pol[0]}

    sample = torch.randperm(len(real["rewards"]), generator=torch.Generator().manual_seed(0))[:20_000]
    data_err, data_u, _ = one_step(model, {k: v[sample] for k, v in real.items()}, scale, args.penalty)
    pol_err, pol_u, pred = one_step(model, pol_all, scale, args.penalty)
    starts, lengths = data.episode_bounds()
    data_eps = split_episodes(real, starts, lengths, 50)

    terminated = termination_function(meta["env_id"], meta.get("env_kwargs") or {})
    falls = pol_all["terminals"] > 0
    model_falls = terminated(pred[:, :-1])
    result = {
        "policy": args.policy, "dataset": dataset, "episodes": args.episodes,
        "policy_return": float(np.mean([float(ep["rewards"].sum()) for ep in pol])),
        "policy_length": float(np.mean([len(ep["rewards"]) for ep in pol])),
        "one_step_error": {"data": float(data_err.mean()), "policy": float(pol_err.mean())},
        "penalty": {"data": float(data_u.mean()), "policy": float(pol_u.mean())},
        "penalty_error_spearman": {"data": spearman(data_u, data_err), "policy": spearman(pol_u, pol_err)},
        f"{args.horizon}_step_error": {"data": h_step(model, data_eps, args.horizon, scale),
                                       "policy": h_step(model, pol, args.horizon, scale)},
        "real_terminations": int(falls.sum()),
        "model_predicts_termination": float(model_falls[falls].float().mean()) if falls.any() else float("nan"),
        "model_false_terminations": float(model_falls[~falls].float().mean()),
        "model_reward_on_policy": float(pred[:, -1].mean()), "real_reward_on_policy": float(pol_all["rewards"].mean()),
    }
    print(f"policy: return {result['policy_return']:.0f}, length {result['policy_length']:.0f} "
          f"({args.episodes} episodes)")
    print("| where | one-step error (data std) | penalty u | spearman(u, error) "
          f"| {args.horizon}-step error |\n|---|---|---|---|---|")
    for where in ("data", "policy"):
        print(f"| {where} | {result['one_step_error'][where]:.3f} | {result['penalty'][where]:.3f} "
              f"| {result['penalty_error_spearman'][where]:.2f} | {result[f'{args.horizon}_step_error'][where]:.3f} |")
    print(f"real terminations {result['real_terminations']}: the model's mean prediction terminates on "
          f"{result['model_predicts_termination']:.0%} of them (and on {result['model_false_terminations']:.1%} "
          f"of the other steps); model reward on the policy's steps {result['model_reward_on_policy']:.2f} "
          f"vs real {result['real_reward_on_policy']:.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
