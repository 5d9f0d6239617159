"""The run assembly every entry point calls (`seqrl train ALGO`, `recipes/train_*.py`, the
benchmarks): dataset -> transition buffer or token windows -> learner -> the training loop ->
checkpoint -> evaluation, for every algorithm, the Trajectory Transformer included.

    main("iql", ["--dataset", "seqrl/hopper/medium-v0", "--max_steps", "10000"])
    main("sac", ["--online", "--env", "Hopper-v5"])
    main("tt", [...])     # also under `accelerate launch` (recipes/train_tt.py), multi-process
    main("mopo", [...])   # MOPO / COMBO: fit (or load, --dynamics) the dynamics ensemble, then the policy
    main("dynamics", [...])  # the ensemble alone (seqrl.training.dynamics)

The command line of a value-based run has the run options below plus every field of the
algorithm's config dataclass; TT's is `TTConfig`. Defaults come from the YAML the package ships
(`recipes/configs/<algo>/invertedpendulum-medium.yaml`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from seqrl.algos import ALGORITHMS, build_algorithm
from seqrl.algos.options import OPTION_HELP
from seqrl.algos.tt import TTConfig, TTLearner, WindowBatches, official_updates
from seqrl.config import ConfigError, check_ranges, combine, output_name, parse_config, split, to_dict
from seqrl.data import BufferConfig, DataError, TokenizerConfig, TokenWindows, TransitionBuffer
from seqrl.evaluation import EVAL_SEED, EvaluationError, check_env_spaces, evaluation_env
from seqrl.hub import CheckpointError, TrajectoryModel, evaluation_line, save_pretrained, save_training_metrics
from seqrl.models.trajectory_transformer import TrajectoryTransformerConfig, TrajectoryTransformerModel
from seqrl.plotting import plot_runs
from seqrl.resources import ResourceError, default_config, has_resource
from seqrl.threads import configure_threads
from seqrl.training.compiled import check_compile, compile_losses
from seqrl.training.datasets import dataset_metadata, load_episodes, time_limit
from seqrl.training.dynamics import fit_dynamics, load_dynamics_for, train_dynamics
from seqrl.training.loop import LoopConfig, ResumeError, seed_everything, train
from seqrl.training.precision import check_precision
from seqrl.training.seeds import check_stackable, parse_seeds, train_seeds

TT = "tt"
# what a user's input can get wrong: reported as one line (exit status 1), never a traceback
USER_ERRORS = (DataError, CheckpointError, EvaluationError, ResumeError, ResourceError, ConfigError)
VALUE_MINIMUMS = {"threads": 1, "max_steps": 1, "batch_size": 1, "log_every": 1, "save_every": 0, "eval_every": 0, "eval_episodes": 0,
                  "buffer_size": 1, "updates_per_step": 1, "random_steps": 0, "learning_starts": 0, "discount": 0}
TT_MINIMUMS = {"threads": 1, "max_steps": 1, "batch_size": 1, "log_every": 1, "save_every": 0, "n_bins": 2, "context": 1,
               "n_layer": 1, "n_head": 1, "n_embd": 1, "discount": 0}


@contextlib.contextmanager
def one_line_errors():
    try:
        yield
    except USER_ERRORS as err:
        raise SystemExit(f"error: {err}") from None


# the v5 families seqrl's v5-short settings were measured on (benchmarks/README.md, the quality table)
V5_FAMILIES = ("hopper", "halfcheetah", "walker2d")
V5_DATASET = re.compile(r"(?:hf://[^/]+/)?(?:seqrl|mujoco)/(?P<env>[a-z0-9]+)/(?P<level>[a-z0-9-]+)-v\d+")


def starting_yaml(algorithm: str, online: bool, dataset: str | None = None) -> str | None:
    """The shipped YAML a run starts from without --config. On a v5 family dataset (seqrl/ENV/LEVEL-vN,
    or Minari's mujoco/ENV/LEVEL-vN, local or hf://ORG/...), the settings the quality table ran: the
    dataset's own (ALGO/v5-short-ENV-LEVEL.yaml, e.g. MOPO's (h, lambda)), else ALGO/v5-short.yaml.
    Otherwise the CPU-sized default on the built-in InvertedPendulum set, whose rollout sizes and
    penalties belong to that data."""
    names = [f"{algorithm}/online.yaml"] if online else []
    match = V5_DATASET.fullmatch(dataset or "")
    if match and match["env"] in V5_FAMILIES and not online:
        names += [f"{algorithm}/v5-short-{match['env']}-{match['level']}.yaml", f"{algorithm}/v5-short.yaml"]
    for name in names + [f"{algorithm}/invertedpendulum-medium.yaml"]:
        if has_resource("configs", name):
            return default_config(name)
    return None


@dataclass
class RunConfig:
    dataset: str = field(default="seqrl/invertedpendulum/medium-v0", metadata={"help": "built-in, local or remote Minari id (remote ones are downloaded, e.g. mujoco/hopper/medium-v0), saved EpisodeDataset dir, D4RL .hdf5/.npz file, or Hub dataset repo id"})
    env_id: str = field(default="", metadata={"aliases": ["--env"], "help": "gymnasium env for evaluation (default: the one the dataset records); with --online the env trained in (default InvertedPendulum-v5)"})
    ref_min_score: float | None = field(default=None, metadata={"help": "reference return of a random policy for normalized scores (with --ref_max_score; default: the dataset's own, none if it has none)"})
    ref_max_score: float | None = field(default=None, metadata={"help": "reference return of an expert policy for normalized scores (with --ref_min_score)"})
    online: bool = field(default=False, metadata={"help": "train online in --env instead of from --dataset (SAC-family algorithms); max_steps counts environment steps"})
    random_steps: int = field(default=5000, metadata={"help": "online: uniform random actions for the first N environment steps"})
    learning_starts: int = field(default=5000, metadata={"help": "online: start updating once N transitions are stored"})
    updates_per_step: int = field(default=1, metadata={"help": "online: updates per environment step"})
    buffer_size: int = field(default=1_000_000, metadata={"help": "online: replay buffer capacity (FIFO)"})
    snapshot_evals: bool = field(default=False, metadata={"help": "save the policy at every evaluation as OUTPUT_DIR/snapshots/step_N (a loadable checkpoint each)"})
    output_dir: str = field(default="", metadata={"help": "where checkpoints, TensorBoard logs and the final policy go (default: the config file's for its own dataset, else outputs/ALGO/DATASET with the dataset id's slashes as dashes, e.g. outputs/iql/seqrl-hopper-medium-v0)"})
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads (default: the CPUs this process may use minus the busy ones, at least 1; see seqrl/threads.py)"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, or auto"})
    precision: str = field(default="fp32", metadata={"help": "fp32, or bf16: each update under bfloat16 autocast, weights and optimizer in float32 (pays where updates are matmul-bound on bf16 hardware: CQL and AWAC 2.1x on 2 AMX CPU cores, or a GPU; loss terms within 5 percent of fp32, gradients aligned)"})
    compile: bool = field(default=False, metadata={"help": "run the algorithm's losses through torch.compile (fused forward and backward kernels; the first updates compile for seconds): IQL and AWAC 1.1x per update on 2 CPU cores, CQL slower (benchmarks/README.md); one seed per process"})
    normalize_observations: bool = field(default=True, metadata={"help": "per-dimension mean/std of observations (CORL)"})
    normalize_reward: bool = field(default=False, metadata={"help": "IQL-style r * 1000 / (max_return - min_return)"})
    log_every: int = field(default=500, metadata={"help": "log metrics every N updates"})
    save_every: int = field(default=5000, metadata={"help": "write a resumable checkpoint every N updates"})
    reuse_freed_memory: bool = field(default=True, metadata={"help": "keep freed blocks (up to 32 MB) in the heap between steps instead of re-faulting them from the OS (glibc only; seqrl/cpu/memory.py)"})
    eval_every: int = field(default=0, metadata={"help": "evaluate in the environment every N updates (0: only at the end)"})
    eval_episodes: int = field(default=10, metadata={"help": "episodes per evaluation (0: no evaluation)"})
    resume: bool = field(default=False, metadata={"help": "continue from the latest checkpoint in output_dir"})
    seeds: str = field(default="", metadata={"help": "train several seeds at once as one stack of networks, e.g. 0,1,2,3,4 or 0-4 (bc, iql, awac, sac, cql, brac; offline): each seed trains exactly as a run with --seed K would, its policy goes to OUTPUT_DIR/seed_K/model, and evaluations report the mean ± s.e. over seeds (overrides --seed)"})


def combined_config_class(algorithm: str):
    """RunConfig + the algorithm's config fields (without `algorithm`) as one dataclass."""
    algo_cls = ALGORITHMS[algorithm].config_class
    help_texts = {f.name: OPTION_HELP.get(f.name, f"{algorithm} {f.name}") for f in dataclasses.fields(algo_cls)}
    return combine(f"{algorithm.upper()}RunConfig", RunConfig, algo_cls, help_texts=help_texts), algo_cls


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


