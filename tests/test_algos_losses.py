"""Loss values of BC / CQL / IQL / AWAC checked against plain arithmetic on tiny batches.

Networks are replaced by deterministic stand-ins (patched ``forward`` / ``sample_from``) whose
outputs the test recomputes with python floats, so each expected number is written out by hand.
"""

from __future__ import annotations

import copy
import io
import math

import numpy as np
import pytest
import torch

from seqrl.algos import (AWAC, BC, CQL, IQL, SAC, AWACConfig, BCConfig, CQLConfig, IQLConfig, SACConfig,
                         config_from_dict, soft_update)
from seqrl.algos.awac import awac_weights
from seqrl.algos.iql import expectile_loss
from seqrl.algos.sac import temperature_loss
from seqrl.models.nets import EnsembleMLP, TanhGaussianPolicy, VectorizedLinear

TOL = 1e-5
OBS, ACT = 2, 2


def close(x, expected, tol=TOL):
    x = torch.as_tensor(x, dtype=torch.float64)
    expected = torch.as_tensor(expected, dtype=torch.float64)
    assert x.shape == expected.shape, (x.shape, expected.shape)
    assert torch.allclose(x, expected, atol=tol, rtol=0), (x, expected)


def tiny_batch():
    return {
        "observations": torch.tensor([[0.5, -1.0], [1.5, 0.25], [-0.5, 2.0]]),
        "actions": torch.tensor([[0.2, -0.4], [-0.6, 0.9], [0.0, 0.3]]),
        "rewards": torch.tensor([1.0, -0.5, 2.0]),
        "next_observations": torch.tensor([[0.1, 0.2], [-1.0, 0.5], [2.0, -0.3]]),
        # row 0 terminates; row 1 is a time-limit truncation (terminal 0): it must bootstrap
        "terminals": torch.tensor([1.0, 0.0, 0.0]),
    }


def rows(t):
    return t.tolist()


# A linear stand-in critic: Q_e(s, a) = c_e + u_e . s + v_e . a, for a of shape [B, A] or [B, N, A].
def q_fn(c, u, v):
    return lambda s, a: (c + sum(ui * si for ui, si in zip(u, s))
                         + sum(vi * ai for vi, ai in zip(v, a)))


def stand_in_critic(members):
    def forward(obs, act, detach_params=False, member_dim=False):
        out = []
        for c, u, v in members:
            sq = obs @ torch.tensor(u) + c
            aq = act @ torch.tensor(v)
            out.append(aq + (sq[:, None] if aq.dim() > sq.dim() else sq))
        return torch.stack(out)
    return forward


Q1 = (0.1, (0.5, -0.2), (1.0, 0.5))
Q2 = (-0.2, (0.3, 0.1), (-0.5, 1.5))
QT1 = (0.3, (0.2, 0.4), (0.7, -0.3))
QT2 = (0.0, (-0.1, 0.6), (0.2, 0.9))
q1, q2, qt1, qt2 = (q_fn(*m) for m in (Q1, Q2, QT1, QT2))


def normal_logp(a, m, log_std):
    return sum(-0.5 * ((ai - mi) / math.exp(li)) ** 2 - li - 0.5 * math.log(2 * math.pi)
               for ai, mi, li in zip(a, m, log_std))


# ----------------------------------------------------------------------------- building blocks


def test_expectile_loss_both_signs():
    diff = torch.tensor([-2.0, 1.0, 0.5, -0.1])
    expected = (0.3 * 4.0 + 0.7 * 1.0 + 0.7 * 0.25 + 0.3 * 0.01) / 4
    close(expectile_loss(diff, 0.7), expected)


def test_temperature_loss():
    log_alpha = torch.tensor(0.3, requires_grad=True)
    log_pi = torch.tensor([-1.0, 0.5, 2.0])
    loss = temperature_loss(log_alpha, log_pi, target_entropy=-2.0)
    close(loss, -0.3 * ((-3.0) + (-1.5) + 0.0) / 3)
    loss.backward()  # entropy above target (log pi + target < 0 on average): alpha goes down
    close(log_alpha.grad, 1.5)


