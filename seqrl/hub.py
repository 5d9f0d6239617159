"""The one checkpoint format for every seqrl policy: save, load and push.

A checkpoint directory holds
    seqrl.json                 algorithm, env id and spaces, data and training settings, version
    config.json + model.safetensors   the weights (for TT: a real `transformers` model)
    discretizer.{safetensors,json}    TT only: the bins the tokens were made with
    dynamics/                  MOPO / COMBO only: the dynamics ensemble, itself a checkpoint
    README.md                  the model card rendered from the shipped model_cards/ templates
    train_metrics.json         the logged training curve
`from_pretrained` takes a local path or a Hub repo id (through the huggingface_hub cache, so
it also works with HF_HUB_OFFLINE=1 once the snapshot is cached). Algorithms and models do no file
I/O: everything that reads or writes a checkpoint is here.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from seqrl.algos import ALGORITHMS, OfflineAlgorithm, build_algorithm, config_from_dict
from seqrl.data.discretize import CONFIG_NAME as DISCRETIZER_CONFIG
from seqrl.data.discretize import WEIGHTS_NAME as DISCRETIZER_WEIGHTS
from seqrl.data.discretize import Discretizer
from seqrl.models.conversion import TRANSFORMERS_MODEL_TYPE, config_from_settings, state_dict_from_transformers
from seqrl.models.dynamics import DynamicsConfig, DynamicsEnsemble
from seqrl.models.trajectory_transformer import TrajectoryTransformerModel
from seqrl.resources import resource
from seqrl.version import __version__

SEQRL_FILE = "seqrl.json"
WEIGHTS_NAME = "model.safetensors"
METRICS_FILE = "train_metrics.json"
TT_ALGORITHM = "trajectory_transformer"
DYNAMICS = "dynamics"  # the `algorithm` of a dynamics ensemble checkpoint, and its folder in a MOPO / COMBO one
# seqrl.json keys that describe the network itself (rebuilt from the config), not the run
_NETWORK_KEYS = ("algorithm", "config", "observation_dim", "action_dim", "seqrl_version")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used as asked: the message names what is wrong."""


@dataclass
class TrajectoryModel:
    """A Trajectory Transformer with the discretizer its tokens were made with, and its metadata."""

    model: TrajectoryTransformerModel
    discretizer: Discretizer
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def env_id(self) -> str | None:
        return self.metadata.get("env_id")

    @property
    def observation_dim(self) -> int:
        return self.model.config.observation_dim

    @property
    def action_dim(self) -> int:
        return self.model.config.action_dim

    def __repr__(self) -> str:
        return f"TrajectoryModel(env_id={self.env_id!r}, {self.discretizer}, params={self.model.num_parameters():,})"


# ---------------------------------------------------------------------------- cards and metadata
def render_card(template: str, context: dict[str, Any]) -> str:
    import jinja2

    env = jinja2.Environment(undefined=jinja2.ChainableUndefined, keep_trailing_newline=True)
    return env.from_string(resource("model_cards", template).read_text()).render(**context)


def evaluation_line(metadata: dict[str, Any]) -> str:
    """The model card's one-line evaluation, from the metadata's `evaluation` (empty if none)."""
    e = metadata.get("evaluation") or {}
    if not e:
        return ""
    episodes = (metadata.get("training") or {}).get("eval_episodes")
    line = f"Mean return over {episodes} episodes: {e['return_mean']:.2f} ± {e['return_stderr']:.2f} (s.e.)"
    if "normalized_score" in e:
        line += f"; normalized score {e['normalized_score']:.1f}"
    return line


def write_metadata(directory, metadata: dict[str, Any]) -> dict[str, Any]:
    meta = {"seqrl_version": __version__, **metadata}
    (Path(directory) / SEQRL_FILE).write_text(json.dumps(meta, indent=2, default=str))
    return meta


def read_metadata(directory) -> dict[str, Any]:
    path = Path(directory) / SEQRL_FILE
    if not path.exists():
        raise CheckpointError(f"{directory} is not a seqrl checkpoint (no {SEQRL_FILE})")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err})") from None


def save_training_metrics(directory, history: list[dict]) -> None:
    (Path(directory) / METRICS_FILE).write_text(json.dumps(history, indent=1))


