"""Bad input is refused before any work, in one line naming the problem (issue probes)."""

import json
import warnings

import numpy as np
import pytest

import seqrl
from seqrl.data import DataError, EpisodeDataset, load_dataset
from seqrl.data.collect import rollout
from seqrl.data.controllers import make_controller
from seqrl.hub import CheckpointError, load_trajectory_model
from seqrl.training.run import main

ENV = "InvertedPendulum-v5"
TINY = ["--hidden_dims", "16", "16", "--batch_size", "16", "--log_every", "1", "--eval_episodes", "0", "--no-resume"]


def arrays(n=60, obs_dim=4, reward=1.0):
    rng = np.random.default_rng(0)
    terminals = np.zeros(n, bool)
    terminals[n // 2 - 1] = terminals[-1] = True
    return {"observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
            "actions": rng.uniform(-1, 1, size=(n, 1)).astype(np.float32),
            "rewards": np.full(n, reward, np.float32), "terminals": terminals, "timeouts": np.zeros(n, bool)}


@pytest.fixture(scope="module")
def ip_data(tmp_path_factory):
    episodes = rollout(ENV, make_controller(ENV, "medium", seed=0), n_steps=400, seed=0, max_episode_steps=50)
    ds = EpisodeDataset.from_episodes(episodes, metadata={"env_id": ENV, "max_episode_steps": 50, "source": "t",
                                                          "ref_min_score": 0.0, "ref_max_score": 50.0})
    return str(ds.save_to_disk(tmp_path_factory.mktemp("d") / "ip"))


@pytest.mark.parametrize("flags, message", [
    (["--max_steps", "-5"], "--max_steps must be at least 1"),
    (["--batch_size", "0"], "--batch_size must be at least 1"),
    (["--log_every", "0"], "--log_every must be at least 1"),
])
def test_absurd_run_options_are_refused_before_the_data_loads(flags, message, tmp_path):
    with pytest.raises(SystemExit, match=message) as err:
        main("iql", ["--dataset", str(tmp_path / "never-read.npz"), "--output_dir", str(tmp_path / "o"), *flags])
    assert "\n" not in str(err.value) and not (tmp_path / "o").exists()


def test_yaml_values_are_type_checked(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("max_steps: fifty\n")
    with pytest.raises(SystemExit, match="max_steps must be an integer, got 'fifty'"):
        main("iql", ["--config", str(config), "--dataset", str(tmp_path / "never-read.npz")])
    config.write_text("betas: [0.9, big]\n")
    with pytest.raises(SystemExit, match="betas must be"):
        main("tt", ["--config", str(config)])


@pytest.mark.parametrize("column", ["rewards", "observations"])
def test_absurd_magnitudes_in_the_data_are_refused(column):
    data = arrays()
    data[column].reshape(-1)[7] = 1e30
    with pytest.raises(DataError, match=rf"{column} holds 1e\+30 at index"):
        EpisodeDataset.from_d4rl(data)


def test_act_refuses_other_shapes_and_non_finite_observations(ip_data, tmp_path):
    main("bc", TINY + ["--dataset", ip_data, "--output_dir", str(tmp_path), "--max_steps", "2"])
    policy = seqrl.from_pretrained(str(tmp_path / "model"))
    with pytest.raises(ValueError, match=r"observations of shape \(2, 8\): this policy takes \(4,\)"):
        policy.act(np.zeros((2, 8), np.float32))  # a multiple of the width: once silently 4 actions
    with pytest.raises(ValueError, match="NaN or inf"):
        policy.act(np.array([0.0, np.nan, 0.0, 0.0], np.float32))
    assert policy.act(np.zeros((3, 4), np.float32)).shape == (3, 1)


def test_eval_in_an_env_of_other_spaces_is_one_line(ip_data, tmp_path, capsys):
    from seqrl.cli import main as cli

    main("bc", TINY + ["--dataset", ip_data, "--output_dir", str(tmp_path), "--max_steps", "2"])
    capsys.readouterr()
    assert cli(["eval", str(tmp_path / "model"), "--env_id", "Swimmer-v5", "--episodes", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Swimmer-v5 has observations of size 8" in err[0] and "has 4 and 1" in err[0]


def test_a_dataset_of_another_env_is_refused_before_training(ip_data, tmp_path):
    with pytest.raises(SystemExit, match="Hopper-v5 has observations of size 11.*the dataset") as err:
        main("bc", TINY[:-3] + ["--dataset", ip_data, "--env", "Hopper-v5", "--eval_episodes", "2",
                                "--output_dir", str(tmp_path), "--max_steps", "50"])
    assert "\n" not in str(err.value) and not (tmp_path / "checkpoints").exists()


def test_a_misspelled_builtin_id_names_the_nearest_without_the_network(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="is not a built-in dataset id; nearest: seqrl/invertedpendulum/medium-v0"):
        load_dataset("seqrl/invertedpendulum/meduim-v0")


@pytest.fixture()
def tt_checkpoint(tmp_path):
    from seqrl.data import Discretizer
    from seqrl.hub import TrajectoryModel, save_pretrained
    from seqrl.models.trajectory_transformer import TrajectoryTransformerConfig, TrajectoryTransformerModel

    cfg = TrajectoryTransformerConfig(observation_dim=2, action_dim=1, vocab_size=8, block_size=14, n_layer=1,
                                      n_head=1, n_embd=8)
    disc = Discretizer.fit(np.random.default_rng(0).normal(size=(50, 5)), n_bins=8,
                           layout={"observation_dim": 2, "action_dim": 1, "transition_dim": 5})
    summary = EpisodeDataset.from_d4rl(arrays()).summary().as_dict()
    meta = {"env_id": ENV, "dataset": {"source": "toy", **summary},
            "tokenizer": {"method": "quantile", "n_bins": 8, "discount": 0.99, "termination_penalty": -100.0,
                          "context": 3, "max_path_length": 10},
            "training": {"steps": 0, "batch_size": 4, "learning_rate": 6e-4, "final_loss": 0.0, "final_losses_by_type": {}}}
    return save_pretrained(TrajectoryModel(TrajectoryTransformerModel(cfg), disc, meta), tmp_path / "tt")


@pytest.mark.parametrize("damage, message", [
    ("truncate_weights", "do not load as a Trajectory Transformer"),
    ("random_weights", "do not load as a Trajectory Transformer"),
    ("no_discretizer_weights", "has no discretizer.safetensors"),
    ("config_dims", "config.json and model.safetensors do not load"),
])
def test_damaged_tt_checkpoint_files_are_one_line_naming_the_file(tt_checkpoint, damage, message):
    weights = tt_checkpoint / "model.safetensors"
    if damage == "truncate_weights":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "random_weights":
        weights.write_bytes(np.random.default_rng(0).bytes(4000))
    elif damage == "no_discretizer_weights":
        (tt_checkpoint / "discretizer.safetensors").unlink()
    else:
        config = json.loads((tt_checkpoint / "config.json").read_text())
        config["observation_dim"] = 3
        (tt_checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=message) as err:
        load_trajectory_model(tt_checkpoint)
    assert "\n" not in str(err.value)


def test_damaged_policy_weights_are_one_line(ip_data, tmp_path):
    main("bc", TINY + ["--dataset", ip_data, "--output_dir", str(tmp_path), "--max_steps", "2"])
    (tmp_path / "model" / "model.safetensors").write_bytes(b"\0" * 64)
    with pytest.raises(CheckpointError, match="model.safetensors is not a readable safetensors file"):
        seqrl.from_pretrained(str(tmp_path / "model"))


def test_a_d4rl_file_without_timeouts_says_so(tmp_path):
    data = arrays(n=3000)
    data.pop("timeouts")
    data["terminals"][:] = False
    path = tmp_path / "hopper-medium-v2.npz"
    np.savez(path, observations=np.zeros((3000, 11), np.float32), actions=np.zeros((3000, 3), np.float32),
             rewards=data["rewards"], terminals=data["terminals"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(str(path))
    text = " ".join(str(w.message) for w in caught)
    assert "no `timeouts` key, so episodes end only at terminals: 1 episodes" in text
    assert "longer than the env's time limit 1000" in text
    assert ds.metadata["ref_source"].startswith("D4RL")  # D4RL's own file name: D4RL's references


def test_normalized_scores_use_the_datas_own_references_and_say_which(tmp_path):
    """A Hopper-v5 file is not D4RL's: no D4RL references; the user can give them, and they are named."""
    path = tmp_path / "my_hopper_v5.npz"
    data = arrays(n=200, obs_dim=11) | {"actions": np.zeros((200, 3), np.float32)}
    np.savez(path, **data)
    ds = load_dataset(str(path))
    assert ds.metadata.get("ref_min_score") is None
    from seqrl.training.run import dataset_metadata, load_episodes

    given = load_episodes(str(path), "Hopper-v5", ref_min_score=-10.0, ref_max_score=3000.0)
    meta = dataset_metadata(given, str(path))
    assert (meta["ref_min_score"], meta["ref_max_score"]) == (-10.0, 3000.0) and "user" in meta["ref_source"]
    # the checkpoint records the file's name and content hash, not this machine's path
    assert meta["dataset"]["source"] == "npz:my_hopper_v5.npz" and str(tmp_path) not in json.dumps(meta)
    assert len(meta["dataset"]["sha256"]) == 64


def test_end_of_training_evaluation_and_seqrl_eval_use_the_same_seeds(ip_data, tmp_path, capsys):
    from seqrl.cli import main as cli

    result = main("bc", TINY[:-3] + ["--dataset", ip_data, "--output_dir", str(tmp_path), "--max_steps", "5",
                                     "--eval_episodes", "3", "--no-resume"])
    capsys.readouterr()
    assert cli(["eval", str(tmp_path / "model"), "--episodes", "3", "--output", str(tmp_path / "e.json")]) == 0
    out = capsys.readouterr().out
    assert "reset seeds 10000..10002" in out
    assert json.loads((tmp_path / "e.json").read_text())["mean"] == pytest.approx(result["eval"]["return_mean"])


def test_tt_max_path_length_is_the_envs_time_limit_for_a_file_without_one(tmp_path):
    from seqrl.training.run import time_limit

    path = tmp_path / "data.npz"
    np.savez(path, **arrays(n=60))
    ds = load_dataset(str(path))
    assert ds.metadata.get("max_episode_steps") is None
    ds.metadata["env_id"] = "Hopper-v5"
    assert time_limit(ds) == 1000  # not the longest episode (30)


def test_threads_default_leaves_busy_cpus_alone(monkeypatch):
    import torch

    from seqrl import threads

    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (2.7, 2.5, 2.0))  # both cores busy elsewhere
    assert threads.default_threads() == 1
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (0.2, 0.1, 0.1))
    assert threads.default_threads() == 2
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert threads.default_threads() == 1  # shared out among the processes of a launch
    before = torch.get_num_threads()
    try:
        assert threads.configure_threads(1) == 1 and torch.get_num_threads() == 1
        with pytest.raises(ValueError, match="at least 1"):
            threads.configure_threads(0)
    finally:
        torch.set_num_threads(before)
