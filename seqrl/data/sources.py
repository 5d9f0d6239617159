"""`load_dataset(source)`: one entry point for every kind of dataset source.

Tried in this order: a saved EpisodeDataset directory, a D4RL .hdf5/.npz file, a built-in or family
id (built on first use), a local Minari id, a remote Minari id (`mujoco/hopper/medium-v0`:
downloaded into MINARI_DATASETS_PATH from MINARI_REMOTE, default Farama's Hub namespace), a Hub
dataset repo id (seqrl's own format or one row per episode; `user/repo:config` for a configuration,
e.g. `edbeeching/decision_transformer_gym_replay:hopper-medium-v2`).
"""

from __future__ import annotations

import difflib
import hashlib
from pathlib import Path

from seqrl.data import builtin, families
from seqrl.data.episodes import D4RL_FILE_SUFFIXES, METADATA_FILE, EpisodeDataset
from seqrl.data.minari import download_minari, is_local_minari, load_minari, looks_like_minari_id
from seqrl.data.validation import DataError

SEQRL_PREFIX = "seqrl/"


def builtin_ids() -> list[str]:
    return sorted(builtin.BUILTIN_DATASETS) + sorted(families.FAMILY_DATASETS)


def _unknown_builtin(source: str) -> DataError:
    near = difflib.get_close_matches(source, builtin_ids(), n=3, cutoff=0.6)
    hint = f"; nearest: {', '.join(near)}" if near else "; see `seqrl data list`"
    return DataError(f"{source!r} is not a built-in dataset id{hint}")


def content_hash(path: Path) -> str:
    """sha256 of a file, or of a directory's files (names and bytes, in sorted order)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _local(dataset: EpisodeDataset, path: Path, kind: str) -> EpisodeDataset:
    """A local file's dataset records its name and content hash, never the machine's path (the
    metadata travels into checkpoints, model cards and the Hub)."""
    meta = dataset.metadata
    if kind != "disk" or not meta.get("source"):
        meta["source"] = f"{kind}:{path.name}"
    meta["file"], meta["sha256"] = path.name, content_hash(path)
    return dataset


def load_dataset(source: str) -> EpisodeDataset:
    """The EpisodeDataset behind `source` (see the module docstring for what `source` can be)."""
    source = str(source)
    path = Path(source)
    if path.is_dir() and (path / METADATA_FILE).exists() and (path / "data").is_dir():
        return _local(EpisodeDataset.load_from_disk(path), path, "disk")
    if path.suffix in D4RL_FILE_SUFFIXES and path.exists():
        return _local(EpisodeDataset.from_d4rl(path), path, path.suffix[1:])
    if path.is_absolute() or source.startswith((".", "~")) or path.suffix in D4RL_FILE_SUFFIXES:
        raise DataError(f"cannot load dataset {source!r}: no such saved EpisodeDataset directory or "
                        f"{'/'.join(D4RL_FILE_SUFFIXES)} file")
    if source in builtin.BUILTIN_DATASETS:
        builtin.ensure_builtin(source)
        return load_minari(source)
    if source in families.FAMILY_DATASETS:  # built on first use from the shipped behaviour policies
        try:
            families.ensure_family(source)
        except ValueError as err:
            raise DataError(str(err)) from None
        return load_minari(source)
    if is_local_minari(source):
        return load_minari(source)
    if source.startswith(SEQRL_PREFIX):  # seqrl's namespace holds only what it builds itself
        raise _unknown_builtin(source)
    if path.exists():
        raise DataError(f"{source} exists but is neither a saved EpisodeDataset directory nor a D4RL-style file")
    hub_id, _, config = source.partition(":")
    if config and "://" not in source and hub_id.count("/") == 1:  # `user/repo:config`
        return EpisodeDataset.from_hub(hub_id, config=config)
    minari_error = None
    if looks_like_minari_id(source):
        try:
            return load_minari(download_minari(source))
        except DataError as err:
            if source.count("/") != 1 or "://" in source:  # cannot be a Hub repo id either
                raise
            minari_error = err
    try:
        return EpisodeDataset.from_hub(source)
    except Exception as err:  # noqa: BLE001 - one clear message for an unknown source
        tried = f"{minari_error}; " if minari_error else ""
        raise DataError(
            f"cannot load dataset {source!r}: not a directory, .npz, built-in or local Minari id; "
            f"{tried}the Hub lookup failed ({type(err).__name__})"
        ) from err
