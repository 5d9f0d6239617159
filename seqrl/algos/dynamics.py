"""Fitting the dynamics ensemble (`seqrl.models.dynamics`) as the references do (OfflineRL-Kit's
`EnsembleDynamics.train`, official MOPO's `bnn.py`):

- a holdout of min(holdout_ratio * N, max_holdout) transitions, drawn at random;
- each member trains on its own bootstrap resample of the rest, reshuffled every epoch;
- after every epoch each member's holdout MSE (of its mean) is compared with its best: a relative
  improvement above `improvement_threshold` keeps a snapshot of that member; training stops after
  `max_epochs_since_update` epochs in which no member improved (or at `max_epochs`);
- the best snapshots are restored and the `num_elites` members with the lowest holdout MSE are the elites.

`DynamicsTrainer` is a learner of the one training loop whose step is one epoch, so fitting gets the
loop's progress bar, TensorBoard, atomic checkpoints and exact resume; `finished` ends the loop early.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor

from seqrl.algos.base import make_adam
from seqrl.models.dynamics import DynamicsConfig, DynamicsEnsemble


def dynamics_targets(batch: dict[str, Tensor]) -> Tensor:
    """(s' - s, r) per row: what the ensemble predicts."""
    return torch.cat([batch["next_observations"] - batch["observations"], batch["rewards"][:, None]], dim=-1)


def improved(best: Tensor, new: Tensor, threshold: float) -> Tensor:
    """Members whose holdout MSE improved by more than `threshold` relative to their best."""
    return (best - new) / best > threshold


class DynamicsTrainer:
    """Learner for `seqrl.training.loop.train`: `train_step(_)` runs one epoch over the bootstrap
    resamples, then scores the holdout. `transitions`: raw observations, actions in [-1, 1], raw
    rewards (dict of [N, .] tensors on the training device)."""

    def __init__(self, model: DynamicsEnsemble, transitions: dict[str, Tensor], config: DynamicsConfig | None = None):
        config = config or model.config
        self.model, self.config = model, config
        n = len(transitions["rewards"])
        holdout = min(int(n * config.holdout_ratio), config.max_holdout)
        if holdout < 1 or n - holdout < config.batch_size // 8:
            raise ValueError(f"{n} transitions are too few to fit a dynamics model (holdout {holdout})")
        device = transitions["rewards"].device
        self.generator = torch.Generator(device=device).manual_seed(config.seed)
        order = torch.randperm(n, generator=self.generator, device=device)
        inputs = torch.cat([transitions["observations"], transitions["actions"]], dim=-1)
        targets = dynamics_targets(transitions)
        train, hold = order[holdout:], order[:holdout]
        self.train_inputs, self.train_targets = inputs[train], targets[train]
        self.holdout_inputs, self.holdout_targets = inputs[hold], targets[hold]
        model.set_input_statistics(self.train_inputs)
        E, size = config.ensemble_size, len(train)
        self.bootstrap = torch.randint(size, (E, size), generator=self.generator, device=device)
        self.optimizer = make_adam([{"params": list(model.parameters()), "lr": config.lr}])
        self.best = torch.full((E,), 1e10, device=device)  # the references' start: any first score improves
        self.snapshot = self._member_state()
        self.epochs = self.epochs_since_update = 0
        self.finished = False

    # --------------------------------------------------------------- one epoch
    def train_step(self, _batch=None) -> dict[str, Tensor]:
        c, model = self.config, self.model
        # each member's resample in a fresh order (OfflineRL-Kit's shuffle_rows)
        perm = torch.rand(self.bootstrap.shape, generator=self.generator, device=self.bootstrap.device).argsort(-1)
        self.bootstrap = self.bootstrap.gather(1, perm)
        model.train()
        losses = [self.update(self.bootstrap[:, start:start + c.batch_size])
                  for start in range(0, self.bootstrap.shape[1], c.batch_size)]
        holdout = self.holdout_mse()
        better = improved(self.best, holdout, c.improvement_threshold)
        self._keep(better)
        self.best = torch.where(better, holdout, self.best)
        self.epochs += 1
        self.epochs_since_update = 0 if bool(better.any()) else self.epochs_since_update + 1
        if self.epochs_since_update >= c.max_epochs_since_update or (c.max_epochs and self.epochs >= c.max_epochs):
            self.finish()
        return {"loss": torch.stack(losses).mean(), "holdout_mse": holdout.mean(),
                "best_holdout_mse": self.best.mean(), "epochs_since_update": torch.tensor(float(self.epochs_since_update))}

    def update(self, idx: Tensor) -> Tensor:
        """One gradient step, member e on the training rows idx[e] ([E, b] indices)."""
        obs_dim = self.model.obs_dim
        x, y = self.train_inputs[idx], self.train_targets[idx]
        loss, _ = self.model.loss(x[..., :obs_dim], x[..., obs_dim:], y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def holdout_mse(self) -> Tensor:
        obs_dim = self.model.obs_dim
        self.model.eval()
        return self.model.mse(self.holdout_inputs[:, :obs_dim], self.holdout_inputs[:, obs_dim:], self.holdout_targets)

    def finish(self) -> None:
        """Restore every member's best snapshot and choose the elites by holdout MSE."""
        self._restore()
        holdout = self.holdout_mse()
        self.model.elites.copy_(holdout.argsort()[: self.config.num_elites])
        self.best = holdout
        self.finished = True

    # --------------------------------------------------------------- member snapshots
    def _member_params(self):
        return [p for p in self.model.parameters() if p.dim() == 3]  # the (E, ., .) weights and biases

    def _member_state(self) -> list[Tensor]:
        return [p.detach().clone() for p in self._member_params()]

    @torch.no_grad()
    def _keep(self, members: Tensor) -> None:
        for saved, p in zip(self.snapshot, self._member_params()):
            saved[members] = p[members]

    @torch.no_grad()
    def _restore(self) -> None:
        for saved, p in zip(self.snapshot, self._member_params()):
            p.copy_(saved)

    # --------------------------------------------------------------- resume
    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "bootstrap": self.bootstrap, "generator": self.generator.get_state(), "best": self.best,
                "snapshot": list(self.snapshot), "epochs": self.epochs,
                "epochs_since_update": self.epochs_since_update, "finished": self.finished}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        self.bootstrap = state["bootstrap"].to(self.bootstrap.device)
        self.generator.set_state(state["generator"].cpu())
        self.best = state["best"].to(self.best.device)
        self.snapshot = [t.to(self.best.device).clone() for t in state["snapshot"]]
        self.epochs, self.epochs_since_update = int(state["epochs"]), int(state["epochs_since_update"])
        self.finished = bool(state["finished"])


class NoBatches:
    """The batch source of a dynamics fit: the trainer holds its data, so a step needs no batch."""

    def next_batch(self):
        return None

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass
