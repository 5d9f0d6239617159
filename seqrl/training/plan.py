"""Plan with a pretrained Trajectory Transformer (beam search) and evaluate it in its environment:
the run assembly of `seqrl plan` and `recipes/plan_tt.py`.

    seqrl plan                                      # the model `seqrl train tt` wrote
    seqrl plan --checkpoint user/tt-invertedpendulum --episodes 20
    seqrl plan --config recipes/configs/plan/invertedpendulum-medium.yaml --beam_width 16

The checkpoint is a local directory or a Hub repo id (through the huggingface_hub cache, so it
also works offline once downloaded). Episodes run in the environment recorded in the checkpoint
(env id, env kwargs, time limit); episode k is reset with seed SEED + k. The planner's return is
printed next to the behaviour dataset's mean return (from the checkpoint metadata), normalized
when reference scores are known, and everything is saved as JSON (default:
CHECKPOINT/../eval/plan_results.json for a local checkpoint, outputs/eval/OWNER--NAME/ for a Hub
one). Planner options come from --config (YAML) and can each be overridden by a flag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from seqrl.config import ConfigError, combine, parse_config, split, to_dict
from seqrl.evaluation import (EvalResult, EvaluationError, check_env_spaces, evaluate, evaluation_env,
                              normalized_score, reference_scores)
from seqrl.hub import CheckpointError, from_pretrained
from seqrl.planning.beam import BeamPlanner
from seqrl.planning.config import PlannerConfig
from seqrl.resources import default_config
from seqrl.threads import configure_threads

DEFAULT_CHECKPOINT = "outputs/tt/invertedpendulum-medium/model"  # train_tt.py's default output_dir + /model
DEFAULT_CONFIG = "plan/invertedpendulum-medium.yaml"  # shipped with the package (seqrl.resources)
TRAIN_COMMAND = "seqrl train tt"
# --help rewraps text, so it gets the prose of the docstring without the example commands
DESCRIPTION = " ".join(p for p in __doc__.split("\n\n") if not p.startswith("    "))


@dataclass
class RunConfig:
    """What to evaluate and where; the planner's own options are added from PlannerConfig."""

    checkpoint: str = field(default=DEFAULT_CHECKPOINT, metadata={"help": "trained model: a checkpoint directory or a Hub repo id 'user/name'"})
    revision: str | None = field(default=None, metadata={"help": "Hub revision (branch, tag or commit) of a repo-id checkpoint"})
    episodes: int = field(default=10, metadata={"help": "episodes to evaluate"})
    num_envs: int | None = field(default=None, metadata={"help": "environments planned for in one batch; default min(episodes, 10)"})
    seed: int = field(default=0, metadata={"help": "episode k is reset with seed + k; also seeds the planner"})
    device: str = field(default="auto", metadata={"help": "torch device for the model: auto (cuda if available), cpu, cuda, cuda:1, ..."})
    output: str | None = field(default=None, metadata={"help": "results JSON; default CHECKPOINT/../eval/plan_results.json"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads (default: the CPUs this process may use minus the busy ones, at least 1; see seqrl/threads.py)"})


def split_config(config) -> tuple[RunConfig, PlannerConfig]:
    """(RunConfig, PlannerConfig) from the combined config; PlannerConfig validates its values."""
    try:
        return split(config, RunConfig), split(config, PlannerConfig)
    except ValueError as err:
        raise ConfigError(f"bad planner option: {err}") from None


def resolve_device(device: str, threads: int | None) -> str:
    import torch

    print(f"torch threads: {configure_threads(threads)}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def is_hub_id(checkpoint: str) -> bool:
    """'user/name' that is not a local path: loaded from the Hub (or its cache)."""
    return (not Path(checkpoint).exists() and checkpoint.count("/") == 1
            and not checkpoint.startswith((".", "/", "~")))


def load_model(checkpoint: str, device: str, revision: str | None):
    if not is_hub_id(checkpoint) and not Path(checkpoint).is_dir():
        if checkpoint == DEFAULT_CHECKPOINT:
            hint = f"train it first with `{TRAIN_COMMAND}`"
        else:
            hint = f"train one first with `{TRAIN_COMMAND} --output_dir DIR` (it writes DIR/model) or give a Hub repo id"
        raise SystemExit(f"error: no checkpoint at {checkpoint}: {hint}")
    try:
        return from_pretrained(checkpoint, algorithm="trajectory_transformer", device=device, revision=revision)
    except CheckpointError as err:
        raise SystemExit(f"error: {err}") from None


def default_output(checkpoint: str) -> Path:
    if is_hub_id(checkpoint):  # never write into the Hub cache
        return Path("outputs") / "eval" / checkpoint.replace("/", "--") / "plan_results.json"
    return Path(checkpoint).parent / "eval" / "plan_results.json"


def behaviour_summary(metadata: dict) -> dict:
    """The behaviour dataset's mean return (and its normalized score when references exist)."""
    dataset = metadata.get("dataset") or {}
    summary = {"source": dataset.get("source"), "return_mean": dataset.get("return_mean"), "normalized": None}
    refs = reference_scores(metadata.get("ref_min_score"), metadata.get("ref_max_score"), metadata.get("ref_source"))
    if summary["return_mean"] is not None and refs is not None:
        summary["normalized"] = normalized_score(summary["return_mean"], refs[0], refs[1])
    return summary


def report(result: EvalResult, behaviour: dict) -> str:
    line = f"behaviour data ({behaviour['source']}): return mean "
    if behaviour["return_mean"] is None:
        line += "unknown (not in the checkpoint metadata)"
    else:
        line += f"{behaviour['return_mean']:.2f}"
        if behaviour["normalized"] is not None:
            line += f" | normalized {behaviour['normalized']:.1f}"
    return f"planner: {result}\n{line}"


def main(argv=None) -> EvalResult:
    from seqrl.training.run import one_line_errors

    with one_line_errors():
        return _plan(argv)


def _plan(argv) -> EvalResult:
    config = parse_config(combine("PlanConfig", RunConfig, PlannerConfig), argv, description=DESCRIPTION,
                          default_config=default_config(DEFAULT_CONFIG))
    run, planner_config = split_config(config)
    device = resolve_device(run.device, run.threads)

    model = load_model(run.checkpoint, device, run.revision)
    meta = model.metadata
    if model.discretizer is None:
        raise SystemExit(f"error: {run.checkpoint} carries no discretizer (a transformers TrajectoryTransformerModel "
                         f"checkpoint), so its tokens cannot become actions: fit its bins on the data it was trained on "
                         f"with `seqrl convert {run.checkpoint} --dataset ID --output DIR`, then plan with DIR")
    env = evaluation_env(meta)
    if not env["env_id"]:
        raise SystemExit(f"error: {run.checkpoint} records no env_id: cannot tell which environment to plan in")
    check_env_spaces(env, model.observation_dim, model.action_dim, f"the model of {run.checkpoint}")
    planner = BeamPlanner(model, planner_config, device, run.seed)
    print(f"planning with {model} on {device}: {to_dict(planner_config)}")

    try:
        result = evaluate(planner, env["env_id"], run.episodes, env_kwargs=env["env_kwargs"] or None,
                          max_episode_steps=env["max_episode_steps"], env_module=env["env_module"],
                          num_envs=run.num_envs, seed=run.seed,
                          ref_min_score=meta.get("ref_min_score"), ref_max_score=meta.get("ref_max_score"),
                          ref_source=meta.get("ref_source") or "recorded in the checkpoint",
                          progress=run.progress)
    except EvaluationError as err:
        raise SystemExit(f"error: {err}") from None
    behaviour = behaviour_summary(meta)
    result.extra = {"checkpoint": run.checkpoint, "revision": run.revision, "device": device,
                    "planner": to_dict(planner_config), "behaviour": behaviour}
    print(report(result, behaviour))
    path = result.to_json(run.output or default_output(run.checkpoint))
    print(f"saved {path}")
    return result
