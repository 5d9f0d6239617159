"""Probabilistic dynamics ensemble for model-based offline RL (MOPO, COMBO): E Gaussians over
(delta s, r) given (s, a), run as one batched network (weights shaped (E, in, out)).

Follows OfflineRL-Kit / the official MOPO code (reference/model-based.md §1.1): 7 members,
4 x 200 Swish, truncated-normal init (std 1 / (2 sqrt(in))), one head giving mean and log-variance,
the log-variance soft-clamped between learnable bounds (init 0.5 and -10, shared by the members)
with the regulariser 0.01 * (sum max - sum min), L2 weight decay as a loss term per layer
(2.5e-5 ... 1e-4, input to output), inputs standardised with statistics of the training split.
No spectral norm: the MOPO paper mentions it, its code never applies it.

Observations are raw (not the learner's normalised ones), actions in [-1, 1] as every seqrl
algorithm learns them, rewards raw. The training procedure (holdout, bootstrap, early stopping,
elites) is `seqrl.algos.dynamics.DynamicsTrainer`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqrl.models.nets import VectorizedLinear

PENALTIES = ("aleatoric", "pairwise-diff", "ensemble-std")


@dataclass
class DynamicsConfig:
    ensemble_size: int = 7
    num_elites: int = 5
    hidden_dims: tuple[int, ...] = (200, 200, 200, 200)
    weight_decays: tuple[float, ...] = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)  # one per layer, input first
    lr: float = 1e-3
    batch_size: int = 256
    holdout_ratio: float = 0.2
    max_holdout: int = 1000
    max_epochs_since_update: int = 5  # stop after this many epochs without a member improving
    improvement_threshold: float = 0.01  # relative holdout-MSE gain that counts as improving
    max_epochs: int = 0  # 0: until early stopping
    logvar_loss_coef: float = 0.01
    seed: int = 0

    def __post_init__(self):
        if len(self.weight_decays) != len(self.hidden_dims) + 1:
            raise ValueError(f"weight_decays needs {len(self.hidden_dims) + 1} values (one per layer), "
                             f"got {len(self.weight_decays)}")
        if not 1 <= self.num_elites <= self.ensemble_size:
            raise ValueError(f"num_elites must be in 1..ensemble_size ({self.ensemble_size}), got {self.num_elites}")
        if not 0.0 < self.holdout_ratio < 1.0:
            raise ValueError(f"holdout_ratio must be in (0, 1), got {self.holdout_ratio}")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DynamicsConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown DynamicsConfig fields: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


class Prediction(NamedTuple):
    next_observations: Tensor  # [B, obs_dim], sampled from one random elite per row
    rewards: Tensor  # [B]
    mean: Tensor | None  # [E, B, obs_dim + 1]: every member's mean of (s', r) (None: `step(every_member=False)`)
    std: Tensor | None  # [E, B, obs_dim + 1]


def soft_clamp(x: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """Smooth clamp of x into (low, high): high - softplus(high - x), then low + softplus(. - low)."""
    x = high - F.softplus(high - x)
    return low + F.softplus(x - low)


def gaussian_nll(mean: Tensor, logvar: Tensor, target: Tensor) -> Tensor:
    """Per member, the mean over rows and dims of (mean - target)^2 / var + log var, summed over
    members (the references' loss, without the constant and the factor 1/2)."""
    return ((mean - target).pow(2) * torch.exp(-logvar) + logvar).mean(dim=(1, 2)).sum()


def uncertainty(mean: Tensor, std: Tensor, mode: str = "aleatoric") -> Tensor:
    """MOPO's penalty u(s, a) [B] from every member's prediction [E, B, obs_dim + 1] ((s', r) last dim).

    aleatoric: max over members of the L2 norm of the predicted std, reward included (the default);
    pairwise-diff: max over members of the distance of its mean s' from the ensemble's mean s';
    ensemble-std: sqrt of the mean over s' dims of the variance of the members' means."""
    if mode == "aleatoric":
        return std.norm(dim=-1).amax(0)
    next_mean = mean[..., :-1]
    if mode == "pairwise-diff":
        return (next_mean - next_mean.mean(0)).norm(dim=-1).amax(0)
    if mode == "ensemble-std":
        return next_mean.var(0, unbiased=False).mean(-1).sqrt()
    raise ValueError(f"unknown penalty {mode!r}; choose one of {', '.join(PENALTIES)}")


class DynamicsEnsemble(nn.Module):
    """`forward(obs, act)` -> every member's (mean, log-variance) of (delta s, r); `predict` gives
    (s', r) means and stds; `step` samples (s', r) from one random elite per row."""

    def __init__(self, config: DynamicsConfig, obs_dim: int, act_dim: int):
        super().__init__()
        self.config, self.obs_dim, self.act_dim = config, int(obs_dim), int(act_dim)
        E, out = config.ensemble_size, self.obs_dim + 1
        dims = [self.obs_dim + self.act_dim, *config.hidden_dims, 2 * out]
        self.layers = nn.ModuleList(VectorizedLinear(E, i, o) for i, o in zip(dims[:-1], dims[1:]))
        for layer in self.layers:
            layer.reset_parameters("truncated_normal")
        self.max_logvar = nn.Parameter(torch.full((out,), 0.5))
        self.min_logvar = nn.Parameter(torch.full((out,), -10.0))
        self.register_buffer("input_mean", torch.zeros(dims[0]))
        self.register_buffer("input_std", torch.ones(dims[0]))
        self.register_buffer("elites", torch.arange(config.num_elites))
        self.metadata: dict[str, Any] = {}  # env, data, training: what a checkpoint records

    def set_input_statistics(self, inputs: Tensor) -> None:
        """Standardise inputs with these rows' mean and std (the training split's; std 0 -> 1)."""
        std = inputs.std(0, unbiased=False)
        self.input_mean.copy_(inputs.mean(0))
        self.input_std.copy_(torch.where(std < 1e-12, torch.ones_like(std), std))

    def forward(self, obs: Tensor, act: Tensor, members: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """obs [B, obs_dim] and act [B, act_dim] shared by every member, or [E, B, .] one batch per
        member -> (mean, logvar) [E, B, obs_dim + 1] of (delta s, r). With `members` [B] (a member
        index per row), each row goes through its own member only -> [B, obs_dim + 1]."""
        x = (torch.cat([obs, act], dim=-1) - self.input_mean) / self.input_std
        if members is not None:
            return self._own_member_forward(x, members)
        if x.dim() == 2:
            x = x.expand(self.config.ensemble_size, *x.shape)
        return self._layers_forward(x, [(layer.weight, layer.bias) for layer in self.layers])

    def _layers_forward(self, x: Tensor, params: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
        for weight, bias in params[:-1]:
            x = F.silu(torch.baddbmm(bias, x, weight))
        mean, logvar = torch.baddbmm(params[-1][1], x, params[-1][0]).chunk(2, dim=-1)
        return mean, soft_clamp(logvar, self.min_logvar, self.max_logvar)

    def _own_member_forward(self, x: Tensor, members: Tensor) -> tuple[Tensor, Tensor]:
        """Rows grouped by member into one zero-padded batch per member used ([K, widest group, in]),
        run through those K members as one batched network, then put back in row order: 1/E of the
        FLOPs of every member on every row, and no Python loop over members."""
        if x.shape[0] == 0:
            empty = x.new_zeros(0, self.obs_dim + 1)
            return empty, empty
        used, group, counts = torch.unique(members, return_inverse=True, return_counts=True)
        order = torch.argsort(group, stable=True)
        slot = torch.empty_like(group)
        slot[order] = torch.arange(len(group), device=x.device) - (counts.cumsum(0) - counts)[group[order]]
        padded = x.new_zeros(len(used), int(counts.max()), x.shape[-1])
        padded[group, slot] = x
        mean, logvar = self._layers_forward(padded, [(layer.weight[used], layer.bias[used]) for layer in self.layers])
        return mean[group, slot], logvar[group, slot]

    def loss(self, obs: Tensor, act: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Training loss on member batches [E, B, .]: Gaussian NLL + weight decay + log-var bounds."""
        mean, logvar = self(obs, act)
        nll = gaussian_nll(mean, logvar, target)
        decay = sum(0.5 * wd * layer.weight.pow(2).sum() for wd, layer in zip(self.config.weight_decays, self.layers))
        bounds = self.config.logvar_loss_coef * (self.max_logvar.sum() - self.min_logvar.sum())
        return nll + decay + bounds, {"nll": nll.detach(), "weight_decay": decay.detach(), "logvar_bounds": bounds.detach()}

    @torch.no_grad()
    def mse(self, obs: Tensor, act: Tensor, target: Tensor) -> Tensor:
        """Per member, the MSE of its mean on shared rows [B, .] -> [E] (holdout scoring)."""
        mean, _ = self(obs, act)
        return (mean - target).pow(2).mean(dim=(1, 2))

    @torch.no_grad()
    def predict(self, obs: Tensor, act: Tensor, members: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Every member's mean and std of (s', r): [E, B, obs_dim + 1]; with `members` [B], each
        row's own member's: [B, obs_dim + 1]."""
        mean, logvar = self(obs, act, members)
        mean = torch.cat([mean[..., :-1] + obs, mean[..., -1:]], dim=-1)
        return mean, torch.exp(0.5 * logvar)

    @torch.no_grad()
    def step(self, obs: Tensor, act: Tensor, generator: torch.Generator | None = None,
             every_member: bool = True) -> Prediction:
        """(s', r) sampled per row from one elite chosen uniformly at random (the references').
        `every_member=False` runs only that elite on its row (what a rollout without an uncertainty
        penalty needs: COMBO): the same sample from the same generator, Prediction.mean/std None."""
        pick = self.elites[torch.randint(len(self.elites), (obs.shape[0],), generator=generator, device=obs.device)]
        if every_member:
            mean, std = self.predict(obs, act)
            rows = torch.arange(obs.shape[0], device=obs.device)
            m, s = mean[pick, rows], std[pick, rows]
        else:
            mean = std = None
            m, s = self.predict(obs, act, members=pick)
        sample = m + s * torch.randn(m.shape, generator=generator, device=m.device, dtype=m.dtype)
        return Prediction(sample[:, :-1], sample[:, -1], mean, std)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops_per_row(self) -> int:
        """Multiply-adds x 2 of one forward for one row through every member."""
        return 2 * self.config.ensemble_size * sum(layer.in_features * layer.out_features for layer in self.layers)

