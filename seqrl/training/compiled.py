"""``--compile``: each loss method of the algorithm through ``torch.compile``, so its forward and
backward run as generated, fused kernels instead of hundreds of small eager ops.

Only the losses: the optimizer step is already one fused Adam kernel and the target update a
foreach lerp, and compiling the whole update re-traced it as the update counter and schedules
moved. Pays a little where an update is bound by small ops (IQL and AWAC 1.1x on 2 CPU cores,
2.4x for AWAC with bf16); not where it is matmul-bound (CQL's sampled actions: 0.7x compiled on
CPU). Measured in benchmarks/README.md. The first updates spend seconds compiling; the maths is
the same (losses equal eager to float rounding, tested).
"""

from __future__ import annotations

import shutil

import torch

from seqrl.config import ConfigError

CXX = ("g++", "c++", "clang++")


def has_cxx() -> bool:
    """Inductor builds its CPU kernels with a C++ compiler."""
    return any(shutil.which(c) for c in CXX)


def check_compile(device: str) -> None:
    """One line before any work: inductor's CPU kernels need a C++ compiler."""
    if torch.device(device).type == "cpu" and not has_cxx():
        raise ConfigError("--compile on CPU needs a C++ compiler (g++ or clang++, e.g. Debian's build-essential); "
                          "none is on PATH")


def compile_losses(algo) -> None:
    """Replace `algo`'s loss methods (OfflineAlgorithm.loss_methods) with compiled ones, in place."""
    for name in algo.loss_methods:
        setattr(algo, name, torch.compile(getattr(algo, name)))