ONLINE_ALGORITHMS = ("sac", "cql")
MODEL_BASED = ("mopo", "combo")
DYNAMICS = "dynamics"


def _make_evaluator(algo, cfg, env: dict, metadata: dict, out: Path):
    """evaluate(step) for the loop: deterministic episodes in `env`; optional policy snapshots."""
    from seqrl.evaluation import evaluate as rollout

    def evaluate(step):
        algo.eval()
        result = rollout(algo, n_episodes=cfg.eval_episodes, **env, seed=EVAL_SEED,
                         ref_min_score=metadata.get("ref_min_score"), ref_max_score=metadata.get("ref_max_score"),
                         ref_source=metadata.get("ref_source"), progress=False)
        metrics = {"return_mean": result.mean, "return_stderr": result.stderr}
        if result.normalized_mean is not None:
            metrics["normalized_score"] = result.normalized_mean
        if cfg.snapshot_evals:
            algo.metadata = {**metadata, "training": {**to_dict(cfg), "steps": step, "final_metrics": {}},
                             "evaluation": metrics}
            save_pretrained(algo, out / "snapshots" / f"step_{step}")
        algo.train()
        return metrics

    return evaluate


def main(algorithm: str, argv=None, description: str = "") -> dict:
    """Train `algorithm` ("tt" or a value-based one: bc, sac, cql, iql, awac) from a command line."""
    if argv is None:
        argv = sys.argv[1:]
    if algorithm not in (TT, DYNAMICS, *ALGORITHMS):
        raise SystemExit(f"error: unknown algorithm {algorithm!r}; seqrl trains {', '.join([TT, DYNAMICS, *ALGORITHMS])}")
    with one_line_errors():
        if algorithm == TT:
            return train_tt(argv, description)
        if algorithm == DYNAMICS:
            return train_dynamics(argv, description)
        return train_value_based(algorithm, argv, description)


