"""Roll out any policy for a number of episodes and score it, raw and normalized.

    from seqrl.evaluation import evaluate
    result = evaluate(policy, "InvertedPendulum-v5", 10, max_episode_steps=200)
    print(result)                     # one line: mean ± stderr, normalized score, speed
    result.to_json("eval.json")

Policy protocol (duck-typed):

* ``policy.act(obs_batch [n, obs_dim]) -> actions [n, act_dim]`` (numpy or torch), required;
  a plain callable ``policy(obs_batch)`` works too. Actions are clipped to the action space.
* ``policy.reset(n_envs=n)``, optional: called once before the first step, with the number of
  vector-env rows.
* ``policy.observe(rewards [n], dones [n])``, optional: called after every step with the
  rewards of the executed transitions (a planner needs them for its context) and whether each
  row's episode ended (terminated or truncated).
* ``policy.reset(env_indices=[i, ...])``, optional: called after rows whose episode ended were
  reset, so the policy forgets those rows' history. Used only when ``reset`` accepts
  ``env_indices``.
* ``policy.reset_rng(seed)``, optional: re-seeds a stochastic policy so evaluations repeat.
* ``act(obs, env_indices=rows)`` and ``observe(rewards, dones, env_indices=rows)``, optional:
  when both accept ``env_indices``, rows that have finished their share of episodes are left
  out of the calls (a planner would otherwise plan for them in vain).

Episodes and seeds: episode ``k`` (``0 <= k < n_episodes``) is reset with seed ``seed + k`` and
runs on vector-env row ``k % num_envs``, so each row has a fixed share of the episodes. A row
that has finished its share keeps stepping (a ``SyncVectorEnv`` steps every row) through
throw-away episodes that are never counted (with the policy's actions, or the in-bounds action
nearest 0 for a policy that takes ``env_indices``). Autoreset is disabled and finished rows are reset
here, with their next episode's seed, so no reset observation leaks into a transition. For a
deterministic policy whose action for a row depends only on that row's history, the returns
equal those of a plain single-env loop over the same seeds, whatever ``num_envs`` is.

Reference scores: a normalized score ``100 * (return - ref_min) / (ref_max - ref_min)`` is
reported only when the caller gives both reference scores (the dataset's own ``ref_min_score`` /
``ref_max_score``, Minari's convention, recorded in checkpoint metadata; D4RL's table for D4RL's own
files, see ``seqrl.data.episodes.D4RL_REFERENCE``; or the user's), with ``ref_source`` saying which.
There is no fallback by environment: D4RL's Hopper-v2 references do not describe a Hopper-v5 dataset.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["EvalResult", "EvaluationError", "evaluate", "normalized_score", "reference_scores"]

# The reset seed of the first evaluation episode, for the end-of-training evaluation and `seqrl eval`
# alike (so the two print the same numbers for a deterministic policy); far from the seeds datasets
# are collected with.
EVAL_SEED = 10_000
# Throw-away episodes of rows that finished their share get seeds far from any real episode.
_IDLE_SEED_OFFSET = 1_000_000_000


class EvaluationError(ValueError):
    """An evaluation that cannot run as asked; the message is one line saying why."""


def normalized_score(returns, ref_min: float, ref_max: float):
    """``100 * (returns - ref_min) / (ref_max - ref_min)``: 0 is the random reference, 100 the
    expert one. Works on a scalar (returns a float) or an array (returns an array)."""
    if ref_max == ref_min:
        raise ValueError(f"reference scores must differ, got ref_min = ref_max = {ref_min}")
    scores = 100.0 * (np.asarray(returns, dtype=np.float64) - ref_min) / (ref_max - ref_min)
    return float(scores) if scores.ndim == 0 else scores


def env_family(env_id: str) -> str:
    """``"Hopper"`` for ``"Hopper-v5"`` or ``"gymnasium/Hopper-v4"``."""
    _, name, _ = gym.envs.registration.parse_env_id(env_id)
    return name


def evaluation_env(metadata: dict) -> dict:
    """``{env_id, env_kwargs, max_episode_steps}`` to evaluate a policy trained on a dataset (or saved in a
    checkpoint) with this metadata: the dataset's own ``eval_env`` (Minari's ``eval_env_spec``) when it
    records one, else the environment the data came from. ``env_module``: the package that registers the
    env id on import (from the Minari spec's entry point), if it is not gymnasium itself."""
    env = metadata.get("eval_env") or metadata
    return {"env_id": env.get("env_id"), "env_kwargs": dict(env.get("env_kwargs") or {}),
            "max_episode_steps": env.get("max_episode_steps"), "env_module": env.get("env_module")}


def reference_scores(ref_min_score: float | None = None, ref_max_score: float | None = None,
                     ref_source: str | None = None) -> tuple[float, float, str] | None:
    """``(ref_min, ref_max, source)`` when both scores are given, else None (no normalized score)."""
    if ref_min_score is None or ref_max_score is None:
        return None
    return float(ref_min_score), float(ref_max_score), ref_source or "given by the caller"


@dataclass
class EvalResult:
    """Returns and lengths of ``episodes`` episodes (in seed order: ``returns[k]`` is the
    episode reset with ``seed + k``), with summary statistics. ``std`` is the sample standard
    deviation (ddof=1) and ``stderr = std / sqrt(episodes)``."""

    env_id: str
    returns: list[float]
    lengths: list[int]
    terminated: list[bool]
    mean: float
    std: float
    stderr: float
    episodes: int
    seconds: float
    steps_per_s: float
    seed: int
    num_envs: int
    max_episode_steps: int | None = None
    normalized_mean: float | None = None
    normalized_stderr: float | None = None
    ref_min_score: float | None = None
    ref_max_score: float | None = None
    reference: str | None = None  # where the reference scores came from (the dataset, D4RL, the user)
    extra: dict[str, Any] = field(default_factory=dict)  # anything a caller wants saved alongside

    @classmethod
    def from_episodes(cls, env_id: str, returns, lengths, terminated, *, seconds: float, seed: int,
                      num_envs: int, max_episode_steps: int | None = None, ref_min_score=None,
                      ref_max_score=None, ref_source: str | None = None) -> "EvalResult":
        returns = [float(r) for r in returns]
        n = len(returns)
        std = float(np.std(returns, ddof=1)) if n > 1 else 0.0
        stderr = std / math.sqrt(n)
        result = cls(env_id=env_id, returns=returns, lengths=[int(x) for x in lengths],
                     terminated=[bool(t) for t in terminated], mean=float(np.mean(returns)), std=std,
                     stderr=stderr, episodes=n, seconds=float(seconds),
                     steps_per_s=float(sum(lengths) / seconds) if seconds > 0 else float("inf"),
                     seed=seed, num_envs=num_envs, max_episode_steps=max_episode_steps)
        refs = reference_scores(ref_min_score, ref_max_score, ref_source)
        if refs is not None:
            low, high, source = refs
            result.ref_min_score, result.ref_max_score, result.reference = low, high, source
            result.normalized_mean = normalized_score(result.mean, low, high)
            result.normalized_stderr = abs(100.0 * stderr / (high - low))  # a linear map scales the stderr
        return result

    @property
    def length_mean(self) -> float:
        return float(np.mean(self.lengths))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    def __str__(self) -> str:
        text = (f"{self.env_id}: return {self.mean:.2f} ± {self.stderr:.2f} over {self.episodes} episodes "
                f"(reset seeds {self.seed}..{self.seed + self.episodes - 1})")
        if self.normalized_mean is not None:
            text += f" | normalized {self.normalized_mean:.1f} ± {self.normalized_stderr:.1f} (references: {self.reference})"
        return (text + f" | length {self.length_mean:.1f}, {sum(self.terminated)} terminated"
                f" | {self.seconds:.1f} s, {self.steps_per_s:.0f} steps/s")


# ---------------------------------------------------------------------------- policy hooks
def _accepts(fn, name: str) -> bool:
    """Whether ``fn`` takes a keyword argument ``name`` (explicitly or through ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: do not guess
        return False
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in params)


class _Hooks:
    """The policy's optional methods, looked up once."""

    def __init__(self, policy):
        fn = policy.act if hasattr(policy, "act") else policy
        if not callable(fn):
            raise EvaluationError(f"policy must have an act(observations) method or be callable, got {type(policy).__name__}")
        self.act_fn = fn
        reset = getattr(policy, "reset", None)
        self.reset = reset if callable(reset) else None
        self.observe = getattr(policy, "observe", None) if callable(getattr(policy, "observe", None)) else None
        self.reset_rows = self.reset is not None and _accepts(self.reset, "env_indices")
        self.reset_with_n = self.reset is not None and _accepts(self.reset, "n_envs")
        self.reset_rng = getattr(policy, "reset_rng", None)
        # A policy that can act for a subset of rows stops being asked about rows whose share of
        # episodes is done (a planner's work there would be thrown away).
        self.subsets = _accepts(fn, "env_indices") and self.observe is not None and _accepts(self.observe, "env_indices")

    def start(self, n_envs: int, seed: int) -> None:
        if callable(self.reset_rng):
            self.reset_rng(seed)
        if self.reset is not None:
            self.reset(n_envs=n_envs) if self.reset_with_n else self.reset()

    def act(self, observations: np.ndarray, space: gym.spaces.Box, active: np.ndarray) -> np.ndarray:
        """Clipped actions for every row; idle rows (``active`` False) get the action closest to 0
        without asking the policy when it supports ``env_indices``."""
        n = len(observations)
        if self.subsets and not active.all():
            rows = np.flatnonzero(active)
            actions = np.zeros((n,) + space.shape)
            actions[rows] = self._call(observations[rows], space, env_indices=rows)
        else:
            actions = self._call(observations, space)
        return np.clip(actions, space.low, space.high).astype(space.dtype)

    def _call(self, observations: np.ndarray, space: gym.spaces.Box, **kwargs) -> np.ndarray:
        out = self.act_fn(observations, **kwargs)
        if hasattr(out, "detach"):  # a torch tensor, without importing torch here
            out = out.detach().cpu().numpy()
        out = np.asarray(out, dtype=np.float64)
        n = len(observations)
        if out.size != n * int(np.prod(space.shape)):
            raise EvaluationError(f"policy returned actions of shape {out.shape} for {n} observations; "
                                  f"expected ({n}, {', '.join(map(str, space.shape))})")
        return out.reshape((n,) + space.shape)

    def after_step(self, rewards: np.ndarray, dones: np.ndarray, active: np.ndarray) -> None:
        if self.observe is None:
            return
        if self.subsets and not active.all():
            rows = np.flatnonzero(active)
            self.observe(rewards[rows], dones[rows], env_indices=rows)
        else:
            self.observe(rewards, dones)

    def after_reset(self, rows: list[int]) -> None:
        if self.reset_rows and rows:
            self.reset(env_indices=rows)


# ---------------------------------------------------------------------------- environments
def _make_env_fn(env_id: str, env_kwargs: dict | None, max_episode_steps: int | None):
    kwargs = dict(env_kwargs or {})
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = int(max_episode_steps)

    def make_env():
        env = gym.make(env_id, **kwargs)
        # Dict observations (goal-conditioned mazes, kitchens) are flattened in the space's key order,
        # exactly as seqrl's Minari loader flattened the dataset the policy learned from
        if isinstance(env.observation_space, gym.spaces.Dict):
            env = gym.wrappers.FlattenObservation(env)
        return env

    return make_env


def _import_env_module(env_id: str, env_module: str | None) -> None:
    """Import the package that registers ``env_id`` on import (Minari's D4RL mazes, kitchens and hands come
    from gymnasium_robotics), unless the id is registered already."""
    if not env_module or env_id in gym.registry:
        return
    try:
        importlib.import_module(env_module)
    except ImportError as err:
        raise EvaluationError(f"cannot make environment {env_id!r}: it comes from the package {env_module!r}, "
                              f"which does not import here ({err}); install it (e.g. pip install "
                              f"{env_module.replace('_', '-')})") from None


def _check_env(make_env, env_id: str) -> tuple[int, int]:
    """Build one env up front so a bad id or kwarg is one clear line, not a vector-env traceback;
    returns its flat (observation, action) sizes."""
    try:
        env = make_env()
    except gym.error.Error as err:
        raise EvaluationError(f"cannot make environment {env_id!r}: {str(err).splitlines()[0]}") from None
    except TypeError as err:  # an unknown env_kwargs key
        raise EvaluationError(f"cannot make environment {env_id!r}: {err}") from None
    try:
        if not isinstance(env.action_space, gym.spaces.Box):
            raise EvaluationError(f"{env_id} has a {type(env.action_space).__name__} action space; "
                                  "evaluate supports continuous (Box) actions")
        return int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape))
    finally:
        env.close()


