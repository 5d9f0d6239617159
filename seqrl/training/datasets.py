"""What every run records about its data, and how it loads it: the dataset with the user's
environment and reference-score overrides, its metadata for checkpoints, its time limit."""

from __future__ import annotations

from typing import Any

from seqrl.data import DataError, EpisodeDataset, load_dataset


def dataset_metadata(episodes: EpisodeDataset, source: str) -> dict[str, Any]:
    """What every checkpoint records about the data it learned from and the env it acts in."""
    meta = episodes.metadata
    return {
        "env_id": episodes.env_id, "env_kwargs": meta.get("env_kwargs", {}),
        "max_episode_steps": meta.get("max_episode_steps"), "eval_env": meta.get("eval_env"),
        "env_module": meta.get("env_module"),
        "action_low": meta.get("action_low"), "action_high": meta.get("action_high"),
        "ref_min_score": meta.get("ref_min_score"), "ref_max_score": meta.get("ref_max_score"),
        "ref_source": meta.get("ref_source") if meta.get("ref_max_score") is not None else None,
        "dataset": {"source": meta.get("source", source), "file": meta.get("file"), "sha256": meta.get("sha256"),
                    **episodes.summary().as_dict()},
    }


def load_episodes(source: str, env_id: str = "", ref_min_score: float | None = None,
                  ref_max_score: float | None = None) -> EpisodeDataset:
    """The dataset; `env_id` replaces the environment it records (evaluation then uses that env),
    reference scores given by the user replace the dataset's (both or neither)."""
    if (ref_min_score is None) != (ref_max_score is None):
        raise DataError("give both --ref_min_score and --ref_max_score, or neither")
    if ref_min_score is not None and ref_min_score >= ref_max_score:
        raise DataError(f"--ref_min_score {ref_min_score} must be below --ref_max_score {ref_max_score}")
    episodes = load_dataset(source)
    if env_id:
        episodes.metadata["env_id"] = env_id
        episodes.metadata.pop("eval_env", None)
        episodes.metadata.pop("env_module", None)
        if ref_min_score is None and episodes.metadata.get("ref_source", "").startswith("D4RL"):
            # D4RL's references describe D4RL's environment only
            episodes.metadata.update(ref_min_score=None, ref_max_score=None, ref_source=None)
    if ref_min_score is not None:
        episodes.metadata.update(ref_min_score=float(ref_min_score), ref_max_score=float(ref_max_score),
                                 ref_source="given by the user (--ref_min_score/--ref_max_score)")
    return episodes


def time_limit(episodes: EpisodeDataset) -> int | None:
    """The episodes' time limit: recorded with the data, else the env's registered one (a D4RL-style
    file without metadata would otherwise fall back to its longest episode)."""
    limit = episodes.metadata.get("max_episode_steps")
    if limit is None and episodes.env_id:
        import gymnasium as gym

        try:
            limit = gym.spec(episodes.env_id).max_episode_steps
        except gym.error.Error:
            limit = None
    if limit is None:
        print(f"warning: no time limit recorded for the data or its env; TT's max_path_length is the longest "
              f"episode ({int(episodes.episode_bounds()[1].max())}); pass --max_path_length to set it")
    return limit