def train_value_based(algorithm: str, argv, description: str = "") -> dict:
    config_cls, algo_cls = combined_config_class(algorithm)
    cfg = parse_config(config_cls, argv, description=description or __doc__,
                       default_config=lambda dataset: starting_yaml(algorithm, "--online" in argv, dataset))
    check_ranges(cfg, VALUE_MINIMUMS)
    print(f"torch threads: {configure_threads(cfg.threads)}")
    try:
        algo_config = split(cfg, algo_cls)
    except ValueError as err:  # the config's own checks (e.g. MOPO's penalty name)
        raise ConfigError(str(err)) from None
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    check_precision(cfg.precision, device)
    if cfg.compile:
        check_compile(device)
    if cfg.online and algorithm not in ONLINE_ALGORITHMS:
        raise SystemExit(f"--online trains {', '.join(ONLINE_ALGORITHMS)}; {algorithm} learns from a dataset only")
    seeds = parse_seeds(cfg.seeds) if cfg.seeds else None
    if seeds and cfg.online:
        raise ConfigError("--seeds trains offline; an online run steps one environment per seed (run seeds separately)")
    if seeds and cfg.compile:
        raise ConfigError("--compile runs one seed per process; --seeds stacks them with torch.func instead")
    if seeds:
        algo_config.seed = seeds[0]
    seed_everything(algo_config.seed)
    out = Path(cfg.output_dir or (f"outputs/{algorithm}/{(cfg.env_id or 'InvertedPendulum-v5').lower()}-online"
                                  if cfg.online else f"outputs/{algorithm}/{output_name(cfg.dataset)}"))
    if seeds:
        return _train_seeds(algorithm, cfg, algo_config, seeds, device, out)
    run = _online_run(cfg, algo_config, device) if cfg.online else _offline_run(cfg, algo_config, device)
    algo, source, learner, metadata, env = run
    if cfg.compile:
        compile_losses(algo)
    dynamics = None
    if algorithm in MODEL_BASED:
        source, learner, dynamics = _model_based(cfg, algo_config, algo, source.buffer, metadata, out)
    unit = "environment steps" if cfg.online else "updates"
    print(f"{algorithm}: {sum(p.numel() for p in algo.parameters()):,} parameters, "
          f"{algo_config.max_steps:,} {unit} of batch {algo_config.batch_size} on {device}")

    evaluate = None
    if cfg.eval_episodes > 0 and not env.get("env_id"):
        print("warning: no evaluation: the dataset records no environment (pass --env_id)")
    if cfg.eval_episodes > 0 and env.get("env_id"):
        evaluate = _make_evaluator(algo, cfg, env, metadata, out)

    loop = LoopConfig(max_steps=algo_config.max_steps, log_every=cfg.log_every, save_every=cfg.save_every,
                      eval_every=cfg.eval_every, reuse_freed_memory=cfg.reuse_freed_memory,
                      precision=cfg.precision, device_type=torch.device(device).type)
    identity = {"algorithm": algorithm, "data": f"online:{env['env_id']}" if cfg.online else cfg.dataset}
    result = train(learner, source, loop, out, evaluate=evaluate, resume=cfg.resume, identity=identity)

    last = result["history"][-1] if result["history"] else {}
    metadata |= {
        "training": {**to_dict(cfg), "steps": algo_config.max_steps,
                     "final_metrics": {k: v for k, v in last.items() if k != "step"}},
        "evaluation": result["eval"],
    }
    evaluation = evaluation_line(metadata)
    algo.metadata = metadata
    save_pretrained(algo.eval(), out / "model")
    if dynamics is not None:  # MOPO / COMBO checkpoints carry their model
        save_pretrained(dynamics, out / "model" / "dynamics")
    print(f"saved {out / 'model'}" + (f" | {evaluation}" if evaluation else ""))
    print(f"curves: {plot_runs([out], out / 'curves.png')}")
    return {**result, "output_dir": str(out)}


