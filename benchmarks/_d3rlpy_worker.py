"""d3rlpy's side of benchmarks/value_based.py (runs in benchmarks/.venv-d3rlpy): one algorithm,
one process, one JSON line.

Builds an `MDPDataset` from the .npz, then does what one step of d3rlpy's `fit` loop does:
`dataset.sample_transition_batch(batch_size)` + `algo.update(batch)` (the logger, progress bar and
metric bookkeeping of `fit` are left out), timed with the shared loop in value_based.py.
Configurations follow d3rlpy's reproduction scripts, with the network and batch sizes of SPECS.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import warnings

from value_based import ACT_DIM, SPECS, configure_threads, emit, time_updates, worker_args


def build(algo: str):
    import d3rlpy
    from d3rlpy.models.encoders import VectorEncoderFactory
    from d3rlpy.optimizers import AdamFactory, CosineAnnealingLRFactory

    s = SPECS[algo]
    enc = VectorEncoderFactory(hidden_units=list(s["hidden"]))
    batch = s["batch_size"]
    if algo == "bc":
        config = d3rlpy.algos.BCConfig(batch_size=batch, learning_rate=3e-4,
                                       policy_type="deterministic", encoder_factory=enc)
    elif algo == "iql":  # reproductions/offline/iql.py: cosine schedule on the actor
        config = d3rlpy.algos.IQLConfig(
            batch_size=batch, actor_learning_rate=3e-4, critic_learning_rate=3e-4,
            actor_optim_factory=AdamFactory(
                lr_scheduler_factory=CosineAnnealingLRFactory(T_max=1_000_000)),
            actor_encoder_factory=enc, critic_encoder_factory=enc, value_encoder_factory=enc,
            expectile=0.7, weight_temp=3.0, max_weight=100.0)
    elif algo == "cql":  # reproductions/offline/cql.py: fixed conservative weight (alpha lr 0)
        config = d3rlpy.algos.CQLConfig(
            batch_size=batch, actor_encoder_factory=enc, critic_encoder_factory=enc,
            n_action_samples=s["n_action_samples"], conservative_weight=s["conservative_weight"],
            alpha_learning_rate=0.0)
    else:  # reproductions/offline/awac.py
        config = d3rlpy.algos.AWACConfig(
            batch_size=batch, actor_learning_rate=3e-4, critic_learning_rate=3e-4,
            actor_encoder_factory=enc, critic_encoder_factory=enc,
            actor_optim_factory=AdamFactory(weight_decay=s["actor_weight_decay"]),
            lam=s["lam"], n_action_samples=s["n_action_samples"])
    return config, config.create(device="cpu:0")


def count_params(algo) -> dict[str, int]:
    """Trainable parameters by module of the impl, target networks left out."""
    import torch

    counts: dict[str, int] = {}
    seen: set[int] = set()
    for f in dataclasses.fields(algo.impl.modules):
        v = getattr(algo.impl.modules, f.name)
        if f.name.startswith("targ") or not isinstance(v, torch.nn.Module):
            continue
        n = 0
        for p in v.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                n += p.numel()
        counts[f.name] = n
    counts["total"] = sum(counts.values())
    return counts


def main() -> None:
    t0 = time.perf_counter()
    args = worker_args(__doc__)
    if args.precision != "fp32" or args.stack or args.compile:
        raise SystemExit("--precision, --compile and --stack are seqrl options")
    configure_threads(args.threads)
    warnings.simplefilter("ignore")
    import numpy as np
    import torch

    import d3rlpy
    from d3rlpy.algos.qlearning.base import (
        assert_action_space_with_dataset,
        build_scalers_with_transition_picker,
    )

    d3rlpy.seed(args.seed)
    data = np.load(args.data)
    dataset = d3rlpy.dataset.MDPDataset(
        observations=data["observations"], actions=data["actions"], rewards=data["rewards"],
        terminals=data["terminals"], timeouts=data["timeouts"],
        action_space=d3rlpy.ActionSpace.CONTINUOUS, action_size=ACT_DIM)
    config, algo = build(args.algo)
    # as fitter() does before its loop
    assert_action_space_with_dataset(algo, dataset.dataset_info)
    build_scalers_with_transition_picker(algo, dataset)
    shape = dataset.sample_transition().observation_signature.shape
    algo.create_impl(shape[0] if len(shape) == 1 else shape, dataset.dataset_info.action_size)
    batch_size = config.batch_size

    setup_s = time.perf_counter() - t0  # imports, dataset and model building
    result = time_updates(lambda: dataset.sample_transition_batch(batch_size), algo.update,
                          args.warmup, args.updates, args.profile)
    result |= {
        "setup_s": setup_s,
        "impl": "d3rlpy", "algo": args.algo, "threads": torch.get_num_threads(),
        "batch_size": batch_size, "transitions": dataset.transition_count,
        "params": count_params(algo), "config": type(config).__name__,
        "compile_graph": bool(config.compile_graph),
        "versions": {"d3rlpy": d3rlpy.__version__, "torch": torch.__version__,
                     "numpy": np.__version__, "python": sys.version.split()[0]},
        "env_threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")},
    }
    emit(result)


if __name__ == "__main__":
    main()
