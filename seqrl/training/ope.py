"""Offline policy evaluation: `seqrl ope CHECKPOINT --dataset ID` estimates a saved policy's value
from data alone, by fitted Q evaluation (`seqrl.algos.fqe`), so checkpoints can be ranked without
touching the environment.

The run is the one training loop (progress bar, TensorBoard, checkpoints, exact `--resume`), and
writes `OUTPUT_DIR/ope.json`:
  * `estimate`: mean over the data's episode starts of Q(s0, pi(s0)), a discounted value;
  * `data_value`: the behaviour's own discounted return from the same starts (Monte Carlo, exact
    for episodes that end by termination, a lower bound for truncated ones): estimate > data_value
    says the policy is judged better than the data;
  * `normalized_estimate` (approximate): the estimate on the dataset's normalized-score scale,
    converted with the data's own ratio of undiscounted to discounted episode return.

    seqrl ope outputs/iql/invertedpendulum-medium/model --dataset seqrl/invertedpendulum/medium-v0
    evaluate_offline(policy, episodes, FQEConfig(max_steps=5000), "outputs/ope/iql")   # from Python
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from seqrl.algos.base import OfflineAlgorithm
from seqrl.algos.fqe import FQE, FQEConfig
from seqrl.config import ConfigError, check_ranges, combine, output_name, parse_config, split, to_dict
from seqrl.data import BufferConfig, EpisodeDataset, TransitionBuffer
from seqrl.data.returns import reward_to_go
from seqrl.hub import CheckpointError, load_policy, read_metadata, resolve
from seqrl.threads import configure_threads
from seqrl.training.datasets import load_episodes
from seqrl.training.loop import LoopConfig, atomic_write_text, seed_everything, train
from seqrl.training.run import AlgorithmLearner, one_line_errors

ACTION_CHUNK = 65_536  # rows per policy call when precomputing pi(s')


def unit_actions(actions: Tensor, low, high) -> Tensor:
    """Env actions [N, a] -> [-1, 1] of the bounds (low, high), as `TransitionBuffer` scales the data's."""
    low = torch.as_tensor(low, dtype=torch.float32, device=actions.device)
    high = torch.as_tensor(high, dtype=torch.float32, device=actions.device)
    span = torch.where(high > low, high - low, torch.ones_like(high))
    return (2.0 * (actions - low) / span - 1.0).clamp(-1.0, 1.0)


@torch.no_grad()
def policy_actions(policy: OfflineAlgorithm, observations: Tensor, low, high) -> Tensor:
    """pi(s), deterministic, for raw observations [N, d], in [-1, 1] of the data's action bounds."""
    out = [policy.act(chunk) for chunk in observations.split(ACTION_CHUNK)]
    actions = torch.cat(out) if out else observations.new_zeros(0, len(low))
    return unit_actions(actions, low, high)


class FQEBatches:
    """Buffer rows plus the policy's action at each row's next observation."""

    def __init__(self, buffer: TransitionBuffer, next_actions: Tensor, batch_size: int):
        self.buffer, self.next_actions, self.batch_size = buffer, next_actions, batch_size

    def next_batch(self):
        return self.buffer.sample(self.batch_size, extra={"next_actions": self.next_actions})

    def state_dict(self):
        return self.buffer.state_dict()

    def load_state_dict(self, state):
        self.buffer.load_state_dict(state)


def _check_policy_fits(policy: OfflineAlgorithm, episodes: EpisodeDataset, what: str) -> None:
    if (policy.obs_dim, policy.act_dim) != (episodes.observation_dim, episodes.action_dim):
        raise CheckpointError(f"{what} takes observations {policy.obs_dim} and actions {policy.act_dim}, the data "
                              f"has {episodes.observation_dim} and {episodes.action_dim}")
    trained_on = policy.metadata.get("env_id")
    if trained_on and episodes.env_id and trained_on != episodes.env_id:
        raise CheckpointError(f"{what} was trained on {trained_on}, the data is from {episodes.env_id}")


