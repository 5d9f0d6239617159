"""The value- and model-based view of an EpisodeDataset: (s, a, r, s', terminal) tensors.

The buffer lives on the training device and samples with `torch.randint` from its own
seeded generator: no per-sample Python in the hot loop. `terminals` is 1 only for a true
termination, so Q targets bootstrap through time-limit truncations.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from seqrl.data.episodes import EpisodeDataset
from seqrl.data.memory import release_free_memory
from seqrl.data.validation import DataError


@dataclass
class BufferConfig:
    normalize_observations: bool = False   # per-dimension mean/std (CORL, eps 1e-3)
    normalize_reward: bool = False         # IQL: r * scale / (max_return - min_return)
    reward_scale: float = 1000.0
    scale_actions: bool = True             # map actions from the env bounds to [-1, 1]
    observation_eps: float = 1e-3


class TransitionBuffer:
    FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals")

    def __init__(self, episodes: EpisodeDataset, config: BufferConfig | None = None,
                 device="cpu", seed: int = 0):
        self.config = config = config or BufferConfig()
        a = episodes.arrays()
        obs, nxt = a["observation"], a["next_observation"]
        actions = a["action"].astype(np.float32)
        rewards = a["reward"].astype(np.float32)

        self.action_low, self.action_high = _action_bounds(episodes.metadata, actions)
        if config.scale_actions:
            span = np.where(self.action_high > self.action_low, self.action_high - self.action_low, 1.0)
            actions = np.clip(2.0 * (actions - self.action_low) / span - 1.0, -1.0, 1.0)

        self.obs_mean = np.zeros(obs.shape[1], np.float32)
        self.obs_std = np.ones(obs.shape[1], np.float32)
        if config.normalize_observations:
            self.obs_mean = obs.mean(0).astype(np.float32)
            self.obs_std = (obs.std(0) + config.observation_eps).astype(np.float32)

        self.reward_multiplier = 1.0
        if config.normalize_reward:
            returns = episodes.episode_returns()
            spread = float(returns.max() - returns.min())
            if spread <= 0:
                raise DataError("cannot normalise rewards: every episode has the same return")
            self.reward_multiplier = config.reward_scale / spread

        self.device = torch.device(device)

        def to(x):
            # Zero-copy on CPU from the read-only Arrow buffers: the buffer never writes in place.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                return torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32, device=self.device)

        self.observations, self.next_observations = to(obs), to(nxt)
        if config.normalize_observations:
            self.observations = self.normalize_observations(self.observations)
            self.next_observations = self.normalize_observations(self.next_observations)
        self.actions = to(actions)
        self.rewards = to(rewards) * self.reward_multiplier
        self.terminals = to(a["terminated"].astype(np.float32))
        self.size = len(self.rewards)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        release_free_memory()  # the conversions' temporaries

    def __len__(self) -> int:
        return self.size

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        idx = torch.randint(self.size, (batch_size,), generator=self.generator, device=self.device)
        return {name: getattr(self, name)[idx] for name in self.FIELDS}

    def normalize_observations(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - torch.as_tensor(self.obs_mean, device=obs.device)) / torch.as_tensor(self.obs_std, device=obs.device)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def _action_bounds(metadata: dict, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Env action bounds from the metadata, else the data range (documented fallback)."""
    low, high = metadata.get("action_low"), metadata.get("action_high")
    if low is None or high is None:
        return actions.min(0).astype(np.float32), actions.max(0).astype(np.float32)
    low, high = np.asarray(low, np.float32), np.asarray(high, np.float32)
    if low.shape != (actions.shape[1],):
        raise DataError(f"metadata action bounds have shape {low.shape}, but actions have {actions.shape[1]} dims")
    return low, high
