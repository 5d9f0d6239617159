"""Trajectory Transformer weights from elsewhere, mapped onto `TrajectoryTransformerModel`.

Two layouts exist besides seqrl's own:
- transformers' deprecated `TrajectoryTransformerModel` (the port on the Hub for D4RL tasks):
  config.json with model_type "trajectory_transformer"; its blocks name the MLP `l1` / `l2`.
- the official code (jannerm/trajectory-transformer): `torch.save(model.state_dict())` of its GPT,
  whose names seqrl kept (`mlp.0` / `mlp.2`, `blocks.N.attn.key`, ...), plus each layer's causal
  mask as a buffer; its model settings are in a pickled `Config` (read by seqrl.convert).
Both compute what seqrl's model computes (same embedding offsets, value-token masking and
per-dimension head), so the converted model gives the same logits (tested against transformers 4.30).
"""

from __future__ import annotations

import re

import torch

from seqrl.models.trajectory_transformer import TrajectoryTransformerConfig

TRANSFORMERS_MODEL_TYPE = "trajectory_transformer"
_CONFIG_KEYS = ("observation_dim", "action_dim", "vocab_size", "block_size", "n_layer", "n_head", "n_embd",
                "embd_pdrop", "attn_pdrop", "resid_pdrop", "action_weight", "reward_weight", "value_weight")


def config_from_settings(settings: dict) -> TrajectoryTransformerConfig:
    """seqrl's config from the settings either layout records (same names, extra ones ignored)."""
    missing = [k for k in ("observation_dim", "action_dim", "vocab_size", "block_size", "n_layer", "n_head", "n_embd")
               if settings.get(k) is None]
    if missing:
        raise ValueError(f"the model settings lack {missing}")
    transition = settings.get("transition_dim")
    if transition is not None and transition != settings["observation_dim"] + settings["action_dim"] + 2:
        raise ValueError(f"transition_dim {transition} is not observation_dim + action_dim + 2")
    ints = {"observation_dim", "action_dim", "vocab_size", "block_size", "n_layer", "n_head", "n_embd"}
    return TrajectoryTransformerConfig(**{k: (int if k in ints else float)(settings[k])
                                          for k in _CONFIG_KEYS if settings.get(k) is not None})


def state_dict_from_transformers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers' names -> seqrl's: `blocks.N.l1/l2` -> `blocks.N.mlp.0/2`, any base-model prefix off."""
    out = {}
    for name, tensor in state.items():
        name = name.removeprefix("trajectory_transformer.")
        if name.endswith("attn.mask"):
            continue
        name = re.sub(r"^(blocks\.\d+)\.l1\.", r"\1.mlp.0.", name)
        name = re.sub(r"^(blocks\.\d+)\.l2\.", r"\1.mlp.2.", name)
        out[name] = tensor
    return out


def state_dict_from_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The official GPT's names are seqrl's; its causal masks are rebuilt from the config, not loaded."""
    return {name: tensor for name, tensor in state.items() if not name.endswith("attn.mask")}