def test_soft_update_polyak():
    src = EnsembleMLP((2, 1), 1, [3], ensemble_size=2)
    tgt = copy.deepcopy(src)
    with torch.no_grad():
        for p in tgt.parameters():
            p.fill_(1.0)
        for p in src.parameters():
            p.fill_(3.0)
        src.layers[0].weight[0, 0, 0] = -7.0
    soft_update(tgt, src, 0.1)
    close(tgt.layers[1].bias, torch.full((2, 1, 1), 0.9 * 1.0 + 0.1 * 3.0))
    close(tgt.layers[0].weight[0, 0, 0], 0.9 * 1.0 + 0.1 * -7.0)
    close(tgt.layers[0].weight[1, 1, 2], 1.2)


def test_target_critic_follows_polyak_after_update():
    algo = IQL(IQLConfig(hidden_dims=(4,), tau=0.25), OBS, ACT)
    old_target = [p.clone() for p in algo.critic_target.parameters()]
    algo.update(tiny_batch())
    for old, tgt, src in zip(old_target, algo.critic_target.parameters(), algo.critic.parameters()):
        close(tgt, 0.75 * old + 0.25 * src)  # uses the critic after this update's step


def test_vectorized_linear_matches_per_member_matmul():
    torch.manual_seed(0)
    layer = VectorizedLinear(3, 4, 5)
    x = torch.randn(3, 6, 4)
    expected = torch.stack([x[e] @ layer.weight[e] + layer.bias[e, 0] for e in range(3)])
    close(layer(x), expected)
    # nn.Linear-like init: every member within +-1/sqrt(in)
    assert layer.weight.abs().max() <= 0.5 and layer.bias.abs().max() <= 0.5


def test_ensemble_mlp_split_first_layer_and_sample_dims():
    torch.manual_seed(0)
    net = EnsembleMLP((3, 2), 1, [8, 8], ensemble_size=2, squeeze_output=True)
    obs, act = torch.randn(4, 3), torch.randn(4, 5, 2)  # 5 actions per state

    def member(e, x):  # the e-th MLP as explicit matmuls on the concatenated input
        for i, layer in enumerate(net.layers):
            x = x @ layer.weight[e] + layer.bias[e, 0]
            x = torch.relu(x) if i < len(net.layers) - 1 else x
        return x.squeeze(-1)

    cat = torch.cat([obs[:, None].expand(4, 5, 3), act], -1)
    expected = torch.stack([member(e, cat) for e in range(2)])
    close(net(obs, act), expected)  # [E, B, N]
    close(net(obs, act[:, 0]), expected[:, :, 0])  # [E, B]
    per_member = torch.randn(2, 4, 5)  # member_dim: each member its own batch
    close(net(per_member, member_dim=True),
          torch.stack([member(e, per_member[e]) for e in range(2)]))
    linear = EnsembleMLP(3, 2, [], ensemble_size=2)  # no hidden layer: no activation either
    close(linear(obs), torch.stack([obs @ linear.layers[0].weight[e] + linear.layers[0].bias[e]
                                    for e in range(2)]))
    # detached weights: gradient reaches the input only
    a = act[:, 0].clone().requires_grad_()
    net(obs, a, detach_params=True).sum().backward()
    assert a.grad is not None and all(p.grad is None for p in net.parameters())


def test_n_samples_from_one_trunk_pass_equal_the_actor_on_repeated_states():
    """CQL's sampled actions: the actor's trunk runs once per state and draws N samples; the
    straightforward path runs it on N repeated copies of each state. Same noise, same actions,
    log-densities and gradients."""
    torch.manual_seed(0)
    pol = TanhGaussianPolicy(3, 2, [8, 8], learn_log_std_scale=True)
    obs, n = torch.randn(4, 3), 5
    once, once_logp = pol.sample(obs, n=n, generator=torch.Generator().manual_seed(1))
    repeated_obs = obs[:, None].expand(4, n, 3).reshape(4 * n, 3)
    rep, rep_logp = pol.sample(repeated_obs, generator=torch.Generator().manual_seed(1))
    close(once, rep.view(4, n, 2))
    close(once_logp, rep_logp.view(4, n))
    grads = []
    for a, logp in ((once, once_logp), (rep, rep_logp)):
        pol.zero_grad()
        (a.sum() + logp.sum()).backward(retain_graph=True)
        grads.append(torch.cat([p.grad.flatten() for p in pol.parameters()]))
    close(grads[0], grads[1])


