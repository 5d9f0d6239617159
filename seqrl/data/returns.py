"""Return-to-go targets of the Trajectory Transformer.

Official TT (`trajectory/datasets/sequence.py`): the value token of transition t is
    V_t = sum_{j >= 0} gamma^j * r_{t+1+j}
the discounted sum of the rewards AFTER r_t (r_t has its own token), a Monte-Carlo sum over
the episode with nothing bootstrapped at a time limit. At a true termination the reward is
overwritten (not added to) by the termination penalty, -100 by default.
"""

from __future__ import annotations

import numpy as np


def apply_termination_penalty(rewards: np.ndarray, terminated: np.ndarray, penalty: float | None) -> np.ndarray:
    """Rewards with every true-terminal reward replaced by `penalty` (None: unchanged)."""
    rewards = np.asarray(rewards, dtype=np.float64).copy()
    if penalty is not None:
        rewards[np.asarray(terminated, dtype=bool)] = penalty
    return rewards


def reward_to_go(rewards: np.ndarray, episode_starts: np.ndarray, discount: float) -> np.ndarray:
    """V_t = sum_j discount^j r_{t+1+j} within each episode, for flat rows in episode order.

    Vectorised over episodes: one pass per step-from-the-end (max episode length numpy
    ops over O(episodes) rows each), float64 accumulation, no per-transition Python.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    n = len(rewards)
    starts = np.asarray(episode_starts, dtype=np.int64)
    lengths = np.diff(np.r_[starts, n])
    # k = number of steps until the episode's last row (0 for the last row).
    ends = starts + lengths - 1
    k = (np.repeat(ends, lengths) - np.arange(n)).astype(np.int32)
    order = np.argsort(k, kind="stable").astype(np.int32)
    bounds = np.r_[0, np.cumsum(np.bincount(k, minlength=int(k.max()) + 1))]
    del k
    values = np.zeros(n, dtype=np.float64)   # V_t
    to_go = np.zeros(n, dtype=np.float64)    # G_t = r_t + discount * G_{t+1}
    for step_back in range(len(bounds) - 1):
        rows = order[bounds[step_back]:bounds[step_back + 1]]
        if step_back > 0:
            values[rows] = to_go[rows + 1]
        to_go[rows] = rewards[rows] + discount * values[rows]
    return values


def monte_carlo_returns(rewards: np.ndarray, episode_starts: np.ndarray, discount: float) -> np.ndarray:
    """G_t = r_t + discount * G_{t+1} within each episode (nothing bootstrapped past its last row):
    the Monte-Carlo return of the behaviour from each row, Cal-QL's lower bound on Q."""
    rewards = np.asarray(rewards, dtype=np.float64)
    return rewards + discount * reward_to_go(rewards, episode_starts, discount)
