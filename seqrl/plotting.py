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


class PlotError(ValueError):
    """A run directory that cannot be plotted (one line)."""


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


def make_figure(runs: list[dict], metrics: list[str] | None = None):
    # a bare Figure, not pyplot: no display, and no change to the backend of a notebook calling this
    from matplotlib.figure import Figure

    metrics = metrics or loss_metrics(runs)
    with_eval = any(run["evaluations"] for run in runs)
    panels = len(metrics) + int(with_eval)
    if panels == 0:
        raise PlotError("nothing to plot: no loss metrics and no evaluations in these runs")
    cols = min(panels, 3)
    rows = -(-panels // cols)
    fig = Figure(figsize=(5 * cols, 3.6 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics):
        for run in runs:
            points = [(h["step"], h[metric]) for h in run["history"] if metric in h]
            if points:  # markers while the points are few enough to see (a single point needs one)
                ax.plot(*zip(*points), label=run["name"], marker="o" if len(points) <= 40 else None, markersize=3)
        ax.set(title=metric, xlabel="update")
    if with_eval:
        _plot_evaluations(axes[len(metrics)], runs)
    for ax in axes[panels:]:
        ax.set_visible(False)
    for ax in axes[:panels]:
        ax.grid(alpha=0.3)
    if len(runs) > 1 or with_eval:
        axes[len(metrics) if with_eval else 0].legend(fontsize="small")
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
    fig = make_figure([load_run(d) for d in run_dirs], metrics)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out
