"""d3rlpy 1.1.1's side of a model-based speed benchmark (runs in benchmarks/.venv-d3rlpy1, the last
d3rlpy with MOPO and COMBO): one process, one JSON line on stdout (progress goes to stderr).

On a synthetic Hopper-shaped MDPDataset (obs 11, act 3) it times, with time.perf_counter after a
warm-up, d3rlpy's own code paths (no `fit`: its logger, progress bar and scorers are left out):

  a. dynamics: `ProbabilisticEnsembleDynamics.update(batch)` (LearnableBase.update ->
     ProbabilisticEnsembleDynamics._update -> ProbabilisticEnsembleDynamicsImpl.update) on batches
     from `RandomIterator.__next__`, the iterator `fit(n_steps=...)` uses;
  b. rollout: `MOPO.generate_new_data(transitions)` (ModelBaseMixin.generate_new_data in
     d3rlpy/algos/utility.py), one call from `--rollout-starts` dataset transitions, `--horizon`
     steps, actions from MOPO's own (untrained) SAC policy; the time spent inside
     `DynamicsBase.predict` and `SACImpl.sample_action` is measured by thin wrappers, the rest is
     d3rlpy's Python loop that builds one Cython `Transition` per generated step;
  c. policy: `MOPO.update(batch)` (SAC critic + actor + temperature + targets) and
     `COMBO.update(batch)` on mixed real/generated batches from a `RandomIterator` holding the
     generated transitions (what `fit` does after `add_generated_transitions` and `reset`).

Usage: .venv-d3rlpy1/bin/python _d3rlpy1_model_based_worker.py [--threads 1] [--steps 200] ...
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import sys
import time
import warnings

OBS_DIM = 11
ACT_DIM = 3
MAX_EPISODE_LEN = 1000


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--transitions", type=int, default=100_000, help="dataset size (steps)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--steps", type=int, default=200, help="timed update steps (dynamics, MOPO)")
    p.add_argument("--combo-steps", type=int, default=None,
                   help="timed COMBO update steps (default: --steps; 0 skips COMBO)")
    p.add_argument("--warmup", type=int, default=10, help="untimed update steps before each timing")
    p.add_argument("--rollout-starts", type=int, default=50_000)
    p.add_argument("--horizon", type=int, default=5)
    p.add_argument("--warmup-rollout-starts", type=int, default=1_000,
                   help="start states of the untimed warm-up rollout")
    p.add_argument("--n-ensembles", type=int, default=7)
    p.add_argument("--dyn-hidden", type=int, nargs="+", default=[200, 200, 200, 200])
    p.add_argument("--dyn-activation", default="swish", choices=["swish", "relu", "tanh"])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def log(msg: str) -> None:
    print(f"[d3rlpy1-mb] {msg}", file=sys.stderr, flush=True)


def make_dataset(n: int, seed: int):
    """Hopper-shaped arrays: random-walk observations that restart at each episode, actions
    uniform in [-1, 1], rewards ~ 1 + forward-velocity-like term, episodes of 20..1000 steps that
    end in a terminal (a fall) or, at 1000 steps, a timeout (episode_terminals without terminal)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lengths = []
    total = 0
    while total < n:
        length = MAX_EPISODE_LEN if rng.random() < 0.3 else int(rng.integers(20, MAX_EPISODE_LEN))
        length = min(length, n - total)
        lengths.append(length)
        total += length
    obs = np.empty((n, OBS_DIM), dtype=np.float32)
    terminals = np.zeros(n, dtype=np.float32)
    episode_terminals = np.zeros(n, dtype=np.float32)
    start = 0
    for length in lengths:
        init = np.zeros(OBS_DIM, dtype=np.float32)
        init[0] = 1.25  # torso height, as in Hopper
        init += rng.uniform(-5e-3, 5e-3, size=OBS_DIM).astype(np.float32)
        steps = rng.normal(0.0, 0.05, size=(length, OBS_DIM)).astype(np.float32)
        steps[0] = 0.0
        obs[start:start + length] = init + np.cumsum(steps, axis=0)
        end = start + length - 1
        episode_terminals[end] = 1.0
        if length < MAX_EPISODE_LEN and end < n - 1:
            terminals[end] = 1.0
        start += length
    actions = rng.uniform(-1.0, 1.0, size=(n, ACT_DIM)).astype(np.float32)
    rewards = (1.0 + 0.5 * obs[:, 5] - 1e-3 * np.square(actions).sum(axis=1)
               + rng.normal(0.0, 0.05, size=n)).astype(np.float32)
    return obs, actions, rewards, terminals, episode_terminals, len(lengths)


