"""Fitted Q evaluation (Le, Voloshin, Yue 2019; Paine et al. 2020): a fixed policy's value from data.

Q(s, a) regresses on r + gamma (1 - terminal) Q'(s', pi(s')), with the evaluated policy's
deterministic action at the NEXT observation (d3rlpy's FQE once used s there, d3rlpy #93) and the
data's own action at s. `terminals` mark true terminations only, so time-limit truncations
bootstrap. Defaults are d3rlpy's FQEConfig: one critic (256, 256) on raw observations, Adam 1e-4,
batch 100, a hard target copy every 100 updates, gamma 0.99, squared error.

The policy is fixed, so its actions at every s' are computed once before training and ride along
in the batch (`next_actions`): an update is one critic regression, with no policy call. The
estimate of the policy's value is the mean over the data's episode starts of Q(s0, pi(s0)).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import Tensor

from seqrl.algos.base import OfflineAlgorithm, OfflineConfig, make_adam
from seqrl.models.nets import EnsembleMLP


@dataclass
class FQEConfig(OfflineConfig):
    algorithm: str = field(default="fqe", init=False)
    batch_size: int = 100
    max_steps: int = 10_000  # d3rlpy's examples run 100k; 10k is the CPU default here
    lr: float = 1e-4
    target_update_period: int = 100  # hard copy of the critic into the target (d3rlpy)
    # d3rlpy's FQE feeds raw observations. Standardised ones blow up the dims that barely move in the
    # data, where a better policy goes: walker2d medium, Q(s0, pi(s0)) 0.1 or 48 by seed (raw: 100-105)
    normalize_observations: bool = False


def fqe_target(rewards: Tensor, terminals: Tensor, discount: float, next_q: Tensor) -> Tensor:
    """r + gamma (1 - terminal) Q'(s', pi(s')): no bootstrap past a true termination only."""
    return rewards + discount * (1.0 - terminals) * next_q


class FQE(OfflineAlgorithm):
    """The critic of a fixed policy. Observations come raw and are standardised here (obs_mean/std);
    actions are in [-1, 1] of the data's bounds, as the buffer gives them."""

    config_class = FQEConfig
    metric_names = ("critic_loss", "q_data", "td_target")

    def __init__(self, config: FQEConfig, obs_dim: int, act_dim: int, device=None, **kwargs):
        super().__init__(config, obs_dim, act_dim, **kwargs)
        self.critic = EnsembleMLP((obs_dim, act_dim), 1, config.hidden_dims, ensemble_size=1, squeeze_output=True)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.to(device)
        self.optimizers["main"] = self.optimizer = make_adam([{"params": list(self.critic.parameters()), "lr": config.lr}])

    def q(self, observations: Tensor, actions: Tensor, target: bool = False) -> Tensor:
        """Q(s, a) [B] for raw observations [B, obs_dim] and actions [B, act_dim] in [-1, 1]."""
        critic = self.critic_target if target else self.critic
        return critic((observations - self.obs_mean) / self.obs_std, actions)[0]

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        with torch.no_grad():
            next_q = self.q(batch["next_observations"], batch["next_actions"], target=True)
            td_target = fqe_target(batch["rewards"], batch["terminals"], self.config.discount, next_q)
        q = self.q(batch["observations"], batch["actions"])
        loss = (q - td_target).pow(2).mean()
        return loss, {"critic_loss": loss, "q_data": q.mean(), "td_target": td_target.mean()}

    def update(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        loss, metrics = self.loss(batch)
        self._optimize(loss)
        self.num_updates += 1
        if self.num_updates % self.config.target_update_period == 0:
            self.critic_target.load_state_dict(self.critic.state_dict())
        return {k: v.detach() for k, v in metrics.items()}

    def _act(self, obs: Tensor, deterministic: bool) -> Tensor:
        raise TypeError("FQE evaluates a policy; it does not act")