def test_tanh_gaussian_log_prob_is_change_of_variables():
    torch.manual_seed(0)
    pol = TanhGaussianPolicy(2, 2, [8], log_std_offset=-1.0).double()
    obs = torch.randn(3, 2, dtype=torch.float64)
    mean, log_std = pol(obs)
    actions, logp = pol.sample(obs, generator=torch.Generator().manual_seed(1))
    manual = []
    for b in range(3):
        a, m, ls = rows(actions[b]), rows(mean[b]), rows(log_std[b])
        u = [math.atanh(x) for x in a]
        manual.append(normal_logp(u, m, ls) - sum(math.log(1 - x * x) for x in a))
    close(logp, manual)
    close(pol.log_prob(obs, actions), manual)
    # several samples per state keep the same density
    many, many_logp = pol.sample(obs, n=4)
    close(pol.log_prob(obs, many), many_logp)


# ----------------------------------------------------------------------------- IQL


def iql_with_stand_ins(monkeypatch, **cfg):
    algo = IQL(IQLConfig(hidden_dims=(4,), **cfg), OBS, ACT)
    monkeypatch.setattr(algo.critic, "forward", stand_in_critic([Q1, Q2]))
    monkeypatch.setattr(algo.critic_target, "forward", stand_in_critic([QT1, QT2]))
    monkeypatch.setattr(algo.value, "forward", lambda s: 2.0 * s[:, 0] + s[:, 1] - 0.5)
    mean = torch.tensor([[0.1, -0.2], [0.3, 0.4], [-0.5, 0.0]])
    log_std = torch.tensor([-0.5, 0.2])
    monkeypatch.setattr(algo.actor, "forward", lambda s: (mean, log_std))
    return algo, rows(mean), rows(log_std)


def test_iql_targets_value_and_actor(monkeypatch):
    algo, mean, log_std = iql_with_stand_ins(monkeypatch)
    batch = tiny_batch()
    _, aux = algo.loss(batch)
    S, A, R = rows(batch["observations"]), rows(batch["actions"]), rows(batch["rewards"])
    S2, D = rows(batch["next_observations"]), rows(batch["terminals"])
    V = lambda s: 2.0 * s[0] + s[1] - 0.5  # noqa: E731

    # Q target: terminal row uses the reward only, truncated rows bootstrap from V(s')
    td = [R[0], R[1] + 0.99 * V(S2[1]), R[2] + 0.99 * V(S2[2])]
    assert D == [1.0, 0.0, 0.0]
    close(aux["td_target"], td)
    close(aux["critic_loss"],
          sum((q(S[b], A[b]) - td[b]) ** 2 for q in (q1, q2) for b in range(3)) / 6)

    # value: expectile 0.7 regression of V(s) onto min of the TARGET critics
    adv = [min(qt1(S[b], A[b]), qt2(S[b], A[b])) - V(S[b]) for b in range(3)]
    close(aux["adv"], adv)
    close(aux["value_loss"], sum((0.7 if d >= 0 else 0.3) * d * d for d in adv) / 3)

    # actor: exp(3 * adv) (clip 100) times the Gaussian NLL of the data action
    w = [min(math.exp(3.0 * d), 100.0) for d in adv]
    close(aux["weights"], w)
    nll = [-normal_logp(A[b], mean[b], log_std) for b in range(3)]
    close(aux["actor_loss"], sum(wi * li for wi, li in zip(w, nll)) / 3)


def test_iql_weight_clip_at_100(monkeypatch):
    algo, mean, log_std = iql_with_stand_ins(monkeypatch, beta=3.0)
    batch = tiny_batch()
    # V(s) = Q_target - adv with adv = [2.0, -1.0, 0.1]: exp(6) = 403 is clipped to 100
    S, A = rows(batch["observations"]), rows(batch["actions"])
    qmin = [min(qt1(S[b], A[b]), qt2(S[b], A[b])) for b in range(3)]
    v = torch.tensor([qmin[0] - 2.0, qmin[1] + 1.0, qmin[2] - 0.1])
    monkeypatch.setattr(algo.value, "forward", lambda s: v if s is batch["observations"] else v * 0)
    _, aux = algo.loss(batch)
    close(aux["weights"], [100.0, math.exp(-3.0), math.exp(0.3)])


