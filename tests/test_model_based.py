"""The dynamics ensemble, MOPO's penalties, model rollouts, mixed batches and COMBO's conservative term."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
import torch

from seqrl.algos import COMBO, CQL, COMBOConfig, CQLConfig
from seqrl.algos.dynamics import DynamicsTrainer, improved
from seqrl.algos.model_based import ModelBasedFields, ModelRollouts, rollout
from seqrl.data import BufferConfig, EpisodeDataset, TransitionBuffer
from seqrl.hub import CheckpointError, from_pretrained, save_pretrained
from seqrl.models.dynamics import DynamicsConfig, DynamicsEnsemble, Prediction, soft_clamp, uncertainty

TINY = dict(ensemble_size=3, num_elites=2, hidden_dims=(32, 32), weight_decays=(2.5e-5, 5e-5, 1e-4))


def linear_gaussian(n=4000, seed=0):
    """s' = s + A s + B a + noise (std per dim), r = c.s + noise: a system whose mean and variance are known."""
    g = np.random.default_rng(seed)
    A = np.array([[0.1, -0.2], [0.05, 0.1]])
    B = np.array([[0.3], [-0.4]])
    c = np.array([1.0, -0.5])
    noise = np.array([0.05, 0.2, 0.1])  # s'_0, s'_1, r
    s = g.normal(size=(n, 2))
    a = g.uniform(-1, 1, size=(n, 1))
    delta = s @ A.T + a @ B.T
    r = s @ c
    eps = g.normal(size=(n, 3)) * noise
    t = lambda x: torch.as_tensor(x, dtype=torch.float32)  # noqa: E731
    data = {"observations": t(s), "actions": t(a), "next_observations": t(s + delta + eps[:, :2]),
            "rewards": t(r + eps[:, 2]), "terminals": torch.zeros(n)}
    mean = t(np.concatenate([s + delta, r[:, None]], axis=1))
    return data, mean, t(noise)


def fit(model, data, config):
    trainer = DynamicsTrainer(model, data, config)
    while not trainer.finished:
        trainer.train_step()
    return trainer


def test_ensemble_recovers_mean_and_variance_of_a_linear_gaussian_system():
    # a fixed budget: early stopping watches the mean's MSE only and stops before the variance has
    # converged on this small problem (the references' rule, tested below)
    torch.manual_seed(0)
    config = DynamicsConfig(**TINY, max_epochs=100, max_epochs_since_update=1000)
    data, true_mean, true_std = linear_gaussian()
    model = DynamicsEnsemble(config, 2, 1)
    fit(model, data, config)
    test, test_mean, _ = linear_gaussian(n=500, seed=1)
    mean, std = model.predict(test["observations"], test["actions"])
    elites = model.elites
    err = (mean[elites] - test_mean).abs().mean().item()
    assert err < 0.03, err  # the noise std is 0.05-0.2: the mean is learned far below it
    learned_std = std[elites].mean(dim=(0, 1))
    assert torch.allclose(learned_std, true_std, rtol=0.15), (learned_std, true_std)


class ScriptedTrainer(DynamicsTrainer):
    """Holdout scores from a script, to check snapshotting, early stopping and elites exactly."""

    def __init__(self, *args, script, **kwargs):
        super().__init__(*args, **kwargs)
        self.script = [torch.tensor(s) for s in script]
        self.calls = 0

    def holdout_mse(self):
        out = self.script[self.calls]
        self.calls += 1
        return out