class Timed:
    """Wraps a bound method on an instance and adds up the wall time spent in it."""

    def __init__(self, obj, name: str):
        self.obj, self.name = obj, name
        self.inner = getattr(obj, name)
        self.seconds = 0.0
        self.calls = 0

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return self.inner(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1

    def __enter__(self):
        # object.__setattr__: d3rlpy's LearnableBase.__setattr__ would also copy it onto its impl
        object.__setattr__(self.obj, self.name, self)
        return self

    def __exit__(self, *exc):
        delattr(self.obj, self.name)  # back to the class's method
        return False


def time_updates(algo, iterator, warmup: int, steps: int) -> dict:
    """Like one step of `fit`'s loop: batch = next(iterator); algo.update(batch). Batch sampling
    (RandomIterator.__next__, which builds a Cython TransitionMiniBatch) and the update are timed
    separately and together."""
    for _ in range(warmup):
        algo.update(next(iterator))
    gc.collect()
    t_sample = t_update = 0.0
    losses = None
    for _ in range(steps):
        t0 = time.perf_counter()
        batch = next(iterator)
        t1 = time.perf_counter()
        losses = algo.update(batch)
        t2 = time.perf_counter()
        t_sample += t1 - t0
        t_update += t2 - t1
    return {
        "steps_timed": steps,
        "warmup_steps": warmup,
        "update_s": t_update,
        "sample_s": t_sample,
        "updates_per_s": steps / t_update,
        "sample_and_update_per_s": steps / (t_update + t_sample),
        "ms_per_update": 1e3 * t_update / steps,
        "ms_per_sample": 1e3 * t_sample / steps,
        "last_losses": {k: float(v) for k, v in (losses or {}).items()},
    }


def main() -> None:
    args = parse_args()
    combo_steps = args.steps if args.combo_steps is None else args.combo_steps
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))
    os.environ.setdefault("TQDM_DISABLE", "1")
    warnings.simplefilter("ignore")
    t_start = time.perf_counter()

    import numpy as np
    import torch

    with contextlib.redirect_stdout(sys.stderr):  # gym 0.26's banner must not reach stdout
        import d3rlpy
        from d3rlpy.algos import COMBO, MOPO
        from d3rlpy.dataset import MDPDataset
        from d3rlpy.dynamics import ProbabilisticEnsembleDynamics
        from d3rlpy.iterators import RandomIterator
        from d3rlpy.models.encoders import VectorEncoderFactory
        from d3rlpy.models.optimizers import AdamFactory

    torch.set_num_threads(args.threads)
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    d3rlpy.seed(args.seed)  # random, numpy's global RNG (d3rlpy samples with it) and torch

    # ------------------------------------------------------------------ dataset
    t0 = time.perf_counter()
    obs, act, rew, term, ep_term, n_episodes = make_dataset(args.transitions, args.seed)
    dataset = MDPDataset(obs, act, rew, term, episode_terminals=ep_term)
    transitions = []
    for episode in dataset.episodes:  # what LearnableBase.fitter does
        transitions += episode.transitions
    dataset_s = time.perf_counter() - t0
    log(f"dataset: {args.transitions} steps, {n_episodes} episodes, {len(transitions)} "
        f"transitions, {int(term.sum())} terminals, built in {dataset_s:.1f}s")

    # ------------------------------------------------------------------ a. dynamics training
    dyn_encoder = VectorEncoderFactory(hidden_units=list(args.dyn_hidden),
                                       activation=args.dyn_activation)
    dyn_optim = AdamFactory(weight_decay=1e-4)  # d3rlpy 1.1.1's default for this class
    dynamics = ProbabilisticEnsembleDynamics(
        learning_rate=1e-3, optim_factory=dyn_optim, encoder_factory=dyn_encoder,
        batch_size=args.batch_size, n_ensembles=args.n_ensembles, variance_type="max")
    dynamics.build_with_dataset(dataset)
    dyn_params = sum(p.numel() for p in dynamics.impl._dynamics.parameters())
    n_spectral = sum(1 for m in dynamics.impl._dynamics.modules() if hasattr(m, "weight_orig"))
    big = 10 ** 9  # RandomIterator stops after n_steps_per_epoch batches
    dyn_iter = RandomIterator(transitions, big, batch_size=args.batch_size, n_steps=1,
                              gamma=1.0, n_frames=1)
    dyn_iter.reset()
    log(f"dynamics: {args.n_ensembles} members x {args.dyn_hidden} {args.dyn_activation}, "
        f"{dyn_params} parameters; timing {args.steps} updates ...")
    dyn_res = time_updates(dynamics, dyn_iter, args.warmup, args.steps)
    log(f"dynamics: {dyn_res['updates_per_s']:.2f} updates/s "
        f"({dyn_res['sample_and_update_per_s']:.2f}/s with batch sampling)")

    # ------------------------------------------------------------------ b. MOPO rollout
    ac_encoder = VectorEncoderFactory(hidden_units=[256, 256], activation="relu")
    mopo = MOPO(batch_size=args.batch_size, actor_encoder_factory=ac_encoder,
                critic_encoder_factory=ac_encoder, n_critics=2, dynamics=dynamics,
                rollout_horizon=args.horizon, rollout_batch_size=args.rollout_starts,
                real_ratio=0.05, lam=1.0)
    mopo.build_with_dataset(dataset)

    mopo._rollout_batch_size = args.warmup_rollout_starts  # untimed warm-up, smaller
    warm = mopo.generate_new_data(transitions)
    mopo._rollout_batch_size = args.rollout_starts
    del warm
    gc.collect()
    assert mopo.grad_step % mopo._rollout_interval == 0  # generate_new_data runs at step 0
    log(f"rollout: {args.rollout_starts} starts x horizon {args.horizon} ...")
    with Timed(dynamics, "predict") as t_pred, Timed(mopo.impl, "sample_action") as t_act:
        t0 = time.perf_counter()
        generated = mopo.generate_new_data(transitions)
        rollout_s = time.perf_counter() - t0
    n_generated = len(generated)
    gen_rewards = np.array([t.reward for t in generated[-args.rollout_starts:]], dtype=np.float64)
    gen_terminals = sum(1 for t in generated if t.terminal)
    last_obs = np.stack([t.next_observation for t in generated[-args.rollout_starts:]])
    rollout_res = {
        "starts": args.rollout_starts,
        "horizon": args.horizon,
        "transitions_generated": n_generated,
        "seconds": rollout_s,
        "transitions_per_s": n_generated / rollout_s,
        "in_dynamics_predict_s": t_pred.seconds,
        "dynamics_predict_calls": t_pred.calls,
        "in_policy_sample_action_s": t_act.seconds,
        "policy_sample_action_calls": t_act.calls,
        "other_python_s": rollout_s - t_pred.seconds - t_act.seconds,
        "terminal_transitions": gen_terminals,
        "last_step_penalized_reward_mean": float(gen_rewards.mean()),
        "last_step_obs_abs_max": float(np.abs(last_obs).max()),
        "warmup_rollout_starts": args.warmup_rollout_starts,
    }
    log(f"rollout: {n_generated} transitions in {rollout_s:.1f}s "
        f"({rollout_res['transitions_per_s']:.0f}/s; predict {t_pred.seconds:.1f}s, "
        f"policy {t_act.seconds:.1f}s, python {rollout_res['other_python_s']:.1f}s)")

    # ------------------------------------------------------------------ c. MOPO / COMBO updates
    def mixed_iterator(real_ratio: float):
        it = RandomIterator(transitions, big, batch_size=args.batch_size, n_steps=1, gamma=0.99,
                            n_frames=1, real_ratio=real_ratio, generated_maxlen=50000 * 5 * 5)
        it.add_generated_transitions(generated)
        it.reset()  # sets the real share of each batch, as fit's epoch loop does
        return it

    mopo_iter = mixed_iterator(0.05)
    log(f"MOPO: timing {args.steps} updates (real {mopo_iter._real_batch_size} of "
        f"{args.batch_size}) ...")
    mopo_res = time_updates(mopo, mopo_iter, args.warmup, args.steps)
    mopo_res["real_per_batch"] = mopo_iter._real_batch_size
    mopo_res["generated_pool"] = len(mopo_iter.generated_transitions)
    log(f"MOPO: {mopo_res['updates_per_s']:.1f} updates/s "
        f"({mopo_res['sample_and_update_per_s']:.1f}/s with batch sampling)")

    combo_res = None
    if combo_steps > 0:
        combo = COMBO(batch_size=args.batch_size, actor_encoder_factory=ac_encoder,
                      critic_encoder_factory=ac_encoder, n_critics=2, dynamics=dynamics,
                      rollout_horizon=args.horizon, rollout_batch_size=args.rollout_starts,
                      real_ratio=0.5)
        combo.build_with_dataset(dataset)
        combo_iter = mixed_iterator(0.5)
        log(f"COMBO: timing {combo_steps} updates (real {combo_iter._real_batch_size} of "
            f"{args.batch_size}) ...")
        combo_res = time_updates(combo, combo_iter, max(1, args.warmup // 2), combo_steps)
        combo_res["real_per_batch"] = combo_iter._real_batch_size
        combo_res["n_action_samples"] = combo._n_action_samples
        combo_res["conservative_weight"] = combo._conservative_weight
        log(f"COMBO: {combo_res['updates_per_s']:.1f} updates/s")

    result = {
        "impl": "d3rlpy",
        "versions": {"d3rlpy": d3rlpy.__version__, "torch": torch.__version__,
                     "numpy": np.__version__, "python": platform.python_version()},
        "threads": torch.get_num_threads(),
        "seed": args.seed,
        "dataset": {"steps": args.transitions, "transitions": len(transitions),
                    "episodes": n_episodes, "terminals": int(term.sum()),
                    "obs_dim": OBS_DIM, "act_dim": ACT_DIM, "build_s": dataset_s},
        "config": {
            "dynamics": {"class": "d3rlpy.dynamics.ProbabilisticEnsembleDynamics",
                         "n_ensembles": args.n_ensembles, "hidden_units": list(args.dyn_hidden),
                         "activation": args.dyn_activation, "batch_size": args.batch_size,
                         "learning_rate": 1e-3, "optimizer": "Adam(weight_decay=1e-4)",
                         "variance_type": "max", "scaler": None,
                         "spectral_norm_layers": n_spectral, "parameters": dyn_params},
            "mopo": {"batch_size": args.batch_size, "real_ratio": 0.05, "lam": 1.0,
                     "hidden_units": [256, 256], "activation": "relu", "n_critics": 2,
                     "update_actor_interval": mopo._update_actor_interval,
                     "temp_learning_rate": mopo._temp_learning_rate},
            "combo": None if combo_res is None else {
                "batch_size": args.batch_size, "real_ratio": 0.5, "hidden_units": [256, 256],
                "n_critics": 2, "n_action_samples": combo._n_action_samples},
        },
        "dynamics_train": dyn_res,
        "rollout": rollout_res,
        "mopo_update": mopo_res,
        "combo_update": combo_res,
        "total_wall_s": time.perf_counter() - t_start,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
