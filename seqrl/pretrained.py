"""A pretrained trajectory model: the Trajectory Transformer with its discretizer and metadata."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seqrl.data.discretize import CONFIG_NAME as DISCRETIZER_CONFIG
from seqrl.data.discretize import Discretizer
from seqrl.hub import CheckpointError, read_metadata, render_card, write_metadata
from seqrl.models.trajectory_transformer import TrajectoryTransformerModel


@dataclass
class TrajectoryModel:
    model: TrajectoryTransformerModel
    discretizer: Discretizer
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def env_id(self) -> str | None:
        return self.metadata.get("env_id")

    @property
    def observation_dim(self) -> int:
        return self.model.config.observation_dim

    @property
    def action_dim(self) -> int:
        return self.model.config.action_dim

    def save_pretrained(self, directory, *, card_context: dict | None = None, repo_id: str | None = None) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(directory))
        self.discretizer.save(directory)
        write_metadata(directory, {"algorithm": "trajectory_transformer", **self.metadata})
        cfg = self.model.config
        context = {
            **self.metadata, "repo_id": repo_id, "seqrl_version": read_metadata(directory)["seqrl_version"],
            "observation_dim": cfg.observation_dim, "action_dim": cfg.action_dim, "transition_dim": cfg.transition_dim,
            "model": {"n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_embd": cfg.n_embd, "block_size": cfg.block_size},
            "parameters": f"{sum(p.numel() for p in self.model.parameters()):,}", **(card_context or {}),
        }
        (directory / "README.md").write_text(render_card("trajectory_transformer.md.j2", context))
        return directory

    def push_to_hub(self, repo_id: str, *, private: bool = False, token=None, commit_message: str | None = None) -> str:
        """Save the checkpoint (model, discretizer, metadata, card) and upload it to a Hub model repo."""
        import tempfile

        from seqrl.hub import push_to_hub

        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp, repo_id=repo_id)
            return push_to_hub(tmp, repo_id, private=private, token=token, commit_message=commit_message)

    @classmethod
    def load(cls, directory, metadata: dict | None = None, device="cpu") -> "TrajectoryModel":
        directory = Path(directory)
        metadata = metadata or read_metadata(directory)
        if not (directory / DISCRETIZER_CONFIG).exists():
            raise CheckpointError(f"{directory} has no discretizer ({DISCRETIZER_CONFIG}): it cannot plan; "
                                  "save it with seqrl so the bins travel with the weights")
        model = TrajectoryTransformerModel.from_pretrained(str(directory)).to(device).eval()
        discretizer = Discretizer.load(directory, device=device)
        cfg = model.config
        discretizer.check_layout(observation_dim=cfg.observation_dim, action_dim=cfg.action_dim,
                                 transition_dim=cfg.transition_dim)
        if discretizer.N != cfg.vocab_size:
            raise CheckpointError(f"discretizer has {discretizer.N} bins but the model vocabulary is {cfg.vocab_size}")
        metadata = {k: v for k, v in metadata.items() if k not in ("algorithm", "seqrl_version")}
        return cls(model, discretizer, metadata)

    def action_bounds(self) -> tuple[np.ndarray, np.ndarray] | None:
        low, high = self.metadata.get("action_low"), self.metadata.get("action_high")
        return (np.asarray(low, np.float32), np.asarray(high, np.float32)) if low is not None else None

    def __repr__(self) -> str:
        return f"TrajectoryModel(env_id={self.env_id!r}, {self.discretizer}, params={self.model.num_parameters():,})"


def save_training_metrics(directory, history: list[dict]) -> None:
    (Path(directory) / "train_metrics.json").write_text(json.dumps(history, indent=1))
