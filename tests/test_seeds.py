"""Several seeds in one process: each stacked seed's losses and weights equal a separate run with
that seed, per algorithm; `--seeds` end to end (one checkpoint per seed, equal to `--seed K`),
exact resume, and bad input refused up front."""

import dataclasses
import json

import pytest
import torch

from seqrl.algos import AWACConfig, BCConfig, BRACConfig, CQLConfig, IQLConfig, SACConfig, build_algorithm
from seqrl.algos.stacked import SeedStack
from seqrl.hub import load_policy as load_pretrained
from seqrl.training.run import main as train
from seqrl.training.seeds import mean_and_stderr, parse_seeds

OBS, ACT, B = 3, 2, 16
SMALL = dict(hidden_dims=(16, 16), batch_size=B)
CONFIGS = {
    "bc": BCConfig(hidden_dims=(16,), batch_size=B),
    "bc-gaussian": BCConfig(hidden_dims=(16,), batch_size=B, policy="gaussian"),
    "iql": IQLConfig(**SMALL, max_steps=10),  # cosine actor schedule on
    "awac": AWACConfig(**SMALL),
    "sac": SACConfig(**SMALL),
    "cql": CQLConfig(**SMALL, cql_n_actions=3, bc_steps=2),
    "cql-lagrange": CQLConfig(**SMALL, cql_n_actions=3, cql_lagrange=True, cql_target_action_gap=1.0),
    "calql": CQLConfig(**SMALL, cql_n_actions=3, calql=True),
    "brac-v-dual": BRACConfig(**SMALL, behaviour_steps=2, brac_variant="v", kl_dual=True),
}


def random_batch(generator: torch.Generator, mc: bool) -> dict:
    f = lambda *shape: torch.randn(*shape, generator=generator)  # noqa: E731
    batch = dict(observations=f(B, OBS), actions=f(B, ACT).tanh(), rewards=f(B), next_observations=f(B, OBS),
                 terminals=(f(B) > 1.0).float())
    return batch | ({"mc_returns": f(B)} if mc else {})


@pytest.mark.parametrize("name", list(CONFIGS))
def test_each_stacked_seed_equals_its_own_run(name):
    config, seeds = CONFIGS[name], [3, 0, 7]

    def build(seed):
        torch.manual_seed(seed)
        return build_algorithm(dataclasses.replace(config, seed=seed), OBS, ACT)

    singles = [build(s) for s in seeds]
    stack = SeedStack(build, seeds)
    data = [torch.Generator().manual_seed(100 + s) for s in seeds]
    for _ in range(5):  # covers the BC / behaviour warm-up phases and the switch after them
        batches = [random_batch(g, mc=config.algorithm == "cql" and config.calql) for g in data]
        own = [algo.update(b) for algo, b in zip(singles, batches)]
        stacked = stack.update({k: torch.stack([b[k] for b in batches]) for k in batches[0]})
        assert set(stacked) == set(own[0])
        for key in own[0]:  # each seed's losses of this update; batch means of diagnostics (q, adv) over seeds
            per_seed = torch.stack([m[key] for m in own])
            expected = per_seed if stacked[key].dim() else per_seed.mean()
            torch.testing.assert_close(stacked[key], expected, rtol=1e-5, atol=1e-6)
        assert stacked[next(k for k in own[0] if k.endswith("loss"))].shape == (len(seeds),)
    members = stack.sync_members()
    for single, member in zip(singles, members):
        for (n, p), q in zip(single.state_dict().items(), member.state_dict().values()):
            torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6, msg=n)
    # the seeds really differ (own initial weights, batches and noise)
    a, b = (next(iter(m.actor.parameters())) for m in members[:2])
    assert not torch.allclose(a, b)


def test_a_noise_plan_mismatch_is_refused():
    def build(seed):
        torch.manual_seed(seed)
        return build_algorithm(dataclasses.replace(CONFIGS["sac"], seed=seed), OBS, ACT)

    stack = SeedStack(build, [0, 1])
    g = torch.Generator().manual_seed(0)
    stacked = lambda n: {k: torch.stack([v, v]) for k, v in random_batch(g, False).items()}  # noqa: E731
    stack.update(stacked(B))
    stack._plans = {k: plan[:-1] for k, plan in stack._plans.items()}  # pretend the loss drew less last time
    with pytest.raises(RuntimeError, match="noise request"):
        stack.update(stacked(B))


