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


# Beyond this magnitude a value is a corrupt record, not a measurement: one such reward makes IQL's
# return-based scale zero every other reward, one such observation makes a dimension's std infinite.
MAX_ABS_VALUE = 1e8


def check_finite(columns: dict[str, np.ndarray]) -> None:
    """No NaN, inf or absurd magnitudes (> MAX_ABS_VALUE) in any float column."""
    for name, x in columns.items():
        x = np.asarray(x)
        if x.dtype.kind != "f":
            continue
        # checked in slices of rows: no bool temporary the size of the data
        if not all(np.isfinite(x[i : i + 65536]).all() for i in range(0, len(x), 65536)):
            bad = np.argwhere(~np.isfinite(x))[0]
            kind = "NaN" if np.isnan(x[tuple(bad)]) else "inf"
            raise DataError(f"{name} contains {kind} (first at index {tuple(int(i) for i in bad)})")
        if len(x) and max(float(np.abs(x[i : i + 65536]).max()) for i in range(0, len(x), 65536)) > MAX_ABS_VALUE:
            bad = np.argwhere(np.abs(x) > MAX_ABS_VALUE)[0]
            raise DataError(f"{name} holds {float(x[tuple(bad)]):.3g} at index {tuple(int(i) for i in bad)}: beyond "
                            f"{MAX_ABS_VALUE:.0e}, a corrupt value; clean or rescale the data")
