"""The `seqrl` command: data list/info, and --help of every subcommand."""

import subprocess
import sys

import numpy as np
import pytest

from seqrl.cli import main
from seqrl.data import EpisodeDataset
from seqrl.data.builtin import list_builtin


def d4rl_arrays(n=30, episode_end=11):
    rng = np.random.default_rng(0)
    terminals = np.zeros(n, bool)
    terminals[episode_end] = True
    timeouts = np.zeros(n, bool)
    timeouts[-1] = True
    return dict(observations=rng.normal(size=(n, 3)), actions=rng.normal(size=(n, 2)), rewards=np.ones(n),
                terminals=terminals, timeouts=timeouts, next_observations=rng.normal(size=(n, 3)))


def test_data_list(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for dataset_id in list_builtin():
        assert dataset_id in out
    assert "InvertedPendulum-v5" in out


def test_data_info_on_npz_and_saved_dataset(tmp_path, capsys):
    path = tmp_path / "toy.npz"
    np.savez(path, **d4rl_arrays())
    assert main(["data", "info", str(path)]) == 0
    out = capsys.readouterr().out
    # episodes of 12 and 18 steps with reward 1 per step
    assert "2 episodes, 30 transitions" in out and "observation_dim 3, action_dim 2" in out
    assert "min 12.00, max 18.00" in out

    saved = EpisodeDataset.from_d4rl(d4rl_arrays(), metadata={"env_id": "Toy-v0"}).save_to_disk(tmp_path / "saved")
    assert main(["data", "info", str(saved)]) == 0
    out = capsys.readouterr().out
    assert "env: Toy-v0" in out and "2 episodes, 30 transitions" in out


def test_data_info_missing_is_one_line(tmp_path, capsys):
    assert main(["data", "info", str(tmp_path / "missing.npz")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("seqrl: error:") and "\n" not in err


def test_data_build_unknown_id(capsys):
    assert main(["data", "build", "seqrl/nothing/bogus-v0"]) == 1
    assert "Unknown built-in dataset" in capsys.readouterr().err


@pytest.mark.parametrize("words, expected", [
    ([], "data"),
    (["data"], "list"),
    (["data", "list"], "built-in"),
    (["data", "build"], "--n_steps"),
    (["data", "info"], "ID_OR_PATH"),
    (["train"], "tt"),
    (["train", "tt"], "--dataset"),
    (["push"], "REPO_ID"),
])
def test_help_of_each_subcommand(words, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(words + ["--help"])
    assert exit_info.value.code == 0
    assert expected.lower() in capsys.readouterr().out.lower()


def test_plan_help_lists_planner_options(capsys):
    pytest.importorskip("seqrl.planning.config", reason="the planner config has not landed yet")
    with pytest.raises(SystemExit) as exit_info:
        main(["plan", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: seqrl plan")
    for option in ("--checkpoint", "--episodes", "--horizon", "--beam_width", "--percentile"):
        assert option in out


def test_console_module_runs_as_a_process():
    proc = subprocess.run([sys.executable, "-m", "seqrl.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "seqrl data list" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "seqrl.cli", "data", "list"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "seqrl/pendulum/expert-v0" in proc.stdout


def test_push_refuses_a_non_checkpoint(tmp_path, capsys):
    assert main(["push", str(tmp_path), "user/repo"]) == 1
    err = capsys.readouterr().err.strip()
    assert "not a seqrl checkpoint" in err and "\n" not in err
