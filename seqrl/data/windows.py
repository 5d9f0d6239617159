"""The Trajectory Transformer view of an EpisodeDataset: token windows.

Official TT (`trajectory/datasets/sequence.py`), reproduced here:
- each transition becomes D = obs_dim + act_dim + 2 tokens `[s, a, r, V]`, discretized per
  dimension; r is the reward with the termination penalty written over true terminals, V the
  reward-to-go of the rewards after r (`seqrl.data.returns`);
- a training window is `context` consecutive transitions of one episode starting at any
  step in `range(length - 1)`; rows past the episode end are the stop token N;
- the window is flattened to context*D tokens; X = tokens[:-1], Y = tokens[1:], and the loss
  mask (per row, then [:-1]) is 0 only for rows past `max_path_length - 1`, so stop tokens
  after a termination stay in the loss: the model learns to predict termination.

One documented difference: after a TRUNCATED episode end the padding rows are also masked
out of the loss (the episode went on; there is nothing to predict). Official TT keeps them,
which only matters for truncations shorter than `max_path_length` (with D4RL's 1000-step
time limit and max_path_length 1000 the two are identical).

The per-transition tokens are a `datasets` map over the EpisodeDataset, written to an Arrow
cache file named by a fingerprint of (data, discretizer, discount, penalty) and memory-mapped
on reuse; its tokens are read once into a compact uint8 array, from which windows are gathered
with vectorised numpy per batch.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seqrl.data.discretize import Discretizer
from seqrl.data.episodes import EpisodeDataset
from seqrl.cpu.memory import release_free_memory
from seqrl.data.returns import apply_termination_penalty, reward_to_go
from seqrl.data.validation import DataError


@dataclass
class TokenizerConfig:
    discount: float = 0.99
    termination_penalty: float | None = -100.0
    n_bins: int = 100
    method: str = "quantile"
    context: int = 10              # transitions per training window (official sequence_length)
    max_path_length: int | None = None  # None: the env's time limit, else the longest episode


def joined_blocks(episodes: EpisodeDataset, discount: float, penalty: float | None) -> list[np.ndarray]:
    """The `[s, a, r (penalised), V]` columns as side-by-side blocks, in EpisodeDataset row order."""
    a = episodes.arrays()
    starts, _ = episodes.episode_bounds()
    rewards = apply_termination_penalty(a["reward"], a["terminated"], penalty)
    values = reward_to_go(rewards, starts, discount)
    # r and V stay float64, as the official joined array: V is tokenized at full precision
    return [a["observation"], a["action"], rewards[:, None], values[:, None]]


def joined_columns(episodes: EpisodeDataset, discount: float, penalty: float | None) -> np.ndarray:
    """[n, D] float64 rows `[s, a, r (penalised), V]` in EpisodeDataset row order."""
    return np.concatenate(joined_blocks(episodes, discount, penalty), axis=1)


def default_cache_dir() -> Path:
    return Path(os.environ.get("SEQRL_CACHE", Path.home() / ".cache" / "seqrl")) / "tokens"


class TokenWindows(torch.utils.data.Dataset):
    """Training windows (X, Y, loss mask) of the Trajectory Transformer.

    `__getitems__` gathers a whole batch with numpy (the DataLoader uses it automatically).
    """

    def __init__(self, episodes: EpisodeDataset, config: TokenizerConfig | None = None,
                 discretizer: Discretizer | None = None, cache_dir=None):
        self.config = config = config or TokenizerConfig()
        self.obs_dim, self.act_dim = episodes.observation_dim, episodes.action_dim
        self.transition_dim = self.obs_dim + self.act_dim + 2
        layout = {"observation_dim": self.obs_dim, "action_dim": self.act_dim, "transition_dim": self.transition_dim}
        joined = joined_blocks(episodes, config.discount, config.termination_penalty)
        if discretizer is None:
            discretizer = Discretizer.fit(joined, config.n_bins, config.method, layout=layout)
        discretizer.check_layout(**layout)
        self.discretizer = discretizer
        self.N = discretizer.N

        starts, lengths = episodes.episode_bounds()
        max_steps = config.max_path_length or episodes.metadata.get("max_episode_steps") or int(lengths.max())
        self.max_path_length = int(max_steps)
        self.episode_starts, self.episode_lengths = starts, lengths
        self.episode_truncated = episodes.arrays()["truncated"][starts + lengths - 1]
        self._episodes_hf = episodes.hf
        tokens_dataset = self._tokenize(joined, starts, cache_dir)
        del self._episodes_hf
        self.cache_file = Path(tokens_dataset.cache_files[0]["filename"])
        # One compact in-memory copy (1 byte per token: a seventh of the float data) for per-batch
        # gathers across the file's many record batches; the mapping is then released so the file's
        # pages do not stay in memory beside it.
        self.tokens = _column_as_numpy(tokens_dataset, "tokens").reshape(-1, self.transition_dim)
        del tokens_dataset

        # Window index: official `for i in range(path_length - 1)` per episode, numbered episode by
        # episode; `window_position` finds a window's episode and start per batch (nothing per window).
        self.episode_windows = np.maximum(lengths - 1, 0)
        self.window_ends = np.cumsum(self.episode_windows)
        if self.window_ends[-1] == 0:
            raise DataError("no training windows: every episode has a single transition")
        release_free_memory()  # the tokenization's temporaries

    # ------------------------------------------------------------------ tokens
    def _fingerprint(self, joined: list[np.ndarray], starts: np.ndarray) -> str:
        # Content hash: the same data and settings find the same cache file in any process.
        h = hashlib.sha256()
        for block in joined:
            h.update(np.ascontiguousarray(block).data)
        h.update(np.ascontiguousarray(starts).data)
        for t in (self.discretizer.lower_edges, self.discretizer.centres, self.discretizer.n_bins):
            h.update(t.cpu().numpy().tobytes())
        h.update(repr((self.config.discount, self.config.termination_penalty, self.N)).encode())
        return h.hexdigest()[:24]

    def _tokenize(self, joined: list[np.ndarray], starts: np.ndarray, cache_dir):
        """`datasets` map: one token row per transition, cached by fingerprint."""
        from datasets import Dataset, Features, List, Value

        fingerprint = self._fingerprint(joined, starts)
        cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        cache_dir.mkdir(parents=True, exist_ok=True)
        cache_file = cache_dir / f"tokens-{fingerprint}.arrow"
        if cache_file.exists():
            return Dataset.from_file(str(cache_file))  # memory-mapped

        discretizer = self.discretizer

        def encode(batch, indices):
            lo, hi = indices[0], indices[-1] + 1
            rows = np.concatenate([block[lo:hi] for block in joined], axis=1)
            return {"tokens": discretizer.encode(rows).to(token_dtype).numpy()}

        # uint8 holds N <= 255 bins plus the stop token: half the memory of int16
        token_dtype, arrow_dtype = (torch.uint8, "uint8") if self.N <= 255 else (torch.int16, "int16")
        features = Features({"tokens": List(Value(arrow_dtype), length=self.transition_dim)})
        # Map over a zero-copy single-column view of the transitions; rows come from `joined`.
        rows_view = self._episodes_hf.select_columns(["reward"])
        return rows_view.map(
            encode, batched=True, batch_size=16384, with_indices=True, remove_columns=["reward"],
            features=features, cache_file_name=str(cache_file), new_fingerprint=fingerprint,
            desc="tokenizing transitions",
        )

    # ------------------------------------------------------------------ windows
    def __len__(self) -> int:
        return int(self.window_ends[-1])

    def window_position(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """(episode, start step) of window ids: the first episode whose cumulative window count
        exceeds the id (episodes of length 1 have none and are skipped)."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"window ids must lie in [0, {len(self)}), got [{indices.min()}, {indices.max()}]")
        episode = np.searchsorted(self.window_ends, indices, side="right")
        return episode, indices - (self.window_ends[episode] - self.episode_windows[episode])

    def __getitem__(self, i):
        x, y, m = self.__getitems__([i])
        return x[0], y[0], m[0]

    def __getitems__(self, indices):
        """X, Y [B, context*D - 1] long and loss mask [B, context*D - 1] float for window ids."""
        episode, start = self.window_position(indices)
        t = start[:, None] + np.arange(self.config.context)[None]            # step of each row
        length = self.episode_lengths[episode][:, None]
        inside = t < length
        rows = self.episode_starts[episode][:, None] + np.minimum(t, length - 1)
        tokens = self.tokens[rows].astype(np.int64)                            # [B, ctx, D]
        tokens[~inside] = self.N                                               # stop token
        row_mask = t <= self.max_path_length - 1                               # official
        row_mask &= inside | ~self.episode_truncated[episode][:, None]         # seqrl: not after truncation
        tokens = tokens.reshape(len(indices), -1)
        mask = np.repeat(row_mask, self.transition_dim, axis=1).astype(np.float32)
        tokens = torch.from_numpy(tokens)
        return tokens[:, :-1], tokens[:, 1:], torch.from_numpy(mask[:, :-1])

    @staticmethod
    def collate(batch):
        """Identity collate: `__getitems__` already returns a stacked batch."""
        return batch


def _column_as_numpy(ds, name: str) -> np.ndarray:
    col = ds.data.column(name)
    chunks = [c.flatten().to_numpy(zero_copy_only=False) for c in col.chunks]
    return np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
