"""Nothing is lost and nothing runs that should not: checkpoints of one run are never pruned by
another's numbering, a dangling `latest` is an error, a checkpoint of another run is refused, and
the training state loads without executing code."""

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seqrl.data import EpisodeDataset
from seqrl.data.collect import rollout
from seqrl.data.controllers import make_controller
from seqrl.training.run import main

ENV = "InvertedPendulum-v5"
TINY = ["--hidden_dims", "16", "16", "--batch_size", "16", "--log_every", "1", "--eval_episodes", "0"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    episodes = rollout(ENV, make_controller(ENV, "medium", seed=0), n_steps=600, seed=0, max_episode_steps=50)
    ds = EpisodeDataset.from_episodes(episodes, metadata={"env_id": ENV, "max_episode_steps": 50, "source": "test"})
    root = tmp_path_factory.mktemp("data")
    other = EpisodeDataset.from_episodes(episodes[:5], metadata={"env_id": ENV, "max_episode_steps": 50})
    return str(ds.save_to_disk(root / "ip")), str(other.save_to_disk(root / "other"))


def steps_in(out: Path) -> list[int]:
    return sorted(int(p.name[5:]) for p in (out / "checkpoints").glob("step_*") if p.name[5:].isdigit())


def test_an_older_runs_checkpoints_never_prune_the_new_ones(data, tmp_path):
    out = tmp_path / "run"
    main("bc", TINY + ["--dataset", data[0], "--output_dir", str(out), "--max_steps", "60", "--save_every", "20"])
    assert steps_in(out) == [40, 60]
    # a new, shorter run in the same folder: its checkpoints survive beside the old run's
    main("bc", TINY + ["--dataset", data[0], "--output_dir", str(out), "--max_steps", "9", "--save_every", "3",
                       "--no-resume"])
    assert steps_in(out) == [6, 9, 40, 60]  # its own last two, the old run untouched
    assert (out / "checkpoints" / "latest").read_text() == "step_9"
    # it crashed after step 6: --resume continues the NEW run from its step 6, not step 0 or 60
    shutil.rmtree(out / "checkpoints" / "step_9")
    (out / "checkpoints" / "latest").write_text("step_6")
    main("bc", TINY + ["--dataset", data[0], "--output_dir", str(out), "--max_steps", "9", "--save_every", "3",
                       "--resume"])
    history = json.loads((out / "train_history.json").read_text())
    assert [h["step"] for h in history] == list(range(1, 10))


def test_a_dangling_latest_is_an_error_not_a_fresh_start(data, tmp_path, capsys):
    out = tmp_path / "run"
    main("bc", TINY + ["--dataset", data[0], "--output_dir", str(out), "--max_steps", "4", "--save_every", "2"])
    shutil.rmtree(out / "checkpoints" / "step_4")
    with pytest.raises(SystemExit) as err:
        main("bc", TINY + ["--dataset", data[0], "--output_dir", str(out), "--max_steps", "8", "--resume"])
    message = str(err.value)
    assert "points at step_4" in message and "\n" not in message


@pytest.mark.parametrize("change", [["--dataset", "OTHER"], ["--algorithm", "iql"]])
def test_resume_refuses_another_dataset_or_algorithm(change, data, tmp_path):
    out = tmp_path / "run"
    main("bc", TINY + ["--dataset", data[0], "--output_dir", str(out), "--max_steps", "4", "--save_every", "2"])
    algo, argv = "bc", TINY + ["--dataset", data[0]]
    if change[0] == "--dataset":
        argv = TINY + ["--dataset", data[1]]
    else:
        algo = "iql"
    with pytest.raises(SystemExit) as err:
        main(algo, argv + ["--output_dir", str(out), "--max_steps", "8", "--resume"])
    assert "is another run" in str(err.value) and "\n" not in str(err.value)


class Payload:
    """Unpickling this runs `touch`: what a planted training_state.pt could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_planted_pickle_in_the_training_state_is_refused_not_run(data, tmp_path):
    out = tmp_path / "run"
    main("bc", TINY + ["--dataset", data[0], "--output_dir", str(out), "--max_steps", "4", "--save_every", "2"])
    marker = tmp_path / "payload_ran"
    with open(out / "checkpoints" / "step_4" / "training_state.pt", "wb") as f:
        pickle.dump({"step": Payload(str(marker))}, f)
    with pytest.raises(SystemExit) as err:
        main("bc", TINY + ["--dataset", data[0], "--output_dir", str(out), "--max_steps", "8", "--resume"])
    assert "not a seqrl training state" in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()


def test_data_errors_are_one_line_at_the_command_line(tmp_path):
    """`seqrl train` and the recipes print a bad dataset as one line with exit status 1."""
    root = Path(__file__).resolve().parent.parent
    for cmd in ([sys.executable, "-m", "seqrl.cli", "train", "iql"], [sys.executable, str(root / "recipes" / "train_iql.py")]):
        proc = subprocess.run(cmd + ["--dataset", str(tmp_path / "missing.npz"), "--output_dir", str(tmp_path / "o")],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert proc.returncode == 1
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "missing.npz" in lines[0], proc.stderr
