"""Several seeds in one process (`seqrl train iql --seeds 0,1,2,3,4`): the K seeds train as one
stack of networks (seqrl.algos.stacked) on the one training loop, each with its own batches,
noise and optimizer state, so seed k ends exactly where a separate run with `--seed k` ends.

Checkpoints of the stack go to OUTPUT_DIR/checkpoints (resumable as any run); at the end each
seed's policy is saved as its own checkpoint, OUTPUT_DIR/seed_K/model, and evaluations report the
mean ± s.e. over seeds of each seed's mean return (OUTPUT_DIR/seeds.json).
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Callable

from seqrl.algos import build_algorithm
from seqrl.algos.stacked import STACKABLE, SeedStack, StackedBatches
from seqrl.config import ConfigError, to_dict
from seqrl.evaluation import EVAL_SEED
from seqrl.hub import save_pretrained
from seqrl.training.loop import LoopConfig, seed_everything, train


def parse_seeds(text: str) -> list[int]:
    """'0,1,2' or '0-4' -> [0, 1, 2] / [0, 1, 2, 3, 4]; distinct non-negative integers."""
    seeds: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            lo, _, hi = part.partition("-")
            seeds += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: give integers, e.g. 0,1,2,3,4 or 0-4") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ConfigError(f"--seeds {text!r}: give distinct non-negative integers, e.g. 0,1,2,3,4 or 0-4")
    return seeds


def check_stackable(algorithm: str) -> None:
    if algorithm not in STACKABLE:
        raise ConfigError(f"--seeds trains several seeds of {', '.join(STACKABLE)} at once; {algorithm} runs one "
                          f"seed per process (--seed)")


def mean_and_stderr(values: list[float]) -> tuple[float, float]:
    """Mean and standard error (ddof=1) over seeds; the s.e. of one seed is 0."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


class StackedLearner:
    def __init__(self, stack: SeedStack):
        self.stack = stack

    def train_step(self, batch):
        return self.stack.update(batch)

    def state_dict(self):
        return self.stack.training_state()

    def load_state_dict(self, state):
        try:
            self.stack.load_training_state(state)
        except ValueError as err:
            raise ConfigError(f"--resume: {err}") from None


def _seed_metrics(results: list) -> dict[str, float]:
    """Mean ± s.e. over seeds of the seeds' mean returns (and normalized scores), plus each seed's."""
    mean, stderr = mean_and_stderr([r.mean for r in results])
    metrics = {"return_mean": mean, "return_stderr": stderr}
    if all(r.normalized_mean is not None for r in results):
        metrics["normalized_score"], metrics["normalized_stderr"] = mean_and_stderr([r.normalized_mean for r in results])
    return metrics


def train_seeds(algorithm: str, cfg, algo_config, seeds: list[int], buffer, metadata: dict, env: dict, out: Path,
                build_kwargs: dict, identity: dict) -> dict:
    """Train `seeds` of `algorithm` stacked on `buffer`; save each seed's policy; returns the loop's result."""
    from seqrl.evaluation import evaluate as rollout

    check_stackable(algorithm)
    obs_dim, act_dim = buffer.observations.shape[1], buffer.actions.shape[1]

    def build(seed: int):  # as a single run with --seed `seed` builds its algorithm
        seed_everything(seed)
        config = copy.deepcopy(algo_config)
        config.seed = seed
        return build_algorithm(config, obs_dim, act_dim, **build_kwargs)

    stack = SeedStack(build, seeds)
    members = stack.members
    print(f"{algorithm}: {len(seeds)} seeds {seeds} stacked, {sum(p.numel() for p in members[0].parameters()):,} "
          f"parameters each, {algo_config.max_steps:,} updates of batch {algo_config.batch_size} on {buffer.device}")

    def run_metadata(seed: int, step: int, evaluation: dict) -> dict:
        training = {**to_dict(cfg), "seed": seed, "seeds": seeds, "steps": step, "final_metrics": {}}
        return {**metadata, "training": training, "evaluation": evaluation}

    def evaluate_seeds(step: int) -> dict:
        results = []
        for seed, member in zip(seeds, stack.sync_members()):
            member.eval()
            results.append(rollout(member, n_episodes=cfg.eval_episodes, **env, seed=EVAL_SEED,
                                   ref_min_score=metadata.get("ref_min_score"),
                                   ref_max_score=metadata.get("ref_max_score"),
                                   ref_source=metadata.get("ref_source"), progress=False))
            if cfg.snapshot_evals:
                r = results[-1]
                member.metadata = run_metadata(seed, step, {"return_mean": r.mean, "return_stderr": r.stderr})
                save_pretrained(member, out / f"seed_{seed}" / "snapshots" / f"step_{step}")
            member.train()
        metrics = _seed_metrics(results)
        for seed, r in zip(seeds, results):
            metrics[f"seed_{seed}/return_mean"], metrics[f"seed_{seed}/return_stderr"] = r.mean, r.stderr
            if r.normalized_mean is not None:
                metrics[f"seed_{seed}/normalized_score"] = r.normalized_mean
        return metrics

    evaluate: Callable | None = None
    if cfg.eval_episodes > 0 and env.get("env_id"):
        evaluate = evaluate_seeds
    elif cfg.eval_episodes > 0:
        print("warning: no evaluation: the dataset records no environment (pass --env_id)")

    loop = LoopConfig(max_steps=algo_config.max_steps, log_every=cfg.log_every, save_every=cfg.save_every,
                      eval_every=cfg.eval_every, reuse_freed_memory=cfg.reuse_freed_memory,
                      precision=cfg.precision, device_type=buffer.device.type)
    source = StackedBatches(buffer, algo_config.batch_size, seeds)
    result = train(StackedLearner(stack), source, loop, out, evaluate=evaluate, resume=cfg.resume,
                   identity={**identity, "seeds": seeds})

    stack.sync_members()
    last = result["eval"] or {}
    summary = {"algorithm": algorithm, "dataset": cfg.dataset, "seeds": seeds,
               "steps": algo_config.max_steps, "evaluation": last, "models": {}}
    for seed, member in zip(seeds, members):
        own = {k[len(f"seed_{seed}/"):]: v for k, v in last.items() if k.startswith(f"seed_{seed}/")}
        member.metadata = run_metadata(seed, algo_config.max_steps, own)  # this seed's own evaluation
        path = save_pretrained(member.eval(), out / f"seed_{seed}" / "model")
        summary["models"][str(seed)] = str(path)
    (out / "seeds.json").write_text(json.dumps(summary, indent=2, default=str))
    if last:
        line = f"return {last['return_mean']:.2f} ± {last['return_stderr']:.2f} (s.e. over {len(seeds)} seeds)"
        if "normalized_score" in last:
            line += f", normalized {last['normalized_score']:.1f} ± {last['normalized_stderr']:.1f}"
        print(f"saved {len(seeds)} policies in {out}/seed_*/model | {line}")
    else:
        print(f"saved {len(seeds)} policies in {out}/seed_*/model")
    return {**result, "output_dir": str(out), "seeds": seeds}