def check_env_spaces(env: dict, observation_dim: int, action_dim: int, what: str = "the policy") -> None:
    """Build `env` (evaluation_env's dict) once and refuse it when its flat observation or action
    size is not what `what` expects: one line, before any training or planning."""
    env_id = env.get("env_id")
    _import_env_module(env_id, env.get("env_module"))
    make_env = _make_env_fn(env_id, env.get("env_kwargs"), env.get("max_episode_steps"))
    obs_size, act_size = _check_env(make_env, env_id)
    if (obs_size, act_size) != (int(observation_dim), int(action_dim)):
        raise EvaluationError(f"{env_id} has observations of size {obs_size} and actions of size {act_size}, but "
                              f"{what} has {observation_dim} and {action_dim}")


# ---------------------------------------------------------------------------- the loop
class _Schedule:
    """Which episode each row runs: episode k on row k % num_envs, reset with seed + k."""

    def __init__(self, n_episodes: int, num_envs: int, seed: int):
        self.n_episodes, self.num_envs, self.seed = n_episodes, num_envs, seed
        self.current = list(range(num_envs))  # the episode each row is running (None when idle)
        self.idle_seed = seed + _IDLE_SEED_OFFSET

    def next_seed(self, row: int) -> int:
        """Move ``row`` to its next episode; the seed to reset it with."""
        k = self.current[row]
        nxt = None if k is None else k + self.num_envs
        if nxt is not None and nxt < self.n_episodes:
            self.current[row] = nxt
            return self.seed + nxt
        self.current[row] = None  # share done: throw-away episodes from here on
        self.idle_seed += 1
        return self.idle_seed

    def busy(self) -> bool:
        return any(k is not None for k in self.current)

    def active(self) -> np.ndarray:
        """Rows still running a counted episode."""
        return np.array([k is not None for k in self.current])


