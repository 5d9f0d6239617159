"""d3rlpy 1.1.1's side of benchmarks/quality.py for MOPO and COMBO (runs in benchmarks/.venv-d3rlpy1:
the last d3rlpy with either). Three jobs, one JSON line out each:

  --algo dynamics   fit d3rlpy's ProbabilisticEnsembleDynamics on the dataset (an .npz written by
                    quality.py from the Minari dataset seqrl reads) and save its weights;
  --algo mopo|combo load that fit, train the policy for --steps updates with the settings of
                    d3rlpy's reproductions/offline/{mopo,combo}.py (per-dataset (h, lambda) for MOPO,
                    conservative weight and rates for COMBO), save the greedy policy as TorchScript.

quality.py evaluates the saved policy in seqrl's environment (d3rlpy 1.1.1 speaks the old gym API),
with the reset seeds of every other cell. The budgets are quality.py's, not the reproductions' (100k
dynamics steps, 500k policy updates): see benchmarks/README.md."""

from __future__ import annotations

import argparse
import json
import time

from _d3rlpy_quality_worker import prepare

# d3rlpy reproductions/offline/mopo.py: D4RL v0 name -> (rollout horizon, lambda); others (5, 1)
MOPO_TABLE = {
    "halfcheetah-random": (5, 0.5), "hopper-random": (5, 1), "walker2d-random": (1, 1),
    "halfcheetah-medium": (1, 1), "hopper-medium": (5, 5), "walker2d-medium": (5, 5),
    "halfcheetah-medium-replay": (5, 1), "hopper-medium-replay": (5, 1), "walker2d-medium-replay": (1, 1),
    "halfcheetah-medium-expert": (5, 1), "hopper-medium-expert": (5, 1), "walker2d-medium-expert": (1, 2),
}


def combo_settings(task: str) -> dict:
    """d3rlpy reproductions/offline/combo.py's per-dataset choices, as keyword arguments."""
    if "halfcheetah" in task:
        weight = 0.5
    elif "medium-expert" in task:
        weight = 5.0
    elif "random" in task or "medium-replay" in task:
        weight = 1.0 if "hopper" in task else 0.5
    elif "medium" in task:
        weight = 5.0
    else:
        weight = 1.0
    actor_lr, critic_lr = (1e-5, 1e-4) if "walker2d" in task else (1e-4, 3e-4)
    return {"conservative_weight": weight, "actor_learning_rate": actor_lr, "critic_learning_rate": critic_lr,
            "temp_learning_rate": actor_lr}


def make_dynamics():
    import d3rlpy

    # reproductions: 5 members of 4x200 Swish, Adam lr 1e-3 with weight decay 2.5e-5, batch 100
    return d3rlpy.dynamics.ProbabilisticEnsembleDynamics(
        encoder_factory=d3rlpy.models.encoders.VectorEncoderFactory(hidden_units=[200] * 4, activation="swish"),
        optim_factory=d3rlpy.models.optimizers.AdamFactory(weight_decay=2.5e-5), learning_rate=1e-3,
        n_ensembles=5)


def make_policy(algo: str, task: str, dynamics):
    import d3rlpy

    if algo == "mopo":
        horizon, lam = MOPO_TABLE.get(task, (5, 1))
        return d3rlpy.algos.MOPO(dynamics=dynamics, rollout_horizon=horizon, lam=lam)
    if algo == "combo":
        enc = d3rlpy.models.encoders.VectorEncoderFactory([256, 256, 256])
        return d3rlpy.algos.COMBO(dynamics=dynamics, actor_encoder_factory=enc, critic_encoder_factory=enc,
                                  **combo_settings(task))
    raise SystemExit(f"unknown algorithm {algo}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algo", required=True, choices=["dynamics", "mopo", "combo"])
    p.add_argument("--data", required=True, help=".npz written by quality.py")
    p.add_argument("--task", required=True, help="D4RL-style name for the per-dataset settings, e.g. hopper-medium")
    p.add_argument("--steps", type=int, required=True, help="gradient steps (dynamics or policy)")
    p.add_argument("--dynamics", required=True, help="the dynamics weights: written by --algo dynamics, read otherwise")
    p.add_argument("--policy_out", default="", help="TorchScript greedy policy (mopo/combo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    data = prepare(args)
    import d3rlpy
    import numpy as np

    dataset = d3rlpy.dataset.MDPDataset(
        observations=data["observations"], actions=data["actions"], rewards=data["rewards"],
        terminals=data["terminals"], episode_terminals=np.maximum(data["terminals"], data["timeouts"]))
    quiet = dict(save_metrics=False, verbose=False, show_progress=False, save_interval=10**9)
    dynamics = make_dynamics()
    start = time.perf_counter()
    if args.algo == "dynamics":
        dynamics.fit(dataset.episodes, n_steps=args.steps, n_steps_per_epoch=args.steps, **quiet)
        dynamics.save_model(args.dynamics)
    else:
        dynamics.build_with_dataset(dataset)
        dynamics.load_model(args.dynamics)
        algo = make_policy(args.algo, args.task, dynamics)
        algo.fit(dataset.episodes, n_steps=args.steps, n_steps_per_epoch=args.steps, **quiet)
        algo.save_policy(args.policy_out)
    print("RESULT " + json.dumps({"train_seconds": time.perf_counter() - start}), flush=True)


if __name__ == "__main__":
    main()
