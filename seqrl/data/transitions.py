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
from seqrl.data.returns import monte_carlo_returns
from seqrl.cpu.memory import release_free_memory
from seqrl.data.validation import DataError


@dataclass
class BufferConfig:
    normalize_observations: bool = False   # per-dimension mean/std (CORL, eps 1e-3)
    normalize_reward: bool = False         # IQL: r * scale / (max_return - min_return)
    reward_scale: float = 1000.0
    scale_actions: bool = True             # map actions from the env bounds to [-1, 1]
    observation_eps: float = 1e-3
    mc_returns_discount: float | None = None  # also store each row's Monte-Carlo return (Cal-QL)


class TransitionBuffer:
    FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals")

    def __init__(self, episodes: EpisodeDataset, config: BufferConfig | None = None,
                 device="cpu", seed: int = 0, statistics: dict | None = None):
        """`statistics` ({obs_mean, obs_std, reward_multiplier}) replaces the ones computed from
        this data: a policy fine-tuned on it keeps the normalisation it was trained with."""
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
        if config.normalize_observations and statistics is None:
            self.obs_mean = obs.mean(0).astype(np.float32)
            self.obs_std = (obs.std(0) + config.observation_eps).astype(np.float32)

        self.reward_multiplier = 1.0
        if statistics is not None:
            self.obs_mean = np.asarray(statistics["obs_mean"], np.float32).reshape(obs.shape[1])
            self.obs_std = np.asarray(statistics["obs_std"], np.float32).reshape(obs.shape[1])
            self.reward_multiplier = float(statistics["reward_multiplier"])
        elif config.normalize_reward:
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
        if config.normalize_observations or statistics is not None:
            self.observations = self.normalize_observations(self.observations)
            self.next_observations = self.normalize_observations(self.next_observations)
        self.actions = to(actions)
        self.rewards = to(rewards) * self.reward_multiplier
        self.terminals = to(a["terminated"].astype(np.float32))
        self.fields = self.FIELDS
        if config.mc_returns_discount is not None:
            starts, _ = episodes.episode_bounds()
            self.mc_returns = to(monte_carlo_returns(rewards * self.reward_multiplier, starts, config.mc_returns_discount))
            self.fields = self.FIELDS + ("mc_returns",)
        self.size = len(self.rewards)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        release_free_memory()  # the conversions' temporaries

    def __len__(self) -> int:
        return self.size

    def sample(self, batch_size: int, extra: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """A uniform batch of rows; `extra` columns (one row per transition, e.g. FQE's pi(s')) ride along."""
        idx = torch.randint(self.size, (batch_size,), generator=self.generator, device=self.device)
        return self.rows(idx) | {name: column[idx] for name, column in (extra or {}).items()}

    def rows(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """The rows at `idx` (any shape: (K, B) gives several seeds' batches at once)."""
        return {name: getattr(self, name)[idx] for name in self.fields}

    def raw_transitions(self) -> dict[str, torch.Tensor]:
        """Every row with observations and rewards as the environment gives them (actions stay in
        [-1, 1]): what a dynamics model learns."""
        mean = torch.as_tensor(self.obs_mean, device=self.device)
        std = torch.as_tensor(self.obs_std, device=self.device)
        return {"observations": self.observations * std + mean, "actions": self.actions,
                "rewards": self.rewards / self.reward_multiplier,
                "next_observations": self.next_observations * std + mean, "terminals": self.terminals}

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


class ReplayBuffer:
    """An appendable FIFO of transitions on the training device, with `TransitionBuffer`'s
    `sample(batch_size)` (online SAC, fine-tuning, model rollouts).

    Preallocated for `capacity` rows; `add` writes one transition (or a batch of rows) in place.
    `terminals` marks true terminations only (Q targets bootstrap through truncations);
    `truncations` marks where an episode stopped without terminating (time limit, or cut at a
    resume), so the stored rows can be split back into whole episodes (`episodes()`).
    """

    FIELDS = TransitionBuffer.FIELDS
    _STORED = FIELDS + ("truncations",)

    def __init__(self, obs_dim: int, act_dim: int, capacity: int = 1_000_000, device="cpu", seed: int = 0,
                 mc_returns_discount: float | None = None):
        """`mc_returns_discount`: also keep each row's Monte-Carlo return (Cal-QL), -inf (no bound)
        until `end_episode` writes the finished episode's returns."""
        if capacity < 1:
            raise DataError(f"replay capacity must be >= 1, got {capacity}")
        self.obs_dim, self.act_dim, self.capacity = int(obs_dim), int(act_dim), int(capacity)
        self.device = torch.device(device)
        self.mc_discount = mc_returns_discount
        self.fields, self.stored = self.FIELDS, self._STORED
        shapes = {"observations": (obs_dim,), "actions": (act_dim,), "rewards": (),
                  "next_observations": (obs_dim,), "terminals": (), "truncations": ()}
        if mc_returns_discount is not None:
            shapes["mc_returns"] = ()
            self.fields, self.stored = self.FIELDS + ("mc_returns",), self._STORED + ("mc_returns",)
        for name, shape in shapes.items():
            setattr(self, name, torch.zeros((self.capacity, *shape), dtype=torch.float32, device=self.device))
        self.size = 0  # rows filled
        self.position = 0  # next row to write
        self.total_added = 0
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)

    def __len__(self) -> int:
        return self.size

    def add(self, observation, action, reward, next_observation, terminated, truncated, mc_returns=None) -> None:
        """One transition (1-d observation/action, scalar flags) or a batch of rows (numpy or
        tensors; tensors already on the device are written without a host copy)."""
        def rows_of(x, *shape):
            t = x if torch.is_tensor(x) else torch.as_tensor(np.asarray(x, np.float32))
            return t.to(device=self.device, dtype=torch.float32).reshape(-1, *shape)

        obs = rows_of(observation, self.obs_dim)
        n = obs.shape[0]
        if n == 0:
            return
        if n > self.capacity:
            raise DataError(f"cannot add {n} rows to a replay buffer of capacity {self.capacity}")
        values = {
            "observations": obs,
            "actions": rows_of(action, self.act_dim),
            "rewards": rows_of(reward).reshape(n),
            "next_observations": rows_of(next_observation, self.obs_dim),
            "terminals": rows_of(terminated).reshape(n),
            "truncations": rows_of(truncated).reshape(n),
        }
        if self.mc_discount is not None:
            values["mc_returns"] = (rows_of(mc_returns).reshape(n) if mc_returns is not None
                                    else torch.full((n,), -torch.inf, device=self.device))
        rows = (self.position + torch.arange(n, device=self.device)) % self.capacity if n > 1 else self.position
        for name, value in values.items():
            getattr(self, name)[rows] = value
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)
        self.total_added += n

    def mark_truncated(self) -> None:
        """End the episode in progress at the last stored row (as when a run is cut)."""
        if self.size:
            last = (self.position - 1) % self.capacity
            if not self.terminals[last]:
                self.truncations[last] = 1.0

    def end_episode(self, length: int) -> None:
        """The episode whose `length` rows were added last has ended: write their Monte-Carlo
        returns (once per episode, one host round trip; nothing when returns are not kept)."""
        if self.mc_discount is None or length < 1:
            return
        rows = (self.position - 1 - torch.arange(min(length, self.size) - 1, -1, -1, device=self.device)) % self.capacity
        rewards = self.rewards[rows].double().cpu().numpy()
        returns = monte_carlo_returns(rewards, np.zeros(1, np.int64), self.mc_discount)
        self.mc_returns[rows] = torch.as_tensor(returns, dtype=torch.float32, device=self.device)

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        if self.size == 0:
            raise DataError("cannot sample from an empty replay buffer")
        idx = torch.randint(self.size, (batch_size,), generator=self.generator, device=self.device)
        return {name: getattr(self, name)[idx] for name in self.fields}

    def _ordered(self, name: str) -> torch.Tensor:
        """The stored rows of one field, oldest first."""
        t = getattr(self, name)
        if self.size < self.capacity:
            return t[: self.size]
        return torch.cat([t[self.position:], t[: self.position]])

    def arrays(self, first: int | None = None) -> dict[str, np.ndarray]:
        """The oldest `first` rows (default: all), as numpy arrays keyed like the stored fields."""
        n = self.size if first is None else min(int(first), self.size)
        return {name: self._ordered(name)[:n].cpu().numpy() for name in self.stored}

    def state_dict(self) -> dict:
        return {"capacity": self.capacity, "position": self.position, "size": self.size,
                "total_added": self.total_added, "generator": self.generator.get_state(),
                **{name: getattr(self, name)[: self.size].cpu().clone() for name in self.stored}}

    def load_state_dict(self, state: dict) -> None:
        wrapped = state["size"] == state["capacity"] and state["position"] != 0
        fits = state["capacity"] == self.capacity or (not wrapped and state["size"] <= self.capacity)
        if not fits or state["observations"].shape[1:] != (self.obs_dim,):
            raise DataError(f"replay state (capacity {state['capacity']}, obs {tuple(state['observations'].shape[1:])})"
                            f" does not fit this buffer (capacity {self.capacity}, obs ({self.obs_dim},))")
        n = int(state["size"])
        if set(self.stored) - set(state):
            raise DataError(f"replay state lacks {sorted(set(self.stored) - set(state))}")
        for name in self.stored:
            getattr(self, name)[:n] = state[name].to(self.device)
        # rows kept where they were, so the same draws give the same samples
        self.size, self.position = n, int(state["position"]) % self.capacity if wrapped else n % self.capacity
        self.total_added = int(state["total_added"])
        self.generator.set_state(state["generator"])