def test_iql_deterministic_actor_mse(monkeypatch):
    algo = IQL(IQLConfig(hidden_dims=(4,), deterministic_actor=True), OBS, ACT)
    monkeypatch.setattr(algo.critic_target, "forward", stand_in_critic([QT1, QT2]))
    monkeypatch.setattr(algo.value, "forward", lambda s: s[:, 0] * 0.0)
    pred = torch.tensor([[0.0, 0.0], [-0.5, 1.0], [0.5, 0.5]])
    monkeypatch.setattr(algo.actor, "forward", lambda s: pred)
    batch = tiny_batch()
    _, aux = algo.loss(batch)
    S, A = rows(batch["observations"]), rows(batch["actions"])
    w = [min(math.exp(3.0 * min(qt1(S[b], A[b]), qt2(S[b], A[b]))), 100.0) for b in range(3)]
    se = [sum((p - a) ** 2 for p, a in zip(rows(pred)[b], A[b])) for b in range(3)]
    close(aux["actor_loss"], sum(x * y for x, y in zip(w, se)) / 3)


# ----------------------------------------------------------------------------- CQL

N = 2
UNIF = torch.tensor([[[0.5, -0.5], [-0.9, 0.1]], [[0.0, 0.8], [0.3, -0.2]],
                     [[-0.4, -0.4], [0.6, 0.6]]])


def stand_in_sample(mean, log_std, n=None, generator=None):
    """k-th 'sample' = tanh(mean + 0.3 k - 0.2), log-prob = -1 - 0.25 k + 0.1 * sum(mean)."""
    k = torch.arange(n, dtype=mean.dtype)[None, :, None]
    acts = torch.tanh(mean[:, None, :] + 0.3 * k - 0.2)
    return acts, -1.0 - 0.25 * k[..., 0] + 0.1 * mean.sum(-1, keepdim=True)


def py_sample(m, k):
    return [math.tanh(x + 0.3 * k - 0.2) for x in m], -1.0 - 0.25 * k + 0.1 * sum(m)


def cql_with_stand_ins(monkeypatch, **cfg):
    config = CQLConfig(hidden_dims=(4,), cql_n_actions=N, **cfg)
    algo = CQL(config, OBS, ACT)
    monkeypatch.setattr(algo.critic, "forward", stand_in_critic([Q1, Q2]))
    monkeypatch.setattr(algo.critic_target, "forward", stand_in_critic([QT1, QT2]))
    # mean(s) = 0.5 * s, so the stand-in samples depend on the state they are drawn at
    monkeypatch.setattr(algo.actor, "forward", lambda s: (0.5 * s, torch.zeros_like(s)))
    monkeypatch.setattr(algo.actor, "sample_from", stand_in_sample)
    monkeypatch.setattr(algo, "_uniform_actions", lambda b, n, like: UNIF)
    return algo


