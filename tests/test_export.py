"""Export: ONNX Runtime and TorchScript give the actions `act` gives (normalisation and scaling in the
graph) for every value-based policy, at batch sizes other than the traced one; the TT's logits
export with a dynamic length; bad requests are one line."""

import numpy as np
import pytest
import torch

from seqrl.algos import ALGORITHMS, build_algorithm
from seqrl.cli import main as cli
from seqrl.export import export
from seqrl.hub import TrajectoryModel, load_policy
from seqrl.models.trajectory_transformer import TrajectoryTransformerConfig, TrajectoryTransformerModel
from seqrl.training.run import main as train

onnxruntime = pytest.importorskip("onnxruntime")

OBS, ACT = 4, 2


def trained_looking(algorithm: str):
    """A policy with non-trivial statistics and bounds (so a graph that skipped them would differ)."""
    torch.manual_seed(0)
    config = ALGORITHMS[algorithm].config_class(hidden_dims=(16, 16))
    algo = build_algorithm(config, OBS, ACT, action_low=[-2.0, 0.0], action_high=[1.0, 4.0],
                           obs_mean=[1.0, -2.0, 0.5, 3.0], obs_std=[0.5, 2.0, 1.0, 4.0])
    with torch.no_grad():
        for p in algo.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return algo.eval()


def observations(n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    return (rng.normal(size=(n, OBS)) * [0.5, 2.0, 1.0, 4.0] + [1.0, -2.0, 0.5, 3.0]).astype(np.float32)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_onnx_and_torchscript_act_like_the_policy(algorithm, tmp_path):
    policy = trained_looking(algorithm)
    onnx_file = export(policy, tmp_path / "p.onnx", "onnx")
    script_file = export(policy, tmp_path / "p.pt", "torchscript")
    session = onnxruntime.InferenceSession(str(onnx_file))
    scripted = torch.jit.load(str(script_file))
    for n in (1, 5, 64):  # traced at 3: other batch sizes must work too
        obs = observations(n)
        expected = policy.act(obs)
        np.testing.assert_allclose(session.run(None, {"observations": obs})[0], expected, rtol=1e-5, atol=1e-5)
        with torch.no_grad():
            np.testing.assert_allclose(scripted(torch.from_numpy(obs)).numpy(), expected, rtol=1e-5, atol=1e-5)
    assert not (tmp_path / "p.onnx.tmp").exists()


def test_the_trajectory_transformer_exports_its_logits_with_a_dynamic_length(tmp_path):
    torch.manual_seed(0)
    config = TrajectoryTransformerConfig(observation_dim=3, action_dim=2, vocab_size=10, n_embd=32, n_head=4,
                                         n_layer=2, block_size=4 * 7 - 1)
    model = TrajectoryTransformerModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(0.3 * torch.randn_like(p) if name == "pos_emb" else 0.05 * torch.randn_like(p))
    file = export(TrajectoryModel(model, None, {}), tmp_path / "tt.onnx", "onnx")
    session = onnxruntime.InferenceSession(str(file))
    for batch, length in ((1, 1), (3, 7), (2, 12), (4, 27)):
        tokens = torch.randint(0, 11, (batch, length))  # 10 is STOP
        tokens[0, 0] = 10
        with torch.no_grad():
            expected = model(tokens).logits
            assert torch.allclose(model.window_logits(tokens), expected, atol=1e-5)
        got = session.run(None, {"input_ids": tokens.numpy()})[0]
        np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4, atol=1e-4)


def test_the_command_writes_next_to_the_checkpoint(pendulum_data, tmp_path, capsys):
    train("iql", ["--dataset", pendulum_data[0], "--hidden_dims", "16", "16", "--batch_size", "16", "--max_steps", "3",
                  "--eval_episodes", "0", "--threads", "1", "--output_dir", str(tmp_path)])
    policy = load_policy(tmp_path / "model")
    assert cli(["export", str(tmp_path / "model"), "--format", "torchscript"]) == 0
    scripted = torch.jit.load(str(tmp_path / "model" / "policy.pt"))
    obs = np.random.default_rng(0).normal(size=(4, policy.obs_dim)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(scripted(torch.from_numpy(obs)).numpy(), policy.act(obs), rtol=1e-5, atol=1e-5)
    assert "exported" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--format", "tflite"], "invalid choice"),
    ([], "not a seqrl checkpoint"),
])
def test_bad_requests_are_one_line(args, message, tmp_path, capsys):
    code = None
    try:
        code = cli(["export", str(tmp_path), *args])
    except SystemExit as err:  # argparse's own refusal
        code = err.code
    assert code not in (0, None)
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]
