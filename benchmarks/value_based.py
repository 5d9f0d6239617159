"""Value-based update throughput: seqrl against d3rlpy 2.8.1 on the same data, same networks.

Both libraries train BC, IQL, CQL and AWAC on one random Hopper-shaped dataset (obs 11, act 3,
100k transitions in episodes of at most 1000 steps, some ending in a termination, the rest in a
time-out), saved once as .npz by this script. seqrl reads it with `EpisodeDataset.from_d4rl` into a
`TransitionBuffer`; d3rlpy builds an `MDPDataset` from the same arrays (s' is the next row inside
an episode on both sides).

Settings, identical on both sides (see SPECS):
    BC    2x256 deterministic tanh actor, batch 256 (MSE)
    IQL   2x256 actor, twin critics and value, batch 256 (Gaussian actor, cosine actor lr)
    CQL   3x256 actor and twin critics, 10 sampled actions per source, batch 256
          (learned SAC temperature, fixed conservative weight 10: d3rlpy's reproduction setting)
    AWAC  4x256 actor and twin critics, batch 1024, lambda 1, actor weight decay 1e-4, one policy
          sample for the advantage (AWAC paper / d3rlpy reproduction; seqrl `AWACConfig.paper()`)
Heap: seqrl's training loop keeps freed blocks in the heap between updates (seqrl/cpu/memory.py);
by default every worker of both libraries gets the same glibc thresholds as environment variables
(`--malloc default` keeps glibc's own on both). No observation or reward scaling on either side. d3rlpy runs eagerly (`compile_graph=False`, its
default; its compiled mode targets CUDA).

What one step is: sampling a batch from the library's own buffer plus one `update` call
(seqrl: `TransitionBuffer.sample` + `algo.update`; d3rlpy: `sample_transition_batch` +
`algo.update`, the two lines inside d3rlpy's `fit` loop, without its logger and progress bar).
Dataset building and imports are outside the timing.

Each measurement is a fresh subprocess (benchmarks/_seqrl_worker.py in the current environment,
benchmarks/_d3rlpy_worker.py in benchmarks/.venv-d3rlpy, created on first use) with the same
thread count (`torch.set_num_threads`, OMP/MKL threads; default 1), a warm-up, then N timed steps.
It reports wall-clock updates/s and CPU-time updates/s (process CPU time, which is robust to
other processes sharing the cores). Runs interleave per algorithm, seqrl and d3rlpy alternating
(ABBA order across repeats); the table gives medians over repeats and the ratio seqrl / d3rlpy.

    python benchmarks/value_based.py                 # defaults: 3 repeats, all four algorithms
    python benchmarks/value_based.py --quick         # a smoke run (1-2 minutes)
    python benchmarks/value_based.py --algos iql,cql --repeats 5 --updates 200
    python benchmarks/value_based.py --threads 2 --seqrl eager,compile,bf16 --profile 5
        # seqrl's --compile and --precision bf16 beside eager, each step's time split into
        # matmul / elementwise / autograd / optimizer / sampling / Python (benchmarks/profiling.py)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
D3RLPY_VENV = HERE / ".venv-d3rlpy"
D3RLPY_VERSION = "2.8.1"
TORCH_VERSION = "2.13.0"
OBS_DIM, ACT_DIM = 11, 3

ALGOS = ("bc", "iql", "cql", "awac")
# The settings both workers read: network sizes, batch sizes, numbers of sampled actions.
SPECS: dict[str, dict[str, Any]] = {
    "bc": dict(hidden=(256, 256), batch_size=256),
    "iql": dict(hidden=(256, 256), batch_size=256),
    "cql": dict(hidden=(256, 256, 256), batch_size=256, n_action_samples=10,
                conservative_weight=10.0),
    "awac": dict(hidden=(256, 256, 256, 256), batch_size=1024, n_action_samples=1, lam=1.0,
                 actor_weight_decay=1e-4),
}
# Timed steps per run: 3-10 s of CPU per run at one thread for the slower side.
DEFAULT_UPDATES = {"bc": 800, "iql": 250, "cql": 30, "awac": 40}
QUICK_UPDATES = {"bc": 100, "iql": 30, "cql": 5, "awac": 5}


# ---------------------------------------------------------------------------- shared by workers

def configure_threads(threads: int) -> None:
    """Same thread settings on both sides; call before the heavy imports where possible."""
    import torch

    torch.set_num_threads(threads)


def time_updates(sample: Callable[[], Any], update: Callable[[Any], Any], warmup: int,
                 updates: int, profile: int = 0) -> dict[str, Any]:
    """Warm-up steps, then `updates` timed steps of sample + update. Wall and process CPU time,
    in total and for the sampling part, plus per-step medians (robust to short stalls); with
    `profile` > 0, that many more steps under torch.profiler (benchmarks/profiling.py)."""
    from torch.utils.flop_counter import FlopCounterMode

    for _ in range(warmup):
        update(sample())
    perf, cpu = time.perf_counter, time.process_time
    step_wall = np.empty(updates)
    step_cpu = np.empty(updates)
    sample_wall = sample_cpu = 0.0
    w_start, c_start = perf(), cpu()
    w_prev, c_prev = w_start, c_start
    for i in range(updates):
        batch = sample()
        w_mid, c_mid = perf(), cpu()
        update(batch)
        w_now, c_now = perf(), cpu()
        sample_wall += w_mid - w_prev
        sample_cpu += c_mid - c_prev
        step_wall[i] = w_now - w_prev
        step_cpu[i] = c_now - c_prev
        w_prev, c_prev = w_now, c_now
    wall, cpu_s = w_prev - w_start, c_prev - c_start
    # one more step, with torch counting the matmul FLOPs it runs (the arithmetic floor); after the
    # timing, because a compiled update runs slower once it has run under the counter's mode
    with FlopCounterMode(display=False) as counter:
        update(sample())
    flops = counter.get_total_flops()
    breakdown = None
    if profile:
        from profiling import marked_sample, profile_steps

        marked = marked_sample(sample)
        breakdown = profile_steps(lambda: update(marked()), profile, float(np.median(step_wall)))
    return {
        "profile": breakdown,
        "updates": updates, "warmup": warmup, "wall_s": wall, "cpu_s": cpu_s,
        "sample_wall_s": sample_wall, "sample_cpu_s": sample_cpu,
        "step_wall_median_s": float(np.median(step_wall)),
        "step_cpu_median_s": float(np.median(step_cpu)),
        "updates_per_s": updates / wall, "cpu_updates_per_s": updates / max(cpu_s, 1e-12),
        "gflop_per_update": flops / 1e9, "gflop_per_s": flops / 1e9 * updates / wall,
    }


def worker_args(description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--algo", required=True, choices=ALGOS)
    p.add_argument("--data", required=True, help=".npz made by benchmarks/value_based.py")
    p.add_argument("--updates", type=int, required=True)
    p.add_argument("--warmup", type=int, required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", type=int, default=0, help="steps profiled after the timing (0: none)")
    p.add_argument("--precision", default="fp32", help="seqrl only: fp32 or bf16 (autocast)")
    p.add_argument("--compile", action="store_true", help="seqrl only: losses through torch.compile")
    p.add_argument("--stack", type=int, default=0, help="seqrl only: K seeds stacked in one update (0: one "
                   "algorithm; benchmarks/multi_seed.py)")
    return p.parse_args()


def emit(result: dict[str, Any]) -> None:
    """The worker's answer: one tagged JSON line on stdout (log lines can't pass for it)."""
    print("RESULT " + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------- dataset

def make_dataset(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random Hopper-shaped arrays, D4RL layout: episodes of 20-1000 steps; an episode shorter
    than 1000 steps ends in a termination half the time, otherwise in a time-out; one that
    reaches 1000 steps times out. The last episode is cut where the data ends (a time-out)."""
    rng = np.random.default_rng(seed)
    terminals = np.zeros(n, np.float32)
    timeouts = np.zeros(n, np.float32)
    pos = 0
    while pos < n:
        length = min(int(rng.integers(20, 1001)), n - pos)
        end = pos + length - 1
        if length < 1000 and end < n - 1 and rng.uniform() < 0.5:
            terminals[end] = 1.0
        else:
            timeouts[end] = 1.0
        pos += length
    return {
        "observations": rng.normal(size=(n, OBS_DIM)).astype(np.float32),
        "actions": rng.uniform(-1.0, 1.0, size=(n, ACT_DIM)).astype(np.float32),
        "rewards": rng.normal(1.0, 1.0, size=n).astype(np.float32),
        "terminals": terminals,
        "timeouts": timeouts,
    }


