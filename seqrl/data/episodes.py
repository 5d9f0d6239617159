"""EpisodeDataset: the one canonical form of offline RL data in seqrl.

An Arrow-backed `datasets.Dataset` with one row per transition and the columns
`episode, step, observation, action, reward, next_observation, terminated, truncated`,
plus a metadata dict (env id, spaces, source, reference returns).

Semantics, everywhere in seqrl:
- `terminated` is a true environment termination (no bootstrapping through it);
  `truncated` is a time limit or the end of the recording (bootstrap through it).
- Every episode ends with exactly one of the two flags. A trailing episode with no end
  flag (a recording cut mid-episode) is treated as truncated.
- The last `next_observation` of every episode is kept.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seqrl.cpu.memory import release_free_memory
from seqrl.data.validation import DataError, check_finite, check_rows

METADATA_FILE = "seqrl_metadata.json"
COLUMNS = ("episode", "step", "observation", "action", "reward", "next_observation", "terminated", "truncated")


def _features(obs_dim: int, act_dim: int):
    from datasets import Features, List, Value

    return Features(
        {
            "episode": Value("int64"),
            "step": Value("int64"),
            "observation": List(Value("float32"), length=obs_dim),
            "action": List(Value("float32"), length=act_dim),
            "reward": Value("float32"),
            "next_observation": List(Value("float32"), length=obs_dim),
            "terminated": Value("bool"),
            "truncated": Value("bool"),
        }
    )


@dataclass
class EpisodeSummary:
    episodes: int
    transitions: int
    return_mean: float
    return_std: float
    return_min: float
    return_max: float
    length_mean: float
    length_min: int
    length_max: int
    terminations: int
    truncations: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __str__(self) -> str:
        return (
            f"{self.episodes} episodes, {self.transitions} transitions | return "
            f"{self.return_mean:.2f} ± {self.return_std:.2f} (min {self.return_min:.2f}, max {self.return_max:.2f}) | "
            f"length {self.length_mean:.1f} ({self.length_min}-{self.length_max}) | "
            f"{self.terminations} terminated, {self.truncations} truncated"
        )


class EpisodeDataset:
    """Transitions of whole episodes, backed by Arrow, with metadata.

    Build one with `from_arrays`, `from_d4rl`, `load_from_disk` or `from_hub`, or `seqrl.data.load_dataset(source)`;
    `arrays()` gives the columns as numpy arrays (memory-mapped Arrow underneath).
    """

    def __init__(self, hf_dataset, metadata: dict[str, Any] | None = None):
        missing = [c for c in COLUMNS if c not in hf_dataset.column_names]
        if missing:
            raise DataError(f"dataset is missing columns {missing}; expected {list(COLUMNS)}")
        if len(hf_dataset) == 0:
            raise DataError("dataset is empty: it has no transitions")
        if hf_dataset._indices is not None:  # a select()/shuffle() view: materialise row order
            hf_dataset = hf_dataset.flatten_indices()
        self.hf = hf_dataset
        self.metadata = dict(metadata or {})
        self._arrays: dict[str, np.ndarray] | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        observations,
        actions,
        rewards,
        terminated,
        truncated,
        next_observations=None,
        *,
        metadata: dict[str, Any] | None = None,
    ) -> "EpisodeDataset":
        """Flat per-transition arrays, episodes split where `terminated | truncated`.

        Without `next_observations`, s' is the next row's observation inside an episode.
        For the last transition of an episode s' is then unknown: after a termination it is
        never bootstrapped, so the observation itself stands in; after a truncation the
        transition cannot be used for a Q target, so it is dropped and the previous one
        becomes the truncated end (the same choice as d4rl.qlearning_dataset for timeouts).
        """
        observations = _as_2d(observations, "observations")
        actions = _as_2d(actions, "actions")
        rewards = np.asarray(rewards, dtype=np.float32).reshape(-1)
        terminated = np.asarray(terminated).reshape(-1).astype(bool)
        truncated = np.asarray(truncated).reshape(-1).astype(bool)
        n = len(observations)
        if n == 0:
            raise DataError("dataset is empty: it has no transitions")
        check_rows({"observations": observations, "actions": actions, "rewards": rewards,
                    "terminals": terminated, "timeouts": truncated})
        check_finite({"observations": observations, "actions": actions, "rewards": rewards})
        # A row flagged both terminal and timeout is a termination (it really ended).
        truncated = truncated & ~terminated
        # A recording cut mid-episode: the trailing episode is truncated.
        if not (terminated[-1] or truncated[-1]):
            truncated = truncated.copy()
            truncated[-1] = True

        ends = terminated | truncated
        episode = np.concatenate([[0], np.cumsum(ends[:-1])]).astype(np.int64)
        if next_observations is None:
            next_observations = np.empty_like(observations)
            next_observations[:-1] = observations[1:]
            last = np.flatnonzero(ends)
            next_observations[last] = observations[last]
            drop = last[truncated[last]]
            # Drop truncated ends whose s' is unknown; the previous row of the same episode
            # inherits the truncation. One-transition episodes vanish entirely.
            prev = drop - 1
            keep_prev = prev[(prev >= 0) & ~np.isin(prev, last)]
            truncated = truncated.copy()
            truncated[keep_prev] = True
            keep = np.ones(n, dtype=bool)
            keep[drop] = False
            observations, actions, rewards = observations[keep], actions[keep], rewards[keep]
            next_observations, terminated, truncated = next_observations[keep], terminated[keep], truncated[keep]
            episode = episode[keep]
            if len(observations) == 0:
                raise DataError("dataset is empty after dropping truncated ends without next_observations")
            _, episode = np.unique(episode, return_inverse=True)
        else:
            next_observations = _as_2d(next_observations, "next_observations")
            if next_observations.shape != observations.shape:
                raise DataError(
                    f"next_observations has shape {next_observations.shape} but observations {observations.shape}"
                )
            check_finite({"next_observations": next_observations})

        starts = np.flatnonzero(np.r_[True, episode[1:] != episode[:-1]])
        step = np.arange(len(episode)) - np.repeat(starts, np.diff(np.r_[starts, len(episode)]))
        return cls._from_columns(
            episode=episode.astype(np.int64), step=step.astype(np.int64), observation=observations,
            action=actions, reward=rewards, next_observation=next_observations,
            terminated=terminated, truncated=truncated, metadata=metadata,
        )

    @classmethod
    def from_episodes(cls, episodes, *, metadata: dict[str, Any] | None = None) -> "EpisodeDataset":
        """Whole episodes as dicts: observations [T+1], actions/rewards/terminations/truncations [T]."""
        if len(episodes) == 0:
            raise DataError("dataset is empty: no episodes given")
        obs, nxt, act, rew, term, trunc = [], [], [], [], [], []
        for i, ep in enumerate(episodes):
            o = np.asarray(ep["observations"], dtype=np.float32)
            t_len = len(ep["actions"])
            if t_len == 0:
                raise DataError(f"episode {i} has zero length")
            if len(o) != t_len + 1:
                raise DataError(f"episode {i}: {len(o)} observations for {t_len} actions; expected T+1 observations")
            te = np.asarray(ep["terminations"], dtype=bool).reshape(-1)
            tr = np.asarray(ep["truncations"], dtype=bool).reshape(-1)
            tr = tr.copy()
            if not (te[-1] or tr[-1]):
                tr[-1] = True  # recording stopped mid-episode
            if (te[:-1] | tr[:-1]).any():
                raise DataError(f"episode {i} has an end flag before its last step")
            obs.append(o[:-1]), nxt.append(o[1:]), act.append(np.asarray(ep["actions"], dtype=np.float32).reshape(t_len, -1))
            rew.append(np.asarray(ep["rewards"], dtype=np.float32).reshape(-1)), term.append(te), trunc.append(tr & ~te)
        return cls.from_arrays(
            np.concatenate(obs), np.concatenate(act), np.concatenate(rew), np.concatenate(term),
            np.concatenate(trunc), np.concatenate(nxt), metadata=metadata,
        )

    @classmethod
    def from_d4rl(cls, data, *, metadata: dict[str, Any] | None = None) -> "EpisodeDataset":
        """A D4RL-style dict, or a D4RL .hdf5 / .npz file: observations, actions, rewards, terminals,
        timeouts[, next_observations]. For a D4RL gym-mujoco file name (`hopper-medium-v2.hdf5`)
        the environment and time limit are filled in (see `d4rl_metadata`); `metadata` overrides."""
        if isinstance(data, (str, os.PathLike)):
            path = Path(data)
            if not path.exists():
                raise DataError(f"D4RL-style file not found: {path}")
            data = _read_d4rl_file(path)
            metadata = {"source": f"{path.suffix[1:]}:{path}", **d4rl_metadata(path.stem), **(metadata or {})}
        required = ["observations", "actions", "rewards", "terminals"]
        missing = [k for k in required if k not in data]
        if missing:
            raise DataError(f"D4RL-style data is missing keys {missing}; it has {sorted(data)}")
        n = len(data["observations"])
        timeouts = data.get("timeouts", np.zeros(n, dtype=bool))
        meta = {"source": "d4rl-arrays", **(metadata or {})}
        dataset = cls.from_arrays(
            data["observations"], data["actions"], data["rewards"], data["terminals"], timeouts,
            data.get("next_observations"), metadata=meta,
        )
        _warn_about_episode_ends(dataset, has_timeouts="timeouts" in data)
        return dataset

    @classmethod
    def from_episode_rows(cls, rows, *, metadata: dict[str, Any] | None = None) -> "EpisodeDataset":
        """A Hugging Face dataset with one row per episode, as the Hub's D4RL copies for Decision Transformers
        (`edbeeching/decision_transformer_gym_replay`): sequence columns `observations` [T, obs_dim],
        `actions` [T, act_dim], `rewards` [T] and `dones` or `terminals` [T] (true at a termination), optional
        `timeouts` [T] and `next_observations` [T, obs_dim]. An episode that does not end in a termination
        ended by its time limit (truncated); read with the D4RL rules of `from_d4rl`."""
        columns = set(rows.column_names)
        done_key = next((k for k in ("terminals", "dones") if k in columns), None)
        missing = [k for k in ("observations", "actions", "rewards") if k not in columns] + ([] if done_key else ["dones"])
        if missing:
            raise DataError(f"episode rows are missing columns {missing}; they have {sorted(columns)}")
        keys = ["observations", "actions", "rewards", done_key] + [k for k in ("timeouts", "next_observations") if k in columns]
        parts: dict[str, list] = {k: [] for k in keys}
        for i, row in enumerate(rows.select_columns(keys).with_format("numpy")):
            lengths = {k: len(row[k]) for k in keys}
            if len(set(lengths.values())) != 1 or lengths["observations"] == 0:
                raise DataError(f"episode row {i} has inconsistent or empty columns (lengths {lengths})")
            for k in keys:
                parts[k].append(np.asarray(np.stack(row[k]) if row[k].dtype == object else row[k]))
        data = {k: np.concatenate(v) for k, v in parts.items()}
        data["terminals"] = data.pop(done_key).astype(bool)
        if "timeouts" not in data:  # each row is one episode: one that does not terminate was cut by time
            ends = np.cumsum([len(t) for t in parts[done_key]]) - 1
            data["timeouts"] = np.zeros(len(data["terminals"]), dtype=bool)
            data["timeouts"][ends] = ~data["terminals"][ends]
        return cls.from_d4rl(data, metadata={"source": "episode-rows", **(metadata or {})})

    @classmethod
    def load_from_disk(cls, path) -> "EpisodeDataset":
        from datasets import load_from_disk

        path = Path(path)
        if not (path / METADATA_FILE).exists():
            raise DataError(f"{path} is not a saved EpisodeDataset (no {METADATA_FILE})")
        metadata = json.loads((path / METADATA_FILE).read_text())
        return cls(load_from_disk(str(path / "data")), metadata)

    @classmethod
    def from_hub(cls, repo_id: str, *, config: str | None = None, revision: str | None = None,
                 cache_dir=None) -> "EpisodeDataset":
        """A dataset repo pushed by `push_to_hub`, or any Hub dataset with one row per episode
        (`from_episode_rows`; `config` names its configuration, e.g. `hopper-medium-v2`, whose D4RL name
        also gives the environment). Resolved through the huggingface_hub cache, so it also loads with
        HF_HUB_OFFLINE=1 once cached."""
        from datasets import Dataset
        from huggingface_hub import hf_hub_download, snapshot_download
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

        if config is None:
            try:
                hf_hub_download(repo_id, METADATA_FILE, repo_type="dataset", revision=revision, cache_dir=cache_dir)
            except (EntryNotFoundError, LocalEntryNotFoundError):
                config = ""  # not seqrl's format: read it as episode rows
        if config is not None:
            return cls._from_hub_episode_rows(repo_id, config or None, revision)
        root = Path(snapshot_download(repo_id, repo_type="dataset", revision=revision, cache_dir=cache_dir))
        metadata = json.loads((root / METADATA_FILE).read_text())
        files = sorted(str(p) for p in (root / "data").glob("*.parquet"))
        if not files:
            raise DataError(f"Hub dataset {repo_id} has no parquet files under data/")
        obs_dim, act_dim = _dims_from_metadata(metadata)
        return cls(Dataset.from_parquet(files, features=_features(obs_dim, act_dim)), metadata)

    @classmethod
    def _from_hub_episode_rows(cls, repo_id: str, config: str | None, revision: str | None) -> "EpisodeDataset":
        import datasets

        try:
            rows = datasets.load_dataset(repo_id, config, split="train", revision=revision)
        except Exception as err:  # noqa: BLE001 - missing repo/config, offline: one line
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise DataError(f"cannot read Hub dataset {repo_id!r}{f' ({config})' if config else ''}: {reason}") from err
        metadata = {"source": f"hf:{repo_id}" + (f":{config}" if config else ""), **d4rl_metadata(config or "")}
        return cls.from_episode_rows(rows, metadata=metadata)

    @classmethod
    def _from_columns(cls, *, metadata, **columns) -> "EpisodeDataset":
        import pyarrow as pa
        from datasets import Dataset, DatasetInfo
        from datasets.fingerprint import generate_random_fingerprint

        obs_dim, act_dim = columns["observation"].shape[1], columns["action"].shape[1]
        features = _features(obs_dim, act_dim)

        def flat(a, dtype):  # zero-copy view of a contiguous numpy array as an Arrow array
            a = np.ascontiguousarray(a, dtype=dtype).reshape(-1)
            return pa.Array.from_buffers(pa.from_numpy_dtype(a.dtype), len(a), [None, pa.py_buffer(a)])

        def fixed(a):  # [n, d] float32 as an Arrow FixedSizeList
            return pa.FixedSizeListArray.from_arrays(flat(a, np.float32), a.shape[1])

        table = pa.table(
            {
                "episode": flat(columns["episode"], np.int64),
                "step": flat(columns["step"], np.int64),
                "observation": fixed(columns["observation"]),
                "action": fixed(columns["action"]),
                "reward": flat(columns["reward"], np.float32),
                "next_observation": fixed(columns["next_observation"]),
                "terminated": pa.array(np.asarray(columns["terminated"], dtype=bool)),
                "truncated": pa.array(np.asarray(columns["truncated"], dtype=bool)),
            }
        )
        meta = dict(metadata or {})
        meta.setdefault("observation_shape", [obs_dim])
        meta.setdefault("action_shape", [act_dim])
        # An explicit fingerprint: datasets would otherwise hash (copy) the whole in-memory table.
        dataset = Dataset(table.cast(features.arrow_schema), info=DatasetInfo(features=features),
                          fingerprint=generate_random_fingerprint())
        release_free_memory()  # the build's temporaries
        return cls(dataset, meta)

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return len(self.hf)

    @property
    def observation_dim(self) -> int:
        return int(self.arrays()["observation"].shape[1])

    @property
    def action_dim(self) -> int:
        return int(self.arrays()["action"].shape[1])

    @property
    def env_id(self) -> str | None:
        return self.metadata.get("env_id")

    def arrays(self) -> dict[str, np.ndarray]:
        """All columns as numpy arrays (observations [n, obs_dim], ...), computed once."""
        if self._arrays is None:
            out = {}
            for name in COLUMNS:
                chunks = self.hf.data.column(name).chunks
                if name in ("observation", "action", "next_observation"):
                    # flatten() of a chunk is a zero-copy view of the Arrow buffer
                    parts = [c.flatten().to_numpy(zero_copy_only=False) for c in chunks]
                    out[name] = (parts[0] if len(parts) == 1 else np.concatenate(parts)).reshape(len(self.hf), -1)
                else:
                    parts = [c.to_numpy(zero_copy_only=False) for c in chunks]
                    out[name] = parts[0] if len(parts) == 1 else np.concatenate(parts)
            self._arrays = out
        return self._arrays

    def episode_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(start index, length) of every episode, in row order."""
        ep = self.arrays()["episode"]
        starts = np.flatnonzero(np.r_[True, ep[1:] != ep[:-1]])
        lengths = np.diff(np.r_[starts, len(ep)])
        return starts, lengths

    def episode_returns(self) -> np.ndarray:
        starts, _ = self.episode_bounds()
        return np.add.reduceat(self.arrays()["reward"].astype(np.float64), starts)

    def summary(self) -> EpisodeSummary:
        a = self.arrays()
        returns = self.episode_returns()
        _, lengths = self.episode_bounds()
        return EpisodeSummary(
            episodes=len(lengths), transitions=len(self), return_mean=float(returns.mean()),
            return_std=float(returns.std()), return_min=float(returns.min()), return_max=float(returns.max()),
            length_mean=float(lengths.mean()), length_min=int(lengths.min()), length_max=int(lengths.max()),
            terminations=int(a["terminated"].sum()), truncations=int(a["truncated"].sum()),
        )

    # ------------------------------------------------------------------ output
    def save_to_disk(self, path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.hf.save_to_disk(str(path / "data"))
        (path / METADATA_FILE).write_text(json.dumps(self.metadata, indent=2, default=_json_default))
        return path

    def push_to_hub(self, repo_id: str, *, private: bool = False, token=None, commit_message: str | None = None) -> str:
        """Upload as parquet + metadata + a dataset card; returns the commit url."""
        import tempfile

        from huggingface_hub import HfApi

        api = HfApi(token=token)
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "data").mkdir()
            self.hf.to_parquet(str(root / "data" / "train-00000-of-00001.parquet"))
            (root / METADATA_FILE).write_text(json.dumps(self.metadata, indent=2, default=_json_default))
            (root / "README.md").write_text(self._card(repo_id))
            info = api.upload_folder(
                folder_path=str(root), repo_id=repo_id, repo_type="dataset",
                commit_message=commit_message or "Upload EpisodeDataset with seqrl",
            )
        return str(info)

    def _card(self, repo_id: str) -> str:
        """The Hub dataset card: source, environment, sizes, returns, reference scores, how it was made."""
        s, m = self.summary(), self.metadata
        lo, hi = m.get("ref_min_score"), m.get("ref_max_score")
        refs = "none recorded"
        if lo is not None and hi is not None:
            refs = (f"{lo:.2f} / {hi:.2f} ({m.get('ref_source') or 'recorded with the data'}); normalized score of the "
                    f"data {100 * (s.return_mean - lo) / (hi - lo):.1f}")
        made = m.get("description") or "not recorded"
        rows = [("source", f"`{m.get('source')}`"), ("environment", f"`{self.env_id}`" + (
                    f", {m['max_episode_steps']}-step limit" if m.get("max_episode_steps") else "")),
                ("observations / actions", f"{self.observation_dim} / {self.action_dim} dims"),
                ("episodes / transitions", f"{s.episodes:,} / {s.transitions:,}"),
                ("terminated / truncated episodes", f"{s.terminations:,} / {s.truncations:,}"),
                ("episode return", f"{s.return_mean:.2f} ± {s.return_std:.2f} (min {s.return_min:.2f}, max {s.return_max:.2f})"),
                ("episode length", f"{s.length_mean:.1f} ({s.length_min}-{s.length_max})"),
                ("`ref_min_score` / `ref_max_score`", refs)]
        if m.get("algorithm_id"):
            rows.append(("behaviour", str(m["algorithm_id"])))
        table = "\n".join(f"| {k} | {v} |" for k, v in rows)
        return (
            "---\nlibrary_name: seqrl\ntags: [offline-rl, seqrl, reinforcement-learning]\n---\n"
            f"# {repo_id}\n\nAn offline RL dataset in seqrl's EpisodeDataset format: one row per transition "
            f"(parquet), its metadata in `{METADATA_FILE}`.\n\n| | |\n|---|---|\n{table}\n\n"
            f"## How it was made\n\n{made}\n\n"
            f"Load it with `seqrl.data.load_dataset(\"{repo_id}\")` (or `EpisodeDataset.from_hub`); it is cached, so "
            f"it loads again offline (`HF_HUB_OFFLINE=1`).\n"
        )

    def __repr__(self) -> str:
        return f"EpisodeDataset(env_id={self.env_id!r}, {self.summary()})"