# ---------------------------------------------------------------------------- save
def _file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def save_pretrained(policy, directory, *, card_context: dict | None = None, repo_id: str | None = None) -> Path:
    """Write `policy` (a value-based algorithm or a TrajectoryModel) as a checkpoint directory:
    weights (safetensors), seqrl.json and a rendered model card. `seqrl.from_pretrained` loads it.
    Every file gets the same permissions (safetensors writes its files 0600)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _save(policy, directory, card_context, repo_id)
    mode = _file_mode()
    for f in directory.iterdir():
        if f.is_file():
            f.chmod(mode)
    return directory


def _save(policy, directory: Path, card_context, repo_id) -> Path:
    if isinstance(policy, TrajectoryModel):
        return _save_trajectory_model(policy, directory, card_context, repo_id)
    if isinstance(policy, DynamicsEnsemble):
        return _save_dynamics(policy, directory, card_context, repo_id)
    if not isinstance(policy, OfflineAlgorithm):
        raise TypeError(f"cannot save a {type(policy).__name__}: expected a seqrl algorithm or TrajectoryModel")
    state = {k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_NAME))
    meta = write_metadata(directory, {"algorithm": policy.config.algorithm, "config": policy.config.to_dict(),
                                      "observation_dim": policy.obs_dim, "action_dim": policy.act_dim,
                                      **policy.metadata})
    context = {**meta, "repo_id": repo_id, "parameters": f"{sum(p.numel() for p in policy.parameters()):,}",
               "evaluation": evaluation_line(meta), **(card_context or {})}
    (directory / "README.md").write_text(render_card("policy.md.j2", context))
    return directory


def _save_dynamics(model: DynamicsEnsemble, directory: Path, card_context, repo_id) -> Path:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_NAME))
    meta = write_metadata(directory, {"algorithm": DYNAMICS, "config": model.config.to_dict(),
                                      "observation_dim": model.obs_dim, "action_dim": model.act_dim, **model.metadata})
    context = {**meta, "repo_id": repo_id, "parameters": f"{model.num_parameters():,}",
               "elites": model.elites.tolist(), **(card_context or {})}
    (directory / "README.md").write_text(render_card("dynamics.md.j2", context))
    return directory


def _save_trajectory_model(tm: TrajectoryModel, directory: Path, card_context, repo_id) -> Path:
    tm.model.save_pretrained(str(directory))
    tm.discretizer.save(directory)
    meta = write_metadata(directory, {"algorithm": TT_ALGORITHM, **tm.metadata})
    cfg = tm.model.config
    context = {
        **meta, "repo_id": repo_id,
        "observation_dim": cfg.observation_dim, "action_dim": cfg.action_dim, "transition_dim": cfg.transition_dim,
        "model": {"n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_embd": cfg.n_embd, "block_size": cfg.block_size},
        "parameters": f"{sum(p.numel() for p in tm.model.parameters()):,}", **(card_context or {}),
    }
    (directory / "README.md").write_text(render_card("trajectory_transformer.md.j2", context))
    return directory


# ---------------------------------------------------------------------------- load
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


def from_pretrained(path_or_repo_id: str, *, algorithm: str | None = None, env_id: str | None = None,
                    device="cpu", revision: str | None = None, cache_dir=None, subfolder: str = ""):
    """Load any seqrl checkpoint; `algorithm`/`env_id` make a mismatch an error before any work.
    `subfolder="dynamics"` loads the dynamics ensemble a MOPO / COMBO checkpoint carries."""
    directory = resolve(path_or_repo_id, revision, cache_dir)
    if subfolder:
        directory = directory / subfolder
        if not directory.is_dir():
            raise CheckpointError(f"{path_or_repo_id} has no folder {subfolder!r}")
    if not (directory / SEQRL_FILE).exists() and _is_transformers_tt(directory):
        meta = {"algorithm": TT_ALGORITHM, "env_id": None, "source": f"transformers TrajectoryTransformerModel: {path_or_repo_id}"}
    else:
        meta = read_metadata(directory)
    if algorithm is not None and meta.get("algorithm") != algorithm:
        raise CheckpointError(f"{path_or_repo_id} is a {meta.get('algorithm')} checkpoint, not {algorithm}")
    if env_id is not None and meta.get("env_id") != env_id:
        raise CheckpointError(f"{path_or_repo_id} was trained on {meta.get('env_id')}, not {env_id}")
    if meta.get("algorithm") == TT_ALGORITHM and "source" in meta and not (directory / SEQRL_FILE).exists():
        return load_transformers_trajectory_model(directory, meta, device=device)
    if meta.get("algorithm") == TT_ALGORITHM:
        return load_trajectory_model(directory, meta, device=device)
    if meta.get("algorithm") == DYNAMICS:
        return load_dynamics(directory, meta, device=device)
    return load_policy(directory, meta, device=device)


def _load_weights(path: Path) -> dict:
    if not path.exists():
        raise CheckpointError(f"{path.parent} has no {path.name}")
    try:
        return load_file(str(path))
    except Exception as err:  # noqa: BLE001 - safetensors raises several types for a damaged file
        raise CheckpointError(f"{path} is not a readable safetensors file ({type(err).__name__}: {err})") from None


def _load_state(module, directory: Path, name: str) -> None:
    """Weights into `module`, or one line naming the file when they do not fit."""
    state = _load_weights(directory / WEIGHTS_NAME)
    missing, unexpected = module.load_state_dict(state, strict=False)
    expected = module.state_dict()
    shapes = [k for k, v in state.items() if k in expected and expected[k].shape != v.shape]
    if missing or unexpected or shapes:
        raise CheckpointError(f"{directory / WEIGHTS_NAME}: weights do not fit the {name} network of {SEQRL_FILE} "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]}, other shapes {shapes[:3]})")


def load_dynamics(directory, metadata: dict | None = None, device="cpu") -> DynamicsEnsemble:
    """A dynamics ensemble (`seqrl train dynamics`, or the `dynamics/` folder of a MOPO / COMBO checkpoint)."""
    directory = Path(directory)
    metadata = metadata or read_metadata(directory)
    if metadata.get("algorithm") != DYNAMICS:
        raise CheckpointError(f"{directory} is a {metadata.get('algorithm')} checkpoint, not a dynamics model")
    try:
        model = DynamicsEnsemble(DynamicsConfig.from_dict(metadata["config"]), metadata["observation_dim"],
                                 metadata["action_dim"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{directory / SEQRL_FILE}: cannot rebuild the dynamics network ({err})") from None
    _load_state(model, directory, DYNAMICS)
    model.metadata = {k: v for k, v in metadata.items() if k not in _NETWORK_KEYS}
    return model.to(device).eval()


def load_policy(directory, metadata: dict | None = None, device="cpu") -> OfflineAlgorithm:
    """A value-based policy (BC, SAC, CQL, IQL, AWAC) from its checkpoint directory."""
    directory = Path(directory)
    metadata = metadata or read_metadata(directory)
    name = metadata.get("algorithm")
    if name not in ALGORITHMS:
        raise CheckpointError(f"{directory}: unknown algorithm {name!r}; seqrl knows {sorted(ALGORITHMS)}")
    try:
        config = config_from_dict(metadata["config"])
        algorithm = build_algorithm(config, metadata["observation_dim"], metadata["action_dim"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{directory / SEQRL_FILE}: cannot rebuild the {name} network ({err})") from None
    _load_state(algorithm, directory, name)
    algorithm.metadata = {k: v for k, v in metadata.items() if k not in _NETWORK_KEYS}
    return algorithm.to(device).eval()


def load_trajectory_model(directory, metadata: dict | None = None, device="cpu") -> TrajectoryModel:
    directory = Path(directory)
    metadata = metadata or read_metadata(directory)
    for name in (DISCRETIZER_CONFIG, DISCRETIZER_WEIGHTS, "config.json", WEIGHTS_NAME):
        if not (directory / name).exists():
            hint = ": it cannot plan; save it with seqrl so the bins travel with the weights" if "discretizer" in name else ""
            raise CheckpointError(f"{directory} has no {name}{hint}")
    try:
        model = TrajectoryTransformerModel.from_pretrained(str(directory)).to(device).eval()
    except Exception as err:  # noqa: BLE001 - transformers raises many types for a damaged file
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{directory}: config.json and {WEIGHTS_NAME} do not load as a Trajectory "
                              f"Transformer ({type(err).__name__}: {reason[:200]})") from None
    try:
        discretizer = Discretizer.load(directory, device=device)
    except Exception as err:  # noqa: BLE001 - a truncated safetensors or JSON
        raise CheckpointError(f"{directory / DISCRETIZER_WEIGHTS} / {DISCRETIZER_CONFIG} are damaged "
                              f"({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''})") from None
    cfg = model.config
    try:
        discretizer.check_layout(observation_dim=cfg.observation_dim, action_dim=cfg.action_dim,
                                 transition_dim=cfg.transition_dim)
    except ValueError as err:
        raise CheckpointError(f"{directory}: {DISCRETIZER_CONFIG} and config.json disagree: {err}") from None
    if discretizer.N != cfg.vocab_size:
        raise CheckpointError(f"{directory}: the discretizer has {discretizer.N} bins but config.json's vocabulary "
                              f"is {cfg.vocab_size}")
    metadata = {k: v for k, v in metadata.items() if k not in ("algorithm", "seqrl_version")}
    return TrajectoryModel(model, discretizer, metadata)


def _is_transformers_tt(directory: Path) -> bool:
    try:
        return json.loads((directory / "config.json").read_text()).get("model_type") == TRANSFORMERS_MODEL_TYPE
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


def load_transformers_trajectory_model(directory, metadata: dict, device="cpu") -> TrajectoryModel:
    """A checkpoint of transformers' deprecated `TrajectoryTransformerModel` (config.json +
    model.safetensors or pytorch_model.bin, the latter read with weights_only=True), converted. Such
    checkpoints carry no discretizer: `discretizer` is None until one is fitted on the data
    (`seqrl plan --checkpoint DIR --dataset ID` does)."""
    directory = Path(directory)
    settings = json.loads((directory / "config.json").read_text())
    try:
        config = config_from_settings(settings)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{directory / 'config.json'}: {err}") from None
    if (directory / WEIGHTS_NAME).exists():
        state = _load_weights(directory / WEIGHTS_NAME)
    elif (directory / "pytorch_model.bin").exists():
        import torch

        try:
            state = torch.load(directory / "pytorch_model.bin", map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - a pickle with code in it, or a damaged file
            raise CheckpointError(f"{directory / 'pytorch_model.bin'} is not a plain state dict (refused to load "
                                  f"it: {str(err).splitlines()[0][:200] if str(err) else type(err).__name__})") from None
    else:
        raise CheckpointError(f"{directory} has neither {WEIGHTS_NAME} nor pytorch_model.bin")
    model = TrajectoryTransformerModel(config)
    load_converted_weights(model, state_dict_from_transformers(state), directory)
    meta = {**metadata, "observation_dim": config.observation_dim, "action_dim": config.action_dim}
    meta.pop("algorithm", None)
    return TrajectoryModel(model.to(device).eval(), None, meta)


def load_converted_weights(model, state: dict, source) -> None:
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{source}: the weights do not fit a Trajectory Transformer of this config "
                              f"(missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})")


# ---------------------------------------------------------------------------- push
def push_to_hub(policy_or_directory, repo_id: str, *, private: bool = False, token=None,
                commit_message: str | None = None) -> str:
    """Upload a checkpoint directory, or save a policy / TrajectoryModel and upload that, to a Hub
    model repo (created if missing). Training checkpoints and logs are left out."""
    if not isinstance(policy_or_directory, (str, Path)):
        with tempfile.TemporaryDirectory() as tmp:
            save_pretrained(policy_or_directory, tmp, repo_id=repo_id)
            return push_to_hub(tmp, repo_id, private=private, token=token, commit_message=commit_message)
    from huggingface_hub import HfApi

    read_metadata(policy_or_directory)  # refuse to push something that is not a seqrl checkpoint
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.upload_folder(folder_path=str(policy_or_directory), repo_id=repo_id,
                             commit_message=commit_message or "Upload seqrl checkpoint",
                             ignore_patterns=["checkpoints/*", "tensorboard/*", "*.tmp"])
    return str(info)