# ---------------------------------------------------------------------------- d3rlpy venv

def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_d3rlpy_venv(venv: Path = D3RLPY_VENV) -> Path:
    """Create the peer's venv if missing: the local CPU torch first (so pip never pulls a CUDA
    build), then d3rlpy (it pins gymnasium 1.0.0, so it can't share the main venv) and gymnasium's
    MuJoCo extra, which the quality and fine-tuning workers need for the v5 environments."""
    py = venv_python(venv)
    check = [str(py), "-c", "import warnings; warnings.simplefilter('ignore'); "
             "import d3rlpy, torch, mujoco; print(d3rlpy.__version__, torch.__version__)"]
    if py.exists():
        r = subprocess.run(check, capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.split()[:1] == [D3RLPY_VERSION]:
            return py
    print(f"creating {venv} (torch {TORCH_VERSION} CPU, d3rlpy {D3RLPY_VERSION}) ...", flush=True)
    base = shutil.which("python3.11") or sys.executable
    if not py.exists():
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
    pip = [str(py), "-m", "pip", "install", "--quiet"]
    subprocess.run(pip + [f"torch=={TORCH_VERSION}"], check=True)
    subprocess.run(pip + [f"d3rlpy=={D3RLPY_VERSION}", "gymnasium[mujoco]"], check=True)
    r = subprocess.run(check, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"d3rlpy venv does not import:\n{r.stderr[-2000:]}")
    print(f"d3rlpy venv ready: {r.stdout.strip()}", flush=True)
    return py


# ---------------------------------------------------------------------------- driver

def run_worker(impl: str, python: Path, algo: str, data: Path, updates: int, warmup: int,
               threads: int, seed: int, malloc_env: dict[str, str], stack: int = 0,
               profile: int = 0, precision: str = "fp32", compile: bool = False
               ) -> dict[str, Any]:
    script = HERE / f"_{impl}_worker.py"
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONWARNINGS="ignore", TQDM_DISABLE="1", **malloc_env)
    if impl == "seqrl":
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    else:
        env.pop("PYTHONPATH", None)
    cmd = [str(python), str(script), "--algo", algo, "--data", str(data), "--updates",
           str(updates), "--warmup", str(warmup), "--threads", str(threads), "--seed", str(seed)]
    if stack:
        cmd += ["--stack", str(stack)]
    if profile:
        cmd += ["--profile", str(profile)]
    if precision != "fp32":
        cmd += ["--precision", precision]
    if compile:
        cmd += ["--compile"]
    with tempfile.TemporaryDirectory() as cwd:  # d3rlpy may write logs into the working dir
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    if r.returncode != 0 or not lines:
        raise RuntimeError(f"{impl} {algo} worker failed (rc {r.returncode}):\n"
                           f"{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def seqrl_key(variant: str) -> str:
    """How a seqrl variant is named in the results: "seqrl" (eager fp32) or "seqrl[compile]" etc."""
    return "seqrl" if variant == "eager" else f"seqrl[{variant}]"


SEQRL_VARIANTS_HELP = ("comma-separated seqrl variants, each timed against the same d3rlpy runs: eager "
                       "(default), compile (--compile: losses through torch.compile), bf16 (--precision "
                       "bf16), bf16+compile; d3rlpy runs eagerly in float32 (its compiled mode is CUDA-only)")


def parse_variants(text: str) -> list[str]:
    """`--seqrl eager,bf16+compile` -> ["eager", "bf16+compile"]; an unknown one is a one-line error."""
    variants = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in variants if not set(v.split("+")) <= {"eager", "compile", "bf16"}]
    if bad or not variants:
        raise SystemExit(f"--seqrl: unknown variants {bad}; use eager, compile, bf16 or bf16+compile")
    return variants


