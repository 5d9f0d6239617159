"""Reference Trajectory Transformer planner: the official `beam_plan` loop, step for step, uncached.

It follows jannerm/trajectory-transformer `trajectory/search/{core,sampling,utils}.py`: every sampled
token runs the model over the whole (cropped) sequence. It is slow (1-2.5 minutes per env step at
hopper defaults on 2 shared CPU cores) and exists to pin down the semantics that `BeamPlanner` must match.

Official semantics kept here (and shared with the fast planner through the helpers below):
  - prefix = the last <= max_context_transitions executed transitions [s, a, r, V=1e6 placeholder],
    discretized, then the discretized current observation; repeated beam_width times.
  - before every model call the sequence is cropped from the front by whole transitions to at most
    max_context_transitions * D - 1 tokens (and the model block), so the window starts at s^0.
  - per planned transition: tile the beams n_expand times; sample act_dim action tokens (ascending-cdf
    filter and/or top-k); take r and V tokens by argmax (k_rew = 1) while scoring with E[r], E[V]
    under the RAW probabilities; score sum_k gamma^k r_k + gamma^(t+1) V_t; keep the best beam_width;
    then (except after the last transition) observation tokens (k_obs = 1: argmax).
  - return the best beam's last H transitions [H, D]; execute the bin centre of its first action.

Two choices the official code leaves open, made identically in both planners:
  - Sampling draws `argmax(p / q)` with q ~ Exp(1) from a torch.Generator (`sample_tokens`). This is
    the algorithm `torch.multinomial(p, 1)` itself uses, without its host sync. All the noise a plan
    needs is drawn up front in a fixed order (`draw_noise`), so planners that order rows alike see
    the same random numbers.
  - Pruning keeps the top beam_width by a stable descending sort, so equal scores (identical beams
    are common) keep their row order; `torch.topk` leaves the order of ties unspecified.
"""

from __future__ import annotations

import numpy as np
import torch

from seqrl.planning.config import PlannerConfig

VALUE_PLACEHOLDER = 1e6  # official: context V tokens are never attended to, any value will do


# ----------------------------------------------------------------------------- shared helpers


def window_limit(model_block_size: int, transition_dim: int, max_context_transitions: int | None) -> int:
    """Most tokens a forward pass may see (official `max_block`, capped by the model block)."""
    if max_context_transitions is None:
        return model_block_size
    return min(model_block_size, max_context_transitions * transition_dim - 1)