def _warn_about_episode_ends(dataset: "EpisodeDataset", has_timeouts: bool) -> None:
    """A file without `timeouts` ends episodes only at terminals (one giant episode when there are
    none); an episode longer than the env's time limit means the episode ends are wrong. Say so."""
    _, lengths = dataset.episode_bounds()
    limit = dataset.metadata.get("max_episode_steps")
    if not has_timeouts:
        warnings.warn(f"{dataset.metadata.get('source')}: no `timeouts` key, so episodes end only at terminals: "
                      f"{len(lengths)} episodes of length {int(lengths.min())}-{int(lengths.max())} "
                      f"(mean {lengths.mean():.1f})", stacklevel=3)
    if limit is not None and lengths.max() > limit:
        warnings.warn(f"{dataset.metadata.get('source')}: {int((lengths > limit).sum())} episodes are longer than "
                      f"the env's time limit {limit} (longest {int(lengths.max())}): are the timeouts missing?",
                      stacklevel=3)


def _as_2d(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise DataError(f"{name} must be numeric, got dtype {x.dtype}")
    x = x.astype(np.float32, copy=False)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise DataError(f"{name} must be 2-D [transitions, dim], got shape {x.shape}")
    return x


def _dims_from_metadata(metadata) -> tuple[int, int]:
    try:
        return int(np.prod(metadata["observation_shape"])), int(np.prod(metadata["action_shape"]))
    except KeyError as err:
        raise DataError(f"dataset metadata lacks {err.args[0]}") from err


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


D4RL_FILE_SUFFIXES = (".hdf5", ".h5", ".npz")
_D4RL_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")
# D4RL gym-mujoco datasets were collected in gym's mujoco-py *-v3 envs; gymnasium's *-v4 are the same
# models and rewards on the mujoco bindings (Ant with contact forces in its 111-dim observation).
# Actions lie in [-1, 1] in all four (env id, kwargs, action dims).
_D4RL_ENVS = {
    "hopper": ("Hopper-v4", {}, 3), "halfcheetah": ("HalfCheetah-v4", {}, 6), "walker2d": ("Walker2d-v4", {}, 6),
    "ant": ("Ant-v4", {"use_contact_forces": True}, 8),
}


# D4RL REF_MIN_SCORE (random policy) / REF_MAX_SCORE (expert policy), from d4rl/infos.py; the
# gym-mujoco v0/v1/v2 datasets share them. Used for D4RL's own files only.
D4RL_REFERENCE: dict[str, tuple[float, float]] = {
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
    "ant": (-325.6, 3879.7),
}


def d4rl_metadata(name: str) -> dict[str, Any]:
    """Environment, time limit and D4RL's reference scores for a D4RL gym-mujoco dataset name such
    as `hopper-medium-v2` or D4RL's download name `walker2d_medium_replay-v2` (D4RL's 1000-step
    limit); empty otherwise."""
    match = re.fullmatch(r"(hopper|halfcheetah|walker2d|ant)[-_]([a-z_-]+)-(v[0-2])", name)
    if not match:
        return {}
    env_id, env_kwargs, act_dim = _D4RL_ENVS[match.group(1)]
    dataset_id = f"{match.group(1)}-{match.group(2).replace('_', '-')}-{match.group(3)}"
    ref_min, ref_max = D4RL_REFERENCE[match.group(1)]
    return {"dataset_id": dataset_id, "env_id": env_id, "env_kwargs": env_kwargs, "max_episode_steps": 1000,
            "action_low": [-1.0] * act_dim, "action_high": [1.0] * act_dim,
            "ref_min_score": ref_min, "ref_max_score": ref_max, "ref_source": f"D4RL's {dataset_id} (d4rl/infos.py)"}


def _read_d4rl_file(path: Path) -> dict[str, np.ndarray]:
    """The D4RL arrays of a .npz or a D4RL .hdf5 file (its infos/ and metadata/ groups are skipped)."""
    if path.suffix == ".npz":
        return dict(np.load(path, allow_pickle=False))
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return {k: f[k][()] for k in _D4RL_KEYS if k in f and isinstance(f[k], h5py.Dataset)}
    except OSError as err:
        raise DataError(f"{path} is not a readable HDF5 file ({err})") from None
