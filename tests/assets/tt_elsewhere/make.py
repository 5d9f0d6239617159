"""Writes the Trajectory Transformer checkpoints in other layouts that tests/test_conversion.py loads.

Run with transformers 4.30 (benchmarks/.venv-hf430, made by benchmarks/tt_train.py):
    benchmarks/.venv-hf430/bin/python tests/assets/tt_elsewhere/make.py
It writes, next to this file:
    transformers430/          TrajectoryTransformerModel.save_pretrained (config.json + pytorch_model.bin)
    official/state.pt         the same weights under the official GPT's names (torch.save of a state dict,
                              with each layer's causal mask buffer, as jannerm/trajectory-transformer saves)
    official/model_config.pkl the official pickled `trajectory.utils.config.Config` of the model settings
    expected.npz              tokens and the logits transformers 4.30 computes for them
"""

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import TrajectoryTransformerConfig, TrajectoryTransformerModel

assert transformers.__version__.startswith("4.30"), transformers.__version__
HERE = Path(__file__).resolve().parent
SETTINGS = dict(observation_dim=3, action_dim=2, transition_dim=7, vocab_size=10, block_size=4 * 7 - 1, n_layer=2,
                n_head=2, n_embd=16, embd_pdrop=0.1, attn_pdrop=0.1, resid_pdrop=0.1, action_weight=5.0,
                reward_weight=1.0, value_weight=1.0)

torch.manual_seed(0)
model = TrajectoryTransformerModel(TrajectoryTransformerConfig(**SETTINGS)).eval()
with torch.no_grad():  # pos_emb starts at zero and LayerNorms at 1 / 0: move everything
    for name, p in model.named_parameters():
        p.add_((0.3 if name == "pos_emb" else 0.05) * torch.randn_like(p))
model.save_pretrained(HERE / "transformers430")

tokens = torch.randint(0, 10, (3, 20))
tokens[1, 5] = 10  # a STOP token
with torch.no_grad():
    logits = model(tokens, return_dict=True).logits
np.savez(HERE / "expected.npz", tokens=tokens.numpy(), logits=logits.numpy())

# the official layout: the GPT's names (mlp.0 / mlp.2) and its persistent causal-mask buffers
state = {}
for name, tensor in model.state_dict().items():
    state[name.replace(".l1.", ".mlp.0.").replace(".l2.", ".mlp.2.")] = tensor.clone()
for i, block in enumerate(model.blocks):
    state[f"blocks.{i}.attn.mask"] = block.attn.mask.clone()
(HERE / "official").mkdir(exist_ok=True)
torch.save(state, HERE / "official" / "state.pt")

# the official Config pickles its class and kwargs; stand-in modules give them the official import paths
for module_name in ("trajectory", "trajectory.utils", "trajectory.utils.config", "trajectory.models",
                    "trajectory.models.transformers"):
    sys.modules[module_name] = types.ModuleType(module_name)


class Config:
    def __init__(self, _class, **kwargs):
        self._class, self._dict = _class, dict(kwargs)


class GPT:
    pass


Config.__module__, Config.__qualname__ = "trajectory.utils.config", "Config"
GPT.__module__, GPT.__qualname__ = "trajectory.models.transformers", "GPT"
sys.modules["trajectory.utils.config"].Config = Config
sys.modules["trajectory.models.transformers"].GPT = GPT
with open(HERE / "official" / "model_config.pkl", "wb") as f:
    pickle.dump(Config(GPT, **SETTINGS), f)
print("wrote", sorted(str(p.relative_to(HERE)) for p in HERE.rglob("*") if p.is_file()))
