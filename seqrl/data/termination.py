"""Where each environment terminates, as batched torch ops on next observations.

Model-based offline RL (MOPO, COMBO) rolls the policy through a learned dynamics model, and a
rollout must stop where the real environment would terminate. `termination_function(env_id,
env_kwargs)` builds the real environment once, reads its healthy ranges, flags and observation
layout, and returns `next_observations [..., obs_dim] -> terminated [...]` (bool) that mirrors the
env's own `is_healthy` / `terminated` code: the same strict or inclusive bounds, the same
finiteness checks, on any batch shape and device. An env with no rule here raises `ValueError`:
a rollout that silently never terminates is worse than no rollout.

Where this deviates from OfflineRL-Kit's (and official MOPO's) `termination_fns.py`:
  * Hopper: theirs is `np.abs(next_obs[:, 1:] < 100)`, the abs of a bool, so the lower bound -100
    is never checked; here the env's whole `healthy_state_range` is checked, strictly.
  * Walker2d and HalfCheetah: theirs also end when any |obs| >= 100; the real envs never check
    that (HalfCheetah never terminates), and neither does this.
  * Ant: theirs checks `isfinite` on the whole observation, contact forces included; the env (and
    this) checks only qpos and qvel, with the z range inclusive.
  * Ranges, `terminate_when_unhealthy` and index offsets come from the env made with the user's
    kwargs (e.g. `exclude_current_positions_from_observation=False` shifts the indices).

What an observation cannot show (the rule is applied to what the observation holds):
  * Hopper's observation clips velocities to [-10, 10], so a real velocity beyond the default
    (-100, 100) state range is invisible in a real observation. A model's prediction is not
    clipped, so a predicted velocity of -150 does terminate.
  * Ant's finiteness check also covers x and y, which the default observation leaves out.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import gymnasium as gym
import torch
from gymnasium.envs.registration import parse_env_id
from torch import Tensor

TerminationFn = Callable[[Tensor], Tensor]


def _bounds(pair) -> tuple[float, float]:
    low, high = pair
    return float(low), float(high)


def _inside(x: Tensor, bounds: tuple[float, float]) -> Tensor:
    """low < x < high, the open interval the MuJoCo envs use (NaN is outside)."""
    low, high = bounds
    return (x > low) & (x < high)


def _never(env) -> TerminationFn:
    def terminated(next_obs: Tensor) -> Tensor:
        return torch.zeros(next_obs.shape[:-1], dtype=torch.bool, device=next_obs.device)
    return terminated


def _hopper(env) -> TerminationFn:
    if not env._terminate_when_unhealthy:
        return _never(env)
    skip = int(env._exclude_current_positions_from_observation)   # x is left out of the obs
    state_range = _bounds(env._healthy_state_range)
    z_range, angle_range = _bounds(env._healthy_z_range), _bounds(env._healthy_angle_range)

    def terminated(next_obs: Tensor) -> Tensor:
        z, angle = next_obs[..., 1 - skip], next_obs[..., 2 - skip]
        state = next_obs[..., 2 - skip:]   # qpos[2:] and qvel: the env's state_vector()[2:]
        healthy = _inside(z, z_range) & _inside(angle, angle_range) & _inside(state, state_range).all(-1)
        return ~healthy
    return terminated


def _walker2d(env) -> TerminationFn:
    if not env._terminate_when_unhealthy:
        return _never(env)
    skip = int(env._exclude_current_positions_from_observation)
    z_range, angle_range = _bounds(env._healthy_z_range), _bounds(env._healthy_angle_range)

    def terminated(next_obs: Tensor) -> Tensor:
        z, angle = next_obs[..., 1 - skip], next_obs[..., 2 - skip]
        return ~(_inside(z, z_range) & _inside(angle, angle_range))
    return terminated


def _ant(env) -> TerminationFn:
    if not env._terminate_when_unhealthy:
        return _never(env)
    skip = 2 * int(env._exclude_current_positions_from_observation)   # x and y are left out
    n_state = env.model.nq + env.model.nv - skip   # obs[:n_state] is qpos[skip:], qvel; then contact forces
    min_z, max_z = _bounds(env._healthy_z_range)

    def terminated(next_obs: Tensor) -> Tensor:
        z = next_obs[..., 2 - skip]
        finite = torch.isfinite(next_obs[..., :n_state]).all(-1)
        return ~(finite & (z >= min_z) & (z <= max_z))   # inclusive, unlike Hopper and Walker2d
    return terminated


def _inverted_pendulum(env) -> TerminationFn:
    # The env hard-codes its rule in step(): not finite, or |pole angle| > 0.2 (obs = qpos, qvel).
    def terminated(next_obs: Tensor) -> Tensor:
        return ~torch.isfinite(next_obs).all(-1) | (next_obs[..., 1].abs() > 0.2)
    return terminated


# (name, version) -> builder of the rule from the unwrapped env; v4 and v5 share each rule.
_RULES: dict[tuple[str, int], Callable[[gym.Env], TerminationFn]] = {
    ("Ant", 4): _ant, ("Ant", 5): _ant,
    ("HalfCheetah", 4): _never, ("HalfCheetah", 5): _never,
    ("Hopper", 4): _hopper, ("Hopper", 5): _hopper,
    ("InvertedPendulum", 4): _inverted_pendulum, ("InvertedPendulum", 5): _inverted_pendulum,
    ("Pendulum", 1): _never,
    ("Walker2d", 4): _walker2d, ("Walker2d", 5): _walker2d,
}

SUPPORTED_ENVS = tuple(f"{name}-v{version}" for name, version in _RULES)


def _parse(env_id: str) -> tuple[str, int] | None:
    """(name, version) of a supported id, "gymnasium/" prefix allowed; None otherwise."""
    try:
        namespace, name, version = parse_env_id(env_id)
    except gym.error.Error:
        return None
    key = (name, version)
    return key if namespace in (None, "gymnasium") and key in _RULES else None


def termination_function(env_id: str, env_kwargs: dict | None = None) -> TerminationFn:
    """next_observations [..., obs_dim] float -> terminated [...] bool, as `env_id` would say.

    `env_kwargs` are those of `gymnasium.make`: non-default ranges, `terminate_when_unhealthy`
    or observation flags change the rule as they change the env.
    """
    key = _parse(env_id)
    if key is None:
        raise ValueError(f"no termination rule for {env_id!r}; supported: {', '.join(SUPPORTED_ENVS)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # v4 ids warn on make; only read here
        env = gym.make(f"{key[0]}-v{key[1]}", **(env_kwargs or {}))
    try:
        rule = _RULES[key](env.unwrapped)
        obs_dim = env.observation_space.shape[-1]
    finally:
        env.close()

    def terminated(next_obs: Tensor) -> Tensor:
        # A wrong layout would read the wrong indices silently; the shape check is free.
        if next_obs.shape[-1] != obs_dim:
            raise ValueError(f"{env_id} observations have {obs_dim} dims, got shape {tuple(next_obs.shape)}")
        return rule(next_obs)
    return terminated
