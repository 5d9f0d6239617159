"""Learning checks on a slice of a real family (hopper medium, Hopper-v5), small enough for CI:
a regression in an algorithm shows here, not only in the quality table.

The slice: 20,000 environment steps of seqrl/hopper/medium-v0 (the shipped medium SAC actor,
sampled actions). Each method trains with the YAML the quality table uses, for a short budget, and
its deterministic policy must beat the data it learned from on 5 evaluation episodes; the random
policy scores about 0 on this scale, the data about a third of the expert.
"""

from __future__ import annotations

import pytest

from seqrl.data import EpisodeDataset, families

SLICE = 20_000
DATASET = "seqrl/hopper/medium-v0"


@pytest.fixture(scope="module")
def hopper_slice():
    if DATASET not in families.available():
        pytest.fail("the hopper family's behaviour policies are missing from seqrl/data/family_assets")
    families.ensure_family(DATASET, n_steps=SLICE)
    ds = EpisodeDataset.load(DATASET)
    assert 0.9 * SLICE < len(ds) <= SLICE  # complete episodes within the slice's steps
    return ds


def train_and_score(algo: str, tmp_path, steps: int) -> tuple[float, float]:
    from pathlib import Path

    from seqrl.value_training import main

    config = Path(__file__).resolve().parent.parent / "recipes" / "configs" / algo / "v5-short.yaml"
    result = main(algo, ["--config", str(config), "--dataset", DATASET, "--max_steps", str(steps),
                         "--eval_episodes", "5", "--eval_every", "0", "--save_every", str(steps),
                         "--log_every", str(steps), "--output_dir", str(tmp_path / algo), "--no-resume"])
    return result["eval"]["return_mean"], result["eval"]["return_stderr"]


@pytest.mark.parametrize("algo,steps", [("iql", 3000), ("bc", 3000)])
def test_beats_the_data_on_hopper_medium(hopper_slice, tmp_path, algo, steps):
    data_mean = hopper_slice.summary().return_mean
    mean, stderr = train_and_score(algo, tmp_path, steps)
    assert mean > data_mean, f"{algo}: {mean:.1f} ± {stderr:.1f} vs the data's {data_mean:.1f}"


@pytest.mark.slow
@pytest.mark.parametrize("algo,steps", [("awac", 3000), ("cql", 1500)])
def test_beats_the_data_on_hopper_medium_slow(hopper_slice, tmp_path, algo, steps):
    data_mean = hopper_slice.summary().return_mean
    mean, stderr = train_and_score(algo, tmp_path, steps)
    assert mean > data_mean, f"{algo}: {mean:.1f} ± {stderr:.1f} vs the data's {data_mean:.1f}"