def test_early_stopping_snapshots_and_elites_follow_the_holdout():
    torch.manual_seed(0)
    config = DynamicsConfig(**TINY, max_epochs_since_update=2)
    data, _, _ = linear_gaussian(n=600)
    model = DynamicsEnsemble(config, 2, 1)
    script = [[1.0, 1.0, 1.0],
              [0.5, 0.995, 2.0],  # member 0 improves; member 1 by 0.5% only (< 1%): not an improvement
              [0.6, 0.9, 0.95],  # members 1 and 2 improve
              [0.6, 0.9, 0.95],  # nobody improves
              [0.5, 0.9, 0.95],  # nobody improves: the second epoch in a row, the fit stops
              [0.5, 0.9, 0.95]]  # the score of the restored best snapshots, which picks the elites
    trainer = ScriptedTrainer(model, data, config, script=script)
    params = []
    while not trainer.finished:
        trainer.train_step()
        params.append([p.detach().clone() for p in trainer._member_params()])
    assert trainer.epochs == 5 and trainer.calls == 6  # 5 epochs, then the restored snapshots
    best_epoch = [1, 2, 2]  # index into params: member 0's epoch 2, members 1 and 2's epoch 3
    for i, p in enumerate(trainer._member_params()):
        for member, epoch in enumerate(best_epoch):
            assert torch.equal(p[member], params[epoch][i][member]), (i, member)
    assert model.elites.tolist() == [0, 1]  # the two lowest holdout scores
    assert improved(torch.tensor([1.0]), torch.tensor([0.995]), 0.01).item() is False
    assert improved(torch.tensor([1e10]), torch.tensor([5.0]), 0.01).item() is True


def test_holdout_and_bootstrap_follow_the_references():
    config = DynamicsConfig(**TINY)
    data, _, _ = linear_gaussian(n=10_000)
    trainer = DynamicsTrainer(DynamicsEnsemble(config, 2, 1), data, config)
    assert len(trainer.holdout_targets) == 1000  # min(20% of 10,000, 1000)
    assert trainer.bootstrap.shape == (3, 9000)  # one resample with replacement per member
    assert len(set(map(tuple, trainer.bootstrap[:, :50].tolist()))) == 3  # members see different rows
    small = DynamicsTrainer(DynamicsEnsemble(config, 2, 1), linear_gaussian(n=2000)[0], config)
    assert len(small.holdout_targets) == 400
    inputs = torch.cat([small.train_inputs], 0)
    assert torch.allclose(small.model.input_mean, inputs.mean(0))  # statistics of the training split only


def test_soft_clamped_log_variance_stays_inside_learnable_bounds():
    low, high = torch.tensor([-10.0]), torch.tensor([0.5])
    x = torch.tensor([-100.0, -3.0, 0.0, 100.0])
    y = soft_clamp(x, low, high)
    assert (y >= -10.0).all() and (y <= 0.5 + 1e-4).all()  # the lower softplus lifts the top by e^-10.5
    assert abs(y[1].item() - (-3.0)) < 0.05  # inside the bounds it is close to the identity
    model = DynamicsEnsemble(DynamicsConfig(**TINY), 2, 1)
    assert torch.equal(model.max_logvar, torch.full((3,), 0.5)) and torch.equal(model.min_logvar, torch.full((3,), -10.0))
    loss, parts = model.loss(torch.randn(3, 4, 2), torch.randn(3, 4, 1), torch.randn(3, 4, 3))
    assert math.isclose(parts["logvar_bounds"].item(), 0.01 * (3 * 0.5 + 3 * 10.0), rel_tol=1e-6)
    wd = sum(0.5 * d * layer.weight.pow(2).sum().item() for d, layer in zip(TINY["weight_decays"], model.layers))
    assert math.isclose(parts["weight_decay"].item(), wd, rel_tol=1e-5)


def test_penalties_by_hand():
    # two members, one row, (s' of 2 dims, r)
    mean = torch.tensor([[[1.0, 2.0, 0.5]], [[3.0, 2.0, -0.5]]])
    std = torch.tensor([[[0.1, 0.2, 0.2]], [[0.3, 0.0, 0.4]]])
    assert torch.allclose(uncertainty(mean, std, "aleatoric"), torch.tensor([0.5]))  # max(0.3, 0.5)
    # member means of s' (1,2) and (3,2), their mean (2,2): distances 1 and 1
    assert torch.allclose(uncertainty(mean, std, "pairwise-diff"), torch.tensor([1.0]))
    # variance over members per s' dim: (1, 0) -> sqrt(mean) = sqrt(0.5)
    assert torch.allclose(uncertainty(mean, std, "ensemble-std"), torch.tensor([math.sqrt(0.5)]))
    with pytest.raises(ValueError, match="unknown penalty"):
        uncertainty(mean, std, "max")


