"""Trajectory Transformers saved elsewhere give the same logits in seqrl: a checkpoint written by
transformers 4.30's `TrajectoryTransformerModel.save_pretrained` loads through `from_pretrained`, and
the official code's state dict + pickled config convert through `seqrl convert` (the fixtures are made
by tests/assets/tt_elsewhere/make.py with transformers 4.30, which also computed the expected logits)."""

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import seqrl
from seqrl.cli import main as cli
from seqrl.convert import load_official_model, read_official_config
from seqrl.hub import CheckpointError, TrajectoryModel

ASSETS = Path(__file__).parent / "assets" / "tt_elsewhere"
EXPECTED = np.load(ASSETS / "expected.npz")


def logits_of(model) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(EXPECTED["tokens"])).logits.numpy()


def test_a_transformers_430_checkpoint_loads_with_the_same_logits():
    loaded = seqrl.from_pretrained(str(ASSETS / "transformers430"))
    assert isinstance(loaded, TrajectoryModel) and loaded.discretizer is None
    assert loaded.observation_dim == 3 and loaded.action_dim == 2
    np.testing.assert_allclose(logits_of(loaded.model), EXPECTED["logits"], rtol=1e-5, atol=1e-5)


def test_the_official_layout_converts_with_the_same_logits(tmp_path):
    model = load_official_model(ASSETS / "official" / "state.pt", ASSETS / "official" / "model_config.pkl")
    np.testing.assert_allclose(logits_of(model), EXPECTED["logits"], rtol=1e-5, atol=1e-5)
    assert read_official_config(ASSETS / "official" / "model_config.pkl")["n_embd"] == 16


class Payload:  # a pickle that would run code when loaded
    def __reduce__(self):
        return (shutil.rmtree, ("/nonexistent-seqrl-test",))


def test_a_config_pickle_with_anything_else_in_it_is_refused(tmp_path):
    bad = tmp_path / "model_config.pkl"
    bad.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(CheckpointError, match="refused: the pickle names shutil.rmtree"):
        read_official_config(bad)


def test_convert_writes_a_plannable_seqrl_checkpoint(tmp_path):
    from seqrl.data import EpisodeDataset

    # any data with 3-dim observations and 2-dim actions gives the bins; a random walk will do
    rng = np.random.default_rng(0)
    episodes = [{"observations": rng.normal(size=(21, 3)).astype(np.float32),
                 "actions": rng.uniform(-1, 1, size=(20, 2)).astype(np.float32),
                 "rewards": rng.normal(size=20).astype(np.float32),
                 "terminations": np.eye(20, dtype=bool)[-1] & (i % 2 == 0), "truncations": np.eye(20, dtype=bool)[-1] & (i % 2 == 1)}
                for i in range(6)]
    data = EpisodeDataset.from_episodes(episodes, metadata={"env_id": None, "source": "test"}).save_to_disk(tmp_path / "data")
    sources = {"official": [str(ASSETS / "official" / "state.pt"), "--model_config", str(ASSETS / "official" / "model_config.pkl")],
               "transformers": [str(ASSETS / "transformers430")]}
    for name, source in sources.items():
        out = tmp_path / name
        assert cli(["convert", *source, "--dataset", str(data), "--output", str(out)]) == 0
        converted = seqrl.from_pretrained(str(out))
        assert converted.discretizer is not None and converted.discretizer.N == 10
        np.testing.assert_allclose(logits_of(converted.model), EXPECTED["logits"], rtol=1e-5, atol=1e-5)


def test_a_transformers_checkpoint_asks_for_its_bins_before_planning_and_converts(tmp_path):
    from seqrl.training.plan import main as plan

    with pytest.raises(SystemExit, match="carries no discretizer"):
        plan(["--checkpoint", str(ASSETS / "transformers430"), "--episodes", "1"])
    with pytest.raises(SystemExit, match="give --model_config"):
        cli(["convert", str(ASSETS / "official" / "state.pt"), "--dataset", "x", "--output", str(tmp_path / "o")])
