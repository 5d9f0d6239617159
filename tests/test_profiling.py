"""benchmarks/profiling.py, the profile mode of the speed benchmarks: each op lands in the right
category (matmul, elementwise, optimizer, sampling), the matmul FLOPs are counted exactly from the
recorded shapes, and the floor and ceiling come from timing those shapes alone."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
profiling = pytest.importorskip("profiling")


def test_a_training_step_splits_into_its_parts_and_counts_matmul_flops_exactly():
    torch.manual_seed(0)
    layer = torch.nn.Linear(64, 32)
    opt = torch.optim.Adam(layer.parameters(), foreach=False)  # a Python loop: time under Optimizer.step
    data = torch.randn(1000, 64)
    sample = profiling.marked_sample(lambda: data[torch.randint(0, 1000, (128,))])

    def step():
        x = sample()
        loss = torch.relu(layer(x)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    p = profiling.profile_steps(step, 3)
    ms = p["ms"]
    assert set(ms) == set(profiling.CATEGORIES)
    for category in ("matmul", "elementwise", "autograd", "optimizer", "sampling"):
        assert ms[category] > 0, category
    assert all(v >= 0 for v in ms.values())
    assert sum(ms.values()) == pytest.approx(p["step_ms"], rel=1e-3)  # python is what the ops leave
    r = p["matmul_roofline"]
    # forward addmm 128x64 @ 64x32 and the weight's gradient 32x128 @ 128x64 (the batch needs none)
    assert r["gflop_per_step"] == pytest.approx(2 * 2 * 128 * 64 * 32 / 1e9, rel=1e-6)
    assert r["matmul_calls"] == 2 and r["dtype"] == "float32"
    assert r["floor_ms"] > 0 and r["ceiling_speedup"] > 1.0  # a step is more than its matmuls


def test_matmul_flops_of_each_op_form():
    f = profiling._matmul_flops
    assert f("aten::mm", [[4, 5], [5, 6]]) == 2 * 4 * 5 * 6
    assert f("aten::addmm", [[6], [4, 5], [5, 6]]) == 2 * 4 * 5 * 6
    assert f("aten::bmm", [[3, 4, 5], [3, 5, 6]]) == 2 * 3 * 4 * 5 * 6
    assert f("aten::baddbmm", [[3, 1, 6], [3, 4, 5], [3, 5, 6]]) == 2 * 3 * 4 * 5 * 6
    assert f("aten::_scaled_dot_product_flash_attention_for_cpu", [[1, 2, 3, 4]] * 3) is None