def test_parse_seeds_and_the_standard_error():
    assert parse_seeds("0,1,2") == [0, 1, 2] and parse_seeds("2-4") == [2, 3, 4] and parse_seeds("5, 1") == [5, 1]
    mean, se = mean_and_stderr([1.0, 2.0, 3.0, 6.0])
    assert mean == 3.0 and abs(se - (14 / 3) ** 0.5 / 2) < 1e-12
    assert mean_and_stderr([4.0]) == (4.0, 0.0)


# the cosine actor schedule spans max_steps: off, so a run to 10 and one to 20 agree up to 10
TINY = ["--hidden_dims", "16", "16", "--batch_size", "16", "--log_every", "5", "--threads", "1", "--eval_episodes", "0",
        "--no-cosine_lr_decay"]


def test_seeds_from_the_command_line_equal_separate_runs_and_resume_exactly(pendulum_data, tmp_path):
    data = pendulum_data[0]
    both = tmp_path / "both"
    train("iql", TINY + ["--dataset", data, "--seeds", "0,1", "--max_steps", "20", "--output_dir", str(both)])
    train("iql", TINY + ["--dataset", data, "--seed", "1", "--max_steps", "20", "--output_dir", str(tmp_path / "one")])
    alone = load_pretrained(tmp_path / "one" / "model")
    stacked = load_pretrained(both / "seed_1" / "model")
    assert stacked.metadata["training"]["seed"] == 1 and stacked.metadata["training"]["seeds"] == [0, 1]
    for (name, p), q in zip(alone.state_dict().items(), stacked.state_dict().values()):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6, msg=name)
    summary = json.loads((both / "seeds.json").read_text())
    assert summary["seeds"] == [0, 1] and set(summary["models"]) == {"0", "1"}

    # interrupted at 10 and resumed to 20: the same weights as the uninterrupted stack
    part = tmp_path / "part"
    train("iql", TINY + ["--dataset", data, "--seeds", "0,1", "--max_steps", "10", "--save_every", "10",
                         "--output_dir", str(part)])
    train("iql", TINY + ["--dataset", data, "--seeds", "0,1", "--max_steps", "20", "--output_dir", str(part), "--resume"])
    for seed in (0, 1):
        resumed, straight = load_pretrained(part / f"seed_{seed}" / "model"), load_pretrained(both / f"seed_{seed}" / "model")
        for (name, p), q in zip(straight.state_dict().items(), resumed.state_dict().values()):
            torch.testing.assert_close(q, p, rtol=0, atol=0, msg=name)
    with pytest.raises(SystemExit, match="seeds"):  # another set of seeds is another run
        train("iql", TINY + ["--dataset", data, "--seeds", "0,2", "--max_steps", "30", "--output_dir", str(part), "--resume"])


def test_evaluation_reports_the_spread_over_seeds(pendulum_data, tmp_path):
    result = train("bc", ["--hidden_dims", "16", "--batch_size", "16", "--threads", "1", "--dataset", pendulum_data[0],
                          "--seeds", "0,1,2", "--max_steps", "5", "--eval_episodes", "1", "--output_dir", str(tmp_path)])
    e = result["eval"]
    returns = [e[f"seed_{s}/return_mean"] for s in (0, 1, 2)]
    mean, se = mean_and_stderr(returns)
    assert e["return_mean"] == pytest.approx(mean) and e["return_stderr"] == pytest.approx(se)
    assert "normalized_score" in e and "normalized_stderr" in e
    for seed, r in zip((0, 1, 2), returns):
        assert load_pretrained(tmp_path / f"seed_{seed}" / "model").metadata["evaluation"]["return_mean"] == r


@pytest.mark.parametrize("args, message", [
    (["iql", "--seeds", "a,b"], "give integers"),
    (["iql", "--seeds", "1,1"], "distinct"),
    (["mopo", "--seeds", "0,1"], "one seed per process"),
    (["sac", "--online", "--seeds", "0,1"], "offline"),
])
def test_bad_seeds_are_one_line(args, message, tmp_path):
    with pytest.raises(SystemExit) as err:
        train(args[0], args[1:] + ["--output_dir", str(tmp_path), "--max_steps", "2", "--threads", "1"])
    assert message in str(err.value) and "\n" not in str(err.value)
