"""--compile: the losses through torch.compile compute what eager does (to float rounding), the
parameters after a few updates match an eager twin, training runs from the command line, and it
refuses --seeds in one line."""

import pytest
import torch

from seqrl.algos import AWACConfig, BCConfig, IQLConfig, build_algorithm
from seqrl.config import ConfigError
from seqrl.training.compiled import check_compile, compile_losses, has_cxx
from seqrl.training.run import main as train

needs_cxx = pytest.mark.skipif(not has_cxx(), reason="torch.compile on CPU needs a C++ compiler")
OBS, ACT, B = 5, 2, 32
CONFIGS = {
    "iql": IQLConfig(hidden_dims=(32, 32), batch_size=B),
    "bc": BCConfig(hidden_dims=(32, 32), batch_size=B, policy="deterministic"),
    "awac": AWACConfig(hidden_dims=(32, 32), batch_size=B),  # samples actions: a graph break, same RNG stream
}


def batches(n):
    g = torch.Generator().manual_seed(1)
    return [dict(observations=torch.randn(B, OBS, generator=g), actions=torch.rand(B, ACT, generator=g) * 2 - 1,
                 rewards=torch.randn(B, generator=g), next_observations=torch.randn(B, OBS, generator=g),
                 terminals=(torch.rand(B, generator=g) < 0.1).float()) for _ in range(n)]


@needs_cxx
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_compiled_losses_train_like_eager(name):
    torch._dynamo.reset()
    torch.manual_seed(0)
    eager = build_algorithm(CONFIGS[name], OBS, ACT)
    compiled = build_algorithm(CONFIGS[name], OBS, ACT)
    compiled.load_state_dict(eager.state_dict())
    compile_losses(compiled)
    assert all(type(getattr(compiled, m)) is not type(getattr(eager, m)) for m in compiled.loss_methods)
    for batch in batches(4):
        m_eager, m_compiled = eager.update(batch), compiled.update(batch)
        for k in m_eager:
            torch.testing.assert_close(m_compiled[k], m_eager[k], rtol=1e-4, atol=1e-5)
    for (k, a), b in zip(eager.state_dict().items(), compiled.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=k)
    assert compiled.num_updates == eager.num_updates == 4


@needs_cxx
def test_compile_trains_from_the_command_line_and_refuses_seeds(pendulum_data, tmp_path):
    torch._dynamo.reset()
    args = ["--dataset", pendulum_data[0], "--hidden_dims", "16", "16", "--batch_size", "16", "--max_steps", "6",
            "--log_every", "3", "--threads", "1", "--eval_episodes", "0", "--compile"]
    result = train("iql", args + ["--output_dir", str(tmp_path / "one")])
    assert torch.isfinite(torch.tensor(result["history"][-1]["critic_loss"]))
    assert (tmp_path / "one" / "model").is_dir()
    with pytest.raises(SystemExit, match="--compile runs one seed per process"):
        train("iql", args + ["--seeds", "0,1", "--output_dir", str(tmp_path / "two")])


def test_compile_without_a_compiler_is_one_line(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(ConfigError, match="--compile on CPU needs a C\\+\\+ compiler"):
        check_compile("cpu")
