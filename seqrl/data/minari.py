"""Read Minari datasets into an EpisodeDataset, downloading them from Minari's remote when needed."""

from __future__ import annotations

import os
import re

import numpy as np

from seqrl.data.episodes import EpisodeDataset
from seqrl.data.validation import DataError


def is_local_minari(dataset_id: str) -> bool:
    import minari

    try:
        return dataset_id in minari.list_local_datasets()
    except Exception:  # noqa: BLE001 - an unreadable Minari root just means "not here"
        return False


# `namespace/.../name-vN`, optionally behind a remote (`hf://farama-minari/mujoco/hopper/medium-v0`)
_MINARI_ID = re.compile(r"(?:[a-z0-9]+://[^/]+/)?[\w.-]+(?:/[\w.-]+)*-v\d+")


def looks_like_minari_id(source: str) -> bool:
    """True for versioned Minari ids (`mujoco/hopper/medium-v0`, `D4RL/door/human-v2`, `hf://org/ns/x-v0`)."""
    return _MINARI_ID.fullmatch(source) is not None


def download_minari(dataset_id: str) -> str:
    """Fetch a Minari dataset from its remote into MINARI_DATASETS_PATH, as `minari.download_dataset` does
    (remote: the id's own `hf://...`/`gcp://...` prefix, else MINARI_REMOTE, else Farama's `hf://farama-minari`).
    Returns the local id. A dataset already there is not fetched again."""
    import minari

    if "://" in dataset_id:
        scheme, rest = dataset_id.split("://", 1)
        owner, local_id = rest.split("/", 1)
        remote = f"{scheme}://{owner}"
    else:
        local_id, remote = dataset_id, os.environ.get("MINARI_REMOTE", "hf://farama-minari")
    if is_local_minari(local_id):
        return local_id
    try:
        minari.download_dataset(dataset_id)
    except Exception as err:  # noqa: BLE001 - network, unknown id, incompatible version: one message
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"cannot download Minari dataset {local_id!r} from {remote}: {reason}") from err
    if not is_local_minari(local_id):
        raise DataError(f"Minari reported {local_id!r} downloaded, but it is not under MINARI_DATASETS_PATH")
    return local_id


def _space_meta(space, prefix: str) -> dict:
    meta = {f"{prefix}_shape": list(space.shape)}
    if hasattr(space, "low"):
        meta[f"{prefix}_low"] = np.asarray(space.low, dtype=np.float64).reshape(-1).tolist()
        meta[f"{prefix}_high"] = np.asarray(space.high, dtype=np.float64).reshape(-1).tolist()
    return meta


def observation_layout(space) -> dict[str, int] | None:
    """{key: size} of a Dict observation space of Box parts, in the space's key order (the order of
    gymnasium's `FlattenObservation`, which evaluation applies to such environments); None for a Box."""
    import gymnasium as gym

    if isinstance(space, gym.spaces.Box):
        return None
    if not isinstance(space, gym.spaces.Dict):
        raise DataError(f"observation space {space} is neither Box nor Dict of Box; seqrl needs flat vectors")
    layout = {}
    for key, sub in space.spaces.items():
        inner = observation_layout(sub)
        if inner is None:
            layout[str(key)] = int(np.prod(sub.shape))
        else:
            layout.update({f"{key}.{k}": n for k, n in inner.items()})
    return layout


def flat_observations(space, observations) -> np.ndarray:
    """[T, obs_dim] from a Box or (nested) Dict of Box episode, as `gymnasium.spaces.flatten` would
    write each step: the parts in the space's key order, concatenated."""
    import gymnasium as gym

    if isinstance(space, gym.spaces.Dict):
        return np.concatenate([flat_observations(sub, observations[key]) for key, sub in space.spaces.items()], axis=1)
    observations = np.asarray(observations)
    return observations.reshape(len(observations), -1)


