"""glibc heap settings of seqrl/data/memory.py: what training keeps, what a build gives back."""

import ctypes
import sys

import pytest
import torch

from seqrl.data import memory

pytestmark = pytest.mark.skipif(memory._libc() is None, reason="glibc only")


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def mallinfo() -> MallInfo2:
    libc = memory._libc()
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc < 2.33 has no mallinfo2")
    libc.mallinfo2.restype = MallInfo2
    return libc.mallinfo2()


def test_training_heap_keeps_a_step_sized_block_and_trim_still_releases_it():
    assert sys.platform.startswith("linux")
    assert memory.reuse_freed_memory() is True
    size = 20 * 2**20  # an activation of a batch-256 TT step is this order; below the 32 MB limit
    before = mallinfo()
    x = torch.empty(size // 4)  # float32
    x.fill_(1.0)
    during = mallinfo()
    slack = 2**20  # other threads (test servers, GC) may allocate or free small blocks meanwhile
    # served from the heap, not by a fresh mmap that would be faulted in and unmapped every step
    assert during.hblkhd < before.hblkhd + size - slack
    assert during.uordblks >= before.uordblks + size - slack
    del x
    after = mallinfo()
    # freed but kept: the next step reuses it instead of asking the OS again
    assert after.arena >= during.arena and after.fordblks >= size - slack
    # what the dataset builders call: the kept pages go back to the OS (the heap may keep its address
    # range when the block is not at its top; malloc_trim then releases the pages inside it)
    rss_kept = rss_bytes()
    memory.release_free_memory()
    assert rss_bytes() < rss_kept - size // 2