def _mc_discount(algo_config) -> float | None:
    """Cal-QL reads each row's Monte-Carlo return: the buffers store them only then."""
    return algo_config.discount if getattr(algo_config, "calql", False) else None


def _offline_data(cfg, algo_config, device):
    """The dataset as a transition buffer, what checkpoints record about it, and its evaluation env."""
    episodes = load_episodes(cfg.dataset, cfg.env_id, cfg.ref_min_score, cfg.ref_max_score)
    buffer = TransitionBuffer(episodes, BufferConfig(normalize_observations=cfg.normalize_observations,
                                                     normalize_reward=cfg.normalize_reward,
                                                     mc_returns_discount=_mc_discount(algo_config)),
                              device=device, seed=algo_config.seed)
    print(f"data: {episodes.summary()}")
    metadata = {
        **dataset_metadata(episodes, cfg.dataset),
        "buffer": {"normalize_observations": cfg.normalize_observations, "normalize_reward": cfg.normalize_reward,
                   "reward_multiplier": buffer.reward_multiplier},
    }
    env = evaluation_env(episodes.metadata) if episodes.env_id else {}
    if env and cfg.eval_episodes > 0:  # a dataset of another env would fail only after the whole budget
        check_env_spaces(env, episodes.observation_dim, episodes.action_dim, f"the dataset {cfg.dataset}")
    return buffer, metadata, env


def _buffer_statistics(buffer) -> dict:
    return dict(action_low=buffer.action_low, action_high=buffer.action_high, obs_mean=buffer.obs_mean,
                obs_std=buffer.obs_std, device=buffer.device)


def _offline_run(cfg, algo_config, device):
    buffer, metadata, env = _offline_data(cfg, algo_config, device)
    algo = build_algorithm(algo_config, buffer.observations.shape[1], buffer.actions.shape[1],
                           **_buffer_statistics(buffer))
    return algo, BufferBatches(buffer, algo_config.batch_size), AlgorithmLearner(algo), metadata, env


def _train_seeds(algorithm, cfg, algo_config, seeds, device, out: Path) -> dict:
    check_stackable(algorithm)  # before the data loads
    buffer, metadata, env = _offline_data(cfg, algo_config, device)
    return train_seeds(algorithm, cfg, algo_config, seeds, buffer, metadata, env, out, _buffer_statistics(buffer),
                       identity={"algorithm": algorithm, "data": cfg.dataset})


