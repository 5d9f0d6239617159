"""Beam-search planning hyperparameters of the Trajectory Transformer (official `beam_plan`).

Defaults are the official base `plan` config (jannerm/trajectory-transformer `config/offline.py`).
Official per-dataset overrides (shipped as recipes/configs/plan/*.yaml):

    hopper-medium / medium-replay / medium-expert, walker2d-medium   base config
    halfcheetah-medium, halfcheetah-medium-replay                    horizon 5, beam_width 32
    halfcheetah-medium-expert                                        beam_width 32
    walker2d-medium-expert                                           horizon 5
    walker2d-medium-replay                                           horizon 20, beam_width 32, k_act 40, cdf_act None
    ant-medium, ant-medium-replay (ant-random)                       horizon 5
    (ant-medium-expert is in no override list of the config version read, so base; notes say ant-*: H 5)

The older paper / project-page values (beam 256, horizon 10, k_act 20) are superseded by the code.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass
class PlannerConfig:
    """Options of `BeamPlanner` / `reference_plan`; defaults are the official base plan config."""

    horizon: int = field(default=15, metadata={"help": "planned transitions H (official 15)"})
    beam_width: int = field(default=128, metadata={"help": "beams kept after each pruning B (official 128)"})
    n_expand: int = field(default=2, metadata={"help": "copies of every beam before sampling actions (official 2)"})
    k_obs: int | None = field(default=1, metadata={"help": "top-k for observation tokens; 1 = greedy (official)"})
    k_act: int | None = field(default=None, metadata={"help": "top-k for action tokens (official None)"})
    cdf_obs: float | None = field(default=None, metadata={"help": "ascending-cdf filter for observation tokens"})
    cdf_act: float | None = field(
        default=0.6,
        metadata={"help": "ascending-cdf filter for action tokens: drops the least likely tokens holding "
                          "< cdf_act of the mass, i.e. nucleus ~ 1 - cdf_act (official 0.6)"})
    k_rew: int = field(default=1, metadata={"help": "reward/value tokens are argmax (hard-coded 1 officially)"})
    percentile: str | float = field(
        default="mean", metadata={"help": "score r and V by their expectation ('mean', official) or a percentile"})
    max_context_transitions: int | None = field(
        default=5, metadata={"help": "model window in transitions (window = this * D - 1 tokens, official 5)"})
    prefix_context: bool = field(default=True, metadata={"help": "condition on past transitions (official)"})
    discount: float = field(default=0.99, metadata={"help": "discount of the score; use the value token's (0.99)"})
    plan_freq: int = field(default=1, metadata={"help": "replan every this many env steps (official 1)"})

    def __post_init__(self):
        for name in ("horizon", "beam_width", "n_expand", "plan_freq"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if self.k_rew != 1:
            # the official planner hard-codes argmax reward/value tokens; the score uses expectations anyway
            raise ValueError(f"k_rew is fixed at 1 (argmax reward/value tokens), got {self.k_rew}")
        for name in ("k_obs", "k_act"):
            k = getattr(self, name)
            if k is not None and (not isinstance(k, int) or k < 1):
                raise ValueError(f"{name} must be None or a positive int, got {k!r}")
        for name in ("cdf_obs", "cdf_act"):
            c = getattr(self, name)
            if c is not None and not 0.0 < c < 1.0:
                raise ValueError(f"{name} must be None or in (0, 1), got {c!r}")
        if isinstance(self.percentile, str) and self.percentile != "mean":
            try:  # command-line parsers hand over "0.5" as text
                self.percentile = float(self.percentile)
            except ValueError:
                pass
        if self.percentile != "mean" and not (isinstance(self.percentile, float) and 0.0 < self.percentile < 1.0):
            raise ValueError(f"percentile must be 'mean' or a float in (0, 1), got {self.percentile!r}")
        if self.max_context_transitions is not None and self.max_context_transitions < 1:
            raise ValueError(f"max_context_transitions must be None or >= 1, got {self.max_context_transitions}")
        if self.plan_freq > self.horizon:
            raise ValueError(f"plan_freq ({self.plan_freq}) cannot exceed horizon ({self.horizon}): the plan runs out")

    @property
    def greedy_actions(self) -> bool:
        return self.k_act == 1

    @property
    def greedy_observations(self) -> bool:
        return self.k_obs == 1

    @classmethod
    def from_yaml(cls, path, **overrides) -> "PlannerConfig":
        """Load a YAML file of config keys; unknown keys are an error (typos would silently be defaults)."""
        values = yaml.safe_load(Path(path).read_text()) or {}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path} has unknown planner options {unknown}")
        return cls(**{**values, **overrides})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


__all__ = ["PlannerConfig"]
