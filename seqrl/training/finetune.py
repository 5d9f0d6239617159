"""Offline-to-online fine-tuning: `seqrl finetune CHECKPOINT --env ID` continues an offline IQL,
AWAC, CQL (Cal-QL) or SAC-family policy online, on the one training loop.

    seqrl finetune outputs/iql/seqrl-hopper-medium-v0/model --max_steps 10000
    seqrl finetune outputs/cql/seqrl-hopper-medium-v0/model --calql --offline_ratio 0.5     # Cal-QL

What carries over from the offline run (as CORL's `algorithms/finetune/` and d3rlpy's fine-tuning
reproductions do):
  * the weights and, when the run's training checkpoint sits beside the model
    (OUTPUT_DIR/checkpoints), the optimizer states and update counter; the actor's learning rate is
    reset to its initial value (an offline cosine decay has brought it to ~0, as d3rlpy resets it);
  * the data: it pre-fills the replay buffer (`--offline_ratio` unset: one buffer, uniform over the
    mixture, as CORL's IQL/AWAC/CQL) or stays a separate buffer that gives `offline_ratio` of every
    batch (Cal-QL's mixing_ratio 0.5);
  * the normalisation: online observations are standardised with the policy's own statistics and
    online rewards scaled by the offline reward multiplier (IQL's official fine-tuning code did not,
    ikostrikov/implicit_q_learning #4).
`--calql` (CQL only) bounds the conservative term below by each row's Monte-Carlo return (stored
with the data; online, written when an episode ends, no bound before that), because plain CQL's
pessimistic Q values collapse the policy when fine-tuning begins (d3rlpy #276, #215).

Metrics (OUTPUT_DIR/finetune.json, the model card): the normalized return before fine-tuning and
after, every evaluation in between, and the regret: CORL's mean over the online training episodes
of 1 - normalized return / 100 (lower is better).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from seqrl.algos import build_algorithm
from seqrl.config import ConfigError, check_ranges, output_name, parse_config, to_dict
from seqrl.data import BufferConfig, DataError, TransitionBuffer
from seqrl.data.transitions import ReplayBuffer
from seqrl.evaluation import EVAL_SEED, evaluate as rollout, evaluation_env, normalized_score
from seqrl.hub import CheckpointError, load_policy, read_metadata, resolve, save_pretrained
from seqrl.plotting import plot_runs
from seqrl.threads import configure_threads
from seqrl.training.datasets import load_episodes
from seqrl.training.loop import (LoopConfig, atomic_write_text, latest_checkpoint, read_run, read_training_state,
                                 seed_everything, train)
from seqrl.training.online import EnvironmentSource, OnlineConfig, OnlineLearner, make_env
from seqrl.training.run import one_line_errors

FINETUNABLE = ("iql", "awac", "cql", "sac", "brac")  # they learn a critic from replay; BC has none


@dataclass
class FinetuneConfig:
    checkpoint: str = field(default="", metadata={"help": "offline policy: its model directory (OUTPUT_DIR/model, "
                                                          "so the optimizer state in OUTPUT_DIR/checkpoints carries over) or a Hub repo id (required)"})
    env_id: str = field(default="", metadata={"aliases": ["--env"], "help": "gymnasium env to fine-tune in (default: the checkpoint's)"})
    dataset: str = field(default="", metadata={"help": "offline data for the replay buffer (default: the checkpoint's training data)"})
    max_steps: int = field(default=10_000, metadata={"help": "online environment steps"})
    offline_ratio: float | None = field(default=None, metadata={"help": "unset: the data pre-fills one replay buffer; "
                                                                        "r in [0, 1]: separate buffers, r of every batch from the data (Cal-QL: 0.5)"})
    updates_per_step: int = field(default=1, metadata={"help": "updates per environment step"})
    learning_starts: int = field(default=0, metadata={"help": "online steps before updates begin (with --offline_ratio, "
                                                               "updates also wait for one online batch)"})
    calql: bool = field(default=False, metadata={"help": "CQL only: Cal-QL's lower bound, Q at pi's actions pushed down no further "
                                                         "than the Monte-Carlo return"})
    buffer_size: int = field(default=2_000_000, metadata={"help": "replay capacity (FIFO), data rows included (CORL: 2M)"})
    seed: int = field(default=0, metadata={"help": "random seed (environment resets, batches, action noise)"})
    eval_every: int = field(default=1000, metadata={"help": "evaluate every N online steps"})
    eval_episodes: int = field(default=10, metadata={"help": "deterministic episodes per evaluation"})
    output_dir: str = field(default="", metadata={"help": "where checkpoints, TensorBoard logs, finetune.json and the "
                                                          "fine-tuned policy go (default outputs/finetune/ALGO-RUN for a checkpoint OUTPUTS/ALGO/RUN/model, OWNER-NAME for a Hub id)"})
    log_every: int = field(default=500, metadata={"help": "log metrics every N steps"})
    save_every: int = field(default=5000, metadata={"help": "write a resumable checkpoint every N steps"})
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads (default: the CPUs this process may use minus the busy ones)"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, or auto"})
    resume: bool = field(default=False, metadata={"help": "continue from the latest checkpoint in output_dir"})


def main(argv=None) -> dict:
    """`seqrl finetune CHECKPOINT [OPTIONS]`: the CHECKPOINT may come first, without `--checkpoint`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-"):
        argv = ["--checkpoint", argv[0], *argv[1:]]
    with one_line_errors():
        return finetune(parse_config(FinetuneConfig, argv, description=__doc__))


