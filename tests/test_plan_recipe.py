"""`seqrl plan` (seqrl/training/plan.py, called by recipes/plan_tt.py) end to end on a tiny random (untrained) Trajectory Transformer checkpoint."""

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from seqrl.data import Discretizer
from seqrl.models.trajectory_transformer import TrajectoryTransformerConfig, TrajectoryTransformerModel
from seqrl.hub import TrajectoryModel, save_pretrained
from seqrl.planning.config import PlannerConfig
from seqrl.training import plan

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "plan_tt.py"
ENV_ID = "InvertedPendulum-v5"
CONTEXT = 3


@pytest.fixture(autouse=True)
def restore_torch_threads():
    """--threads 1 (fast on a busy CPU) sets a process-wide torch setting: give it back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def checkpoint(tmp_path):
    """A random TrajectoryModel saved as train_tt.py saves one (same metadata keys)."""
    env = gym.make(ENV_ID)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    low, high = env.action_space.low.tolist(), env.action_space.high.tolist()
    env.close()
    transition_dim = obs_dim + act_dim + 2
    n_bins = 10
    torch.manual_seed(0)
    config = TrajectoryTransformerConfig(observation_dim=obs_dim, action_dim=act_dim, vocab_size=n_bins,
                                         block_size=CONTEXT * transition_dim - 1, n_layer=1, n_head=2, n_embd=16)
    model = TrajectoryTransformerModel(config).eval()
    data = np.random.default_rng(0).normal(size=(200, transition_dim))
    discretizer = Discretizer.fit(data, n_bins=n_bins, layout={"observation_dim": obs_dim, "action_dim": act_dim,
                                                               "transition_dim": transition_dim})
    meta = {"env_id": ENV_ID, "env_kwargs": {}, "max_episode_steps": 10, "action_low": low, "action_high": high,
            "ref_min_score": 5.0, "ref_max_score": 10.0,
            "dataset": {"source": "toy", "episodes": 2, "transitions": 20, "return_mean": 7.5, "return_std": 0.5,
                        "return_min": 7.0, "return_max": 8.0, "terminations": 1, "truncations": 1},
            "tokenizer": {"method": "quantile", "n_bins": n_bins, "discount": 0.99, "termination_penalty": -100.0,
                          "context": CONTEXT, "max_path_length": 10},
            "training": {"steps": 0, "batch_size": 4, "learning_rate": 6e-4, "final_loss": 0.0,
                         "final_losses_by_type": {}}}  # untrained; the model card wants these keys
    path = tmp_path / "run" / "model"
    save_pretrained(TrajectoryModel(model, discretizer, meta), path)
    return path


def test_plans_end_to_end_and_saves_results(checkpoint, capsys):
    result = plan.main(["--checkpoint", str(checkpoint), "--episodes", "2", "--horizon", "2",
                                 "--beam_width", "2", "--no-progress", "--threads", "1"])
    assert result.episodes == 2 and len(result.returns) == 2
    assert all(1 <= n <= 10 for n in result.lengths)  # the checkpoint's time limit is used
    assert result.reference == "recorded in the checkpoint" and result.ref_min_score == 5.0
    saved = json.loads((checkpoint.parent / "eval" / "plan_results.json").read_text())
    assert saved["returns"] == result.returns
    assert saved["extra"]["planner"]["horizon"] == 2 and saved["extra"]["planner"]["beam_width"] == 2
    assert saved["extra"]["behaviour"]["return_mean"] == 7.5
    assert saved["extra"]["behaviour"]["normalized"] == pytest.approx(50.0)
    out = capsys.readouterr().out
    assert "planner: InvertedPendulum-v5" in out and "behaviour data (toy): return mean 7.50" in out


def test_output_flag_and_reproducible(checkpoint, tmp_path):
    args = ["--checkpoint", str(checkpoint), "--episodes", "2", "--horizon", "2", "--beam_width", "2",
            "--no-progress", "--seed", "3", "--threads", "1"]
    first = plan.main(args + ["--output", str(tmp_path / "a.json")])
    second = plan.main(args + ["--output", str(tmp_path / "b.json")])
    assert first.returns == second.returns
    assert json.loads((tmp_path / "a.json").read_text())["seed"] == 3


def test_help_lists_run_and_planner_options():
    proc = subprocess.run([sys.executable, str(RECIPE), "--help"], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    for option in ("--checkpoint", "--episodes", "--num_envs", "--output", "--seed", "--horizon", "--beam_width",
                   "--n_expand", "--k_obs", "--k_act", "--cdf_obs", "--cdf_act", "--percentile",
                   "--max_context_transitions", "--prefix_context", "--discount", "--plan_freq"):
        assert option in proc.stdout


def test_missing_default_checkpoint_says_train_first(tmp_path):
    proc = subprocess.run([sys.executable, str(RECIPE)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "outputs/tt/invertedpendulum-medium/model" in lines[0]
    assert "seqrl train tt" in lines[0]


def test_missing_checkpoint_path_is_one_line(tmp_path):
    with pytest.raises(SystemExit) as err:
        plan.main(["--checkpoint", str(tmp_path / "nowhere"), "--episodes", "1"])
    message = str(err.value)
    assert "no checkpoint at" in message and "train" in message and "\n" not in message


def test_plans_a_checkpoint_by_hub_repo_id(checkpoint, hub_server, hub_repo_id, tmp_path):
    from seqrl.hub import push_to_hub

    push_to_hub(checkpoint, hub_repo_id)
    result = plan.main(["--checkpoint", hub_repo_id, "--episodes", "1", "--horizon", "2", "--beam_width", "2",
                          "--no-progress", "--threads", "1", "--output", str(tmp_path / "hub.json")])
    assert result.episodes == 1 and result.extra["checkpoint"] == hub_repo_id
    assert (tmp_path / "hub.json").exists()
    # by default results of a Hub checkpoint go under outputs/eval, never into the Hub cache
    assert plan.default_output(hub_repo_id) == Path("outputs/eval") / hub_repo_id.replace("/", "--") / "plan_results.json"
    assert plan.default_output(str(checkpoint)) == checkpoint.parent / "eval" / "plan_results.json"


def test_percentile_flag_and_bad_planner_values(checkpoint):
    from seqrl.config import combine

    config = combine("PlanConfig", plan.RunConfig, PlannerConfig)
    parsed = plan.parse_config(config, ["--percentile", "0.25", "--horizon", "3"])
    _, planner = plan.split_config(parsed)
    assert planner.percentile == 0.25 and planner.horizon == 3  # 'mean' or a float, given as text
    with pytest.raises(SystemExit) as err:
        plan.main(["--checkpoint", str(checkpoint), "--horizon", "1", "--plan_freq", "2"])
    assert "bad planner option" in str(err.value) and "\n" not in str(err.value)
