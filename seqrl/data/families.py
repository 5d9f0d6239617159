"""D4RL-style dataset families on Gymnasium MuJoCo v5, made here: ``seqrl/<env>/<quality>-v0``.

How each quality is made (as D4RL made its gym-mujoco sets, at a CPU budget):

    random         uniform random actions in the action bounds
    medium         the "medium" SAC checkpoint (about a third of the expert's return), sampled actions
    medium-replay  the online SAC run's replay buffer up to the medium checkpoint (every transition
                   it collected, random warm-up included; the episode in progress there is cut as truncated)
    expert         the best SAC checkpoint (by deterministic evaluation), sampled actions
    medium-expert  medium + expert, concatenated

The SAC run that makes the behaviour policies is `recipes/make_datasets.py` (``seqrl train sac
--online`` with evaluation snapshots); `export_family` picks the checkpoints and writes what a build
needs into ``seqrl/data/family_assets/<env>/``: the two actors (safetensors), the medium-replay
rows (compressed npz) and ``family.json`` (the run's budget and curve, the chosen checkpoints and
the reference scores). Building from those files is deterministic and takes minutes: episode k of a
rollout is reset with ``seed + k`` and the policy's action noise comes from a generator seeded
with the dataset's seed.

Reference scores (Minari's convention, computed once at export): ``ref_min_score`` the mean return
of the uniform random policy, ``ref_max_score`` of the expert checkpoint acting deterministically,
100 episodes each.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqrl.data.collect import Episode, episode_returns, rollout, split_episodes, write_minari_dataset
from seqrl.data.controllers import UniformRandomController

ASSETS = Path(__file__).resolve().parent / "family_assets"
QUALITIES = ("random", "medium", "medium-replay", "expert", "medium-expert")
ENVS = {"hopper": "Hopper-v5", "halfcheetah": "HalfCheetah-v5", "walker2d": "Walker2d-v5"}
MAX_EPISODE_STEPS = 1000
ROLLOUT_STEPS = 100_000  # environment steps of each random / medium / expert set
REFERENCE_EPISODES = 100
REFERENCE_SEED = 123  # Minari's get_average_reference_score starts here
NUM_ENVS = 10  # rollouts run 10 envs with batched policy calls
_SEEDS = {"random": 1_000_000, "medium": 2_000_000, "expert": 3_000_000}
_BUILDER_VERSION = 1


@dataclass(frozen=True)
class FamilyDatasetSpec:
    dataset_id: str
    short: str
    env_id: str
    quality: str


FAMILY_DATASETS = {f"seqrl/{short}/{q}-v0": FamilyDatasetSpec(f"seqrl/{short}/{q}-v0", short, env_id, q)
                   for short, env_id in ENVS.items() for q in QUALITIES}


def available() -> list[str]:
    """Family dataset ids whose behaviour policies ship with this installation."""
    return sorted(i for i, s in FAMILY_DATASETS.items() if (ASSETS / s.short / "family.json").exists())


def family_record(short: str) -> dict:
    path = ASSETS / short / "family.json"
    if not path.exists():
        raise ValueError(f"no behaviour policies for {short!r} in this installation ({path} missing); "
                         f"make them with `python recipes/make_datasets.py --env {ENVS.get(short, short)}`")
    return json.loads(path.read_text())


# ----------------------------------------------------------------------------- behaviour policies


class SampledPolicy:
    """A SAC actor acting in the env's bounds, with its own seeded noise (rollouts call
    `reset_rng(seed)`), or its deterministic mean."""

    def __init__(self, algorithm, deterministic: bool = False):
        import torch

        self.algorithm, self.deterministic = algorithm.eval(), deterministic
        self.generator = torch.Generator()

    def reset_rng(self, seed: int) -> None:
        self.generator.manual_seed(int(seed))

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        import torch

        a = self.algorithm
        with torch.no_grad():
            obs = (torch.as_tensor(np.asarray(observations, np.float32)).reshape(-1, a.obs_dim) - a.obs_mean) / a.obs_std
            if self.deterministic:
                unit = a.actor.deterministic(obs)
            else:
                unit = a.actor.sample(obs, generator=self.generator)[0]
            act = a.action_low + (unit.clamp(-1, 1) + 1.0) * 0.5 * (a.action_high - a.action_low)
        return act.numpy()


def save_actor(algorithm, path: Path) -> None:
    """The actor's weights and what rebuilds it (config, dims, bounds) in one safetensors file."""
    from safetensors.torch import save_file

    state = {f"actor.{k}": v.detach().cpu().contiguous() for k, v in algorithm.actor.state_dict().items()}
    state |= {k: getattr(algorithm, k).detach().cpu().contiguous() for k in ("action_low", "action_high", "obs_mean", "obs_std")}
    meta = {"config": json.dumps(algorithm.config.to_dict()), "observation_dim": str(algorithm.obs_dim),
            "action_dim": str(algorithm.act_dim)}
    save_file(state, str(path), metadata=meta)