def evaluate_offline(policy: OfflineAlgorithm, episodes: EpisodeDataset, config: FQEConfig, output_dir, *,
                     device="cpu", resume: bool = False, progress: bool = True, identity: dict | None = None,
                     what: str = "the policy") -> dict:
    """Fit FQE for `policy` on `episodes` and return the estimates (see the module docstring)."""
    _check_policy_fits(policy, episodes, what)
    policy = policy.to(device).eval()
    # raw observations and rewards: the policy normalises its own inputs; FQE's critic reads them raw (d3rlpy)
    buffer = TransitionBuffer(episodes, BufferConfig(), device=device, seed=config.seed)
    obs = buffer.observations
    stats = dict(obs_mean=obs.mean(0), obs_std=obs.std(0) + 1e-3) if config.normalize_observations else {}
    next_actions = policy_actions(policy, buffer.next_observations, buffer.action_low, buffer.action_high)
    torch.manual_seed(config.seed)  # the critic's initial weights
    fqe = FQE(config, obs.shape[1], buffer.actions.shape[1], **stats, device=device)
    loop = LoopConfig(max_steps=config.max_steps, log_every=max(1, min(1000, config.max_steps // 10)),
                      save_every=max(1, config.max_steps // 5), keep_checkpoints=1, progress=progress,
                      progress_desc="FQE updates")
    result = train(AlgorithmLearner(fqe), FQEBatches(buffer, next_actions, config.batch_size), loop, output_dir,
                   resume=resume, identity={"algorithm": "fqe", **(identity or {})})

    starts, _ = episodes.episode_bounds()
    s0 = obs[torch.as_tensor(starts, device=obs.device)]
    with torch.no_grad():
        v0 = fqe.q(s0, policy_actions(policy, s0, buffer.action_low, buffer.action_high)).double().cpu().numpy()
    a = episodes.arrays()
    rewards = a["reward"].astype(np.float64)
    g0 = (rewards + config.discount * reward_to_go(rewards, starts, config.discount))[starts]  # discounted returns
    out = {"estimate": float(v0.mean()), "estimate_stderr": float(v0.std(ddof=1) / math.sqrt(len(v0))) if len(v0) > 1 else 0.0,
           "data_value": float(g0.mean()), "episode_starts": int(len(starts)), "discount": config.discount,
           "fqe_updates": config.max_steps, "final_metrics": {k: v for k, v in (result["history"] or [{}])[-1].items() if k != "step"}}
    lo, hi = episodes.metadata.get("ref_min_score"), episodes.metadata.get("ref_max_score")
    undiscounted = float(episodes.episode_returns().mean())
    if lo is not None and hi is not None and hi > lo and abs(out["data_value"]) > 1e-8:
        out["normalized_estimate"] = 100.0 * (out["estimate"] * undiscounted / out["data_value"] - lo) / (hi - lo)
    return out


@dataclass
class OPERunConfig:
    checkpoint: str = field(default="", metadata={"help": "policy directory (with seqrl.json) or Hub repo id (required)"})
    dataset: str = field(default="", metadata={"help": "data to evaluate on (any source `seqrl train` takes; default: the checkpoint's training data)"})
    output_dir: str = field(default="", metadata={"help": "where FQE's checkpoints, TensorBoard logs and ope.json go (default outputs/ope/ALGO-RUN for a checkpoint OUTPUTS/ALGO/RUN/model, OWNER-NAME for a Hub id)"})
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads (default: the CPUs this process may use minus the busy ones)"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, or auto"})
    resume: bool = field(default=False, metadata={"help": "continue from the latest FQE checkpoint in output_dir"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})


HELP = {"hidden_dims": "critic hidden widths", "batch_size": "rows per FQE update (d3rlpy: 100)",
        "max_steps": "FQE updates", "discount": "discount of the estimated value", "seed": "random seed (batches, initial weights)",
        "lr": "Adam learning rate of the critic (d3rlpy: 1e-4)",
        "target_update_period": "updates between hard copies of the critic into its target (d3rlpy: 100)",
        "normalize_observations": "standardise the critic's observations by the data's mean and std (d3rlpy's FQE, the default, feeds them raw)"}


def main(argv=None) -> dict:
    """`seqrl ope CHECKPOINT [OPTIONS]`: the CHECKPOINT may come first, without `--checkpoint`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-"):
        argv = ["--checkpoint", argv[0], *argv[1:]]
    with one_line_errors():
        return _run(argv)


def _run(argv) -> dict:
    cls = combine("OPEConfig", OPERunConfig, FQEConfig, help_texts=HELP)
    cfg = parse_config(cls, argv, description=__doc__)
    check_ranges(cfg, {"threads": 1, "batch_size": 1, "max_steps": 1, "target_update_period": 1})
    if not cfg.checkpoint:
        raise ConfigError("give the policy to evaluate: seqrl ope CHECKPOINT [--dataset ID]")
    try:
        config = split(cfg, FQEConfig)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    print(f"torch threads: {configure_threads(cfg.threads)}")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    directory = resolve(cfg.checkpoint)
    meta = read_metadata(directory)
    if meta.get("algorithm") in ("trajectory_transformer", "dynamics", "fqe"):
        raise CheckpointError(f"{cfg.checkpoint} is a {meta.get('algorithm')} checkpoint: FQE evaluates value-based policies")
    policy = load_policy(directory, meta)
    trained_on = (meta.get("training") or {}).get("dataset") or (meta.get("dataset") or {}).get("source")
    dataset = cfg.dataset or trained_on or ""
    if not dataset:
        raise ConfigError(f"{cfg.checkpoint} records no dataset: pass --dataset")
    seed_everything(config.seed)
    episodes = load_episodes(dataset)
    print(f"data: {episodes.summary()}")
    out = Path(cfg.output_dir or f"outputs/ope/{output_name(cfg.checkpoint)}")
    result = evaluate_offline(policy, episodes, config, out, device=device, resume=cfg.resume, progress=cfg.progress,
                              identity={"data": dataset, "policy": str(cfg.checkpoint)}, what=str(cfg.checkpoint))
    result |= {"checkpoint": str(cfg.checkpoint), "dataset": dataset, "config": to_dict(cfg)}
    atomic_write_text(out / "ope.json", json.dumps(result, indent=1))
    norm = f", normalized ~{result['normalized_estimate']:.1f}" if "normalized_estimate" in result else ""
    print(f"FQE estimate of {cfg.checkpoint}: {result['estimate']:.2f} ± {result['estimate_stderr']:.2f} (discounted, "
          f"over {result['episode_starts']} episode starts{norm}); the data's own: {result['data_value']:.2f} -> {out / 'ope.json'}")
    return result
