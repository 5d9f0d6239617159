"""Online training in a gymnasium environment on the one training loop (`seqrl.training.train`).

One loop step = one environment step (the behaviour policy's sampled action, or a uniform random
one for the first `random_steps`) appended to a device-resident `ReplayBuffer`, then
`updates_per_step` updates from replay batches once `learning_starts` steps are stored. Time-limit
truncations are stored with terminal 0, so Q targets bootstrap through them; only true
terminations stop the bootstrap.

Resume (`resume=True`): the replay buffer (contents, sampling RNG), the learner (weights,
optimizers, RNG), the global RNGs and the episode counter come back exactly from the checkpoint.
The environment's internal state cannot be saved, so the episode in progress at the checkpoint is
cut there: its stored rows stay in the buffer, marked truncated at the cut (they still bootstrap),
and training continues with a new episode reset with the next episode's seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from seqrl.data.transitions import ReplayBuffer


@dataclass
class OnlineConfig:
    env_id: str = "Hopper-v5"
    env_kwargs: dict | None = None
    max_episode_steps: int | None = None
    random_steps: int = 5_000  # uniform random actions for the first steps
    learning_starts: int = 5_000  # updates begin once this many transitions are stored
    updates_per_step: int = 1
    buffer_size: int = 1_000_000
    batch_size: int = 256
    seed: int = 0

    def __post_init__(self):
        for name in ("updates_per_step", "buffer_size", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("random_steps", "learning_starts"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


def make_env(config: OnlineConfig) -> gym.Env:
    kwargs = dict(config.env_kwargs or {})
    if config.max_episode_steps is not None:
        kwargs["max_episode_steps"] = int(config.max_episode_steps)
    try:
        env = gym.make(config.env_id, **kwargs)
    except (gym.error.Error, TypeError) as err:
        raise ValueError(f"cannot make environment {config.env_id!r}: {err}") from None
    if not isinstance(env.action_space, gym.spaces.Box) or not isinstance(env.observation_space, gym.spaces.Box):
        raise ValueError(f"{config.env_id}: online training needs Box observations and actions, got "
                         f"{type(env.observation_space).__name__} / {type(env.action_space).__name__}")
    return env


class EnvironmentSource:
    """The training loop's batch source for online RL: each `next_batch()` takes one env step
    and returns the replay batches for this step's updates (empty before `learning_starts`)."""

    def __init__(self, config: OnlineConfig, policy: Any, replay: ReplayBuffer, env: gym.Env | None = None,
                 obs_mean=None, obs_std=None, reward_multiplier: float = 1.0):
        """`obs_mean`, `obs_std`, `reward_multiplier`: the transform the learner's offline data had
        (fine-tuning), applied to every stored row; the policy itself acts on raw observations."""
        self.config, self.policy, self.replay = config, policy, replay
        self.obs_mean = None if obs_mean is None else np.asarray(obs_mean, np.float32)
        self.obs_std = None if obs_std is None else np.asarray(obs_std, np.float32)
        self.reward_multiplier = float(reward_multiplier)
        self.env = env or make_env(config)
        space = self.env.action_space
        self.low, self.high = space.low.astype(np.float32), space.high.astype(np.float32)
        self.rng = np.random.default_rng(config.seed)  # random-phase actions
        self.env_steps = 0
        self.episodes = 0  # episodes started; episode k is reset with seed + k
        self.episode_return, self.episode_length = 0.0, 0
        self.finished: list[tuple[int, float, int]] = []  # (env step, return, length) of ended episodes
        self.obs = self._reset()

    def _reset(self) -> np.ndarray:
        obs, _ = self.env.reset(seed=self.config.seed + self.episodes)
        self.episodes += 1
        self.episode_return, self.episode_length = 0.0, 0
        return np.asarray(obs, np.float32)

    def _action(self) -> tuple[np.ndarray, np.ndarray]:
        """(env action, the same scaled to [-1, 1] as the algorithms learn it)."""
        if self.env_steps < self.config.random_steps:
            unit = self.rng.uniform(-1.0, 1.0, size=self.low.shape).astype(np.float32)
            return self.low + (unit + 1.0) * 0.5 * (self.high - self.low), unit
        action = np.asarray(self.policy.act(self.obs, deterministic=False), np.float32)
        span = np.where(self.high > self.low, self.high - self.low, 1.0)
        return action, np.clip(2.0 * (action - self.low) / span - 1.0, -1.0, 1.0)

    def step(self) -> None:
        action, unit = self._action()
        next_obs, reward, terminated, truncated, _ = self.env.step(action)
        next_obs = np.asarray(next_obs, np.float32)
        self.replay.add(self._stored(self.obs), unit, float(reward) * self.reward_multiplier, self._stored(next_obs),
                        float(terminated), float(truncated and not terminated))
        self.env_steps += 1
        self.episode_return += float(reward)
        self.episode_length += 1
        if terminated or truncated:
            self.replay.end_episode(self.episode_length)
            self.finished.append((self.env_steps, self.episode_return, self.episode_length))
            self.obs = self._reset()
        else:
            self.obs = next_obs

    def _stored(self, obs: np.ndarray) -> np.ndarray:
        return obs if self.obs_mean is None else (obs - self.obs_mean) / self.obs_std

    def next_batch(self) -> list[dict[str, torch.Tensor]]:
        self.step()
        if len(self.replay) < max(self.config.learning_starts, 1):
            return []
        return [self.replay.sample(self.config.batch_size) for _ in range(self.config.updates_per_step)]

    def state_dict(self) -> dict:
        return {"replay": self.replay.state_dict(), "rng": self.rng.bit_generator.state,
                "env_steps": self.env_steps, "episodes": self.episodes, "finished": list(self.finished)}

    def load_state_dict(self, state: dict) -> None:
        self.replay.load_state_dict(state["replay"])
        self.rng.bit_generator.state = state["rng"]
        self.env_steps, self.episodes = int(state["env_steps"]), int(state["episodes"])
        self.finished = [tuple(x) for x in state["finished"]]
        self.replay.mark_truncated()  # the episode in progress ends at the checkpoint
        self.obs = self._reset()


class OnlineLearner:
    """Runs the source's batches through `algorithm.update`; adds the training episodes' returns."""

    def __init__(self, algorithm, source: EnvironmentSource):
        self.algorithm, self.source = algorithm, source
        self._reported = 0

    def train_step(self, batches) -> dict[str, torch.Tensor]:
        metrics: dict[str, torch.Tensor] = {}
        for batch in batches:
            metrics = self.algorithm.update(batch)
        ended = self.source.finished[self._reported:]
        if ended and metrics:
            self._reported = len(self.source.finished)
            metrics = metrics | {"train_return": torch.tensor(float(np.mean([r for _, r, _ in ended])))}
        return metrics

    def state_dict(self):
        return {"algorithm": self.algorithm.training_state(), "reported": self._reported}

    def load_state_dict(self, state):
        self.algorithm.load_training_state(state["algorithm"])
        self._reported = int(state["reported"])
