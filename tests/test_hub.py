"""seqrl checkpoints and datasets through the real huggingface_hub client and the local test Hub."""


import numpy as np
import pytest
import torch

import seqrl
from seqrl.data import DataError, Discretizer, EpisodeDataset, load_dataset
from seqrl.hub import CheckpointError, push_to_hub
from seqrl.models.trajectory_transformer import TrajectoryTransformerConfig, TrajectoryTransformerModel
from seqrl.hub import TrajectoryModel


@pytest.fixture()
def trajectory_model(tmp_path):
    torch.manual_seed(0)
    config = TrajectoryTransformerConfig(observation_dim=3, action_dim=1, vocab_size=8, n_layer=1, n_head=2, n_embd=16)
    model = TrajectoryTransformerModel(config).eval()
    with torch.no_grad():
        model.pos_emb.normal_()
    data = np.random.default_rng(0).normal(size=(100, 6))
    disc = Discretizer.fit(data, n_bins=8, layout={"observation_dim": 3, "action_dim": 1, "transition_dim": 6})
    meta = {"env_id": "Toy-v0", "max_episode_steps": 50, "action_low": [-1.0], "action_high": [1.0],
            "dataset": {"source": "toy", "episodes": 2, "transitions": 100, "return_mean": 1.0, "return_std": 0.0,
                        "return_min": 1.0, "return_max": 1.0, "terminations": 1, "truncations": 1},
            "tokenizer": {"method": "quantile", "n_bins": 8, "discount": 0.99, "termination_penalty": -100,
                          "context": 10},
            "training": {"steps": 7, "batch_size": 4, "learning_rate": 6e-4, "final_loss": 1.5,
                         "final_losses_by_type": {"obs": 1.0}}}
    tm = TrajectoryModel(model, disc, meta)
    seqrl.save_pretrained(tm, tmp_path / "ckpt")
    return tm, tmp_path / "ckpt"


def assert_same_model(a: TrajectoryModel, b: TrajectoryModel):
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert torch.equal(a.discretizer.lower_edges, b.discretizer.lower_edges)
    assert torch.equal(a.discretizer.centres, b.discretizer.centres)
    config_a, config_b = a.model.config.to_dict(), b.model.config.to_dict()
    config_a.pop("_name_or_path"), config_b.pop("_name_or_path")  # where it was loaded from
    assert config_a == config_b
    assert a.metadata["env_id"] == b.metadata["env_id"]


def test_push_then_load_by_repo_id_into_fresh_cache_then_offline(trajectory_model, hub_server, hub_repo_id,
                                                                  fresh_hf_cache, run_offline):
    tm, ckpt = trajectory_model
    push_to_hub(ckpt, hub_repo_id)
    loaded = seqrl.from_pretrained(hub_repo_id, cache_dir=fresh_hf_cache.hub_cache)
    assert_same_model(tm, loaded)
    card = (ckpt / "README.md").read_text()
    assert "Toy-v0" in card and "| updates | 7" in card and "1.5000" in card
    # a new process, the Hub gone, HF_HUB_OFFLINE=1: loads from the cache alone
    code = f"""
import seqrl, torch
m = seqrl.from_pretrained({hub_repo_id!r}, cache_dir={str(fresh_hf_cache.hub_cache)!r})
ref = seqrl.from_pretrained({str(ckpt)!r})
assert all(torch.equal(v, ref.model.state_dict()[k]) for k, v in m.model.state_dict().items())
assert torch.equal(m.discretizer.lower_edges, ref.discretizer.lower_edges)
print("offline-ok")
"""
    proc = run_offline(code, hf_home=fresh_hf_cache.home)
    assert "offline-ok" in proc.stdout


def test_checkpoint_errors_are_one_line(trajectory_model, tmp_path):
    _, ckpt = trajectory_model
    with pytest.raises(CheckpointError, match="is a trajectory_transformer checkpoint, not iql"):
        seqrl.from_pretrained(str(ckpt), algorithm="iql")
    with pytest.raises(CheckpointError, match="trained on Toy-v0, not Hopper-v5"):
        seqrl.from_pretrained(str(ckpt), env_id="Hopper-v5")
    (ckpt / "discretizer.json").unlink()
    with pytest.raises(CheckpointError, match="no discretizer"):
        seqrl.from_pretrained(str(ckpt))
    with pytest.raises(CheckpointError, match="not a seqrl checkpoint"):
        seqrl.from_pretrained(str(tmp_path))
    with pytest.raises(CheckpointError, match="no checkpoint directory"):
        seqrl.from_pretrained(str(tmp_path / "missing"))


