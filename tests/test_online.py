"""Online training: the appendable replay buffer, environment stepping with correct terminal vs
truncation flags, the CLI/recipe path, and resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from seqrl.data import DataError, ReplayBuffer, TransitionBuffer
from seqrl.data.collect import split_episodes
from seqrl.training.online import EnvironmentSource, OnlineConfig, OnlineLearner


def fill(buffer, n, start=0):
    for i in range(start, start + n):
        buffer.add(np.full(3, i), np.full(2, -i / 100), float(i), np.full(3, i + 1), 0.0, float(i % 4 == 3))


def test_replay_buffer_add_sample_and_fifo():
    rb = ReplayBuffer(3, 2, capacity=5, seed=0)
    with pytest.raises(DataError, match="empty"):
        rb.sample(2)
    fill(rb, 3)
    batch = rb.sample(64)
    assert set(batch) == set(TransitionBuffer.FIELDS)
    assert batch["observations"].shape == (64, 3) and batch["rewards"].shape == (64,)
    assert set(batch["rewards"].tolist()) <= {0.0, 1.0, 2.0}  # only filled rows are drawn
    fill(rb, 4, start=3)  # 7 added, capacity 5: rows 0 and 1 are gone
    assert len(rb) == 5 and rb.total_added == 7
    assert rb.arrays()["rewards"].tolist() == [2.0, 3.0, 4.0, 5.0, 6.0]  # oldest first
    # a batch of rows at once wraps the same way
    rb.add(np.zeros((2, 3)), np.zeros((2, 2)), [7.0, 8.0], np.zeros((2, 3)), [0, 1], [0, 0])
    assert rb.arrays()["rewards"].tolist() == [4.0, 5.0, 6.0, 7.0, 8.0]
    assert rb.arrays()["terminals"].tolist() == [0, 0, 0, 0, 1]


def test_replay_buffer_state_round_trip():
    rb = ReplayBuffer(3, 2, capacity=4, seed=1)
    fill(rb, 6)
    other = ReplayBuffer(3, 2, capacity=4, seed=99)
    other.load_state_dict(rb.state_dict())
    for name, value in rb.arrays().items():
        np.testing.assert_array_equal(other.arrays()[name], value)
    a, b = rb.sample(16), other.sample(16)
    for key in a:
        assert torch.equal(a[key], b[key])
    with pytest.raises(DataError, match="does not fit"):
        ReplayBuffer(3, 2, capacity=8).load_state_dict(rb.state_dict())  # wrapped: same capacity only
    grown = ReplayBuffer(3, 2, capacity=10)
    small = ReplayBuffer(3, 2, capacity=4)
    fill(small, 3)
    grown.load_state_dict(small.state_dict())  # not wrapped: a larger buffer takes it (a resumed run with more steps)
    assert grown.arrays()["rewards"].tolist() == [0.0, 1.0, 2.0] and grown.position == 3


def test_split_episodes_rebuilds_whole_episodes():
    rb = ReplayBuffer(3, 2, capacity=20)
    fill(rb, 10)  # truncation every 4th row; rows 8-9 are an unfinished episode
    episodes = split_episodes(rb.arrays())
    assert [len(e["actions"]) for e in episodes] == [4, 4, 2]
    for e in episodes:
        assert len(e["observations"]) == len(e["actions"]) + 1
        assert e["truncations"][-1] and not e["truncations"][:-1].any() and not e["terminations"].any()
    np.testing.assert_array_equal(episodes[1]["observations"][:, 0], [4, 5, 6, 7, 8])


class RandomPolicy:
    def act(self, obs, deterministic=False):
        return np.zeros(1, np.float32)


def test_environment_source_terminal_vs_truncation():
    """InvertedPendulum with a 5-step limit and random actions: falls (terminated, terminal 1) and
    time-limit ends (terminal 0, so Q targets bootstrap; truncation 1) are both stored as such."""
    config = OnlineConfig(env_id="InvertedPendulum-v5", max_episode_steps=5, random_steps=400,
                          learning_starts=10, batch_size=4, seed=0)
    rb = ReplayBuffer(4, 1, capacity=400)
    source = EnvironmentSource(config, RandomPolicy(), rb)
    batches = [source.next_batch() for _ in range(400)]
    assert batches[0] == [] and len(batches[-1]) == 1 and batches[-1][0]["observations"].shape == (4, 4)
    a = rb.arrays()
    assert (a["terminals"] * a["truncations"]).sum() == 0  # never both
    assert a["terminals"].sum() > 0 and a["truncations"].sum() > 0
    lengths = [len(e["actions"]) for e in split_episodes(a)]
    assert sum(lengths) == 400 and max(lengths) <= 5
    episodes = split_episodes(a)
    # an episode is truncated exactly when it reached the 5-step limit without falling
    for e in episodes[:-1]:
        assert e["truncations"][-1] == (len(e["actions"]) == 5 and not e["terminations"][-1])
    # each stored next observation is the following row's observation inside an episode
    for e in episodes:
        assert np.all(np.isfinite(e["observations"]))
    finished = episodes[:len(source.finished)]
    assert [n for _, _, n in source.finished] == [len(e["actions"]) for e in finished]
    assert [r for _, r, _ in source.finished] == [float(e["rewards"].sum()) for e in finished]


def test_online_learner_reports_train_returns():
    from seqrl.algos import SAC, SACConfig

    config = OnlineConfig(env_id="InvertedPendulum-v5", max_episode_steps=5, random_steps=50,
                          learning_starts=20, batch_size=8, updates_per_step=2, seed=0)
    algo = SAC(SACConfig(hidden_dims=(8,)), 4, 1, action_low=[-3.0], action_high=[3.0])
    source = EnvironmentSource(config, algo, ReplayBuffer(4, 1, capacity=100))
    learner = OnlineLearner(algo, source)
    seen = [learner.train_step(source.next_batch()) for _ in range(60)]
    assert seen[0] == {} and algo.num_updates == 2 * (60 - 19)
    assert any("train_return" in m for m in seen)


def run_online(tmp_path, *extra):
    from seqrl.training.run import main

    return main("sac", ["--online", "--env", "Pendulum-v1", "--output_dir", str(tmp_path / "run"),
                        "--hidden_dims", "16", "16", "--batch_size", "16", "--random_steps", "50",
                        "--learning_starts", "50", "--eval_episodes", "1", "--eval_every", "0",
                        "--log_every", "50", *extra])


def test_online_run_resume_restores_replay_and_learner(tmp_path):
    first = run_online(tmp_path, "--max_steps", "300", "--save_every", "150")
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "step_300" / "training_state.pt", weights_only=False)
    replay = ckpt["source"]["replay"]
    assert replay["size"] == 300 and ckpt["learner"]["algorithm"]["num_updates"] == 300 - 49
    resumed = run_online(tmp_path, "--max_steps", "400", "--save_every", "200", "--resume")
    state = torch.load(tmp_path / "run" / "checkpoints" / "step_400" / "training_state.pt", weights_only=False)
    after = state["source"]["replay"]
    assert after["size"] == 400 and state["learner"]["algorithm"]["num_updates"] == 400 - 49
    # the first 300 rows are the saved ones; the episode in progress (Pendulum: 200-step
    # episodes, so rows 200-299) was cut at the checkpoint: marked truncated, still bootstrapping
    torch.testing.assert_close(after["observations"][:300], replay["observations"])
    assert after["truncations"][299] == 1 and after["terminals"][:300].sum() == 0
    assert after["truncations"][:300].sum() == 2  # the 200-step limit, then the cut
    history = json.loads((tmp_path / "run" / "train_history.json").read_text())
    assert [h["step"] for h in history] == [50, 100, 150, 200, 250, 300, 350, 400]
    assert resumed["eval"]["return_mean"] < 0  # evaluated once at the end, Pendulum returns are negative
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert "Trained online in `Pendulum-v1`" in card and "environment steps | 400" in card
    del first


def test_online_refuses_offline_only_algorithms(tmp_path):
    from seqrl.training.run import main

    with pytest.raises(SystemExit, match="dataset only"):
        main("iql", ["--online", "--output_dir", str(tmp_path)])


@pytest.mark.parametrize("flags,message", [
    (["--env", "NoSuchEnv-v0"], "cannot make environment 'NoSuchEnv-v0'"),
    (["--env", "CartPole-v1"], "needs Box observations and actions"),
    (["--updates_per_step", "0"], "--updates_per_step must be at least 1"),
    (["--random_steps", "-5"], "--random_steps must be at least 0"),
])
def test_online_bad_input_is_one_line_before_training(tmp_path, flags, message):
    from seqrl.training.run import main

    with pytest.raises(SystemExit, match=message):
        main("sac", ["--online", "--output_dir", str(tmp_path), *flags])
    assert not (tmp_path / "checkpoints").exists()
