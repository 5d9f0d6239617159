"""glibc heap settings: hand freed memory back after a large build, keep it during training.

glibc keeps freed blocks below its (adaptive, up to 32 MB) mmap threshold in the process heap, so
the temporaries of building a million-row dataset would stay counted in RSS for the whole run:
`release_free_memory` (`malloc_trim(0)`) returns them.

Training is the opposite case: every step allocates and frees the same large activations. Blocks
above the mmap threshold come from a fresh `mmap` each time (one zero-filled page fault per 4 KB, seen
as system time) and a heap top with more free memory than the trim threshold is returned to the OS
after every step, only to be faulted in again. `reuse_freed_memory` fixes both thresholds high, so
the blocks of one step serve the next: 1.2x faster Trajectory Transformer steps at batch 256 and
faster CQL updates (benchmarks/tt_train.py, benchmarks/value_based.py). The environment variables of
`reuse_freed_memory_env()` do the same for any program (the benchmarks give them to the peers too).

Both are no-ops where the C library is not glibc (macOS, musl, Windows).
"""

from __future__ import annotations

import ctypes
import functools
import sys

# mallopt parameter numbers from glibc's malloc.h
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc's upper limit for M_MMAP_THRESHOLD on 64-bit systems
TRIM_THRESHOLD_NEVER = 2**31 - 1  # the largest value mallopt's int takes: the heap top is kept


@functools.cache
def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim, libc.mallopt  # both exist on glibc only
        return libc
    except (OSError, AttributeError):
        return None


def release_free_memory() -> None:
    """Return the heap's free memory to the operating system (after building large arrays)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def reuse_freed_memory() -> bool:
    """Keep freed blocks (up to 32 MB each) in the heap for the next training step; True if applied.

    Process-wide and lasting; `release_free_memory` still hands free memory back when asked."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_NEVER)
    )


def reuse_freed_memory_env() -> dict[str, str]:
    """The glibc environment variables equivalent to `reuse_freed_memory()`, for another process."""
    return {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD_MAX), "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD_NEVER)}
