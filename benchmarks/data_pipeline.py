"""Data pipeline at scale: a 1M-transition Hopper-shaped dataset -> token windows + TransitionBuffer.

Reports wall-clock seconds per stage and peak RSS against the raw array size, as JSON
(benchmarks/results/data_pipeline.json) and one markdown line on stdout for the README.
Synthetic arrays (Hopper shapes: obs 11, act 3, 1000-step time limit with ~2% terminations).

    python benchmarks/data_pipeline.py [--transitions 1000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> None:
    """Linux: restart the high-water mark, so data generation's temporaries don't count."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def synthetic_hopper(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    terminals = rng.uniform(size=n) < 0.002
    step = np.zeros(n, np.int64)  # time-limit truncation after 1000 steps without termination
    timeouts = np.zeros(n, bool)
    count = 0
    for i in range(n):  # cheap: 1M simple iterations, only to place realistic timeouts
        count += 1
        if terminals[i]:
            count = 0
        elif count == 1000:
            timeouts[i], count = True, 0
        step[i] = count
    return {
        "observations": rng.normal(size=(n, 11)).astype(np.float32),
        "next_observations": rng.normal(size=(n, 11)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(n, 3)).astype(np.float32),
        "rewards": rng.normal(3, 1, size=n).astype(np.float32),
        "terminals": terminals, "timeouts": timeouts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transitions", type=int, default=1_000_000, help="dataset size (default 1M)")
    parser.add_argument("--out", default="benchmarks/results/data_pipeline.json", help="JSON output path")
    args = parser.parse_args()

    # Import the libraries first so the baseline RSS holds them and not the data.
    import datasets  # noqa: F401
    import pyarrow  # noqa: F401
    import torch  # noqa: F401

    from seqrl.data import EpisodeDataset, TokenizerConfig, TokenWindows, TransitionBuffer
    from seqrl.cpu.memory import release_free_memory

    # The whole pipeline once on a tiny dataset: modules imported lazily and first-call set-up
    # (about 100 MB of code and library state) belong to the baseline, not to the data.
    with tempfile.TemporaryDirectory() as cache:
        tiny = EpisodeDataset.from_d4rl(synthetic_hopper(3000, seed=1))
        TokenWindows(tiny, TokenizerConfig(), cache_dir=cache).__getitems__(np.arange(8))
        TransitionBuffer(tiny).sample(8)
        del tiny
    release_free_memory()
    baseline = rss_mb()  # the libraries, before any data exists
    data = synthetic_hopper(args.transitions)
    release_free_memory()  # the generator's freed temporaries are not the pipeline's
    raw_mb = sum(v.nbytes for v in data.values()) / 2**20
    reset_peak_rss()
    timings, memory = {}, {}

    def mark(stage: str) -> None:  # MB above the baseline after each stage: held now, and peak so far
        memory[stage] = {"rss": round(rss_mb() - baseline, 1), "peak_so_far": round(peak_rss_mb() - baseline, 1)}

    mark("raw arrays")
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        episodes = EpisodeDataset.from_d4rl(data, metadata={"env_id": "Hopper-v5", "max_episode_steps": 1000})
        del data  # the EpisodeDataset's Arrow columns share these buffers where they can
        timings["episode_dataset_s"] = time.perf_counter() - t0
        mark("episode dataset")

        t0 = time.perf_counter()
        windows = TokenWindows(episodes, TokenizerConfig(), cache_dir=cache)
        timings["token_windows_s"] = time.perf_counter() - t0
        mark("token windows")

        del windows  # a run holds one view: the second build reads the cache the first one wrote
        t0 = time.perf_counter()
        windows = TokenWindows(episodes, TokenizerConfig(), cache_dir=cache)
        timings["token_windows_cached_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        buffer = TransitionBuffer(episodes)
        timings["transition_buffer_s"] = time.perf_counter() - t0
        mark("transition buffer")

        t0 = time.perf_counter()
        for _ in range(100):
            windows.__getitems__(np.random.randint(len(windows), size=256))
        timings["window_batch_256_ms"] = (time.perf_counter() - t0) * 10
        t0 = time.perf_counter()
        for _ in range(1000):
            buffer.sample(256)
        timings["buffer_sample_256_us"] = (time.perf_counter() - t0) * 1000

    total = timings["episode_dataset_s"] + timings["token_windows_s"] + timings["transition_buffer_s"]
    peak = peak_rss_mb()
    result = {
        "transitions": args.transitions, "windows": len(windows), "raw_mb": round(raw_mb, 1),
        "baseline_rss_mb": round(baseline, 1), "peak_rss_mb": round(peak, 1),
        "peak_rss_over_baseline_mb": round(peak - baseline, 1),
        "peak_over_raw": round((peak - baseline) / raw_mb, 2), "total_build_s": round(total, 2),
        **{k: round(v, 3) for k, v in timings.items()}, "memory_mb_by_stage": memory,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(f"| data pipeline | {args.transitions:,} transitions ({raw_mb:.0f} MB raw) | build {total:.1f} s "
          f"(cached windows {timings['token_windows_cached_s']:.1f} s) | peak RSS {peak - baseline:.0f} MB above the "
          f"libraries' {baseline:.0f} MB, raw data included = {result['peak_over_raw']}x raw |")


if __name__ == "__main__":
    main()
