"""Trajectory Transformer training: configuration, batches, learning-rate schedule, update step.

Official TT (`config/offline.py`, `utils/training.py`): AdamW lr 6e-4, betas (0.9, 0.95),
weight decay 0.1 on Linear/head weights only, grad-norm clip 1.0, batch 256, and minGPT's
token-based schedule: linear warm-up over `warmup_tokens = len(dataset) * block_size`, then
cosine decay to a 10% floor at `final_tokens = 20 * warmup_tokens`, tokens counted as the
non-stop targets; the learning rate is updated after each optimizer step (so the very first
step runs at the full rate, as in the official trainer). Official epochs are scaled to the
dataset: `n_epochs = int(1e6 / len(dataset) * n_epochs_ref)`.

seqrl clamps the cosine at its floor after `final_tokens` (`cyclic_lr=False`, default); the
official formula is not clamped and the rate rises again after 20 epochs (1.0x at epoch 39
of 50), which the official checkpoints were trained with: `cyclic_lr=True` reproduces it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from seqrl.algos.base import make_adam
from seqrl.data.windows import TokenWindows


@dataclass
class TTConfig:
    """Trajectory Transformer training; defaults are the official D4RL locomotion values."""

    dataset: str = field(default="seqrl/invertedpendulum/medium-v0", metadata={"help": "dataset: built-in, local or remote Minari id (remote ones are downloaded, e.g. mujoco/hopper/medium-v0), saved EpisodeDataset dir, D4RL .hdf5/.npz file, or Hub dataset repo id"})
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads (default: the CPUs this process may use minus the busy ones, at least 1; see seqrl/threads.py)"})
    env_id: str = field(default="", metadata={"help": "gymnasium env the planner runs in (default: the one the dataset records)"})
    ref_min_score: float | None = field(default=None, metadata={"help": "reference return of a random policy for normalized scores (with --ref_max_score; default: the dataset's own, none if it has none)"})
    ref_max_score: float | None = field(default=None, metadata={"help": "reference return of an expert policy for normalized scores (with --ref_min_score)"})
    output_dir: str = field(default="", metadata={"help": "where checkpoints, TensorBoard logs and the final model go (default: the config file's for its own dataset, else outputs/tt/DATASET, the dataset id's slashes as dashes)"})
    seed: int = field(default=42, metadata={"help": "random seed (official: 42)"})
    # tokenization
    n_bins: int = field(default=100, metadata={"help": "bins per dimension N (official 100)"})
    discretizer: str = field(default="quantile", metadata={"help": "quantile (official) or uniform"})
    discount: float = field(default=0.99, metadata={"help": "discount of the value (reward-to-go) token"})
    termination_penalty: float | None = field(default=-100.0, metadata={"help": "reward written over true terminal transitions (official -100); null to keep rewards"})
    context: int = field(default=10, metadata={"help": "transitions per training window (official 10)"})
    max_path_length: int | None = field(default=None, metadata={"help": "loss mask beyond this step; default: the env time limit"})
    # model
    n_layer: int = field(default=4, metadata={"help": "transformer blocks (official 4)"})
    n_head: int = field(default=4, metadata={"help": "attention heads (official 4)"})
    n_embd: int = field(default=128, metadata={"help": "model width (official 32 per head x 4 = 128)"})
    dropout: float = field(default=0.1, metadata={"help": "embedding, attention and residual dropout (official 0.1)"})
    action_weight: float = field(default=5.0, metadata={"help": "loss weight of action tokens (official 5)"})
    reward_weight: float = field(default=1.0, metadata={"help": "loss weight of reward tokens"})
    value_weight: float = field(default=1.0, metadata={"help": "loss weight of value tokens"})
    # optimisation
    batch_size: int = field(default=256, metadata={"help": "global batch size, split evenly over processes (official 256)"})
    learning_rate: float = field(default=6e-4, metadata={"help": "AdamW peak learning rate (official 6e-4)"})
    betas: tuple[float, float] = field(default=(0.9, 0.95), metadata={"help": "AdamW betas"})
    weight_decay: float = field(default=0.1, metadata={"help": "weight decay on Linear and head weights only"})
    grad_norm_clip: float = field(default=1.0, metadata={"help": "gradient norm clip"})
    lr_decay: bool = field(default=True, metadata={"help": "token-based warm-up + cosine schedule"})
    cyclic_lr: bool = field(default=False, metadata={"help": "official unclamped cosine (rises again after 20 epochs)"})
    n_epochs_ref: float = field(default=50, metadata={"help": "official epochs = int(1e6 / len(dataset) * n_epochs_ref)"})
    max_steps: int | None = field(default=None, metadata={"help": "cap on updates (CPU budgets); default: the official epochs"})
    # loop
    log_every: int = field(default=50, metadata={"help": "log metrics every N updates"})
    save_every: int = field(default=1000, metadata={"help": "write a resumable checkpoint every N updates"})
    reuse_freed_memory: bool = field(default=True, metadata={"help": "keep freed blocks (up to 32 MB) in the heap between steps instead of re-faulting them from the OS (glibc only; seqrl/cpu/memory.py)"})
    resume: bool = field(default=False, metadata={"help": "continue from the latest checkpoint in output_dir"})


def official_updates(config: TTConfig, n_windows: int) -> int:
    """Updates of the official schedule: n_epochs full passes of batch_size windows."""
    n_epochs = max(1, int(1e6 / n_windows * config.n_epochs_ref))
    return n_epochs * max(1, n_windows // config.batch_size)


def lr_multiplier(tokens: float, warmup_tokens: float, final_tokens: float, cyclic: bool) -> float:
    if tokens < warmup_tokens:
        return tokens / max(1.0, warmup_tokens)
    progress = (tokens - warmup_tokens) / max(1.0, final_tokens - warmup_tokens)
    if not cyclic:
        progress = min(progress, 1.0)
    return max(0.1, 0.5 * (1.0 + math.cos(math.pi * progress)))


class WindowBatches:
    """Epoch-wise shuffled batches of token windows, resumable at any step.

    Each epoch is a permutation drawn from `seed + epoch`; a global batch is the next
    `batch_size` ids and process `rank` takes its contiguous 1/world share, so one process
    and several see exactly the same global batches. A trailing partial batch is skipped.
    """

    def __init__(self, windows: TokenWindows, batch_size: int, seed: int, rank: int = 0, world: int = 1, device="cpu"):
        if batch_size % world:
            raise ValueError(f"batch_size {batch_size} must be divisible by the {world} processes")
        if len(windows) < batch_size:
            raise ValueError(f"the dataset has {len(windows)} training windows, fewer than one batch of {batch_size}")
        self.windows, self.batch_size, self.seed = windows, batch_size, seed
        self.rank, self.world, self.device = rank, world, device
        self.epoch, self.position = 0, 0
        self._perm = None

    def _permutation(self):
        if self._perm is None:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            self._perm = torch.randperm(len(self.windows), generator=g).numpy()
        return self._perm

    def next_batch(self):
        if self.position + self.batch_size > len(self.windows):
            self.epoch, self.position, self._perm = self.epoch + 1, 0, None
        ids = self._permutation()[self.position:self.position + self.batch_size]
        self.position += self.batch_size
        share = self.batch_size // self.world
        x, y, m = self.windows.__getitems__(ids[self.rank * share:(self.rank + 1) * share])
        return x.to(self.device), y.to(self.device), m.to(self.device)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position, self._perm = state["epoch"], state["position"], None


def make_tt_optimizer(model, config: TTConfig) -> torch.optim.AdamW:
    """AdamW with the minGPT decay split (official), as one fused kernel call per step."""
    return make_adam(model.optimizer_param_groups(config.weight_decay), torch.optim.AdamW,
                     lr=config.learning_rate, betas=tuple(config.betas))


class TTLearner:
    """One AdamW update of the Trajectory Transformer with the token-based schedule."""

    def __init__(self, model, config: TTConfig, n_windows: int, accelerator):
        self.config, self.accelerator = config, accelerator
        block = model.config.block_size
        self.warmup_tokens = n_windows * block
        self.final_tokens = 20 * self.warmup_tokens
        self.stop_token = model.config.vocab_size
        optimizer = make_tt_optimizer(model, config)
        self.model, self.optimizer = accelerator.prepare(model, optimizer)
        self.tokens_seen = 0.0
        self.lr = config.learning_rate

    def train_step(self, batch) -> dict[str, torch.Tensor]:
        x, y, mask = batch
        self.model.train()
        out = self.model(x, targets=y, loss_mask=mask)
        self.optimizer.zero_grad(set_to_none=True)
        self.accelerator.backward(out.loss)
        self.accelerator.clip_grad_norm_(self.model.parameters(), self.config.grad_norm_clip)
        self.optimizer.step()
        lr_used = self.lr
        if self.config.lr_decay:
            # Tokens of the GLOBAL batch, so the schedule is the same for any number of processes.
            count = (y != self.stop_token).sum()
            if self.accelerator.num_processes > 1:
                count = self.accelerator.reduce(count, reduction="sum")
            self.tokens_seen += float(count)
            self.lr = self.config.learning_rate * lr_multiplier(
                self.tokens_seen, self.warmup_tokens, self.final_tokens, self.config.cyclic_lr)
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr
        loss = out.loss.detach()
        if self.accelerator.num_processes > 1:
            loss = self.accelerator.reduce(loss, reduction="mean")
        metrics = {"loss": loss, "lr": torch.tensor(lr_used),
                   "tokens": torch.tensor(float(y.numel() * self.accelerator.num_processes))}
        metrics.update({f"loss_{k}": v for k, v in (out.losses_by_type or {}).items()})
        return metrics

    def state_dict(self) -> dict:
        model = self.accelerator.unwrap_model(self.model)
        return {"model": model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "tokens_seen": self.tokens_seen, "lr": self.lr}

    def load_state_dict(self, state: dict) -> None:
        self.accelerator.unwrap_model(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.tokens_seen, self.lr = state["tokens_seen"], state["lr"]
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
