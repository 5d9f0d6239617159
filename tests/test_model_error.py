"""benchmarks/model_error.py, the diagnosis of where a dynamics model is wrong: the one-step and
open-loop h-step errors equal hand-computed values on a model whose error is known, the rank
correlation is Spearman's, and env actions map to the model's [-1, 1]."""

import math
import sys
from pathlib import Path

import pytest
import torch

from seqrl.training.ope import unit_actions

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
model_error = pytest.importorskip("model_error")


class DriftModel:
    """Predicts s' = s + a and r = 1 for every member: a model off by `drift` per step when the real
    system is s' = s + a + drift."""
    elites = torch.tensor([0, 1])

    def predict(self, obs, act):
        mean = torch.cat([obs + act, torch.ones(len(obs), 1)], dim=-1).expand(3, -1, -1)
        return mean, torch.full_like(mean, 0.5)


def episode(length: int, dim: int, drift: float):
    torch.manual_seed(0)
    actions = torch.rand(length, dim) * 2 - 1
    obs = [torch.zeros(dim)]
    for a in actions:
        obs.append(obs[-1] + a + drift)
    obs = torch.stack(obs)
    return {"observations": obs[:-1], "actions": actions, "next_observations": obs[1:],
            "rewards": torch.full((length,), 3.0)}


def test_open_loop_error_grows_with_the_horizon_as_computed_by_hand():
    scale = torch.tensor([2.0, 2.0, 1.0])
    exact = episode(20, 2, 0.0)
    assert model_error.h_step(DriftModel(), [exact], 5, scale) == pytest.approx(0.0, abs=1e-6)
    drifting = episode(20, 2, 0.1)
    # after h open-loop steps the state is h * 0.1 off in each dim; / scale 2 -> RMS 0.05 h
    for h in (1, 3, 5):
        assert model_error.h_step(DriftModel(), [drifting], h, scale) == pytest.approx(0.05 * h, rel=1e-5)
    # an episode shorter than h has no start with h real steps after it: left out, nothing to average
    assert math.isnan(model_error.h_step(DriftModel(), [episode(3, 2, 0.1)], 5, scale))
    assert model_error.h_step(DriftModel(), [episode(3, 2, 0.1), drifting], 5, scale) == pytest.approx(0.25, rel=1e-5)


def test_one_step_error_counts_the_reward_and_returns_the_penalty():
    rows = episode(10, 2, 0.1)
    error, u, _ = model_error.one_step(DriftModel(), rows, torch.tensor([0.1, 0.1, 1.0]), "aleatoric")
    # state dims off by 0.1 / 0.1 = 1, reward off by (1 - 3) / 1 = -2: RMS sqrt((1 + 1 + 4) / 3)
    assert torch.allclose(error, torch.full((10,), (6 / 3) ** 0.5))
    assert torch.allclose(u, torch.full((10,), (3 * 0.25) ** 0.5))  # L2 norm of std 0.5 over 3 outputs


def test_spearman_is_the_rank_correlation():
    x = torch.tensor([1.0, 5.0, 2.0, 9.0])
    assert model_error.spearman(x, x.exp()) == pytest.approx(1.0)
    assert model_error.spearman(x, -x) == pytest.approx(-1.0)
    # ranks (0, 2, 1, 3) and (1, 3, 0, 2): sum d^2 = 4, rho = 1 - 6 * 4 / (4 * 15) = 0.6
    assert model_error.spearman(x, torch.tensor([2.0, 4.0, 1.0, 3.0])) == pytest.approx(0.6)


def test_env_actions_map_to_the_models_unit_box():
    low, high = torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 1.0])
    a = torch.tensor([[-2.0, 0.0], [0.0, 0.5], [2.0, 1.0]])
    assert torch.allclose(unit_actions(a, low, high), torch.tensor([[-1.0, -1.0], [0.0, 0.0], [1.0, 1.0]]))
