"""Termination rules against the real environments' own `terminated`.

Each rule is checked on next observations from real rollouts (random actions) and on states pushed
past the healthy bounds with `set_state`, so both sides of every bound are exercised; the env's
`terminated` from `step` is the reference.
"""

import gymnasium as gym
import numpy as np
import pytest
import torch

from seqrl.data.termination import SUPPORTED_ENVS, termination_function


def _rollout_pairs(env, steps: int, rng: np.random.Generator, perturb: float = 0.0):
    """(next_obs [N, d], terminated [N]) from `steps` env steps; with `perturb`, each step starts
    from the current MuJoCo state plus Gaussian noise of that scale, so states cross the bounds."""
    next_obs, terminated = [], []
    env.reset(seed=int(rng.integers(1 << 30)))
    env.action_space.seed(int(rng.integers(1 << 30)))
    for _ in range(steps):
        if perturb:
            base = env.unwrapped
            qpos = base.data.qpos + perturb * rng.standard_normal(base.model.nq)
            qvel = base.data.qvel + perturb * rng.standard_normal(base.model.nv)
            base.set_state(qpos, qvel)
        obs, _, term, trunc, _ = env.step(env.action_space.sample())
        next_obs.append(obs)
        terminated.append(term)
        if term or trunc:
            env.reset(seed=int(rng.integers(1 << 30)))
    return torch.as_tensor(np.stack(next_obs), dtype=torch.float32), torch.as_tensor(terminated)


def _check(env_id: str, env_kwargs: dict | None = None, steps: int = 400, perturb: float = 0.0,
           expect_terminations: bool = True):
    rule = termination_function(env_id, env_kwargs)
    env = gym.make(env_id, **(env_kwargs or {}))
    try:
        obs, terminated = _rollout_pairs(env, steps, np.random.default_rng(0), perturb)
    finally:
        env.close()
    predicted = rule(obs)
    assert predicted.dtype == torch.bool and predicted.shape == terminated.shape
    mismatch = (predicted != terminated).nonzero().flatten().tolist()
    assert not mismatch, f"{env_id}: rule disagrees with the env at steps {mismatch[:10]}"
    if expect_terminations:
        assert terminated.any() and not terminated.all(), f"{env_id}: rollouts did not cover both outcomes"
    return terminated


@pytest.mark.parametrize("env_id", ["Hopper-v5", "Walker2d-v5", "InvertedPendulum-v5"])
def test_rule_matches_env_on_real_rollouts(env_id):
    _check(env_id)


@pytest.mark.parametrize("env_id", ["HalfCheetah-v5", "Pendulum-v1"])
def test_envs_that_never_terminate(env_id):
    terminated = _check(env_id, perturb=0.5 if env_id.startswith("Half") else 0.0, expect_terminations=False)
    assert not terminated.any()


@pytest.mark.parametrize("env_id, perturb", [("Hopper-v5", 0.3), ("Walker2d-v5", 0.3), ("Ant-v5", 0.4)])
def test_rule_matches_env_on_states_pushed_across_the_bounds(env_id, perturb):
    _check(env_id, perturb=perturb, steps=600)


def test_hopper_checks_the_lower_state_bound():
    # The common rule (`np.abs(next_obs[:, 1:] < 100)`) takes abs of a bool and so never sees a joint
    # angle below -100; the real env terminates there.
    env = gym.make("Hopper-v5")
    env.reset(seed=0)
    base = env.unwrapped
    qpos, qvel = base.data.qpos.copy(), base.data.qvel.copy()
    qpos[3] = -150.0   # the thigh joint, inside the observation unclipped
    base.set_state(qpos, qvel)
    obs, _, terminated, _, _ = env.step(np.zeros(env.action_space.shape))
    env.close()
    assert terminated and obs[2] < -100
    assert termination_function("Hopper-v5")(torch.as_tensor(obs[None], dtype=torch.float32)).item()


def test_non_default_kwargs_change_the_rule_as_they_change_the_env():
    # x kept in the observation shifts every index; a tighter z range terminates sooner.
    _check("Hopper-v5", {"exclude_current_positions_from_observation": False, "healthy_z_range": (1.0, float("inf"))})
    _check("Walker2d-v5", {"healthy_angle_range": (-0.3, 0.3)})
    _check("Ant-v5", {"exclude_current_positions_from_observation": False, "healthy_z_range": (0.4, 0.9)},
           perturb=0.4, steps=600)
    rule = termination_function("Hopper-v5", {"terminate_when_unhealthy": False})
    assert not rule(torch.full((4, 11), 1e6)).any()


def test_nan_and_inf_terminate_where_the_env_checks_them():
    obs = torch.zeros(2, 11)
    obs[:, 0] = 1.25   # a healthy hopper height
    obs[0, 5] = float("nan")
    obs[1, 5] = float("inf")
    hopper = termination_function("Hopper-v5")
    assert hopper(obs).tolist() == [True, True]
    healthy = obs.clone()
    healthy[:, 5] = 0.0
    assert hopper(healthy).tolist() == [False, False]
    pendulum = termination_function("InvertedPendulum-v5")
    assert pendulum(torch.tensor([[0.0, float("nan"), 0.0, 0.0], [0.0, 0.1, 0.0, 0.0]])).tolist() == [True, False]


def test_batched_shapes_and_wrong_width():
    rule = termination_function("Walker2d-v5")
    obs = torch.zeros(3, 5, 17)
    obs[..., 0] = 1.25
    obs[1, 2, 0] = 0.5   # below the healthy z range
    out = rule(obs)
    assert out.shape == (3, 5) and out.sum() == 1 and out[1, 2]
    with pytest.raises(ValueError, match="Walker2d-v5 observations have 17 dims"):
        rule(torch.zeros(4, 11))


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Hopper-v3", "Humanoid-v5", "not an id"])
def test_unknown_env_is_an_error_naming_it(env_id):
    with pytest.raises(ValueError, match=f"no termination rule for {env_id!r}"):
        termination_function(env_id)


def test_every_supported_env_builds_a_rule():
    for env_id in SUPPORTED_ENVS:
        env = gym.make(env_id) if not env_id.endswith("v4") else None
        if env is None:
            continue   # v4 share the v5 rules; making them only warns
        obs, _ = env.reset(seed=0)
        env.close()
        out = termination_function(env_id)(torch.as_tensor(obs, dtype=torch.float32))
        assert out.shape == () and not out.item()   # a reset state is healthy
