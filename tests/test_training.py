"""The training loop and `recipes/train_tt.py`: schedule, exact resume, 2 processes == 1 process."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqrl.algos.tt import TTConfig, lr_multiplier, official_updates
from seqrl.data import EpisodeDataset

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "train_tt.py"
TINY = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--n_bins", "8", "--context", "3",
        "--batch_size", "8", "--log_every", "1", "--no-resume"]


@pytest.fixture()
def tiny_dataset(tmp_path, monkeypatch):
    """A small saved EpisodeDataset with terminations and truncations; token cache in tmp."""
    monkeypatch.setenv("SEQRL_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    n = 300
    term, trunc = np.zeros(n, bool), np.zeros(n, bool)
    term[[40, 170]] = True
    trunc[[99, 299]] = True
    ds = EpisodeDataset.from_d4rl(dict(
        observations=rng.normal(size=(n, 3)), actions=rng.uniform(-1, 1, size=(n, 1)), rewards=rng.normal(size=n),
        terminals=term, timeouts=trunc, next_observations=rng.normal(size=(n, 3))),
        metadata={"env_id": "Toy-v0", "max_episode_steps": 100, "action_low": [-1.0], "action_high": [1.0]})
    return str(ds.save_to_disk(tmp_path / "data"))


def run_recipe(args, env=None, launcher=None):
    cmd = (launcher or [sys.executable]) + [str(RECIPE)] + args
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=ROOT, timeout=600)
    return proc


def losses(output_dir):
    return [h["loss"] for h in json.loads((Path(output_dir) / "train_history.json").read_text())]


def test_lr_schedule_warmup_cosine_floor_and_official_cycle():
    assert lr_multiplier(50, 100, 2000, cyclic=False) == pytest.approx(0.5)
    assert lr_multiplier(100 + 950, 100, 2000, cyclic=False) == pytest.approx(0.5)  # half-way in the cosine
    assert lr_multiplier(5000, 100, 2000, cyclic=False) == pytest.approx(0.1)       # clamped floor
    # official unclamped formula: back at 1.0x when progress reaches 2 (epoch 39 of 50)
    assert lr_multiplier(100 + 2 * 1900, 100, 2000, cyclic=True) == pytest.approx(1.0)
    assert lr_multiplier(100 + 1.5 * 1900, 100, 2000, cyclic=True) == pytest.approx(max(0.1, 0.5 * (1 + math.cos(1.5 * math.pi))))
    # official epochs scale with the dataset: 1M / n * 50 epochs
    assert official_updates(TTConfig(batch_size=256), 1_000_000) == 50 * (1_000_000 // 256)


def test_recipe_trains_saves_and_resumes_exactly(tiny_dataset, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    base = TINY + ["--dataset", tiny_dataset, "--save_every", "3"]
    proc = run_recipe(base + ["--output_dir", str(full), "--max_steps", "6"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    # interrupted run: stop after 3 updates, then resume to 6 in a new process
    assert run_recipe(base + ["--output_dir", str(part), "--max_steps", "3"]).returncode == 0
    proc = run_recipe(base + ["--output_dir", str(part), "--max_steps", "6", "--resume"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resumed from" in proc.stdout
    # dropout is on (0.1): equality needs the model, optimizer, schedule, data order and RNG restored;
    # the resumed run's history holds the steps before the interruption too (kept in the checkpoint)
    assert losses(part) == losses(full) and len(losses(full)) == 6
    import seqrl

    model = seqrl.from_pretrained(str(full / "model"))
    assert model.env_id == "Toy-v0" and model.discretizer.N == 8
    card = (full / "model" / "README.md").read_text()
    assert "Toy-v0" in card and "final loss" in card


def test_two_processes_match_one_process(tiny_dataset, tmp_path):
    args = TINY + ["--dataset", tiny_dataset, "--max_steps", "4", "--dropout", "0.0", "--save_every", "100"]
    one = run_recipe(args + ["--output_dir", str(tmp_path / "one")])
    assert one.returncode == 0, one.stderr[-2000:]
    two = run_recipe(args + ["--output_dir", str(tmp_path / "two")],
                     launcher=[sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                               "--master_port", str(29500 + os.getpid() % 1000)])
    assert two.returncode == 0, two.stderr[-3000:]
    assert "on 2 process(es)" in two.stdout
    np.testing.assert_allclose(losses(tmp_path / "two"), losses(tmp_path / "one"), rtol=1e-5, atol=1e-6)


def test_recipe_refuses_the_silent_single_process_fallback(tiny_dataset, tmp_path):
    # what `accelerate launch --cpu --num_processes 2` hands the script: MASTER_ADDR but no WORLD_SIZE
    proc = run_recipe(TINY + ["--dataset", tiny_dataset, "--output_dir", str(tmp_path / "x"), "--max_steps", "1"],
                      env={"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29511", "ACCELERATE_USE_CPU": "True"})
    assert proc.returncode != 0 and "runs a single process" in proc.stderr


def test_recipe_help_explains_every_option():
    proc = run_recipe(["--help"])
    assert proc.returncode == 0
    for name in ("--dataset", "--n_bins", "--cyclic_lr", "--max_steps", "--resume", "--termination_penalty"):
        assert name in proc.stdout


def test_shipped_accelerate_config_launches_without_the_defaults_warning():
    config = ROOT / "recipes" / "accelerate" / "single_process.yaml"
    proc = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
                           str(RECIPE), "--help"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "were not passed" not in proc.stderr + proc.stdout and "--n_layer" in proc.stdout
