"""Conservative Q-Learning (Kumar et al. 2020), CQL(H): SAC (`sac.py`) plus the conservative
critic penalty, following CORL's port of young-geng/CQL (defaults: CORL's D4RL locomotion configs).

d3rlpy-reproduction style: ``cql_alpha=5.0`` (10.0 for *-medium), ``policy_lr=1e-4``,
``alpha_lr=1e-4``, ``orthogonal_init=False``, ``policy_log_std_offset=0.0``,
``learn_log_std_scale=False``. JaxCQL style: ``hidden_dims=(256, 256)``, ``cql_alpha=5.0``,
``policy_lr=3e-4``. CORL's rates (policy and temperature 3e-5) are tuned for 1M updates; a short CPU
run learns far sooner with 3e-4 (README, learning on mixed data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from seqrl.algos.sac import SAC, PolicySamples, SACConfig
from seqrl.models.nets import standard_uniform


@dataclass
class CQLConfig(SACConfig):
    algorithm: str = field(default="cql", init=False)
    hidden_dims: tuple[int, ...] = (256, 256, 256)  # actor and both critics
    policy_lr: float = 3e-5
    alpha_lr: float = 3e-5  # CORL's temperature optimizer uses policy_lr
    orthogonal_init: bool = True
    policy_log_std_offset: float = -1.0
    learn_log_std_scale: bool = True
    backup_entropy: bool = False  # False: deterministic backup, no -alpha*log pi in the target
    cql_alpha: float = 10.0  # weight of the conservative term
    cql_n_actions: int = 10
    cql_temp: float = 1.0
    cql_importance_sample: bool = True
    cql_lagrange: bool = False
    cql_target_action_gap: float = -1.0
    cql_max_target_backup: bool = False
    cql_clip_diff_min: float = -math.inf
    cql_clip_diff_max: float = math.inf
    bc_steps: int = 0  # actor trained by max-likelihood BC for the first bc_steps updates
    calql: bool = False  # Cal-QL: Q at pi's actions is pushed down no further than the data's Monte-Carlo return


def conservative_gap(q: Tensor, log_density: Tensor | None, temp: float) -> tuple[Tensor, Tensor]:
    """CQL(H): temp * logsumexp((Q(s, a_i) - log density_i) / temp) - Q(s, a_data), per critic and
    state. q is [E, B, 1 + K] with the data action in column 0; without densities the logsumexp
    runs over all 1 + K values (CORL's cql_importance_sample=False). Returns (gap, ood_q)."""
    ood = q if log_density is None else q[..., 1:] - log_density
    ood_q = torch.logsumexp(ood / temp, dim=-1) * temp
    return ood_q - q[..., 0], ood_q


def calibrated(q_sampled: Tensor, lower_bound: Tensor, n_uniform: int) -> tuple[Tensor, Tensor]:
    """Cal-QL (Nakamoto et al. 2023): Q at the policy's actions (the columns after the `n_uniform`
    uniform ones) raised to the Monte-Carlo return of the data's behaviour from that state, so the
    conservative term stops at a calibrated lower bound. q_sampled [E, B, K], lower_bound [B];
    returns the bounded values and the fraction of them that were raised."""
    policy_q, bound = q_sampled[..., n_uniform:], lower_bound[None, :, None]
    raised = (policy_q < bound).float().mean()
    return torch.cat([q_sampled[..., :n_uniform], torch.maximum(policy_q, bound)], dim=-1), raised


class CQL(SAC):
    config_class = CQLConfig
    metric_names = SAC.metric_names + ("cql_loss", "alpha_prime")
    mean_metric_names = SAC.mean_metric_names + ("cql_diff",)
    critic_last_init = "xavier"  # CORL: xavier-uniform with gain 1e-2 when not orthogonal

    def _actor_init(self) -> dict:
        return dict(last_init="xavier", last_gain=1e-2)  # CORL's actor: last layer xavier, gain 1e-2

    def _build_extra(self) -> None:
        if self.config.calql:
            self.metric_names = self.metric_names + ("calql_bound_rate",)
        if self.config.cql_lagrange:
            self.log_alpha_prime = torch.nn.Parameter(torch.tensor(1.0))  # CORL's Scalar(1.0)
        self.log_uniform_density = self.act_dim * math.log(0.5)  # log of U(-1, 1)^A

    def param_groups(self) -> list[dict]:
        groups = super().param_groups()
        if self.config.cql_lagrange:
            groups.append({"params": [self.log_alpha_prime], "lr": self.config.qf_lr})
        return groups

    def extra_samples(self) -> int:
        return self.config.cql_n_actions

    def target_samples(self) -> int:
        return self.config.cql_n_actions if self.config.cql_max_target_backup else 1

    def bc_warm_start(self) -> bool:
        return self.num_updates + 1 <= self.config.bc_steps

    def actor_objective(self, obs, act, mean, log_std, new_act, bc_warm_start):
        if bc_warm_start:  # the first bc_steps updates maximise log pi(a_data|s)
            return self.actor.log_prob_from(mean, log_std, act)
        return super().actor_objective(obs, act, mean, log_std, new_act, bc_warm_start)

    def _uniform_actions(self, batch_size: int, n: int, like: Tensor) -> Tensor:
        u = standard_uniform((batch_size, n, self.act_dim), self._rng(like.device), like)
        return u * 2.0 - 1.0

    def critic_sample_actions(self, batch, samples: PolicySamples) -> Tensor:
        # [N x U(-1,1) | N x pi(s') | N x pi(s)]  (pi(s') evaluated at Q(s, .), as the original)
        act = batch["actions"]
        rand_act = self._uniform_actions(act.shape[0], self.config.cql_n_actions, act)
        return torch.cat([rand_act, samples.next, samples.current], dim=1)

    def conservative_difference(self, batch, gap: Tensor, ood_q: Tensor, q_data: Tensor) -> Tensor:
        """The penalty's batch average per critic [E] (COMBO changes which rows go down and up)."""
        return gap.clamp(self.config.cql_clip_diff_min, self.config.cql_clip_diff_max).mean(-1)

    def critic_penalty(self, batch, q_data: Tensor, q_sampled: Tensor, samples: PolicySamples, rows):
        c = self.config
        extra = {}
        if c.calql:  # the bound before the densities are subtracted, as the Cal-QL code
            if "mc_returns" not in batch:
                raise ValueError("Cal-QL needs each row's Monte-Carlo return in the batch (mc_returns); "
                                 "the training run stores them when calql is set")
            bound = batch["mc_returns"] if rows is None else batch["mc_returns"][rows]
            q_sampled, extra["calql_bound_rate"] = calibrated(q_sampled, bound, c.cql_n_actions)
        log_density = None
        if c.cql_importance_sample:  # subtract each sampler's log density
            log_density = torch.cat([q_sampled.new_full(samples.next_log_pi.shape, self.log_uniform_density),
                                     samples.next_log_pi, samples.current_log_pi], dim=1)
        q_at_rows = q_data if rows is None else q_data[:, rows]
        gap, ood_q = conservative_gap(torch.cat([q_at_rows[..., None], q_sampled], dim=-1), log_density, c.cql_temp)
        cql_diff = self.conservative_difference(batch, gap, ood_q, q_data)  # [E]

        if c.cql_lagrange:  # alpha' grows while the gap exceeds the target, critics see it fixed
            alpha_prime = self.log_alpha_prime.exp().clamp(0.0, 1e6)
            target = c.cql_target_action_gap
            terms = {"cql_loss": (alpha_prime.detach() * c.cql_alpha * (cql_diff - target)).sum(),
                     "alpha_prime_loss": -0.5 * (alpha_prime * c.cql_alpha * (cql_diff.detach() - target)).sum()}
        else:
            alpha_prime = q_data.new_zeros(())
            terms = {"cql_loss": c.cql_alpha * cql_diff.sum(), "alpha_prime_loss": alpha_prime}
        return terms, dict(cql_diff=cql_diff, ood_q=ood_q, alpha_prime=alpha_prime, **extra)
