"""Soft Actor-Critic (Haarnoja et al. 2018): tanh-Gaussian actor, batched twin critics, automatic
entropy temperature. Offline (`seqrl train sac`: the baseline that fails on narrow data) or online
(`seqrl train sac --online`). CQL (`cql.py`) is this class plus a conservative critic penalty, and
MOPO / COMBO train these on mixed real/model batches.

One update: the losses below are computed from the pre-update networks and summed; each reaches
only its own parameters (the actor loss sees the critics' weights detached, the temperature loss
the log-probabilities detached, the TD target the target critics under no_grad), so one backward
and one fused Adam step equal three separate optimisers (tested per term).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from seqrl.algos.base import OfflineAlgorithm, OfflineConfig, make_adam, soft_update
from seqrl.models.nets import EnsembleMLP, TanhGaussianPolicy


# ----------------------------------------------------------------------------- losses


def temperature_loss(log_alpha: Tensor, log_pi: Tensor, target_entropy: float) -> Tensor:
    """-E[log_alpha * (log pi + target_entropy)]: raises alpha when entropy is below target."""
    return -(log_alpha * (log_pi + target_entropy).detach()).mean()


def sac_actor_loss(alpha: Tensor, log_pi: Tensor, q_new: Tensor) -> Tensor:
    """E[alpha * log pi(a|s) - Q(s, a)], a ~ pi(s) reparameterised. alpha is a constant here."""
    return (alpha.detach() * log_pi - q_new).mean()


def soft_td_target(rewards: Tensor, terminals: Tensor, discount: float, next_q: Tensor,
                   next_log_pi: Tensor | None = None, alpha: Tensor | None = None) -> Tensor:
    """r + gamma * (1 - terminal) * (Q'(s', a') - alpha * log pi(a'|s')); without log pi the
    deterministic backup. `terminals` is 1 only for true terminations: truncations bootstrap."""
    if next_log_pi is not None:
        next_q = next_q - alpha * next_log_pi
    return rewards + (1.0 - terminals) * discount * next_q


def critic_td_loss(q: Tensor, td_target: Tensor) -> Tensor:
    """Sum over the ensemble of each critic's MSE to the shared target; q is [E, B]."""
    return (q - td_target).pow(2).mean(-1).sum()


class Temperature(nn.Module):
    """SAC entropy temperature alpha = exp(log_alpha) * multiplier, tuned towards a target entropy
    (-act_dim by default) when ``learnable``; otherwise alpha stays ``initial * multiplier``."""

    def __init__(self, initial_alpha: float = 1.0, multiplier: float = 1.0, learnable: bool = True):
        super().__init__()
        self.multiplier = multiplier
        log_alpha = torch.tensor(float(initial_alpha)).log()
        if learnable:
            self.log_alpha = nn.Parameter(log_alpha)
        else:
            self.register_buffer("log_alpha", log_alpha)

    def forward(self) -> Tensor:
        return self.log_alpha.exp() * self.multiplier


# ----------------------------------------------------------------------------- the algorithm


@dataclass
class SACConfig(OfflineConfig):
    """Defaults: the SAC paper / d3rlpy / SB3 (2x256, every rate 3e-4, tau 0.005, soft backup)."""

    algorithm: str = field(default="sac", init=False)
    hidden_dims: tuple[int, ...] = (256, 256)  # actor and both critics
    policy_lr: float = 3e-4
    qf_lr: float = 3e-4
    alpha_lr: float = 3e-4
    tau: float = 5e-3
    target_update_period: int = 1
    orthogonal_init: bool = False  # critics: orthogonal sqrt(2), last layer 1e-2 (CORL)
    # actor log-std = clamp(multiplier * raw + offset, -20, 2); CORL's CQL learns both scalars
    policy_log_std_multiplier: float = 1.0
    policy_log_std_offset: float = 0.0
    learn_log_std_scale: bool = False
    use_automatic_entropy_tuning: bool = True
    initial_alpha: float = 1.0
    alpha_multiplier: float = 1.0
    target_entropy: float | None = None  # None: -act_dim
    backup_entropy: bool = True  # soft backup: -alpha * log pi(a'|s') in the TD target


@dataclass
class PolicySamples:
    """Actions the actor drew in one update beyond the one that trains it (subclasses use them)."""

    current: Tensor  # [B, n, A] at s (detached)
    current_log_pi: Tensor
    next: Tensor  # [B, n, A] at s'
    next_log_pi: Tensor

    def rows(self, rows: slice | None) -> "PolicySamples":
        """The samples of the rows `rows` (None: all)."""
        if rows is None:
            return self
        return PolicySamples(self.current[rows], self.current_log_pi[rows], self.next[rows], self.next_log_pi[rows])


class SAC(OfflineAlgorithm):
    config_class = SACConfig
    metric_names = ("actor_loss", "critic_loss", "alpha_loss", "alpha")  # logged as they are
    mean_metric_names = ("log_pi", "q_data")  # logged as batch means
    critic_last_init = "default"  # without orthogonal_init: nn.Linear's (SAC, d3rlpy, SB3)

    def __init__(self, config: SACConfig, obs_dim: int, act_dim: int, device=None, **kwargs):
        super().__init__(config, obs_dim, act_dim, **kwargs)
        c = config
        self.critic = EnsembleMLP(
            (obs_dim, act_dim), 1, c.hidden_dims, ensemble_size=2, squeeze_output=True,
            hidden_init="orthogonal" if c.orthogonal_init else "default",
            last_init="orthogonal" if c.orthogonal_init else self.critic_last_init, last_gain=1e-2,
        )
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor = TanhGaussianPolicy(
            obs_dim, act_dim, c.hidden_dims, log_std_multiplier=c.policy_log_std_multiplier,
            log_std_offset=c.policy_log_std_offset, learn_log_std_scale=c.learn_log_std_scale,
            **self._actor_init(),
        )
        self.temperature = Temperature(c.initial_alpha, c.alpha_multiplier,
                                       learnable=c.use_automatic_entropy_tuning)
        self.target_entropy = -float(act_dim) if c.target_entropy is None else c.target_entropy
        self._build_extra()
        self.to(device)
        self.optimizers["main"] = self.optimizer = make_adam(self.param_groups())

    # hooks for subclasses -------------------------------------------------------------------
    def _actor_init(self) -> dict:
        return {}

    def _build_extra(self) -> None:
        """Subclasses add their own parameters here (before the optimizer is built)."""

    def param_groups(self) -> list[dict]:
        c = self.config
        groups = [{"params": list(self.actor.parameters()), "lr": c.policy_lr},
                  {"params": list(self.critic.parameters()), "lr": c.qf_lr}]
        if c.use_automatic_entropy_tuning:
            groups.append({"params": [self.temperature.log_alpha], "lr": c.alpha_lr})
        return groups

    def extra_samples(self) -> int:
        """Policy samples per state at s and at s' beyond SAC's own (CQL: its N)."""
        return 0

    def target_samples(self) -> int:
        """Samples at s' the TD target maxes over (1: the standard backup)."""
        return 1

    def actor_objective(self, obs: Tensor, act: Tensor, mean: Tensor, log_std: Tensor,
                        new_act: Tensor, bc_warm_start: bool) -> Tensor:
        """What the actor maximises besides entropy: min over critics of Q(s, a ~ pi(s)),
        with the critics' weights detached so that the actor loss moves the actor only."""
        return self.critic(obs, new_act, detach_params=True).min(0).values

    def critic_sample_actions(self, batch: dict[str, Tensor], samples: PolicySamples) -> Tensor | None:
        """Further actions [B, K, A] at which Q(s, .) is evaluated in the same pass as the data's."""
        return None

    def target_penalty(self, next_obs: Tensor, next_actions: Tensor, next_log_pi: Tensor) -> Tensor | None:
        """Subtracted from Q'(s', a') in the TD target [B], from the extra samples at s' [B, n, A]
        (BRAC-v: lambda KL(s')); None: nothing."""
        return None

    def penalty_rows(self, batch: dict[str, Tensor]) -> slice | None:
        """The rows at which the sampled actions are evaluated (None: every row; COMBO: model rows)."""
        return None

    def critic_penalty(self, batch, q_data: Tensor, q_sampled: Tensor | None, samples: PolicySamples,
                       rows: slice | None) -> tuple[dict, dict]:
        """Extra critic loss terms from Q(s, a_data) [E, B] and Q(s, sampled) [E, B', K] at `rows`."""
        return {}, {}

    # the update -------------------------------------------------------------------------------
    def loss(self, batch: dict[str, Tensor], bc_warm_start: bool | None = None
             ) -> tuple[Tensor, dict[str, Tensor]]:
        """Total loss of one update and its named terms (keys ending in `_loss`) plus diagnostics.
        `bc_warm_start` defaults to `self.bc_warm_start()`; `update` passes it so that a compiled
        loss does not specialise on the update counter."""
        if bc_warm_start is None:
            bc_warm_start = self.bc_warm_start()
        terms, aux = self.loss_terms(batch, bc_warm_start)
        return sum(terms.values()), {**terms, **aux}

    def loss_terms(self, batch: dict[str, Tensor], bc_warm_start: bool = False
                   ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        c = self.config
        obs, act = batch["observations"], batch["actions"]
        n, n_target = self.extra_samples(), self.target_samples()
        g = self._rng(obs.device)

        # actor at s: one forward, 1 + n samples (sample 0 trains the actor)
        mean, log_std = self.actor(obs)
        pi_act, pi_logp = self.actor.sample_from(mean, log_std, n=1 + n, generator=g)
        new_act, log_pi = pi_act[:, 0], pi_logp[:, 0]
        alpha = self.temperature()
        terms = {"actor_loss": sac_actor_loss(
            alpha, log_pi, self.actor_objective(obs, act, mean, log_std, new_act, bc_warm_start))}
        terms["alpha_loss"] = (temperature_loss(self.temperature.log_alpha, log_pi, self.target_entropy)
                               if c.use_automatic_entropy_tuning else alpha.new_zeros(()))

        # TD target from the target critics at s' (max over target samples, 1 by default)
        with torch.no_grad():
            next_act, next_logp = self.actor.sample(batch["next_observations"], n=n + n_target, generator=g)
            target_q = self.critic_target(batch["next_observations"], next_act[:, n:]).min(0).values
            target_q, idx = target_q.max(-1)
            penalty = self.target_penalty(batch["next_observations"], next_act[:, :n], next_logp[:, :n])
            if penalty is not None:
                target_q = target_q - penalty
            next_log_pi = next_logp[:, n:].gather(1, idx[:, None]).squeeze(1) if c.backup_entropy else None
            td_target = soft_td_target(batch["rewards"], batch["terminals"], c.discount, target_q,
                                       next_log_pi, alpha)

        samples = PolicySamples(pi_act[:, 1:].detach(), pi_logp[:, 1:].detach(),
                                next_act[:, :n], next_logp[:, :n])
        more, rows = self.critic_sample_actions(batch, samples), self.penalty_rows(batch)
        if more is None:
            q_data, q_sampled = self.critic(obs, act), None  # [E, B]
        elif rows is None:  # one pass over [data | sampled] actions: [E, B, 1 + K]
            q = self.critic(obs, torch.cat([act[:, None], more], dim=1))
            q_data, q_sampled = q[..., 0], q[..., 1:]
        else:  # the sampled actions only where the penalty reads them
            q_data, q_sampled = self.critic(obs, act), self.critic(obs[rows], more[rows])
        terms["critic_loss"] = critic_td_loss(q_data, td_target)
        penalty, extra = self.critic_penalty(batch, q_data, q_sampled, samples.rows(rows), rows)
        terms |= penalty
        aux = dict(alpha=alpha, log_pi=log_pi, q_data=q_data, td_target=td_target, **extra)
        return terms, aux

    def update(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        total, aux = self.loss(batch, self.bc_warm_start())
        self._optimize(total)
        self.num_updates += 1
        if self.num_updates % self.config.target_update_period == 0:
            soft_update(self.critic_target, self.critic, self.config.tau)
        metrics = {k: aux[k] for k in self.metric_names}
        metrics |= {k: aux[k].mean() for k in self.mean_metric_names}
        return {k: v.detach() for k, v in metrics.items()}

    def bc_warm_start(self) -> bool:
        return False

    def _act(self, obs: Tensor, deterministic: bool) -> Tensor:
        if deterministic:
            return self.actor.deterministic(obs)
        return self.actor.sample(obs)[0]  # global RNG: acting never moves the training RNG