def _model_based(cfg, algo_config, algo, buffer, metadata, out: Path):
    """MOPO / COMBO: the environment's termination rule, the dynamics ensemble (given, fitted before
    in this output dir, or fitted now: resumable per epoch), and the mixed real/model batch source."""
    from seqrl.algos.model_based import ModelBasedLearner, ModelRollouts
    from seqrl.data.termination import termination_function
    from seqrl.models.dynamics import DynamicsConfig

    env_id = metadata.get("env_id")
    if not env_id:
        raise DataError("MOPO / COMBO need the environment's termination rule: the dataset records no env (pass --env_id)")
    try:
        terminated = termination_function(env_id, metadata.get("env_kwargs") or {})
    except ValueError as err:
        raise DataError(str(err)) from None
    saved = out / "dynamics"
    obs_dim, act_dim = buffer.observations.shape[1], buffer.actions.shape[1]
    if algo_config.dynamics:
        dynamics = load_dynamics_for(algo_config.dynamics, obs_dim, act_dim, env_id, buffer.device)
        print(f"dynamics: {algo_config.dynamics} (elites {dynamics.elites.tolist()})")
    elif (saved / "seqrl.json").exists() and cfg.resume:
        dynamics = load_dynamics_for(str(saved), obs_dim, act_dim, env_id, buffer.device)
        print(f"dynamics: fitted earlier in this run ({saved})")
    else:
        config = DynamicsConfig(seed=algo_config.seed, max_epochs=algo_config.dynamics_max_epochs)
        print(f"dynamics: fitting {config.ensemble_size} members on {len(buffer):,} transitions "
              f"(checkpoints and TensorBoard in {out / 'dynamics_fit'})")
        meta = {k: metadata[k] for k in ("env_id", "env_kwargs", "max_episode_steps", "dataset") if k in metadata}
        dynamics = fit_dynamics(buffer, config, out / "dynamics_fit", resume=cfg.resume, metadata=meta,
                                identity={"data": cfg.dataset})
        save_pretrained(dynamics, saved)
        print(f"dynamics: {dynamics.metadata['training']['epochs']} epochs, elites {dynamics.elites.tolist()}, "
              f"elite holdout MSE {dynamics.metadata['training']['elite_holdout_mse']:.4g}")
    metadata["dynamics"] = {"source": algo_config.dynamics or "fitted in this run",
                            "training": dynamics.metadata.get("training")}
    source = ModelRollouts(buffer, dynamics, algo, terminated, algo_config, algo_config.batch_size, algo_config.seed)
    return source, ModelBasedLearner(algo, source), dynamics


def _online_run(cfg, algo_config, device):
    from seqrl.data.transitions import ReplayBuffer
    from seqrl.training.online import EnvironmentSource, OnlineConfig, OnlineLearner, make_env

    if cfg.normalize_reward:
        raise SystemExit("--normalize_reward needs dataset returns; online training takes raw rewards")
    try:
        online = OnlineConfig(env_id=cfg.env_id or "InvertedPendulum-v5", random_steps=cfg.random_steps,
                              learning_starts=cfg.learning_starts, updates_per_step=cfg.updates_per_step,
                              buffer_size=min(cfg.buffer_size, algo_config.max_steps),
                              batch_size=algo_config.batch_size, seed=algo_config.seed)
        env = make_env(online)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    algo = build_algorithm(algo_config, obs_dim, act_dim, action_low=env.action_space.low,
                           action_high=env.action_space.high, device=device)
    replay = ReplayBuffer(obs_dim, act_dim, online.buffer_size, device=device, seed=algo_config.seed,
                          mc_returns_discount=_mc_discount(algo_config))
    source = EnvironmentSource(online, algo, replay, env)
    limit = env.spec.max_episode_steps if env.spec is not None else None
    metadata = {"env_id": online.env_id, "env_kwargs": {}, "max_episode_steps": limit, "eval_env": None,
                "env_module": None, "ref_min_score": None, "ref_max_score": None, "ref_source": None,
                "online": {"random_steps": online.random_steps, "learning_starts": online.learning_starts,
                           "updates_per_step": online.updates_per_step, "buffer_size": online.buffer_size}}
    print(f"online: {online.env_id} (obs {obs_dim}, actions {act_dim}, time limit {limit}), "
          f"{online.random_steps:,} random steps, updates from {online.learning_starts:,} stored transitions")
    return algo, source, OnlineLearner(algo, source), metadata, {"env_id": online.env_id}


