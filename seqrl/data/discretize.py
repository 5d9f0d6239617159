"""Per-dimension discretization of the joined [s, a, r, V] columns (Trajectory Transformer).

Official TT (`trajectory/utils/discretization.py`, QuantileDiscretizer, the active rule of the
main branch): per dimension, every ceil(n/N)-th sorted value, plus the column max, are the bin
edges; a value maps to the largest edge it reaches, clipped to [0, N-1]; decoding returns the bin
midpoint. Everything runs in float64, as there (its joined array is float64 because the values
are): the edges, and the encoding of the float64 return-to-go column. seqrl encodes exactly the
same bins whenever the edges are distinct, and differs only where the official code breaks:

- Repeated edges (a constant column, sparse rewards, any value holding more than 1/N of the
  mass) leave the official bins empty ("rebin for sparse reward tasks"). Here each such atom gets
  its own bin, bins that hold no data are merged away, and a bin whose data is a single value
  decodes to that value: every bin is non-empty and atoms round-trip exactly.
- When ceil(n / ceil(n/N)) < N (small data: 250 rows and N = 100 give 84 edges), the official
  code indexes past its edges for the column max; here a dimension simply uses fewer bins
  (`n_bins`) and values at or above the max fall in the last one.
- `percentile` returns the centre of the bin where the CDF first exceeds p (the official
  helper reads one bin to the left).

All encode/decode/expectation ops are torch ops on the discretizer's device; `decode` returns
float32 centres (the model's and the environment's precision).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from seqrl.data.validation import DataError, check_finite

WEIGHTS_NAME = "discretizer.safetensors"
CONFIG_NAME = "discretizer.json"
METHODS = ("quantile", "uniform")


def _quantile_bins(col: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower edges and centres of one sorted float64 column."""
    n = len(col)
    q = np.concatenate([col[:: int(np.ceil(n / n_bins))], col[-1:]])  # the official edges
    values, counts = np.unique(q, return_counts=True)
    atoms = values[counts >= 2]
    after_atoms = np.nextafter(atoms, np.inf)
    lower = np.unique(np.concatenate([q[:-1], after_atoms[after_atoms <= col[-1]]]))
    # Merge bins that hold no data (e.g. between two adjacent atoms).
    first = np.searchsorted(col, lower, side="left")
    occupied = np.diff(np.r_[first, n]) > 0
    lower, first = lower[occupied], first[occupied]
    upper = np.r_[lower[1:], col[-1]]
    # A bin holding a single distinct value (an atom) decodes to that value, not a midpoint.
    single = np.searchsorted(col, col[first], side="right") == np.r_[first[1:], n]
    centres = np.where(single, col[first], (lower + upper) / 2)
    return lower, centres


