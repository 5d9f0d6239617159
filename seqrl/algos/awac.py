"""Advantage-Weighted Actor-Critic (Nair et al. 2020).

Default: CORL's D4RL locomotion setup (IQL-paper style): 3x256, lambda 1/3, weights
exp(A / lambda) clipped at 100, one policy sample for V. ``AWACConfig.paper()``: the AWAC paper /
d3rlpy setup: 4x256, batch 1024, lambda 1, batch-softmax weights, actor weight decay 1e-4,
log-std in [-6, 0], tanh mean.

Order as in CORL: the critics step first, then the actor's advantages use the updated critics.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import Tensor

from seqrl.algos.base import OfflineAlgorithm, OfflineConfig, make_adam, soft_update
from seqrl.models.nets import EnsembleMLP, GaussianPolicy


@dataclass
class AWACConfig(OfflineConfig):
    algorithm: str = field(default="awac", init=False)
    hidden_dims: tuple[int, ...] = (256, 256, 256)
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    actor_weight_decay: float = 0.0
    tau: float = 5e-3
    awac_lambda: float = 1.0 / 3.0
    max_weight: float = 100.0  # clip of exp(A / lambda)
    normalize_weights: bool = False  # True: softmax(A / lambda) over the batch, times B
    actor_log_std_min: float = -20.0
    actor_log_std_max: float = 2.0
    tanh_mean: bool = False  # CORL: unbounded mean, samples clipped to [-1, 1]

    @classmethod
    def paper(cls, **overrides) -> AWACConfig:
        """AWAC-paper / d3rlpy reproduction settings."""
        settings = dict(hidden_dims=(256, 256, 256, 256), batch_size=1024, awac_lambda=1.0,
                        normalize_weights=True, actor_weight_decay=1e-4,
                        actor_log_std_min=-6.0, actor_log_std_max=0.0, tanh_mean=True)
        return cls(**(settings | overrides))


def awac_weights(adv: Tensor, awac_lambda: float, max_weight: float, normalize: bool) -> Tensor:
    """exp(A / lambda) clipped at max_weight, or B * softmax over the batch (mean weight 1)."""
    if normalize:
        return torch.softmax(adv / awac_lambda, dim=0) * adv.shape[0]
    return torch.exp(adv / awac_lambda).clamp(max=max_weight)


class AWAC(OfflineAlgorithm):
    config_class = AWACConfig
    loss_methods = ("critic_loss", "actor_loss")  # two optimiser steps per update

    def __init__(self, config: AWACConfig, obs_dim: int, act_dim: int, device=None, **kwargs):
        super().__init__(config, obs_dim, act_dim, **kwargs)
        c = config
        self.critic = EnsembleMLP((obs_dim, act_dim), 1, c.hidden_dims, ensemble_size=2,
                                  squeeze_output=True)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor = GaussianPolicy(obs_dim, act_dim, c.hidden_dims, c.actor_log_std_min,
                                    c.actor_log_std_max, tanh_mean=c.tanh_mean, clip_samples=True)
        self.to(device)
        self.optimizers["critic"] = self.critic_optimizer = make_adam(
            [{"params": list(self.critic.parameters()), "lr": c.critic_lr}])
        self.optimizers["actor"] = self.actor_optimizer = make_adam(
            [{"params": list(self.actor.parameters()), "lr": c.actor_lr,
              "weight_decay": c.actor_weight_decay}])

    def critic_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        c = self.config
        with torch.no_grad():
            next_act, _ = self.actor.sample(batch["next_observations"], generator=self._rng(
                batch["actions"].device))
            target_q = self.critic_target(batch["next_observations"], next_act).min(0).values
            td_target = batch["rewards"] + (1.0 - batch["terminals"]) * c.discount * target_q
        q = self.critic(batch["observations"], batch["actions"])
        loss = (q - td_target).pow(2).mean(-1).sum()  # MSE of each critic, summed (CORL)
        return loss, dict(q=q, td_target=td_target)

    def actor_loss(self, batch: dict[str, Tensor], mean: Tensor | None = None, log_std: Tensor | None = None):
        """Advantage-weighted log-likelihood; (mean, log_std) = actor(obs) with grad (computed here
        when not given)."""
        c = self.config
        obs, act = batch["observations"], batch["actions"]
        if mean is None:
            mean, log_std = self.actor(obs)
        with torch.no_grad():
            pi_act, _ = self.actor.sample_from(mean.detach(), log_std.detach(),
                                               generator=self._rng(act.device))
            # Q(s, a_data) and Q(s, a_pi) in one pass; A = min Q(s, a) - min Q(s, a_pi)
            q = self.critic(obs, torch.stack([act, pi_act], dim=1)).min(0).values  # [B, 2]
            adv = q[:, 0] - q[:, 1]
            weights = awac_weights(adv, c.awac_lambda, c.max_weight, c.normalize_weights)
        loss = -(self.actor.log_prob_from(mean, log_std, act) * weights).mean()
        return loss, dict(adv=adv, weights=weights)

    def update(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        # the critic steps first and the actor's loss reads the updated critics (CORL); one actor
        # forward at s serves both the actor's sampling and its loss
        critic_loss, caux = self.critic_loss(batch)
        self._optimize(critic_loss, self.critic_optimizer)
        actor_loss, aaux = self.actor_loss(batch)
        self._optimize(actor_loss, self.actor_optimizer)

        self.num_updates += 1
        soft_update(self.critic_target, self.critic, self.config.tau)
        metrics = dict(critic_loss=critic_loss, actor_loss=actor_loss, q=caux["q"].mean(),
                       adv=aaux["adv"].mean(), weights=aaux["weights"].mean())
        return {k: t.detach() for k, t in metrics.items()}

    def _act(self, obs: Tensor, deterministic: bool) -> Tensor:
        if deterministic:
            return self.actor.deterministic(obs)
        return self.actor.sample(obs)[0]
