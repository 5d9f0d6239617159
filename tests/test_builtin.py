"""Built-in datasets: scripted controllers, rollouts and Minari datasets written without JAX."""

from __future__ import annotations

import json
import os

import gymnasium as gym
import minari
import numpy as np
import pytest

from seqrl.data import builtin
from seqrl.data.builtin import BUILTIN_DATASETS, ensure_builtin, list_builtin
from seqrl.data.collect import (
    collect_policy_dataset,
    episode_returns,
    rollout,
    write_minari_dataset,
)
from seqrl.data.controllers import expert_base, make_controller

N_STEPS = 2_000
IP = "seqrl/invertedpendulum"
PD = "seqrl/pendulum"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """All built-in sets, small, in a temporary datasets root."""
    root = tmp_path_factory.mktemp("minari")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(root))
        for dataset_id in list_builtin():
            assert ensure_builtin(dataset_id, n_steps=N_STEPS) == dataset_id
        yield root


def _load(root, dataset_id, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return minari.load_dataset(dataset_id)


def _episodes(dataset):
    return list(dataset.iterate_episodes())


def test_registry_and_unknown_id():
    ids = list_builtin()
    assert ids == sorted(
        f"{ns}/{name}-v0" for ns in (IP, PD) for name in ("random", "medium", "expert", "mixed")
    )
    for dataset_id, spec in BUILTIN_DATASETS.items():
        assert spec.dataset_id == dataset_id
        assert spec.max_episode_steps == 200
        assert spec.n_steps == 50_000
    assert len({spec.seed for spec in BUILTIN_DATASETS.values()}) == len(ids)
    with pytest.raises(ValueError) as err:
        ensure_builtin("seqrl/invertedpendulum/bogus-v0")
    message = str(err.value)
    assert "\n" not in message
    assert all(dataset_id in message for dataset_id in ids)


def test_datasets_load_and_have_whole_episodes(built, monkeypatch):
    for dataset_id in list_builtin():
        dataset = _load(built, dataset_id, monkeypatch)
        episodes = _episodes(dataset)
        assert len(episodes) == dataset.total_episodes > 0
        lengths = [len(e.rewards) for e in episodes]
        assert sum(lengths) == dataset.total_steps <= N_STEPS
        obs_dim = dataset.observation_space.shape[0]
        for e in episodes:
            T = len(e.rewards)
            assert e.observations.shape == (T + 1, obs_dim)
            assert e.actions.shape == (T, 1)
            assert e.terminations.dtype == bool and e.truncations.dtype == bool
            assert dataset.action_space.contains(e.actions[0])


def test_terminations_and_truncations(built, monkeypatch):
    for dataset_id in list_builtin():
        episodes = _episodes(_load(built, dataset_id, monkeypatch))
        for e in episodes:
            T = len(e.rewards)
            done = e.terminations | e.truncations
            assert done[-1] and not done[:-1].any()  # flags only on the last step
            assert T <= 200
            if e.truncations[-1]:
                assert T == 200 and not e.terminations[-1]
            else:
                assert e.terminations[-1] and T < 200
        n_term = sum(bool(e.terminations.any()) for e in episodes)
        if dataset_id.startswith(PD) or dataset_id == f"{IP}/expert-v0":
            assert n_term == 0, dataset_id  # Pendulum never terminates; the expert never falls
            assert all(len(e.rewards) == 200 for e in episodes)
        else:
            assert n_term > 0, dataset_id


def test_returns_are_graded(built, monkeypatch):
    for ns in (IP, PD):
        mean = {
            name: float(np.mean([e.rewards.sum() for e in _episodes(
                _load(built, f"{ns}/{name}-v0", monkeypatch))]))
            for name in ("random", "medium", "expert", "mixed")
        }
        assert mean["expert"] > mean["medium"] > mean["random"], (ns, mean)
        assert mean["expert"] > mean["mixed"] > mean["random"], (ns, mean)
    ip_medium = np.mean([e.rewards.sum() for e in _episodes(
        _load(built, f"{IP}/medium-v0", monkeypatch))])
    assert 0.25 * 200 < ip_medium < 0.7 * 200


def test_env_spec_and_reference_scores(built, monkeypatch):
    for dataset_id in list_builtin():
        dataset = _load(built, dataset_id, monkeypatch)
        spec = BUILTIN_DATASETS[dataset_id]
        assert dataset.spec.env_spec.id == spec.env_id
        assert dataset.spec.env_spec.max_episode_steps == 200
        env = dataset.recover_environment()
        assert env.spec.max_episode_steps == 200
        env.close()
        eval_env = dataset.recover_environment(eval_env=True)
        assert eval_env.spec.max_episode_steps == 200
        eval_env.close()
        meta = dataset.storage.metadata
        ref_min, ref_max = meta["ref_min_score"], meta["ref_max_score"]
        assert (ref_min, ref_max) == builtin.reference_scores(spec.env_id, 200)
        assert ref_min < ref_max
        assert meta["seqrl_builtin"]["n_steps"] == N_STEPS
        assert meta["seqrl_builtin"]["seed"] == spec.seed
        if dataset_id.endswith("expert-v0"):
            returns = np.array([e.rewards.sum() for e in dataset.iterate_episodes()])
            score = float(np.mean(minari.get_normalized_score(dataset, returns)))
            assert 0.9 < score < 1.1
    ip_min, ip_max = builtin.reference_scores("InvertedPendulum-v5", 200)
    assert ip_max == 200.0 and ip_min < 20
    pd_min, pd_max = builtin.reference_scores("Pendulum-v1", 200)
    assert pd_min < -900 and pd_max > -250


def test_build_is_deterministic(built, tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    for dataset_id in (f"{IP}/mixed-v0", f"{PD}/medium-v0"):
        ensure_builtin(dataset_id, n_steps=N_STEPS)
        again = _episodes(minari.load_dataset(dataset_id))
        first = _episodes(_load(built, dataset_id, monkeypatch))
        monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
        assert len(first) == len(again)
        for a, b in zip(first, again):
            for key in ("observations", "actions", "rewards", "terminations", "truncations"):
                x, y = getattr(a, key), getattr(b, key)
                assert x.dtype == y.dtype and np.array_equal(x, y), key


def test_ensure_builtin_reuses_and_rebuilds(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    dataset_id = f"{PD}/expert-v0"
    meta_path = tmp_path / dataset_id / "data" / "metadata.json"
    ensure_builtin(dataset_id, n_steps=400)
    stamp = meta_path.stat().st_mtime_ns
    ensure_builtin(dataset_id, n_steps=400)  # same recipe: kept
    ensure_builtin(dataset_id)  # n_steps=None accepts the existing size
    assert meta_path.stat().st_mtime_ns == stamp
    assert minari.load_dataset(dataset_id).total_steps == 400
    ensure_builtin(dataset_id, n_steps=600)  # other size: rebuilt
    assert minari.load_dataset(dataset_id).total_steps == 600
    ensure_builtin(dataset_id, n_steps=600, force=True)
    assert minari.load_dataset(dataset_id).total_steps == 600
    # no staging leftovers, and Minari lists the dataset
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".seqrl-staging")]
    assert dataset_id in minari.list_local_datasets()


def test_rollout_n_steps_trims_partial_episode():
    policy = expert_base("InvertedPendulum-v5")  # balances: every episode is 200 steps
    episodes = rollout("InvertedPendulum-v5", policy, n_steps=450, seed=7, max_episode_steps=200)
    assert [len(e["rewards"]) for e in episodes] == [200, 200]
    assert [e["seed"] for e in episodes] == [7, 8]
    episodes = rollout("InvertedPendulum-v5", policy, n_steps=400, seed=7, max_episode_steps=200)
    assert len(episodes) == 2
    with pytest.raises(ValueError):
        rollout("Pendulum-v1", policy, seed=0)


def _replay(env_id, episode, max_episode_steps=200):
    """Re-run an episode's actions from its reset seed; observations must match exactly."""
    env = gym.make(env_id, max_episode_steps=max_episode_steps)
    obs, _ = env.reset(seed=episode["seed"])
    assert np.array_equal(obs, episode["observations"][0])
    for t, action in enumerate(episode["actions"]):
        obs, reward, terminated, truncated, _ = env.step(action)
        assert np.array_equal(obs, episode["observations"][t + 1])
        assert reward == episode["rewards"][t]
        assert terminated == episode["terminations"][t]
        assert truncated == episode["truncations"][t]
    env.close()


@pytest.mark.parametrize("env_id", ["InvertedPendulum-v5", "Pendulum-v1"])
def test_vector_rollout_matches_single_env(env_id):
    policy = expert_base(env_id)  # noise-free: episodes must not depend on num_envs
    single = rollout(env_id, policy, n_episodes=4, seed=3, max_episode_steps=200)
    vector = rollout(env_id, policy, n_episodes=4, seed=3, max_episode_steps=200, num_envs=3)
    assert [e["seed"] for e in vector] == [3, 4, 5, 6]
    for a, b in zip(single, vector, strict=True):
        for key in a:
            assert np.array_equal(a[key], b[key]), key


@pytest.mark.parametrize("env_id", ["InvertedPendulum-v5", "Pendulum-v1"])
def test_vector_rollout_episodes_are_valid_trajectories(env_id):
    name = "medium" if env_id == "InvertedPendulum-v5" else "random"
    episodes = rollout(env_id, make_controller(env_id, name), n_steps=900, seed=11,
                       max_episode_steps=200, num_envs=3)
    assert 0 < sum(len(e["rewards"]) for e in episodes) <= 900
    seeds = [e["seed"] for e in episodes]
    assert seeds == sorted(set(seeds))
    for e in episodes:
        done = e["terminations"] | e["truncations"]
        assert done[-1] and not done[:-1].any()
        _replay(env_id, e)  # no reset observation leaks into a transition
    again = rollout(env_id, make_controller(env_id, name), n_steps=900, seed=11,
                    max_episode_steps=200, num_envs=3)
    assert all(np.array_equal(a["actions"], b["actions"]) for a, b in zip(episodes, again))


def test_single_rollout_episodes_replay_exactly():
    episodes = rollout("InvertedPendulum-v5", make_controller("InvertedPendulum-v5", "random"),
                       n_steps=300, seed=5, max_episode_steps=200)
    for e in episodes:
        _replay("InvertedPendulum-v5", e)


@pytest.mark.filterwarnings("ignore:.*is set to None.*:UserWarning")
@pytest.mark.parametrize("fast_write", [True, False])
def test_write_matches_plain_minari_and_overwrite(tmp_path, monkeypatch, fast_write):
    from minari.data_collector.episode_buffer import EpisodeBuffer

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    episodes = rollout("InvertedPendulum-v5", make_controller("InvertedPendulum-v5", "medium"),
                       n_steps=600, seed=1, max_episode_steps=200)
    ours = write_minari_dataset("test/ours-v0", episodes, env_id="InvertedPendulum-v5",
                                max_episode_steps=200, algorithm_name="medium",
                                description="d", ref_min_score=1.0, ref_max_score=2.0,
                                fast_write=fast_write)
    env = gym.make("InvertedPendulum-v5", max_episode_steps=200)
    plain = minari.create_dataset_from_buffers(
        dataset_id="test/plain-v0",
        buffer=[EpisodeBuffer(seed=e["seed"], observations=e["observations"],
                              actions=e["actions"], rewards=e["rewards"],
                              terminations=e["terminations"], truncations=e["truncations"],
                              infos={}) for e in episodes],
        env=env, eval_env=env.spec, algorithm_name="medium", author="seqrl",
        description="d", ref_min_score=1.0, ref_max_score=2.0, data_format="arrow",
    )
    for a, b in zip(_episodes(ours), _episodes(plain), strict=True):
        for key in ("observations", "actions", "rewards", "terminations", "truncations"):
            x, y = getattr(a, key), getattr(b, key)
            assert x.dtype == y.dtype and np.array_equal(x, y)
    m_ours, m_plain = ours.storage.metadata, plain.storage.metadata
    for key in ("total_episodes", "total_steps", "env_spec", "eval_env_spec", "ref_min_score",
                "ref_max_score", "data_format", "dataset_size"):
        assert m_ours[key] == m_plain[key], key
    ids = range(ours.total_episodes)
    assert list(ours.storage.get_episode_metadata(ids)) == \
        list(plain.storage.get_episode_metadata(ids))
    assert sorted(os.listdir(ours.spec.data_path)) == sorted(os.listdir(plain.spec.data_path))
    for i in ids:
        assert sorted(os.listdir(os.path.join(ours.spec.data_path, str(i)))) == \
            sorted(os.listdir(os.path.join(plain.spec.data_path, str(i))))
    # sampling and the flat step view work too
    assert len(ours.sample_episodes(2)) == 2
    with pytest.raises(ValueError, match="already exists"):
        write_minari_dataset("test/ours-v0", episodes[:1], env_id="InvertedPendulum-v5",
                             max_episode_steps=200, algorithm_name="x")
    again = write_minari_dataset("test/ours-v0", episodes[:1], env_id="InvertedPendulum-v5",
                                 max_episode_steps=200, algorithm_name="x", overwrite=True)
    assert again.total_episodes == 1
    with pytest.raises(ValueError, match="ref_max_score"):
        write_minari_dataset("test/other-v0", episodes, env_id="InvertedPendulum-v5",
                             algorithm_name="x", ref_min_score=0.0)


def test_collect_policy_dataset_from_act_method(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))

    class LinearPolicy:
        def act(self, observations):
            assert observations.ndim == 2
            return expert_base("InvertedPendulum-v5")(observations)

    dataset = collect_policy_dataset(LinearPolicy(), "InvertedPendulum-v5", "test/agent-v0",
                                     n_steps=500, seed=0, max_episode_steps=200)
    assert dataset.total_episodes == 2 and dataset.total_steps == 400
    assert dataset.spec.env_spec.max_episode_steps == 200
    returns = episode_returns([{"rewards": e.rewards} for e in dataset.iterate_episodes()])
    assert np.all(returns == 200.0)
    meta = json.loads(
        (tmp_path / "test" / "agent-v0" / "data" / "metadata.json").read_text())
    assert meta["algorithm_name"] == "LinearPolicy"
