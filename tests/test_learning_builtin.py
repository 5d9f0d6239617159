"""The default suite checks learning: BC, IQL, MOPO and COMBO, briefly trained on the built-in
mixed-quality InvertedPendulum set (random, medium and expert controllers; data mean ~14 of a
possible 200), each beat the data they learned from."""

import pytest

from seqrl.data import load_dataset
from seqrl.training.run import main

DATASET = "seqrl/invertedpendulum/mixed-v0"


@pytest.mark.parametrize("algo", ["bc", "iql"])
def test_policy_beats_the_mixed_data(algo, tmp_path):
    data_mean = load_dataset(DATASET).summary().return_mean
    result = main(algo, ["--dataset", DATASET, "--max_steps", "1000", "--hidden_dims", "64", "64",
                         "--eval_episodes", "5", "--log_every", "500", "--save_every", "0", "--threads", "1",
                         "--output_dir", str(tmp_path / algo), "--no-resume"])
    assert result["eval"]["return_mean"] > 2 * data_mean, (result["eval"], data_mean)


@pytest.mark.parametrize("algo", ["mopo", "combo"])
def test_model_based_policy_beats_the_mixed_data(algo, tmp_path):
    """Dynamics fitted for 5 epochs, 1,000 updates on mixed batches, rollouts of 2,000 starts x h 5."""
    data_mean = load_dataset(DATASET).summary().return_mean
    result = main(algo, ["--dataset", DATASET, "--max_steps", "1000", "--hidden_dims", "64", "64",
                         "--rollout_batch_size", "2000", "--rollout_freq", "250", "--rollout_length", "5",
                         "--dynamics_max_epochs", "5", "--eval_episodes", "5", "--log_every", "500",
                         "--save_every", "0", "--threads", "1", "--output_dir", str(tmp_path / algo), "--no-resume"])
    assert result["eval"]["return_mean"] > 2 * data_mean, (result["eval"], data_mean)
    assert (tmp_path / algo / "model" / "dynamics" / "seqrl.json").exists()  # the checkpoint carries its model