def _env_module(spec) -> str | None:
    """Top-level package of an env spec's entry point (`gymnasium_robotics` for the D4RL mazes), None for
    gymnasium's own envs: importing it registers the env id where evaluation runs."""
    entry = getattr(spec, "entry_point", None)
    if not isinstance(entry, str) or ":" not in entry:
        return None
    package = entry.split(":")[0].split(".")[0]
    return None if package == "gymnasium" else package


def minari_metadata(dataset) -> dict:
    """Env id, kwargs, time limit, spaces and reference scores recorded in a Minari dataset."""
    spec = dataset.spec.env_spec
    storage_meta = dataset.storage.metadata
    meta = {
        "source": f"minari:{dataset.spec.dataset_id}",
        "dataset_id": dataset.spec.dataset_id,
        "env_id": spec.id if spec is not None else None,
        "env_kwargs": dict(spec.kwargs) if spec is not None else {},
        "max_episode_steps": spec.max_episode_steps if spec is not None else None,
        "env_module": _env_module(spec),
        "ref_min_score": storage_meta.get("ref_min_score"),
        "ref_max_score": storage_meta.get("ref_max_score"),
        "ref_source": f"the dataset's own ({dataset.spec.dataset_id})" if storage_meta.get("ref_max_score") is not None
        else None,
        # how it was made, as the dataset says (dataset cards on the Hub repeat it)
        **{key: storage_meta[key] for key in ("description", "algorithm_id", "author", "code_permalink")
           if isinstance(storage_meta.get(key), str)},
    }
    eval_spec = getattr(dataset, "_eval_env_spec", None)  # parsed by Minari from metadata["eval_env_spec"]
    if eval_spec is not None and spec is not None and (eval_spec.id, dict(eval_spec.kwargs), eval_spec.max_episode_steps) != (
            spec.id, dict(spec.kwargs), spec.max_episode_steps):
        # Minari's eval_env_spec (e.g. a maze with a fixed goal): the environment evaluation and planning use
        meta["eval_env"] = {"env_id": eval_spec.id, "env_kwargs": dict(eval_spec.kwargs),
                            "max_episode_steps": eval_spec.max_episode_steps, "env_module": _env_module(eval_spec)}
    meta.update(_space_meta(dataset.action_space, "action"))
    layout = observation_layout(dataset.observation_space)
    if layout is None:
        meta["observation_shape"] = list(dataset.observation_space.shape)
    else:  # Dict observations are stored flat; the layout says which columns came from which key
        meta["observation_shape"] = [sum(layout.values())]
        meta["observation_layout"] = layout
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in meta.items()}


def load_minari(dataset_id: str) -> EpisodeDataset:
    import gymnasium as gym
    import minari

    try:
        dataset = minari.load_dataset(dataset_id)
    except Exception as err:  # noqa: BLE001
        raise DataError(f"cannot load Minari dataset {dataset_id!r}: {err}") from err
    space = dataset.observation_space
    if isinstance(space, gym.spaces.Box) and len(space.shape) != 1:
        raise DataError(f"Minari dataset {dataset_id!r} has observation space {space}; "
                        "seqrl needs flat Box (or Dict of Box) observations")
    try:
        observation_layout(space)
    except DataError as err:
        raise DataError(f"Minari dataset {dataset_id!r}: {err}") from None
    actions = dataset.action_space
    if not isinstance(actions, gym.spaces.Box) or len(actions.shape) != 1:
        raise DataError(f"Minari dataset {dataset_id!r} has action space {actions}; seqrl's methods need "
                        "continuous actions (a flat Box)")
    episodes = [
        {"observations": flat_observations(space, ep.observations), "actions": ep.actions, "rewards": ep.rewards,
         "terminations": ep.terminations, "truncations": ep.truncations}
        for ep in dataset.iterate_episodes()
    ]
    if not episodes:
        raise DataError(f"Minari dataset {dataset_id!r} has no episodes")
    return EpisodeDataset.from_episodes(episodes, metadata=minari_metadata(dataset))