@pytest.mark.parametrize("importance_sample", [True, False])
def test_cql_conservative_term(monkeypatch, importance_sample):
    temp, weight = 2.0, 5.0
    algo = cql_with_stand_ins(monkeypatch, cql_temp=temp, cql_alpha=weight,
                              cql_importance_sample=importance_sample)
    with torch.no_grad():
        algo.temperature.log_alpha.fill_(0.3)
    batch = tiny_batch()
    _, aux = algo.loss(batch)
    S, A, R = rows(batch["observations"]), rows(batch["actions"]), rows(batch["rewards"])
    S2, D = rows(batch["next_observations"]), rows(batch["terminals"])
    half = lambda s: [0.5 * x for x in s]  # noqa: E731
    log_unif = ACT * math.log(0.5)

    # deterministic backup: next samples 0..N-1 feed the CQL term, sample N is the target action
    td = []
    for b in range(3):
        a_next, _ = py_sample(half(S2[b]), N)
        td.append(R[b] + 0.99 * (1 - D[b]) * min(qt1(S2[b], a_next), qt2(S2[b], a_next)))
    close(aux["td_target"], td)

    diffs, mse = [], []
    for q in (q1, q2):
        per_state = []
        for b in range(3):
            terms = []
            for j in range(N):  # uniform, pi(s') evaluated at Q(s, .), pi(s) (samples 1..N)
                a_next, lp_next = py_sample(half(S2[b]), j)
                a_cur, lp_cur = py_sample(half(S[b]), j + 1)
                terms += [(q(S[b], rows(UNIF[b, j])), log_unif), (q(S[b], a_next), lp_next),
                          (q(S[b], a_cur), lp_cur)]
            if importance_sample:
                xs = [qv - lp for qv, lp in terms]
            else:  # plain logsumexp over the 3N sampled Q values and Q(s, a_data)
                xs = [qv for qv, _ in terms] + [q(S[b], A[b])]
            lse = temp * math.log(sum(math.exp(x / temp) for x in xs))
            per_state.append(lse - q(S[b], A[b]))
        diffs.append(sum(per_state) / 3)
        mse.append(sum((q(S[b], A[b]) - td[b]) ** 2 for b in range(3)) / 3)
    close(aux["cql_diff"], diffs)
    close(aux["cql_loss"], weight * (diffs[0] + diffs[1]))
    close(aux["critic_loss"], mse[0] + mse[1])

    # SAC actor and temperature on sample 0 at s
    alpha = math.exp(0.3)
    pi0 = [py_sample(half(S[b]), 0) for b in range(3)]
    close(aux["alpha"], alpha)
    close(aux["actor_loss"],
          sum(alpha * lp - min(q1(S[b], a), q2(S[b], a)) for b, (a, lp) in enumerate(pi0)) / 3)
    close(aux["alpha_loss"], -sum(0.3 * (lp - ACT) for _, lp in pi0) / 3)


def test_cql_lagrange_and_bc_warm_start(monkeypatch):
    gap = 0.5
    algo = cql_with_stand_ins(monkeypatch, cql_lagrange=True, cql_target_action_gap=gap,
                              cql_alpha=10.0, bc_steps=1)
    log_prob = torch.tensor([-0.7, 0.2, -1.1])
    monkeypatch.setattr(algo.actor, "log_prob_from", lambda m, ls, a: log_prob)
    _, aux = algo.loss(tiny_batch())
    diff = rows(aux["cql_diff"])
    alpha_prime = math.exp(1.0)  # CORL's initial log alpha' = 1
    close(aux["alpha_prime"], alpha_prime)
    close(aux["cql_loss"], sum(alpha_prime * 10.0 * (d - gap) for d in diff))
    close(aux["alpha_prime_loss"], -0.5 * sum(alpha_prime * 10.0 * (d - gap) for d in diff))
    # first update with bc_steps=1: actor maximises log pi(a_data | s) instead of Q
    S = rows(tiny_batch()["observations"])
    lp0 = [py_sample([0.5 * x for x in S[b]], 0)[1] for b in range(3)]
    close(aux["actor_loss"], sum(lp - lb for lp, lb in zip(lp0, rows(log_prob))) / 3)


def test_cql_max_target_backup(monkeypatch):
    algo = cql_with_stand_ins(monkeypatch, cql_max_target_backup=True, backup_entropy=True)
    batch = tiny_batch()
    _, aux = algo.loss(batch)
    R, S2, D = rows(batch["rewards"]), rows(batch["next_observations"]), rows(batch["terminals"])
    td = []
    for b in range(3):  # samples N..2N-1 at s': max over samples of the min over critics
        cands = []
        for k in range(N, 2 * N):
            a, lp = py_sample([0.5 * x for x in S2[b]], k)
            cands.append((min(qt1(S2[b], a), qt2(S2[b], a)), lp))
        qmax, lp = max(cands)
        td.append(R[b] + 0.99 * (1 - D[b]) * (qmax - 1.0 * lp))  # alpha = 1, soft backup
    close(aux["td_target"], td)


