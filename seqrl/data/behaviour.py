"""The behaviour policies the v5 dataset families are collected with, run from their shipped
safetensors files without the algorithm code (the data layer imports no model): the actor of an
online SAC run, a tanh-Gaussian MLP (ReLU hidden layers; its last layer gives the pre-tanh mean and
log-std), with the run's observation normalization and action bounds.

The file (written by `seqrl.training.families.save_actor`) holds `actor.net.layers.{i}.weight/bias`,
`actor.log_std_multiplier`, `actor.log_std_offset`, `obs_mean`, `obs_std`, `action_low`,
`action_high`, and the actor's log-std clamp in its metadata. Sampling draws exactly what
`TanhGaussianPolicy.sample` draws from the same generator (tests/test_families.py checks it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open


class BehaviourPolicy:
    """obs [n, d] (numpy) -> actions [n, a] in the env's bounds; sampled with its own seeded noise
    (rollouts call `reset_rng(seed)`) or, `deterministic=True`, the tanh of the mean."""

    def __init__(self, tensors: dict[str, torch.Tensor], log_std_min: float, log_std_max: float,
                 deterministic: bool = False):
        n_layers = len([k for k in tensors if k.startswith("actor.net.layers.") and k.endswith(".weight")])
        self.layers = [(tensors[f"actor.net.layers.{i}.weight"], tensors[f"actor.net.layers.{i}.bias"])
                       for i in range(n_layers)]
        self.multiplier, self.offset = tensors["actor.log_std_multiplier"], tensors["actor.log_std_offset"]
        self.obs_mean, self.obs_std = tensors["obs_mean"], tensors["obs_std"]
        self.low, self.high = tensors["action_low"], tensors["action_high"]
        self.log_std_min, self.log_std_max = log_std_min, log_std_max
        self.deterministic = deterministic
        self.generator = torch.Generator()

    @classmethod
    def load(cls, path, deterministic: bool = False) -> "BehaviourPolicy":
        with safe_open(str(Path(path)), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        config = json.loads(meta.get("config", "{}"))
        return cls(tensors, float(config.get("log_std_min", -20.0)), float(config.get("log_std_max", 2.0)),
                   deterministic)

    def reset_rng(self, seed: int) -> None:
        self.generator.manual_seed(int(seed))

    @torch.no_grad()
    def __call__(self, observations: np.ndarray) -> np.ndarray:
        h = (torch.as_tensor(np.asarray(observations, np.float32)).reshape(-1, self.obs_mean.numel())
             - self.obs_mean) / self.obs_std
        for i, (w, b) in enumerate(self.layers):
            h = torch.nn.functional.linear(h, w, b)
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        mean, log_std = h.chunk(2, dim=-1)
        log_std = (self.multiplier * log_std + self.offset).clamp(self.log_std_min, self.log_std_max)
        if self.deterministic:
            unit = torch.tanh(mean)
        else:
            eps = torch.randn(mean.shape, generator=self.generator, dtype=mean.dtype)
            unit = torch.tanh(mean + log_std.exp() * eps)
        return (self.low + (unit.clamp(-1, 1) + 1.0) * 0.5 * (self.high - self.low)).numpy()
