"""Models: the Trajectory Transformer (a `transformers` model) and the MLP/ensemble building blocks."""

from seqrl.models.trajectory_transformer import TrajectoryTransformerConfig, TrajectoryTransformerModel

__all__ = ["TrajectoryTransformerConfig", "TrajectoryTransformerModel"]
