"""Offline-to-online fine-tuning: what carries over (optimizer, normalisation, reward transform), the
two buffer layouts, Cal-QL's Monte-Carlo lower bound, the metrics, and bad input refused up front."""

import json
import math

import numpy as np
import pytest
import torch

from seqrl.algos.cql import CQL, CQLConfig, calibrated
from seqrl.data import BufferConfig, TransitionBuffer, load_dataset
from seqrl.data.returns import monte_carlo_returns
from seqrl.data.transitions import ReplayBuffer
from seqrl.training.finetune import MixedSource, load_offline, main as finetune, regret
from seqrl.training.loop import latest_checkpoint, read_training_state
from seqrl.training.online import EnvironmentSource, OnlineConfig
from seqrl.training.run import main as train

ENV = "InvertedPendulum-v5"
TINY = ["--hidden_dims", "32", "32", "--batch_size", "32", "--log_every", "1", "--no-resume", "--threads", "1"]


@pytest.fixture(scope="module")
def data(pendulum_data):
    return pendulum_data[0], load_dataset(pendulum_data[0])


@pytest.fixture(scope="module")
def offline_iql(data, tmp_path_factory):
    """An IQL run of 20 updates with the actor's cosine decay on (its rate ends near 0)."""
    out = tmp_path_factory.mktemp("iql")
    train("iql", TINY + ["--dataset", data[0], "--output_dir", str(out), "--max_steps", "20", "--eval_episodes", "0",
                         "--cosine_lr_decay", "--normalize_reward"])
    return out


def test_monte_carlo_returns_by_hand():
    g = monte_carlo_returns(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([0, 3]), 0.5)
    np.testing.assert_allclose(g, [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3, 4 + 0.5 * 5, 5])


def test_replay_writes_returns_when_an_episode_ends_across_the_wrap():
    replay = ReplayBuffer(1, 1, capacity=4, mc_returns_discount=0.5)
    for r in (1.0, 2.0, 3.0):  # episode A: rows 0-2
        replay.add([0.0], [0.0], r, [0.0], 0.0, 0.0)
    replay.end_episode(3)
    assert replay.mc_returns[:3].tolist() == [2.75, 3.5, 3.0]
    replay.add([0.0], [0.0], 4.0, [0.0], 0.0, 0.0)  # episode B: rows 3, 0, 1 (wraps)
    replay.add([0.0], [0.0], 8.0, [0.0], 0.0, 0.0)
    assert math.isinf(replay.mc_returns[0]) and replay.mc_returns[0] < 0  # in progress: no bound yet
    replay.add([0.0], [0.0], 2.0, [1.0], 1.0, 0.0)
    replay.end_episode(3)
    assert replay.mc_returns[3] == 4 + 0.5 * 8 + 0.25 * 2 and replay.mc_returns[0] == 8 + 0.5 * 2 and replay.mc_returns[1] == 2
    assert replay.mc_returns[2] == 3.0  # episode A's last row, not overwritten
    assert "mc_returns" in replay.sample(5)


