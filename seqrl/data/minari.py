"""Read Minari datasets into an EpisodeDataset."""

from __future__ import annotations

import numpy as np

from seqrl.data.episodes import EpisodeDataset
from seqrl.data.validation import DataError


def is_local_minari(dataset_id: str) -> bool:
    import minari

    try:
        return dataset_id in minari.list_local_datasets()
    except Exception:  # noqa: BLE001 - an unreadable Minari root just means "not here"
        return False


def _space_meta(space, prefix: str) -> dict:
    meta = {f"{prefix}_shape": list(space.shape)}
    if hasattr(space, "low"):
        meta[f"{prefix}_low"] = np.asarray(space.low, dtype=np.float64).reshape(-1).tolist()
        meta[f"{prefix}_high"] = np.asarray(space.high, dtype=np.float64).reshape(-1).tolist()
    return meta


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
        "ref_min_score": storage_meta.get("ref_min_score"),
        "ref_max_score": storage_meta.get("ref_max_score"),
    }
    meta.update(_space_meta(dataset.action_space, "action"))
    meta["observation_shape"] = list(dataset.observation_space.shape)
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in meta.items()}


def load_minari(dataset_id: str) -> EpisodeDataset:
    import minari

    try:
        dataset = minari.load_dataset(dataset_id)
    except Exception as err:  # noqa: BLE001
        raise DataError(f"cannot load Minari dataset {dataset_id!r}: {err}") from err
    if len(dataset.observation_space.shape) != 1:
        raise DataError(f"Minari dataset {dataset_id!r} has observation space {dataset.observation_space}; "
                        "seqrl needs flat Box observations")
    episodes = [
        {"observations": ep.observations, "actions": ep.actions, "rewards": ep.rewards,
         "terminations": ep.terminations, "truncations": ep.truncations}
        for ep in dataset.iterate_episodes()
    ]
    if not episodes:
        raise DataError(f"Minari dataset {dataset_id!r} has no episodes")
    return EpisodeDataset.from_episodes(episodes, metadata=minari_metadata(dataset))
