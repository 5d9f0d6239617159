"""MOPO (Yu et al. 2020): SAC on batches of real and model transitions whose model rewards carry
an uncertainty penalty, r - lambda * u(s, a) (`seqrl.algos.model_based`). The SAC update itself is
unchanged: the penalty is applied when the rollout rows are made, as in OfflineRL-Kit.

Defaults: OfflineRL-Kit's `run_mopo.py` (SAC 2x256, actor 1e-4, critic 3e-4, temperature 1e-4
towards -|A|, tau 0.005, soft backup; real_ratio 0.05; h 1 and lambda 2.5 unless the dataset's
YAML gives its (h, lambda) from the references' D4RL table). Not adopted: the actor's cosine
learning-rate decay over 3M updates (a short CPU run ends mid-decay, see the README on IQL).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from seqrl.algos.model_based import ModelBasedFields
from seqrl.algos.sac import SAC, SACConfig


@dataclass
class MOPOConfig(ModelBasedFields, SACConfig):
    algorithm: str = field(default="mopo", init=False)
    policy_lr: float = 1e-4
    qf_lr: float = 3e-4
    alpha_lr: float = 1e-4

    def __post_init__(self):
        self.check_model_based()


class MOPO(SAC):
    config_class = MOPOConfig
