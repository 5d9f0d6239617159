"""Fitting a dynamics ensemble on the one training loop: `seqrl train dynamics`, and the first phase
of every MOPO / COMBO run that is not given one (`--dynamics PATH_OR_REPO_ID` reuses a fit).

One loop step is one epoch (`seqrl.algos.dynamics.DynamicsTrainer`), so the fit has the loop's
progress bar, TensorBoard (`train/holdout_mse`, ...), a checkpoint after every epoch and exact
resume; early stopping ends the loop.

    fit_dynamics(buffer, DynamicsConfig(), "outputs/dynamics/hopper")   # from Python
    seqrl train dynamics --dataset seqrl/hopper/medium-v0
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from seqrl.algos.dynamics import DynamicsTrainer, NoBatches
from seqrl.config import ConfigError, check_ranges, combine, output_name, parse_config, split, to_dict
from seqrl.data import BufferConfig, TransitionBuffer
from seqrl.hub import CheckpointError, from_pretrained, save_pretrained
from seqrl.models.dynamics import DynamicsConfig, DynamicsEnsemble
from seqrl.threads import configure_threads
from seqrl.training.datasets import dataset_metadata, load_episodes
from seqrl.training.loop import LoopConfig, seed_everything, train

EPOCH_CAP = 10_000  # the loop's step budget when only early stopping ends a fit


def fit_dynamics(buffer: TransitionBuffer, config: DynamicsConfig, output_dir, *, resume: bool = False,
                 progress: bool = True, metadata: dict | None = None, identity: dict | None = None) -> DynamicsEnsemble:
    """Fit a fresh ensemble on the buffer's transitions (raw observations and rewards); checkpoints
    and TensorBoard logs go to `output_dir`. Returns the model with its best snapshots and elites."""
    obs_dim, act_dim = buffer.observations.shape[1], buffer.actions.shape[1]
    torch.manual_seed(config.seed)  # the members' initial weights
    model = DynamicsEnsemble(config, obs_dim, act_dim).to(buffer.device)
    trainer = DynamicsTrainer(model, buffer.raw_transitions(), config)
    capped = config.max_epochs > 0
    loop = LoopConfig(max_steps=config.max_epochs or EPOCH_CAP, log_every=1, save_every=1, keep_checkpoints=1,
                      progress=progress, progress_total=capped,
                      progress_desc="dynamics epochs (early stopping, capped)" if capped else "dynamics epochs (until early stopping)")
    train(trainer, NoBatches(), loop, output_dir, resume=resume, identity={"algorithm": "dynamics", **(identity or {})})
    if not trainer.finished:  # the epoch budget ran out before early stopping
        trainer.finish()
    elites = model.elites
    model.metadata = {**(metadata or {}), "training": {
        "epochs": trainer.epochs, "holdout": len(trainer.holdout_targets), "train_rows": len(trainer.train_targets),
        "holdout_mse": trainer.best.tolist(), "elite_holdout_mse": float(trainer.best[elites].mean())}}
    return model.eval()


def load_dynamics_for(path_or_repo_id: str, obs_dim: int, act_dim: int, env_id: str | None, device) -> DynamicsEnsemble:
    """A saved ensemble (a dynamics checkpoint, or a MOPO / COMBO one with its `dynamics/` folder)
    that fits this data's spaces and environment."""
    path = Path(path_or_repo_id)
    sub = "dynamics" if (path / "dynamics" / "seqrl.json").exists() else ""
    model = from_pretrained(path_or_repo_id, algorithm="dynamics", device=device, subfolder=sub)
    if (model.obs_dim, model.act_dim) != (obs_dim, act_dim):
        raise CheckpointError(f"{path_or_repo_id}: the dynamics model takes observations {model.obs_dim} and actions "
                              f"{model.act_dim}, the data has {obs_dim} and {act_dim}")
    if env_id and model.metadata.get("env_id") and model.metadata["env_id"] != env_id:
        raise CheckpointError(f"{path_or_repo_id}: the dynamics model was fitted on {model.metadata['env_id']}, "
                              f"the data is from {env_id}")
    return model


@dataclass
class DynamicsRunConfig:
    dataset: str = field(default="seqrl/invertedpendulum/medium-v0", metadata={"help": "dataset to fit on (any source `seqrl train` takes)"})
    output_dir: str = field(default="", metadata={"help": "where checkpoints, TensorBoard logs and the model go (default outputs/dynamics/DATASET, the dataset id's slashes as dashes)"})
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads (default: the CPUs this process may use minus the busy ones)"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, or auto"})
    resume: bool = field(default=False, metadata={"help": "continue from the latest epoch checkpoint in output_dir"})


HELP = {
    "ensemble_size": "members of the ensemble", "num_elites": "members used for sampling (lowest holdout MSE)",
    "hidden_dims": "hidden widths of every member (Swish)", "weight_decays": "L2 coefficient per layer, input layer first",
    "lr": "Adam learning rate", "batch_size": "rows per member per step", "holdout_ratio": "share of the data held out (capped by max_holdout)",
    "max_holdout": "most holdout transitions", "max_epochs_since_update": "stop after this many epochs without a member improving",
    "improvement_threshold": "relative holdout-MSE gain that counts as improving", "max_epochs": "epoch budget (0: until early stopping)",
    "logvar_loss_coef": "weight of the log-variance bound regulariser", "seed": "random seed (split, bootstrap, init)",
}


def train_dynamics(argv=None, description: str = "") -> dict:
    """`seqrl train dynamics`: fit an ensemble on a dataset and save it as a checkpoint (OUTPUT_DIR/model)."""
    argv = sys.argv[1:] if argv is None else argv
    cls = combine("DynamicsTrainConfig", DynamicsRunConfig, DynamicsConfig, help_texts=HELP)
    cfg = parse_config(cls, argv, description=description or __doc__)
    check_ranges(cfg, {"threads": 1, "ensemble_size": 1, "num_elites": 1, "batch_size": 1, "max_holdout": 1,
                       "max_epochs_since_update": 1, "max_epochs": 0})
    try:
        config = split(cfg, DynamicsConfig)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    print(f"torch threads: {configure_threads(cfg.threads)}")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    seed_everything(config.seed)
    episodes = load_episodes(cfg.dataset)
    buffer = TransitionBuffer(episodes, BufferConfig(), device=device, seed=config.seed)
    print(f"data: {episodes.summary()}")
    out = Path(cfg.output_dir or f"outputs/dynamics/{output_name(cfg.dataset)}")
    meta = {k: v for k, v in dataset_metadata(episodes, cfg.dataset).items() if k not in ("ref_min_score", "ref_max_score", "ref_source")}
    model = fit_dynamics(buffer, config, out, resume=cfg.resume, metadata={**meta, "run": to_dict(cfg)},
                         identity={"data": cfg.dataset})
    save_pretrained(model, out / "model")
    t = model.metadata["training"]
    print(f"saved {out / 'model'}: {t['epochs']} epochs, elites {model.elites.tolist()}, "
          f"elite holdout MSE {t['elite_holdout_mse']:.4g}")
    return {"output_dir": str(out), "model": model}
