"""Train a value-based policy (BC, CQL, IQL, AWAC) with the one training loop.

`recipes/train_{bc,cql,iql,awac}.py` call `main(algorithm, argv)`: the command line has the
run options below plus every field of the algorithm's config dataclass.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch

from seqrl.algos import ALGORITHMS, build_algorithm
from seqrl.config import parse_config, to_dict
from seqrl.data import BufferConfig, EpisodeDataset, TransitionBuffer
from seqrl.plotting import plot_runs
from seqrl.policies import evaluation_line
from seqrl.training import LoopConfig, seed_everything, train

RECIPES = Path(__file__).resolve().parent.parent / "recipes"


@dataclass
class RunConfig:
    dataset: str = field(default="seqrl/invertedpendulum/medium-v0", metadata={"help": "built-in, local or remote Minari id (remote ones are downloaded, e.g. mujoco/hopper/medium-v0), saved EpisodeDataset dir, D4RL .hdf5/.npz file, or Hub dataset repo id"})
    env_id: str = field(default="", metadata={"help": "gymnasium env for evaluation (default: the one the dataset records)"})
    output_dir: str = field(default="", metadata={"help": "where checkpoints, TensorBoard logs and the final policy go (default outputs/<algo>/<dataset>)"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, or auto"})
    normalize_observations: bool = field(default=True, metadata={"help": "per-dimension mean/std of observations (CORL)"})
    normalize_reward: bool = field(default=False, metadata={"help": "IQL-style r * 1000 / (max_return - min_return)"})
    log_every: int = field(default=500, metadata={"help": "log metrics every N updates"})
    save_every: int = field(default=5000, metadata={"help": "write a resumable checkpoint every N updates"})
    compile: bool = field(default=False, metadata={"help": "torch.compile the loss functions (~10 s of compiling first; trains exactly as eager; on 2 CPU cores no faster, see README)"})
    reuse_freed_memory: bool = field(default=True, metadata={"help": "keep freed blocks (up to 32 MB) in the heap between steps instead of re-faulting them from the OS (glibc only; seqrl/data/memory.py)"})
    eval_every: int = field(default=0, metadata={"help": "evaluate in the environment every N updates (0: only at the end)"})
    eval_episodes: int = field(default=10, metadata={"help": "episodes per evaluation (0: no evaluation)"})
    resume: bool = field(default=False, metadata={"help": "continue from the latest checkpoint in output_dir"})


HELP = {  # the algorithm fields shared by several methods
    "hidden_dims": "hidden layer widths of every network", "batch_size": "transitions per update",
    "max_steps": "number of updates", "discount": "discount gamma", "seed": "random seed",
    "tau": "Polyak rate of the target networks", "actor_lr": "actor learning rate",
    "critic_lr": "critic learning rate",
}


def combined_config_class(algorithm: str):
    """RunConfig + the algorithm's config fields (without `algorithm`) as one dataclass."""
    algo_cls = ALGORITHMS[algorithm].config_class
    fields = [(f.name, f.type, dataclasses.field(default=f.default if f.default is not dataclasses.MISSING
                                                  else f.default_factory(),
                                                  metadata={"help": HELP.get(f.name, f"{algorithm} {f.name}")}))
              for f in dataclasses.fields(algo_cls) if f.init]
    run = [(f.name, f.type, dataclasses.field(default=f.default, metadata=f.metadata)) for f in dataclasses.fields(RunConfig)]
    return dataclasses.make_dataclass(f"{algorithm.upper()}RunConfig", run + fields), algo_cls


class AlgorithmLearner:
    """The training loop's view of an algorithm: one update per step, full state for resume."""

    def __init__(self, algorithm):
        self.algorithm = algorithm

    def train_step(self, batch):
        return self.algorithm.update(batch)

    def state_dict(self):
        return self.algorithm.training_state()

    def load_state_dict(self, state):
        self.algorithm.load_training_state(state)


class BufferBatches:
    def __init__(self, buffer: TransitionBuffer, batch_size: int):
        self.buffer, self.batch_size = buffer, batch_size

    def next_batch(self):
        return self.buffer.sample(self.batch_size)

    def state_dict(self):
        return self.buffer.state_dict()

    def load_state_dict(self, state):
        self.buffer.load_state_dict(state)