class LinearModel:
    """A known model for rollout tests: s' = s + 1 per dim, r = s_0, std 0.5 everywhere."""

    config = DynamicsConfig(ensemble_size=2, num_elites=2)

    def step(self, obs, act, generator=None, every_member=True):
        nxt = obs + 1.0
        mean = torch.cat([nxt, obs[:, :1]], dim=-1).expand(2, -1, -1)
        if not every_member:
            return Prediction(nxt, obs[:, 0].clone(), None, None)
        return Prediction(nxt, obs[:, 0].clone(), mean, torch.full_like(mean, 0.5))


class ZeroActor:
    def sample(self, obs, n=None, generator=None):
        return torch.zeros(obs.shape[0], 1), torch.zeros(obs.shape[0])


def test_rollout_drops_terminated_rows_and_applies_the_penalty():
    start = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.5, 0.0]])
    done = lambda s: s[:, 0] > 2.0  # noqa: E731
    zero, one = torch.zeros(2), torch.ones(2)
    rows, stats = rollout(LinearModel(), ZeroActor(), start, 3, done, zero, one, "aleatoric", penalty_coef=2.0)
    # step 1: s0 -> (1, 2, 3.5): the last terminates; step 2: (1, 2) -> (2, 3): the second terminates; step 3: 2 -> 3
    assert rows["rewards"].shape == (6,)
    assert rows["terminals"].tolist() == [0, 0, 1, 0, 1, 1]
    assert rows["observations"][:, 0].tolist() == [0.0, 1.0, 2.5, 1.0, 2.0, 2.0]
    penalty = 2.0 * math.sqrt(3 * 0.25)  # lambda * max_e ||std_e|| (std 0.5 on 3 outputs)
    assert torch.allclose(rows["rewards"], rows["observations"][:, 0] - penalty)
    assert math.isclose(stats["rollout_penalty"].item(), math.sqrt(0.75), rel_tol=1e-6)
    # normalised observations: the model sees raw ones, the learner normalised ones
    rows, _ = rollout(LinearModel(), ZeroActor(), torch.zeros(1, 2), 1, done, torch.tensor([10.0, 0.0]),
                      torch.tensor([2.0, 1.0]))
    assert torch.allclose(rows["next_observations"], torch.tensor([[0.5, 1.0]]))  # raw (11, 1) -> ((11-10)/2, 1)
    assert rows["rewards"].item() == 10.0  # raw s_0 of the start state


def test_a_rollout_without_a_penalty_runs_only_each_rows_sampled_elite():
    from torch.utils.flop_counter import FlopCounterMode
    torch.manual_seed(0)
    model = DynamicsEnsemble(DynamicsConfig(**TINY, seed=0), 4, 1)
    model.set_input_statistics(torch.randn(100, 5) * 3 + 1)
    obs, act = torch.randn(500, 4), torch.rand(500, 1) * 2 - 1
    full = model.step(obs, act, torch.Generator().manual_seed(3))
    own = model.step(obs, act, torch.Generator().manual_seed(3), every_member=False)
    assert own.mean is None and own.std is None
    assert torch.allclose(own.next_observations, full.next_observations, atol=1e-5)
    assert torch.allclose(own.rewards, full.rewards, atol=1e-5)
    members = torch.randint(3, (500,))
    mean, std = model.predict(obs, act)
    own_mean, own_std = model.predict(obs, act, members=members)
    rows = torch.arange(500)
    assert torch.allclose(own_mean, mean[members, rows], atol=1e-5) and torch.allclose(own_std, std[members, rows], atol=1e-5)

    def flops(**kw):
        with FlopCounterMode(display=False) as counter:
            model.step(obs, act, torch.Generator().manual_seed(3), **kw)
        return counter.get_total_flops()
    assert flops(every_member=False) < 0.5 * flops()  # one member of three per row (plus padding), not all three
    assert model.step(obs[:0], act[:0], every_member=False).next_observations.shape == (0, 4)
    # rollouts without a penalty take that path and report no penalty statistics
    rows, stats = rollout(model, ZeroActor(), obs[:50], 2, lambda s: s[:, 0] > 1e9, torch.zeros(4), torch.ones(4))
    assert "rollout_penalty" not in stats and rows["rewards"].shape == (100,)