# ---------------------------------------------------------------------------- what carries over
def load_offline(checkpoint: str, calql: bool, device) -> tuple:
    """(algorithm rebuilt for fine-tuning, its metadata, where its optimizer state came from)."""
    directory = resolve(checkpoint)
    meta = read_metadata(directory)
    name = meta.get("algorithm")
    if name not in FINETUNABLE:
        raise CheckpointError(f"{checkpoint} is a {name} checkpoint; seqrl fine-tunes {', '.join(FINETUNABLE)}")
    if calql and name != "cql":
        raise ConfigError(f"--calql is a CQL option; {checkpoint} is {name}")
    saved = load_policy(directory, meta)
    changes = {"calql": True} if calql else {}
    if getattr(saved.config, "cosine_lr_decay", False):
        changes["cosine_lr_decay"] = False  # fine-tuning runs at the initial rate (d3rlpy resets it)
    algo = build_algorithm(dataclasses.replace(saved.config, **changes), saved.obs_dim, saved.act_dim, device=device)
    algo.load_state_dict(saved.state_dict())  # weights, normalisation statistics, action bounds
    algo.metadata = meta
    carried = _carry_training_state(algo, directory)
    if carried is None:
        algo.num_updates = int((meta.get("training") or {}).get("steps") or 0)  # phases (warm starts) stay done
    return algo, meta, carried


def _carry_training_state(algo, model_dir: Path) -> str | None:
    """Optimizer states and update counter from the offline run's last checkpoint, if it is the run
    that wrote this model (same weights); the learning rates go back to their initial values."""
    run_dir = Path(model_dir).parent
    path = latest_checkpoint(run_dir) if (run_dir / "checkpoints").is_dir() else None
    if path is None or read_run(path).get("identity", {}).get("algorithm") != algo.config.algorithm:
        print("optimizer: no training checkpoint of this run beside the model; Adam starts fresh")
        return None
    state = read_training_state(path)["learner"]
    state = state.get("algorithm", state)  # an online run nests it
    weights = algo.state_dict()
    if any(k not in state["model"] or not torch.equal(state["model"][k].to(v.device), v) for k, v in weights.items()):
        print(f"optimizer: {path} holds other weights than the model; Adam starts fresh")
        return None
    for key, optimizer in algo.optimizers.items():
        optimizer.load_state_dict(state["optimizers"][key])
        for group in optimizer.param_groups:
            group["lr"] = group.pop("initial_lr", group["lr"])
    algo.num_updates = int(state["num_updates"])
    print(f"optimizer: Adam state and {algo.num_updates:,} updates carried over from {path}")
    return str(path)


