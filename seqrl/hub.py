"""One checkpoint format for every seqrl policy: save_pretrained / from_pretrained / push_to_hub.

A checkpoint directory holds
    seqrl.json                 algorithm, env id and spaces, data and training settings, version
    config.json + model.safetensors   the weights (for TT: a real `transformers` model)
    discretizer.{safetensors,json}    TT only: the bins the tokens were made with
    README.md                  the model card rendered from model_cards/
    train_metrics.json         the logged training curve
`from_pretrained` takes a local path or a Hub repo id (through the huggingface_hub cache, so
it also works with HF_HUB_OFFLINE=1 once the snapshot is cached).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import seqrl

SEQRL_FILE = "seqrl.json"
CARDS_DIR = Path(__file__).resolve().parent.parent / "model_cards"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used as asked: the message names what is wrong."""


def render_card(template: str, context: dict[str, Any]) -> str:
    import jinja2

    path = CARDS_DIR / template
    if not path.exists():  # installed without the repository: a minimal card
        return f"# {context.get('algorithm', 'seqrl policy')} for {context.get('env_id')}\n\nTrained with seqrl.\n"
    env = jinja2.Environment(undefined=jinja2.ChainableUndefined, keep_trailing_newline=True)
    return env.from_string(path.read_text()).render(**context)


def write_metadata(directory, metadata: dict[str, Any]) -> None:
    meta = {"seqrl_version": seqrl.__version__, **metadata}
    (Path(directory) / SEQRL_FILE).write_text(json.dumps(meta, indent=2, default=str))


def resolve(path_or_repo_id: str, revision: str | None = None, cache_dir=None) -> Path:
    """A local checkpoint directory, or a Hub snapshot downloaded into the cache."""
    path = Path(path_or_repo_id)
    if path.is_dir():
        return path
    if path.is_absolute() or str(path_or_repo_id).startswith((".", "~")) or str(path_or_repo_id).count("/") != 1:
        raise CheckpointError(f"no checkpoint directory at {path_or_repo_id} (and it is not a Hub repo id 'user/name')")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(path_or_repo_id, revision=revision, cache_dir=cache_dir))
    except Exception as err:  # noqa: BLE001 - one clear line for a missing/unreachable repo
        raise CheckpointError(f"cannot fetch {path_or_repo_id!r} from the Hub or its cache: {type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''}") from err


def read_metadata(directory) -> dict[str, Any]:
    path = Path(directory) / SEQRL_FILE
    if not path.exists():
        raise CheckpointError(f"{directory} is not a seqrl checkpoint (no {SEQRL_FILE})")
    return json.loads(path.read_text())


def from_pretrained(path_or_repo_id: str, *, algorithm: str | None = None, env_id: str | None = None,
                    device="cpu", revision: str | None = None, cache_dir=None):
    """Load any seqrl checkpoint; `algorithm`/`env_id` make a mismatch an error before any work."""
    directory = resolve(path_or_repo_id, revision, cache_dir)
    meta = read_metadata(directory)
    if algorithm is not None and meta.get("algorithm") != algorithm:
        raise CheckpointError(f"{path_or_repo_id} is a {meta.get('algorithm')} checkpoint, not {algorithm}")
    if env_id is not None and meta.get("env_id") != env_id:
        raise CheckpointError(f"{path_or_repo_id} was trained on {meta.get('env_id')}, not {env_id}")
    if meta.get("algorithm") == "trajectory_transformer":
        from seqrl.pretrained import TrajectoryModel

        return TrajectoryModel.load(directory, meta, device=device)
    from seqrl.policies import load_policy  # value-based policies

    return load_policy(directory, meta, device=device)


def push_to_hub(directory, repo_id: str, *, private: bool = False, token=None, commit_message: str | None = None) -> str:
    """Upload a checkpoint directory (training checkpoints and logs excluded)."""
    from huggingface_hub import HfApi

    read_metadata(directory)  # refuse to push something that is not a seqrl checkpoint
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.upload_folder(folder_path=str(directory), repo_id=repo_id,
                             commit_message=commit_message or "Upload seqrl checkpoint",
                             ignore_patterns=["checkpoints/*", "tensorboard/*", "*.tmp"])
    return str(info)