def tiny_episodes(n_episodes=4, length=50, obs_dim=2):
    g = np.random.default_rng(0)
    eps = []
    for _ in range(n_episodes):
        obs = g.normal(size=(length + 1, obs_dim)).astype(np.float32)
        eps.append({"observations": obs, "actions": g.uniform(-1, 1, size=(length, 1)).astype(np.float32),
                    "rewards": np.ones(length, np.float32), "terminations": np.zeros(length, bool),
                    "truncations": np.r_[np.zeros(length - 1, bool), True]})
    return EpisodeDataset.from_episodes(eps, metadata={"env_id": "Pendulum-v1"})


class MarkedModel:
    """Model rows carry reward -7 so a batch shows which buffer each row came from."""

    config = DynamicsConfig(ensemble_size=2, num_elites=2)

    def step(self, obs, act, generator=None, every_member=True):
        mean = torch.cat([obs, torch.full_like(obs[:, :1], -7.0)], dim=-1).expand(2, -1, -1)
        return Prediction(obs.clone(), torch.full((obs.shape[0],), -7.0), mean, torch.zeros_like(mean))


class Policy:
    actor = ZeroActor()


def test_mixed_batches_and_fifo_retention():
    real = TransitionBuffer(tiny_episodes(), BufferConfig(), seed=0)
    config = ModelBasedFields(rollout_freq=3, rollout_batch_size=10, rollout_length=2, model_retain_epochs=2,
                              real_ratio=0.25, penalty_coef=0.0)
    source = ModelRollouts(real, MarkedModel(), Policy(), lambda s: torch.zeros(len(s), dtype=torch.bool), config,
                           batch_size=8)
    batch = source.next_batch()  # the first batch rolls out first
    assert source.n_real == 2 and batch["real_rows"].tolist() == [1, 1, 0, 0, 0, 0, 0, 0]
    assert batch["rewards"][:2].tolist() == [1.0, 1.0] and (batch["rewards"][2:] == -7.0).all()
    assert len(source.model_buffer) == 20 and source.model_buffer.capacity == 40  # 10 starts x h 2 x 2 kept
    for _ in range(8):  # batches 2..9: rollouts at 4 and 7 (every 3 batches)
        source.next_batch()
    assert source.model_buffer.total_added == 60 and len(source.model_buffer) == 40  # the oldest rollout is gone
    state = source.state_dict()
    again = ModelRollouts(TransitionBuffer(tiny_episodes(), BufferConfig(), seed=5), MarkedModel(), Policy(), lambda s: torch.zeros(len(s), dtype=torch.bool), config,
                          batch_size=8)
    again.load_state_dict(state)
    a, b = source.next_batch(), again.next_batch()
    assert all(torch.equal(a[k], b[k]) for k in a)  # resume gives the same batches


def test_combo_with_every_row_real_is_cql():
    """COMBO only changes which rows the conservative term pushes down and up: on an all-real batch
    with mixed push-down states it is CQL's penalty (same networks, same samples)."""
    torch.manual_seed(0)
    kwargs = dict(hidden_dims=(16, 16), cql_n_actions=3, orthogonal_init=False, policy_log_std_offset=0.0,
                  learn_log_std_scale=False, cql_alpha=5.0, policy_lr=1e-4, alpha_lr=1e-4)
    combo = COMBO(COMBOConfig(**kwargs), 3, 2)
    cql = CQL(CQLConfig(**kwargs), 3, 2)
    cql.load_state_dict(combo.state_dict())
    g = torch.Generator().manual_seed(1)
    batch = {"observations": torch.randn(8, 3, generator=g), "actions": torch.rand(8, 2, generator=g) * 2 - 1,
             "rewards": torch.randn(8, generator=g), "next_observations": torch.randn(8, 3, generator=g),
             "terminals": torch.zeros(8), "real_rows": torch.ones(8)}
    t_combo, _ = combo.loss_terms(batch)
    t_cql, _ = cql.loss_terms(batch)
    assert torch.allclose(t_combo["cql_loss"], t_cql["cql_loss"])
    # with half the rows from the model, push-up uses the real half only
    batch["real_rows"] = (torch.arange(8) < 4).float()
    combo.generator.manual_seed(0)
    _, aux = combo.loss_terms(batch)
    q_data, ood = aux["q_data"], aux["ood_q"]
    expected = ood.mean(-1) - q_data[:, :4].mean(-1)
    assert torch.allclose(aux["cql_diff"], expected, atol=1e-6)
    model_only = COMBO(COMBOConfig(**kwargs, combo_states="model"), 3, 2)
    model_only.load_state_dict(combo.state_dict())
    model_only.generator.manual_seed(0)
    _, aux_model = model_only.loss_terms(batch)
    # "model" evaluates the sampled actions at the model rows only, with the same samples there
    assert aux_model["ood_q"].shape == (2, 4)
    assert torch.allclose(aux_model["ood_q"], ood[:, 4:], atol=1e-6)
    assert torch.allclose(aux_model["cql_diff"], ood[:, 4:].mean(-1) - q_data[:, :4].mean(-1), atol=1e-6)


