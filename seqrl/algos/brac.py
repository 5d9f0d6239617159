"""BRAC (Wu, Tucker, Nachum 2019): actor-critic with an explicit KL constraint to a behaviour policy
estimated by behaviour cloning, written as SAC (`sac.py`) plus two terms.

Follows google-research `behavior_regularized_offline_rl/brac/brac_primal_agent.py`:
  * the behaviour pi_b: a tanh-Gaussian fitted by max-likelihood first (`behaviour_steps` updates,
    then frozen; the official code trains it in a separate BC run and loads it), saved with the
    policy's weights;
  * KL(pi || pi_b)(s), the primal sample estimate: the mean over `kl_samples` (4) actions a ~ pi(s)
    of log pi(a|s) - log pi_b(a|s);
  * BRAC-v (`brac_variant: v`, the official default): the TD target is
    r + gamma (Q'(s', a') - lambda KL(s')), so future divergence is penalised too, and the actor
    minimises lambda KL(s) - Q(s, pi(s)); BRAC-p (`p`): the KL in the actor objective only, i.e.
    the actor maximises Q + lambda E[log pi_b] + lambda H(pi);
  * lambda fixed (0.1, the official scripts' ALPHA) or by dual gradient descent (`kl_dual`): the
    loss -lambda (KL - kl_target) raises lambda while the KL exceeds its target, clipped to [0, 500];
  * no entropy term besides the KL's own (official alpha_entropy 0), min over 2 critics, critic
    rate 1e-3 and actor 3e-4 (the official scripts), tau 0.005; for `warm_start` updates after
    the behaviour phase the actor minimises the KL alone (official: 20,000).
Not as the official code: one hidden size for actor and critics (its 200x200 actor, 300x300
critics), and every loss from the pre-update networks in one step (it steps Q, then pi, then lambda).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.func import functional_call

from seqrl.algos.sac import SAC, SACConfig
from seqrl.models.nets import TanhGaussianPolicy

BRAC_VARIANTS = ("v", "p")


def kl_estimate(log_pi: Tensor, log_behaviour: Tensor) -> Tensor:
    """KL(pi || pi_b) per state from samples of pi [..., K]: mean of log pi - log pi_b."""
    return (log_pi - log_behaviour).mean(-1)


@dataclass
class BRACConfig(SACConfig):
    algorithm: str = field(default="brac", init=False)
    policy_lr: float = 3e-4
    qf_lr: float = 1e-3
    use_automatic_entropy_tuning: bool = False
    initial_alpha: float = 0.0  # no separate entropy term: the KL holds -log pi
    backup_entropy: bool = False
    brac_variant: str = "v"
    kl_coef: float = 0.1  # lambda (initial, with kl_dual)
    kl_dual: bool = False
    kl_target: float = 0.0
    kl_coef_max: float = 500.0
    kl_lr: float = 1e-3
    kl_samples: int = 4
    behaviour_steps: int = 20_000  # max-likelihood updates of pi_b before anything else
    behaviour_lr: float = 1e-3
    warm_start: int = 20_000  # then updates where the actor minimises the KL alone

    def __post_init__(self):
        if self.brac_variant not in BRAC_VARIANTS:
            raise ValueError(f"brac_variant must be one of {', '.join(BRAC_VARIANTS)}, got {self.brac_variant!r}")
        if self.kl_samples < 1 or self.kl_coef < 0:
            raise ValueError("kl_samples must be >= 1 and kl_coef >= 0")


class BRAC(SAC):
    loss_methods = ("loss", "behaviour_loss")
    config_class = BRACConfig
    metric_names = SAC.metric_names + ("kl_coef",)
    mean_metric_names = ("log_pi", "q_data", "kl")

    def _build_extra(self) -> None:
        c = self.config
        self.behaviour = TanhGaussianPolicy(self.obs_dim, self.act_dim, c.hidden_dims)
        coef = torch.tensor(float(c.kl_coef))
        if c.kl_dual:
            self.kl_coef = nn.Parameter(coef)
        else:
            self.register_buffer("kl_coef", coef)

    def param_groups(self) -> list[dict]:
        groups = super().param_groups() + [{"params": list(self.behaviour.parameters()), "lr": self.config.behaviour_lr}]
        if self.config.kl_dual:
            groups.append({"params": [self.kl_coef], "lr": self.config.kl_lr})
        return groups

    def extra_samples(self) -> int:
        return self.config.kl_samples  # at s' they estimate KL(s') for BRAC-v's target

    # the behaviour policy -------------------------------------------------------------------------
    def in_behaviour_phase(self) -> bool:
        return self.num_updates < self.config.behaviour_steps

    def behaviour_loss(self, batch) -> Tensor:
        return -self.behaviour.log_prob(batch["observations"], batch["actions"]).mean()

    def behaviour_log_prob(self, obs: Tensor, actions: Tensor) -> Tensor:
        """log pi_b(actions | obs) with pi_b's weights detached: gradients reach the actions only."""
        frozen = {k: v.detach() for k, v in self.behaviour.named_parameters()}
        mean, log_std = functional_call(self.behaviour, frozen, (obs,))
        return self.behaviour.log_prob_from(mean, log_std, actions)

    def lam(self) -> Tensor:
        return self.kl_coef.clamp(0.0, self.config.kl_coef_max)

    def kl(self, obs: Tensor, actions: Tensor, log_pi: Tensor) -> Tensor:
        return kl_estimate(log_pi, self.behaviour_log_prob(obs, actions))

    # the SAC hooks: the KL in the actor objective and in the target ------------------------------
    def actor_objective(self, obs, act, mean, log_std, new_act, bc_warm_start):
        samples, log_pi = self.actor.sample_from(mean, log_std, n=self.config.kl_samples, generator=self._rng(obs.device))
        self._last_kl = self.kl(obs, samples, log_pi)  # read by loss_terms (the dual term, logs)
        q = super().actor_objective(obs, act, mean, log_std, new_act, bc_warm_start)
        warm = self.num_updates < self.config.behaviour_steps + self.config.warm_start
        return (0.0 if warm else q) - self.lam().detach() * self._last_kl

    def target_penalty(self, next_obs: Tensor, next_actions: Tensor, next_log_pi: Tensor) -> Tensor | None:
        if self.config.brac_variant != "v":
            return None
        return self.lam().detach() * self.kl(next_obs, next_actions, next_log_pi)

    def loss_terms(self, batch, bc_warm_start: bool = False):
        terms, aux = super().loss_terms(batch, bc_warm_start)
        kl = self._last_kl
        if self.config.kl_dual:  # dual gradient descent: lambda grows while the KL exceeds the target
            terms["kl_coef_loss"] = -(self.lam() * (kl.detach() - self.config.kl_target)).mean()
        aux |= {"kl": kl, "kl_coef": self.lam()}
        return terms, aux

    def update(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        if self.in_behaviour_phase():
            loss = self.behaviour_loss(batch)
            self._optimize(loss)
            self.num_updates += 1
            return {"behaviour_loss": loss.detach()}
        return super().update(batch)
