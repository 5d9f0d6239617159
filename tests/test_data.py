"""Foundation data pipeline: episodes, returns, discretizer, token windows, transition buffer."""

import numpy as np
import pytest
import torch

from seqrl.data import (BufferConfig, DataError, Discretizer, EpisodeDataset, load_dataset, TokenizerConfig,
                        TokenWindows, TransitionBuffer)
from seqrl.data.returns import apply_termination_penalty, reward_to_go
from seqrl.data.windows import joined_columns


def make_arrays(n=40, obs_dim=3, act_dim=2, ends=None, seed=0):
    """Flat D4RL-style arrays with chosen (index -> 'term' | 'trunc') episode ends."""
    rng = np.random.default_rng(seed)
    term, trunc = np.zeros(n, bool), np.zeros(n, bool)
    for i, kind in (ends or {}).items():
        (term if kind == "term" else trunc)[i] = True
    return dict(observations=rng.normal(size=(n, obs_dim)).astype(np.float32),
                actions=rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32),
                rewards=rng.normal(size=n).astype(np.float32), terminals=term, timeouts=trunc,
                next_observations=rng.normal(size=(n, obs_dim)).astype(np.float32))


# ---------------------------------------------------------------------------- returns
def slow_values(rewards, gamma):
    """Official formula, one episode: V_t = sum_j gamma^j r_{t+1+j}."""
    return np.array([sum(gamma ** j * r for j, r in enumerate(rewards[t + 1:])) for t in range(len(rewards))])


def test_reward_to_go_matches_slow_reference_on_mixed_episodes():
    rng = np.random.default_rng(1)
    lengths = [5, 1, 9, 3]  # includes a length-1 episode
    rewards = rng.normal(size=sum(lengths))
    starts = np.cumsum([0] + lengths[:-1])
    got = reward_to_go(rewards, starts, 0.9)
    want = np.concatenate([slow_values(rewards[s:s + n], 0.9) for s, n in zip(starts, lengths)])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert got[starts[1]] == 0.0  # a single transition has nothing after it


def test_termination_penalty_overwrites_terminal_reward_and_enters_previous_value():
    # episode A ends in termination, episode B in truncation
    data = make_arrays(n=7, obs_dim=1, act_dim=1, ends={3: "term", 6: "trunc"})
    data["rewards"][:] = [1, 1, 1, 5, 2, 2, 2]
    ds = EpisodeDataset.from_d4rl(data)
    joined = joined_columns(ds, discount=0.5, penalty=-100.0)
    r, v = joined[:, -2], joined[:, -1]
    np.testing.assert_allclose(r, [1, 1, 1, -100, 2, 2, 2])  # overwritten, not added (-95)
    assert v[2] == pytest.approx(-100.0)                     # V_{T-1} holds the penalty
    assert v[0] == pytest.approx(1 + 0.5 * 1 + 0.25 * -100)
    assert v[6] == 0.0 and v[5] == pytest.approx(2.0)        # truncation: no bootstrap
    np.testing.assert_allclose(apply_termination_penalty([1, 2], [False, False], -100), [1, 2])