def test_episode_dataset_push_and_load_from_hub_offline(hub_server, hub_repo_id, fresh_hf_cache, run_offline):
    rng = np.random.default_rng(0)
    term = np.zeros(20, bool)
    term[9] = True
    ds = EpisodeDataset.from_d4rl(dict(observations=rng.normal(size=(20, 2)), actions=rng.normal(size=(20, 1)),
                                       rewards=rng.normal(size=20), terminals=term, timeouts=np.zeros(20, bool),
                                       next_observations=rng.normal(size=(20, 2))), metadata={"env_id": "Toy-v0"})
    ds.push_to_hub(hub_repo_id)
    back = EpisodeDataset.from_hub(hub_repo_id, cache_dir=fresh_hf_cache.hub_cache)
    for k, v in ds.arrays().items():
        np.testing.assert_array_equal(back.arrays()[k], v)
    assert back.metadata["env_id"] == "Toy-v0"
    code = f"""
from seqrl.data import EpisodeDataset, load_dataset
d = EpisodeDataset.from_hub({hub_repo_id!r}, cache_dir={str(fresh_hf_cache.hub_cache)!r})
print("rows", len(d), d.summary().terminations)
"""
    proc = run_offline(code, hf_home=fresh_hf_cache.home)
    assert "rows 20 1" in proc.stdout


def _write_small_minari(dataset_id: str) -> None:
    from seqrl.data.builtin import collect_builtin_episodes
    from seqrl.data.collect import write_minari_dataset

    episodes = collect_builtin_episodes("seqrl/pendulum/medium-v0", n_steps=400)
    write_minari_dataset(dataset_id, episodes, env_id="Pendulum-v1", max_episode_steps=200,
                         algorithm_name="test", ref_min_score=-1500.0, ref_max_score=-100.0)


def test_remote_minari_id_is_downloaded_from_the_minari_remote(hub_server, tmp_path, monkeypatch):
    """`load_dataset("ns/name-v0")` with no local copy fetches it the way `minari.download_dataset`
    does (here from the test Hub as MINARI_REMOTE, uploaded there by Minari's own uploader)."""
    import uuid

    import minari

    dataset_id = "seqrltest/pendulum/remote-v0"
    monkeypatch.setenv("MINARI_REMOTE", f"hf://minari-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "publisher"))
    _write_small_minari(dataset_id)
    original = load_dataset(dataset_id)
    minari.upload_dataset(dataset_id, token=hub_server.token)

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "user"))
    assert dataset_id not in minari.list_local_datasets()
    back = load_dataset(dataset_id)
    assert dataset_id in minari.list_local_datasets()  # now a local Minari dataset, loaded without the remote
    for key, value in original.arrays().items():
        np.testing.assert_array_equal(back.arrays()[key], value)
    assert back.metadata["env_id"] == "Pendulum-v1" and back.metadata["ref_max_score"] == -100.0

    with pytest.raises(DataError, match=r"cannot download Minari dataset 'seqrltest/pendulum/absent-v0' from hf://"):
        load_dataset("seqrltest/pendulum/absent-v0")
    assert not hub_server.errors


def test_remote_minari_id_offline_is_one_clear_error(tmp_path, run_offline):
    code = """
from seqrl.data import EpisodeDataset, load_dataset
try:
    load_dataset("mujoco/hopper/medium-v0")
except Exception as err:
    print(type(err).__name__, "|", err)
"""
    proc = run_offline(code, hf_home=tmp_path / "hf", env={"MINARI_DATASETS_PATH": str(tmp_path / "minari")})
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("DataError | cannot download Minari dataset 'mujoco/hopper/medium-v0' from hf://farama-minari")


