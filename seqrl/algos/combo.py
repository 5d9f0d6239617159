"""COMBO (Yu et al. 2021): CQL (`cql.py`) on batches of real and model transitions, the
conservative term pushing Q down at sampled actions on model (or mixed) states and up at the real
(s, a). No uncertainty penalty (penalty_coef 0).

Follows OfflineRL-Kit's `run_combo.py` / `combo.py` (no official COMBO code exists): CQL-SAC 3x256,
actor 1e-4, critic 3e-4, temperature 1e-4, deterministic backup, cql_alpha (beta) 5.0 fixed (the
Lagrange form optional: cql_lagrange), 10 actions per sampler (uniform, pi(s), pi(s') at Q(s, .))
with importance weights, real_ratio 0.5, h 5. Push-down states `combo_states`: "mix" (the whole
batch, OfflineRL-Kit's default) or "model" (the model rows only: the paper's rho, d3rlpy 1.1.1).
seqrl's single-step update computes every loss from the pre-update networks (OfflineRL-Kit steps
the actor, then alpha, then the critics).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from seqrl.algos.cql import CQL, CQLConfig
from seqrl.algos.model_based import ModelBasedFields, real_row_count

COMBO_STATES = ("mix", "model")


@dataclass
class COMBOConfig(ModelBasedFields, CQLConfig):
    algorithm: str = field(default="combo", init=False)
    hidden_dims: tuple[int, ...] = (256, 256, 256)
    policy_lr: float = 1e-4
    qf_lr: float = 3e-4
    alpha_lr: float = 1e-4
    orthogonal_init: bool = False  # OfflineRL-Kit: torch's default init, plain tanh-Gaussian actor
    policy_log_std_offset: float = 0.0
    learn_log_std_scale: bool = False
    cql_alpha: float = 5.0  # beta
    real_ratio: float = 0.5
    rollout_length: int = 5
    penalty_coef: float = 0.0
    combo_states: str = "mix"

    def __post_init__(self):
        self.check_model_based()
        if self.combo_states not in COMBO_STATES:
            raise ValueError(f"combo_states must be one of {', '.join(COMBO_STATES)}, got {self.combo_states!r}")


class COMBO(CQL):
    config_class = COMBOConfig

    def penalty_rows(self, batch) -> slice | None:
        # Real rows come first in a mixed batch: "model" evaluates the sampled actions only after them.
        if self.config.combo_states == "mix":
            return None
        return slice(real_row_count(batch["rewards"].shape[0], self.config.real_ratio), None)

    def conservative_difference(self, batch, gap: Tensor, ood_q: Tensor, q_data: Tensor) -> Tensor:
        """E_rho[logsumexp Q(s, .)] - E_real[Q(s, a)] per critic [E]; ood_q covers the push-down rows."""
        real = batch["real_rows"]
        down = ood_q.sum(-1) / max(ood_q.shape[-1], 1)   # no model rows: nothing pushed down
        return down - (q_data * real).sum(-1) / real.sum().clamp_min(1.0)