# ---------------------------------------------------------------------------- episodes
def test_episode_boundaries_terminal_vs_truncation_and_trailing_episode():
    data = make_arrays(n=10, ends={2: "term", 5: "trunc"})  # rows 6-9 have no end flag
    ds = EpisodeDataset.from_d4rl(data)
    a = ds.arrays()
    np.testing.assert_array_equal(a["episode"], [0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    np.testing.assert_array_equal(a["step"], [0, 1, 2, 0, 1, 2, 0, 1, 2, 3])
    np.testing.assert_array_equal(np.flatnonzero(a["terminated"]), [2])
    np.testing.assert_array_equal(np.flatnonzero(a["truncated"]), [5, 9])  # trailing -> truncated
    np.testing.assert_array_equal(a["next_observation"], data["next_observations"])  # last s' kept
    s = ds.summary()
    assert (s.episodes, s.terminations, s.truncations, s.length_max) == (3, 1, 2, 4)
    assert s.return_mean == pytest.approx(np.mean([data["rewards"][i:j].sum() for i, j in [(0, 3), (3, 6), (6, 10)]]))


def test_row_flagged_terminal_and_timeout_counts_as_termination():
    data = make_arrays(n=4, ends={1: "term"})
    data["timeouts"][1] = True
    a = EpisodeDataset.from_d4rl(data).arrays()
    assert a["terminated"][1] and not a["truncated"][1]


def test_missing_next_observations_drops_unknown_truncated_ends():
    data = make_arrays(n=8, ends={2: "term", 5: "trunc", 6: "trunc"})
    del data["next_observations"]
    ds = EpisodeDataset.from_d4rl(data)
    a = ds.arrays()
    # episode [3,4,5]: row 5 dropped (s' unknown), row 4 becomes the truncated end with s' = obs[5];
    # episode [6]: a single truncated row vanishes; trailing [7] has no s' and vanishes too.
    assert len(ds) == 5
    np.testing.assert_array_equal(a["truncated"], [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(a["terminated"], [0, 0, 1, 0, 0])
    np.testing.assert_array_equal(a["next_observation"][3], data["observations"][4])
    np.testing.assert_array_equal(a["next_observation"][4], data["observations"][5])
    np.testing.assert_array_equal(a["episode"], [0, 0, 0, 1, 1])


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["observations"].__setitem__((3, 1), np.nan), "observations contains NaN"),
    (lambda d: d["rewards"].__setitem__(2, np.inf), "rewards contains inf"),
    (lambda d: d.__setitem__("actions", d["actions"][:-1]), "disagree on the number of transitions"),
    (lambda d: d.__setitem__("next_observations", d["next_observations"][:, :2]), "next_observations has shape"),
    (lambda d: d.pop("rewards"), "missing keys"),
    (lambda d: d.__setitem__("observations", np.array([["a"] * 3] * 10)), "must be numeric"),
])
def test_bad_input_gets_one_line_error(mutate, message):
    data = make_arrays(n=10)
    mutate(data)
    with pytest.raises(DataError, match=message) as err:
        EpisodeDataset.from_d4rl(data)
    assert "\n" not in str(err.value)


def test_empty_and_zero_length_episodes_are_rejected():
    with pytest.raises(DataError, match="empty"):
        EpisodeDataset.from_d4rl(make_arrays(n=0))
    ep = {"observations": np.zeros((1, 2)), "actions": np.zeros((0, 1)), "rewards": [],
          "terminations": [], "truncations": []}
    with pytest.raises(DataError, match="zero length"):
        EpisodeDataset.from_episodes([ep])


def test_save_to_disk_and_npz_round_trip(tmp_path):
    data = make_arrays(n=12, ends={4: "term"})
    np.savez(tmp_path / "d.npz", **data)
    ds = load_dataset(str(tmp_path / "d.npz"))
    ds.metadata["env_id"] = "Pendulum-v1"
    ds.save_to_disk(tmp_path / "saved")
    back = load_dataset(str(tmp_path / "saved"))
    assert back.metadata["env_id"] == "Pendulum-v1"
    for k, v in ds.arrays().items():
        np.testing.assert_array_equal(back.arrays()[k], v)
    with pytest.raises(DataError, match="cannot load dataset"):
        load_dataset(str(tmp_path / "nope"))


def test_d4rl_hdf5_file_loads_with_env_from_its_name(tmp_path):
    """A file laid out as D4RL's hopper-medium-v2.hdf5 (arrays at the root, infos/ and metadata/
    groups beside them) loads like the arrays, with D4RL's env, time limit and action bounds."""
    import h5py

    data = make_arrays(n=12, obs_dim=11, act_dim=3, ends={4: "term", 11: "trunc"})
    path = tmp_path / "hopper-medium-v2.hdf5"
    with h5py.File(path, "w") as f:
        for k, v in data.items():
            f[k] = v
        f["infos/qpos"] = np.zeros((12, 6))
        f["metadata/algorithm"] = "SAC"
    ds = load_dataset(str(path))
    want = EpisodeDataset.from_d4rl(data)
    for k, v in want.arrays().items():
        np.testing.assert_array_equal(ds.arrays()[k], v)
    assert ds.env_id == "Hopper-v4" and ds.metadata["max_episode_steps"] == 1000
    assert ds.metadata["action_low"] == [-1.0] * 3 and ds.metadata["dataset_id"] == "hopper-medium-v2"
    # D4RL's download names use underscores: walker2d_medium_replay-v2.hdf5
    from seqrl.data.episodes import d4rl_metadata

    assert d4rl_metadata("walker2d_medium_replay-v2")["dataset_id"] == "walker2d-medium-replay-v2"
    assert d4rl_metadata("halfcheetah-expert-v2")["env_id"] == "HalfCheetah-v4"
    assert TransitionBuffer(ds).actions.shape == (12, 3)
    # any other name keeps only what the file says; a broken file is one clear error
    other = tmp_path / "my-robot.h5"
    other.write_bytes(path.read_bytes())
    assert load_dataset(str(other)).env_id is None
    (tmp_path / "broken-v2.hdf5").write_text("not hdf5")
    with pytest.raises(DataError, match="not a readable HDF5 file"):
        load_dataset(str(tmp_path / "broken-v2.hdf5"))
    with pytest.raises(DataError, match="no such saved EpisodeDataset"):
        load_dataset("missing-medium-v2.hdf5")


def test_minari_loader_keeps_flags_spaces_and_time_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    import gymnasium as gym
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer

    env = gym.make("Pendulum-v1", max_episode_steps=5)
    buffers = []
    for seed, (term, length) in enumerate([(False, 5), (True, 3)]):
        obs, _ = env.reset(seed=seed)
        observations, actions = [obs], []
        for _ in range(length):
            act = env.action_space.sample()
            obs, *_ = env.step(act)
            observations.append(obs), actions.append(act)
        flags = np.zeros(length, bool)
        flags[-1] = True
        buffers.append(EpisodeBuffer(id=seed, observations=np.array(observations), actions=np.array(actions),
                                     rewards=np.arange(length, dtype=np.float64), terminations=flags & term,
                                     truncations=flags & (not term), infos={}))
    minari.create_dataset_from_buffers("test/pendulum/tiny-v0", buffers, env=env, data_format="arrow",
                                       algorithm_name="random", ref_min_score=-1.0, ref_max_score=2.0)
    ds = load_dataset("test/pendulum/tiny-v0")
    a = ds.arrays()
    assert len(ds) == 8 and ds.env_id == "Pendulum-v1" and ds.metadata["max_episode_steps"] == 5
    np.testing.assert_array_equal(np.flatnonzero(a["truncated"]), [4])
    np.testing.assert_array_equal(np.flatnonzero(a["terminated"]), [7])
    assert ds.metadata["action_low"] == [-2.0] and ds.metadata["ref_max_score"] == 2.0
    np.testing.assert_allclose(a["next_observation"][4], np.array(buffers[0].observations[5], np.float32))


def test_minari_dict_observations_are_flattened_like_gymnasium(tmp_path, monkeypatch):
    """Goal-conditioned Minari datasets store Dict observations: the loader flattens them in the
    order gymnasium's FlattenObservation uses at evaluation time, and records the layout."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    import gymnasium as gym
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer

    import dict_env

    env = gym.make(dict_env.register())
    obs, _ = env.reset(seed=0)
    observations, actions = [obs], []
    for _ in range(5):
        act = env.action_space.sample()
        obs, *_ = env.step(act)
        observations.append(obs), actions.append(act)
    stacked = {k: np.array([o[k] for o in observations]) for k in observations[0]}
    buffer = EpisodeBuffer(id=0, observations=stacked, actions=np.array(actions), rewards=np.zeros(5),
                           terminations=np.zeros(5, bool), truncations=np.arange(5) == 4, infos={})
    minari.create_dataset_from_buffers("test/dictpendulum/tiny-v0", [buffer], env=env, data_format="arrow",
                                       algorithm_name="random")
    ds = load_dataset("test/dictpendulum/tiny-v0")
    assert ds.observation_dim == 3 and ds.metadata["observation_layout"] == {"angle": 2, "velocity": 1}
    flat = np.array([gym.spaces.flatten(env.observation_space, o) for o in observations])
    a = ds.arrays()
    np.testing.assert_allclose(a["observation"], flat[:5])
    np.testing.assert_allclose(a["next_observation"][-1], flat[5])
    assert gym.wrappers.FlattenObservation(env).observation_space.shape == (3,)


def test_minari_non_box_observation_part_is_one_clear_error():
    import gymnasium as gym

    from seqrl.data.minari import observation_layout

    space = gym.spaces.Dict({"pos": gym.spaces.Box(-1, 1, (2,)), "room": gym.spaces.Discrete(4)})
    with pytest.raises(DataError, match="neither Box nor Dict of Box"):
        observation_layout(space)
    nested = gym.spaces.Dict({"a": gym.spaces.Dict({"x": gym.spaces.Box(-1, 1, (2, 2))}), "b": gym.spaces.Box(0, 1, (1,))})
    assert observation_layout(nested) == {"a.x": 4, "b": 1}


def test_minari_discrete_actions_are_one_clear_error(tmp_path, monkeypatch):
    """A Discrete-action Minari set (CartPole) would otherwise load as one 'continuous' action column."""
    import gymnasium as gym
    import minari
    from minari.data_collector import EpisodeBuffer

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=0)
    observations, actions, rewards, terminations, truncations = [obs], [], [], [], []
    for t in range(500):
        obs, reward, terminated, truncated, _ = env.step(t % 2)
        observations.append(obs), actions.append(t % 2), rewards.append(reward)
        terminations.append(terminated), truncations.append(truncated)
        if terminated or truncated:
            break
    buffer = EpisodeBuffer(id=0, seed=0, observations=np.array(observations), actions=np.array(actions),
                           rewards=np.array(rewards), terminations=np.array(terminations),
                           truncations=np.array(truncations), infos={})
    minari.create_dataset_from_buffers("seqrltest/cartpole/alternate-v0", [buffer], env=env, algorithm_name="alternate")
    with pytest.raises(DataError, match=r"action space Discrete\(2\); seqrl's methods need continuous actions"):
        load_dataset("seqrltest/cartpole/alternate-v0")


# ---------------------------------------------------------------------------- discretizer
def official_quantile_encode(data, x, n_bins):
    """Official QuantileDiscretizer (main branch, the active rule), transcribed: edges are every
    ceil(n/N)-th sorted value plus the column max; a value takes the largest edge it reaches,
    clipped to [0, N-1] (computed in float64, as the official joined array is)."""
    data = np.asarray(data, np.float64)
    per_bin = int(np.ceil(len(data) / n_bins))
    thresholds = np.concatenate([np.sort(data, axis=0)[::per_bin], data.max(axis=0, keepdims=True)], axis=0)
    out = np.zeros(x.shape, np.int64)
    for j in range(x.shape[1]):
        for i, v in enumerate(np.asarray(x, np.float64)[:, j]):
            reached = [k for k in range(len(thresholds)) if v >= thresholds[k, j]]
            out[i, j] = min(max(reached[-1] if reached else 0, 0), n_bins - 1)
    return out, thresholds


@pytest.mark.parametrize("n, n_bins", [(500, 20), (1037, 20)])
def test_quantile_encoding_and_midpoints_match_official_on_continuous_data(n, n_bins):
    rng = np.random.default_rng(2)
    data = rng.normal(size=(n, 3)).astype(np.float32) * [1, 10, 0.1]
    x = np.concatenate([rng.normal(size=(60, 3)) * [1, 10, 0.1], [[-99, -99, -99], [99, 99, 99]]]).astype(np.float32)
    d = Discretizer.fit(data, n_bins=n_bins)
    want, thr = official_quantile_encode(data, x, n_bins)
    got = d.encode(x).numpy()
    np.testing.assert_array_equal(got, want)
    mid = (thr[got, np.arange(3)] + thr[got + 1, np.arange(3)]) / 2
    np.testing.assert_allclose(d.decode(got).numpy(), mid, rtol=1e-6)
    # round trip on the data: error within the bin width
    rec = d.decode(d.encode(data)).numpy()
    assert (np.abs(rec - data) <= np.diff(thr, axis=0).max(0) + 1e-6).all()


def test_quantile_edges_are_not_linspace_ranks():
    """The official file's commented-out rule (N+1 linspace ranks) gives other edges: 1037 rows, N=20
    (every 52nd value) differ from ranks linspace(0, 1036, 21)."""
    data = np.arange(1037, dtype=np.float64)[:, None]
    d = Discretizer.fit(data, n_bins=20)
    np.testing.assert_array_equal(d.lower_edges[:, 0].numpy(), np.arange(0, 1037, 52)[:20])
    assert not np.array_equal(d.lower_edges[:, 0].numpy(), np.linspace(0, 1036, 21, dtype=int)[:20])


def test_small_data_uses_fewer_bins_where_the_official_edges_run_out():
    data = np.random.default_rng(5).normal(size=(250, 1))
    d = Discretizer.fit(data, n_bins=100)  # every 3rd value: 84 edges + the max -> 84 bins
    assert int(d.n_bins[0]) == 84
    below_max = np.sort(data[:, 0])[:-1][:, None]
    np.testing.assert_array_equal(d.encode(below_max).numpy(), official_quantile_encode(data, below_max, 100)[0])
    assert d.encode(data.max(0, keepdims=True)).item() == 83  # the max: the last bin (official: past its edges)


def test_value_column_is_tokenized_in_float64():
    """V differs from its float32 rounding near an edge: the token follows the float64 value."""
    values = np.linspace(0.0, 1.0, 1001)[:, None] + 1e-9  # float64 values that float32 cannot hold
    d = Discretizer.fit(values, n_bins=10)
    edge = float(d.lower_edges[1, 0])
    just_below = np.array([[np.nextafter(edge, -np.inf)]])
    assert d.encode(just_below).item() == 0 and d.encode(np.array([[edge]])).item() == 1
    assert np.float32(just_below[0, 0]) == np.float32(edge)  # in float32 the two are the same number


def test_duplicate_edges_give_no_empty_or_ambiguous_bins():
    rng = np.random.default_rng(3)
    sparse = np.where(rng.uniform(size=1000) < 0.9, 0.0, 1.0)              # sparse reward
    spike = np.where(rng.uniform(size=1000) < 0.3, 2.5, rng.normal(size=1000))  # atom + continuum
    const = np.full(1000, 7.0)
    data = np.stack([sparse, spike, const], 1).astype(np.float32)
    d = Discretizer.fit(data, n_bins=10)
    tokens = d.encode(data).numpy()
    for j in range(3):
        used = np.bincount(tokens[:, j], minlength=int(d.n_bins[j]))
        assert (used[: int(d.n_bins[j])] > 0).all(), f"empty bin in column {j}"
    assert d.n_bins[2] == 1 and d.n_bins[0] == 2
    np.testing.assert_array_equal(d.decode(d.encode([[0, 2.5, 7], [1, 2.5, 7]])).numpy(), [[0, 2.5, 7], [1, 2.5, 7]])
    assert not np.isin(tokens[spike != 2.5, 1], tokens[spike == 2.5, 1]).any()  # the atom has its own bin


def test_uniform_discretizer_and_probability_helpers():
    data = np.stack([np.linspace(0, 10, 101), np.full(101, 1.0)], 1)
    d = Discretizer.fit(data, n_bins=5, method="uniform")
    np.testing.assert_array_equal(d.encode([[0.0, 1], [1.99, 1], [2.0, 1], [10, 1]]).numpy()[:, 0], [0, 0, 1, 4])
    np.testing.assert_allclose(d.decode([[2, 0]]).numpy(), [[5.0, 1.0]])
    probs = torch.tensor([[0.5, 0.0, 0.0, 0.0, 0.5, 0.3]])  # last column = stop token, dropped
    assert d.expectation(probs, 0).item() == pytest.approx(0.5 * 1 + 0.5 * 9)
    assert d.percentile(torch.tensor([[0.2, 0.2, 0.2, 0.2, 0.2]]), 0.5, 0).item() == pytest.approx(5.0)


def test_discretizer_save_load_and_layout_check(tmp_path):
    data = np.random.default_rng(4).normal(size=(200, 4))
    d = Discretizer.fit(data, n_bins=8, layout={"observation_dim": 1, "action_dim": 1, "transition_dim": 4})
    d.save(tmp_path)
    back = Discretizer.load(tmp_path)
    np.testing.assert_array_equal(back.encode(data).numpy(), d.encode(data).numpy())
    with pytest.raises(DataError, match="fitted with observation_dim=1"):
        back.check_layout(observation_dim=2, action_dim=1, transition_dim=5)
    with pytest.raises(FileNotFoundError, match="no discretizer"):
        Discretizer.load(tmp_path / "missing")
    with pytest.raises(DataError, match="NaN"):
        Discretizer.fit(np.array([[np.nan], [1.0]]))


# ---------------------------------------------------------------------------- windows
def window_by_hand(joined, disc, ep_start, ep_len, start, context, n_tokens, max_path_length, truncated_end):
    """Rebuild one official training window from raw [s, a, r, V] rows."""
    rows, mask_rows = [], []
    for t in range(start, start + context):
        if t < ep_len:
            rows.append(disc.encode(joined[ep_start + t][None]).numpy()[0])
        else:
            rows.append(np.full(joined.shape[1], n_tokens))
        mask_rows.append(t <= max_path_length - 1 and (t < ep_len or not truncated_end))
    flat = np.concatenate(rows)
    mask = np.repeat(np.array(mask_rows, np.float32), joined.shape[1])
    return flat[:-1], flat[1:], mask[:-1]


def test_token_windows_equal_hand_built_windows(tmp_path):
    data = make_arrays(n=30, obs_dim=2, act_dim=1, ends={6: "term", 14: "trunc", 17: "term"})
    ds = EpisodeDataset.from_d4rl(data, metadata={"max_episode_steps": 8})
    cfg = TokenizerConfig(n_bins=7, context=4, discount=0.9)
    w = TokenWindows(ds, cfg, cache_dir=tmp_path)
    joined = joined_columns(ds, 0.9, -100.0)
    starts, lengths = ds.episode_bounds()
    assert len(w) == sum(l - 1 for l in lengths)
    truncated = ds.arrays()["truncated"][starts + lengths - 1]
    ids = np.arange(len(w))
    X, Y, M = w.__getitems__(ids)
    # windows numbered episode by episode, starts 0 .. length - 2 (official range(path_length - 1))
    by_hand = [(e, s) for e in range(len(lengths)) for s in range(lengths[e] - 1)]
    assert list(zip(*w.window_position(ids))) == by_hand
    for i, (e, s) in zip(ids, by_hand):
        x, y, m = window_by_hand(joined, w.discretizer, starts[e], lengths[e], s, 4, 7, 8, truncated[e])
        np.testing.assert_array_equal(X[i].numpy(), x)
        np.testing.assert_array_equal(Y[i].numpy(), y)
        np.testing.assert_array_equal(M[i].numpy(), m)
    # stop tokens after the termination of episode 0 stay in the loss
    window_episode = w.window_position(ids)[0]
    last = max(i for i, e in zip(ids, window_episode) if e == 0)
    first_stop = int((Y[last] == 7).nonzero()[0])
    assert M[last][first_stop] == 1  # predicting the stop token is part of the loss
    # episode 3 (rows 18-29) is 12 long, longer than max_path_length 8: rows past step 7 are masked
    assert any(M[i].min() == 0 for i, e in zip(ids, window_episode) if e == 3)


def test_window_ids_skip_single_transition_episodes_and_reject_out_of_range(tmp_path):
    # episodes of lengths 1, 4, 1, 1, 3: windows (1, 0..2) and (4, 0..1)
    ds = EpisodeDataset.from_d4rl(make_arrays(n=10, ends={0: "term", 4: "trunc", 5: "term", 6: "term"}))
    w = TokenWindows(ds, TokenizerConfig(n_bins=5, context=2), cache_dir=tmp_path)
    episode, start = w.window_position(np.arange(len(w)))
    assert list(zip(episode, start)) == [(1, 0), (1, 1), (1, 2), (4, 0), (4, 1)]
    with pytest.raises(IndexError, match="window ids"):
        w.__getitems__([len(w)])


def test_token_cache_is_reused_by_fingerprint(tmp_path):
    ds = EpisodeDataset.from_d4rl(make_arrays(n=50, ends={20: "term"}))
    w1 = TokenWindows(ds, TokenizerConfig(n_bins=5, context=3), cache_dir=tmp_path)
    files = sorted(tmp_path.glob("tokens-*.arrow"))
    assert len(files) == 1
    w2 = TokenWindows(ds, TokenizerConfig(n_bins=5, context=3), cache_dir=tmp_path)
    assert w1.cache_file == w2.cache_file == files[0]
    np.testing.assert_array_equal(w1.tokens, w2.tokens)
    TokenWindows(ds, TokenizerConfig(n_bins=5, context=3, discount=0.5), cache_dir=tmp_path)
    assert len(list(tmp_path.glob("tokens-*.arrow"))) == 2  # other settings, other file


def test_windows_reject_a_discretizer_fitted_on_other_dims(tmp_path):
    ds = EpisodeDataset.from_d4rl(make_arrays(n=20, obs_dim=3, act_dim=2))
    other = Discretizer.fit(np.zeros((5, 6)), layout={"observation_dim": 2, "action_dim": 2, "transition_dim": 6})
    with pytest.raises(DataError, match="fitted with observation_dim=2"):
        TokenWindows(ds, discretizer=other, cache_dir=tmp_path)


def test_dataloader_batches_windows(tmp_path):
    ds = EpisodeDataset.from_d4rl(make_arrays(n=40, ends={19: "term"}))
    w = TokenWindows(ds, TokenizerConfig(n_bins=5, context=3), cache_dir=tmp_path)
    loader = torch.utils.data.DataLoader(w, batch_size=8, shuffle=True, collate_fn=TokenWindows.collate)
    x, y, m = next(iter(loader))
    assert x.shape == y.shape == m.shape == (8, 3 * 7 - 1) and x.dtype == torch.long


# ---------------------------------------------------------------------------- transitions
def test_transition_buffer_terminals_scaling_and_seeded_sampling():
    data = make_arrays(n=10, ends={2: "term", 5: "trunc"})
    data["rewards"][:] = [1, 1, 1, 0, 0, 0, 2, 2, 2, 2]  # returns 3, 0, 8
    ds = EpisodeDataset.from_d4rl(data, metadata={"action_low": [-2, -2], "action_high": [2, 2]})
    buf = TransitionBuffer(ds, BufferConfig(normalize_reward=True, normalize_observations=True))
    np.testing.assert_array_equal(buf.terminals.numpy(), [0, 0, 1, 0, 0, 0, 0, 0, 0, 0])  # truncation bootstraps
    np.testing.assert_allclose(buf.rewards.numpy(), data["rewards"] * 1000 / 8, rtol=1e-6)
    np.testing.assert_allclose(buf.actions.numpy(), data["actions"] / 2, atol=1e-6)
    np.testing.assert_allclose(buf.observations.numpy().mean(0), 0, atol=1e-5)
    b1 = TransitionBuffer(ds, seed=3).sample(16)
    b2 = TransitionBuffer(ds, seed=3).sample(16)
    for k in TransitionBuffer.FIELDS:
        assert torch.equal(b1[k], b2[k])
    assert b1["observations"].shape == (16, 3) and b1["rewards"].shape == (16,)
