"""Fast Trajectory Transformer beam planner: the official plans, with an exact KV cache, many envs at once.

Same plans as `seqrl.planning.reference.reference_plan` (the official `beam_plan`), computed with:
  - an exact KV cache. The model has learned absolute positions and the official planner re-crops the
    window (by whole transitions) before every call, so a cache stays valid only while the window start
    does not move: then one new token per beam goes through the model at its window position; when the
    crop moves the start (once per planned transition) the window is re-encoded. The planner calls the
    model's cached decoding step (`decode_step`: preallocated KV buffers, explicit positions; the
    functional cache of `forward` would copy the whole cache for every token); the tests check its
    plans against the reference, which calls model.forward.
  - the part of a window that is still the shared prefix (context + current observation) is encoded
    with one row per environment and copied to its beams.
  - everything on the model's device: filtering, sampling, scoring and pruning are tensor ops with no
    host sync per token (window arithmetic is plain Python on the shared sequence length).
  - many environments in one batch: the beams of env i are rows i*R..(i+1)*R. Environments are grouped
    by prefix length (context transitions so far), each group is planned as one batch; a group's plans
    equal single-env plans because every op is row-wise and each env has its own noise.

Randomness: env i owns a torch.Generator seeded with `env_seed(seed, i)`; each plan draws its noise up
front with `draw_noise` and samples with `argmax(p / Exp(1) noise)` (torch.multinomial's own algorithm),
exactly like `ReferencePlanner(model, config, seed, env_index=i)` (on the same device type).

Usage (gymnasium vector env, autoreset):
    planner = BeamPlanner(seqrl.from_pretrained(path), PlannerConfig.from_yaml(...))
    planner.reset(n_envs=env.num_envs)
    obs, _ = env.reset(seed=0)
    while ...:
        actions = planner.act(obs)                          # plans, returns bin-centre actions
        obs, rewards, terminated, truncated, _ = env.step(actions)
        planner.observe(rewards, terminated | truncated)    # context += [s, a, r, V]; done -> new episode
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from einops import rearrange

from seqrl.planning.config import PlannerConfig
from seqrl.planning.reference import (
    context_capacity, draw_noise, encode_observation, encode_transition, env_seed, estimate, sample_tokens,
    top_beams, window_limit, window_start,
)


@dataclass
class _Beams:
    """Search state of one group of n environments with equal prefix length."""

    prefix: torch.Tensor  # [n, L0] shared tokens: context transitions + current observation
    beam: torch.Tensor    # [rows, H*D - O] tokens planned after the prefix
    cache: list           # per layer (k, v) buffers holding window [w, length - 1); one row per env or beam
    length: int           # tokens in every sequence (prefix + planned)
    w: int                # window start of the last forward pass

    @property
    def n(self) -> int:
        return self.prefix.shape[0]

    @property
    def rows(self) -> int:
        return self.beam.shape[0]


class _Decoder:
    """The model's cached decoding step (`TrajectoryTransformerModel.decode_step` over buffers from
    `new_decode_cache`), counting the token positions it feeds (benchmarks/tt_plan.py's FLOP count)."""

    def __init__(self, model, window: int):
        self.model, self.window = model, window
        self.token_positions = 0    # rows x tokens fed so far (bookkeeping, no sync)
        self.trimmed_positions = 0  # of which the last block ran only keys/values

    def new_cache(self, rows: int) -> list:
        return self.model.new_decode_cache(rows, self.window)

    def __call__(self, cache, tokens: torch.Tensor, start: int) -> torch.Tensor:
        R, T = tokens.shape
        self.token_positions += R * T
        self.trimmed_positions += R * (T - 1)
        return self.model.decode_step(cache, tokens, start)


class BeamPlanner:
    """Plans actions for `n_envs` environments; API: reset / act / observe (see the module docstring).

    `act(obs)` plans (every `plan_freq` steps) and returns the bin centres of each plan's first action;
    `observe(rewards, dones)` adds the executed transition [s, a, r, V placeholder] to each env's context
    (the reward is only known after env.step) and starts a new episode for done envs. The last plans are
    kept in `self.plans` [n_envs, H, D] tokens, their scores (sum_k gamma^k E[r_k] + gamma^H E[V]) in
    `self.scores` [n_envs].
    """

    def __init__(self, trajectory_model, config: PlannerConfig | None = None, device=None, seed: int = 0):
        self.model = trajectory_model.model
        self.device = torch.device(device) if device is not None else next(self.model.parameters()).device
        self.model.to(self.device).eval()
        self.discretizer = trajectory_model.discretizer.to(self.device)
        self.config = config or PlannerConfig()
        mc = self.model.config
        self.obs_dim, self.act_dim, self.D, self.N = mc.observation_dim, mc.action_dim, mc.transition_dim, mc.vocab_size
        self.block = window_limit(mc.block_size, self.D, self.config.max_context_transitions)
        self.decoder = _Decoder(self.model, self.block)
        self.capacity = context_capacity(mc.block_size, self.D, self.config.max_context_transitions)
        self.dtype = next(self.model.parameters()).dtype
        self.seed = seed
        H = self.config.horizon
        self.discounts = self.config.discount ** torch.arange(H + 1, dtype=self.dtype, device=self.device)
        self.n_envs = 0

    # ------------------------------------------------------------------ episode bookkeeping

    def reset(self, env_indices=None, n_envs: int | None = None) -> None:
        """`reset(n_envs=n)`: n fresh episodes and re-seeded generators. `reset(env_indices)`: new episodes
        for those envs only (their generators run on, so episodes do not repeat the same noise)."""
        if n_envs is not None:
            self.n_envs = n_envs
            # context is right-aligned: the last context_len[i] rows of context[i] are env i's transitions
            self.context = torch.zeros(n_envs, self.capacity, self.D, dtype=torch.long, device=self.device)
            self.context_len = np.zeros(n_envs, np.int64)
            self.steps = np.zeros(n_envs, np.int64)  # env steps since the last plan
            self.plans = torch.zeros(n_envs, self.config.horizon, self.D, dtype=torch.long, device=self.device)
            self.scores = torch.zeros(n_envs, dtype=self.dtype, device=self.device)  # predicted returns
            self.has_plan = np.zeros(n_envs, bool)
            self.generators = [torch.Generator(device=self.device).manual_seed(env_seed(self.seed, i))
                               for i in range(n_envs)]
            self._obs = torch.zeros(n_envs, self.obs_dim, device=self.device)
            self._act = torch.zeros(n_envs, self.act_dim, device=self.device)
            self._pending = np.zeros(n_envs, bool)
            return
        if self.n_envs == 0:
            raise RuntimeError("call reset(n_envs=...) first")
        idx = self._indices(env_indices)
        self.context_len[idx] = 0
        self.steps[idx] = 0
        self.has_plan[idx] = False
        self._pending[idx] = False

    def _indices(self, env_indices) -> np.ndarray:
        if env_indices is None:
            return np.arange(self.n_envs)
        idx = np.asarray(env_indices, np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_envs):
            raise IndexError(f"env indices {idx.tolist()} out of range for {self.n_envs} envs")
        return idx

    @torch.inference_mode()
    def act(self, observations, env_indices=None) -> np.ndarray:
        """observations [n, obs_dim] (n = n_envs, or len(env_indices)) -> actions [n, act_dim] (numpy)."""
        if self.n_envs == 0:
            raise RuntimeError("call reset(n_envs=...) first")
        idx = self._indices(env_indices)
        obs = torch.as_tensor(np.asarray(observations, np.float32), device=self.device).reshape(len(idx), self.obs_dim)
        rows = torch.as_tensor(idx, device=self.device)
        self._obs[rows] = obs
        # official plan_freq > 1 reuses the last plan shifted by one transition per step
        replan = ~self.has_plan[idx] | (self.steps[idx] % self.config.plan_freq == 0)
        self.steps[idx[replan]] = 0
        if replan.any():
            self._plan_envs(idx[replan], obs[torch.as_tensor(np.flatnonzero(replan), device=self.device)])
        offset = torch.as_tensor(self.steps[idx], device=self.device)
        O, A = self.obs_dim, self.act_dim
        tokens = self.plans[rows, offset, O:O + A]
        actions = self.discretizer.decode(tokens, dims=slice(O, O + A))
        self._act[rows] = actions
        self._pending[idx] = True
        return actions.cpu().numpy()

    @torch.inference_mode()
    def observe(self, rewards, dones=None, env_indices=None) -> None:
        """Record the transitions executed since `act` (official update_context) and end done episodes."""
        idx = self._indices(env_indices)
        if not self._pending[idx].all():
            raise RuntimeError("observe() for envs that have not acted since their last observe()/reset()")
        rewards = torch.as_tensor(np.asarray(rewards, np.float32), device=self.device).reshape(len(idx))
        rows = torch.as_tensor(idx, device=self.device)
        new = encode_transition(self.discretizer, self._obs[rows], self._act[rows], rewards)  # [n, D]
        self.context[rows] = torch.cat([self.context[rows, 1:], new[:, None]], 1)
        self.context_len[idx] = np.minimum(self.context_len[idx] + 1, self.capacity)
        self.steps[idx] += 1
        self._pending[idx] = False
        if dones is not None:
            done = np.asarray(dones, bool).reshape(len(idx))
            if done.any():
                self.reset(idx[done])

    def set_context(self, env_index: int, tokens) -> None:
        """Let env `env_index` continue from recorded context tokens [c, D] (oldest first), e.g. another
        planner's `context_tokens`; only the last `capacity` transitions are kept, as official."""
        tokens = torch.as_tensor(tokens, dtype=torch.long, device=self.device).reshape(-1, self.D)[-self.capacity:]
        c = tokens.shape[0]
        self.context[env_index, self.capacity - c:] = tokens
        self.context_len[env_index] = c
        self.has_plan[env_index] = False

    def context_tokens(self, env_index: int) -> torch.Tensor:
        """Env `env_index`'s context transitions [c, D] (oldest first), e.g. for a ReferencePlanner."""
        c = int(self.context_len[env_index])
        return self.context[env_index, self.capacity - c:].clone()

    # ------------------------------------------------------------------ planning

    def _plan_envs(self, idx: np.ndarray, obs: torch.Tensor) -> None:
        """Plan envs idx (observations obs [n, obs_dim]) in groups of equal prefix length."""
        obs_tokens = encode_observation(self.discretizer, obs, self.obs_dim)
        lengths = self.context_len[idx] if self.config.prefix_context else np.zeros(len(idx), np.int64)
        for c in np.unique(lengths):
            sel = np.flatnonzero(lengths == c)
            envs = idx[sel]
            rows = torch.as_tensor(envs, device=self.device)
            context = self.context[rows, self.capacity - c:].reshape(len(envs), -1)
            prefix = torch.cat([context, obs_tokens[torch.as_tensor(sel, device=self.device)]], 1)
            self.plans[rows], self.scores[rows] = self.plan(prefix, [self.generators[i] for i in envs])
            self.has_plan[envs] = True

    def _encode_window(self, s: _Beams) -> torch.Tensor:
        """Encode window [s.w, s.length) from scratch (the crop moved its start, so every position changed).
        The part that is still the shared prefix goes through once per env and is copied to its beams."""
        L0 = s.prefix.shape[1]
        start = 0
        cache = self.decoder.new_cache(s.rows)
        if s.w < L0:
            shared = cache if s.length == L0 else self.decoder.new_cache(s.n)
            logits = self.decoder(shared, s.prefix[:, s.w:], 0)
            if s.length == L0:  # nothing planned yet: one row per env
                s.cache = shared
                return logits
            start = L0 - s.w
            env = torch.arange(s.n, device=self.device).repeat_interleave(s.rows // s.n)
            for (k, v), (ks, vs) in zip(cache, shared):
                k[:, :, :start], v[:, :, :start] = ks[env, :, :start], vs[env, :, :start]
        s.cache = cache
        return self.decoder(cache, s.beam[:, max(s.w, L0) - L0:s.length - L0], start)

    def _push(self, s: _Beams, tokens: torch.Tensor) -> None:
        """Append one token to every sequence (not yet run through the model)."""
        s.beam[:, s.length - s.prefix.shape[1]] = tokens
        s.length += 1

    def _feed(self, s: _Beams) -> torch.Tensor:
        """Run the newest token through the model; return logits [rows, N+1] of the token after it."""
        w = window_start(s.length, self.D, self.block)
        if w != s.w:  # the crop moved: positions changed, re-encode the window
            s.w = w
            return self._encode_window(s)
        token = s.beam[:, s.length - 1 - s.prefix.shape[1]]
        return self.decoder(s.cache, token[:, None], s.length - 1 - w)

    def _select(self, s: _Beams, index: torch.Tensor, keep_cache: bool = True) -> None:
        """Keep / repeat rows (expansion, pruning): beam tokens and cache rows follow."""
        s.beam = s.beam[index]
        s.cache = [(k.index_select(0, index), v.index_select(0, index)) for k, v in s.cache] if keep_cache else []

    @torch.inference_mode()
    def plan(self, prefix: torch.Tensor, generators: list[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
        """Official beam_plan for n envs at once. prefix [n, L0] long (equal lengths), one generator per
        env. Returns the best plan of every env, tokens [n, H, D], and its score [n]."""
        cfg, O, A, D = self.config, self.obs_dim, self.act_dim, self.D
        H, B, E = cfg.horizon, cfg.beam_width, cfg.n_expand
        n, L0 = prefix.shape
        dev = self.device
        noise = [draw_noise(cfg, O, A, self.N + 1, g, self.dtype, dev) for g in generators]
        act_noise = None if noise[0][0] is None else torch.cat([a for a, _ in noise], dim=2)
        obs_noise = None if noise[0][1] is None else torch.cat([o for _, o in noise], dim=2)

        s = _Beams(prefix=prefix, beam=prefix.new_zeros(n, H * D - O), cache=[], length=L0,
                   w=window_start(L0, D, self.block))
        logits = self._encode_window(s)  # [n, N+1]: one row per env until the first expansion
        rewards = torch.zeros(n, H + 1, dtype=self.dtype, device=dev)
        env_offset = torch.arange(n, device=dev)[:, None]
        for t in range(H):
            # official x.repeat(n_expand, 1) per env: rows tiled, env i's block becomes i*B*E..(i+1)*B*E
            width = s.rows // n
            expand = (env_offset * width + torch.arange(B * E, device=dev) % width).reshape(-1)
            self._select(s, expand)
            logits, rewards = logits[expand], rewards[expand]

            for j in range(A):
                tokens = sample_tokens(logits, cfg.k_act, cfg.cdf_act, None if act_noise is None else act_noise[t, j])
                self._push(s, tokens)
                logits = self._feed(s)
            r_probs = logits.softmax(-1)  # reward token: argmax, scored by its raw distribution
            self._push(s, logits.argmax(-1))
            logits = self._feed(s)
            v_probs = logits.softmax(-1)
            self._push(s, logits.argmax(-1))  # fed after pruning, with B instead of B*E rows

            rewards[:, t] = estimate(self.discretizer, r_probs, D - 2, cfg.percentile)
            rewards[:, t + 1] = estimate(self.discretizer, v_probs, D - 1, cfg.percentile)
            values = (rewards * self.discounts).sum(-1)
            keep = (top_beams(values.view(n, B * E), B) + env_offset * (B * E)).reshape(-1)
            # the cache is dead if nothing follows or the next feed re-encodes (usual once context is full)
            reencode = window_start(s.length, D, self.block) != s.w
            self._select(s, keep, keep_cache=t < H - 1 and not reencode)
            rewards = rewards[keep]

            if t < H - 1:
                logits = self._feed(s)  # the value token
                for j in range(O):
                    noise = None if obs_noise is None else obs_noise[t, j]
                    self._push(s, sample_tokens(logits, cfg.k_obs, cfg.cdf_obs, noise))
                    logits = self._feed(s)

        best = rearrange(s.beam, "(n b) t -> n b t", n=n)[:, 0]  # beams sorted by score: row 0 is each env's best
        scores = rearrange(values[keep], "(n b) -> n b", n=n)[:, 0]
        return rearrange(torch.cat([prefix[:, L0 - O:], best], 1), "n (h d) -> n h d", d=D), scores


__all__ = ["BeamPlanner"]
