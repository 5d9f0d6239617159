"""Trajectory Transformer training throughput: seqrl vs transformers 4.30's TrajectoryTransformerModel.

The peer is the deprecated Hugging Face port (last shipped in transformers 4.30), a faithful copy of the
official forward. It runs in its own virtual environment (created on first use, see --peer-venv) with the
same torch; seqrl runs in this one. Each side runs as a subprocess of benchmarks/_tt_train_worker.py, the
same script for both, and the runs are interleaved (seqrl, peer, seqrl, peer, ...) so that load from
other processes hits both alike.

Shapes are Hopper's with the official hyperparameters: D = 16 (obs 11, act 3), block 159, 100 bins,
4 layers, 4 heads, width 128, dropout 0.1, AdamW (6e-4, betas 0.9/0.95, decay 0.1 on weights), grad clip
1.0. One timed step = forward with targets and loss mask, backward, clip, AdamW step.

Before timing, both sides load the same weights (the peer's, its parameter names mapped onto seqrl's)
and must give the same loss on the same tokens in eval mode (dropout off), before and after one full
training step, within 1e-4.

    python benchmarks/tt_train.py                 # defaults: batches 256 and 32, 3 repeats, 1 thread (~5-8 min)
    python benchmarks/tt_train.py --threads 2     # both cores (the README figures)
    python benchmarks/tt_train.py --quick         # smoke run: tiny batch, 1 step, prints only
    python benchmarks/tt_train.py --threads 0     # torch's default thread count (all cores) in both workers
    python benchmarks/tt_train.py --malloc default  # glibc's default heap thresholds on both sides

Heap: seqrl's training loop keeps freed blocks in the heap between steps (seqrl/cpu/memory.py). The
worker times the step outside that loop, so by default both sides get the same settings as environment
variables: the ratio is like for like, not a gain from the allocator.

Writes benchmarks/results/tt_train.json and prints markdown table lines for the README.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKER = HERE / "_tt_train_worker.py"
DEFAULT_VENV = HERE / ".venv-hf430"
DEFAULT_OUT = HERE / "results" / "tt_train.json"
PEER_REQUIREMENTS = ["torch==2.13.0", "transformers==4.30.2", "numpy<2"]
TOLERANCE = 1e-4
BLOCK = 159


def log(msg: str) -> None:
    print(msg, flush=True)


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


MALLOC_ENV: dict[str, str] = {}  # set by --malloc: the same heap settings for both sides


def peer_env() -> dict:
    env = dict(os.environ, **MALLOC_ENV)
    env.pop("PYTHONPATH", None)  # nothing from this environment may leak into the peer's
    return env


def seqrl_env() -> dict:
    env = dict(os.environ, **MALLOC_ENV)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def peer_works(python: Path) -> bool:
    probe = "import numpy, torch, transformers; from transformers import TrajectoryTransformerModel; " \
        "print(transformers.__version__, torch.__version__)"
    res = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, env=peer_env())
    return res.returncode == 0 and res.stdout.split()[:1] == ["4.30.2"]


def ensure_peer_venv(venv: Path) -> Path:
    python = venv_python(venv)
    if python.exists():
        if peer_works(python):
            return python
        raise SystemExit(f"{venv} exists but does not import transformers 4.30.2 with torch; remove it and rerun")
    log(f"creating the peer's venv at {venv} ({' '.join(PEER_REQUIREMENTS)}) ...")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # torch pinned to this machine's build, never a bare `torch`
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_REQUIREMENTS], check=True, env=peer_env())
    if not peer_works(python):
        raise SystemExit(f"the new venv {venv} does not import transformers 4.30.2")
    return python


def run_worker(python: Path, impl: str, mode: str, weights: Path, **kw) -> dict:
    cmd = [str(python), str(WORKER), "--impl", impl, "--mode", mode, "--weights", str(weights)]
    for key, value in kw.items():
        if value is not None:
            cmd += ["--" + key.replace("_", "-"), str(value)]
    env = peer_env() if impl == "hf430" else seqrl_env()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    lines = [line for line in res.stdout.splitlines() if line.startswith("{")]
    if res.returncode != 0 or not lines:
        raise SystemExit(f"worker failed: {' '.join(cmd)}\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}")
    return json.loads(lines[-1])


def check_same_loss(pythons: dict, weights: Path, tmp: Path, batch: int) -> dict:
    import torch  # this venv's torch, only to read the saved logits

    res = {}
    for impl in ("hf430", "seqrl"):
        res[impl] = run_worker(pythons[impl], impl, "check", weights, batch=batch, logits_out=tmp / f"{impl}.pt")
    logits = {impl: torch.load(tmp / f"{impl}.pt") for impl in res}
    out = {
        "batch": batch,
        "seqrl_loss": res["seqrl"]["loss"],
        "peer_loss": res["hf430"]["loss"],
        "loss_abs_diff": abs(res["seqrl"]["loss"] - res["hf430"]["loss"]),
        "seqrl_loss_after_step": res["seqrl"]["loss_after_step"],
        "peer_loss_after_step": res["hf430"]["loss_after_step"],
        "loss_after_step_abs_diff": abs(res["seqrl"]["loss_after_step"] - res["hf430"]["loss_after_step"]),
        "logits_max_abs_diff": (logits["seqrl"] - logits["hf430"]).abs().max().item(),
        "tolerance": TOLERANCE,
        "parameters": res["seqrl"]["parameters"],
    }
    out["equal"] = out["loss_abs_diff"] <= TOLERANCE and out["loss_after_step_abs_diff"] <= TOLERANCE
    if res["seqrl"]["parameters"] != res["hf430"]["parameters"]:
        out["equal"] = False
    return out


def summarize(runs: list[dict]) -> dict:
    steps = [t for r in runs for t in r["step_s"]]
    cpu = [t for r in runs for t in r["step_cpu_s"]]
    tokens = runs[0]["tokens_per_step"]
    med = statistics.median(steps)
    return {
        "tokens_per_s": round(tokens / med, 1),
        "median_step_s": round(med, 4),
        "median_step_cpu_s": round(statistics.median(cpu), 4),
        "run_median_step_s": [round(statistics.median(r["step_s"]), 4) for r in runs],
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs), 1),
        "rss_before_training_mb": round(statistics.median(r["rss_before_mb"] for r in runs), 1),
        "threads": runs[0]["threads"],
        "torch": runs[0]["torch"],
        "transformers": runs[0]["transformers"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeats", type=int, default=3, help="worker runs per side and batch size (interleaved)")
    ap.add_argument("--steps", type=int, default=2,
                    help="timed steps per run at the largest batch; smaller batches run proportionally more "
                    "(at most 4x), so every run covers a similar number of tokens")
    ap.add_argument("--warmup", type=int, default=3,
                    help="untimed steps at the start of every run (the heap settles over the first steps)")
    ap.add_argument("--batch-sizes", default="256,32", help="comma-separated")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads in both workers (0 = torch's default, all cores). Default 1: on a machine "
                    "shared with other jobs, 2 OpenMP threads on 2 cores keep waiting for a descheduled thread, "
                    "which made steps 2-5x slower and far noisier here")
    ap.add_argument("--check-batch", type=int, default=8, help="batch of the same-loss check")
    ap.add_argument("--quick", action="store_true", help="smoke run: batch 4, 1 repeat of 1 step; writes no JSON")
    ap.add_argument("--malloc", choices=["reuse", "default"], default="reuse",
                    help="glibc heap settings of both workers: 'reuse' (default) gives both sides the thresholds "
                    "seqrl's training loop sets (seqrl/cpu/memory.py), as environment variables; 'default' "
                    "leaves glibc's adaptive ones on both sides")
    ap.add_argument("--profile", type=int, default=0, metavar="STEPS",
                    help="profile STEPS more steps after the first repeat's timing on both sides (torch.profiler): "
                    "matmul / elementwise / views / autograd / optimizer / Python per step, and each matmul "
                    "timed alone for the floor and ceiling (benchmarks/profiling.py)")
    ap.add_argument("--peer-venv", type=Path, default=DEFAULT_VENV, help="the peer's venv (created if missing)")
    ap.add_argument("--out", type=Path, default=None, help=f"JSON output (default {DEFAULT_OUT.relative_to(ROOT)})")
    args = ap.parse_args()
    if args.malloc == "reuse":
        from seqrl.cpu.memory import reuse_freed_memory_env

        MALLOC_ENV.update(reuse_freed_memory_env())
    if args.quick:
        args.batch_sizes, args.repeats, args.steps, args.check_batch = "4", 1, 1, 2
    out_path = args.out if args.out is not None else (None if args.quick else DEFAULT_OUT)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    if not batch_sizes or min(batch_sizes) <= 0 or args.repeats <= 0 or args.steps <= 0:
        raise SystemExit("batch sizes, repeats and steps must be positive")

    t_start = time.perf_counter()
    pythons = {"seqrl": Path(sys.executable), "hf430": ensure_peer_venv(args.peer_venv.resolve())}
    tmp = Path(tempfile.mkdtemp(prefix="tt_train_"))
    weights = tmp / "peer_weights.pt"
    run_worker(pythons["hf430"], "hf430", "init", weights)

    check = check_same_loss(pythons, weights, tmp, args.check_batch)
    log(
        f"same weights, eval mode, batch {check['batch']}: loss seqrl {check['seqrl_loss']:.6f} "
        f"peer {check['peer_loss']:.6f} (|diff| {check['loss_abs_diff']:.1e}); after one step "
        f"{check['seqrl_loss_after_step']:.6f} vs {check['peer_loss_after_step']:.6f} "
        f"(|diff| {check['loss_after_step_abs_diff']:.1e}); logits max |diff| {check['logits_max_abs_diff']:.1e}"
    )
    if not check["equal"]:
        raise SystemExit(f"the two models do not compute the same loss (tolerance {TOLERANCE}): {check}")

    threads = args.threads if args.threads > 0 else None  # None: the worker keeps torch's default
    results = []
    for batch in batch_sizes:
        steps = min(4 * args.steps, math.ceil(args.steps * max(batch_sizes) / batch))
        runs = {"seqrl": [], "hf430": []}
        for r in range(args.repeats):
            for impl in ("seqrl", "hf430"):
                res = run_worker(pythons[impl], impl, "train", weights, batch=batch, steps=steps,
                                 warmup=args.warmup, threads=threads, seed=r,
                                 profile=args.profile if r == 0 and args.profile else None)
                runs[impl].append(res)
                log(f"batch {batch} repeat {r + 1}/{args.repeats} {impl:6s} step s "
                    f"{' '.join(f'{t:.2f}' for t in res['step_s'])}  peak RSS {res['peak_rss_mb']:.0f} MB")
        seqrl, peer = summarize(runs["seqrl"]), summarize(runs["hf430"])
        paired = [statistics.median(p["step_s"]) / statistics.median(s["step_s"])
                  for s, p in zip(runs["seqrl"], runs["hf430"])]
        results.append({
            "batch": batch,
            "tokens_per_step": batch * BLOCK,
            "timed_steps_per_run": steps,
            "repeats": args.repeats,
            "seqrl": seqrl,
            "peer": peer,
            "ratio_tokens_per_s": round(seqrl["tokens_per_s"] / peer["tokens_per_s"], 3),
            "ratio_paired_median": round(statistics.median(paired), 3),
            "ratio_cpu_time": round(peer["median_step_cpu_s"] / seqrl["median_step_cpu_s"], 3),
            "peak_rss_ratio": round(seqrl["peak_rss_mb"] / peer["peak_rss_mb"], 3),
        })
        if args.profile:
            from profiling import breakdown_line

            results[-1]["profile"] = {impl: runs[impl][0]["profile"] for impl in runs}
            for impl in runs:
                log(f"batch {batch} {impl:6s} {breakdown_line(runs[impl][0]['profile'])}")

    report = {
        "benchmark": "tt_train",
        "what": "Trajectory Transformer full training step (hopper shapes), seqrl vs transformers 4.30 port",
        "config": {
            "observation_dim": 11, "action_dim": 3, "transition_dim": 16, "block_size": BLOCK, "vocab_size": 100,
            "n_layer": 4, "n_head": 4, "n_embd": 128, "dropout": 0.1,
            "optimizer": "AdamW lr 6e-4 betas (0.9, 0.95) weight_decay 0.1 (weights only), grad clip 1.0",
            "warmup_steps": args.warmup, "threads": args.threads or "torch default",
            "malloc": {"mode": args.malloc, "env_both_sides": MALLOC_ENV},
        },
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "peer": {"package": "transformers==4.30.2", "class": "TrajectoryTransformerModel",
                 "venv": os.path.relpath(args.peer_venv.resolve(), ROOT)},
        "same_loss_check": check,
        "results": results,
        "notes": "tokens/s = batch * 159 / median step wall time over all timed steps of all runs; "
                 "ratio_paired_median pairs each seqrl run with the peer run right after it; ratio_cpu_time "
                 "uses process CPU time, less sensitive to other load on a shared machine; peak RSS is the "
                 "worker process's high-water mark (imports included; rss_before_training_mb is the base).",
        "runtime_s": round(time.perf_counter() - t_start, 1),
    }
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(report, indent=2) + "\n")
        log(f"wrote {out_path}")

    log("")
    log("| TT training (hopper, block 159) | batch | seqrl tokens/s | transformers 4.30 tokens/s | ratio | "
        "peak RSS seqrl / 4.30 |")
    log("|---|---|---|---|---|---|")
    for r in results:
        threads = r["seqrl"]["threads"]
        log(f"| full step, {threads} thread{'s' if threads > 1 else ''} | {r['batch']} | "
            f"{r['seqrl']['tokens_per_s']:,.0f} | {r['peer']['tokens_per_s']:,.0f} | {r['ratio_tokens_per_s']:.2f}x | "
            f"{r['seqrl']['peak_rss_mb'] / 1024:.2f} / {r['peer']['peak_rss_mb'] / 1024:.2f} GB |")
    log(f"(same loss on the same weights: |diff| {check['loss_abs_diff']:.1e}; runtime {report['runtime_s']:.0f} s)")


if __name__ == "__main__":
    main()
