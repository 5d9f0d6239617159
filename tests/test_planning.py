"""Trajectory Transformer planning: official filters and scoring, and fast planner == reference planner.

`ReferencePlanner` replays the official `beam_plan` loop with a full forward pass per token; `BeamPlanner`
must give the same plans and actions (KV cache, re-encoding after crops, many envs per batch). The models
run in float64 here so that float rounding can never flip a near-tie: identity is then exact, not luck.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from seqrl.data.discretize import Discretizer
from seqrl.models.trajectory_transformer import TrajectoryTransformerConfig, TrajectoryTransformerModel
from seqrl.planning.beam import BeamPlanner
from seqrl.planning.config import PlannerConfig
from seqrl.planning.reference import (
    ReferencePlanner, filter_cdf, filter_topk, reference_plan, sample_tokens, window_start,
)
from seqrl.hub import TrajectoryModel

OBS, ACT, N = 3, 2, 10
D = OBS + ACT + 2
PLAN_CONFIGS = Path(__file__).resolve().parent.parent / "recipes" / "configs" / "plan"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # tiny ops: a second intra-op thread only adds synchronisation (and stalls on shared cores)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_trajectory_model(seed: int = 0, dtype=torch.float64, **overrides) -> TrajectoryModel:
    torch.manual_seed(seed)
    cfg = dict(observation_dim=OBS, action_dim=ACT, vocab_size=N, n_embd=32, n_head=4, n_layer=2)
    model = TrajectoryTransformerModel(TrajectoryTransformerConfig(**{**cfg, **overrides})).eval()
    with torch.no_grad():
        # pos_emb starts at zero and LayerNorm/biases at 1/0: perturb them so positions matter
        for name, p in model.named_parameters():
            p.add_(0.3 * torch.randn_like(p) if name == "pos_emb" else 0.05 * torch.randn_like(p))
    rng = np.random.default_rng(seed)
    data = np.concatenate([rng.normal(size=(400, OBS + ACT)), rng.normal(1.0, 0.5, size=(400, 2))], 1)
    return TrajectoryModel(model.to(dtype), Discretizer.fit(data.astype(np.float32), n_bins=N), {})


def small_config(**overrides) -> PlannerConfig:
    # window of 3 transitions (20 tokens): crops happen from the first planned transition on
    kwargs = dict(horizon=4, beam_width=6, n_expand=2, max_context_transitions=3)
    return PlannerConfig(**{**kwargs, **overrides})


def rollout(tm, config, n_steps, seed=0, n_envs=1, reset_at=None):
    """Drive a BeamPlanner over n_envs and one ReferencePlanner per env with the same fake env stream;
    return per-step (fast actions, reference actions, fast plans, reference plans)."""
    fast = BeamPlanner(tm, config, seed=seed)
    fast.reset(n_envs=n_envs)
    refs = [ReferencePlanner(tm, config, seed=seed, env_index=i) for i in range(n_envs)]
    rng = np.random.default_rng(seed + 100)
    steps = []
    for step in range(n_steps):
        obs = rng.normal(size=(n_envs, OBS)).astype(np.float32)
        fast_actions = fast.act(obs)
        ref_actions = np.stack([ref.act(o) for ref, o in zip(refs, obs)])
        steps.append((fast_actions, ref_actions, fast.plans.clone(), torch.stack([r.plan for r in refs])))
        rewards = rng.normal(size=n_envs).astype(np.float32)
        dones = np.zeros(n_envs, bool)
        if reset_at is not None and step == reset_at[0]:
            dones[reset_at[1]] = True  # this env starts a new episode: its prefix length differs from the rest
        fast.observe(rewards, dones)
        for ref, r, d in zip(refs, rewards, dones):
            ref.observe(float(r), bool(d))
        for i, ref in enumerate(refs):
            assert torch.equal(fast.context_tokens(i), ref.context)
    return steps


def assert_same(steps):
    for step, (fa, ra, fp, rp) in enumerate(steps):
        assert torch.equal(fp, rp), f"plans differ at step {step}"
        np.testing.assert_array_equal(fa, ra, err_msg=f"actions differ at step {step}")


# ----------------------------------------------------------------------------- filters and sampling


def test_filter_cdf_drops_least_likely_mass():
    # ascending: 0.10 0.20 | 0.33 0.37, cumulative 0.10 0.30 | 0.63: the two least likely hold < 0.6
    probs = torch.tensor([[0.33, 0.10, 0.37, 0.20]])
    out = filter_cdf(probs.log(), 0.6)
    assert torch.isfinite(out).all()
    assert (out[0, [1, 3]] == -1000).all()
    torch.testing.assert_close(out[0, [0, 2]], probs.log()[0, [0, 2]])
    # same row under a lower threshold keeps three tokens (only 0.10 has cumulative mass < 0.25)
    assert (filter_cdf(probs.log(), 0.25)[0] > -1000).tolist() == [True, False, True, True]


def test_filter_cdf_official_quirk_and_batch():
    # if the least likely token alone reaches the threshold, it and its ties still go (official argmax of 0s)
    probs = torch.tensor([[0.25, 0.25, 0.50], [0.05, 0.15, 0.80]])
    out = filter_cdf(probs.log(), 0.2)
    assert (out[0] > -1000).tolist() == [False, False, True]
    assert (out[1] > -1000).tolist() == [False, True, True]  # 0.05 < 0.2 <= 0.20: only 0.05 goes


def test_filter_topk_keeps_ties():
    logits = torch.tensor([[1.0, 5.0, 3.0, 5.0, 2.0]])
    assert torch.isfinite(filter_topk(logits, 2)[0]).tolist() == [False, True, False, True, False]
    assert torch.isfinite(filter_topk(logits, 3)[0]).tolist() == [False, True, True, True, False]


def test_sampling_is_torch_multinomial_and_respects_filters():
    probs = torch.rand(200, N + 1).softmax(-1)
    noise = torch.empty_like(probs).exponential_(generator=torch.Generator().manual_seed(5))
    expected = torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(5))[:, 0]
    assert torch.equal(sample_tokens(probs.log(), None, None, noise), expected)
    # filtered tokens are never drawn; k = 1 is argmax
    logits = torch.randn(200, N + 1) * 3
    allowed = filter_cdf(logits, 0.6) > -1000
    drawn = sample_tokens(logits, None, 0.6, noise)
    assert allowed.gather(1, drawn[:, None]).all()
    assert torch.equal(sample_tokens(logits, 1, None, None), logits.argmax(-1))


def test_window_start_crops_whole_transitions():
    block = 3 * D - 1  # official max_block for 3 context transitions
    assert window_start(block, D, block) == 0
    assert [window_start(block + i, D, block) for i in (1, D, D + 1)] == [D, D, 2 * D]


# ----------------------------------------------------------------------------- fast == reference


def test_greedy_fast_equals_reference_over_episode():
    tm = make_trajectory_model(0)
    config = small_config(k_act=1, cdf_act=None)
    # 7 steps: the context grows to 3 transitions and then slides; every plan crops its window
    assert_same(rollout(tm, config, n_steps=7))


@pytest.mark.parametrize("overrides", [
    {},                                             # official: cdf_act 0.6
    {"cdf_act": None, "k_act": 4},                 # walker2d-medium-replay style top-k
    {"k_obs": None, "cdf_obs": 0.5, "percentile": 0.5, "n_expand": 3},  # sampled observations too
])
def test_sampling_fast_equals_reference_same_seed(overrides):
    tm = make_trajectory_model(1)
    steps = rollout(tm, small_config(**overrides), n_steps=6, seed=3)
    assert_same(steps)
    # the noise matters: another seed plans differently at some step
    other = rollout(tm, small_config(**overrides), n_steps=6, seed=4)
    assert any(not torch.equal(a[2], b[2]) for a, b in zip(steps, other))


def test_batched_envs_equal_single_env_plans():
    tm = make_trajectory_model(2)
    # env 1 ends its episode at step 2, so later steps plan groups with different prefix lengths
    assert_same(rollout(tm, small_config(), n_steps=6, seed=7, n_envs=3, reset_at=(2, 1)))


def test_crops_inside_a_transition_and_no_context():
    # block 17 is no multiple of D minus 1: the window start moves in the middle of transitions
    tm = make_trajectory_model(3, block_size=17)
    assert_same(rollout(tm, small_config(max_context_transitions=None), n_steps=5, seed=1))
    assert_same(rollout(tm, small_config(prefix_context=False), n_steps=3, seed=1))


def test_plan_freq_reuses_plan():
    tm = make_trajectory_model(4)
    steps = rollout(tm, small_config(plan_freq=2), n_steps=5, seed=2)
    assert_same(steps)
    assert torch.equal(steps[1][2], steps[0][2])  # no new plan at step 1 ...
    plan = steps[0][2][0]  # ... it executes transition 1 of the plan made at step 0
    centres = tm.discretizer.centres[plan[1, OBS:OBS + ACT], torch.arange(OBS, OBS + ACT)].float()  # decode: float32
    np.testing.assert_array_equal(steps[1][0][0], centres.numpy())
    assert not torch.equal(steps[2][2], steps[0][2])  # step 2 plans again


# ----------------------------------------------------------------------------- scoring and actions


def constant_distributions(tm, seed=0):
    """Make every next-token distribution depend only on the token's dimension: ln_f outputs the unit
    vector e_0, so the logits of dimension d are head.weight[d - 1, :, 0]."""
    model = tm.model
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.ln_f.weight.zero_()
        model.ln_f.bias.zero_()
        model.ln_f.bias[0] = 1.0
        model.head.weight[:, :, 0] = 2.0 * torch.randn(D, N + 1, generator=g, dtype=model.head.weight.dtype)
    return model.head.weight[:, :, 0].softmax(-1)  # [D, N+1]: row d predicts dimension (d + 1) % D


def test_score_equals_hand_computation():
    tm = make_trajectory_model(5)
    probs = constant_distributions(tm)
    centres = tm.discretizer.centres.double()
    # E[r] and E[V] under the raw distribution, stop column dropped without renormalising (official)
    e_r = (probs[D - 3, :N] * centres[:, D - 2]).sum()
    e_v = (probs[D - 2, :N] * centres[:, D - 1]).sum()
    assert probs[D - 3, N] > 0.001  # the stop token has mass, so dropping it matters
    H, gamma = 3, 0.9
    expected = e_r * (1 + gamma + gamma ** 2) + gamma ** 3 * e_v
    config = small_config(horizon=H, discount=gamma)

    fast = BeamPlanner(tm, config)
    fast.reset(n_envs=1)
    fast.act(np.zeros((1, OBS), np.float32))
    torch.testing.assert_close(fast.scores[0], expected)
    _, _, score = reference_plan(tm.model, tm.discretizer, torch.zeros(0, D, dtype=torch.long),
                                 np.zeros(OBS), config, torch.Generator(), return_score=True)
    torch.testing.assert_close(score, expected)


def test_reference_score_of_returned_plan():
    # with sampled actions: the returned score is that of the returned plan, recomputed by one full pass
    tm = make_trajectory_model(6)
    config = small_config(horizon=2, beam_width=8)
    plan, _, score = reference_plan(tm.model, tm.discretizer, torch.zeros(0, D, dtype=torch.long), np.zeros(OBS),
                                    config, torch.Generator().manual_seed(0), return_score=True)
    logits = tm.model(plan.reshape(1, -1)).logits[0]  # 2 transitions fit the window: no crop
    expect = lambda pos, dim: tm.discretizer.expectation(logits[pos].softmax(-1), dim)  # noqa: E731
    r0, r1, v1 = expect(OBS + ACT - 1, D - 2), expect(D + OBS + ACT - 1, D - 2), expect(D + OBS + ACT, D - 1)
    # V_0 is overwritten by r_1 (official rewards[:, t + 1] slot)
    torch.testing.assert_close(score, r0 + config.discount * r1 + config.discount ** 2 * v1)


def test_action_is_bin_centre_of_first_action_tokens():
    tm = make_trajectory_model(7)
    fast = BeamPlanner(tm, small_config())
    fast.reset(n_envs=2)
    actions = fast.act(np.random.default_rng(0).normal(size=(2, OBS)))
    tokens = fast.plans[:, 0, OBS:OBS + ACT]
    centres = tm.discretizer.centres[tokens, torch.arange(OBS, OBS + ACT)].float()
    np.testing.assert_array_equal(actions, centres.numpy())


# ----------------------------------------------------------------------------- configs and API


def test_official_plan_configs():
    configs = {p.stem: PlannerConfig.from_yaml(p) for p in PLAN_CONFIGS.glob("*.yaml")}
    assert configs["hopper-medium-v2"] == PlannerConfig()
    hc = configs["halfcheetah-medium-v2"]
    assert (hc.horizon, hc.beam_width) == (5, 32)
    wr = configs["walker2d-medium-replay-v2"]
    assert (wr.horizon, wr.beam_width, wr.k_act, wr.cdf_act) == (20, 32, 40, None)
    assert configs["walker2d-medium-expert-v2"].horizon == 5
    ip = configs["invertedpendulum-medium"]
    assert (ip.horizon, ip.beam_width) == (5, 16)
    with pytest.raises(ValueError):
        PlannerConfig(k_rew=2)


def test_api_errors():
    tm = make_trajectory_model(0)
    planner = BeamPlanner(tm, small_config())
    with pytest.raises(RuntimeError):
        planner.act(np.zeros((1, OBS)))
    planner.reset(n_envs=2)
    with pytest.raises(RuntimeError):
        planner.observe([0.0, 0.0])
    planner.act(np.zeros((1, OBS)), env_indices=[1])
    planner.observe([1.0], [False], env_indices=[1])
    assert planner.context_tokens(1).shape == (1, D) and planner.context_tokens(0).shape == (0, D)
    recorded = torch.randint(0, N, (5, D))
    planner.set_context(0, recorded)  # keeps the last max_context_transitions = 3
    assert torch.equal(planner.context_tokens(0), recorded[-3:])
