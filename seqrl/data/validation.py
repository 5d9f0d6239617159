"""Input checks that fail fast with one line naming the problem."""

from __future__ import annotations

import numpy as np


class DataError(ValueError):
    """Bad offline data: the message names the column and the problem."""


def check_rows(columns: dict[str, np.ndarray]) -> None:
    """All columns must have one row per transition."""
    lengths = {name: len(x) for name, x in columns.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"columns disagree on the number of transitions: {lengths}")


def check_finite(columns: dict[str, np.ndarray]) -> None:
    for name, x in columns.items():
        x = np.asarray(x)
        # checked in slices of rows: no bool temporary the size of the data
        if x.dtype.kind == "f" and not all(np.isfinite(x[i : i + 65536]).all() for i in range(0, len(x), 65536)):
            bad = np.argwhere(~np.isfinite(x))[0]
            kind = "NaN" if np.isnan(x[tuple(bad)]) else "inf"
            raise DataError(f"{name} contains {kind} (first at index {tuple(int(i) for i in bad)})")