def window_start(length: int, transition_dim: int, block: int) -> int:
    """First kept token of a sequence of `length` tokens: crop whole transitions until <= block remain."""
    if length <= block:
        return 0
    excess = length - block
    return -(-excess // transition_dim) * transition_dim  # round up to a whole transition


def context_capacity(model_block_size: int, transition_dim: int, max_context_transitions: int | None) -> int:
    """Context transitions worth keeping. Official keeps max_context_transitions; with None it keeps all,
    but anything before the first window never reaches the model, so ceil(block / D) is exact."""
    if max_context_transitions is not None:
        return max_context_transitions
    return -(-model_block_size // transition_dim)


def env_seed(seed: int, env_index: int) -> int:
    """Seed of environment `env_index`'s generator: independent streams for (seed, env) pairs."""
    return int(np.random.SeedSequence([seed, env_index]).generate_state(1)[0])


def filter_cdf(logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """Official `filter_cdf`: sort probabilities ascending, find the largest one whose ascending
    cumulative mass is still < threshold, and set every token with p <= it to logit -1000.
    So the least likely tokens holding < threshold of the mass go (cdf 0.6 ~ nucleus 0.4).
    If even the least likely token alone reaches the threshold, it (and its ties) still goes."""
    probs = logits.softmax(-1)
    sorted_probs = probs.sort(-1).values
    below = sorted_probs.cumsum(-1) < threshold  # a prefix of the sorted order
    last = (below.sum(-1, keepdim=True) - 1).clamp(min=0)
    cutoff = sorted_probs.gather(-1, last)
    return logits.masked_fill(probs <= cutoff, -1000.0)


def filter_topk(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Official `top_k_logits`: keep tokens at least as likely as the k-th (ties survive)."""
    kth = logits.topk(k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, -float("inf"))


def sample_tokens(logits: torch.Tensor, k: int | None, cdf: float | None, noise: torch.Tensor | None) -> torch.Tensor:
    """Next tokens [R] from logits [R, V]: cdf filter, then top-k (official order), then a draw.
    k == 1 is argmax (no noise); otherwise argmax(p / noise) with noise ~ Exp(1), i.e. a sample of p."""
    if cdf is not None:
        logits = filter_cdf(logits, cdf)
    if k is not None:
        logits = filter_topk(logits, k)
    if k == 1:
        return logits.argmax(-1)
    return (logits.softmax(-1) / noise).argmax(-1)


def draw_noise(config: PlannerConfig, obs_dim: int, act_dim: int, n_tokens: int, generator: torch.Generator,
               dtype: torch.dtype, device) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """All the Exp(1) noise one plan of one environment needs, actions first, then observations:
    actions [H, act_dim, B * n_expand, n_tokens], observations [H - 1, obs_dim, B, n_tokens]
    (None where those tokens are greedy)."""
    H, B, E = config.horizon, config.beam_width, config.n_expand
    act = obs = None
    if not config.greedy_actions:
        act = torch.empty(H, act_dim, B * E, n_tokens, dtype=dtype, device=device).exponential_(generator=generator)
    if not config.greedy_observations and H > 1:
        obs = torch.empty(H - 1, obs_dim, B, n_tokens, dtype=dtype, device=device).exponential_(generator=generator)
    return act, obs


def estimate(discretizer, probs: torch.Tensor, dim: int, percentile) -> torch.Tensor:
    """Official `value_fn`: expectation (stop column dropped) or a percentile of a token distribution."""
    if percentile == "mean":
        return discretizer.expectation(probs, dim)
    return discretizer.percentile(probs, percentile, dim)


def top_beams(values: torch.Tensor, beam_width: int) -> torch.Tensor:
    """Indices of the beam_width best candidates along the last dim, best first; ties keep row order."""
    return values.sort(dim=-1, descending=True, stable=True).indices[..., :beam_width]


def encode_observation(discretizer, observation, obs_dim: int) -> torch.Tensor:
    return discretizer.encode(torch.as_tensor(observation, dtype=torch.float32), dims=slice(0, obs_dim))


def encode_transition(discretizer, observation, action, reward) -> torch.Tensor:
    """Official `update_context`: tokens of [s, a, r, VALUE_PLACEHOLDER]; works batched ([..., d])."""
    obs = torch.as_tensor(observation, dtype=torch.float32, device=discretizer.device)
    act = torch.as_tensor(action, dtype=torch.float32, device=discretizer.device)
    rew = torch.as_tensor(reward, dtype=torch.float32, device=discretizer.device)[..., None]
    values = torch.cat([obs, act, rew, torch.full_like(rew, VALUE_PLACEHOLDER)], dim=-1)
    return discretizer.encode(values)


# ----------------------------------------------------------------------------- reference loop


def _last_logits(model, x: torch.Tensor, block: int, transition_dim: int) -> torch.Tensor:
    """Official `sampling.forward`: crop by whole transitions, run the full window, take the last logits."""
    x = x[:, window_start(x.shape[1], transition_dim, block):]
    return model(x).logits[:, -1]


@torch.no_grad()
def reference_plan(model, discretizer, context_tokens: torch.Tensor, observation, config: PlannerConfig,
                   generator: torch.Generator, return_score: bool = False) -> tuple[torch.Tensor, ...]:
    """One official `beam_plan` for one environment.

    context_tokens [c, D] long (executed transitions, oldest first; ignored if not prefix_context),
    observation [obs_dim] floats. Returns (plan tokens [H, D] of the best beam, action [act_dim] =
    bin centres of its first action), plus the plan's score if return_score."""
    model.eval()  # as official sampling.forward: no dropout while planning
    cfg = model.config
    O, A, D, N = cfg.observation_dim, cfg.action_dim, cfg.transition_dim, cfg.vocab_size
    H, B, E = config.horizon, config.beam_width, config.n_expand
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    block = window_limit(cfg.block_size, D, config.max_context_transitions)

    obs_tokens = encode_observation(discretizer, observation, O).to(device)
    context = context_tokens.to(device).reshape(-1) if config.prefix_context else obs_tokens[:0]
    prefix = torch.cat([context, obs_tokens])
    act_noise, obs_noise = draw_noise(config, O, A, N + 1, generator, dtype, device)

    x = prefix[None].repeat(B, 1)
    rewards = torch.zeros(B, H + 1, dtype=dtype, device=device)
    discounts = config.discount ** torch.arange(H + 1, dtype=dtype, device=device)
    for t in range(H):
        # official x.repeat(n_expand, 1): the copies are tiled, not interleaved
        x, rewards = x.repeat(E, 1), rewards.repeat(E, 1)
        for j in range(A):
            logits = _last_logits(model, x, block, D)
            noise = None if act_noise is None else act_noise[t, j]
            x = torch.cat([x, sample_tokens(logits, config.k_act, config.cdf_act, noise)[:, None]], 1)
        probs = []
        for _ in range(2):  # reward and value: argmax tokens, scored by their raw distributions
            logits = _last_logits(model, x, block, D)
            probs.append(logits.softmax(-1))
            x = torch.cat([x, logits.argmax(-1, keepdim=True)], 1)
        rewards[:, t] = estimate(discretizer, probs[0], D - 2, config.percentile)
        rewards[:, t + 1] = estimate(discretizer, probs[1], D - 1, config.percentile)
        values = (rewards * discounts).sum(-1)
        keep = top_beams(values, B)
        x, rewards, values = x[keep], rewards[keep], values[keep]
        if t < H - 1:
            for j in range(O):
                logits = _last_logits(model, x, block, D)
                noise = None if obs_noise is None else obs_noise[t, j]
                x = torch.cat([x, sample_tokens(logits, config.k_obs, config.cdf_obs, noise)[:, None]], 1)

    plan = x.view(B, -1, D)[0, -H:]  # beams are sorted by score, row 0 is the best
    action = discretizer.decode(plan[0, O:O + A].to(discretizer.device), dims=slice(O, O + A))
    return (plan, action, values[0]) if return_score else (plan, action)


class ReferencePlanner:
    """Runs `reference_plan` for one environment and keeps its context (official plan.py loop).

    Per step: `action = planner.act(obs)`, `env.step(action)`, `planner.observe(reward, done)`.
    The generator is seeded like environment `env_index` of `BeamPlanner(..., seed=seed)`.
    """

    def __init__(self, trajectory_model, config: PlannerConfig | None = None, seed: int = 0, env_index: int = 0):
        self.model = trajectory_model.model.eval()
        self.discretizer = trajectory_model.discretizer
        self.config = config or PlannerConfig()
        mc = self.model.config
        self.obs_dim, self.act_dim, self.D = mc.observation_dim, mc.action_dim, mc.transition_dim
        self.capacity = context_capacity(mc.block_size, self.D, self.config.max_context_transitions)
        device = next(self.model.parameters()).device
        self.generator = torch.Generator(device=device).manual_seed(env_seed(seed, env_index))
        self.reset()

    def reset(self) -> None:
        self.context = torch.zeros(0, self.D, dtype=torch.long)  # [c, D] executed transitions
        self.plan = None
        self.steps_since_plan = 0
        self._pending = None

    def act(self, observation) -> np.ndarray:
        observation = np.asarray(observation, dtype=np.float32)
        if self.plan is None or self.steps_since_plan % self.config.plan_freq == 0:
            self.plan, _ = reference_plan(self.model, self.discretizer, self.context, observation, self.config,
                                          self.generator)
            self.steps_since_plan = 0
        # official plan_freq > 1 reuses sequence[1:]: step k after planning executes transition k
        tokens = self.plan[self.steps_since_plan, self.obs_dim:self.obs_dim + self.act_dim]
        O, A = self.obs_dim, self.act_dim
        action = self.discretizer.decode(tokens.to(self.discretizer.device), dims=slice(O, O + A)).cpu().numpy()
        self._pending = (observation, action)
        return action

    def observe(self, reward: float, done: bool = False) -> None:
        if self._pending is None:
            raise RuntimeError("observe() needs an act() first")
        self.update_context(*self._pending, reward)
        self.steps_since_plan += 1
        self._pending = None
        if done:
            self.reset()

    def update_context(self, observation, action, reward) -> None:
        """Append [s, a, r, V placeholder] (re-discretized, as official) and keep the last transitions."""
        transition = encode_transition(self.discretizer, observation, action, reward).cpu()
        self.context = torch.cat([self.context, transition[None]])[-self.capacity:]


__all__ = [
    "VALUE_PLACEHOLDER", "ReferencePlanner", "context_capacity", "draw_noise", "encode_observation",
    "encode_transition", "env_seed", "estimate", "filter_cdf", "filter_topk", "reference_plan",
    "sample_tokens", "top_beams", "window_limit", "window_start",
]
