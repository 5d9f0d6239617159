"""Roll out policies into whole episodes and write them as Minari datasets, offline.

Minari's ``DataCollector`` needs JAX; this module needs only gymnasium, numpy and
``minari[arrow]``: episodes are collected as whole-episode numpy arrays and written with
:func:`minari.create_dataset_from_buffers` (``data_format="arrow"``).

Conventions (shared with Minari's dataset-generation scripts):

* Episode ``k`` of a rollout (counted in the order episodes start) is reset with seed
  ``seed + k``; a policy's noise generator is re-seeded with ``seed`` when the policy has a
  ``reset_rng(seed)`` method (the scripted controllers of :mod:`seqrl.data.controllers` have).
* With ``n_steps`` the rollout takes exactly ``n_steps`` environment steps and keeps the
  episodes that finished within them: a trailing partial episode is dropped (Minari's scripts
  discard the unfinished last episode too). A dataset built with ``n_steps`` therefore holds at
  most ``n_steps`` transitions, ending on an episode boundary.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import warnings
from typing import Any, Callable, Iterator, Sequence

import gymnasium as gym
import numpy as np

__all__ = [
    "as_batch_policy",
    "rollout",
    "episode_returns",
    "write_minari_dataset",
    "collect_policy_dataset",
    "make_env_spec",
]

Episode = dict[str, Any]


def as_batch_policy(policy: Any) -> Callable[[np.ndarray], np.ndarray]:
    """A ``f(obs_batch) -> action_batch`` numpy callable from a policy.

    ``policy`` is either an object with a batched ``act(obs_batch)`` method (a seqrl policy) or
    a callable. Torch tensors coming back are moved to numpy.
    """
    fn = policy.act if hasattr(policy, "act") else policy
    if not callable(fn):
        raise TypeError(f"policy must be callable or have an act() method, got {type(policy)}")

    def call(observations: np.ndarray) -> np.ndarray:
        out = fn(observations)
        if hasattr(out, "detach"):  # torch.Tensor, without importing torch here
            out = out.detach().cpu().numpy()
        return np.asarray(out)

    return call


def _make_env(env_id: str, max_episode_steps: int | None, env_kwargs: dict | None) -> gym.Env:
    kwargs = dict(env_kwargs or {})
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = int(max_episode_steps)
    return gym.make(env_id, **kwargs)


def _to_actions(raw: np.ndarray, n: int, space: gym.spaces.Box) -> np.ndarray:
    actions = np.asarray(raw, dtype=np.float64).reshape((n,) + space.shape)
    return np.clip(actions, space.low, space.high).astype(space.dtype)


def _finish(obs: list, acts: list, rews: list, terms: list, truncs: list, seed: int,
            obs_space: gym.spaces.Space, act_space: gym.spaces.Space) -> Episode:
    return {
        "observations": np.asarray(obs, dtype=obs_space.dtype),
        "actions": np.asarray(acts, dtype=act_space.dtype).reshape((len(acts),) + act_space.shape),
        "rewards": np.asarray(rews, dtype=np.float64),
        "terminations": np.asarray(terms, dtype=bool),
        "truncations": np.asarray(truncs, dtype=bool),
        "seed": int(seed),
    }


def rollout(
    env_id: str,
    policy: Any,
    *,
    n_steps: int | None = None,
    n_episodes: int | None = None,
    seed: int,
    max_episode_steps: int | None = None,
    env_kwargs: dict | None = None,
    num_envs: int = 1,
) -> list[Episode]:
    """Collect whole episodes of ``policy`` in ``gym.make(env_id, ...)``.

    Args:
        env_id: a registered gymnasium id.
        policy: ``policy(obs_batch [n, obs_dim]) -> actions [n, act_dim]``, or an object with a
            batched ``act`` method. Actions are clipped to the action space and cast to its dtype
            (the stored actions are the ones applied).
        n_steps: take exactly this many environment steps (summed over envs) and keep the
            episodes that finished within them (a trailing partial episode is dropped).
        n_episodes: or collect exactly this many complete episodes. Give exactly one of the two.
        seed: episode ``k`` (in start order) is reset with ``seed + k``; the policy's
            ``reset_rng(seed)`` is called when it has one.
        max_episode_steps: overrides the registered time limit.
        env_kwargs: extra keyword arguments for ``gym.make``.
        num_envs: > 1 steps a ``gymnasium.vector.SyncVectorEnv`` with batched policy calls.

    Returns:
        Episodes sorted by episode index, each a dict of numpy arrays: ``observations``
        ``[T + 1, *obs_shape]`` (the last one is the observation after the final step),
        ``actions`` ``[T, *act_shape]``, ``rewards`` ``[T]`` float64, ``terminations`` and
        ``truncations`` ``[T]`` bool, and ``seed`` (the episode's reset seed).

    For a policy whose action depends only on the observation (no noise) the episodes do not
    depend on ``num_envs`` when ``n_episodes`` is given. Noisy policies see their draws in a
    different order with a different ``num_envs``, so those episodes differ (while staying
    deterministic for a given ``num_envs``).
    """
    if (n_steps is None) == (n_episodes is None):
        raise ValueError("give exactly one of n_steps and n_episodes")
    if n_steps is not None and n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    if n_episodes is not None and n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    if hasattr(policy, "reset_rng"):
        policy.reset_rng(seed)
    act = as_batch_policy(policy)
    if num_envs == 1:
        return _rollout_single(
            env_id, act, n_steps, n_episodes, seed, max_episode_steps, env_kwargs
        )
    return _rollout_vector(
        env_id, act, n_steps, n_episodes, seed, max_episode_steps, env_kwargs, num_envs
    )


def _rollout_single(env_id, act, n_steps, n_episodes, seed, max_episode_steps, env_kwargs):
    env = _make_env(env_id, max_episode_steps, env_kwargs)
    obs_space, act_space = env.observation_space, env.action_space
    episodes: list[Episode] = []
    steps = 0
    k = 0
    try:
        while True:
            if n_episodes is not None and k >= n_episodes:
                break
            if n_steps is not None and steps >= n_steps:
                break
            obs, _ = env.reset(seed=seed + k)
            o, a, r, te, tr = [obs], [], [], [], []
            complete = False
            while n_steps is None or steps < n_steps:
                action = _to_actions(act(np.asarray(obs)[None]), 1, act_space)[0]
                obs, reward, terminated, truncated, _ = env.step(action)
                steps += 1
                o.append(obs)
                a.append(action)
                r.append(float(reward))
                te.append(bool(terminated))
                tr.append(bool(truncated))
                if terminated or truncated:
                    complete = True
                    break
            if complete:
                episodes.append(_finish(o, a, r, te, tr, seed + k, obs_space, act_space))
            k += 1
    finally:
        env.close()
    return episodes


def _rollout_vector(env_id, act, n_steps, n_episodes, seed, max_episode_steps, env_kwargs,
                    num_envs):
    # Autoreset is DISABLED: finished sub-envs are reset here, through a masked reset with the
    # next episode seed, so the reset observation never leaks into a transition and every
    # episode's seed is known (NEXT_STEP / SAME_STEP autoresets would not reseed).
    envs = gym.vector.SyncVectorEnv(
        [lambda: _make_env(env_id, max_episode_steps, env_kwargs) for _ in range(num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.DISABLED,
    )
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    episodes: list[Episode] = []
    buffers: list[dict | None] = [None] * num_envs
    next_k = 0
    steps = 0

    def wanted() -> bool:
        if n_episodes is not None:
            return next_k < n_episodes
        return steps < n_steps

    def start(i: int, obs_i: np.ndarray) -> None:
        buffers[i] = {"k": next_k, "o": [obs_i], "a": [], "r": [], "te": [], "tr": []}

    try:
        seeds = [seed + i for i in range(num_envs)]
        obs, _ = envs.reset(seed=seeds)
        for i in range(num_envs):
            if wanted():
                start(i, obs[i])
                next_k += 1
        idle_seed = seed + 10**9  # seeds for sub-envs that only idle; their steps are discarded
        while any(b is not None for b in buffers):
            actions = _to_actions(act(np.asarray(obs)), num_envs, act_space)
            obs, rewards, terminations, truncations, _ = envs.step(actions)
            done = np.logical_or(terminations, truncations)
            for i in range(num_envs):
                b = buffers[i]
                if b is None:
                    continue
                if n_steps is not None and steps >= n_steps:
                    buffers[i] = None  # over budget: this episode is partial, drop it
                    continue
                steps += 1
                b["o"].append(obs[i])
                b["a"].append(actions[i])
                b["r"].append(float(rewards[i]))
                b["te"].append(bool(terminations[i]))
                b["tr"].append(bool(truncations[i]))
                if done[i]:
                    episodes.append(
                        _finish(b["o"], b["a"], b["r"], b["te"], b["tr"], seed + b["k"],
                                obs_space, act_space)
                    )
                    buffers[i] = None
            if not done.any():
                continue
            if not any(b is not None for b in buffers) and not wanted():
                break
            # Reset every finished sub-env (DISABLED autoreset requires it); the ones that
            # start a wanted episode get its seed, in sub-env order.
            reset_seeds: list[int | None] = [None] * num_envs
            starts = []
            for i in np.flatnonzero(done):
                if buffers[i] is None and wanted():
                    reset_seeds[i] = seed + next_k
                    starts.append((i, next_k))
                    next_k += 1
                else:
                    reset_seeds[i] = idle_seed
                    idle_seed += 1
            obs, _ = envs.reset(seed=reset_seeds, options={"reset_mask": done.copy()})
            for i, k in starts:
                buffers[i] = {"k": k, "o": [obs[i]], "a": [], "r": [], "te": [], "tr": []}
    finally:
        envs.close()
    episodes.sort(key=lambda e: e["seed"])
    return episodes


def episode_returns(episodes: Sequence[Episode]) -> np.ndarray:
    """Undiscounted return of each episode."""
    return np.array([float(np.sum(e["rewards"])) for e in episodes])


def make_env_spec(env_id: str, max_episode_steps: int | None = None,
                  env_kwargs: dict | None = None):
    """The ``EnvSpec`` of ``gym.make(env_id, max_episode_steps=..., **env_kwargs)``.

    ``gym.make(spec)`` recreates exactly that environment (time limit included).
    """
    env = _make_env(env_id, max_episode_steps, env_kwargs)
    try:
        return env.spec
    finally:
        env.close()


@contextlib.contextmanager
def _datasets_root(path: str) -> Iterator[None]:
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = path
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def _ensure_namespace(namespace: str | None) -> None:
    from minari.namespace import create_namespace, list_local_namespaces

    if namespace is None or namespace in list_local_namespaces():
        return
    try:
        create_namespace(namespace)
    except ValueError:  # created concurrently
        pass


def write_minari_dataset(
    dataset_id: str,
    episodes: Sequence[Episode],
    *,
    env_id: str,
    env_kwargs: dict | None = None,
    max_episode_steps: int | None = None,
    algorithm_name: str,
    author: str = "seqrl",
    author_email: str | None = None,
    code_permalink: str | None = None,
    description: str | None = None,
    ref_min_score: float | None = None,
    ref_max_score: float | None = None,
    num_episodes_average_score: int = 100,
    eval_env_spec: Any = None,
    requirements: list[str] | None = None,
    extra_metadata: dict | None = None,
    overwrite: bool = False,
    fast_write: bool = True,
):
    """Write ``episodes`` (as returned by :func:`rollout`) as a Minari dataset (arrow format).

    The dataset's ``env_spec`` is that of ``gym.make(env_id, max_episode_steps=...,
    **env_kwargs)``, so ``dataset.recover_environment()`` rebuilds the exact environment,
    time limit included; ``eval_env_spec`` (an id, ``EnvSpec`` or env) defaults to it.

    Reference scores: Minari 0.5.4 stores ``ref_min_score``/``ref_max_score`` only together, and
    only when ``ref_max_score`` is given (then a missing ``ref_min_score`` is estimated by Minari
    with its own random policy over ``num_episodes_average_score`` episodes); giving only
    ``ref_min_score`` raises. ``extra_metadata`` keys are added to the dataset metadata.

    The dataset is written under a hidden staging folder of the datasets root and moved into
    place at the end, so an interrupted build leaves no partial dataset behind. An existing
    dataset with the same id raises ``ValueError`` unless ``overwrite=True``.

    Writing: the dataset and its metadata are created by ``minari.create_dataset_from_buffers``
    (arrow format); episodes are then appended. Minari 0.5's own per-episode writer costs a few
    ms per episode on these disks plus a re-measure of the whole folder after each one (quadratic:
    ~4 minutes for 2,000 short episodes), which matters for sets of thousands of short episodes
    (random InvertedPendulum: ~8,000). With ``fast_write`` (default) and Minari's 0.5 arrow
    storage, each episode is written directly in the layout Minari's writer produces (one arrow
    IPC file ``data/<id>/part-0.arrow`` with the columns encoded by Minari's own encoder, and
    ``data/<id>/metadata.json``); otherwise, or for another storage, Minari's writer is used with
    only the size bookkeeping deferred. ``tests/test_builtin.py`` checks both paths against a
    dataset written by ``create_dataset_from_buffers`` alone.

    Returns:
        the ``minari.MinariDataset``, loaded from its final place.
    """
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer
    from minari.dataset.minari_dataset import parse_dataset_id
    from minari.storage.datasets_root_dir import get_dataset_path

    if ref_min_score is not None and ref_max_score is None:
        raise ValueError("Minari stores ref_min_score only together with ref_max_score")
    if len(episodes) == 0:
        raise ValueError(f"no complete episodes to write for {dataset_id}")
    namespace = parse_dataset_id(dataset_id)[0]  # validates the id
    target = get_dataset_path(dataset_id)
    if target.exists() and not overwrite:
        raise ValueError(f"A Minari dataset with ID {dataset_id} already exists at {target}; "
                         "pass overwrite=True to replace it")

    env_spec = make_env_spec(env_id, max_episode_steps, env_kwargs)
    probe = gym.make(env_spec)
    obs_space, act_space = probe.observation_space, probe.action_space
    probe.close()

    buffers = []
    for e in episodes:
        T = len(e["rewards"])
        if len(e["observations"]) != T + 1 or len(e["actions"]) != T:
            raise ValueError("an episode needs T + 1 observations and T actions")
        buffers.append(EpisodeBuffer(
            seed=e.get("seed"),
            observations=np.asarray(e["observations"], dtype=obs_space.dtype),
            actions=np.asarray(e["actions"], dtype=act_space.dtype).reshape(
                (T,) + act_space.shape),
            rewards=np.asarray(e["rewards"], dtype=np.float64),
            terminations=np.asarray(e["terminations"], dtype=bool),
            truncations=np.asarray(e["truncations"], dtype=bool),
            infos={},
        ))

    root = get_dataset_path()  # creates the root if needed
    staging = tempfile.mkdtemp(prefix=".seqrl-staging-", dir=root)
    try:
        with _datasets_root(staging), warnings.catch_warnings():
            # Minari warns for every optional metadata field left empty (email, permalink, ...).
            warnings.filterwarnings("ignore", message=r".*is set to None.*", category=UserWarning)
            dataset = minari.create_dataset_from_buffers(
                dataset_id=dataset_id,
                buffer=[],
                env=env_spec,
                eval_env=eval_env_spec if eval_env_spec is not None else env_spec,
                algorithm_name=algorithm_name,
                author=author,
                author_email=author_email,
                code_permalink=code_permalink,
                ref_min_score=ref_min_score,
                ref_max_score=ref_max_score,
                num_episodes_average_score=num_episodes_average_score,
                description=description,
                data_format="arrow",
                requirements=requirements,
            )
            storage = dataset.storage
            if not (fast_write and _append_episodes_fast(storage, buffers)):
                _append_episodes_minari(storage, buffers)
            metadata = {"dataset_size": storage.get_size()}
            if extra_metadata:
                metadata.update(json.loads(json.dumps(extra_metadata)))
            storage.update_metadata(metadata)
        staged = os.path.join(staging, dataset_id)
        _ensure_namespace(namespace)
        if target.exists():
            if not overwrite:
                raise ValueError(f"A Minari dataset with ID {dataset_id} appeared at {target} "
                                 "while building; pass overwrite=True to replace it")
            shutil.rmtree(target)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.rename(staged, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return minari.load_dataset(dataset_id)


def _append_episodes_minari(storage, buffers: list) -> None:
    """Append with Minari's writer; its per-episode folder re-measure is deferred to the end."""
    update_metadata = storage.update_metadata

    def skip_size_only(metadata: dict) -> None:
        if set(metadata) != {"dataset_size"}:
            update_metadata(metadata)

    # Instance attributes shadowing the methods, on this storage object only.
    storage.get_size = lambda: 0.0
    storage.update_metadata = skip_size_only
    try:
        for i in range(0, len(buffers), 256):
            storage.update_episodes(buffers[i:i + 256])
    finally:
        del storage.get_size
        del storage.update_metadata