def variant_options(variant: str) -> list[str]:
    """The seqrl command-line options a variant adds."""
    return (["--precision", "bf16"] if "bf16" in variant else []) + (["--compile"] if "compile" in variant else [])


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over repeats of each run's rates."""
    return {
        "updates_per_s": median([r["updates_per_s"] for r in runs]),
        "cpu_updates_per_s": median([r["cpu_updates_per_s"] for r in runs]),
        "median_step_updates_per_s": median([1.0 / r["step_wall_median_s"] for r in runs]),
        "median_step_cpu_updates_per_s": median([1.0 / max(r["step_cpu_median_s"], 1e-12)
                                                 for r in runs]),
        "sample_share_cpu": median([r["sample_cpu_s"] / max(r["cpu_s"], 1e-12) for r in runs]),
        "update_only_cpu_updates_per_s": median(
            [r["updates"] / max(r["cpu_s"] - r["sample_cpu_s"], 1e-12) for r in runs]),
        "cpu_over_wall": median([r["cpu_s"] / r["wall_s"] for r in runs]),
        "gflop_per_update": median([r["gflop_per_update"] for r in runs]),
        "gflop_per_s": median([r["gflop_per_s"] for r in runs]),
        "runs": runs,
    }


def fmt(x: float) -> str:
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


