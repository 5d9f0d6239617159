"""seqrl.evaluation: vectorised rollouts match a plain loop, hooks see the right rows, scores."""

import json

import gymnasium as gym
import numpy as np
import pytest

from seqrl.data.episodes import D4RL_REFERENCE, d4rl_metadata
from seqrl.evaluation import (
    EvalResult,
    EvaluationError,
    evaluate,
    normalized_score,
    reference_scores,
)

# Linear feedback; the InvertedPendulum gain pushes the pole over so that episodes terminate
# at different times (the interesting case for vector-env bookkeeping).
PENDULUM_GAIN = np.array([[-1.0, -2.0, -0.5]])
FALLING_IP_GAIN = np.array([[0.0, -3.0, 0.0, 0.0]])  # episode lengths 11-15 of 15


class Linear:
    def __init__(self, gain):
        self.gain = gain

    def act(self, observations):
        return observations @ self.gain.T


def hand_loop(policy, env_id, n_episodes, seed, max_episode_steps=None):
    """The reference: one env, one episode after another, episode k reset with seed + k."""
    kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    env = gym.make(env_id, **kwargs)
    space = env.action_space
    returns, lengths = [], []
    for k in range(n_episodes):
        obs, _ = env.reset(seed=seed + k)
        total, steps, done = 0.0, 0, False
        while not done:
            action = np.clip(policy.act(obs[None])[0], space.low, space.high).astype(space.dtype)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            steps += 1
            done = terminated or truncated
        returns.append(total)
        lengths.append(steps)
    env.close()
    return returns, lengths


@pytest.mark.parametrize("num_envs", [1, 3, 4])
def test_pendulum_matches_hand_loop(num_envs):
    policy = Linear(PENDULUM_GAIN)
    expected, lengths = hand_loop(policy, "Pendulum-v1", 5, seed=7, max_episode_steps=30)
    result = evaluate(policy, "Pendulum-v1", 5, max_episode_steps=30, num_envs=num_envs, seed=7, progress=False)
    assert result.returns == expected  # exact: same seeds, same actions, same order of operations
    assert result.lengths == lengths == [30] * 5
    assert result.episodes == 5 and result.num_envs == num_envs
    assert not any(result.terminated)


@pytest.mark.parametrize("num_envs", [2, 3])
def test_inverted_pendulum_with_terminations_matches_hand_loop(num_envs):
    policy = Linear(FALLING_IP_GAIN)
    expected, lengths = hand_loop(policy, "InvertedPendulum-v5", 7, seed=3, max_episode_steps=15)
    result = evaluate(policy, "InvertedPendulum-v5", 7, max_episode_steps=15, num_envs=num_envs, seed=3,
                      progress=False)
    assert result.returns == expected
    assert result.lengths == lengths
    assert any(result.terminated) and min(lengths) < 15, "the test needs episodes that end early"
    assert len(set(lengths)) > 1


def test_constant_policy_and_exact_episode_count():
    class Constant:
        def act(self, observations):
            return np.full((len(observations), 1), 0.5)

    expected, _ = hand_loop(Constant(), "InvertedPendulum-v5", 5, seed=0, max_episode_steps=10)
    result = evaluate(Constant(), "InvertedPendulum-v5", 5, max_episode_steps=10, num_envs=2, progress=False)
    assert result.returns == expected
    assert result.episodes == len(result.returns) == len(result.lengths) == 5
    # more envs than episodes: capped, still exactly n episodes
    assert evaluate(Constant(), "InvertedPendulum-v5", 2, max_episode_steps=10, num_envs=8,
                    progress=False).num_envs == 2


def test_actions_are_clipped():
    class Huge:
        def act(self, observations):
            return np.full((len(observations), 1), 1e6)

    class Max:
        def act(self, observations):
            return np.full((len(observations), 1), 3.0)  # InvertedPendulum's bound

    big = evaluate(Huge(), "InvertedPendulum-v5", 2, max_episode_steps=10, progress=False)
    bound = evaluate(Max(), "InvertedPendulum-v5", 2, max_episode_steps=10, progress=False)
    assert big.returns == bound.returns


class Recorder:
    """Records every hook call (the protocol a planner relies on)."""

    def __init__(self):
        self.calls = []
        self.n = None

    def reset(self, env_indices=None, n_envs=None):
        self.calls.append(("reset", None if env_indices is None else list(env_indices), n_envs))
        if n_envs is not None:
            self.n = n_envs

    def act(self, observations):
        assert len(observations) == self.n, "act gets one row per env"
        self.calls.append(("act", len(observations)))
        return np.zeros((len(observations), 1))

    def observe(self, rewards, dones):
        self.calls.append(("observe", np.asarray(rewards).copy(), np.asarray(dones).copy()))


