"""D4RL-style families: checkpoints chosen from a SAC run, assets exported, the five Minari datasets
built deterministically with reference scores, and loaded by id on first use.

A tiny online SAC run on Hopper-v5 stands in for the real one (the shipped assets come from
`recipes/make_datasets.py`); assets go to a temporary folder, datasets to a temporary Minari root.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from seqrl.data import families
from seqrl.data.behaviour import BehaviourPolicy
from seqrl.training.families import choose_checkpoints, export_family


def test_choose_checkpoints_expert_best_medium_third():
    evals = [{"step": s, "return_mean": r} for s, r in
             [(10, 20.0), (20, 310.0), (30, 700.0), (40, 950.0), (50, 2900.0), (60, 2500.0)]]
    medium, expert = choose_checkpoints(evals)
    assert expert["step"] == 50
    assert medium["step"] == 40  # 950 is the closest to 2900 / 3 among steps before the expert


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """A 600-step SAC run with snapshots, exported into a temporary asset folder."""
    from seqrl.training.run import main

    root = tmp_path_factory.mktemp("family")
    run = root / "run"
    main("sac", ["--online", "--env", "Hopper-v5", "--output_dir", str(run), "--hidden_dims", "16", "16",
                 "--batch_size", "32", "--max_steps", "600", "--random_steps", "200", "--learning_starts", "200",
                 "--eval_every", "200", "--eval_episodes", "2", "--snapshot_evals", "--save_every", "0",
                 "--log_every", "200"])
    mp = pytest.MonkeyPatch()
    mp.setattr(families, "ASSETS", root / "assets")
    mp.setattr(families, "REFERENCE_EPISODES", 4)
    mp.setattr(families, "ROLLOUT_STEPS", 400)
    mp.setenv("MINARI_DATASETS_PATH", str(root / "minari"))
    record = export_family(run, "Hopper-v5", command="test run")
    yield record, root
    mp.undo()


def test_export_writes_actors_replay_and_references(family):
    record, root = family
    assets = root / "assets" / "hopper"
    assert {p.name for p in assets.iterdir()} == {"medium.safetensors", "expert.safetensors",
                                                   "medium_replay.npz", "family.json"}
    assert json.loads((assets / "family.json").read_text()) == record
    assert record["medium"]["step"] <= record["expert"]["step"]
    assert record["medium_replay_transitions"] == record["medium"]["step"]
    assert record["ref_min_score"] < record["ref_max_score"] or record["expert"]["return"] < 50
    # the exported actor, run by the data layer's BehaviourPolicy, acts exactly like the snapshot it
    # came from: the deterministic action, and the sampled one from the same generator seed
    import torch

    from seqrl.hub import load_policy

    snap = load_policy(root / "run" / "snapshots" / f"step_{record['expert']['step']}")
    obs = np.random.default_rng(0).normal(size=(5, 11)).astype(np.float32)
    greedy = BehaviourPolicy.load(assets / "expert.safetensors", deterministic=True)
    np.testing.assert_allclose(greedy(obs), snap.act(obs), atol=1e-6)
    sampled = BehaviourPolicy.load(assets / "expert.safetensors")
    sampled.reset_rng(7)
    with torch.no_grad():
        unit = snap.actor.sample((torch.as_tensor(obs) - snap.obs_mean) / snap.obs_std,
                                 generator=torch.Generator().manual_seed(7))[0]
    expected = snap.action_low + (unit + 1.0) * 0.5 * (snap.action_high - snap.action_low)
    np.testing.assert_allclose(sampled(obs), expected.numpy(), atol=1e-6)


def test_build_all_qualities(family):
    record, root = family
    from seqrl.data import load_dataset

    sizes = {}
    for quality in families.QUALITIES:
        ds = load_dataset(f"seqrl/hopper/{quality}-v0")  # built on first use
        assert ds.metadata["ref_min_score"] == pytest.approx(record["ref_min_score"])
        assert ds.metadata["ref_max_score"] == pytest.approx(record["ref_max_score"])
        assert ds.env_id == "Hopper-v5" and ds.metadata["max_episode_steps"] == 1000
        sizes[quality] = len(ds)
    assert sizes["medium-replay"] == record["medium"]["step"]
    assert sizes["medium-expert"] == sizes["medium"] + sizes["expert"]
    assert all(0 < sizes[q] <= 400 for q in ("random", "medium", "expert"))
    # medium-replay is the run's replay buffer: its first rows are the uniform random warm-up
    replay = load_dataset("seqrl/hopper/medium-replay-v0").arrays()
    state = np.load(root / "assets" / "hopper" / "medium_replay.npz")  # packed: next observations only at episode ends
    np.testing.assert_array_equal(replay["action"], state["actions"])


def test_build_is_deterministic(family):
    from seqrl.data import load_dataset

    first = load_dataset("seqrl/hopper/medium-v0").arrays()
    families.ensure_family("seqrl/hopper/medium-v0", force=True)
    again = load_dataset("seqrl/hopper/medium-v0").arrays()
    for key in ("observation", "action", "reward", "terminated", "truncated"):
        np.testing.assert_array_equal(first[key], again[key])


def test_family_without_assets_is_one_line(tmp_path, monkeypatch):
    from seqrl.data import DataError, load_dataset

    monkeypatch.setattr(families, "ASSETS", tmp_path)
    with pytest.raises(DataError, match="make_datasets.py"):
        load_dataset("seqrl/walker2d/medium-v0")


def test_dataset_card_written(family):
    from minari.storage.datasets_root_dir import get_dataset_path

    from seqrl.data import load_dataset

    ds = load_dataset("seqrl/hopper/expert-v0")
    card = (get_dataset_path("seqrl/hopper/expert-v0") / "README.md").read_text()
    assert card.startswith("# seqrl/hopper/expert-v0") and f"{len(ds):,}" in card and "ref_min_score" in card


def test_load_keeps_a_smaller_build(family):
    from seqrl.data import load_dataset

    families.ensure_family("seqrl/hopper/random-v0", n_steps=150)
    small = len(load_dataset("seqrl/hopper/random-v0"))  # loading accepts the build that is there
    assert small <= 150
    families.ensure_family("seqrl/hopper/random-v0")  # no size asked: kept
    assert len(load_dataset("seqrl/hopper/random-v0")) == small
    families.ensure_family("seqrl/hopper/random-v0", n_steps=400)  # another size asked: rebuilt
    assert len(load_dataset("seqrl/hopper/random-v0")) > small