def _append_episodes_fast(storage, buffers: list) -> bool:
    """Append episodes in the on-disk layout of Minari 0.5's ``ArrowStorage.update_episodes``.

    Returns False (writing nothing) when the storage is not that one.
    """
    try:
        import pyarrow as pa
        import pyarrow.ipc as ipc
        from minari.dataset._storages.arrow_storage import ArrowStorage, NumpyEncoder, _encode_space
    except ImportError:
        return False
    if type(storage) is not ArrowStorage or not hasattr(storage, "_jpeg_encoding"):
        return False
    if any(episode.infos for episode in buffers):
        return False  # infos columns: leave them to Minari's writer
    jpeg = storage._jpeg_encoding
    total_episodes = storage.total_episodes
    total_steps = storage.total_steps
    for episode in buffers:
        episode_id = total_episodes
        observations = _encode_space(storage.observation_space, episode.observations,
                                     jpeg_encoding=jpeg)
        rewards = np.asarray(episode.rewards).reshape(-1)
        terminations = np.asarray(episode.terminations).reshape(-1)
        truncations = np.asarray(episode.truncations).reshape(-1)
        pad = len(observations) - len(rewards)
        actions = _encode_space(storage.action_space, episode.actions, pad=pad,
                                jpeg_encoding=jpeg)
        batch = pa.RecordBatch.from_pydict({
            # Minari partitions by "episode_id", which lives in the folder name, not the file.
            "observations": observations,
            "actions": actions,
            "rewards": np.pad(rewards, (0, pad)),
            "terminations": np.pad(terminations, (0, pad)),
            "truncations": np.pad(truncations, (0, pad)),
        })
        folder = storage.data_path / str(episode_id)
        folder.mkdir()
        with pa.OSFile(str(folder / "part-0.arrow"), "wb") as sink:
            with ipc.new_file(sink, batch.schema) as writer:
                writer.write_batch(batch)
        episode_metadata: dict = {"id": episode_id, "total_steps": len(rewards)}
        if episode.seed is not None:
            episode_metadata["seed"] = episode.seed
        if episode.options is not None:
            episode_metadata["options"] = episode.options
        with open(folder / "metadata.json", "w") as f:
            json.dump(episode_metadata, f, cls=NumpyEncoder)
        total_episodes += 1
        total_steps += len(rewards)
    storage.update_metadata({"total_steps": total_steps, "total_episodes": total_episodes})
    return True


