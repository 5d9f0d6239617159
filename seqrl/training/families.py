"""Turning an online SAC run into the assets of a v5 dataset family (`seqrl/data/families.py`):
the medium and expert actors (safetensors, run by `seqrl.data.behaviour.BehaviourPolicy`), the
medium-replay rows and `family.json` with the reference scores. Called by
`recipes/make_datasets.py` after `seqrl train sac --online --snapshot_evals`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
from safetensors.torch import save_file

from seqrl.data import families
from seqrl.data.behaviour import BehaviourPolicy
from seqrl.data.collect import episode_returns, rollout
from seqrl.data.controllers import UniformRandomController
from seqrl.hub import load_policy
from seqrl.training.loop import latest_checkpoint, read_training_state


def save_actor(algorithm, path: Path) -> None:
    """The actor's weights and what runs it (config, dims, bounds, normalization) in one safetensors file."""
    state = {f"actor.{k}": v.detach().cpu().contiguous() for k, v in algorithm.actor.state_dict().items()}
    state |= {k: getattr(algorithm, k).detach().cpu().contiguous() for k in ("action_low", "action_high", "obs_mean", "obs_std")}
    meta = {"config": json.dumps(algorithm.config.to_dict()), "observation_dim": str(algorithm.obs_dim),
            "action_dim": str(algorithm.act_dim)}
    save_file(state, str(path), metadata=meta)


def reference_return(env_id: str, policy) -> float:
    episodes = rollout(env_id, policy, n_episodes=families.REFERENCE_EPISODES, seed=families.REFERENCE_SEED,
                       max_episode_steps=families.MAX_EPISODE_STEPS, num_envs=families.NUM_ENVS)
    return float(np.mean(episode_returns(episodes)))


def choose_checkpoints(evaluations: list[dict]) -> tuple[dict, dict]:
    """(medium, expert) among a run's evaluations: the expert is the best return; the medium is the
    first evaluation whose return comes closest to a third of the expert's (D4RL's early-stopped
    policy), taken before the expert."""
    if not evaluations:
        raise ValueError("the run has no evaluations to choose checkpoints from")
    expert = max(evaluations, key=lambda e: e["return_mean"])
    earlier = [e for e in evaluations if e["step"] < expert["step"]] or [expert]
    target = expert["return_mean"] / 3.0
    medium = min(earlier, key=lambda e: (abs(e["return_mean"] - target), e["step"]))
    return medium, expert


def export_family(run_dir, env_id: str, command: str = "") -> dict:
    """Pick the medium and expert checkpoints of an online SAC run made with --snapshot_evals and
    write the family's assets (actors, medium-replay rows, family.json with reference scores)."""
    run_dir = Path(run_dir)
    short = next((s for s, e in families.ENVS.items() if e == env_id), None)
    if short is None:
        raise ValueError(f"no dataset family for {env_id}; families: {sorted(families.ENVS.values())}")
    # the latest checkpoint's own logs: its evaluations and replay rows belong together, also when
    # the run was stopped early (eval_history.json is written only when a run finishes)
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise ValueError(f"{run_dir} has no checkpoint: run the SAC training first")
    logs = json.loads((checkpoint / "logs.json").read_text())
    evaluations = [e for e in logs["evaluations"] if (run_dir / "snapshots" / f"step_{e['step']}").exists()]
    medium, expert = choose_checkpoints(evaluations)
    out = families.ASSETS / short
    out.mkdir(parents=True, exist_ok=True)
    algos = {}
    for name, ev in (("medium", medium), ("expert", expert)):
        algos[name] = load_policy(run_dir / "snapshots" / f"step_{ev['step']}")
        save_actor(algos[name], out / f"{name}.safetensors")
    state = read_training_state(checkpoint)
    replay = state["source"]["replay"]
    if replay["size"] == replay["capacity"] and replay["position"] != 0:
        raise ValueError("the run's replay buffer wrapped around: medium-replay needs every transition")
    n = medium["step"]
    rows = {k: replay[k][:n].numpy() for k in ("observations", "actions", "rewards", "next_observations",
                                               "terminals", "truncations")}
    if not rows["terminals"][-1]:
        rows["truncations"][-1] = 1.0  # the episode in progress at the medium checkpoint ends there
    np.savez_compressed(out / "medium_replay.npz", **families.pack_replay(rows))
    t0 = time.perf_counter()
    space = gym.make(env_id).action_space
    ref_min = reference_return(env_id, UniformRandomController(space.low, space.high))
    ref_max = reference_return(env_id, BehaviourPolicy.load(out / "expert.safetensors", deterministic=True))
    history = logs["history"]
    record = {
        "env_id": env_id, "assets_version": int(time.time()),
        "run": {"steps": history[-1]["step"] if history else None, "seed": algos["expert"].config.seed,
                "command": command or "recipes/make_datasets.py",
                "evaluations": [{"step": e["step"], "return": e["return_mean"]} for e in evaluations]},
        "medium": {"step": medium["step"], "return": medium["return_mean"]},
        "expert": {"step": expert["step"], "return": expert["return_mean"]},
        "medium_replay_transitions": int(n),
        "ref_min_score": ref_min, "ref_max_score": ref_max,
        "reference_seconds": round(time.perf_counter() - t0, 1),
    }
    (out / "family.json").write_text(json.dumps(record, indent=1))
    return record
