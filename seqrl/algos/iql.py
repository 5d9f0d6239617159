"""Implicit Q-Learning (Kostrikov et al. 2021), following CORL (defaults: D4RL locomotion).

V is fitted by expectile regression to the target critics, Q by TD to V(s'), and the actor by
advantage-weighted regression. As in CORL, the three losses all use the pre-update networks
(the official JAX code feeds the just-updated V into the Q and actor updates).
Official-code style: ``actor_log_std_min=-5.0``, ``orthogonal_init=True``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from seqrl.algos.base import OfflineAlgorithm, OfflineConfig, make_adam, soft_update
from seqrl.models.nets import MLP, DeterministicPolicy, EnsembleMLP, GaussianPolicy


@dataclass
class IQLConfig(OfflineConfig):
    algorithm: str = field(default="iql", init=False)
    hidden_dims: tuple[int, ...] = (256, 256)
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    value_lr: float = 3e-4
    expectile: float = 0.7
    beta: float = 3.0  # inverse temperature of the advantage weights
    max_weight: float = 100.0  # exp-advantage clip
    tau: float = 0.005
    deterministic_actor: bool = False  # True: MSE-BC tanh actor (CORL hopper-medium configs)
    actor_log_std_min: float = -20.0  # CORL; official IQL and d3rlpy use -5
    actor_log_std_max: float = 2.0
    orthogonal_init: bool = False
    cosine_lr_decay: bool = True  # actor lr follows a cosine to 0 over max_steps


def expectile_loss(diff: Tensor, expectile: float) -> Tensor:
    """E[|expectile - 1(diff < 0)| * diff^2]: asymmetric L2, diff = target - prediction."""
    weight = torch.where(diff < 0, 1.0 - expectile, expectile)
    return (weight * diff.pow(2)).mean()


class IQL(OfflineAlgorithm):
    config_class = IQLConfig

    def __init__(self, config: IQLConfig, obs_dim: int, act_dim: int, device=None, **kwargs):
        super().__init__(config, obs_dim, act_dim, **kwargs)
        c = config
        init = dict(hidden_init="orthogonal", last_init="orthogonal") if c.orthogonal_init else {}
        self.critic = EnsembleMLP((obs_dim, act_dim), 1, c.hidden_dims, ensemble_size=2,
                                  squeeze_output=True, **init)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.value = MLP(obs_dim, 1, c.hidden_dims, squeeze_output=True, **init)
        if c.deterministic_actor:
            self.actor = DeterministicPolicy(obs_dim, act_dim, c.hidden_dims, **init)
        else:
            self.actor = GaussianPolicy(obs_dim, act_dim, c.hidden_dims, c.actor_log_std_min,
                                        c.actor_log_std_max, tanh_mean=True, **init)
        self.to(device)
        self.optimizers["main"] = self.optimizer = make_adam([
            {"params": list(self.actor.parameters()), "lr": c.actor_lr},
            {"params": list(self.critic.parameters()), "lr": c.critic_lr},
            {"params": list(self.value.parameters()), "lr": c.value_lr},
        ])
        if c.cosine_lr_decay:  # closed form of CosineAnnealingLR(T_max=max_steps), actor only
            cosine = lambda t: 0.5 * (1.0 + math.cos(math.pi * t / c.max_steps))  # noqa: E731
            const = lambda t: 1.0  # noqa: E731
            self.schedulers["main"] = torch.optim.lr_scheduler.LambdaLR(
                self.optimizer, [cosine, const, const])

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        c = self.config
        obs, act = batch["observations"], batch["actions"]
        with torch.no_grad():
            target_q = self.critic_target(obs, act).min(0).values
            next_v = self.value(batch["next_observations"])
            td_target = batch["rewards"] + (1.0 - batch["terminals"]) * c.discount * next_v

        # V(s): upper expectile of the target critics' Q(s, a) over dataset actions
        v = self.value(obs)
        adv = target_q - v
        value_loss = expectile_loss(adv, c.expectile)

        # Q(s, a): TD regression onto r + gamma * V(s'); mean of the two critics' MSEs (CORL)
        q = self.critic(obs, act)
        critic_loss = (q - td_target).pow(2).mean()

        # actor: advantage-weighted behaviour cloning
        weights = torch.exp(c.beta * adv.detach()).clamp(max=c.max_weight)
        if c.deterministic_actor:
            bc_loss = (self.actor(obs) - act).pow(2).sum(-1)
        else:
            bc_loss = -self.actor.log_prob_from(*self.actor(obs), act)
        actor_loss = (weights * bc_loss).mean()

        total = value_loss + critic_loss + actor_loss
        aux = dict(value_loss=value_loss, critic_loss=critic_loss, actor_loss=actor_loss,
                   adv=adv, weights=weights, td_target=td_target, q=q, v=v)
        return total, aux

    def update(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        total, aux = self.loss(batch)
        self._optimize(total)
        if self.schedulers:
            self.schedulers["main"].step()
        self.num_updates += 1
        soft_update(self.critic_target, self.critic, self.config.tau)
        metrics = {k: aux[k] for k in ("value_loss", "critic_loss", "actor_loss")}
        metrics |= dict(q=aux["q"].mean(), v=aux["v"].mean(), adv=aux["adv"].mean(),
                        weights=aux["weights"].mean())
        return {k: t.detach() for k, t in metrics.items()}

    def _act(self, obs: Tensor, deterministic: bool) -> Tensor:
        if deterministic or self.config.deterministic_actor:
            return self.actor.deterministic(obs)
        return self.actor.sample(obs)[0]
