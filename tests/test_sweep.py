"""`seqrl sweep` on a local Ray instance: 2 configurations x 2 seeds of the normal run assembly, the
table over seeds, a second run that resumes instead of retraining, and bad sweep files refused
before Ray starts."""

import json
import math

import pytest
import yaml

from seqrl.hub import load_policy
from seqrl.training.seeds import mean_and_stderr
from seqrl.training.sweep import main as sweep, read_sweep

ray = pytest.importorskip("ray")


def write(tmp_path, **sweep_file) -> str:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep_file))
    return str(path)


def test_a_tiny_sweep_runs_tabulates_and_resumes(pendulum_data, tmp_path):
    file = write(tmp_path, name="tiny", output_dir=str(tmp_path / "out"), seeds=[0, 1], cpus_per_trial=1,
                 grid={"algorithm": ["bc"], "lr": [1e-3, 3e-4]},
                 options={"dataset": pendulum_data[0], "max_steps": 20, "eval_episodes": 1, "hidden_dims": [16],
                          "batch_size": 16, "log_every": 10})
    try:
        result = sweep([file, "--num_cpus", "2"])
        assert len(result["trials"]) == 4 and all("metrics" in t for t in result["trials"])
        assert len(result["rows"]) == 2
        for row in result["rows"]:
            lr = float(row["config"].split("lr=")[1])
            scores = []
            for seed in (0, 1):  # each trial is a normal run: its checkpoint holds what the table says
                trial = next(t for t in result["trials"] if t["params"]["seed"] == seed and t["params"]["lr"] == lr)
                policy = load_policy(f"{trial['metrics']['trial_dir']}/model")
                assert policy.config.seed == seed and policy.config.lr == lr and policy.metadata["training"]["steps"] == 20
                scores.append(policy.metadata["evaluation"]["normalized_score"])
            mean, se = mean_and_stderr(scores)
            assert row["metric"] == "normalized_score" and row["seeds"] == 2
            assert math.isclose(row["mean"], mean) and math.isclose(row["stderr"], se)
        table = (tmp_path / "out" / "results.md").read_text()
        assert "lr=0.001" in table and (tmp_path / "out" / "results.png").stat().st_size > 0

        # the same command again restores the experiment: nothing is trained twice
        models = sorted((tmp_path / "out" / "trials").glob("*/model/model.safetensors"))
        stamps = [m.stat().st_mtime_ns for m in models]
        again = sweep([file, "--num_cpus", "2"])
        assert [m.stat().st_mtime_ns for m in models] == stamps
        assert json.dumps(again["rows"], sort_keys=True) == json.dumps(result["rows"], sort_keys=True)
    finally:
        ray.shutdown()


@pytest.mark.parametrize("content, message", [
    ({"grid": {"algorithm": ["bc"]}, "epochs": 3}, "unknown sweep keys"),
    ({"grid": {"algorithm": ["bc"], "expectile": [0.7]}}, "bc has no options ['expectile']"),
    ({"grid": {"algorithm": ["tt"]}}, "value-based"),
    ({"grid": {"algorithm": ["iql"]}, "search": {"beta": {"normal": [1, 2]}}}, "search.beta"),
    ({"grid": {"algorithm": ["iql"]}, "seeds": [1, 1]}, "distinct"),
    ({"grid": {"algorithm": ["iql"], "seed": [1]}}, "set by the sweep"),
    ({"grid": {"algorithm": "iql"}}, "non-empty list"),
])
def test_bad_sweep_files_are_refused_up_front(content, message, tmp_path):
    with pytest.raises(Exception) as err:
        read_sweep(write(tmp_path, **content))
    assert message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(SystemExit) as err:  # the command: one line, and Ray never started
        sweep([write(tmp_path, **content)])
    assert message in str(err.value) and not ray.is_initialized()