# ---------------------------------------------------------------------------- Trajectory Transformer
def make_accelerator():
    from accelerate import Accelerator

    # `accelerate launch --cpu --num_processes N` uses the simple launcher: it sets MASTER_ADDR
    # for N > 1 but starts ONE process (no WORLD_SIZE). Refuse rather than silently train alone.
    if os.environ.get("MASTER_ADDR") and "WORLD_SIZE" not in os.environ \
            and os.environ.get("ACCELERATE_USE_CPU", "").lower() == "true":
        raise SystemExit("`accelerate launch --cpu --num_processes N` runs a single process; for N CPU processes use "
                         "`accelerate launch --multi_gpu --num_processes N recipes/train_tt.py` or torchrun")
    # Without cpu=True, each CPU process of a multi-process launch believes it is alone.
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    expected = int(os.environ.get("WORLD_SIZE", "1"))
    if accelerator.num_processes != expected:
        raise SystemExit(f"launched {expected} processes but Accelerate sees {accelerator.num_processes}")
    return accelerator


def train_tt(argv, description: str = "") -> dict:
    """Tokenize the dataset into windows, train the GPT-style model with Accelerate, save the
    TrajectoryModel (weights + discretizer + metadata + card) to OUTPUT_DIR/model."""
    config = parse_config(TTConfig, argv, description=description or __doc__,
                          default_config=lambda dataset: starting_yaml(TT, False, dataset))
    check_ranges(config, TT_MINIMUMS)
    threads = configure_threads(config.threads)
    accelerator = make_accelerator()
    seed_everything(config.seed + accelerator.process_index)
    out = Path(config.output_dir or f"outputs/tt/{output_name(config.dataset)}")

    episodes = load_episodes(config.dataset, config.env_id, config.ref_min_score, config.ref_max_score)
    tokenizer = TokenizerConfig(discount=config.discount, termination_penalty=config.termination_penalty,
                                n_bins=config.n_bins, method=config.discretizer, context=config.context,
                                max_path_length=config.max_path_length or time_limit(episodes))
    with accelerator.main_process_first():  # one process writes the token cache, the others read it
        windows = TokenWindows(episodes, tokenizer)
    model_config = TrajectoryTransformerConfig(
        observation_dim=episodes.observation_dim, action_dim=episodes.action_dim, vocab_size=config.n_bins,
        block_size=config.context * (episodes.observation_dim + episodes.action_dim + 2) - 1,
        n_layer=config.n_layer, n_head=config.n_head, n_embd=config.n_embd, embd_pdrop=config.dropout,
        attn_pdrop=config.dropout, resid_pdrop=config.dropout, action_weight=config.action_weight,
        reward_weight=config.reward_weight, value_weight=config.value_weight)
    torch.manual_seed(config.seed)  # identical initial weights on every process
    model = TrajectoryTransformerModel(model_config)
    seed_everything(config.seed + accelerator.process_index)

    steps = official_updates(config, len(windows))
    if config.max_steps is not None:
        steps = min(steps, config.max_steps)
    if accelerator.is_main_process:
        print(f"data: {episodes.summary()}")
        print(f"torch threads per process: {threads}")
        print(f"{len(windows):,} windows of {config.context} transitions; {model.num_parameters():,} parameters; "
              f"{steps:,} updates of batch {config.batch_size} on {accelerator.num_processes} process(es)")

    learner = TTLearner(model, config, len(windows), accelerator)
    batches = WindowBatches(windows, config.batch_size, config.seed, accelerator.process_index,
                            accelerator.num_processes, device=accelerator.device)
    loop = LoopConfig(max_steps=steps, log_every=config.log_every, save_every=config.save_every,
                      reuse_freed_memory=config.reuse_freed_memory)
    result = train(learner, batches, loop, out, accelerator=accelerator, resume=config.resume,
                   identity={"algorithm": TT, "data": config.dataset})

    if accelerator.is_main_process:
        last = result["history"][-1] if result["history"] else {}
        metadata = {
            **dataset_metadata(episodes, config.dataset),
            "tokenizer": {"method": config.discretizer, "n_bins": config.n_bins, "discount": config.discount,
                          "termination_penalty": config.termination_penalty, "context": config.context,
                          "max_path_length": windows.max_path_length},
            "training": {**to_dict(config), "steps": steps, "final_loss": last.get("loss"),
                         "final_losses_by_type": {k[5:]: v for k, v in last.items() if k.startswith("loss_")}},
        }
        trajectory_model = TrajectoryModel(accelerator.unwrap_model(learner.model).eval(), windows.discretizer, metadata)
        save_pretrained(trajectory_model, out / "model")
        save_training_metrics(out / "model", result["history"])
        print(f"saved {out / 'model'} (final loss {last.get('loss', float('nan')):.4f})")
        print(f"curves: {plot_runs([out], out / 'curves.png')}")
    accelerator.wait_for_everyone()
    return {**result, "output_dir": str(out)}