# ----------------------------------------------------------------------------- AWAC


@pytest.mark.parametrize("normalize", [False, True])
def test_awac_weights_and_clip(monkeypatch, normalize):
    lam = 1.0 / 3.0
    config = AWACConfig(hidden_dims=(4,), awac_lambda=lam, normalize_weights=normalize)
    algo = AWAC(config, OBS, ACT)
    monkeypatch.setattr(algo.critic, "forward", stand_in_critic([Q1, Q2]))
    pi = torch.tensor([[-1.0, -1.0], [0.0, 0.5], [-1.0, -1.0]])
    monkeypatch.setattr(algo.actor, "sample_from", lambda m, ls, n=None, generator=None: (pi, None))
    batch = tiny_batch()
    mean = torch.tensor([[0.1, -0.2], [0.3, 0.4], [-0.5, 0.0]])
    log_std = torch.tensor([-0.5, 0.2])
    loss, aux = algo.actor_loss(batch, mean, log_std)
    S, A = rows(batch["observations"]), rows(batch["actions"])
    qmin = lambda s, a: min(q1(s, a), q2(s, a))  # noqa: E731
    adv = [qmin(S[b], A[b]) - qmin(S[b], rows(pi)[b]) for b in range(3)]
    close(aux["adv"], adv)
    if normalize:
        z = sum(math.exp(x / lam) for x in adv)
        w = [3 * math.exp(x / lam) / z for x in adv]
    else:
        w = [min(math.exp(x / lam), 100.0) for x in adv]
        assert max(math.exp(x / lam) for x in adv) > 100.0  # the clip is exercised
    close(aux["weights"], w)
    logp = [normal_logp(A[b], rows(mean)[b], rows(log_std)) for b in range(3)]
    close(loss, -sum(x * y for x, y in zip(logp, w)) / 3)
    close(awac_weights(torch.tensor([0.0, 3.0]), 0.5, 100.0, False), [1.0, 100.0])


def test_awac_critic_target(monkeypatch):
    algo = AWAC(AWACConfig(hidden_dims=(4,)), OBS, ACT)
    monkeypatch.setattr(algo.critic, "forward", stand_in_critic([Q1, Q2]))
    monkeypatch.setattr(algo.critic_target, "forward", stand_in_critic([QT1, QT2]))
    nxt = torch.tensor([[0.3, -0.3], [1.0, 1.0], [-0.2, 0.0]])
    monkeypatch.setattr(algo.actor, "sample", lambda s, n=None, generator=None: (nxt, None))
    batch = tiny_batch()
    loss, aux = algo.critic_loss(batch)
    S, A, R = rows(batch["observations"]), rows(batch["actions"]), rows(batch["rewards"])
    S2, D = rows(batch["next_observations"]), rows(batch["terminals"])
    td = [R[b] + 0.99 * (1 - D[b]) * min(qt1(S2[b], rows(nxt)[b]), qt2(S2[b], rows(nxt)[b]))
          for b in range(3)]
    close(aux["td_target"], td)
    close(loss, sum((q(S[b], A[b]) - td[b]) ** 2 for q in (q1, q2) for b in range(3)) / 3)


# ----------------------------------------------------------------------------- BC


def test_bc_losses(monkeypatch):
    batch = tiny_batch()
    A = rows(batch["actions"])
    algo = BC(BCConfig(hidden_dims=(4,)), OBS, ACT)
    pred = torch.tensor([[0.0, 0.0], [-0.5, 1.0], [0.5, 0.5]])
    monkeypatch.setattr(algo.actor, "forward", lambda s: pred)
    close(algo.loss(batch), sum((p - a) ** 2 for pr, ar in zip(rows(pred), A)
                                for p, a in zip(pr, ar)) / 6)
    algo = BC(BCConfig(hidden_dims=(4,), policy="gaussian"), OBS, ACT)
    log_std = torch.tensor([-0.5, 0.2])
    monkeypatch.setattr(algo.actor, "forward", lambda s: (pred, log_std))
    nll = [-normal_logp(A[b], rows(pred)[b], rows(log_std)) for b in range(3)]
    close(algo.loss(batch), sum(nll) / 3)


