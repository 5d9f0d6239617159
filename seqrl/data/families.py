"""D4RL-style dataset families on Gymnasium MuJoCo v5, made here: ``seqrl/<env>/<quality>-v0``.

How each quality is made (as D4RL made its gym-mujoco sets, at a CPU budget):

    random         uniform random actions in the action bounds
    medium         the "medium" SAC checkpoint (about a third of the expert's return), sampled actions
    medium-replay  the online SAC run's replay buffer up to the medium checkpoint (every transition
                   it collected, random warm-up included; the episode in progress there is cut as truncated)
    expert         the best SAC checkpoint (by deterministic evaluation), sampled actions
    medium-expert  medium + expert, concatenated

The SAC run that makes the behaviour policies is `recipes/make_datasets.py` (``seqrl train sac
--online`` with evaluation snapshots); `seqrl.training.families.export_family` picks the checkpoints and writes what a build
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqrl.data.behaviour import BehaviourPolicy
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


# ----------------------------------------------------------------------------- building


def _policy_rollout(short: str, env_id: str, which: str, n_steps: int) -> list[Episode]:
    if which == "random":
        import gymnasium as gym

        space = gym.make(env_id).action_space
        policy = UniformRandomController(space.low, space.high)
    else:
        policy = BehaviourPolicy.load(ASSETS / short / f"{which}.safetensors")
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

Load it with `seqrl.data.load_dataset("{spec.dataset_id}")` or `minari.load_dataset("{spec.dataset_id}")`.
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