def test_dynamics_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = DynamicsEnsemble(DynamicsConfig(**TINY), 2, 1)
    model.elites.copy_(torch.tensor([2, 0]))
    model.metadata = {"env_id": "Pendulum-v1", "dataset": {"source": "x", "transitions": 10},
                      "training": {"epochs": 3, "holdout": 2, "elite_holdout_mse": 0.5}}
    save_pretrained(model, tmp_path / "dyn")
    loaded = from_pretrained(str(tmp_path / "dyn"))
    assert isinstance(loaded, DynamicsEnsemble) and loaded.elites.tolist() == [2, 0]
    obs, act = torch.randn(5, 2), torch.rand(5, 1)
    assert all(torch.equal(a, b) for a, b in zip(model.predict(obs, act), loaded.predict(obs, act)))
    card = (tmp_path / "dyn" / "README.md").read_text()
    assert "Dynamics ensemble for `Pendulum-v1`" in card and "elites [2, 0]" in card
    with pytest.raises(CheckpointError, match="not iql"):
        from_pretrained(str(tmp_path / "dyn"), algorithm="iql")


def test_config_errors_are_one_line():
    with pytest.raises(ValueError, match="weight_decays needs 3"):
        DynamicsConfig(hidden_dims=(8, 8), weight_decays=(1e-4,))
    with pytest.raises(ValueError, match="penalty must be one of"):
        COMBOConfig(penalty="max")
    with pytest.raises(ValueError, match="combo_states"):
        COMBOConfig(combo_states="real")


# ----------------------------------------------------------------------------- runs: resume, errors


@pytest.fixture(scope="module")
def pendulum_data(tmp_path_factory):
    """A small InvertedPendulum dataset (terminations, 50-step limit) from the medium controller."""
    from seqrl.data.collect import rollout as collect
    from seqrl.data.controllers import make_controller

    env = "InvertedPendulum-v5"
    episodes = collect(env, make_controller(env, "medium", seed=0), n_steps=3000, seed=0, max_episode_steps=50)
    ds = EpisodeDataset.from_episodes(episodes, metadata={"env_id": env, "max_episode_steps": 50, "source": "test",
                                                          "action_low": [-3.0], "action_high": [3.0]})
    return str(ds.save_to_disk(tmp_path_factory.mktemp("data") / "ip"))


def test_dynamics_fit_resumes_exactly_from_an_epoch_checkpoint(tmp_path):
    from seqrl.algos.dynamics import NoBatches
    from seqrl.training.loop import LoopConfig, train

    config = DynamicsConfig(**TINY, max_epochs=4, max_epochs_since_update=100)
    data, _, _ = linear_gaussian(n=1500)

    def fit_to(steps, out, resume=False):
        torch.manual_seed(0)
        model = DynamicsEnsemble(config, 2, 1)
        trainer = DynamicsTrainer(model, data, config)
        train(trainer, NoBatches(), LoopConfig(max_steps=steps, log_every=1, save_every=1, progress=False), out,
              resume=resume)
        return trainer

    full = fit_to(4, tmp_path / "full")
    fit_to(2, tmp_path / "part")  # interrupted after epoch 2
    resumed = fit_to(4, tmp_path / "part", resume=True)
    assert full.finished and resumed.finished and resumed.epochs == 4
    assert all(torch.equal(a, b) for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()))


