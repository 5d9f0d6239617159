"""Training curves and evaluation returns of one or more runs, as a PNG (`seqrl plot RUN_DIR ...`).

A run directory is a recipe's OUTPUT_DIR: `train_history.json` (every logged interval), optionally
`eval_history.json` (every evaluation) and `model/seqrl.json` (the dataset's mean return and reference
scores, drawn as the behaviour line and the normalized-score axis).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MAX_LOSS_PANELS = 6
# what a curve means where its shape misleads (keyed by algorithm and metric): shown under the title
NOTES = {
    ("iql", "value_loss"): "expectile loss of rewards x 1000 / return range: grows as V learns larger values",
    ("iql", "critic_loss"): "TD loss on scaled rewards: its size follows the scale, not divergence",
    ("cql", "cql_loss"): "alpha x (logsumexp Q(s, .) - Q(s, a_data)): falls as OOD actions are pushed down",
    ("cql", "critic_loss"): "TD loss + conservative penalty",
    ("bc", "actor_loss"): "MSE to the data's actions (NLL for a Gaussian actor)",
    ("awac", "actor_loss"): "advantage-weighted negative log-likelihood",
    ("iql", "actor_loss"): "exp(beta x advantage)-weighted negative log-likelihood",
    ("sac", "actor_loss"): "alpha log pi - Q",
}


class PlotError(ValueError):
    """A run directory that cannot be plotted (one line)."""


def run_labels(run_dirs) -> list[str]:
    """The shortest trailing part of each path that tells the runs apart (`iql/hopper` and
    `cql/hopper`, not `hopper` twice); a `model` folder stands for its run."""
    parts = [[p for p in Path(d).resolve().parts if p != "/"] for d in run_dirs]
    parts = [p[:-1] if p and p[-1] == "model" else p for p in parts]
    for k in range(1, max(map(len, parts), default=1) + 1):
        labels = ["/".join(p[-k:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [f"{label} ({i})" for i, label in enumerate(labels)]


def load_run(run_dir) -> dict[str, Any]:
    run_dir = Path(run_dir)
    history_file = run_dir / "train_history.json"
    if not history_file.exists():
        raise PlotError(f"{run_dir} has no train_history.json: give the output_dir of a seqrl training run")
    eval_file, meta_file = run_dir / "eval_history.json", run_dir / "model" / "seqrl.json"
    return {
        "name": run_dir.name if run_dir.name != "model" else run_dir.parent.name,
        "history": json.loads(history_file.read_text()),
        "evaluations": json.loads(eval_file.read_text()) if eval_file.exists() else [],
        "metadata": json.loads(meta_file.read_text()) if meta_file.exists() else {},
    }


def loss_metrics(runs: list[dict]) -> list[str]:
    """Every logged metric with "loss" in its name, the total `loss` first, in order of appearance."""
    names: list[str] = []
    for run in runs:
        for entry in run["history"]:
            names += [k for k in entry if "loss" in k and k not in names]
    return sorted(names, key=lambda k: k != "loss")[:MAX_LOSS_PANELS]


def algorithm(run: dict) -> str:
    return run["metadata"].get("algorithm") or "?"


def panels(runs: list[dict], metrics: list[str]) -> list[tuple[str | None, str]]:
    """(algorithm, metric) per panel: one panel per metric when every run is the same algorithm, one
    per algorithm and metric otherwise (IQL's critic_loss and CQL's measure different things)."""
    algos = sorted({algorithm(r) for r in runs})
    if len(algos) == 1:
        return [(None, m) for m in metrics]
    return [(a, m) for m in metrics for a in algos
            if any(algorithm(r) == a and any(m in h for h in r["history"]) for r in runs)][:MAX_LOSS_PANELS]


def make_figure(runs: list[dict], metrics: list[str] | None = None):
    # a bare Figure, not pyplot: no display, and no change to the backend of a notebook calling this
    from matplotlib.figure import Figure

    metrics = metrics or loss_metrics(runs)
    curves = panels(runs, metrics)
    with_eval = any(run["evaluations"] for run in runs)
    n_panels = len(curves) + int(with_eval)
    if n_panels == 0:
        raise PlotError("nothing to plot: no loss metrics and no evaluations in these runs")
    cols = min(n_panels, 3)
    rows = -(-n_panels // cols)
    fig = Figure(figsize=(5 * cols, 3.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (algo, metric) in zip(axes, curves):
        for run in runs:
            if algo is not None and algorithm(run) != algo:
                continue
            points = [(h["step"], h[metric]) for h in run["history"] if metric in h]
            if points:  # markers while the points are few enough to see (a single point needs one)
                ax.plot(*zip(*points), label=run["name"], marker="o" if len(points) <= 40 else None, markersize=3)
        note = NOTES.get((algo or algorithm(runs[0]), metric))
        ax.set(title=f"{algo.upper()} {metric}" if algo else metric, xlabel="update")
        if note:
            ax.text(0.5, 1.0, note, transform=ax.transAxes, ha="center", va="bottom", fontsize="x-small",
                    color="dimgray", wrap=True)
            ax.set_title(ax.get_title(), pad=14)
        if len(runs) > 1:
            ax.legend(fontsize="small")
    if with_eval:
        _plot_evaluations(axes[len(curves)], runs)
        axes[len(curves)].legend(fontsize="small")
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    for ax in axes[:n_panels]:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _plot_evaluations(ax, runs: list[dict]) -> None:
    """Mean return +- s.e. per evaluation; the behaviour data's mean return dashed; normalized scores on
    the right-hand axis when the first run has reference scores."""
    for run in runs:
        evals = [e for e in run["evaluations"] if "return_mean" in e]
        if not evals:
            continue
        steps = [e["step"] for e in evals]
        mean = [e["return_mean"] for e in evals]
        err = [e.get("return_stderr", 0.0) for e in evals]
        (line,) = ax.plot(steps, mean, marker="o", label=run["name"])
        ax.fill_between(steps, [m - s for m, s in zip(mean, err)], [m + s for m, s in zip(mean, err)],
                        color=line.get_color(), alpha=0.2)
    seen = set()
    for run in runs:
        dataset = run["metadata"].get("dataset") or {}
        if dataset.get("return_mean") is not None and dataset.get("source") not in seen:
            seen.add(dataset.get("source"))
            ax.axhline(dataset["return_mean"], linestyle="--", color="gray",
                       label=f"data: {dataset.get('source')}")
    ax.set(title="evaluation return", xlabel="update", ylabel="return")
    meta = runs[0]["metadata"]
    low, high = meta.get("ref_min_score"), meta.get("ref_max_score")
    if low is not None and high is not None and high != low:
        scale = 100.0 / (high - low)
        ax.secondary_yaxis("right", functions=(lambda r: (r - low) * scale, lambda s: s / scale + low)).set_ylabel(
            "normalized score")


def plot_runs(run_dirs, out, metrics: list[str] | None = None) -> Path:
    """Write the figure of these runs to `out` (PNG, or any format matplotlib knows by suffix)."""
    runs = [load_run(d) for d in run_dirs]
    for run, label in zip(runs, run_labels(run_dirs)):
        run["name"] = label
    fig = make_figure(runs, metrics)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out