def load_actor(path: Path):
    from safetensors import safe_open

    from seqrl.algos import build_algorithm, config_from_dict

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}
    algo = build_algorithm(config_from_dict(json.loads(meta["config"])), int(meta["observation_dim"]),
                           int(meta["action_dim"]), action_low=state["action_low"], action_high=state["action_high"],
                           obs_mean=state["obs_mean"], obs_std=state["obs_std"])
    algo.actor.load_state_dict({k[len("actor."):]: v for k, v in state.items() if k.startswith("actor.")})
    return algo.eval()


# ----------------------------------------------------------------------------- building


def _policy_rollout(short: str, env_id: str, which: str, n_steps: int) -> list[Episode]:
    if which == "random":
        import gymnasium as gym

        space = gym.make(env_id).action_space
        policy = UniformRandomController(space.low, space.high)
    else:
        policy = SampledPolicy(load_actor(ASSETS / short / f"{which}.safetensors"))
    return rollout(env_id, policy, n_steps=n_steps, seed=_SEEDS[which], max_episode_steps=MAX_EPISODE_STEPS,
                   num_envs=NUM_ENVS)


def pack_replay(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Replay rows without the redundant next observations: inside an episode s'_t is s_{t+1}, so
    only the episode ends' s' are kept (half the file)."""
    ends = np.flatnonzero((rows["terminals"] > 0) | (rows["truncations"] > 0) | (np.arange(len(rows["rewards"])) == len(rows["rewards"]) - 1))
    inner = np.setdiff1d(np.arange(len(rows["rewards"]) - 1), ends)
    if not np.array_equal(rows["next_observations"][inner], rows["observations"][inner + 1]):
        raise ValueError("replay rows are not consecutive inside episodes: cannot pack them")
    packed = {k: v for k, v in rows.items() if k != "next_observations"}
    return packed | {"end_rows": ends, "end_next_observations": rows["next_observations"][ends]}


def unpack_replay(packed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    rows = {k: v for k, v in packed.items() if k not in ("end_rows", "end_next_observations")}
    nxt = np.empty_like(rows["observations"])
    nxt[:-1] = rows["observations"][1:]
    nxt[packed["end_rows"]] = packed["end_next_observations"]
    return rows | {"next_observations": nxt}


def _replay_episodes(short: str) -> list[Episode]:
    with np.load(ASSETS / short / "medium_replay.npz") as z:
        arrays = unpack_replay({k: z[k] for k in z.files})
    return split_episodes(arrays)


def collect_family_episodes(dataset_id: str, n_steps: int | None = None) -> list[Episode]:
    spec = _spec(dataset_id)
    n = ROLLOUT_STEPS if n_steps is None else int(n_steps)
    if spec.quality == "medium-replay":
        return _replay_episodes(spec.short)
    if spec.quality == "medium-expert":
        return (_policy_rollout(spec.short, spec.env_id, "medium", n)
                + _policy_rollout(spec.short, spec.env_id, "expert", n))
    return _policy_rollout(spec.short, spec.env_id, spec.quality, n)


def _spec(dataset_id: str) -> FamilyDatasetSpec:
    if dataset_id not in FAMILY_DATASETS:
        raise ValueError(f"unknown family dataset {dataset_id!r}; known: {', '.join(sorted(FAMILY_DATASETS))}")
    return FAMILY_DATASETS[dataset_id]


def _description(spec: FamilyDatasetSpec, record: dict) -> str:
    run = record["run"]
    text = {
        "random": "uniform random actions",
        "medium": f"the SAC checkpoint at {record['medium']['step']:,} environment steps (deterministic "
                  f"evaluation return {record['medium']['return']:.0f}, about a third of the expert's), sampled actions",
        "expert": f"the best SAC checkpoint, at {record['expert']['step']:,} steps (deterministic evaluation "
                  f"return {record['expert']['return']:.0f}), sampled actions",
        "medium-replay": f"the online SAC run's replay buffer up to the medium checkpoint "
                         f"({record['medium']['step']:,} steps, uniform random warm-up included)",
        "medium-expert": "the medium and expert sets concatenated",
    }[spec.quality]
    return (f"D4RL-style {spec.quality} data for {spec.env_id} ({MAX_EPISODE_STEPS}-step limit), made by seqrl: "
            f"{text}. Behaviour policies from one online SAC run ({run['steps']:,} environment steps, seed "
            f"{run['seed']}, {run['command']}). Not D4RL's data and not Minari's mujoco/* sets (whose 'medium' "
            f"is a well-trained policy acting deterministically). Reference scores: random policy and expert "
            f"checkpoint (deterministic), {REFERENCE_EPISODES} episodes each.")


def build_family_dataset(dataset_id: str, *, n_steps: int | None = None):
    spec = _spec(dataset_id)
    record = family_record(spec.short)
    episodes = collect_family_episodes(dataset_id, n_steps)
    import gymnasium
    import mujoco

    dataset = write_minari_dataset(
        dataset_id, episodes, env_id=spec.env_id, max_episode_steps=MAX_EPISODE_STEPS,
        algorithm_name=f"seqrl SAC ({spec.quality})" if spec.quality != "random" else "uniform random",
        author="seqrl", code_permalink="seqrl/data/families.py", description=_description(spec, record),
        ref_min_score=record["ref_min_score"], ref_max_score=record["ref_max_score"],
        num_episodes_average_score=REFERENCE_EPISODES,
        requirements=[f"mujoco=={mujoco.__version__}", f"gymnasium=={gymnasium.__version__}"],
        extra_metadata={"seqrl_family": _build_record(spec, record, n_steps)}, overwrite=True,
    )
    from minari.storage.datasets_root_dir import get_dataset_path

    (get_dataset_path(dataset_id) / "README.md").write_text(dataset_card(spec, record, episodes))
    return dataset


def dataset_card(spec: FamilyDatasetSpec, record: dict, episodes: list[Episode]) -> str:
    """A markdown card for the dataset's folder: what it is, how it was made, its numbers."""
    returns = episode_returns(episodes)
    lengths = [len(e["actions"]) for e in episodes]
    lo, hi = record["ref_min_score"], record["ref_max_score"]
    curve = ", ".join(f"{e['step'] // 1000}k: {e['return']:.0f}" for e in record["run"]["evaluations"])
    return f"""# {spec.dataset_id}

{_description(spec, record)}

| | |
|---|---|
| environment | `{spec.env_id}`, {MAX_EPISODE_STEPS}-step limit (`eval_env_spec`: the same) |
| episodes / transitions | {len(episodes):,} / {sum(lengths):,} |
| terminated / truncated episodes | {sum(bool(e["terminations"].any()) for e in episodes):,} / {sum(bool(e["truncations"].any()) for e in episodes):,} |
| episode return | {returns.mean():.1f} ± {returns.std():.1f} (min {returns.min():.1f}, max {returns.max():.1f}) |
| normalized score of the data | {100 * (returns.mean() - lo) / (hi - lo):.1f} |
| `ref_min_score` / `ref_max_score` | {lo:.2f} / {hi:.2f} (random policy / expert deterministic, {REFERENCE_EPISODES} episodes) |
| SAC run | `{record["run"]["command"]}` |
| SAC evaluation curve (10 deterministic episodes) | {curve} |

Load it with `seqrl.data.EpisodeDataset.load("{spec.dataset_id}")` or `minari.load_dataset("{spec.dataset_id}")`.
"""


def _build_record(spec, record: dict, n_steps: int | None) -> dict:
    return {"dataset_id": spec.dataset_id, "quality": spec.quality, "n_steps": n_steps or ROLLOUT_STEPS,
            "builder_version": _BUILDER_VERSION, "assets": record["assets_version"]}


def ensure_family(dataset_id: str, *, n_steps: int | None = None, force: bool = False) -> str:
    """Build `dataset_id` into MINARI_DATASETS_PATH unless a build from the same assets and builder
    is there (with `n_steps` given: of that size too; without: of any size)."""
    spec = _spec(dataset_id)
    if not force:
        from minari.storage.datasets_root_dir import get_dataset_path

        try:
            meta = json.loads((get_dataset_path(dataset_id) / "data" / "metadata.json").read_text())
        except (OSError, ValueError):
            meta = {}
        have = meta.get("seqrl_family") or {}
        want = _build_record(spec, family_record(spec.short), n_steps)
        if n_steps is None:
            have, want = ({k: v for k, v in r.items() if k != "n_steps"} for r in (have, want))
        if have and have == want:
            return dataset_id
    build_family_dataset(dataset_id, n_steps=n_steps)
    return dataset_id


# ----------------------------------------------------------------------------- export from a SAC run


def reference_return(env_id: str, policy) -> float:
    episodes = rollout(env_id, policy, n_episodes=REFERENCE_EPISODES, seed=REFERENCE_SEED,
                       max_episode_steps=MAX_EPISODE_STEPS, num_envs=NUM_ENVS)
    return float(np.mean(episode_returns(episodes)))


def choose_checkpoints(evaluations: list[dict]) -> tuple[dict, dict]:
    """(medium, expert) among a run's evaluations: the expert is the best return; the medium is the
    first evaluation whose return comes closest to a third of the expert's (D4RL's early-stopped
    policy), taken before the expert."""
    if not evaluations:
        raise ValueError("the run has no evaluations to choose checkpoints from")
    expert = max(evaluations, key=lambda e: e["return_mean"])
    earlier = [e for e in evaluations if e["step"] < expert["step"]] or [expert]
    target = expert["return_mean"] / 3.0
    medium = min(earlier, key=lambda e: (abs(e["return_mean"] - target), e["step"]))
    return medium, expert


def export_family(run_dir, env_id: str, command: str = "") -> dict:
    """Pick the medium and expert checkpoints of an online SAC run made with --snapshot_evals and
    write the family's assets (actors, medium-replay rows, family.json with reference scores)."""
    import torch

    from seqrl.policies import load_policy
    from seqrl.training import latest_checkpoint

    run_dir = Path(run_dir)
    short = next((s for s, e in ENVS.items() if e == env_id), None)
    if short is None:
        raise ValueError(f"no dataset family for {env_id}; families: {sorted(ENVS.values())}")
    # the latest checkpoint's own logs: its evaluations and replay rows belong together, also when
    # the run was stopped early (eval_history.json is written only when a run finishes)
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise ValueError(f"{run_dir} has no checkpoint: run the SAC training first")
    logs = json.loads((checkpoint / "logs.json").read_text())
    evaluations = [e for e in logs["evaluations"] if (run_dir / "snapshots" / f"step_{e['step']}").exists()]
    medium, expert = choose_checkpoints(evaluations)
    out = ASSETS / short
    out.mkdir(parents=True, exist_ok=True)
    algos = {}
    for name, ev in (("medium", medium), ("expert", expert)):
        algos[name] = load_policy(run_dir / "snapshots" / f"step_{ev['step']}")
        save_actor(algos[name], out / f"{name}.safetensors")
    state = torch.load(checkpoint / "training_state.pt", map_location="cpu", weights_only=False)
    replay = state["source"]["replay"]
    if replay["size"] == replay["capacity"] and replay["position"] != 0:
        raise ValueError("the run's replay buffer wrapped around: medium-replay needs every transition")
    n = medium["step"]
    rows = {k: replay[k][:n].numpy() for k in ("observations", "actions", "rewards", "next_observations",
                                               "terminals", "truncations")}
    if not rows["terminals"][-1]:
        rows["truncations"][-1] = 1.0  # the episode in progress at the medium checkpoint ends there
    np.savez_compressed(out / "medium_replay.npz", **pack_replay(rows))
    t0 = time.perf_counter()
    import gymnasium as gym

    space = gym.make(env_id).action_space
    ref_min = reference_return(env_id, UniformRandomController(space.low, space.high))
    ref_max = reference_return(env_id, SampledPolicy(load_actor(out / "expert.safetensors"), deterministic=True))
    history = logs["history"]
    record = {
        "env_id": env_id, "assets_version": int(time.time()),
        "run": {"steps": history[-1]["step"] if history else None, "seed": algos["expert"].config.seed,
                "command": command or "recipes/make_datasets.py",
                "evaluations": [{"step": e["step"], "return": e["return_mean"]} for e in evaluations]},
        "medium": {"step": medium["step"], "return": medium["return_mean"]},
        "expert": {"step": expert["step"], "return": expert["return_mean"]},
        "medium_replay_transitions": int(n),
        "ref_min_score": ref_min, "ref_max_score": ref_max,
        "reference_seconds": round(time.perf_counter() - t0, 1),
    }
    (out / "family.json").write_text(json.dumps(record, indent=1))
    return record
