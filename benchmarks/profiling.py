"""Where the time of one training step goes, and how fast its matmuls could run on this machine.

`profile_steps(step, steps)` runs `step()` a few times under `torch.profiler` and splits the time of
one step into

    matmul       self time of the matrix products (mm, addmm, bmm, baddbmm, mv, and the fused
                 attention kernels of TT)
    elementwise  self time of every other aten op that computes (activations, bias adds, losses,
                 reductions, copies), forward and backward
    views        ops that only make views or allocate (view, t, expand, empty, ...)
    autograd     the autograd engine's own time (evaluate_function and the *Backward nodes' self
                 time, gradient accumulation), excluding the aten ops they call
    optimizer    everything under `Optimizer.step` / `Optimizer.zero_grad`, Python included
    sampling     everything under the `sample` range the caller marks (batch sampling)
    python       the rest of the step's wall time (not inside any op): Python and dispatch, counted
                 against the unprofiled step time the caller passes, so the profiler's own cost is
                 not blamed on Python

Then `matmul_roofline(events)` times every distinct matmul the step ran (op, shapes, dtype) alone,
back to back on fresh contiguous tensors with the same threads: the sum over the step is the matmul
floor (the step could not be faster than that with the same maths), and its FLOP/s is the machine's
measured peak for these shapes; a large square matmul gives the absolute peak beside it.

Only torch is imported: both venvs (seqrl's and d3rlpy's, the same torch) use it.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from typing import Any, Callable

import torch
from torch.profiler import ProfilerActivity, profile, record_function

SAMPLE_RANGE = "sample"
MATMUL_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::mv", "aten::addmv",
              "aten::_scaled_dot_product_flash_attention_for_cpu",
              "aten::_scaled_dot_product_flash_attention_for_cpu_backward"}
VIEW_OPS = {"aten::view", "aten::_unsafe_view", "aten::reshape", "aten::_reshape_alias", "aten::t",
            "aten::transpose", "aten::permute", "aten::expand", "aten::as_strided", "aten::unsqueeze",
            "aten::squeeze", "aten::select", "aten::slice", "aten::narrow", "aten::split",
            "aten::split_with_sizes", "aten::unbind", "aten::chunk", "aten::alias", "aten::detach",
            "aten::empty", "aten::empty_like", "aten::empty_strided", "aten::resize_",
            "aten::lift_fresh", "aten::result_type", "aten::numpy_T", "aten::expand_as",
            "aten::view_as", "aten::unflatten", "aten::flatten", "aten::contiguous", "detach"}
CATEGORIES = ("matmul", "elementwise", "views", "autograd", "optimizer", "sampling", "python")


def _ancestors(event):
    node = event.cpu_parent
    while node is not None:
        yield node
        node = node.cpu_parent


def _category(event) -> str:
    for node in _ancestors(event):
        if node.name.startswith("Optimizer."):
            return "optimizer"
        if node.name == SAMPLE_RANGE:
            return "sampling"
    name = event.name
    if name.startswith("Optimizer."):
        return "optimizer"
    if name == SAMPLE_RANGE:
        return "sampling"
    if name.startswith("autograd::") or "Backward" in name or name.endswith("AccumulateGrad"):
        return "autograd"
    if name in MATMUL_OPS:
        return "matmul"
    if name in VIEW_OPS:
        return "views"
    return "elementwise"


def _run_profiled(step: Callable[[], Any], steps: int, record_shapes: bool):
    with profile(activities=[ProfilerActivity.CPU], record_shapes=record_shapes) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        wall = time.perf_counter() - start
    return prof.events(), wall


def profile_steps(step: Callable[[], Any], steps: int, step_s: float | None = None,
                  roofline: bool = True) -> dict[str, Any]:
    """Breakdown of one `step()` (milliseconds per step, and shares); `step_s` is the unprofiled
    median step time (the python share is what it leaves after the ops)."""
    events, profiled_wall = _run_profiled(step, steps, record_shapes=False)
    ms = {c: 0.0 for c in CATEGORIES}
    for e in events:
        ms[_category(e)] += e.self_cpu_time_total / 1e3 / steps
    ops_ms = sum(ms.values())
    profiled_ms = profiled_wall * 1e3 / steps
    step_ms = step_s * 1e3 if step_s else profiled_ms
    ms["python"] = max(0.0, step_ms - ops_ms)
    # the profiler adds a little to each op's self time: where the ops sum past the unprofiled
    # step, shares are of their sum (and Python shows as 0)
    total = max(step_ms, ops_ms)
    out: dict[str, Any] = {
        "steps": steps, "step_ms": step_ms, "profiled_step_ms": profiled_ms, "ops_ms": ops_ms,
        "ms": {c: round(v, 4) for c, v in ms.items()},
        "share": {c: round(v / max(total, 1e-12), 4) for c, v in ms.items()},
        "ops_per_step": len(events) / steps,
    }
    if roofline:
        shaped, _ = _run_profiled(step, 1, record_shapes=True)
        out["matmul_roofline"] = matmul_roofline(shaped, step_ms, ms["matmul"])
    return out


def _matmul_flops(name: str, shapes: list) -> int | None:
    try:
        if name == "aten::mm":
            (m, k), (_, n) = shapes[0], shapes[1]
            return 2 * m * k * n
        if name == "aten::addmm":
            (m, k), (_, n) = shapes[1], shapes[2]
            return 2 * m * k * n
        if name == "aten::bmm":
            (b, m, k), (_, _, n) = shapes[0], shapes[1]
            return 2 * b * m * k * n
        if name == "aten::baddbmm":
            (b, m, k), (_, _, n) = shapes[1], shapes[2]
            return 2 * b * m * k * n
        if name == "aten::mv":
            (m, k) = shapes[0]
            return 2 * m * k
        if name == "aten::addmv":
            (m, k) = shapes[1]
            return 2 * m * k
    except (ValueError, IndexError, TypeError):
        return None
    return None  # fused attention: timed in the step, not re-run alone


_DTYPES = {"float": torch.float32, "c10::BFloat16": torch.bfloat16, "c10::Half": torch.float16,
           "double": torch.float64}


def _time_alone(name: str, shapes: list, dtype: torch.dtype, repeats: int = 30) -> float:
    """Median seconds of one such matmul alone (fresh contiguous inputs, same threads)."""
    args = [torch.randn(s, dtype=dtype) if s else torch.tensor(1.0, dtype=dtype) for s in shapes[:3]]
    fn = {"aten::mm": torch.mm, "aten::addmm": torch.addmm, "aten::bmm": torch.bmm,
          "aten::baddbmm": torch.baddbmm, "aten::mv": torch.mv, "aten::addmv": torch.addmv}[name]
    n_args = 2 if name in ("aten::mm", "aten::bmm", "aten::mv") else 3
    args = args[:n_args]
    return median_seconds(lambda: fn(*args), repeats, warmup=3)


def median_seconds(fn: Callable[[], Any], repeats: int, warmup: int = 0) -> float:
    """Median wall seconds of one `fn()` over `repeats` calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def square_peak(dtype: torch.dtype = torch.float32, n: int = 1024) -> float:
    """GFLOP/s of an n x n x n matmul: the machine's matmul peak in this dtype and thread count."""
    return 2 * n ** 3 / _time_alone("aten::mm", [[n, n], [n, n]], dtype, repeats=10) / 1e9


