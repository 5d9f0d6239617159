"""How many CPU threads torch uses. On a shared machine torch's default (every core, OpenMP
threads spinning while they wait) collapses: measured on 2 loaded cores (benchmarks/threads.py),
IQL ran 14 updates/s with 2 spinning threads, 35-43 with 2 passive ones (OMP_WAIT_POLICY=PASSIVE),
44 with one. So by default seqrl takes the CPUs this process may use minus the ones already busy
(the 1-minute load average), at least one, shared out among the processes of a multi-process
launch; `--threads N` overrides it on every command. It does not make OpenMP wait passively: on a
quiet machine that cost BC at 2 threads 44% of its speed (421 -> 235 updates/s, benchmarks/
value_based.py); set OMP_WAIT_POLICY=PASSIVE yourself to run more threads than free cores."""

from __future__ import annotations

import math
import os


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    cpus = available_cpus()
    try:
        busy = math.floor(os.getloadavg()[0])
    except OSError:
        busy = 0
    per_process = max(1, cpus - busy) // max(1, int(os.environ.get("WORLD_SIZE", "1")))
    return max(1, min(cpus, per_process))


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads (default: `default_threads()`); returns the number set."""
    import torch

    n = default_threads() if threads is None else int(threads)
    if n < 1:
        raise ValueError(f"--threads must be at least 1, got {n}")
    torch.set_num_threads(n)
    return n