def test_buffer_returns_carry_the_reward_transform(data):
    _, ds = data
    plain = TransitionBuffer(ds, BufferConfig(mc_returns_discount=0.9))
    scaled = TransitionBuffer(ds, BufferConfig(normalize_reward=True, mc_returns_discount=0.9))
    starts, _ = ds.episode_bounds()
    expected = monte_carlo_returns(ds.arrays()["reward"], starts, 0.9)
    np.testing.assert_allclose(plain.mc_returns.numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(scaled.mc_returns.numpy(), expected * scaled.reward_multiplier, rtol=1e-5)
    assert "mc_returns" in scaled.sample(4) and "mc_returns" not in TransitionBuffer(ds).sample(4)


def test_calql_bound_by_hand():
    q = torch.tensor([[[1.0, 1.0, 3.0, 0.5]]])  # [E=1, B=1, 1 uniform | 3 policy]
    bounded, rate = calibrated(q, torch.tensor([2.0]), n_uniform=1)
    assert bounded.tolist() == [[[1.0, 2.0, 3.0, 2.0]]]  # the uniform action keeps its value
    assert float(rate) == pytest.approx(2 / 3)


def _cql_batch(n=16, obs_dim=3, act_dim=2, mc=None):
    g = torch.Generator().manual_seed(0)
    batch = {"observations": torch.randn(n, obs_dim, generator=g), "actions": torch.rand(n, act_dim, generator=g) * 2 - 1,
             "rewards": torch.randn(n, generator=g), "next_observations": torch.randn(n, obs_dim, generator=g),
             "terminals": torch.zeros(n)}
    return batch | ({"mc_returns": torch.full((n,), mc)} if mc is not None else {})


def test_calql_is_cql_where_no_bound_binds_and_lifts_the_penalty_where_it_does():
    cfg = dict(hidden_dims=(16, 16), cql_n_actions=3)
    plain = CQL(CQLConfig(**cfg), 3, 2)
    cal = CQL(CQLConfig(**cfg, calql=True), 3, 2)
    cal.load_state_dict(plain.state_dict())
    _, a = plain.loss(_cql_batch())
    _, b = cal.loss(_cql_batch(mc=-math.inf))
    assert torch.allclose(a["cql_loss"], b["cql_loss"]) and float(b["calql_bound_rate"]) == 0.0
    cal.generator.manual_seed(0)
    _, c = cal.loss(_cql_batch(mc=1e3))  # a bound above every Q: the policy's columns all lifted to it
    assert float(c["calql_bound_rate"]) == 1.0 and float(c["cql_diff"].detach().min()) > 900
    with pytest.raises(ValueError, match="Monte-Carlo"):
        cal.loss(_cql_batch())


def test_online_rows_get_the_offline_transform():
    class Zero:
        def act(self, obs, deterministic=False):
            return np.zeros(1, np.float32)

    mean, std = np.array([1.0, 2.0, 3.0, 4.0], np.float32), np.array([2.0, 2.0, 4.0, 4.0], np.float32)
    replay = ReplayBuffer(4, 1, 10)
    source = EnvironmentSource(OnlineConfig(env_id=ENV, random_steps=0, learning_starts=100), Zero(), replay,
                               obs_mean=mean, obs_std=std, reward_multiplier=0.25)
    raw = source.obs.copy()
    source.step()
    np.testing.assert_allclose(replay.observations[0].numpy(), (raw - mean) / std, rtol=1e-6)
    assert float(replay.rewards[0]) == 0.25  # InvertedPendulum pays 1 per step


def test_mixed_batches_take_the_ratio_from_the_data(data):
    _, ds = data
    offline = TransitionBuffer(ds)
    replay = ReplayBuffer(4, 1, 100)

    class Zero:
        def act(self, obs, deterministic=False):
            return np.zeros(1, np.float32)

    source = MixedSource(OnlineConfig(env_id=ENV, random_steps=0, learning_starts=0, batch_size=8), Zero(), replay,
                         None, offline, 0.25)
    assert source.next_batch() == [] or len(replay) >= 6  # waits for one online batch of 6 rows
    for _ in range(6):
        batches = source.next_batch()
    (batch,) = batches
    online_rows = replay.observations[:len(replay)]
    in_online = [(online_rows == row).all(-1).any().item() for row in batch["observations"]]
    assert in_online == [False, False] + [True] * 6


def test_finetune_carries_optimizer_normalisation_and_prefills(data, offline_iql, tmp_path):
    algo, meta, carried = load_offline(str(offline_iql / "model"), calql=False, device="cpu")
    assert carried and algo.num_updates == 20 and not algo.schedulers  # no cosine while fine-tuning
    actor_group = algo.optimizer.param_groups[0]
    assert actor_group["lr"] == pytest.approx(algo.config.actor_lr)  # reset from the decayed ~0
    assert int(algo.optimizer.state[actor_group["params"][0]]["step"]) == 20  # Adam moments carried
    assert meta["buffer"]["reward_multiplier"] != 1.0

    out = tmp_path / "ft"
    result = finetune([str(offline_iql / "model"), "--max_steps", "40", "--eval_every", "20", "--eval_episodes", "2",
                       "--output_dir", str(out), "--log_every", "10", "--threads", "1"])
    summary = json.loads((out / "finetune.json").read_text())
    assert set(summary["before"]) >= {"return_mean", "normalized_score"} and summary["after"]["return_mean"] > 0
    assert [e["step"] for e in summary["evaluations"]] == [20, 40]
    assert summary["regret"] == pytest.approx(regret(result_episodes(out), 5.0, 50.0))
    replay = read_training_state(latest_checkpoint(out))["source"]["replay"]
    assert replay["size"] == len(data[1].arrays()["reward"]) + 40  # the data, then every online step
    assert result["optimizer_state"] != "fresh"


def result_episodes(out):
    state = read_training_state(latest_checkpoint(out))["source"]
    return [tuple(x) for x in state["finished"]]


def test_regret_by_hand():
    assert regret([(10, 5.0, 10), (30, 50.0, 20)], 5.0, 50.0) == pytest.approx(0.5)
    assert regret([], 0.0, 1.0) is None and regret([(1, 1.0, 1)], None, None) is None


@pytest.mark.parametrize("args, message", [
    (["--calql"], "CQL option"),
    (["--env", "Pendulum-v1"], "the policy takes"),
    (["--offline_ratio", "1.5"], "offline_ratio"),
    (["--buffer_size", "10"], "cannot hold"),
])
def test_bad_input_is_one_line(args, message, offline_iql, tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        finetune([str(offline_iql / "model"), "--output_dir", str(tmp_path), "--max_steps", "5", *args])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_bc_checkpoint_is_refused(data, tmp_path):
    train("bc", TINY + ["--dataset", data[0], "--output_dir", str(tmp_path / "bc"), "--max_steps", "2", "--eval_episodes", "0"])
    with pytest.raises(SystemExit, match="fine-tunes iql"):
        finetune([str(tmp_path / "bc" / "model"), "--max_steps", "5"])


def test_calql_finetune_of_a_cql_checkpoint_with_separate_buffers(data, tmp_path):
    train("cql", TINY + ["--dataset", data[0], "--output_dir", str(tmp_path / "cql"), "--max_steps", "5",
                         "--eval_episodes", "0", "--cql_n_actions", "2"])
    result = finetune([str(tmp_path / "cql" / "model"), "--calql", "--offline_ratio", "0.5", "--max_steps", "60",
                       "--eval_every", "0", "--eval_episodes", "1", "--output_dir", str(tmp_path / "ft"),
                       "--log_every", "20", "--threads", "1"])
    rates = [h["calql_bound_rate"] for h in result["history"] if "calql_bound_rate" in h]
    assert rates and all(0.0 <= r <= 1.0 for r in rates)
    replay = read_training_state(latest_checkpoint(tmp_path / "ft"))["source"]["replay"]
    assert replay["size"] == 60 and torch.isfinite(replay["mc_returns"][: int(sum(e[2] for e in result_episodes(tmp_path / "ft")))]).all()


def test_an_online_checkpoint_asks_for_data(tmp_path):
    train("sac", ["--online", "--env", ENV, "--max_steps", "12", "--random_steps", "6", "--learning_starts", "6",
                  "--hidden_dims", "16", "16", "--batch_size", "4", "--eval_episodes", "0", "--threads", "1",
                  "--no-resume", "--output_dir", str(tmp_path / "sac")])
    with pytest.raises(SystemExit, match="trained online"):
        finetune([str(tmp_path / "sac" / "model"), "--max_steps", "5"])
