"""Value-based offline RL algorithms: each is a config dataclass plus an ``nn.Module`` with
``update(batch) -> metrics`` and ``act(observations)``."""

from __future__ import annotations

from typing import Any

from seqrl.algos.awac import AWAC, AWACConfig
from seqrl.algos.base import OfflineAlgorithm, OfflineConfig, soft_update
from seqrl.algos.bc import BC, BCConfig
from seqrl.algos.brac import BRAC, BRACConfig
from seqrl.algos.combo import COMBO, COMBOConfig
from seqrl.algos.cql import CQL, CQLConfig
from seqrl.algos.iql import IQL, IQLConfig
from seqrl.algos.mopo import MOPO, MOPOConfig
from seqrl.algos.sac import SAC, SACConfig

ALGORITHMS: dict[str, type[OfflineAlgorithm]] = {"bc": BC, "cql": CQL, "iql": IQL, "awac": AWAC, "sac": SAC,
                                                "mopo": MOPO, "combo": COMBO, "brac": BRAC}


def config_from_dict(d: dict[str, Any]) -> OfflineConfig:
    """Rebuild a config from ``config.to_dict()`` (its ``algorithm`` field picks the class)."""
    return ALGORITHMS[d["algorithm"]].config_class.from_dict(d)


def build_algorithm(config: OfflineConfig, obs_dim: int, act_dim: int, **kwargs
                    ) -> OfflineAlgorithm:
    """``kwargs``: action_low, action_high, obs_mean, obs_std, device."""
    return ALGORITHMS[config.algorithm](config, obs_dim, act_dim, **kwargs)


__all__ = [
    "ALGORITHMS", "AWAC", "AWACConfig", "BC", "BCConfig", "BRAC", "BRACConfig", "COMBO", "COMBOConfig", "CQL", "CQLConfig", "IQL", "IQLConfig", "MOPO", "MOPOConfig",
    "OfflineAlgorithm", "OfflineConfig", "SAC", "SACConfig", "build_algorithm", "config_from_dict", "soft_update",
]
