"""Value-based recipes on the shared loop: train, save, load, act, exact resume, learning checks."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import seqrl
from seqrl.data import load_dataset
from seqrl.data.collect import rollout
from seqrl.data.controllers import make_controller
from seqrl.training.run import main

ENV = "InvertedPendulum-v5"
TINY = ["--hidden_dims", "32", "32", "--batch_size", "32", "--log_every", "1", "--no-resume"]


def history(out):
    return json.loads((Path(out) / "train_history.json").read_text())


@pytest.mark.parametrize("algo", ["bc", "cql", "iql", "awac"])
def test_recipe_trains_saves_and_loads_a_policy(algo, pendulum_data, tmp_path):
    data, _ = pendulum_data
    out = tmp_path / algo
    result = main(algo, TINY + ["--dataset", data, "--output_dir", str(out), "--max_steps", "6",
                                "--eval_episodes", "2"])
    assert np.isfinite([h["loss" if "loss" in h else next(iter(h))] for h in result["history"]]).all()
    policy = seqrl.from_pretrained(str(out / "model"), algorithm=algo, env_id=ENV)
    obs = np.zeros((5, 4), np.float32)
    actions = policy.act(obs)
    assert actions.shape == (5, 1) and np.all(np.abs(actions) <= 3.0)
    assert policy.act(torch.zeros(4)).shape == (1,)
    card = (out / "model" / "README.md").read_text()
    assert algo.upper() in card and "Mean return over 2 episodes" in card


def test_value_based_resume_is_exact(pendulum_data, tmp_path):
    data, _ = pendulum_data
    base = TINY + ["--dataset", data, "--eval_episodes", "0", "--save_every", "3"]
    main("iql", base + ["--output_dir", str(tmp_path / "full"), "--max_steps", "6"])
    # a run that crashed after writing its step-3 checkpoint (IQL's cosine LR depends on max_steps,
    # so the interrupted run must have been the same 6-step run)
    main("iql", base + ["--output_dir", str(tmp_path / "part"), "--max_steps", "6"])
    checkpoints = tmp_path / "part" / "checkpoints"
    shutil.rmtree(checkpoints / "step_6")
    (checkpoints / "latest").write_text("step_3")
    main("iql", base + ["--output_dir", str(tmp_path / "part"), "--max_steps", "6", "--resume"])
    full, part = history(tmp_path / "full"), history(tmp_path / "part")
    assert [h["step"] for h in part] == [1, 2, 3, 4, 5, 6]  # nothing lost: steps 1-3 come from the checkpoint
    for a, b in zip(full, part):
        assert {k: v for k, v in a.items() if "per_s" not in k} == {k: v for k, v in b.items() if "per_s" not in k}


@pytest.mark.slow
@pytest.mark.parametrize("algo, steps", [("iql", 3000), ("cql", 3000), ("awac", 3000)])
def test_policy_beats_the_data_it_learned_from(algo, steps, pendulum_data, tmp_path):
    data, summary = pendulum_data
    result = main(algo, ["--dataset", data, "--output_dir", str(tmp_path / algo), "--max_steps", str(steps),
                         "--eval_episodes", "10", "--log_every", "500", "--no-resume"])
    assert result["eval"]["return_mean"] > summary.return_mean + 5, (result["eval"], summary.return_mean)


CONFIGS = Path(__file__).resolve().parent.parent / "recipes" / "configs"


@pytest.mark.parametrize("path", sorted(p for a in ("bc", "sac", "cql", "iql", "awac", "brac", "mopo", "combo") for p in (CONFIGS / a).glob("*.yaml")),
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_recipe_config_parses(path):
    from seqrl.config import parse_config
    from seqrl.training.run import combined_config_class

    cls, _ = combined_config_class(path.parent.name)
    cfg = parse_config(cls, ["--config", str(path)])  # unknown keys or wrong types fail here
    assert cfg.max_steps > 0 and cfg.dataset


def test_a_config_files_output_dir_belongs_to_its_dataset(tmp_path):
    """`--dataset` naming other data, without `--output_dir`, must not write into the config file's
    run (the default YAML's outputs/iql/invertedpendulum-medium held a hopper run before)."""
    from seqrl.config import output_name, parse_config
    from seqrl.training.run import combined_config_class

    cls, _ = combined_config_class("iql")
    yaml = CONFIGS / "iql" / "invertedpendulum-medium.yaml"
    own = parse_config(cls, ["--config", str(yaml)])
    assert own.output_dir == "outputs/iql/invertedpendulum-medium"
    assert parse_config(cls, ["--config", str(yaml), "--dataset", own.dataset]).output_dir == own.output_dir
    other = parse_config(cls, ["--config", str(yaml), "--dataset", "seqrl/hopper/medium-v0"])
    assert other.output_dir == ""  # the command's default for that dataset
    chosen = parse_config(cls, ["--config", str(yaml), "--dataset", "seqrl/hopper/medium-v0", "--output_dir", "mine"])
    assert chosen.output_dir == "mine"

    # default names: one per dataset id (same env and name under two namespaces stay apart)
    assert output_name("seqrl/hopper/medium-v0") == "seqrl-hopper-medium-v0"
    assert output_name("mujoco/hopper/medium-v0") == "mujoco-hopper-medium-v0"
    assert output_name("seqrl/walker2d/medium-v0") != output_name("seqrl/hopper/medium-v0")
    (tmp_path / "hopper-medium-v2.hdf5").write_bytes(b"")
    assert output_name(str(tmp_path / "hopper-medium-v2.hdf5")) == "hopper-medium-v2"
    model = tmp_path / "outputs" / "cql" / "run1" / "model"
    model.mkdir(parents=True)
    assert output_name(str(model)) == "cql-run1"  # a checkpoint: its algorithm and run
    assert output_name("user/my-policy") == "user-my-policy"  # a Hub id


def test_a_run_on_a_v5_dataset_starts_from_that_datasets_shipped_settings():
    """Without --config, `seqrl train mopo --dataset seqrl/hopper/medium-v0` takes the quality
    table's hopper-medium settings ((h, lambda) = (5, 5.0), 50,000 starts every 1,000 updates), not
    the InvertedPendulum default's rollouts sized to that data (5,000 starts every 250, lambda 1)."""
    from seqrl.config import parse_config
    from seqrl.training.run import combined_config_class, starting_yaml

    cls, _ = combined_config_class("mopo")
    default = parse_config(cls, [], default_config=lambda d: starting_yaml("mopo", False, d))
    assert (default.dataset, default.rollout_batch_size, default.penalty_coef) == ("seqrl/invertedpendulum/medium-v0", 5000, 1.0)
    for dataset in ("seqrl/hopper/medium-v0", "mujoco/hopper/medium-v0", "hf://farama-minari/mujoco/hopper/medium-v0"):
        cfg = parse_config(cls, ["--dataset", dataset], default_config=lambda d: starting_yaml("mopo", False, d))
        assert (cfg.dataset, cfg.rollout_freq, cfg.rollout_batch_size) == (dataset, 1000, 50_000)
        assert (cfg.rollout_length, cfg.penalty_coef, cfg.max_steps, cfg.output_dir) == (5, 5.0, 10_000, "")
    # a level without its own YAML: the method's v5 settings; an explicit --config wins; other data: the default
    assert Path(starting_yaml("mopo", False, "seqrl/walker2d/expert-v0")).name == "v5-short.yaml"
    assert Path(starting_yaml("iql", False, "mujoco/halfcheetah/medium-replay-v0")).name == "v5-short.yaml"
    assert Path(starting_yaml("tt", False, "seqrl/walker2d/medium-v0")).name == "v5-short.yaml"
    pinned = parse_config(cls, ["--config", str(CONFIGS / "mopo" / "invertedpendulum-medium.yaml"), "--dataset", "seqrl/hopper/medium-v0"],
                          default_config=lambda d: starting_yaml("mopo", False, d))
    assert pinned.rollout_batch_size == 5000
    for other in ("seqrl/invertedpendulum/expert-v0", "mujoco/ant/medium-v0", "hopper-medium-v2.hdf5"):
        assert Path(starting_yaml("mopo", False, other)).name == "invertedpendulum-medium.yaml"
    assert Path(starting_yaml("sac", True, "seqrl/hopper/medium-v0")).name == "online.yaml"


def test_awac_paper_yaml_equals_the_paper_preset():
    import dataclasses

    from seqrl.algos.awac import AWACConfig
    from seqrl.config import parse_config
    from seqrl.training.run import combined_config_class

    cls, _ = combined_config_class("awac")
    cfg = parse_config(cls, ["--config", str(CONFIGS / "awac" / "hopper-medium-v2-paper.yaml")])
    paper = AWACConfig.paper(max_steps=500_000)
    for f in dataclasses.fields(AWACConfig):
        if f.init and f.name != "seed":
            assert getattr(cfg, f.name) == getattr(paper, f.name), f.name


def test_minari_eval_env_spec_is_where_policies_are_evaluated(tmp_path, monkeypatch):
    """A Minari dataset whose eval_env_spec differs from its env_spec (here: another time limit) records it
    as metadata["eval_env"]; evaluation during training uses it and the checkpoint keeps it."""
    import gymnasium as gym

    import seqrl.evaluation
    from seqrl.data.collect import write_minari_dataset
    from seqrl.evaluation import evaluation_env

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    episodes = rollout(ENV, make_controller(ENV, "medium", seed=0), n_steps=600, seed=0, max_episode_steps=50)
    eval_spec = gym.envs.registration.EnvSpec(id=ENV, entry_point=gym.spec(ENV).entry_point, max_episode_steps=7)
    write_minari_dataset("seqrltest/ip/evalenv-v0", episodes, env_id=ENV, max_episode_steps=50,
                         algorithm_name="test", eval_env_spec=eval_spec)
    data = load_dataset("seqrltest/ip/evalenv-v0")
    assert data.metadata["max_episode_steps"] == 50  # the data's own time limit (token windows use it)
    assert evaluation_env(data.metadata) == {"env_id": ENV, "env_kwargs": {}, "max_episode_steps": 7, "env_module": None}
    assert evaluation_env({"env_id": ENV, "max_episode_steps": 50}) == {
        "env_id": ENV, "env_kwargs": {}, "max_episode_steps": 50, "env_module": None}

    calls = []
    real_evaluate = seqrl.evaluation.evaluate

    def recording_evaluate(policy, env_id, n_episodes, **kwargs):
        calls.append((env_id, kwargs["max_episode_steps"]))
        return real_evaluate(policy, env_id, n_episodes, **kwargs)

    monkeypatch.setattr(seqrl.evaluation, "evaluate", recording_evaluate)
    out = tmp_path / "bc"
    result = main("bc", TINY + ["--dataset", "seqrltest/ip/evalenv-v0", "--output_dir", str(out),
                                "--max_steps", "2", "--eval_episodes", "2"])
    assert calls and all(call == (ENV, 7) for call in calls)
    assert result["eval"]["return_mean"] <= 7.0  # InvertedPendulum pays 1 per step
    saved = json.loads((out / "model" / "seqrl.json").read_text())
    assert saved["eval_env"]["max_episode_steps"] == 7


def test_evaluations_and_history_survive_resume(pendulum_data, tmp_path):
    data, _ = pendulum_data
    out = tmp_path / "run"
    base = TINY + ["--dataset", data, "--eval_episodes", "1", "--eval_every", "2", "--save_every", "2",
                   "--output_dir", str(out)]
    main("bc", base + ["--max_steps", "4"])
    result = main("bc", base + ["--max_steps", "6", "--resume"])
    evaluations = json.loads((out / "eval_history.json").read_text())
    assert [e["step"] for e in evaluations] == [2, 4, 6] == [e["step"] for e in result["evaluations"]]
    assert all(e["return_mean"] > 0 for e in evaluations)
    assert [h["step"] for h in history(out)] == [1, 2, 3, 4, 5, 6]
