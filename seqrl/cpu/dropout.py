"""Dropout for CPU training: `nn.Dropout`'s distribution with masks that are cheap to draw.

On CPU torch's generators run serially (`bernoulli_` draws a double per element), which made mask drawing
about a tenth of a Trajectory Transformer training step. Here each element takes 16 bits of a 64-bit draw
and is dropped when that 16-bit integer is below round(p * 2**16): the same distribution with p on a 2**-16
grid (0.1 -> 0.100006). Two ways to get the bits, chosen per process:

- the C kernel `dropout_kernel.c` (SplitMix64 at counters 0, 1, ...; compiled with the system's C compiler
  on first use and cached under $SEQRL_CACHE/kernels): it draws and applies the mask in one pass over
  memory, ~10x faster than the torch path below, and a backward pass redraws the mask from its seed, so
  nothing is stored for it. Used for contiguous float32 CPU tensors.
- otherwise numpy's SFC64 (`keep_mask`), a stored float mask, and torch's elementwise ops.

Both are seeded by one draw from torch's default generator, so masks follow `torch.manual_seed` and a
resumed run redraws the same masks. The two streams differ, so the same seed gives other masks with and
without the kernel; `SEQRL_CPU_KERNELS=0` turns the kernel off. Other devices use `F.dropout`.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import math
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

KERNEL_SOURCE = Path(__file__).with_name("dropout_kernel.c")
_FLAGS = ["-O3", "-march=native", "-fopenmp", "-shared", "-fPIC"]


def draw_seed() -> int:
    """One draw from torch's default generator: masks follow `torch.manual_seed` and resume exactly."""
    return int(torch.randint(0, 2**62, (1,)))


def drop_threshold(p: float) -> int:
    """Element dropped when its 16-bit uniform integer is below this: P(drop) = threshold / 2**16."""
    return round(p * 2**16)


def _kernel_dir() -> Path:
    return Path(os.environ.get("SEQRL_CACHE", Path.home() / ".cache" / "seqrl")) / "kernels"


def _cpu_identity() -> str:
    # -march=native code must not run on another CPU that shares the cache directory (a cluster's home)
    try:
        flags = [line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith(("flags", "Features"))]
        return flags[0] if flags else platform.processor()
    except OSError:
        return platform.processor()


def _compile(compiler: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".so.tmp")
    os.close(fd)
    try:
        subprocess.run([compiler, *_FLAGS, "-o", tmp, str(KERNEL_SOURCE)], check=True, capture_output=True, timeout=120)
        os.replace(tmp, target)  # atomic: processes compiling at the same time each install a whole file
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@functools.cache
def dropout_kernel():
    """The compiled `seqrl_dropout` function, or None where it cannot be built (no compiler, not Linux, or
    SEQRL_CPU_KERNELS=0); callers then take the torch path."""
    if os.environ.get("SEQRL_CPU_KERNELS", "1") == "0" or not sys.platform.startswith("linux"):
        return None
    compiler = os.environ.get("CC", "cc")
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
        key = hashlib.sha256(
            "\n".join([KERNEL_SOURCE.read_text(), compiler, version, " ".join(_FLAGS), _cpu_identity()]).encode()
        ).hexdigest()[:16]
        library = _kernel_dir() / f"dropout-{key}.so"
        if not library.exists():
            _compile(compiler, library)
        kernel = ctypes.CDLL(str(library)).seqrl_dropout
    except (OSError, subprocess.SubprocessError) as err:
        logger.info("seqrl: CPU dropout kernel unavailable (%s); using the torch path", err)
        return None
    kernel.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_float]
    kernel.restype = None
    return kernel


def uses_kernel(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype == torch.float32 and dropout_kernel() is not None


def kernel_dropout(x: torch.Tensor, p: float, seed: int, scale: float) -> torch.Tensor:
    """keep * x * scale with the kernel's mask for `seed` (a new tensor; x is made contiguous if needed)."""
    x = x.contiguous()
    y = torch.empty_like(x)
    dropout_kernel()(x.data_ptr(), y.data_ptr(), x.numel(), seed, drop_threshold(p), scale)
    return y


def keep_mask(shape: torch.Size, p: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The torch path's mask: 1. where kept, 0. where dropped, P(drop) = round(p * 2**16) / 2**16."""
    n = math.prod(shape)
    if device.type == "cpu":
        # numpy's SFC64 is 2.6x faster here than torch's serial Mersenne Twister
        bits = torch.from_numpy(np.random.SFC64(draw_seed()).random_raw((n + 3) // 4).view(np.int64))
    else:
        bits = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=device)
    # compared in float32 (int16 is exact there, not in bfloat16); a float mask multiplies vectorized, a bool one not
    keep = bits.view(torch.int16)[:n].view(shape).to(torch.float32).ge_(-(2**15) + drop_threshold(p))
    return keep if dtype == torch.float32 else keep.to(dtype)


def drop_entries(x: torch.Tensor, p: float) -> torch.Tensor:
    """x * keep, not rescaled (a new tensor): the attention's dropped probabilities."""
    if uses_kernel(x):
        return kernel_dropout(x, p, draw_seed(), 1.0)
    return keep_mask(x.shape, p, x.device, x.dtype).mul_(x)


class _KernelDropout(torch.autograd.Function):
    """y = x * keep / (1 - p); the backward redraws keep from the seed instead of storing it."""

    @staticmethod
    def forward(ctx, x, p):
        ctx.seed, ctx.p = draw_seed(), p
        return kernel_dropout(x, p, ctx.seed, 1.0 / (1.0 - p))

    @staticmethod
    def backward(ctx, grad_y):
        return kernel_dropout(grad_y, ctx.p, ctx.seed, 1.0 / (1.0 - ctx.p)), None


class Dropout(nn.Dropout):
    """`nn.Dropout` (same parameters, same distribution up to p on a 2**-16 grid) with cheaper masks on CPU;
    elsewhere `F.dropout`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu" or self.p >= 1.0 or not x.is_floating_point():
            return F.dropout(x, self.p, True, self.inplace)
        if uses_kernel(x):
            return _KernelDropout.apply(x, self.p)
        return x * keep_mask(x.shape, self.p, x.device, x.dtype).mul_(1.0 / (1.0 - self.p))
