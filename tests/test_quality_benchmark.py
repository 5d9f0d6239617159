"""benchmarks/quality.py's peer cells read the right per-dataset settings: every v5 family name maps
to a key of d3rlpy 1.1.1's MOPO (h, lambda) table (an unknown name would fall back to (5, 1) without
a word), and COMBO's conservative weight and rates follow d3rlpy's reproduction script."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
quality = pytest.importorskip("quality")
worker = pytest.importorskip("_d3rlpy1_quality_worker")


@pytest.mark.parametrize("env", ["hopper", "halfcheetah", "walker2d"])
@pytest.mark.parametrize("kind", ["random", "medium", "medium-replay", "medium-expert"])
def test_family_names_reach_the_mopo_table(env, kind):
    task = quality.d4rl_task(f"seqrl/{env}/{kind}-v0")
    assert task == f"{env}-{kind}"
    assert task in worker.MOPO_TABLE


def test_combo_settings_follow_the_reproduction():
    assert worker.MOPO_TABLE["hopper-medium"] == (5, 5) and worker.MOPO_TABLE["halfcheetah-medium"] == (1, 1)
    assert worker.combo_settings("hopper-medium")["conservative_weight"] == 5.0
    assert worker.combo_settings("hopper-medium-replay")["conservative_weight"] == 1.0
    assert worker.combo_settings("walker2d-medium-replay")["conservative_weight"] == 0.5
    assert worker.combo_settings("halfcheetah-medium-expert")["conservative_weight"] == 0.5  # halfcheetah first
    walker = worker.combo_settings("walker2d-medium")
    assert (walker["actor_learning_rate"], walker["critic_learning_rate"]) == (1e-5, 1e-4)
