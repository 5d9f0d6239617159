"""--precision bf16: every update under bfloat16 autocast. The losses and gradients stay close to
float32 on networks with outputs of a realistic size (not only at the near-zero initial heads), the
heads and the weights stay float32, training runs from the command line, and a bad value is one line."""

import pytest
import torch

from seqrl.algos import BCConfig, CQLConfig, IQLConfig, build_algorithm
from seqrl.training.precision import update_precision
from seqrl.training.run import main as train

OBS, ACT, B = 11, 3, 64
CONFIGS = {
    "cql": CQLConfig(hidden_dims=(64, 64, 64), batch_size=B, cql_n_actions=4),
    "iql": IQLConfig(hidden_dims=(64, 64), batch_size=B),
    "bc": BCConfig(hidden_dims=(64, 64), batch_size=B, policy="deterministic"),
}


def losses_and_grads(algo, batch, precision):
    algo.generator.manual_seed(0)
    algo.zero_grad(set_to_none=True)
    with update_precision(precision, "cpu"):
        out = getattr(algo, algo.loss_methods[0])(batch)
    total, aux = out if isinstance(out, tuple) else (out, {"loss": out})
    total.backward()
    terms = {k: v.detach() for k, v in aux.items() if k.endswith("_loss") and v.dim() == 0}
    grads = torch.cat([p.grad.flatten() for p in algo.parameters() if p.grad is not None])
    return total.detach(), terms, grads


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_bf16_losses_and_gradients_stay_close_to_fp32(name):
    torch.manual_seed(0)
    algo = build_algorithm(CONFIGS[name], OBS, ACT)
    with torch.no_grad():  # heads sized like a trained network's (CQL/IQL start near zero)
        for p in algo.parameters():
            p.mul_(3.0) if p.dim() > 1 else None
    g = torch.Generator().manual_seed(1)
    batch = dict(observations=torch.randn(B, OBS, generator=g), actions=torch.rand(B, ACT, generator=g) * 2 - 1,
                 rewards=torch.randn(B, generator=g), next_observations=torch.randn(B, OBS, generator=g),
                 terminals=(torch.rand(B, generator=g) < 0.1).float())
    total32, terms32, grads32 = losses_and_grads(algo, batch, "fp32")
    total16, terms16, grads16 = losses_and_grads(algo, batch, "bf16")
    assert total16.dtype == torch.float32 and all(p.dtype == torch.float32 for p in algo.parameters())
    assert not torch.equal(grads16, grads32)  # autocast really ran the matmuls in bf16
    for k in terms32:
        torch.testing.assert_close(terms16[k], terms32[k], rtol=5e-2, atol=1e-2 * max(1.0, total32.abs().item()))
    cosine = torch.nn.functional.cosine_similarity(grads16, grads32, dim=0)
    assert cosine > 0.99, cosine


def test_bf16_trains_from_the_command_line(pendulum_data, tmp_path):
    result = train("cql", ["--dataset", pendulum_data[0], "--precision", "bf16", "--hidden_dims", "16", "16",
                           "--batch_size", "16", "--cql_n_actions", "2", "--max_steps", "10", "--log_every", "5",
                           "--threads", "1", "--eval_episodes", "0", "--output_dir", str(tmp_path)])
    assert torch.isfinite(torch.tensor(result["history"][-1]["critic_loss"]))
    assert (tmp_path / "model").is_dir()


def test_an_unknown_precision_is_one_line(tmp_path):
    with pytest.raises(SystemExit) as err:
        train("bc", ["--precision", "fp8", "--max_steps", "2", "--output_dir", str(tmp_path), "--threads", "1"])
    assert "--precision 'fp8'" in str(err.value) and "\n" not in str(err.value)