def test_hooks_called_with_correct_rows():
    # Pendulum, 4-step episodes: every row ends at steps 4, 8, ... together.
    policy = Recorder()
    result = evaluate(policy, "Pendulum-v1", 5, max_episode_steps=4, num_envs=2, progress=False)
    assert result.episodes == 5
    assert policy.calls[0] == ("reset", None, 2)
    kinds = [c[0] for c in policy.calls]
    # act then observe every step; resets of the finished rows after steps 4 and 8
    steps = [c for c in policy.calls if c[0] == "observe"]
    assert len(steps) == 12  # three rounds of 4 steps: rows run episodes (0, 1), (2, 3), (4, idle)
    assert kinds.count("act") == 12
    resets = [c for c in policy.calls[1:] if c[0] == "reset"]
    assert resets == [("reset", [0, 1], None), ("reset", [0, 1], None)]
    for i, call in enumerate(policy.calls[1:]):
        if call[0] == "act":
            assert policy.calls[i + 2][0] == "observe"  # observe right after each step
    dones = np.array([c[2] for c in steps])
    assert dones[:, 0].tolist() == dones[:, 1].tolist() == [False, False, False, True] * 3
    rewards = np.array([c[1] for c in steps])
    np.testing.assert_allclose(rewards[:4].sum(0), result.returns[:2])
    np.testing.assert_allclose(rewards[4:8].sum(0), result.returns[2:4])
    np.testing.assert_allclose(rewards[8:, 0].sum(), result.returns[4])


def test_hooks_reset_only_the_rows_that_ended():
    policy = Recorder()
    policy.act = lambda obs: Linear(FALLING_IP_GAIN).act(obs)  # uneven episode ends
    evaluate(policy, "InvertedPendulum-v5", 6, max_episode_steps=15, num_envs=3, progress=False)
    history = [c for c in policy.calls if c[0] in ("observe", "reset")]
    assert history[0] == ("reset", None, 3)
    for prev, call in zip(history, history[1:]):
        if call[0] == "reset":
            assert prev[0] == "observe"
            assert call[1] == np.flatnonzero(prev[2]).tolist()
    assert any(c[0] == "reset" and len(c[1]) < 3 for c in history[1:])


class SubsetRecorder(Linear):
    """A policy that can act for some rows only, as a planner can."""

    def __init__(self, gain):
        super().__init__(gain)
        self.act_rows, self.observe_rows = [], []

    def act(self, observations, env_indices=None):
        self.act_rows.append(None if env_indices is None else list(env_indices))
        return super().act(observations)

    def observe(self, rewards, dones, env_indices=None):
        assert env_indices is None or len(rewards) == len(dones) == len(env_indices)
        self.observe_rows.append(None if env_indices is None else list(env_indices))


def test_rows_with_their_share_done_are_left_out_for_subset_policies():
    policy = SubsetRecorder(FALLING_IP_GAIN)
    expected, _ = hand_loop(policy, "InvertedPendulum-v5", 5, seed=3, max_episode_steps=15)
    policy.act_rows.clear()
    # 3 rows: shares of 2, 2 and 1 episodes, so rows drop out one by one
    result = evaluate(policy, "InvertedPendulum-v5", 5, max_episode_steps=15, num_envs=3, seed=3, progress=False)
    assert result.returns == expected
    assert policy.act_rows == policy.observe_rows
    subsets = [rows for rows in policy.act_rows if rows is not None]
    assert subsets, "some steps must run with idle rows"
    assert policy.act_rows[0] is None  # every row busy at first: plain calls
    assert all(len(rows) < 3 for rows in subsets)
    # once a row has left it never comes back
    seen_idle = set()
    for rows in subsets:
        assert not seen_idle & set(rows)
        seen_idle |= {0, 1, 2} - set(rows)


def test_reset_without_env_indices_is_only_called_at_start():
    class Plain:
        resets = 0

        def reset(self):
            self.resets += 1

        def act(self, observations):
            return np.zeros((len(observations), 1))

    policy = Plain()
    evaluate(policy, "Pendulum-v1", 4, max_episode_steps=3, num_envs=2, progress=False)
    assert policy.resets == 1


def test_normalized_score_arithmetic():
    assert normalized_score(5.0, 0.0, 10.0) == pytest.approx(50.0)
    assert normalized_score(-20.272305, *D4RL_REFERENCE["hopper"]) == pytest.approx(0.0)
    assert normalized_score(3234.3, *D4RL_REFERENCE["hopper"]) == pytest.approx(100.0)
    np.testing.assert_allclose(normalized_score([0.0, 20.0], 10.0, 20.0), [-100.0, 100.0])
    with pytest.raises(ValueError):
        normalized_score(1.0, 3.0, 3.0)
    result = EvalResult.from_episodes("Pendulum-v1", [10.0, 20.0], [5, 5], [False, False], seconds=1.0, seed=0,
                                      num_envs=1, ref_min_score=0.0, ref_max_score=40.0, ref_source="the dataset's own")
    assert result.mean == 15.0 and result.std == pytest.approx(np.std([10, 20], ddof=1))
    assert result.stderr == pytest.approx(result.std / np.sqrt(2))
    assert result.normalized_mean == pytest.approx(37.5)
    assert result.normalized_stderr == pytest.approx(100 * result.stderr / 40)
    assert result.reference == "the dataset's own" and result.steps_per_s == 10.0


