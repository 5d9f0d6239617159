"""`seqrl convert`: a checkpoint of the official trajectory-transformer code as a seqrl checkpoint.

    seqrl convert logs/hopper-medium-v2/gpt/azure/state_49.pt \\
        --model_config logs/hopper-medium-v2/gpt/azure/model_config.pkl \\
        --data_config logs/hopper-medium-v2/gpt/azure/data_config.pkl \\
        --dataset mujoco/hopper/medium-v0 --output outputs/tt-official/model

The official run saves its GPT's state dict (`torch.save`, read here with weights_only=True) and its
settings as pickled `trajectory.utils.config.Config` objects. A pickle can run code when loaded, so
seqrl reads these two only here, on this explicit request, with an unpickler that admits nothing but
that Config class and the class name it stores (anything else is refused), never during
`from_pretrained`. The official discretizer is not saved: it is fitted on the dataset at load time,
so `--dataset` gives the data it was trained on and the bins are fitted the official way (quantile,
N from the config, the data config's discount and termination penalty). The result is an ordinary
seqrl checkpoint (`seqrl plan --checkpoint`, `from_pretrained`, `push`).

Checkpoints of transformers' deprecated `TrajectoryTransformerModel` load without a command
(`seqrl.from_pretrained(DIR_OR_REPO_ID)` converts them as it loads them: same logits), but carry no
bins either; `seqrl convert DIR --dataset ID --output OUT` adds them, so the model can plan.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path
from typing import Any

import torch

from seqrl.hub import CheckpointError, TrajectoryModel, load_converted_weights, resolve, save_pretrained
from seqrl.models.conversion import config_from_settings, state_dict_from_official
from seqrl.models.trajectory_transformer import TrajectoryTransformerModel

# the only globals an official config pickle may name (anything else is refused)
_CONFIG_CLASS = ("trajectory.utils.config", "Config")


class _Settings:
    """What an official Config unpickles into here: its attributes, nothing run."""

    def __setstate__(self, state):
        self.__dict__.update(state)


class _ClassName:
    def __init__(self, module: str, name: str):
        self.name = f"{module}.{name}"


class _OfficialUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) == _CONFIG_CLASS:
            return _Settings
        if module.startswith("trajectory.") or (module, name) == ("copyreg", "__newobj__") or \
                (module, name) == ("copyreg", "_reconstructor"):
            if module == "copyreg":
                return getattr(__import__("copyreg"), name)
            return _ClassName(module, name)  # the model / dataset class a Config names: kept as a name
        if (module, name) == ("builtins", "object"):
            return object
        raise pickle.UnpicklingError(f"refused: the pickle names {module}.{name}, not an official Config")


def read_official_config(path) -> dict[str, Any]:
    """The settings (`_dict`) of an official pickled Config, unpickled with only that class admitted."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            obj = _OfficialUnpickler(f).load()
    except FileNotFoundError:
        raise CheckpointError(f"no file {path}") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path} is not an official trajectory-transformer config ({err})") from None
    settings = getattr(obj, "_dict", None)
    if not isinstance(settings, dict):
        raise CheckpointError(f"{path} holds no Config settings")
    return settings


def load_official_model(state_path, model_config_path) -> TrajectoryTransformerModel:
    """The official GPT's weights in seqrl's model (same logits, tested)."""
    settings = read_official_config(model_config_path)
    try:
        config = config_from_settings(settings)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{model_config_path}: {err}") from None
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no file {state_path}") from None
    except Exception as err:  # noqa: BLE001 - a pickle with code in it, or a damaged file
        raise CheckpointError(f"{state_path} is not a plain state dict (refused to load it: "
                              f"{str(err).splitlines()[0][:200] if str(err) else type(err).__name__})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{state_path} holds a {type(state).__name__}, not a state dict")
    model = TrajectoryTransformerModel(config)
    load_converted_weights(model, state_dict_from_official(state), state_path)
    return model.eval()


def convert_official(state_path, model_config_path, dataset: str, output, data_config_path=None) -> Path:
    """Official checkpoint (or, with `model_config_path` None, a transformers TrajectoryTransformerModel
    directory) + the dataset it was trained on -> a seqrl TT checkpoint at `output`, bins included."""
    from seqrl.data import TokenizerConfig, TokenWindows
    from seqrl.hub import load_transformers_trajectory_model
    from seqrl.training.datasets import dataset_metadata, load_episodes

    if model_config_path is None:
        if Path(state_path).is_file():
            raise CheckpointError(f"{state_path}: give --model_config for an official state dict, or a transformers "
                                  f"TrajectoryTransformerModel directory or Hub repo id (config.json + weights)")
        directory = resolve(str(state_path))  # a local folder or a Hub snapshot
        model = load_transformers_trajectory_model(directory, {"source": str(state_path)}).model
    else:
        model = load_official_model(state_path, model_config_path)
    data = read_official_config(data_config_path) if data_config_path else {}
    cfg = model.config
    episodes = load_episodes(dataset, "", None, None)
    if (episodes.observation_dim, episodes.action_dim) != (cfg.observation_dim, cfg.action_dim):
        raise CheckpointError(f"{dataset} has observations {episodes.observation_dim} and actions {episodes.action_dim}; "
                              f"the model was trained on {cfg.observation_dim} and {cfg.action_dim}")
    tokenizer = TokenizerConfig(discount=float(data.get("discount", 0.99)),
                                termination_penalty=data.get("penalty", -100.0), n_bins=cfg.vocab_size,
                                method="quantile", context=int(data.get("sequence_length", 10)),
                                max_path_length=data.get("max_path_length"))
    windows = TokenWindows(episodes, tokenizer)
    metadata = {**dataset_metadata(episodes, dataset),
                "tokenizer": {"method": "quantile", "n_bins": cfg.vocab_size, "discount": tokenizer.discount,
                              "termination_penalty": tokenizer.termination_penalty, "context": tokenizer.context,
                              "max_path_length": windows.max_path_length},
                # the official run's own budget is not in its files: the card says "converted"
                "training": {"steps": "converted (official trajectory-transformer run)", "batch_size": "n/a",
                             "learning_rate": "n/a", "final_loss": None, "final_losses_by_type": {}},
                "converted_from": {"layout": "jannerm/trajectory-transformer" if model_config_path else
                                   "transformers TrajectoryTransformerModel", "source": str(state_path)}}
    return save_pretrained(TrajectoryModel(model, windows.discretizer, metadata), output)


def main(argv=None) -> Path:
    p = argparse.ArgumentParser(prog="seqrl convert", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("state", help="the official run's state_N.pt (a torch.save'd state dict), or a transformers "
                   "TrajectoryTransformerModel directory (then no --model_config)")
    p.add_argument("--model_config", default=None, help="the official run's model_config.pkl (read with a restricted "
                   "unpickler)")
    p.add_argument("--data_config", default=None, help="the run's data_config.pkl (discount, penalty, sequence length; "
                   "default: the official defaults)")
    p.add_argument("--dataset", required=True, help="the data the model was trained on (for the discretizer's bins): "
                   "any dataset id or path seqrl reads")
    p.add_argument("--output", required=True, help="directory of the seqrl checkpoint to write")
    args = p.parse_args(argv)
    from seqrl.training.run import one_line_errors

    with one_line_errors():
        path = convert_official(args.state, args.model_config, args.dataset, args.output, args.data_config)
    print(f"converted {args.state} -> {path}")
    return path
