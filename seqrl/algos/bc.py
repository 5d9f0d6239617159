"""Behaviour cloning: a deterministic tanh actor fitted by MSE (CORL any-percent BC), or a
Gaussian actor (tanh mean, learned state-independent log-std) fitted by negative log-likelihood."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from seqrl.algos.base import OfflineAlgorithm, OfflineConfig, make_adam
from seqrl.models.nets import DeterministicPolicy, GaussianPolicy


@dataclass
class BCConfig(OfflineConfig):
    algorithm: str = field(default="bc", init=False)
    hidden_dims: tuple[int, ...] = (256, 256)
    lr: float = 3e-4
    policy: str = "deterministic"  # or "gaussian"
    log_std_min: float = -5.0
    log_std_max: float = 2.0


class BC(OfflineAlgorithm):
    config_class = BCConfig

    def __init__(self, config: BCConfig, obs_dim: int, act_dim: int, device=None, **kwargs):
        super().__init__(config, obs_dim, act_dim, **kwargs)
        c = config
        if c.policy == "deterministic":
            self.actor = DeterministicPolicy(obs_dim, act_dim, c.hidden_dims)
        elif c.policy == "gaussian":
            self.actor = GaussianPolicy(obs_dim, act_dim, c.hidden_dims, c.log_std_min,
                                        c.log_std_max, tanh_mean=True)
        else:
            raise ValueError(f"BCConfig.policy: 'deterministic' or 'gaussian', not {c.policy!r}")
        self.to(device)
        self.optimizers["actor"] = self.optimizer = make_adam(
            [{"params": list(self.actor.parameters()), "lr": c.lr}])

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        obs, act = batch["observations"], batch["actions"]
        if self.config.policy == "deterministic":
            return (self.actor(obs) - act).pow(2).mean()  # F.mse_loss: mean over batch and dims
        return -self.actor.log_prob(obs, act).mean()

    def update(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        loss = self.loss(batch)
        self._optimize(loss)
        self.num_updates += 1
        return {"actor_loss": loss.detach()}

    def _act(self, obs: Tensor, deterministic: bool) -> Tensor:
        if deterministic or self.config.policy == "deterministic":
            return self.actor.deterministic(obs)
        return self.actor.sample(obs)[0]

