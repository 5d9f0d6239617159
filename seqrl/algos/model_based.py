"""What MOPO and COMBO share: the rollout settings, model rollouts on the training device, and the
batch source that mixes real and model transitions (reference/model-based.md §1.3).

Every `rollout_freq` updates, `rollout_batch_size` start states are drawn from the real data and
rolled `rollout_length` steps through the dynamics ensemble with the current policy's sampled
actions; each step's (s, a, r - penalty_coef * u(s, a), s', terminal) rows go into a FIFO model
buffer holding `model_retain_epochs` rollouts; rows that terminate (the environment's rule,
`seqrl.data.termination`) or whose prediction is not finite are dropped from later steps. A batch
is `real_ratio` real rows followed by model rows, with `real_rows` marking the real ones.

Everything stays tensors on the training device: one batched ensemble forward per rollout step,
no host copy, no Python loop over members or rows. Without a penalty (COMBO, or MOPO at lambda 0)
only each row's sampled elite is evaluated, since no other member's prediction is used.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from seqrl.data.transitions import ReplayBuffer, TransitionBuffer
from seqrl.models.dynamics import PENALTIES, DynamicsEnsemble, uncertainty

FIELDS = TransitionBuffer.FIELDS


@dataclass
class ModelBasedFields:
    """Rollout settings of MOPO and COMBO (OfflineRL-Kit's names and defaults)."""

    dynamics: str = ""  # a trained dynamics checkpoint (path or Hub id); "" fits one on the dataset first
    dynamics_max_epochs: int = 0  # the fit when no dynamics is given: 0 = until early stopping
    rollout_freq: int = 1000  # updates between rollouts
    rollout_batch_size: int = 50_000  # start states per rollout
    rollout_length: int = 1  # horizon h
    model_retain_epochs: int = 5  # rollouts the model buffer keeps
    real_ratio: float = 0.05  # share of real rows in a batch
    penalty: str = "aleatoric"  # MOPO's uncertainty u(s, a): aleatoric, pairwise-diff, ensemble-std
    penalty_coef: float = 2.5  # lambda in r - lambda * u

    def check_model_based(self) -> None:
        if self.penalty not in PENALTIES:
            raise ValueError(f"penalty must be one of {', '.join(PENALTIES)}, got {self.penalty!r}")
        if not 0.0 <= self.real_ratio <= 1.0:
            raise ValueError(f"real_ratio must be in [0, 1], got {self.real_ratio}")
        for name in ("rollout_freq", "rollout_batch_size", "rollout_length", "model_retain_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.penalty_coef < 0:
            raise ValueError(f"penalty_coef must be >= 0, got {self.penalty_coef}")


# Member-rows per block: a block of B start states runs [E, B, 200] activations (B // E per member
# when only the sampled elite runs); about 8k of them stay in cache: at 50k starts on one AMD core,
# E = 7 ran 22k transitions/s in blocks of 8192 starts and 35k in blocks of 1024 (benchmarks/README.md).
ROLLOUT_MEMBER_ROWS = 8192


@torch.no_grad()
def rollout(dynamics: DynamicsEnsemble, actor, start: Tensor, horizon: int, terminated: Callable[[Tensor], Tensor],
            obs_mean: Tensor, obs_std: Tensor, penalty: str = "aleatoric", penalty_coef: float = 0.0,
            reward_multiplier: float = 1.0, generator: torch.Generator | None = None, chunk: int | None = None
            ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Roll normalised start states [N, D] `horizon` steps through the model with `actor`'s sampled
    actions, in blocks of `chunk` start states (default: ROLLOUT_MEMBER_ROWS member-rows each).
    Returns the transitions (the learner's normalised observations, rewards penalised and scaled like
    the real buffer's) and rollout statistics."""
    rows: dict[str, list[Tensor]] = {k: [] for k in FIELDS}
    penalties, raw_rewards = [], []
    penalised = penalty_coef > 0  # else (COMBO) only each row's sampled elite runs: 1/E of the ensemble's FLOPs
    if chunk is None:
        chunk = max(1, ROLLOUT_MEMBER_ROWS // (dynamics.config.ensemble_size if penalised else 1))
    for block in start.split(chunk):
        obs = block
        for _ in range(horizon):
            if obs.shape[0] == 0:
                break
            action = actor.sample(obs, generator=generator)[0]
            raw = obs * obs_std + obs_mean
            pred = dynamics.step(raw, action, generator, every_member=penalised)
            u = uncertainty(pred.mean, pred.std, penalty) if penalised else torch.zeros_like(pred.rewards)
            finite = torch.isfinite(pred.next_observations).all(-1) & torch.isfinite(pred.rewards) & torch.isfinite(u)
            done = terminated(pred.next_observations) & finite
            next_obs = (pred.next_observations - obs_mean) / obs_std
            reward = reward_multiplier * (pred.rewards - penalty_coef * u)
            for k, v in zip(FIELDS, (obs, action, reward, next_obs, done.float())):
                rows[k].append(v[finite])
            penalties.append(u[finite])
            raw_rewards.append(pred.rewards[finite])
            obs = next_obs[finite & ~done]
    out = {k: torch.cat(v) for k, v in rows.items()}
    u, r = torch.cat(penalties), torch.cat(raw_rewards)
    stats = {"rollout_reward": r.mean(), "rollout_terminal": out["terminals"].mean(),
             "rollout_rows": torch.tensor(float(len(out["rewards"])))}
    if penalised:
        stats |= {"rollout_penalty": u.mean(), "rollout_penalized_reward": (r - penalty_coef * u).mean()}
    return out, stats


def real_row_count(batch_size: int, real_ratio: float) -> int:
    """Real rows at the head of a mixed batch (OfflineRL-Kit: int(), 12 of 256 at 0.05)."""
    return int(batch_size * real_ratio)


class ModelRollouts:
    """The training loop's batch source for MOPO / COMBO: real rows from `real`, model rows from a
    FIFO buffer refilled by `rollout` every `rollout_freq` batches. `metrics` holds the last
    rollout's statistics until the learner reports them."""

    def __init__(self, real: TransitionBuffer, dynamics: DynamicsEnsemble, algorithm, terminated,
                 config: ModelBasedFields, batch_size: int, seed: int = 0):
        self.real, self.dynamics, self.algorithm, self.terminated = real, dynamics, algorithm, terminated
        self.config, self.batch_size = config, batch_size
        device = real.device
        capacity = config.rollout_batch_size * config.rollout_length * config.model_retain_epochs
        obs_dim, act_dim = real.observations.shape[1], real.actions.shape[1]
        self.model_buffer = ReplayBuffer(obs_dim, act_dim, capacity, device=device, seed=seed + 1)
        self.generator = torch.Generator(device=device).manual_seed(seed + 2)
        self.obs_mean = torch.as_tensor(real.obs_mean, device=device)
        self.obs_std = torch.as_tensor(real.obs_std, device=device)
        self.n_real = real_row_count(batch_size, config.real_ratio)
        self.batches = 0
        self.metrics: dict[str, Tensor] = {}
        self.checked_penalty = False

    def refill(self) -> None:
        c = self.config
        starts = torch.randint(len(self.real), (c.rollout_batch_size,), generator=self.generator, device=self.real.device)
        rows, self.metrics = rollout(self.dynamics, self.algorithm.actor, self.real.observations[starts],
                                     c.rollout_length, self.terminated, self.obs_mean, self.obs_std, c.penalty,
                                     c.penalty_coef, self.real.reward_multiplier, self.generator)
        keep = min(len(rows["rewards"]), self.model_buffer.capacity)
        self.model_buffer.add(*(rows[k][-keep:] for k in FIELDS), torch.zeros(keep, device=self.real.device))
        if not self.checked_penalty:
            self.checked_penalty = True
            self.warn_if_falling_pays(rows)

    def warn_if_falling_pays(self, rows: dict[str, Tensor]) -> None:
        """A penalty larger than the reward makes every model step worth less than nothing; where the
        env terminates, ending the episode early is then the best policy (walker2d with pairwise-diff
        and lambda 5 learned to fall within 15 steps: benchmarks/README.md)."""
        m, c = self.metrics, self.config
        can_terminate = bool(self.real.terminals.any()) or bool(rows["terminals"].any())
        if c.penalty_coef > 0 and can_terminate and float(m["rollout_penalized_reward"]) < 0:
            warnings.warn(f"the penalized model reward averages {float(m['rollout_penalized_reward']):.3g} "
                          f"(reward {float(m['rollout_reward']):.3g} - penalty_coef {c.penalty_coef:g} x {c.penalty} "
                          f"{float(m['rollout_penalty']):.3g}) in an env that terminates: ending an episode then pays "
                          f"more than staying alive; a smaller --penalty_coef keeps it above zero", stacklevel=2)

    def next_batch(self) -> dict[str, Tensor]:
        if self.batches % self.config.rollout_freq == 0:
            self.refill()
        self.batches += 1
        n_model = self.batch_size - self.n_real
        real = self.real.sample(self.n_real)
        if n_model and len(self.model_buffer) == 0:
            raise RuntimeError("every model rollout was dropped (non-finite predictions): the dynamics model diverged")
        model = self.model_buffer.sample(n_model) if n_model else {k: real[k][:0] for k in FIELDS}
        batch = {k: torch.cat([real[k], model[k]]) for k in FIELDS}
        batch["real_rows"] = torch.cat([torch.ones(self.n_real), torch.zeros(n_model)]).to(self.real.device)
        return batch

    def state_dict(self) -> dict:
        return {"real": self.real.state_dict(), "model_buffer": self.model_buffer.state_dict(),
                "generator": self.generator.get_state(), "batches": self.batches}

    def load_state_dict(self, state: dict) -> None:
        self.real.load_state_dict(state["real"])
        self.model_buffer.load_state_dict(state["model_buffer"])
        self.generator.set_state(state["generator"].cpu())
        self.batches = int(state["batches"])


class ModelBasedLearner:
    """Runs `algorithm.update` on the mixed batches and adds the latest rollout's statistics."""

    def __init__(self, algorithm, source: ModelRollouts):
        self.algorithm, self.source = algorithm, source

    def train_step(self, batch) -> dict[str, Tensor]:
        metrics = self.algorithm.update(batch)
        if self.source.metrics:
            metrics = metrics | self.source.metrics
            self.source.metrics = {}
        return metrics

    def state_dict(self):
        return self.algorithm.training_state()

    def load_state_dict(self, state):
        self.algorithm.load_training_state(state)