def main(algorithm: str, argv=None, description: str = "") -> dict:
    config_cls, algo_cls = combined_config_class(algorithm)
    default_yaml = RECIPES / "configs" / algorithm / "invertedpendulum-medium.yaml"
    cfg = parse_config(config_cls, argv, description=description,
                       default_config=str(default_yaml) if default_yaml.exists() else None)
    algo_fields = {f.name for f in dataclasses.fields(algo_cls) if f.init}
    algo_config = algo_cls(**{k: v for k, v in dataclasses.asdict(cfg).items() if k in algo_fields})
    algo_config = dataclasses.replace(algo_config, **{k: tuple(v) for k, v in dataclasses.asdict(algo_config).items()
                                                      if isinstance(v, list)})
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    out = Path(cfg.output_dir or f"outputs/{algorithm}/{Path(cfg.dataset).name}")
    seed_everything(algo_config.seed)

    episodes = EpisodeDataset.load(cfg.dataset)
    if cfg.env_id:
        episodes.metadata["env_id"] = cfg.env_id
        episodes.metadata.pop("eval_env", None)
        episodes.metadata.pop("env_module", None)
    buffer = TransitionBuffer(episodes, BufferConfig(normalize_observations=cfg.normalize_observations,
                                                     normalize_reward=cfg.normalize_reward),
                              device=device, seed=algo_config.seed)
    algo = build_algorithm(algo_config, episodes.observation_dim, episodes.action_dim,
                           action_low=buffer.action_low, action_high=buffer.action_high,
                           obs_mean=buffer.obs_mean, obs_std=buffer.obs_std, device=device)
    if cfg.compile:
        print(f"compiling {', '.join(algo.compile_losses())} (the first update waits for it)")
    print(f"data: {episodes.summary()}")
    print(f"{algorithm}: {sum(p.numel() for p in algo.parameters()):,} parameters, "
          f"{algo_config.max_steps:,} updates of batch {algo_config.batch_size} on {device}")

    evaluate = None
    if cfg.eval_episodes > 0 and not episodes.env_id:
        print("warning: no evaluation: the dataset records no environment (pass --env_id)")
    if cfg.eval_episodes > 0 and episodes.env_id:
        from seqrl.evaluation import evaluate as rollout
        from seqrl.evaluation import evaluation_env

        def evaluate(step):
            algo.eval()
            result = rollout(algo, n_episodes=cfg.eval_episodes, **evaluation_env(episodes.metadata), seed=10_000,
                             ref_min_score=episodes.metadata.get("ref_min_score"),
                             ref_max_score=episodes.metadata.get("ref_max_score"), progress=False)
            algo.train()
            metrics = {"return_mean": result.mean, "return_stderr": result.stderr}
            if result.normalized_mean is not None:
                metrics["normalized_score"] = result.normalized_mean
            return metrics

    loop = LoopConfig(max_steps=algo_config.max_steps, log_every=cfg.log_every, save_every=cfg.save_every,
                      eval_every=cfg.eval_every, reuse_freed_memory=cfg.reuse_freed_memory)
    result = train(AlgorithmLearner(algo), BufferBatches(buffer, algo_config.batch_size), loop, out,
                   evaluate=evaluate, resume=cfg.resume)

    last = result["history"][-1] if result["history"] else {}
    metadata = {
        "env_id": episodes.env_id, "env_kwargs": episodes.metadata.get("env_kwargs", {}),
        "max_episode_steps": episodes.metadata.get("max_episode_steps"), "eval_env": episodes.metadata.get("eval_env"),
        "env_module": episodes.metadata.get("env_module"),
        "ref_min_score": episodes.metadata.get("ref_min_score"), "ref_max_score": episodes.metadata.get("ref_max_score"),
        "dataset": {"source": episodes.metadata.get("source", cfg.dataset), **episodes.summary().as_dict()},
        "buffer": {"normalize_observations": cfg.normalize_observations, "normalize_reward": cfg.normalize_reward,
                   "reward_multiplier": buffer.reward_multiplier},
        "training": {**to_dict(cfg), "steps": algo_config.max_steps,
                     "final_metrics": {k: v for k, v in last.items() if k != "step"}},
        "evaluation": result["eval"],
    }
    evaluation = evaluation_line(metadata)
    algo.metadata = metadata
    algo.eval().save_pretrained(out / "model")
    print(f"saved {out / 'model'}" + (f" | {evaluation}" if evaluation else ""))
    print(f"curves: {plot_runs([out], out / 'curves.png')}")
    return {**result, "output_dir": str(out)}
