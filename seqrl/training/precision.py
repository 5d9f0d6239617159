"""Mixed precision for the value-based updates: ``--precision bf16`` runs each update under
``torch.autocast`` in bfloat16 (weights, optimizer state and the network heads stay float32).

Worth it where the update is matmul-bound and the hardware has bf16 matrix units: CQL on a CPU with
AMX (CQL and AWAC 2.1x per update on 2 cores, benchmarks/README.md) or a GPU's tensor cores; the small,
overhead-bound updates (BC, IQL) gain nothing. Each loss term stays within 5% of float32 and the gradient keeps its direction (cosine > 0.99; tested).
"""

from __future__ import annotations

import contextlib

import torch

from seqrl.config import ConfigError

PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str, device: str) -> None:
    """One line before any work: an unknown precision, or bf16 on a GPU without it."""
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "bf16" and str(device).startswith("cuda") and not torch.cuda.is_bf16_supported():
        raise ConfigError("--precision bf16: this GPU has no bfloat16 support")


def update_precision(precision: str, device_type: str):
    """The context one update runs in."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16)
