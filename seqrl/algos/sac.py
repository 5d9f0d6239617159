"""The soft actor-critic pieces CQL is built on: actor loss and automatic entropy temperature."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Temperature(nn.Module):
    """SAC entropy temperature alpha = exp(log_alpha) * multiplier, tuned towards a target entropy
    (-act_dim by default) when ``learnable``; otherwise alpha stays ``multiplier``."""

    def __init__(self, initial_alpha: float = 1.0, multiplier: float = 1.0, learnable: bool = True):
        super().__init__()
        self.multiplier = multiplier
        log_alpha = torch.tensor(float(initial_alpha)).log()
        if learnable:
            self.log_alpha = nn.Parameter(log_alpha)
        else:
            self.register_buffer("log_alpha", log_alpha)

    def forward(self) -> Tensor:
        return self.log_alpha.exp() * self.multiplier


def temperature_loss(log_alpha: Tensor, log_pi: Tensor, target_entropy: float) -> Tensor:
    """-E[log_alpha * (log pi + target_entropy)]: raises alpha when entropy is below target."""
    return -(log_alpha * (log_pi + target_entropy).detach()).mean()


def sac_actor_loss(alpha: Tensor, log_pi: Tensor, q_new: Tensor) -> Tensor:
    """E[alpha * log pi(a|s) - Q(s, a)], a ~ pi(s) reparameterised. alpha is a constant here."""
    return (alpha.detach() * log_pi - q_new).mean()
