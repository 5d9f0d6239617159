"""Learning checks on real family data (Hopper-v5), small enough for CI: a regression in an
algorithm shows here, not only in the quality table.

- IQL on seqrl/hopper/medium-replay-v0 (100,000 transitions of an online SAC run's replay buffer,
  built from the shipped rows in seconds), 3,000 updates: its deterministic policy must beat the
  data it learned from (measured: 336 vs the data's 212 on 5 episodes; random policy 17).
- BC on a 20,000-step slice of seqrl/hopper/medium-v0 (the shipped medium SAC actor, sampled
  actions), 3,000 updates: it must recover most of the behaviour's return (a BC that learns
  nothing scores like the random policy).
Each uses the YAML of the quality table (recipes/configs/<algo>/v5-short.yaml).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from seqrl.data import EpisodeDataset, load_dataset, families

CONFIGS = Path(__file__).resolve().parent.parent / "recipes" / "configs"


def require(dataset_id: str, n_steps: int | None = None) -> EpisodeDataset:
    if dataset_id not in families.available():
        pytest.fail(f"the behaviour policies of {dataset_id} are missing from seqrl/data/family_assets")
    families.ensure_family(dataset_id, n_steps=n_steps)
    return load_dataset(dataset_id)


def train_and_score(algo: str, dataset: str, tmp_path, steps: int) -> float:
    from seqrl.training.run import main

    result = main(algo, ["--config", str(CONFIGS / algo / "v5-short.yaml"), "--dataset", dataset,
                         "--max_steps", str(steps), "--eval_episodes", "5", "--eval_every", "0",
                         "--save_every", str(steps), "--log_every", str(steps), "--output_dir", str(tmp_path / algo),
                         "--no-resume"])
    return result["eval"]["return_mean"]


def test_iql_beats_hopper_medium_replay(tmp_path):
    data = require("seqrl/hopper/medium-replay-v0")
    data_mean = data.summary().return_mean
    score = train_and_score("iql", "seqrl/hopper/medium-replay-v0", tmp_path, 3000)
    assert score > data_mean, f"IQL {score:.1f} vs the data's {data_mean:.1f}"


def test_bc_recovers_hopper_medium(tmp_path):
    data = require("seqrl/hopper/medium-v0", n_steps=20_000)
    assert 18_000 < len(data) <= 20_000  # complete episodes within the slice's steps
    data_mean = data.summary().return_mean
    score = train_and_score("bc", "seqrl/hopper/medium-v0", tmp_path, 3000)
    assert score > 0.7 * data_mean, f"BC {score:.1f} vs the data's {data_mean:.1f}"
