"""Models: the Trajectory Transformer (a `transformers` model) and the MLP/ensemble building blocks.

The Trajectory Transformer is imported on first use, so value-based code (`seqrl.models.nets`)
does not pay for importing `transformers`.
"""

__all__ = ["TrajectoryTransformerConfig", "TrajectoryTransformerModel"]


def __getattr__(name: str):
    if name in __all__:
        from seqrl.models import trajectory_transformer

        return getattr(trajectory_transformer, name)
    raise AttributeError(f"module 'seqrl.models' has no attribute {name!r}")