LABELS = {
    "bc": "BC (2x256, batch 256, deterministic)",
    "iql": "IQL (2x256, batch 256)",
    "cql": "CQL (3x256, 10 sampled actions, batch 256)",
    "awac": "AWAC (4x256, batch 1024, paper style)",
}


def markdown_table(result: dict[str, Any]) -> str:
    t = result["settings"]["threads"]
    rows = [
        f"| algorithm | seqrl upd/s | d3rlpy upd/s | ratio | seqrl upd/CPU-s | d3rlpy upd/CPU-s "
        f"| ratio (CPU) | d3rlpy time in sampling | GFLOP/update seqrl, d3rlpy | GFLOP/s seqrl, d3rlpy |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    variants = result["settings"].get("seqrl_variants", ["seqrl"])
    for algo, a in result["algorithms"].items():
        for impl in variants:
            s, d, suffix = a[impl], a["d3rlpy"], impl[len("seqrl"):]
            label = LABELS[algo] + (f" {suffix.strip('[]')}" if suffix else "")
            rows.append(
                f"| {label} | {fmt(s['updates_per_s'])} | {fmt(d['updates_per_s'])} "
                f"| {a['ratio_wall' + suffix]:.2f}x | {fmt(s['cpu_updates_per_s'])} "
                f"| {fmt(d['cpu_updates_per_s'])} | {a['ratio_cpu' + suffix]:.2f}x "
                f"| {100 * d['sample_share_cpu']:.0f}% | {s['gflop_per_update']:.2f}, {d['gflop_per_update']:.2f} "
                f"| {s['gflop_per_s']:.0f}, {d['gflop_per_s']:.0f} |")
    rows.append("")
    rows.append(
        f"Medians of {result['settings']['repeats']} interleaved runs per cell, each a fresh "
        f"process with {t} torch thread{'s' if t != 1 else ''}; an update includes sampling the "
        f"batch from the library's own buffer. CPU-time rates (updates per second of process CPU "
        f"time) are the contention-robust figure on a shared machine.")
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algos", default=",".join(ALGOS),
                   help=f"comma-separated subset of {','.join(ALGOS)} (default: all)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved runs per library and "
                   "algorithm (default 3)")
    p.add_argument("--updates", type=int, default=None,
                   help="timed updates per run for every algorithm (default per algorithm: "
                   + ", ".join(f"{k} {v}" for k, v in DEFAULT_UPDATES.items()) + ")")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed updates before timing (default: a tenth of --updates, at least 3)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch/OMP threads in every worker (default 1)")
    p.add_argument("--transitions", type=int, default=100_000, help="dataset size (default 100k)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 1 repeat, few updates (numbers are not meaningful)")
    p.add_argument("--out", default=str(HERE / "results" / "value_based.json"),
                   help="JSON output (default benchmarks/results/value_based.json)")
    p.add_argument("--malloc", choices=["reuse", "default"], default="reuse",
                   help="glibc heap settings of every worker: 'reuse' (default) gives both libraries the "
                   "thresholds seqrl's training loop sets (seqrl/cpu/memory.py), as environment "
                   "variables, so the ratio is like for like; 'default' keeps glibc's adaptive ones")
    p.add_argument("--profile", type=int, default=0, metavar="STEPS",
                   help="after the timing, profile STEPS more steps on both sides (torch.profiler): "
                   "matmul / elementwise / views / autograd / optimizer / sampling / Python per step, "
                   "and each matmul timed alone for the floor and ceiling (benchmarks/profiling.py)")
    p.add_argument("--seqrl", default="eager", metavar="VARIANTS", help=SEQRL_VARIANTS_HELP)
    p.add_argument("--d3rlpy-venv", default=str(D3RLPY_VENV), help="the peer's venv "
                   "(created if missing)")
    args = p.parse_args()
    malloc_env: dict[str, str] = {}
    if args.malloc == "reuse":
        from seqrl.cpu.memory import reuse_freed_memory_env

        malloc_env = reuse_freed_memory_env()

    variants = parse_variants(args.seqrl)
    variant_of = {seqrl_key(v): v for v in variants} | {"d3rlpy": "eager"}
    impls = list(variant_of)
    algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    unknown = sorted(set(algos) - set(ALGOS))
    if unknown:
        p.error(f"unknown algorithms {unknown}; choose from {list(ALGOS)}")
    repeats = 1 if args.quick else args.repeats
    per_algo = QUICK_UPDATES if args.quick else DEFAULT_UPDATES
    updates = {a: args.updates or per_algo[a] for a in algos}
    warmup = {a: args.warmup if args.warmup is not None else max(3, updates[a] // 10)
              for a in algos}

    pythons = {"seqrl": Path(sys.executable), "d3rlpy": ensure_d3rlpy_venv(Path(args.d3rlpy_venv))}
    t_start = time.perf_counter()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        data_path = Path(tmp) / "hopper_random.npz"
        data = make_dataset(args.transitions, args.seed)
        np.savez(data_path, **data)
        dataset_info = {
            "transitions": args.transitions, "observation_dim": OBS_DIM, "action_dim": ACT_DIM,
            "episodes": int(data["terminals"].sum() + data["timeouts"].sum()),
            "terminals": int(data["terminals"].sum()), "timeouts": int(data["timeouts"].sum()),
        }
        del data
        runs: dict[str, dict[str, list]] = {a: {i: [] for i in impls} for a in algos}
        for rep in range(repeats):
            order = impls if rep % 2 == 0 else impls[::-1]
            for algo in algos:
                for impl in order:
                    side, variant = ("d3rlpy" if impl == "d3rlpy" else "seqrl"), variant_of[impl]
                    r = run_worker(side, pythons[side], algo, data_path, updates[algo],
                                   warmup[algo], args.threads, args.seed + rep, malloc_env,
                                   profile=args.profile,
                                   precision="bf16" if "bf16" in variant else "fp32",
                                   compile="compile" in variant)
                    runs[algo][impl].append(r)
                    print(f"[{rep + 1}/{repeats}] {algo:4s} {impl:21s} "
                          f"{r['updates_per_s']:8.1f} upd/s  {r['cpu_updates_per_s']:8.1f} "
                          f"upd/CPU-s  (sampling {100 * r['sample_cpu_s'] / r['cpu_s']:.0f}% "
                          f"of CPU, {r['wall_s']:.1f} s)", flush=True)

    first = {impl: runs[algos[0]][impl][0] for impl in (impls[0], "d3rlpy")}
    result: dict[str, Any] = {
        "benchmark": "value-based update throughput, seqrl vs d3rlpy",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
        "versions": {"seqrl" if impl != "d3rlpy" else impl: first[impl]["versions"] for impl in first},
        "settings": {"threads": args.threads, "malloc": {"mode": args.malloc, "env": malloc_env},

                     "repeats": repeats, "updates": updates, "profile_steps": args.profile,
                     "seqrl_variants": impls[:-1],
                     "warmup": warmup, "seed": args.seed, "quick": args.quick,
                     "order": "per repeat and algorithm: the seqrl variants then d3rlpy on even "
                              "repeats, the reverse on odd ones",
                     "specs": {a: SPECS[a] for a in algos}},
        "dataset": dataset_info,
        "algorithms": {},
        "elapsed_s": None,
    }
    for algo in algos:
        d = summarize(runs[algo]["d3rlpy"])
        params = {impl: runs[algo][impl][0]["params"] for impl in ("d3rlpy", impls[0])}
        params["seqrl"] = params.pop(impls[0])
        entry: dict[str, Any] = {"d3rlpy": d, "params": params}
        for impl in impls[:-1]:
            s = summarize(runs[algo][impl])
            suffix = impl[len("seqrl"):]  # "" or "[compile]", ...
            entry[impl] = s
            entry["ratio_wall" + suffix] = s["updates_per_s"] / d["updates_per_s"]
            entry["ratio_cpu" + suffix] = s["cpu_updates_per_s"] / d["cpu_updates_per_s"]
            entry["ratio_update_only_cpu" + suffix] = (s["update_only_cpu_updates_per_s"]
                                                       / d["update_only_cpu_updates_per_s"])
        result["algorithms"][algo] = entry
        # scalars aside (temperatures, log-std scales), the networks must be the same size
        if abs(params["seqrl"]["total"] - params["d3rlpy"]["total"]) > 8:
            print(f"WARNING: {algo} networks differ in size: seqrl {params['seqrl']} vs "
                  f"d3rlpy {params['d3rlpy']}", flush=True)
    result["elapsed_s"] = round(time.perf_counter() - t_start, 1)
    if args.profile:
        from profiling import breakdown_line

        for algo in algos:  # the first repeat's profile of each side
            for impl in impls:
                prof = runs[algo][impl][0]["profile"]
                result["algorithms"][algo][f"profile_{impl}"] = prof
                print(f"{algo:4s} {impl:21s} {breakdown_line(prof)}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(markdown_table(result))
    print(f"\nwrote {out} ({result['elapsed_s']:.0f} s)")


if __name__ == "__main__":
    main()
