"""What every value-based offline algorithm shares: config, bounds, normalisation, act, state.

An algorithm is an ``nn.Module`` whose ``update(batch)`` does one gradient step from a dict of
float32 tensors (``observations``, ``actions`` in [-1, 1], ``rewards``, ``next_observations``,
``terminals``; observations already normalised by the buffer) and returns detached 0-d tensors.
``update`` never syncs with the host (no ``.item()``, no numpy), so the training loop decides
when to read metrics.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

BATCH_KEYS = ("observations", "actions", "rewards", "next_observations", "terminals")


@dataclass
class OfflineConfig:
    """Fields every algorithm has. ``algorithm`` names the class for checkpoint loading."""

    algorithm: str = field(default="", init=False)
    hidden_dims: tuple[int, ...] = (256, 256)
    batch_size: int = 256
    max_steps: int = 1_000_000
    discount: float = 0.99
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        d = dict(d)
        name = d.pop("algorithm", cls.algorithm_name())
        if name != cls.algorithm_name():
            raise ValueError(f"config is for {name!r}, not {cls.algorithm_name()!r}")
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    @classmethod
    def algorithm_name(cls) -> str:
        return next(f.default for f in dataclasses.fields(cls) if f.name == "algorithm")


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging, target <- (1 - tau) * target + tau * source, as one fused foreach op."""
    torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)


def make_adam(param_groups: list[dict[str, Any]], adam=torch.optim.Adam, **options) -> torch.optim.Optimizer:
    """Adam (or `adam=torch.optim.AdamW`) over several named groups (each with its own lr / weight decay).

    Adam keeps per-parameter state only, so one Adam with groups is exactly several Adams, but it
    runs as one fused kernel call per step (on CPU too: ~3x faster than the per-parameter loop).
    """
    params = [p for g in param_groups for p in g["params"]]
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return adam(param_groups, fused=fused, foreach=None if fused else True, **options)


def _as_tensor(x: Any, n: int, default: float) -> Tensor:
    if x is None:
        return torch.full((n,), float(default))
    t = torch.as_tensor(np.asarray(x, dtype=np.float32) if not torch.is_tensor(x) else x)
    return t.to(torch.float32).reshape(-1).expand(n).clone()


class OfflineAlgorithm(nn.Module):
    """Base class: holds config, dims, action bounds and observation statistics (as buffers, so
    they are saved with the weights), the update counter, the optimizers and an RNG.

    Subclasses build their networks and optimizers, and implement ``update`` and ``_act``.
    """

    config_class: type[OfflineConfig] = OfflineConfig
    # the methods `update` computes its losses with: pure functions of the parameters, the batch and
    # the noise drawn from `self._rng`, so seqrl.algos.stacked can run several seeds through them at once
    loss_methods: tuple[str, ...] = ("loss",)

    def __init__(
        self,
        config: OfflineConfig,
        obs_dim: int,
        act_dim: int,
        action_low: Any = None,
        action_high: Any = None,
        obs_mean: Any = None,
        obs_std: Any = None,
    ):
        super().__init__()
        self.config = config
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.register_buffer("action_low", _as_tensor(action_low, self.act_dim, -1.0))
        self.register_buffer("action_high", _as_tensor(action_high, self.act_dim, 1.0))
        self.register_buffer("obs_mean", _as_tensor(obs_mean, self.obs_dim, 0.0))
        self.register_buffer("obs_std", _as_tensor(obs_std, self.obs_dim, 1.0))
        self.num_updates = 0
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, Any] = {}
        # the algorithm's own RNG (action noise, CQL's uniform actions): saved for exact resume
        self.generator = torch.Generator().manual_seed(config.seed)
        # what a checkpoint records besides the network: env, dataset, training run, evaluation
        self.metadata: dict[str, Any] = {}

    # ------------------------------------------------------------------ training

    def update(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        raise NotImplementedError

    def _optimize(self, loss: Tensor, optimizer: torch.optim.Optimizer | None = None) -> None:
        """One gradient step on `loss` (default: the algorithm's single fused optimizer)."""
        optimizer = optimizer or self.optimizer
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def _rng(self, device: torch.device) -> torch.Generator:
        """The RNG on the batch's device (moved once, if the module moved)."""
        if self.generator.device != device:
            g = torch.Generator(device=device)
            g.manual_seed(self.config.seed + self.num_updates)
            self.generator = g
        return self.generator

    def training_state(self) -> dict[str, Any]:
        """Everything needed to resume exactly: weights, buffers, optimizer and scheduler states,
        update counter, RNG state and config. Holds references to live tensors: save it
        (torch.save) or deep-copy it before training on."""
        return {
            "config": self.config.to_dict(),
            "model": self.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "num_updates": self.num_updates,
            "generator": self.generator.get_state(),
        }

    def load_training_state(self, state: dict[str, Any]) -> None:
        name = state["config"].get("algorithm")
        if name != self.config.algorithm:
            raise ValueError(f"state is for {name!r}, this is {self.config.algorithm!r}")
        self.load_state_dict(state["model"])
        # optimizers' load_state_dict may keep the given tensors: copy so two instances never share
        state = copy.deepcopy({k: state[k] for k in ("optimizers", "schedulers", "generator")}) | {
            "num_updates": state["num_updates"]
        }
        for k, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][k])
        for k, sched in self.schedulers.items():
            sched.load_state_dict(state["schedulers"][k])
        self.num_updates = int(state["num_updates"])
        self._rng(self.obs_mean.device).set_state(state["generator"].cpu())

    # ------------------------------------------------------------------ acting

    def _act(self, obs: Tensor, deterministic: bool) -> Tensor:
        """Actions in [-1, 1] for normalised observations [B, obs_dim]."""
        raise NotImplementedError

    def actions_in_bounds(self, observations: Tensor, deterministic: bool = True) -> Tensor:
        """Raw observations [B, obs_dim] -> actions in the env's bounds: normalisation, policy, clamp
        and scaling as tensor ops only (what `seqrl export` puts in the graph; no input checks)."""
        obs = (observations - self.obs_mean) / self.obs_std
        a = self._act(obs, deterministic).clamp(-1.0, 1.0)
        return self.action_low + (a + 1.0) * 0.5 * (self.action_high - self.action_low)

    @torch.no_grad()
    def act(self, observations: Any, deterministic: bool = True) -> Any:
        """Actions in the env's bounds for raw observations; numpy in -> numpy out, torch in ->
        torch out (on the input's device); a single observation gives a single action."""
        is_tensor = torch.is_tensor(observations)
        device = self.obs_mean.device
        obs = torch.as_tensor(observations, dtype=torch.float32, device=device)
        single = obs.dim() == 1
        if obs.dim() not in (1, 2) or obs.shape[-1] != self.obs_dim:
            raise ValueError(f"observations of shape {tuple(obs.shape)}: this policy takes ({self.obs_dim},) "
                             f"or (batch, {self.obs_dim})")
        if not bool(torch.isfinite(obs).all()):
            raise ValueError("observations contain NaN or inf")
        a = self.actions_in_bounds(obs.reshape(-1, self.obs_dim), deterministic)
        if single:
            a = a[0]
        if is_tensor:
            return a.to(observations.device)
        return a.cpu().numpy()
