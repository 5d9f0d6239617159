"""BRAC: the sampled KL against the closed form, the penalty in the target and the actor by hand,
the behaviour phase, the dual update of lambda, and learning on a small built-in set."""

import math

import pytest
import torch

from seqrl.algos import BRAC, BRACConfig
from seqrl.algos.brac import kl_estimate
from seqrl.data import load_dataset
from seqrl.models.nets import TanhGaussianPolicy
from seqrl.training.run import main

SMALL = dict(hidden_dims=(16, 16), batch_size=8, kl_samples=3, behaviour_steps=0, warm_start=0)


def batch(seed=0, B=8, obs=3, act=2):
    g = torch.Generator().manual_seed(seed)
    return {"observations": torch.randn(B, obs, generator=g), "actions": torch.rand(B, act, generator=g) * 1.8 - 0.9,
            "rewards": torch.randn(B, generator=g), "next_observations": torch.randn(B, obs, generator=g),
            "terminals": (torch.rand(B, generator=g) < 0.3).float()}


def test_sampled_kl_matches_the_closed_form_for_gaussians():
    # KL is invariant under the tanh bijection: KL(tanh N1 || tanh N2) = KL(N1 || N2), per dimension
    # log(s2 / s1) + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2.
    torch.manual_seed(0)
    m1, m2 = torch.tensor([[0.2, -0.4], [0.0, 0.3]]), torch.tensor([[-0.1, 0.0], [0.3, 0.3]])
    s1, s2 = torch.tensor([[0.3, 0.5], [0.4, 0.2]]), torch.tensor([[0.5, 0.4], [0.3, 0.3]])
    a, log_pi = TanhGaussianPolicy.sample_from(m1, s1.log(), n=200_000)
    estimate = kl_estimate(log_pi, TanhGaussianPolicy.log_prob_from(m2, s2.log(), a))
    closed = (torch.log(s2 / s1) + (s1 ** 2 + (m1 - m2) ** 2) / (2 * s2 ** 2) - 0.5).sum(-1)
    assert torch.allclose(estimate, closed, rtol=0.02, atol=2e-3), (estimate, closed)


def test_value_penalty_enters_the_target_as_gamma_lambda_kl():
    class Recording(BRAC):
        def target_penalty(self, *args):
            self.seen = args
            return super().target_penalty(*args)

    torch.manual_seed(0)
    v = Recording(BRACConfig(**SMALL, brac_variant="v", kl_coef=0.7), 3, 2)
    p = BRAC(BRACConfig(**SMALL, brac_variant="p", kl_coef=0.7), 3, 2)
    p.load_state_dict(v.state_dict())
    b = batch()
    _, aux_v = v.loss_terms(b)
    _, aux_p = p.loss_terms(b)
    next_obs, next_act, next_log_pi = v.seen
    assert next_act.shape == (8, 3, 2)   # kl_samples actions at every s'
    log_b = v.behaviour.log_prob(next_obs[:, None].expand(-1, 3, -1), next_act)
    kl_next = (next_log_pi - log_b).mean(-1)
    expected = aux_p["td_target"] - 0.99 * (1 - b["terminals"]) * 0.7 * kl_next
    assert torch.allclose(aux_v["td_target"], expected, atol=1e-5)


def test_actor_loss_is_lambda_kl_minus_q_and_kl_only_while_warming_up():
    torch.manual_seed(0)
    algo = BRAC(BRACConfig(**{**SMALL, "warm_start": 1}, kl_coef=0.5), 3, 2)
    b = batch()
    terms, aux = algo.loss_terms(b)   # update 0 < warm_start: the KL alone
    assert torch.allclose(terms["actor_loss"], 0.5 * aux["kl"].mean(), atol=1e-6)
    algo.num_updates = 1
    g = algo.generator.get_state()
    terms, aux = algo.loss_terms(b)
    algo.generator.set_state(g)   # the same samples again, to read Q(s, pi(s))
    mean, log_std = algo.actor(b["observations"])
    new_act, _ = algo.actor.sample_from(mean, log_std, n=1 + 3, generator=algo.generator)
    q = algo.critic(b["observations"], new_act[:, 0]).min(0).values
    assert torch.allclose(terms["actor_loss"], (0.5 * aux["kl"] - q).mean(), atol=1e-5)


def test_behaviour_phase_trains_the_behaviour_only_then_freezes_it():
    torch.manual_seed(0)
    algo = BRAC(BRACConfig(**{**SMALL, "behaviour_steps": 3}), 3, 2)
    before = {k: v.clone() for k, v in algo.state_dict().items()}
    losses = [algo.update(batch(i))["behaviour_loss"] for i in range(3)]
    after = algo.state_dict()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"behaviour"} and all(torch.isfinite(x) for x in losses)
    frozen = {k: v.clone() for k, v in algo.behaviour.state_dict().items()}
    metrics = algo.update(batch(5))
    assert "actor_loss" in metrics and "kl" in metrics
    assert all(torch.equal(frozen[k], v) for k, v in algo.behaviour.state_dict().items())


def test_dual_lambda_rises_above_the_kl_target_and_falls_below_it():
    torch.manual_seed(0)
    up = BRAC(BRACConfig(**SMALL, kl_dual=True, kl_coef=1.0, kl_target=-100.0, kl_lr=0.1), 3, 2)
    down = BRAC(BRACConfig(**SMALL, kl_dual=True, kl_coef=1.0, kl_target=100.0, kl_lr=0.1), 3, 2)
    for i in range(5):
        up.update(batch(i))
        down.update(batch(i))
    assert up.lam().item() > 1.0 and down.lam().item() < 1.0
    for i in range(100):
        down.update(batch(i))
    assert down.lam().item() == 0.0   # clipped at 0 as the official code


def test_bad_variant_is_refused():
    with pytest.raises(ValueError, match="brac_variant must be one of v, p"):
        BRACConfig(brac_variant="q")


@pytest.mark.parametrize("variant", ["v", "p"])
def test_brac_beats_the_mixed_data(variant, tmp_path):
    dataset = "seqrl/invertedpendulum/mixed-v0"
    data_mean = load_dataset(dataset).summary().return_mean
    result = main("brac", ["--dataset", dataset, "--max_steps", "1500", "--behaviour_steps", "500", "--warm_start", "200",
                           "--brac_variant", variant, "--hidden_dims", "64", "64", "--eval_episodes", "5",
                           "--log_every", "500", "--save_every", "0", "--threads", "1",
                           "--output_dir", str(tmp_path / variant), "--no-resume"])
    assert result["eval"]["return_mean"] > 2 * data_mean, (result["eval"], data_mean)
    assert math.isfinite(result["history"][-1]["kl"])