class _Postfix:
    """Env steps and mean return on the episode bar, refreshed at most once a second: a planner
    may take minutes per episode, and the bar should show it is moving."""

    def __init__(self, bar):
        self.bar, self.mean_return, self.last = bar, None, 0.0

    def tick(self, env_steps: int, force: bool = False) -> None:
        now = time.monotonic()
        if self.bar.disable or not (force or now - self.last >= 1.0):
            return
        self.last = now
        postfix = {"env_steps": env_steps}
        if self.mean_return is not None:
            postfix["mean_return"] = f"{self.mean_return:.1f}"
        self.bar.set_postfix(postfix)


def evaluate(policy, env_id: str, n_episodes: int, *, env_kwargs: dict | None = None,
             max_episode_steps: int | None = None, num_envs: int | None = None, seed: int = 0,
             ref_min_score: float | None = None, ref_max_score: float | None = None,
             progress: bool = True, env_module: str | None = None, ref_source: str | None = None) -> EvalResult:
    """Run ``policy`` for exactly ``n_episodes`` episodes of ``gym.make(env_id, **env_kwargs)``.

    Args:
        policy: see the module docstring for the protocol.
        env_id: a registered gymnasium id.
        n_episodes: episodes to collect; episode k is reset with seed ``seed + k``.
        env_kwargs: keyword arguments for ``gym.make``.
        max_episode_steps: overrides the registered time limit.
        num_envs: rows of the ``SyncVectorEnv`` (batch size of ``policy.act``); default
            ``min(n_episodes, 10)``; capped at ``n_episodes``.
        seed: the first episode's reset seed (and ``policy.reset_rng(seed)`` when present).
        ref_min_score, ref_max_score: reference returns for the normalized score (both needed;
            otherwise no normalized score); ref_source says where they come from.
        progress: show a tqdm bar over episodes.

    Raises:
        EvaluationError: a bad env id or kwargs, a non-Box action space, wrongly shaped actions.
    """
    from tqdm.auto import tqdm

    if n_episodes < 1:
        raise EvaluationError(f"n_episodes must be >= 1, got {n_episodes}")
    num_envs = min(n_episodes, 10) if num_envs is None else min(int(num_envs), n_episodes)
    if num_envs < 1:
        raise EvaluationError(f"num_envs must be >= 1, got {num_envs}")
    _import_env_module(env_id, env_module)
    make_env = _make_env_fn(env_id, env_kwargs, max_episode_steps)
    _check_env(make_env, env_id)
    hooks = _Hooks(policy)

    envs = gym.vector.SyncVectorEnv([make_env] * num_envs, autoreset_mode=gym.vector.AutoresetMode.DISABLED)
    space = envs.single_action_space
    schedule = _Schedule(n_episodes, num_envs, seed)
    returns, lengths = np.zeros(n_episodes), np.zeros(n_episodes, dtype=np.int64)
    terminated = np.zeros(n_episodes, dtype=bool)
    running = np.zeros(num_envs)  # return so far of each row's current episode
    steps = np.zeros(num_envs, dtype=np.int64)
    bar = tqdm(total=n_episodes, desc=f"eval {env_id}", unit="ep", disable=not progress)
    status = _Postfix(bar)
    total_steps = 0
    start = time.perf_counter()
    try:
        obs, _ = envs.reset(seed=[seed + i for i in range(num_envs)])
        hooks.start(num_envs, seed)
        while schedule.busy():
            active = schedule.active()
            actions = hooks.act(np.asarray(obs), space, active)
            obs, rewards, terms, truncs, _ = envs.step(actions)
            rewards = np.array(rewards, dtype=np.float64)  # a copy: the vector env reuses its buffer
            dones = np.logical_or(terms, truncs)
            hooks.after_step(rewards, dones.copy(), active)
            running += rewards
            steps += 1
            total_steps += num_envs
            if not dones.any():
                status.tick(total_steps)
                continue
            rows = [int(i) for i in np.flatnonzero(dones)]
            for i in rows:
                k = schedule.current[i]
                if k is not None:  # a counted episode ended
                    returns[k], lengths[k], terminated[k] = running[i], steps[i], terms[i]
                    bar.update(1)
                    status.mean_return = float(returns[lengths > 0].mean())
            status.tick(total_steps, force=True)
            running[dones], steps[dones] = 0.0, 0
            reset_seeds = [schedule.next_seed(i) if dones[i] else None for i in range(num_envs)]
            if not schedule.busy():
                break  # nothing left to count: no reset needed
            obs, _ = envs.reset(seed=reset_seeds, options={"reset_mask": dones.copy()})
            hooks.after_reset(rows)
    finally:
        bar.close()
        envs.close()
    seconds = time.perf_counter() - start
    return EvalResult.from_episodes(env_id, returns, lengths, terminated, seconds=seconds, seed=seed,
                                    num_envs=num_envs, max_episode_steps=max_episode_steps,
                                    ref_min_score=ref_min_score, ref_max_score=ref_max_score, ref_source=ref_source)