# ----------------------------------------------------------------------------- smoke + resume

SMALL = dict(hidden_dims=(16, 16), batch_size=8)
CASES = {
    "bc": lambda: BC(BCConfig(**SMALL), 3, 2),
    "bc_gaussian": lambda: BC(BCConfig(**SMALL, policy="gaussian"), 3, 2),
    "cql": lambda: CQL(CQLConfig(**SMALL, cql_n_actions=3), 3, 2),
    "cql_variants": lambda: CQL(CQLConfig(**SMALL, cql_n_actions=3, cql_lagrange=True, bc_steps=10,
                                          cql_max_target_backup=True, backup_entropy=True), 3, 2),
    "iql": lambda: IQL(IQLConfig(**SMALL, max_steps=30), 3, 2),
    "iql_deterministic": lambda: IQL(IQLConfig(**SMALL, deterministic_actor=True), 3, 2),
    "awac": lambda: AWAC(AWACConfig(**SMALL), 3, 2),
    "awac_paper": lambda: AWAC(AWACConfig.paper(**SMALL), 3, 2),
}


def random_batch(g, B=8):
    return {
        "observations": torch.randn(B, 3, generator=g),
        "actions": torch.rand(B, 2, generator=g) * 2 - 1,
        "rewards": torch.randn(B, generator=g),
        "next_observations": torch.randn(B, 3, generator=g),
        "terminals": (torch.rand(B, generator=g) < 0.2).float(),
    }


@pytest.mark.parametrize("name", list(CASES))
def test_smoke_update_and_exact_resume(name):
    torch.manual_seed(0)
    algo = CASES[name]()
    g = torch.Generator().manual_seed(0)
    before = {k: v.clone() for k, v in algo.state_dict().items()}
    for _ in range(20):
        metrics = algo.update(random_batch(g))
    assert metrics and all(v.dim() == 0 and torch.isfinite(v) and not v.requires_grad
                           for v in metrics.values())
    after = algo.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any("actor" in k for k in changed)
    if hasattr(algo, "critic"):
        assert any(k.startswith("critic.") for k in changed)
        assert any(k.startswith("critic_target.") for k in changed)

    # save -> load into a fresh instance (different init) -> same batch -> identical update
    buf = io.BytesIO()
    torch.save(algo.training_state(), buf)
    buf.seek(0)
    torch.manual_seed(123)
    fresh = CASES[name]()
    fresh.load_training_state(torch.load(buf, weights_only=True))
    batch = random_batch(g)
    m1, m2 = algo.update(batch), fresh.update(batch)
    assert m1.keys() == m2.keys()
    for k in m1:
        assert torch.equal(m1[k], m2[k]), k
    for (k, a), b in zip(algo.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), k
    assert config_from_dict(algo.config.to_dict()) == algo.config


@pytest.mark.parametrize("name", ["bc", "cql", "iql", "awac"])
def test_act_numpy_and_torch_within_bounds(name):
    torch.manual_seed(0)
    proto = CASES[name]()
    algo = type(proto)(proto.config, 3, 2, action_low=[-2.0, 0.0], action_high=[2.0, 1.0],
                       obs_mean=[1.0, 0.0, -1.0], obs_std=[2.0, 1.0, 0.5])
    low, high = np.array([-2.0, 0.0]), np.array([2.0, 1.0])
    one = algo.act(np.array([0.3, -0.2, 5.0]))
    assert isinstance(one, np.ndarray) and one.shape == (2,)
    many = algo.act(np.random.default_rng(0).normal(size=(5, 3)) * 10, deterministic=False)
    assert many.shape == (5, 2)
    for a in (one, many):
        assert np.all(a >= low) and np.all(a <= high)
    t = algo.act(torch.randn(4, 3))
    assert torch.is_tensor(t) and t.shape == (4, 2)


