"""Each loss term of every algorithm reaches only the parameters it should.

The algorithms sum their terms and take one optimizer step, which equals separate optimizers only
if no term leaks gradient into another network (the critic loss into the actor, the actor loss
into the critics, the temperature loss anywhere but the temperature). One summed backward hides a
leak, so each term is back-propagated alone here and the parameters with a non-zero gradient are
compared with the ones it is meant to train.
"""

from __future__ import annotations

import pytest
import torch

from seqrl.algos import (AWAC, BC, BRAC, COMBO, CQL, IQL, MOPO, SAC, AWACConfig, BCConfig, COMBOConfig, CQLConfig, IQLConfig,
                         MOPOConfig, SACConfig, BRACConfig)

SMALL = dict(hidden_dims=(16, 16), batch_size=8)


def random_batch(seed=0, B=8, obs=3, act=2):
    g = torch.Generator().manual_seed(seed)
    return {
        "observations": torch.randn(B, obs, generator=g),
        "actions": torch.rand(B, act, generator=g) * 2 - 1,
        "rewards": torch.randn(B, generator=g),
        "next_observations": torch.randn(B, obs, generator=g),
        "terminals": (torch.rand(B, generator=g) < 0.3).float(),
        "real_rows": (torch.arange(B) < B // 2).float(),  # MOPO / COMBO: real rows first, then model rows
        "mc_returns": torch.randn(B, generator=g),  # Cal-QL's bound: binds at some rows, not at others
    }


def reached(algo, term: torch.Tensor) -> set[str]:
    """Top-level parameter names (e.g. 'actor', 'temperature') given a non-zero gradient by `term`."""
    algo.zero_grad(set_to_none=True)
    if not term.requires_grad:  # a constant term (a fixed temperature's) reaches nothing
        return set()
    term.backward(retain_graph=True)
    names = {name for name, p in algo.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    algo.zero_grad(set_to_none=True)
    return {name.split(".")[0] for name in names}


def settle(algo, updates=3):
    """A few updates first, so that no gradient is zero by accident of the initialisation."""
    for i in range(updates):
        algo.update(random_batch(100 + i))


SAC_FAMILY = {
    "sac": lambda: SAC(SACConfig(**SMALL), 3, 2),
    "sac_fixed_alpha": lambda: SAC(SACConfig(**SMALL, use_automatic_entropy_tuning=False), 3, 2),
    "cql": lambda: CQL(CQLConfig(**SMALL, cql_n_actions=3), 3, 2),
    "cql_lagrange_max_backup": lambda: CQL(CQLConfig(**SMALL, cql_n_actions=3, cql_lagrange=True,
                                                     cql_max_target_backup=True, backup_entropy=True), 3, 2),
    "cql_calql": lambda: CQL(CQLConfig(**SMALL, cql_n_actions=3, calql=True), 3, 2),
    "mopo": lambda: MOPO(MOPOConfig(**SMALL), 3, 2),
    "combo": lambda: COMBO(COMBOConfig(**SMALL, cql_n_actions=3), 3, 2),
    "combo_model_states": lambda: COMBO(COMBOConfig(**SMALL, cql_n_actions=3, combo_states="model"), 3, 2),
    "brac_v": lambda: BRAC(BRACConfig(**SMALL, kl_samples=3, behaviour_steps=0, warm_start=0), 3, 2),
    "brac_p_dual": lambda: BRAC(BRACConfig(**SMALL, kl_samples=3, behaviour_steps=0, warm_start=0, brac_variant="p",
                                           kl_dual=True), 3, 2),
}
EXPECTED_SAC = {"actor_loss": {"actor"}, "critic_loss": {"critic"}, "alpha_loss": {"temperature"},
                "cql_loss": {"critic"}, "alpha_prime_loss": {"log_alpha_prime"}, "kl_coef_loss": {"kl_coef"}}


@pytest.mark.parametrize("name", list(SAC_FAMILY))
def test_sac_family_terms_reach_only_their_parameters(name):
    torch.manual_seed(0)
    algo = SAC_FAMILY[name]()
    settle(algo)
    terms, _ = algo.loss_terms(random_batch())
    learnable_alpha = algo.config.use_automatic_entropy_tuning
    for key, term in terms.items():
        expected = EXPECTED_SAC[key]
        if key == "alpha_loss" and not learnable_alpha or key == "alpha_prime_loss" and not algo.config.cql_lagrange:
            expected = set()
        assert reached(algo, term) == expected, key
    assert not any(p.requires_grad for p in algo.critic_target.parameters())
    if isinstance(algo, BRAC):  # pi_b's own max-likelihood term, trained before the rest
        assert reached(algo, algo.behaviour_loss(random_batch())) == {"behaviour"}


def test_cql_bc_warm_start_actor_term_reaches_actor_only():
    torch.manual_seed(0)
    algo = CQL(CQLConfig(**SMALL, cql_n_actions=3, bc_steps=10), 3, 2)
    terms, _ = algo.loss_terms(random_batch(), bc_warm_start=True)
    assert reached(algo, terms["actor_loss"]) == {"actor"}
    assert reached(algo, terms["critic_loss"]) == {"critic"}


@pytest.mark.parametrize("deterministic", [False, True])
def test_iql_terms_reach_only_their_parameters(deterministic):
    torch.manual_seed(0)
    algo = IQL(IQLConfig(**SMALL, deterministic_actor=deterministic, max_steps=100), 3, 2)
    settle(algo)
    _, aux = algo.loss(random_batch())
    assert reached(algo, aux["value_loss"]) == {"value"}
    assert reached(algo, aux["critic_loss"]) == {"critic"}
    assert reached(algo, aux["actor_loss"]) == {"actor"}


@pytest.mark.parametrize("paper", [False, True])
def test_awac_terms_reach_only_their_parameters(paper):
    torch.manual_seed(0)
    algo = AWAC(AWACConfig.paper(**SMALL) if paper else AWACConfig(**SMALL), 3, 2)
    settle(algo)
    batch = random_batch()
    critic_loss, _ = algo.critic_loss(batch)
    assert reached(algo, critic_loss) == {"critic"}
    actor_loss, _ = algo.actor_loss(batch, *algo.actor(batch["observations"]))
    assert reached(algo, actor_loss) == {"actor"}


@pytest.mark.parametrize("policy", ["deterministic", "gaussian"])
def test_bc_loss_reaches_actor_only(policy):
    torch.manual_seed(0)
    algo = BC(BCConfig(**SMALL, policy=policy), 3, 2)
    assert reached(algo, algo.loss(random_batch())) == {"actor"}


def test_leak_is_detected():
    """The check itself can fail: an actor loss that forgets to detach the critic leaks into it."""
    torch.manual_seed(0)
    algo = SAC(SACConfig(**SMALL), 3, 2)
    batch = random_batch()
    new_act, _ = algo.actor.sample(batch["observations"])
    leaky = -algo.critic(batch["observations"], new_act).min(0).values.mean()
    assert reached(algo, leaky) == {"actor", "critic"}
