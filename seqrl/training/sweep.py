"""`seqrl sweep SWEEP.yaml`: a grid or random search over algorithms, datasets, options and seeds on
Ray Tune (`pip install 'seqrl[sweep]'`). Every trial is the normal run assembly (`seqrl train ALGO`)
with its own output directory, checkpoints and evaluation; Tune schedules the trials over the
CPUs of a local Ray instance started by the command, or of a cluster (`address: auto`).

    # sweep.yaml
    name: iql-expectile                  # output in outputs/sweeps/NAME (or output_dir:)
    grid:                                # every combination of these
      algorithm: [iql]
      dataset: [seqrl/invertedpendulum/medium-v0]
      expectile: [0.7, 0.9]
    search:                              # optional: sampled options (num_samples draws per grid point)
      actor_lr: {loguniform: [1e-4, 1e-3]}
    num_samples: 1
    seeds: [0, 1, 2]                     # each seed is a trial; the table is mean ± s.e. over seeds
    options: {max_steps: 5000, eval_episodes: 10}   # the same for every trial
    cpus_per_trial: 1
    address: null                        # "auto": join the running Ray cluster (`ray start` on each node)

The table (OUTPUT/results.md, results.json) and plot (OUTPUT/results.png) give each configuration's
final normalized score (return where the data has no reference scores), mean ± s.e. over seeds.
Run the same command again after an interruption: Tune restores the experiment, finished trials
are kept and each unfinished one continues from its last checkpoint (`--resume`).
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path
from typing import Any

import yaml

from seqrl.config import ConfigError, read_yaml_mapping
from seqrl.training.seeds import mean_and_stderr

SWEEP_KEYS = {"name", "output_dir", "grid", "search", "num_samples", "seeds", "options", "cpus_per_trial", "address",
              "metric"}
SAMPLERS = {"uniform", "loguniform", "choice", "randint"}
RUN_ONLY = {"output_dir", "resume", "seed", "seeds", "config"}  # set by the sweep for every trial


def read_sweep(path) -> dict[str, Any]:
    """The sweep file, checked: known keys, lists in the grid, samplers in the search, option names that
    the algorithms take. Errors name the problem (before Ray starts)."""
    path = Path(path)
    sweep = read_yaml_mapping(path, "sweep file")
    unknown = sorted(set(sweep) - SWEEP_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown sweep keys {unknown}; known: {sorted(SWEEP_KEYS)}")
    grid = sweep.get("grid") or {}
    if not isinstance(grid, dict) or any(not isinstance(v, list) or not v for v in grid.values()):
        raise ConfigError(f"{path}: grid maps each option to a non-empty list of values")
    search = sweep.get("search") or {}
    for key, spec in search.items():
        if not (isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in SAMPLERS):
            raise ConfigError(f"{path}: search.{key} must be one of {sorted(SAMPLERS)} with its arguments, "
                              f"e.g. {{loguniform: [1e-4, 1e-3]}}")
    seeds = sweep.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or len(set(seeds)) != len(seeds) or \
            not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ConfigError(f"{path}: seeds is a list of distinct non-negative integers")
    options = sweep.get("options") or {}
    algorithms = grid.get("algorithm") or [options.get("algorithm", sweep.get("algorithm"))]
    if not all(algorithms):
        raise ConfigError(f"{path}: name the algorithm(s) in grid.algorithm")
    clash = sorted((set(grid) | set(search) | set(options)) & RUN_ONLY)
    if clash:
        raise ConfigError(f"{path}: {clash} are set by the sweep for each trial (use `seeds:` for seeds)")
    _check_options(path, algorithms, (set(grid) | set(search) | set(options)) - {"algorithm"})
    name = sweep.get("name") or path.stem
    return {"name": name, "output_dir": str(Path(sweep.get("output_dir") or f"outputs/sweeps/{name}").resolve()),
            "grid": grid, "search": search, "num_samples": int(sweep.get("num_samples", 1)), "seeds": seeds,
            "options": {k: v for k, v in options.items() if k != "algorithm"},
            "cpus_per_trial": float(sweep.get("cpus_per_trial", 1)), "address": sweep.get("address"),
            "metric": sweep.get("metric")}


def _check_options(path, algorithms, names) -> None:
    import dataclasses

    from seqrl.algos import ALGORITHMS
    from seqrl.training.run import combined_config_class

    for algorithm in algorithms:
        if algorithm not in ALGORITHMS:
            raise ConfigError(f"{path}: the sweep trains value-based algorithms ({', '.join(ALGORITHMS)}), "
                              f"not {algorithm!r}")
        known = {f.name for f in dataclasses.fields(combined_config_class(algorithm)[0])}
        unknown = sorted(set(names) - known)
        if unknown:
            raise ConfigError(f"{path}: {algorithm} has no options {unknown}")


def _param_space(sweep: dict) -> dict:
    from ray import tune

    space = {k: tune.grid_search(v) for k, v in sweep["grid"].items()}
    for key, spec in sweep["search"].items():
        kind, args = next(iter(spec.items()))
        space[key] = getattr(tune, kind)(args) if kind == "choice" else getattr(tune, kind)(*args)
    space["seed"] = tune.grid_search(sweep["seeds"])
    return space


def label(params: dict) -> str:
    """A configuration as the table shows it: its parameters, sorted."""
    return ", ".join(f"{k}={f'{v:.4g}' if isinstance(v, float) else v}" for k, v in sorted(params.items()))


def trial_name(params: dict) -> str:
    """A readable, filesystem-safe name of a trial's parameters (its output folder)."""
    def short(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    text = ",".join(f"{k}={short(v)}" for k, v in sorted(params.items()))
    return re.sub(r"[^A-Za-z0-9=.,_-]+", "_", text)[:180]


def run_trial(params: dict, options: dict, root: str, cpus: int) -> dict:
    """One trial: the run assembly with the sweep's options, this trial's values and its own folder;
    `--resume` makes an interrupted trial continue from its last checkpoint."""
    from seqrl.training.run import starting_yaml, main

    params = dict(params)
    algorithm = params.pop("algorithm")
    out = Path(root) / "trials" / trial_name({"algorithm": algorithm, **params})
    out.mkdir(parents=True, exist_ok=True)
    base = starting_yaml(algorithm, online=False, dataset=params.get("dataset", options.get("dataset")))
    values = {**(yaml.safe_load(Path(base).read_text()) if base else {}), **options, **params}
    values |= {"output_dir": str(out), "resume": True, "threads": values.get("threads") or max(1, int(cpus))}
    (out / "trial.yaml").write_text(yaml.safe_dump(values, sort_keys=True))
    result = main(algorithm, ["--config", str(out / "trial.yaml")])
    evaluation = result.get("eval") or {}
    return {**{k: v for k, v in evaluation.items() if isinstance(v, (int, float))}, "steps": result.get("steps"),
            "trial_dir": str(out)}


def _trainable(config: dict) -> None:
    from ray import tune

    sweep = config.pop("__sweep__")
    tune.report(run_trial(config, sweep["options"], sweep["output_dir"], sweep["cpus_per_trial"]))


def run_sweep(sweep: dict, num_cpus: int | None = None) -> dict:
    """Run (or resume) the sweep on Ray Tune; returns the summary table's rows."""
    try:
        import ray
        from ray import tune
    except ImportError:
        raise ConfigError("seqrl sweep runs on Ray Tune: pip install 'seqrl[sweep]'") from None
    out = Path(sweep["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    if not ray.is_initialized():
        ray.init(address=sweep["address"], num_cpus=None if sweep["address"] else num_cpus,
                 include_dashboard=False, log_to_driver=False, configure_logging=False)
    options = dict(sweep, grid=None, search=None)
    trainable = tune.with_resources(_trainable, {"cpu": sweep["cpus_per_trial"]})
    space = {**_param_space(sweep), "__sweep__": options}
    experiment = out / "tune"
    if tune.Tuner.can_restore(str(experiment)):
        print(f"sweep: resuming {experiment}")
        tuner = tune.Tuner.restore(str(experiment), trainable, resume_errored=True, param_space=space)
    else:
        tuner = tune.Tuner(trainable, param_space=space,
                           tune_config=tune.TuneConfig(num_samples=sweep["num_samples"]),
                           run_config=tune.RunConfig(name="tune", storage_path=str(out), verbose=1))
    grid = tuner.fit()
    trials = []
    for result in grid:
        params = {k: v for k, v in (result.config or {}).items() if k != "__sweep__"}
        if result.error is not None or not result.metrics:
            trials.append({"params": params, "error": str(result.error).splitlines()[0] if result.error else "no result"})
            continue
        trials.append({"params": params, "metrics": {k: v for k, v in result.metrics.items()
                                                     if k in ("normalized_score", "return_mean", "steps", "trial_dir")}})
    rows = summarize(trials, sweep.get("metric"))
    (out / "results.json").write_text(json.dumps({"trials": trials, "rows": rows}, indent=1, default=str))
    (out / "results.md").write_text(markdown(rows))
    plot(rows, out / "results.png")
    return {"rows": rows, "trials": trials, "output_dir": str(out)}


def summarize(trials: list[dict], metric: str | None = None) -> list[dict]:
    """One row per configuration (the parameters without the seed): mean ± s.e. over its seeds."""
    groups: dict[str, list[dict]] = {}
    for t in trials:
        key = label({k: v for k, v in t["params"].items() if k != "seed"})
        groups.setdefault(key, []).append(t)
    rows = []
    for key, members in groups.items():
        done = [t for t in members if "metrics" in t]
        name = metric or ("normalized_score" if done and all("normalized_score" in t["metrics"] for t in done)
                          else "return_mean")
        values = [float(t["metrics"][name]) for t in done if t["metrics"].get(name) is not None]
        mean, se = mean_and_stderr(values) if values else (math.nan, math.nan)
        rows.append({"config": key, "metric": name, "mean": mean, "stderr": se, "seeds": len(values),
                     "failed": len(members) - len(done),
                     "per_seed": {str(t["params"].get("seed")): t["metrics"].get(name) for t in done}})
    return sorted(rows, key=lambda r: -r["mean"] if not math.isnan(r["mean"]) else math.inf)


def markdown(rows: list[dict]) -> str:
    lines = ["| configuration | metric | mean ± s.e. over seeds | seeds | failed |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['metric']} | {r['mean']:.1f} ± {r['stderr']:.1f} | {r['seeds']} | {r['failed']} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * max(1, len(rows))))
    names = [r["config"] for r in rows][::-1]
    ax.barh(names, [r["mean"] for r in rows][::-1], xerr=[r["stderr"] for r in rows][::-1], color="tab:blue", capsize=3)
    ax.set_xlabel(f"{rows[0]['metric'] if rows else 'score'} (mean ± s.e. over seeds)")
    ax.set_title("sweep results")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="seqrl sweep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep", metavar="SWEEP.yaml", help="the sweep file (format above)")
    p.add_argument("--num_cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all; "
                   "ignored with address: auto)")
    args = p.parse_args(argv)
    try:
        sweep = read_sweep(args.sweep)
        result = run_sweep(sweep, args.num_cpus)
    except ConfigError as err:
        raise SystemExit(f"error: {err}") from None
    print(markdown(result["rows"]))
    print(f"table: {result['output_dir']}/results.md, plot: {result['output_dir']}/results.png")
    return result
