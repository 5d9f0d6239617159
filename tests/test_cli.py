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
    (["train"], "awac"),
    (["train", "iql"], "--expectile"),
    (["train", "cql"], "--cql_n_actions"),
    (["train"], "brac"),
    (["train", "brac"], "--brac_variant"),
    (["push"], "REPO_ID"),
    (["data", "push"], "--minari"),
    (["export"], "--format"),
    (["sweep"], "cpus_per_trial"),
    (["convert"], "--model_config"),
    (["train", "iql"], "--seeds"),
])
def test_help_of_each_subcommand(words, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(words + ["--help"])
    assert exit_info.value.code == 0
    assert expected.lower() in capsys.readouterr().out.lower()


def test_plan_help_lists_planner_options(capsys):
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


def test_train_a_value_based_policy_then_eval_it(tmp_path, capsys):
    """`seqrl train iql ...` runs the library's run assembly; `seqrl eval` runs the saved policy in the recorded
    environment, deterministic and reproducible, the same returns as evaluating it from Python."""
    import json

    import seqrl
    from seqrl.data.collect import rollout
    from seqrl.data.controllers import make_controller
    from seqrl.evaluation import evaluate

    env = "InvertedPendulum-v5"
    episodes = rollout(env, make_controller(env, "medium", seed=0), n_steps=800, seed=0, max_episode_steps=40)
    data = EpisodeDataset.from_episodes(episodes, metadata={"env_id": env, "max_episode_steps": 40,
                                                            "action_low": [-3.0], "action_high": [3.0]})
    data_dir = str(data.save_to_disk(tmp_path / "data"))
    out = tmp_path / "iql"
    assert main(["train", "iql", "--dataset", data_dir, "--output_dir", str(out), "--max_steps", "20",
                 "--hidden_dims", "32", "32", "--batch_size", "32", "--eval_episodes", "0", "--no-resume"]) == 0
    assert (out / "model" / "seqrl.json").exists()

    results = tmp_path / "eval.json"
    assert main(["eval", str(out / "model"), "--episodes", "3", "--seed", "7", "--output", str(results)]) == 0
    printed = capsys.readouterr().out
    assert f"policy: {env}: return" in printed and "behaviour data" in printed
    saved = json.loads(results.read_text())
    policy = seqrl.from_pretrained(str(out / "model"))
    direct = evaluate(policy, env, 3, max_episode_steps=40, seed=7, progress=False)
    np.testing.assert_allclose(saved["returns"], direct.returns)
    assert max(saved["lengths"]) <= 40  # the recorded time limit

    assert main(["eval", str(tmp_path / "data")]) == 1
    err = capsys.readouterr().err.strip()
    assert "not a seqrl checkpoint" in err and "\n" not in err


def test_plot_draws_losses_evaluations_and_the_data_line(tmp_path, capsys):
    """Recipes write RUN_DIR/curves.png; `seqrl plot` overlays runs: one panel per loss, the evaluation
    returns at their steps, the behaviour data's mean return as a dashed line, normalized scores on the right."""
    import json

    from seqrl.data.collect import rollout
    from seqrl.data.controllers import make_controller
    from seqrl.plotting import load_run, make_figure

    env = "InvertedPendulum-v5"
    episodes = rollout(env, make_controller(env, "medium", seed=0), n_steps=400, seed=0, max_episode_steps=30)
    data = EpisodeDataset.from_episodes(episodes, metadata={"env_id": env, "max_episode_steps": 30,
                                                            "ref_min_score": 0.0, "ref_max_score": 30.0})
    data_dir = str(data.save_to_disk(tmp_path / "data"))
    runs = []
    for algo in ("bc", "iql"):
        runs.append(tmp_path / algo)
        assert main(["train", algo, "--dataset", data_dir, "--output_dir", str(runs[-1]), "--max_steps", "4",
                     "--hidden_dims", "16", "16", "--batch_size", "16", "--log_every", "1", "--eval_every", "2",
                     "--eval_episodes", "1", "--no-resume"]) == 0
        assert (runs[-1] / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert main(["plot", *map(str, runs), "--out", str(tmp_path / "both.png")]) == 0
    assert (tmp_path / "both.png").stat().st_size > 10_000
    fig = make_figure([load_run(r) for r in runs])
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible() and ax.get_title()]
    # two algorithms: their losses are different quantities, so each gets its own panel
    assert titles[:2] == ["BC actor_loss", "IQL actor_loss"] and "IQL value_loss" in titles
    assert titles[-1] == "evaluation return"
    value_ax = next(ax for ax in fig.axes if ax.get_title() == "IQL value_loss")
    assert any("grows as V learns" in t.get_text() for t in value_ax.texts)  # why the curve rises
    eval_ax = next(ax for ax in fig.axes if ax.get_title() == "evaluation return")
    iql_evals = json.loads((runs[1] / "eval_history.json").read_text())
    iql_line = next(line for line in eval_ax.get_lines() if line.get_label() == "iql")
    assert list(iql_line.get_xdata()) == [2, 4] and list(iql_line.get_ydata()) == [e["return_mean"] for e in iql_evals]
    data_line = next(line for line in eval_ax.get_lines() if line.get_label().startswith("data"))
    assert data_line.get_ydata()[0] == data.summary().as_dict()["return_mean"]
    assert [child.get_ylabel() for child in eval_ax.child_axes] == ["normalized score"]

    from seqrl.plotting import run_labels

    # runs in folders with the same name are told apart by the shortest distinct path
    assert run_labels(["outputs/iql/hopper-medium", "outputs/cql/hopper-medium/model"]) == ["iql/hopper-medium",
                                                                                           "cql/hopper-medium"]
    capsys.readouterr()
    assert main(["plot", str(tmp_path / "data")]) == 1
    assert "no train_history.json" in capsys.readouterr().err


def test_every_algorithm_option_is_explained():
    import dataclasses

    from seqrl.algos import ALGORITHMS
    from seqrl.training.run import combined_config_class

    for name in ALGORITHMS:
        cls, _ = combined_config_class(name)
        vague = [f.name for f in dataclasses.fields(cls) if f.metadata["help"] in (f"{name} {f.name}", "")]
        assert not vague, (name, vague)
