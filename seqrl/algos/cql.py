"""Conservative Q-Learning (Kumar et al. 2020), CQL(H) on top of SAC, following CORL's port of
young-geng/CQL (defaults: CORL's D4RL locomotion configs).

d3rlpy-reproduction style: ``cql_alpha=5.0`` (10.0 for *-medium), ``policy_lr=1e-4``,
``alpha_lr=1e-4``, ``orthogonal_init=False``, ``policy_log_std_offset=0.0``,
``learn_log_std_scale=False``. JaxCQL style: ``hidden_dims=(256, 256)``, ``cql_alpha=5.0``,
``policy_lr=3e-4``. CORL's rates (policy and temperature 3e-5) are tuned for 1M updates; a short CPU
run learns far sooner with 3e-4 (README, learning on mixed data).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from seqrl.algos.base import OfflineAlgorithm, OfflineConfig, make_adam, soft_update
from seqrl.algos.sac import Temperature, sac_actor_loss, temperature_loss
from seqrl.models.nets import EnsembleMLP, TanhGaussianPolicy


@dataclass
class CQLConfig(OfflineConfig):
    algorithm: str = field(default="cql", init=False)
    hidden_dims: tuple[int, ...] = (256, 256, 256)  # actor and both critics
    policy_lr: float = 3e-5
    qf_lr: float = 3e-4
    alpha_lr: float = 3e-5  # CORL's temperature optimizer uses policy_lr
    tau: float = 5e-3
    target_update_period: int = 1
    orthogonal_init: bool = True  # critics: orthogonal sqrt(2), last layer 1e-2
    # actor log-std = clamp(multiplier * raw + offset, -20, 2); CORL learns both scalars
    policy_log_std_multiplier: float = 1.0
    policy_log_std_offset: float = -1.0
    learn_log_std_scale: bool = True
    use_automatic_entropy_tuning: bool = True
    initial_alpha: float = 1.0
    alpha_multiplier: float = 1.0
    target_entropy: float | None = None  # None: -act_dim
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


class CQL(OfflineAlgorithm):
    config_class = CQLConfig

    def __init__(self, config: CQLConfig, obs_dim: int, act_dim: int, device=None, **kwargs):
        super().__init__(config, obs_dim, act_dim, **kwargs)
        c = config
        self.critic = EnsembleMLP(
            (obs_dim, act_dim), 1, c.hidden_dims, ensemble_size=2, squeeze_output=True,
            hidden_init="orthogonal" if c.orthogonal_init else "default",
            last_init="orthogonal" if c.orthogonal_init else "xavier", last_gain=1e-2,
        )
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        # CORL's actor: default init, last layer xavier-uniform with gain 1e-2
        self.actor = TanhGaussianPolicy(
            obs_dim, act_dim, c.hidden_dims, log_std_multiplier=c.policy_log_std_multiplier,
            log_std_offset=c.policy_log_std_offset, learn_log_std_scale=c.learn_log_std_scale,
            last_init="xavier", last_gain=1e-2,
        )
        self.temperature = Temperature(c.initial_alpha, c.alpha_multiplier,
                                       learnable=c.use_automatic_entropy_tuning)
        self.target_entropy = -float(act_dim) if c.target_entropy is None else c.target_entropy
        if c.cql_lagrange:
            self.log_alpha_prime = torch.nn.Parameter(torch.tensor(1.0))  # CORL's Scalar(1.0)
        self.to(device)
        groups = [
            {"params": list(self.actor.parameters()), "lr": c.policy_lr},
            {"params": list(self.critic.parameters()), "lr": c.qf_lr},
        ]
        if c.use_automatic_entropy_tuning:
            groups.append({"params": [self.temperature.log_alpha], "lr": c.alpha_lr})
        if c.cql_lagrange:
            groups.append({"params": [self.log_alpha_prime], "lr": c.qf_lr})
        self.optimizers["main"] = self.optimizer = make_adam(groups)
        self.log_uniform_density = act_dim * math.log(0.5)  # log of U(-1, 1)^A

    def _uniform_actions(self, batch_size: int, n: int, like: Tensor) -> Tensor:
        u = torch.rand(batch_size, n, self.act_dim, generator=self._rng(like.device),
                       device=like.device, dtype=like.dtype)
        return u * 2.0 - 1.0

    def loss(self, batch: dict[str, Tensor], bc_warm_start: bool | None = None
             ) -> tuple[Tensor, dict[str, Tensor]]:
        """Total loss of one update (all terms use the pre-update networks, and each term's
        gradient reaches only its own parameters, so one backward and one step suffice).
        `bc_warm_start` defaults to whether this update is within `bc_steps`; `update` passes it
        so that a compiled loss does not specialise on the update counter."""
        c = self.config
        if bc_warm_start is None:
            bc_warm_start = self.num_updates + 1 <= c.bc_steps
        obs, act = batch["observations"], batch["actions"]
        B, N = act.shape[0], c.cql_n_actions
        g = self._rng(obs.device)

        # actor at s: one forward, 1 + N samples (sample 0 trains the actor, N feed the CQL term)
        mean, log_std = self.actor(obs)
        pi_act, pi_logp = self.actor.sample_from(mean, log_std, n=1 + N, generator=g)
        new_act, log_pi = pi_act[:, 0], pi_logp[:, 0]

        # SAC temperature and actor
        alpha = self.temperature()
        alpha_loss = (temperature_loss(self.temperature.log_alpha, log_pi, self.target_entropy)
                      if c.use_automatic_entropy_tuning else alpha.new_zeros(()))
        if bc_warm_start:  # maximise log pi(a_data|s)
            actor_loss = sac_actor_loss(alpha, log_pi, self.actor.log_prob_from(mean, log_std, act))
        else:  # critic weights detached: the actor loss moves the actor only
            q_new = self.critic(obs, new_act, detach_params=True).min(0).values
            actor_loss = sac_actor_loss(alpha, log_pi, q_new)

        # TD target from the target critics; N further samples at s' feed the CQL term
        with torch.no_grad():
            n_target = N if c.cql_max_target_backup else 1
            next_act, next_logp = self.actor.sample(batch["next_observations"], n=N + n_target,
                                                    generator=g)
            target_q = self.critic_target(batch["next_observations"], next_act[:, N:]).min(0).values
            target_q, idx = target_q.max(-1)  # max-Q backup over N samples, or the single one
            if c.backup_entropy:
                target_q = target_q - alpha * next_logp[:, N:].gather(1, idx[:, None]).squeeze(1)
            td_target = batch["rewards"] + (1.0 - batch["terminals"]) * c.discount * target_q

        # Q(s, .) at the data action and 3N sampled actions, one batched pass for both critics:
        # [a_data | N x U(-1,1) | N x pi(s') | N x pi(s)]  (pi(s') at Q(s, .), as the original)
        cur_act, cur_logp = pi_act[:, 1:].detach(), pi_logp[:, 1:].detach()
        rand_act = self._uniform_actions(B, N, act)
        cql_act = torch.cat([act[:, None], rand_act, next_act[:, :N], cur_act], dim=1)
        q = self.critic(obs, cql_act)  # [2, B, 1 + 3N]
        q_data = q[..., 0]
        critic_loss = (q_data - td_target).pow(2).mean(-1).sum()  # MSE of each critic, summed

        if c.cql_importance_sample:  # logsumexp over Q - log density of each sampler
            log_density = torch.cat(
                [q.new_full((B, N), self.log_uniform_density), next_logp[:, :N], cur_logp], dim=1)
            ood = q[..., 1:] - log_density
        else:  # CQL(H) without importance weights: logsumexp over all 3N + 1 values (as CORL)
            ood = q
        ood_q = torch.logsumexp(ood / c.cql_temp, dim=-1) * c.cql_temp  # [2, B]
        cql_diff = (ood_q - q_data).clamp(c.cql_clip_diff_min, c.cql_clip_diff_max).mean(-1)  # [2]

        if c.cql_lagrange:  # alpha' grows while the gap exceeds the target, critics see it fixed
            alpha_prime = self.log_alpha_prime.exp().clamp(0.0, 1e6)
            gap = c.cql_target_action_gap
            cql_loss = (alpha_prime.detach() * c.cql_alpha * (cql_diff - gap)).sum()
            alpha_prime_loss = -0.5 * (alpha_prime * c.cql_alpha * (cql_diff.detach() - gap)).sum()
        else:
            alpha_prime = alpha_prime_loss = q.new_zeros(())
            cql_loss = c.cql_alpha * cql_diff.sum()

        total = actor_loss + alpha_loss + critic_loss + cql_loss + alpha_prime_loss
        aux = dict(actor_loss=actor_loss, alpha_loss=alpha_loss, alpha=alpha, log_pi=log_pi,
                   critic_loss=critic_loss, cql_loss=cql_loss, cql_diff=cql_diff, ood_q=ood_q,
                   q_data=q_data, td_target=td_target, alpha_prime=alpha_prime,
                   alpha_prime_loss=alpha_prime_loss)
        return total, aux

    def update(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        total, aux = self.loss(batch, self.num_updates + 1 <= self.config.bc_steps)
        self._optimize(total)
        self.num_updates += 1
        if self.num_updates % self.config.target_update_period == 0:
            soft_update(self.critic_target, self.critic, self.config.tau)
        metrics = {k: aux[k] for k in ("actor_loss", "critic_loss", "cql_loss", "alpha_loss",
                                       "alpha", "alpha_prime")}
        metrics |= dict(log_pi=aux["log_pi"].mean(), q_data=aux["q_data"].mean(),
                        cql_diff=aux["cql_diff"].mean())
        return {k: v.detach() for k, v in metrics.items()}

    def _act(self, obs: Tensor, deterministic: bool) -> Tensor:
        if deterministic:
            return self.actor.deterministic(obs)
        return self.actor.sample(obs)[0]  # global RNG: acting never moves the training RNG