def collect_policy_dataset(
    policy: Any,
    env_id: str,
    dataset_id: str,
    n_steps: int,
    seed: int,
    *,
    max_episode_steps: int | None = None,
    env_kwargs: dict | None = None,
    num_envs: int = 1,
    algorithm_name: str | None = None,
    description: str | None = None,
    overwrite: bool = False,
    **write_kwargs: Any,
):
    """Roll out ``policy`` (a seqrl policy with a batched ``act`` or any batch callable) for
    ``n_steps`` environment steps and write the complete episodes as Minari dataset
    ``dataset_id``. ``write_kwargs`` go to :func:`write_minari_dataset` (``ref_min_score``,
    ``ref_max_score``, ``author``, ...). Returns the ``MinariDataset``."""
    episodes = rollout(
        env_id, policy, n_steps=n_steps, seed=seed, max_episode_steps=max_episode_steps,
        env_kwargs=env_kwargs, num_envs=num_envs,
    )
    name = algorithm_name or type(policy).__name__
    return write_minari_dataset(
        dataset_id,
        episodes,
        env_id=env_id,
        env_kwargs=env_kwargs,
        max_episode_steps=max_episode_steps,
        algorithm_name=name,
        description=description or (
            f"{len(episodes)} episodes of {name} in {env_id} collected by seqrl with seed {seed}"
        ),
        extra_metadata={"seqrl": {"collector": "collect_policy_dataset", "n_steps": n_steps,
                                  "seed": seed, "num_envs": num_envs}},
        overwrite=overwrite,
        **write_kwargs,
    )


def split_episodes(arrays: dict[str, np.ndarray]) -> list[dict]:
    """Rows of a replay buffer (oldest first) as whole episodes in `seqrl.data.collect`'s layout
    (observations T+1, actions, rewards, terminations, truncations). A trailing episode with no
    end flag is closed as truncated; its last next observation is kept."""
    done = (arrays["terminals"] > 0) | (arrays["truncations"] > 0)
    ends = np.flatnonzero(done).tolist()
    if len(done) and not done[-1]:
        ends.append(len(done) - 1)
    episodes, start = [], 0
    for end in ends:
        sl = slice(start, end + 1)
        terminations = arrays["terminals"][sl] > 0
        episodes.append({
            "observations": np.concatenate([arrays["observations"][sl], arrays["next_observations"][end:end + 1]]),
            "actions": arrays["actions"][sl], "rewards": arrays["rewards"][sl].astype(np.float64),
            "terminations": terminations, "truncations": ~terminations & (np.arange(start, end + 1) == end),
        })
        start = end + 1
    return episodes