def test_act_rescales_and_normalises(monkeypatch):
    algo = BC(BCConfig(**SMALL), 3, 2, action_low=[-2.0, 0.0], action_high=[2.0, 1.0],
              obs_mean=[1.0, 0.0, -1.0], obs_std=[2.0, 1.0, 0.5])
    seen = {}

    def fake_act(obs, deterministic):
        seen["obs"] = obs
        return torch.tensor([[-1.0, 0.5]])
    monkeypatch.setattr(algo, "_act", fake_act)
    a = algo.act(np.array([3.0, 1.0, 0.0]))
    close(seen["obs"], [[(3.0 - 1.0) / 2.0, 1.0, (0.0 + 1.0) / 0.5]])
    close(a, [-2.0, 0.75])


# ----------------------------------------------------------------------------- SAC


def sac_with_stand_ins(monkeypatch, **cfg):
    algo = SAC(SACConfig(hidden_dims=(4,), **cfg), OBS, ACT)
    monkeypatch.setattr(algo.critic, "forward", stand_in_critic([Q1, Q2]))
    monkeypatch.setattr(algo.critic_target, "forward", stand_in_critic([QT1, QT2]))
    monkeypatch.setattr(algo.actor, "forward", lambda s: (0.5 * s, torch.zeros_like(s)))
    monkeypatch.setattr(algo.actor, "sample_from", stand_in_sample)
    return algo


@pytest.mark.parametrize("backup_entropy", [True, False])
def test_sac_losses_by_hand(monkeypatch, backup_entropy):
    algo = sac_with_stand_ins(monkeypatch, backup_entropy=backup_entropy)
    with torch.no_grad():
        algo.temperature.log_alpha.fill_(-0.4)
    batch = tiny_batch()
    total, aux = algo.loss(batch)
    S, A, R = rows(batch["observations"]), rows(batch["actions"]), rows(batch["rewards"])
    S2, D = rows(batch["next_observations"]), rows(batch["terminals"])
    half = lambda s: [0.5 * x for x in s]  # noqa: E731
    alpha = math.exp(-0.4)
    td = []
    for b in range(3):  # one sample at s' (k = 0); row 0 terminates, row 1 (truncated) bootstraps
        a2, lp2 = py_sample(half(S2[b]), 0)
        soft = min(qt1(S2[b], a2), qt2(S2[b], a2)) - (alpha * lp2 if backup_entropy else 0.0)
        td.append(R[b] + 0.99 * (1 - D[b]) * soft)
    close(aux["td_target"], td)
    close(aux["critic_loss"], sum(sum((q(S[b], A[b]) - td[b]) ** 2 for b in range(3)) / 3 for q in (q1, q2)))
    pi = [py_sample(half(S[b]), 0) for b in range(3)]
    close(aux["actor_loss"], sum(alpha * lp - min(q1(S[b], a), q2(S[b], a)) for b, (a, lp) in enumerate(pi)) / 3)
    close(aux["alpha_loss"], -sum(-0.4 * (lp - ACT) for _, lp in pi) / 3)
    close(total, aux["actor_loss"] + aux["critic_loss"] + aux["alpha_loss"])


def test_sac_fixed_temperature_has_no_alpha_term():
    algo = SAC(SACConfig(hidden_dims=(8,), use_automatic_entropy_tuning=False, initial_alpha=0.2), OBS, ACT)
    _, aux = algo.loss(tiny_batch())
    close(aux["alpha"], 0.2)
    close(aux["alpha_loss"], 0.0)
    assert not any(p is algo.temperature.log_alpha for p in algo.parameters())


def test_cql_is_sac_plus_penalty(monkeypatch):
    """CQL reuses SAC's update: same actor and temperature terms on the same draws, and its own
    code only adds critic terms (no copy of the update or of SAC's losses)."""
    assert issubclass(CQL, SAC)
    for name in ("loss", "loss_terms", "update"):
        assert name not in vars(CQL), name
    cql = cql_with_stand_ins(monkeypatch, backup_entropy=True)
    sac = sac_with_stand_ins(monkeypatch, backup_entropy=True)
    terms_cql, a_cql = cql.loss_terms(tiny_batch())
    terms_sac, a_sac = sac.loss_terms(tiny_batch())
    for key in ("actor_loss", "alpha_loss"):
        close(terms_cql[key], terms_sac[key])
    assert set(terms_cql) - set(terms_sac) == {"cql_loss", "alpha_prime_loss"}