def test_value_based_policy_push_to_hub_and_load_by_repo_id(hub_server, hub_repo_id, fresh_hf_cache, tmp_path,
                                                             run_offline):
    """An IQL policy trained by the recipe: `seqrl.push_to_hub(policy, repo)`, then `seqrl.from_pretrained(repo)` in a
    fresh cache gives the same weights, metadata and actions; the card travels; offline it loads from the cache."""
    from huggingface_hub import hf_hub_download

    from seqrl.data.collect import rollout
    from seqrl.data.controllers import make_controller
    from seqrl.training.run import main

    env = "InvertedPendulum-v5"
    episodes = rollout(env, make_controller(env, "medium", seed=0), n_steps=600, seed=0, max_episode_steps=30)
    data = EpisodeDataset.from_episodes(episodes, metadata={"env_id": env, "max_episode_steps": 30,
                                                            "action_low": [-3.0], "action_high": [3.0]})
    out = tmp_path / "iql"
    main("iql", ["--dataset", str(data.save_to_disk(tmp_path / "data")), "--output_dir", str(out), "--max_steps", "5",
                 "--hidden_dims", "16", "16", "--batch_size", "16", "--eval_episodes", "2", "--no-resume"])
    policy = seqrl.from_pretrained(str(out / "model"), algorithm="iql")
    assert policy.metadata["env_id"] == env and policy.metadata["evaluation"]["return_mean"] > 0

    seqrl.push_to_hub(policy, hub_repo_id)
    back = seqrl.from_pretrained(hub_repo_id, algorithm="iql", env_id=env, cache_dir=fresh_hf_cache.hub_cache)
    for name, value in policy.state_dict().items():
        assert torch.equal(back.state_dict()[name], value), name
    assert back.metadata == policy.metadata and back.config == policy.config
    obs = np.random.default_rng(0).normal(size=(7, 4)).astype(np.float32)
    np.testing.assert_array_equal(back.act(obs), policy.act(obs))
    card = open(hf_hub_download(hub_repo_id, "README.md", cache_dir=fresh_hf_cache.hub_cache)).read()
    # the local card, rendered for the repo: it loads from the repo id instead of a folder
    local = (out / "model" / "README.md").read_text()
    assert card == local.replace('from_pretrained("path/to/this/folder")', f'from_pretrained("{hub_repo_id}")')
    assert "IQL" in card and "Mean return over 2 episodes" in card

    code = f"""
import numpy as np, seqrl
p = seqrl.from_pretrained({hub_repo_id!r}, cache_dir={str(fresh_hf_cache.hub_cache)!r})
print("offline", p.config.algorithm, p.act(np.zeros(4, np.float32)).shape)
"""
    assert "offline iql (1,)" in run_offline(code, hf_home=fresh_hf_cache.home).stdout


def test_trajectory_model_push_to_hub_method(trajectory_model, hub_server, hub_repo_id, fresh_hf_cache):
    tm, _ = trajectory_model
    seqrl.push_to_hub(tm, hub_repo_id)
    assert_same_model(tm, seqrl.from_pretrained(hub_repo_id, cache_dir=fresh_hf_cache.hub_cache))


def _episode_rows():
    """Three episodes in the one-row-per-episode layout of the Hub's D4RL copies (dones = terminals only):
    one terminates, one is cut by the time limit, one terminates at its first step."""
    import datasets

    rng = np.random.default_rng(0)
    lengths, terminated = [5, 4, 1], [True, False, True]
    rows = {"observations": [], "actions": [], "rewards": [], "dones": []}
    for T, term in zip(lengths, terminated):
        rows["observations"].append(rng.normal(size=(T, 3)).astype(np.float32).tolist())
        rows["actions"].append(rng.uniform(-1, 1, size=(T, 2)).astype(np.float32).tolist())
        rows["rewards"].append(rng.normal(size=T).astype(np.float32).tolist())
        rows["dones"].append([False] * (T - 1) + [term])
    return datasets.Dataset.from_dict(rows)


def test_episode_rows_read_like_the_equivalent_d4rl_arrays():
    rows = _episode_rows()
    data = EpisodeDataset.from_episode_rows(rows, metadata={"env_id": "Toy-v0"})
    flat = {k: np.concatenate([np.asarray(r, np.float32) for r in rows[k]]) for k in ("observations", "actions", "rewards")}
    flat["terminals"] = np.concatenate(rows["dones"])
    flat["timeouts"] = np.zeros(10, bool)
    flat["timeouts"][8] = True  # the second episode ends without termination
    reference = EpisodeDataset.from_d4rl(flat)
    for key, value in reference.arrays().items():
        np.testing.assert_array_equal(data.arrays()[key], value)
    summary = data.summary()
    # without next_observations the truncated episode's last step has no s' and is dropped (D4RL rules)
    assert (summary.episodes, summary.terminations, summary.truncations, len(data)) == (3, 2, 1, 9)
    with pytest.raises(DataError, match=r"missing columns \['dones'\]"):
        EpisodeDataset.from_episode_rows(rows.remove_columns("dones"))