def test_references_only_where_they_belong():
    """No reference by env family: a Hopper-v5 dataset is not scored with D4RL's Hopper-v2 values.
    D4RL's references come with D4RL's own files (by name), and say so."""
    assert reference_scores() is None and reference_scores(None, 2.0) is None  # one score is not a reference
    assert reference_scores(1.0, 2.0, "the dataset's own") == (1.0, 2.0, "the dataset's own")
    meta = d4rl_metadata("hopper-medium-replay-v2")
    assert (meta["ref_min_score"], meta["ref_max_score"]) == D4RL_REFERENCE["hopper"] == (-20.272305, 3234.3)
    assert meta["ref_source"].startswith("D4RL") and d4rl_metadata("my-hopper-v5-data") == {}
    plain = EvalResult.from_episodes("Hopper-v5", [1.0], [1], [False], seconds=1.0, seed=0, num_envs=1)
    assert plain.normalized_mean is None and plain.stderr == 0.0


def test_result_json_and_str(tmp_path):
    result = evaluate(Linear(PENDULUM_GAIN), "Pendulum-v1", 3, max_episode_steps=5, num_envs=2, progress=False,
                      ref_min_score=-100.0, ref_max_score=0.0)
    path = result.to_json(tmp_path / "sub" / "result.json")
    saved = json.loads(path.read_text())
    assert saved["returns"] == result.returns and saved["episodes"] == 3
    assert saved["normalized_mean"] == pytest.approx(result.normalized_mean)
    line = str(result)
    assert "\n" not in line and "Pendulum-v1" in line and "normalized" in line and "3 episodes" in line


def test_bad_env_id_is_one_clear_line():
    with pytest.raises(EvaluationError) as err:
        evaluate(Linear(PENDULUM_GAIN), "NoSuchEnv-v0", 1, progress=False)
    message = str(err.value)
    assert "NoSuchEnv-v0" in message and "\n" not in message
    with pytest.raises(EvaluationError, match="n_episodes"):
        evaluate(Linear(PENDULUM_GAIN), "Pendulum-v1", 0, progress=False)


def test_wrong_action_shape_is_an_error():
    class Wrong:
        def act(self, observations):
            return np.zeros((len(observations), 3))

    with pytest.raises(EvaluationError, match="shape"):
        evaluate(Wrong(), "Pendulum-v1", 1, max_episode_steps=2, progress=False)


def test_dict_observation_env_is_flattened_for_the_policy():
    """A Dict-observation env (goal-conditioned Minari data) is evaluated through FlattenObservation:
    the policy sees the flat vector in sorted-key order (angle, velocity), the same columns the
    Minari loader writes, so a Pendulum controller on the Dict env earns what it earns on Pendulum."""
    import dict_env

    env_id = dict_env.register()
    seen = []

    class Recording(Linear):
        def act(self, observations):
            seen.append(np.array(observations))
            return super().act(observations)

    flat = evaluate(Recording(PENDULUM_GAIN), env_id, 3, num_envs=2, seed=5, progress=False)
    plain = evaluate(Linear(PENDULUM_GAIN), "Pendulum-v1", 3, num_envs=2, seed=5, max_episode_steps=5,
                     progress=False)
    assert all(s.shape[1] == 3 for s in seen)
    np.testing.assert_allclose(flat.returns, plain.returns, rtol=1e-6)
    np.testing.assert_array_equal(flat.lengths, [5, 5, 5])


def test_env_from_a_package_that_registers_it_on_import(tmp_path, monkeypatch):
    """Minari's D4RL sets name envs that gymnasium_robotics registers when imported: the loader records the
    entry point's package (`env_module`) and evaluation imports it first; a missing package is one line."""
    import sys

    from seqrl.data import load_dataset
    from seqrl.data.collect import rollout, write_minari_dataset
    from seqrl.data.controllers import make_controller
    from seqrl.evaluation import evaluation_env

    env_id = "SeqrlTestPluginPendulum-v0"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    import plugin_env  # registers the env, as the dataset's author had it

    episodes = rollout(env_id, make_controller("Pendulum-v1", "medium", seed=0), n_steps=60, seed=0)
    write_minari_dataset("seqrltest/plugin/medium-v0", episodes, env_id=env_id, algorithm_name="test")
    data = load_dataset("seqrltest/plugin/medium-v0")
    assert data.metadata["env_module"] == "plugin_env"

    # a fresh interpreter has not imported it: unregister and forget the module to get there here
    del gym.registry[env_id]
    monkeypatch.delitem(sys.modules, "plugin_env")
    with pytest.raises(EvaluationError, match="doesn't exist|not found|No registered env"):
        evaluate(Linear(PENDULUM_GAIN), env_id, 1, progress=False)
    result = evaluate(Linear(PENDULUM_GAIN), n_episodes=2, progress=False, **evaluation_env(data.metadata))
    assert env_id in gym.registry and list(result.lengths) == [6, 6]
    with pytest.raises(EvaluationError, match="comes from the package 'no_such_env_pkg'.*pip install no-such-env-pkg"):
        evaluate(Linear(PENDULUM_GAIN), "SeqrlTestMissing-v0", 1, env_module="no_such_env_pkg", progress=False)