def _uniform_bins(col: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = float(col[0]), float(col[-1])
    if lo == hi:
        return np.array([lo]), np.array([lo])
    edges = np.linspace(lo, hi, n_bins + 1)
    return edges[:-1], (edges[:-1] + edges[1:]) / 2


class Discretizer:
    """N bins per dimension; token N (== `stop_token`) is reserved for the TT stop token."""

    def __init__(self, lower_edges: torch.Tensor, centres: torch.Tensor, n_bins: torch.Tensor,
                 method: str, n_tokens: int, layout: dict | None = None):
        self.lower_edges = lower_edges.double()  # [N, D], rows past n_bins[d] are +inf
        self.centres = centres.double()          # [N, D], rows past n_bins[d] repeat the last centre
        self.n_bins = n_bins            # [D] long
        self.method = method
        self.N = int(n_tokens)
        self.layout = dict(layout or {})
        # searchsorted wants [D, N-1] rows of interior boundaries
        self._boundaries = self.lower_edges[1:].T.contiguous()
        self._centres_t = self.centres.T.float().contiguous()

    @property
    def stop_token(self) -> int:
        return self.N

    @property
    def dim(self) -> int:
        return self.lower_edges.shape[1]

    @property
    def device(self) -> torch.device:
        return self.lower_edges.device

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(cls, data, n_bins: int = 100, method: str = "quantile", layout: dict | None = None) -> "Discretizer":
        """Fit on joined data [n, D] (rows = transitions, columns = [s, a, r, V]), given as one
        array or as a list of [n, d_i] blocks side by side (no joined copy needed)."""
        if method not in METHODS:
            raise ValueError(f"unknown discretizer method {method!r}; choose one of {METHODS}")
        if n_bins < 2:
            raise ValueError(f"n_bins must be at least 2, got {n_bins}")
        blocks = data if isinstance(data, (list, tuple)) else [data]
        blocks = [np.asarray(b) for b in blocks]
        if any(b.ndim != 2 or len(b) != len(blocks[0]) for b in blocks) or len(blocks[0]) == 0:
            raise DataError(f"discretizer data must be non-empty [n, D] blocks, got shapes {[b.shape for b in blocks]}")
        check_finite({"discretizer data": b for b in blocks})
        columns = [b[:, j] for b in blocks for j in range(b.shape[1])]
        bin_fn = _quantile_bins if method == "quantile" else _uniform_bins
        d = len(columns)
        lower = np.full((n_bins, d), np.inf)
        centres = np.zeros((n_bins, d))
        counts = np.zeros(d, np.int64)
        for j in range(d):
            lo, c = bin_fn(np.sort(columns[j].astype(np.float64)), n_bins)
            counts[j] = len(lo)
            lower[: len(lo), j], centres[: len(lo), j] = lo, c
            centres[len(lo):, j] = c[-1]
        return cls(torch.from_numpy(lower), torch.from_numpy(centres), torch.from_numpy(counts), method, n_bins, layout)

    # ------------------------------------------------------------------ torch ops
    def _dims(self, dims) -> torch.Tensor:
        if dims is None:
            return torch.arange(self.dim, device=self.device)
        if isinstance(dims, slice):
            return torch.arange(self.dim, device=self.device)[dims]
        return torch.as_tensor(dims, device=self.device).reshape(-1)

    def encode(self, x, dims=None) -> torch.Tensor:
        """Values [..., d] -> long tokens [..., d] in [0, n_bins-1] (dims: which columns x holds)."""
        x = torch.as_tensor(x, device=self.device).to(torch.float64)
        idx = self._dims(dims)
        if x.shape[-1] != len(idx):
            raise ValueError(f"encode got {x.shape[-1]} columns but the discretizer selection has {len(idx)}")
        flat = x.reshape(-1, len(idx)).T.contiguous()  # [d, M]
        tokens = torch.searchsorted(self._boundaries[idx], flat, right=True)
        return tokens.T.reshape(x.shape)

    def decode(self, tokens, dims=None) -> torch.Tensor:
        """Tokens [..., d] -> bin centres [..., d]; stop/out-of-range tokens clamp to the last bin."""
        tokens = torch.as_tensor(tokens, device=self.device).long()
        idx = self._dims(dims)
        if tokens.shape[-1] != len(idx):
            raise ValueError(f"decode got {tokens.shape[-1]} columns but the discretizer selection has {len(idx)}")
        tokens = torch.minimum(tokens.clamp(min=0), self.n_bins[idx] - 1)
        return self._centres_t[idx, tokens]

    def expectation(self, probs: torch.Tensor, dim: int) -> torch.Tensor:
        """E[value] under probs [..., N] or [..., N+1] (the stop column is dropped, as official)."""
        return probs[..., : self.N] @ self.centres[:, dim].to(probs.dtype)

    def percentile(self, probs: torch.Tensor, p: float, dim: int) -> torch.Tensor:
        """Centre of the first bin whose CDF exceeds p."""
        cdf = probs[..., : self.N].cumsum(-1)
        idx = (cdf > p).to(torch.uint8).argmax(-1)
        return self.centres[:, dim].to(probs.dtype)[idx]

    # ------------------------------------------------------------------ io
    def to(self, device) -> "Discretizer":
        return Discretizer(self.lower_edges.to(device), self.centres.to(device), self.n_bins.to(device),
                           self.method, self.N, self.layout)

    def check_layout(self, **expected) -> None:
        """Raise if this discretizer was fitted for other dimensions (obs_dim, act_dim, ...)."""
        for key, value in expected.items():
            have = self.layout.get(key)
            if have is not None and have != value:
                raise DataError(f"discretizer was fitted with {key}={have}, but the data/model has {key}={value}")
        if "transition_dim" in expected and self.dim != expected["transition_dim"]:
            raise DataError(f"discretizer covers {self.dim} dimensions, but transitions have {expected['transition_dim']}")

    def save(self, directory) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({"lower_edges": self.lower_edges.cpu().contiguous(), "centres": self.centres.cpu().contiguous(),
                   "n_bins": self.n_bins.cpu().contiguous()}, str(directory / WEIGHTS_NAME))
        (directory / CONFIG_NAME).write_text(json.dumps(
            {"method": self.method, "n_tokens": self.N, "dim": self.dim, "layout": self.layout}, indent=2))

    @classmethod
    def load(cls, directory, device="cpu") -> "Discretizer":
        directory = Path(directory)
        if not (directory / WEIGHTS_NAME).exists() or not (directory / CONFIG_NAME).exists():
            raise FileNotFoundError(f"no discretizer in {directory} (expected {WEIGHTS_NAME} and {CONFIG_NAME})")
        cfg = json.loads((directory / CONFIG_NAME).read_text())
        t = load_file(str(directory / WEIGHTS_NAME), device=str(device))
        return cls(t["lower_edges"], t["centres"], t["n_bins"], cfg["method"], cfg["n_tokens"], cfg.get("layout"))

    def __repr__(self) -> str:
        return f"Discretizer({self.method}, N={self.N}, dims={self.dim}, bins used={self.n_bins.tolist()})"
