"""Hand freed heap memory back to the operating system after a large build.

glibc keeps freed blocks below its (adaptive, up to 32 MB) mmap threshold in the process heap, so
the temporaries of building a million-row dataset would stay counted in RSS for the whole run.
`malloc_trim(0)` returns them; elsewhere (macOS, musl, Windows) this is a no-op.
"""

from __future__ import annotations

import ctypes
import functools
import sys


@functools.cache
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_free_memory() -> None:
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
