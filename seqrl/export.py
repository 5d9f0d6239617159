"""`seqrl export CHECKPOINT --format onnx|torchscript`: a trained policy as a self-contained graph
that needs neither seqrl nor Python to run.

Value-based policies (BC, SAC, CQL, IQL, AWAC, BRAC, MOPO, COMBO): raw observations [batch, obs_dim]
-> deterministic actions in the environment's bounds, with the observation normalisation, the
clamp and the action scaling inside the graph (the same ops as `policy.act`), any batch size.
The Trajectory Transformer (ONNX): raw tokens [batch, length] of a window starting at s^0 ->
logits [batch, length, N+1], any length up to the model's block size (the discretizer stays in the
checkpoint: tokens in, logits out). ONNX goes through torch's dynamo exporter (onnx and onnxscript,
`pip install seqrl[export]`); TorchScript is `torch.jit.trace`. Files are written atomically.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from seqrl.algos.base import OfflineAlgorithm
from seqrl.hub import TrajectoryModel, from_pretrained

FORMATS = ("onnx", "torchscript")
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}


class ExportError(ValueError):
    """A checkpoint or option that cannot be exported: the message says why."""


class PolicyGraph(nn.Module):
    """observations -> actions in bounds, deterministic."""

    def __init__(self, policy: OfflineAlgorithm):
        super().__init__()
        self.policy = policy

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.policy.actions_in_bounds(observations, deterministic=True)


class WindowLogits(nn.Module):
    """TT tokens of a window from position 0 -> logits (TrajectoryTransformerModel.window_logits)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model.window_logits(input_ids)


def graph_and_example(model) -> tuple[nn.Module, torch.Tensor, tuple[str, str]]:
    """The module to export, an example input, and the (input, output) names."""
    if isinstance(model, TrajectoryModel):
        cfg = model.model.config
        example = torch.randint(0, cfg.vocab_size, (2, min(cfg.block_size, 2 * cfg.transition_dim)))
        return WindowLogits(model.model.eval()), example, ("input_ids", "logits")
    if isinstance(model, OfflineAlgorithm):
        example = model.obs_mean.detach().cpu().repeat(3, 1) + torch.randn(3, model.obs_dim) * model.obs_std.cpu()
        return PolicyGraph(model.eval().cpu()), example, ("observations", "actions")
    raise ExportError(f"{type(model).__name__} is not an exportable policy (value-based policies and the "
                      f"Trajectory Transformer are)")


def export(checkpoint, output=None, fmt: str = "onnx") -> Path:
    """Export a checkpoint (path, Hub repo id, or a loaded policy / TrajectoryModel); returns the file."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: choose {' or '.join(FORMATS)}")
    model = from_pretrained(str(checkpoint)) if isinstance(checkpoint, (str, Path)) else checkpoint
    if isinstance(model, TrajectoryModel) and fmt != "onnx":
        raise ExportError("the Trajectory Transformer exports as ONNX (--format onnx)")
    graph, example, (input_name, output_name) = graph_and_example(model)
    if output is None:
        base = Path(checkpoint) if isinstance(checkpoint, (str, Path)) and Path(checkpoint).is_dir() else Path(".")
        output = base / f"policy{SUFFIX[fmt]}" if not isinstance(model, TrajectoryModel) else base / "logits.onnx"
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    with torch.no_grad():
        if fmt == "torchscript":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # trace's notes on Python values turned into constants
                traced = torch.jit.trace(graph, (example,), check_trace=False)
            traced.save(str(tmp))
        else:
            _export_onnx(graph, example, tmp, input_name, output_name, max_length=_max_length(model))
    os.replace(tmp, output)
    return output


def _max_length(model) -> int | None:
    return model.model.config.block_size if isinstance(model, TrajectoryModel) else None


def _export_onnx(graph, example, path: Path, input_name: str, output_name: str, max_length: int | None) -> None:
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter needs it)
    except ImportError:
        raise ExportError("ONNX export needs onnx and onnxscript: pip install 'seqrl[export]'") from None
    from torch.export import Dim

    dims = {0: Dim("batch", min=1)}
    if max_length is not None:
        dims[1] = Dim("length", min=1, max=max_length)
    quiet = logging.getLogger("torch.onnx")  # its notes on skipped torchvision ops etc.
    level, quiet.level = quiet.level, logging.ERROR
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(graph, (example,), dynamo=True, input_names=[input_name],
                                    output_names=[output_name], dynamic_shapes=({**dims},), verbose=False)
    quiet.setLevel(level)
    program.save(str(path))