def test_hub_dataset_with_episode_rows_and_a_config(hub_server, hub_repo_id, fresh_hf_cache):
    """`load_dataset("user/repo:config")` reads a Hub dataset in the Decision-Transformer layout
    (e.g. edbeeching/decision_transformer_gym_replay:hopper-medium-v2); a D4RL config name gives the env."""
    rows = _episode_rows()
    rows.push_to_hub(hub_repo_id, config_name="hopper-medium-v2")
    data = load_dataset(f"{hub_repo_id}:hopper-medium-v2")
    local = EpisodeDataset.from_episode_rows(rows)
    for key, value in local.arrays().items():
        np.testing.assert_array_equal(data.arrays()[key], value)
    assert data.metadata["env_id"] == "Hopper-v4" and data.metadata["max_episode_steps"] == 1000
    assert data.metadata["source"] == f"hf:{hub_repo_id}:hopper-medium-v2"
    with pytest.raises(DataError, match="cannot read Hub dataset"):
        load_dataset(f"{hub_repo_id}:walker2d-medium-v2")


def test_every_checkpoint_file_gets_the_same_permissions(trajectory_model, tmp_path):
    """safetensors writes 0600; a checkpoint's files all get the umask's usual mode."""
    import os

    path = seqrl.save_pretrained(trajectory_model[0], tmp_path / "again")
    umask = os.umask(0)
    os.umask(umask)
    modes = {f.name: f.stat().st_mode & 0o777 for f in path.iterdir() if f.is_file()}
    assert set(modes.values()) == {0o666 & ~umask}, modes


def test_data_push_uploads_a_minari_dataset_with_its_card_and_loads_back_offline(
        hub_server, hub_repo_id, fresh_hf_cache, run_offline, tmp_path, monkeypatch, capsys):
    """`seqrl data push ID REPO_ID`: parquet + metadata + a card naming the source, env, sizes, returns,
    reference scores and how the data was made; `load_dataset(REPO_ID)` gives the same rows, offline too."""
    from huggingface_hub import hf_hub_download

    from seqrl.cli import main as cli

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    dataset_id = "seqrltest/pendulum/push-v0"
    _write_small_minari(dataset_id)
    original = load_dataset(dataset_id)
    assert cli(["data", "push", dataset_id, hub_repo_id]) == 0
    card = open(hf_hub_download(hub_repo_id, "README.md", repo_type="dataset", cache_dir=tmp_path / "c")).read()
    s = original.summary()
    for text in ("`Pendulum-v1`, 200-step limit", f"{s.transitions:,}", f"{s.return_mean:.2f}", "-1500.00 / -100.00",
                 "## How it was made", f'load_dataset("{hub_repo_id}")'):
        assert text in card, text
    back = EpisodeDataset.from_hub(hub_repo_id, cache_dir=fresh_hf_cache.hub_cache)
    for key, value in original.arrays().items():
        np.testing.assert_array_equal(back.arrays()[key], value)
    proc = run_offline(f"from seqrl.data import EpisodeDataset\n"
                       f"print('rows', len(EpisodeDataset.from_hub({hub_repo_id!r}, cache_dir={str(fresh_hf_cache.hub_cache)!r})))",
                       hf_home=fresh_hf_cache.home)
    assert f"rows {len(original)}" in proc.stdout


def test_data_push_in_minaris_layout_reads_back_with_minari(hub_server, tmp_path, monkeypatch, capsys):
    import uuid

    from seqrl.cli import main as cli

    owner = f"minari-{uuid.uuid4().hex[:8]}"
    dataset_id = "seqrltest/pendulum/minari-push-v0"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "publisher"))
    monkeypatch.setenv("HF_TOKEN", hub_server.token)
    _write_small_minari(dataset_id)
    original = load_dataset(dataset_id)
    assert cli(["data", "push", dataset_id, owner, "--minari"]) == 0
    assert f"MINARI_REMOTE=hf://{owner}" in capsys.readouterr().out

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "reader"))
    monkeypatch.setenv("MINARI_REMOTE", f"hf://{owner}")
    assert dataset_id in __import__("minari").list_remote_datasets()  # Minari's own reader lists it
    back = load_dataset(dataset_id)  # fetched by minari.download_dataset
    for key, value in original.arrays().items():
        np.testing.assert_array_equal(back.arrays()[key], value)

    assert cli(["data", "push", dataset_id, f"{owner}/x", "--minari"]) == 1  # an owner, not a repo id
    assert "user or organisation" in capsys.readouterr().err
    original.save_to_disk(tmp_path / "saved")
    assert cli(["data", "push", str(tmp_path / "saved"), owner, "--minari"]) == 1
    assert "not one" in capsys.readouterr().err