class MixedSource(EnvironmentSource):
    """Cal-QL's two buffers: `offline_ratio` of each batch from the data, the rest from online replay."""

    def __init__(self, config: OnlineConfig, policy, replay: ReplayBuffer, env, offline: TransitionBuffer,
                 offline_ratio: float, **transform):
        super().__init__(config, policy, replay, env, **transform)
        self.offline = offline
        self.n_offline = int(round(offline_ratio * config.batch_size))

    def next_batch(self):
        self.step()
        n_online = self.config.batch_size - self.n_offline
        if self.env_steps < self.config.learning_starts or len(self.replay) < max(n_online, 1):
            return []
        batches = []
        for _ in range(self.config.updates_per_step):
            parts = [self.offline.sample(self.n_offline)] if self.n_offline else []
            parts += [self.replay.sample(n_online)] if n_online else []
            batches.append({k: torch.cat([p[k] for p in parts]) for k in parts[0]})
        return batches

    def state_dict(self):
        return super().state_dict() | {"offline": self.offline.state_dict()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.offline.load_state_dict(state["offline"])


def regret(finished: list, lo: float | None, hi: float | None) -> float | None:
    """CORL's regret for returns: mean over training episodes of 1 - normalized return / 100."""
    if lo is None or hi is None or not finished:
        return None
    return float(np.mean([1.0 - normalized_score(r, lo, hi) / 100.0 for _, r, _ in finished]))


# ---------------------------------------------------------------------------- the run
def finetune(cfg: FinetuneConfig) -> dict:
    check_ranges(cfg, {"threads": 1, "max_steps": 1, "updates_per_step": 1, "learning_starts": 0, "buffer_size": 1,
                       "eval_every": 0, "eval_episodes": 0, "log_every": 1, "save_every": 0})
    if not cfg.checkpoint:
        raise ConfigError("give the offline policy: seqrl finetune CHECKPOINT [--env ID]")
    if cfg.offline_ratio is not None and not 0.0 <= cfg.offline_ratio <= 1.0:
        raise ConfigError(f"offline_ratio must be in [0, 1], got {cfg.offline_ratio}")
    print(f"torch threads: {configure_threads(cfg.threads)}")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    seed_everything(cfg.seed)
    algo, meta, carried = load_offline(cfg.checkpoint, cfg.calql, device)
    algo.generator.manual_seed(cfg.seed)
    c = algo.config

    if meta.get("online") and not cfg.dataset:  # its recorded `dataset` is only the unused default
        raise ConfigError(f"{cfg.checkpoint} was trained online and has no offline data: pass --dataset "
                          "(or continue the run itself with --online --resume)")
    trained_on = (meta.get("training") or {}).get("dataset") or (meta.get("dataset") or {}).get("source")
    dataset = cfg.dataset or trained_on
    if not dataset:
        raise ConfigError(f"{cfg.checkpoint} records no dataset: pass --dataset")
    env_id = cfg.env_id or meta.get("env_id")
    if not env_id:
        raise ConfigError(f"{cfg.checkpoint} records no environment: pass --env")
    episodes = load_episodes(dataset)
    if (episodes.observation_dim, episodes.action_dim) != (algo.obs_dim, algo.act_dim):
        raise DataError(f"{dataset} has observations {episodes.observation_dim} / actions {episodes.action_dim}; "
                        f"the policy takes {algo.obs_dim} / {algo.act_dim}")
    buffer_meta = meta.get("buffer") or {}
    statistics = {"obs_mean": algo.obs_mean.cpu().numpy(), "obs_std": algo.obs_std.cpu().numpy(),
                  "reward_multiplier": float(buffer_meta.get("reward_multiplier", 1.0))}
    mc = c.discount if cfg.calql or getattr(c, "calql", False) else None
    offline = TransitionBuffer(episodes, BufferConfig(mc_returns_discount=mc), device=device, seed=cfg.seed,
                               statistics=statistics)

    same_env = env_id == meta.get("env_id")  # then the data's env settings (kwargs, time limit) too
    online = OnlineConfig(env_id=env_id, env_kwargs=meta.get("env_kwargs") if same_env else None,
                          max_episode_steps=meta.get("max_episode_steps") if same_env else None, random_steps=0, learning_starts=cfg.learning_starts, updates_per_step=cfg.updates_per_step,
                          buffer_size=cfg.buffer_size, batch_size=c.batch_size, seed=cfg.seed)
    try:
        env = make_env(online)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if env.observation_space.shape != (algo.obs_dim,) or env.action_space.shape != (algo.act_dim,):
        raise ConfigError(f"{env_id} has observations {env.observation_space.shape} / actions {env.action_space.shape}; "
                          f"the policy takes ({algo.obs_dim},) / ({algo.act_dim},)")
    transform = {"obs_mean": statistics["obs_mean"], "obs_std": statistics["obs_std"],
                 "reward_multiplier": statistics["reward_multiplier"]}
    prefill = cfg.offline_ratio is None
    capacity = min(cfg.buffer_size, (len(offline) if prefill else 0) + cfg.max_steps)
    if prefill and capacity < len(offline):
        raise ConfigError(f"buffer_size {cfg.buffer_size:,} cannot hold the {len(offline):,} data rows it is pre-filled with")
    replay = ReplayBuffer(algo.obs_dim, algo.act_dim, capacity, device=device, seed=cfg.seed, mc_returns_discount=mc)
    if prefill:
        replay.add(offline.observations, offline.actions, offline.rewards, offline.next_observations,
                   offline.terminals, torch.zeros_like(offline.terminals),
                   mc_returns=offline.mc_returns if mc is not None else None)
        source = EnvironmentSource(online, algo, replay, env, **transform)
    else:
        source = MixedSource(online, algo, replay, env, offline, cfg.offline_ratio, **transform)
    algo.train()

    out = Path(cfg.output_dir or f"outputs/finetune/{output_name(cfg.checkpoint)}")
    lo, hi = meta.get("ref_min_score"), meta.get("ref_max_score")
    eval_env = evaluation_env(meta) if same_env else {"env_id": env_id}

    def evaluate(step=None):
        algo.eval()
        result = rollout(algo, n_episodes=cfg.eval_episodes, **eval_env, seed=EVAL_SEED, ref_min_score=lo,
                         ref_max_score=hi, ref_source=meta.get("ref_source"), progress=False)
        algo.train()
        metrics = {"return_mean": result.mean, "return_stderr": result.stderr}
        return metrics | ({"normalized_score": result.normalized_mean} if result.normalized_mean is not None else {})

    before_file = out / "finetune_before.json"
    if cfg.resume and before_file.exists():
        before = json.loads(before_file.read_text())
    else:
        before = evaluate() if cfg.eval_episodes else {}
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(before_file, json.dumps(before))
    mode = "one buffer pre-filled with the data" if prefill else f"{cfg.offline_ratio:g} of each batch from the data"
    print(f"finetune {meta.get('algorithm')}{' (Cal-QL)' if cfg.calql else ''}: {cfg.max_steps:,} steps in {env_id}, "
          f"{len(offline):,} data rows ({mode}); before: {_score(before)}")

    loop = LoopConfig(max_steps=cfg.max_steps, log_every=cfg.log_every, save_every=cfg.save_every,
                      eval_every=cfg.eval_every)
    identity = {"algorithm": f"finetune-{meta.get('algorithm')}", "data": dataset}
    learner = OnlineLearner(algo, source)
    result = train(learner, source, loop, out, evaluate=evaluate if cfg.eval_episodes else None,
                   resume=cfg.resume, identity=identity)

    summary = {"before": before, "after": result["eval"], "evaluations": result["evaluations"],
               "regret": regret(source.finished, lo, hi), "online_episodes": len(source.finished),
               "online_steps": cfg.max_steps, "optimizer_state": carried or "fresh", "checkpoint": cfg.checkpoint,
               "dataset": dataset, "env_id": env_id, "config": to_dict(cfg)}
    atomic_write_text(out / "finetune.json", json.dumps(summary, indent=1))
    last = result["history"][-1] if result["history"] else {}
    algo.metadata = {**meta, "env_id": env_id, "evaluation": result["eval"],
                     "finetune": {k: summary[k] for k in ("before", "regret", "online_steps", "online_episodes", "checkpoint")},
                     "training": {**(meta.get("training") or {}), "finetune": to_dict(cfg),
                                  "final_metrics": {k: v for k, v in last.items() if k != "step"}}}
    save_pretrained(algo.eval(), out / "model")
    regret_text = f", regret {summary['regret']:.3f}" if summary["regret"] is not None else ""
    print(f"saved {out / 'model'} | before {_score(before)} -> after {_score(result['eval'])}{regret_text}")
    print(f"curves: {plot_runs([out], out / 'curves.png')}")
    return {**result, **summary, "output_dir": str(out)}


def _score(metrics: dict) -> str:
    if not metrics:
        return "not evaluated"
    norm = f" (normalized {metrics['normalized_score']:.1f})" if "normalized_score" in metrics else ""
    return f"{metrics['return_mean']:.1f}{norm}"


__all__ = ["FINETUNABLE", "FinetuneConfig", "MixedSource", "finetune", "load_offline", "main", "regret"]