def test_mopo_resume_is_exact_and_reuses_the_fitted_dynamics(pendulum_data, tmp_path):
    import json
    import shutil

    from seqrl.training.run import main

    base = ["--dataset", pendulum_data, "--hidden_dims", "16", "16", "--batch_size", "16", "--log_every", "1",
            "--eval_episodes", "0", "--save_every", "3", "--max_steps", "6", "--rollout_freq", "2",
            "--rollout_batch_size", "50", "--rollout_length", "2", "--dynamics_max_epochs", "2", "--threads", "1"]
    main("mopo", base + ["--output_dir", str(tmp_path / "full"), "--no-resume"])
    main("mopo", base + ["--output_dir", str(tmp_path / "part"), "--no-resume"])
    checkpoints = tmp_path / "part" / "checkpoints"
    shutil.rmtree(checkpoints / "step_6")
    (checkpoints / "latest").write_text("step_3")  # a crash after the step-3 checkpoint
    main("mopo", base + ["--output_dir", str(tmp_path / "part"), "--resume"])
    full = json.loads((tmp_path / "full" / "train_history.json").read_text())
    part = json.loads((tmp_path / "part" / "train_history.json").read_text())
    assert [h["step"] for h in part] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(full, part):
        assert {k: v for k, v in a.items() if "per_s" not in k} == {k: v for k, v in b.items() if "per_s" not in k}
    policy = from_pretrained(str(tmp_path / "part" / "model"))
    assert policy.config.algorithm == "mopo" and policy.act(np.zeros(4, np.float32)).shape == (1,)
    dynamics = from_pretrained(str(tmp_path / "part" / "model"), subfolder="dynamics")
    assert isinstance(dynamics, DynamicsEnsemble) and dynamics.metadata["env_id"] == "InvertedPendulum-v5"


def test_model_based_runs_refuse_bad_input_in_one_line(pendulum_data, tmp_path):
    from seqrl.training.run import main

    base = ["--dataset", pendulum_data, "--max_steps", "2", "--eval_episodes", "0", "--threads", "1", "--no-resume",
            "--output_dir", str(tmp_path / "x")]
    with pytest.raises(SystemExit, match="termination rule"):
        main("mopo", base + ["--env_id", "Swimmer-v5"])
    with pytest.raises(SystemExit, match="no checkpoint directory"):
        main("combo", base + ["--dynamics", str(tmp_path / "missing")])
    other = DynamicsEnsemble(DynamicsConfig(**TINY), 3, 1)
    save_pretrained(other, tmp_path / "other")
    with pytest.raises(SystemExit, match="observations 3"):
        main("mopo", base + ["--dynamics", str(tmp_path / "other")])
    with pytest.raises(SystemExit, match="penalty must be one of"):
        main("mopo", base + ["--penalty", "max"])


def test_a_penalty_that_makes_falling_pay_is_a_warning_where_the_env_terminates():
    config = ModelBasedFields(rollout_freq=3, rollout_batch_size=10, rollout_length=2, model_retain_epochs=2,
                              real_ratio=0.25, penalty_coef=1.0)
    never = lambda s: torch.zeros(len(s), dtype=torch.bool)  # noqa: E731
    always = lambda s: torch.ones(len(s), dtype=torch.bool)  # noqa: E731
    # MarkedModel: reward -7, std 0 -> penalized reward -7 < 0
    with pytest.warns(UserWarning, match=r"penalized model reward averages -7 .*ending an episode"):
        source = ModelRollouts(TransitionBuffer(tiny_episodes(), BufferConfig(), seed=0), MarkedModel(), Policy(),
                               always, config, batch_size=8)
        source.next_batch()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # an env that never terminates (halfcheetah): negative rewards cannot be escaped, nothing to warn
        ModelRollouts(TransitionBuffer(tiny_episodes(), BufferConfig(), seed=0), MarkedModel(), Policy(),
                      never, config, batch_size=8).next_batch()
        # without a penalty the negative reward is the data's own, not the penalty's doing
        source = ModelRollouts(TransitionBuffer(tiny_episodes(), BufferConfig(), seed=0), MarkedModel(), Policy(),
                               always, dataclasses.replace(config, penalty_coef=0.0), batch_size=8)
        source.next_batch()
    assert source.metrics["rollout_reward"].item() == -7.0 and "rollout_penalized_reward" not in source.metrics
