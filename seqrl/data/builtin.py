"""Built-in datasets, generated here offline and deterministically, as real Minari datasets.

Ids follow Minari's ``namespace/name-vN`` scheme::

    seqrl/invertedpendulum/{random,medium,expert,mixed}-v0   InvertedPendulum-v5, 200-step limit
    seqrl/pendulum/{random,medium,expert,mixed}-v0           Pendulum-v1 (its own 200-step limit)

Behaviour policies are the scripted controllers of :mod:`seqrl.data.controllers`. InvertedPendulum
uses ``max_episode_steps=200`` instead of the registered 1000 so that planning and evaluation fit
CPU budgets; the env spec stored in each dataset records the limit, so
``dataset.recover_environment()`` gives back exactly the environment the data came from.
InvertedPendulum episodes end by termination when the pole falls (|angle| > 0.2) or by truncation
at 200 steps; Pendulum never terminates and every episode is truncated at 200 steps.

``mixed`` imitates a learning agent's replay buffer: equal shares of transitions (by steps)
collected with the expert while replacing a decreasing fraction of its actions, epsilon in
(1.0, 0.75, 0.5, 0.25, 0.0), by uniformly random ones.

Reference scores (``ref_min_score``: mean return of the random controller; ``ref_max_score``: of
the expert controller; 100 episodes each, reset seeds ``REFERENCE_SEED + k``, disjoint from the
datasets' seeds) are computed at build time (a few seconds, once per process and environment)
and stored in every dataset of the environment, so ``minari.get_normalized_score`` works.

Datasets live in Minari's datasets root (``MINARI_DATASETS_PATH``, default
``~/.minari/datasets``). Building is deterministic: the same id, ``n_steps`` and seed give
identical arrays.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, dataclass

import numpy as np

from seqrl.data.collect import Episode, episode_returns, rollout, write_minari_dataset
from seqrl.data.controllers import NOISE_LEVELS, make_controller, make_noisy_expert

__all__ = [
    "BuiltinDatasetSpec",
    "BUILTIN_DATASETS",
    "MIXED_EPSILONS",
    "REFERENCE_EPISODES",
    "REFERENCE_SEED",
    "REFERENCE_NUM_ENVS",
    "list_builtin",
    "ensure_builtin",
    "build_builtin",
    "reference_scores",
    "collect_builtin_episodes",
]

# Epsilon schedule of the "mixed" sets: probability of a uniform random action instead of the
# (slightly noisy) expert's, one equal share of the transitions per level.
MIXED_EPSILONS = (1.0, 0.75, 0.5, 0.25, 0.0)
REFERENCE_EPISODES = 100
REFERENCE_SEED = 900_000_000
REFERENCE_NUM_ENVS = 10  # vectorised: batched controller calls halve the time
_MIXED_SEED_STRIDE = 100_000  # per-level seed offset within a mixed set (> episodes per level)
_BUILDER_VERSION = 1


@dataclass(frozen=True)
class BuiltinDatasetSpec:
    """How one built-in dataset is generated."""

    dataset_id: str
    env_id: str
    max_episode_steps: int
    controller: str  # "random", "medium", "expert" or "mixed"
    n_steps: int  # environment steps taken; trailing partial episode dropped
    seed: int
    description: str


_ENVS = {
    "invertedpendulum": (
        "InvertedPendulum-v5",
        200,
        "InvertedPendulum-v5 with max_episode_steps=200 (shorter than the registered 1000 so "
        "that planning and evaluation fit CPU budgets; the stored env spec records it). Episodes "
        "terminate when the pole falls, else are truncated at 200 steps. ",
    ),
    "pendulum": (
        "Pendulum-v1",
        200,
        "Pendulum-v1 (swing-up; no terminations, every episode truncated at 200 steps). ",
    ),
}

_CONTROLLER_TEXT = {
    "random": "Behaviour: actions uniform in the action bounds.",
    "medium": "Behaviour: the scripted expert with a fraction epsilon of its actions replaced by "
    "uniform random ones and Gaussian action noise (epsilon, sigma = {medium}).",
    "expert": "Behaviour: scripted expert ({expert_kind}) with Gaussian action noise sigma "
    "{expert_sigma}.",
    "mixed": "Behaviour: replay-buffer-like mixture, equal shares of transitions from the "
    "scripted expert with epsilon in (1.0, 0.75, 0.5, 0.25, 0.0) of its actions replaced by "
    "uniform random ones, from random to expert.",
}

_EXPERT_KIND = {
    "InvertedPendulum-v5": "LQR state feedback",
    "Pendulum-v1": "energy-shaping swing-up with an LQR stabiliser near upright",
}

_CONTROLLER_SEED_OFFSET = {"random": 1, "medium": 2, "expert": 3, "mixed": 4}


def _make_registry() -> dict[str, BuiltinDatasetSpec]:
    registry = {}
    for env_index, (short, (env_id, max_steps, env_text)) in enumerate(_ENVS.items()):
        for name in ("random", "medium", "expert", "mixed"):
            dataset_id = f"seqrl/{short}/{name}-v0"
            text = _CONTROLLER_TEXT[name].format(
                medium=NOISE_LEVELS[env_id]["medium"],
                expert_kind=_EXPERT_KIND[env_id],
                expert_sigma=NOISE_LEVELS[env_id]["expert"][1],
            )
            registry[dataset_id] = BuiltinDatasetSpec(
                dataset_id=dataset_id,
                env_id=env_id,
                max_episode_steps=max_steps,
                controller=name,
                n_steps=50_000,
                # Disjoint seed ranges: set j of environment i resets episodes with seeds
                # 10_000_000 * i + 1_000_000 * j + k.
                seed=10_000_000 * (env_index + 1) + 1_000_000 * _CONTROLLER_SEED_OFFSET[name],
                description=env_text + text,
            )
    return registry


BUILTIN_DATASETS: dict[str, BuiltinDatasetSpec] = _make_registry()


def list_builtin() -> list[str]:
    """Ids of the built-in datasets."""
    return sorted(BUILTIN_DATASETS)


def _spec(dataset_id: str) -> BuiltinDatasetSpec:
    try:
        return BUILTIN_DATASETS[dataset_id]
    except KeyError:
        raise ValueError(
            f"Unknown built-in dataset {dataset_id!r}; known: {', '.join(list_builtin())}"
        ) from None


@functools.lru_cache(maxsize=None)
def reference_scores(env_id: str, max_episode_steps: int) -> tuple[float, float]:
    """``(ref_min_score, ref_max_score)``: mean returns of the random and expert controllers
    over ``REFERENCE_EPISODES`` episodes (reset seeds ``REFERENCE_SEED + k``, controller noise
    seeded with ``REFERENCE_SEED``, ``REFERENCE_NUM_ENVS`` vectorised envs). Cached per
    process."""
    scores = []
    for name in ("random", "expert"):
        episodes = rollout(
            env_id,
            make_controller(env_id, name),
            n_episodes=REFERENCE_EPISODES,
            seed=REFERENCE_SEED,
            max_episode_steps=max_episode_steps,
            num_envs=REFERENCE_NUM_ENVS,
        )
        scores.append(float(np.mean(episode_returns(episodes))))
    return scores[0], scores[1]


def collect_builtin_episodes(dataset_id: str, n_steps: int | None = None) -> list[Episode]:
    """The episodes of a built-in dataset, without writing anything."""
    spec = _spec(dataset_id)
    n_steps = spec.n_steps if n_steps is None else int(n_steps)
    common = dict(max_episode_steps=spec.max_episode_steps)
    if spec.controller != "mixed":
        policy = make_controller(spec.env_id, spec.controller)
        return rollout(spec.env_id, policy, n_steps=n_steps, seed=spec.seed, **common)
    sigma = NOISE_LEVELS[spec.env_id]["expert"][1]
    shares = np.diff(np.linspace(0, n_steps, len(MIXED_EPSILONS) + 1).round().astype(int))
    episodes: list[Episode] = []
    for level, (epsilon, share) in enumerate(zip(MIXED_EPSILONS, shares)):
        if share < 1:
            continue
        policy = make_noisy_expert(spec.env_id, epsilon, sigma)
        part = rollout(spec.env_id, policy, n_steps=int(share),
                       seed=spec.seed + level * _MIXED_SEED_STRIDE, **common)
        if len(part) >= _MIXED_SEED_STRIDE:
            raise RuntimeError("mixed level overflowed its seed range")
        episodes.extend(part)
    return episodes


def _build_record(spec: BuiltinDatasetSpec, n_steps: int) -> dict:
    record = asdict(spec)
    record.update(n_steps=n_steps, builder_version=_BUILDER_VERSION)
    if spec.controller == "mixed":
        record["mixed_epsilons"] = list(MIXED_EPSILONS)
    return record


def build_builtin(dataset_id: str, *, n_steps: int | None = None):
    """(Re)build one built-in dataset in the current datasets root; returns the
    ``MinariDataset``."""
    spec = _spec(dataset_id)
    n_steps = spec.n_steps if n_steps is None else int(n_steps)
    episodes = collect_builtin_episodes(dataset_id, n_steps)
    ref_min, ref_max = reference_scores(spec.env_id, spec.max_episode_steps)
    return write_minari_dataset(
        dataset_id,
        episodes,
        env_id=spec.env_id,
        max_episode_steps=spec.max_episode_steps,
        algorithm_name=f"seqrl scripted controller: {spec.controller}",
        author="seqrl",
        code_permalink="seqrl/data/builtin.py",
        description=spec.description,
        ref_min_score=ref_min,
        ref_max_score=ref_max,
        num_episodes_average_score=REFERENCE_EPISODES,
        extra_metadata={"seqrl_builtin": _build_record(spec, n_steps)},
        overwrite=True,
    )


def _existing_record(dataset_id: str) -> dict | None:
    from minari.storage.datasets_root_dir import get_dataset_path

    path = get_dataset_path(dataset_id) / "data" / "metadata.json"
    try:
        with open(path) as f:
            return json.load(f).get("seqrl_builtin")
    except (OSError, ValueError):
        return None


def ensure_builtin(dataset_id: str, *, n_steps: int | None = None, force: bool = False) -> str:
    """Build ``dataset_id`` in the current ``MINARI_DATASETS_PATH`` unless it is already there;
    returns the id, ready for ``minari.load_dataset``.

    An existing copy is kept when it was built by this builder version from the same recipe
    and, when ``n_steps`` is given, with that ``n_steps`` (``n_steps=None`` accepts whatever size
    is there). Otherwise, or with ``force=True``, it is rebuilt. Unknown ids raise
    ``ValueError`` listing the known ones.
    """
    spec = _spec(dataset_id)
    if not force:
        record = _existing_record(dataset_id)
        if record is not None:
            expected = _build_record(spec, record.get("n_steps", -1))
            same_recipe = record == expected
            if same_recipe and (n_steps is None or record["n_steps"] == int(n_steps)):
                return dataset_id
    build_builtin(dataset_id, n_steps=n_steps)
    return dataset_id


def _main() -> None:  # pragma: no cover - convenience entry point
    import argparse
    import time

    parser = argparse.ArgumentParser(description="Build seqrl's built-in Minari datasets.")
    parser.add_argument("ids", nargs="*", help="dataset ids (default: all)")
    parser.add_argument("--n-steps", type=int, default=None)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    for dataset_id in args.ids or list_builtin():
        t0 = time.perf_counter()
        ensure_builtin(dataset_id, n_steps=args.n_steps, force=args.force)
        print(f"{dataset_id}: {time.perf_counter() - t0:.1f}s "
              f"(root {os.environ.get('MINARI_DATASETS_PATH', '~/.minari/datasets')})")


if __name__ == "__main__":  # pragma: no cover
    _main()