def _inside_matmul(event) -> bool:
    return any(node.name in MATMUL_OPS for node in _ancestors(event))


def _freeze(x):
    """Shapes as nested tuples (hashable)."""
    return tuple(_freeze(v) for v in x) if isinstance(x, (list, tuple)) else x


def matmul_roofline(events, step_ms: float, matmul_ms: float) -> dict[str, Any]:
    """Each distinct matmul of one step timed alone: the floor the step's matmuls set."""
    calls: Counter = Counter()
    for e in events:
        if e.name in MATMUL_OPS and not _inside_matmul(e):  # (bf16 baddbmm runs a bmm inside)
            dtypes = tuple(getattr(e, "input_dtypes", None) or ())
            calls[(e.name, _freeze(e.input_shapes), dtypes[:3])] += 1
    flops = alone_s = 0.0
    unmeasured = 0
    dtype_flops: Counter = Counter()
    for (name, shapes, dtypes), count in calls.items():
        f = _matmul_flops(name, shapes)
        dtype = next((_DTYPES[d] for d in dtypes if d in _DTYPES), torch.float32)
        if f is None:
            unmeasured += count
            continue
        flops += f * count
        dtype_flops[str(dtype).replace("torch.", "")] += f * count
        alone_s += _time_alone(name, shapes, dtype) * count
    main_dtype = max(dtype_flops, key=dtype_flops.get) if dtype_flops else "float32"
    gflop = flops / 1e9
    floor_ms = alone_s * 1e3
    return {
        "gflop_per_step": gflop,
        "distinct_matmuls": len(calls), "matmul_calls": sum(calls.values()),
        "calls_not_timed_alone": unmeasured,  # fused attention: its time stays in the step's matmul share
        "dtype": main_dtype,
        "floor_ms": round(floor_ms, 4),
        "gflop_per_s_step": round(gflop / (step_ms / 1e3), 1),  # the whole step's rate
        "gflop_per_s_in_step": round(gflop / max(matmul_ms / 1e3, 1e-12), 1) if not unmeasured else None,
        "gflop_per_s_alone": round(gflop / max(alone_s, 1e-12), 1),  # peak for the same shapes
        "gflop_per_s_square_1024": round(square_peak(getattr(torch, main_dtype)), 1),
        "ceiling_speedup": round(step_ms / max(floor_ms, 1e-12), 2),  # if all but these matmuls were free
    }


def marked_sample(sample: Callable[[], Any]) -> Callable[[], Any]:
    """`sample` inside the range profile_steps counts as sampling."""
    def run():
        with record_function(SAMPLE_RANGE):
            return sample()
    return run


def breakdown_line(p: dict[str, Any]) -> str:
    """One readable line: ms per step and share of each category, then the matmul roofline."""
    parts = [f"{c} {p['ms'][c]:.2f} ms ({100 * p['share'][c]:.0f}%)" for c in CATEGORIES if p["ms"][c] > 0]
    line = f"step {p['step_ms']:.2f} ms = " + ", ".join(parts)
    r = p.get("matmul_roofline")
    if r:
        in_step = (f"{r['gflop_per_s_in_step']:.0f} GFLOP/s" if r["gflop_per_s_in_step"] is not None
                   else "n/a (fused attention shares the matmul time)")
        line += (f"; matmuls {r['gflop_per_step']:.3f} GFLOP ({r['dtype']}): "
                 f"{in_step} in the step vs "
                 f"{r['gflop_per_s_alone']:.0f} alone (square 1024: {r['gflop_per_s_square_1024']:.0f}), "
                 f"floor {r['floor_ms']:.2f} ms -> ceiling {r['ceiling_speedup']:.2f}x")
    return line
