"""seqrl's side of benchmarks/value_based.py: one algorithm, one process, one JSON line.

Reads the .npz with `EpisodeDataset.from_d4rl`, builds a `TransitionBuffer`, then times
`buffer.sample(batch_size)` + `algo.update(batch)` with the shared loop in value_based.py; with
`--stack K`, K seeds' batches + one stacked update (benchmarks/multi_seed.py).
"""

from __future__ import annotations

import os
import sys
import time

from value_based import ACT_DIM, OBS_DIM, SPECS, configure_threads, emit, time_updates, worker_args


def build(algo: str, seed: int):
    from seqrl.algos import AWACConfig, BCConfig, CQLConfig, IQLConfig, build_algorithm

    s = SPECS[algo]
    hidden, batch = tuple(s["hidden"]), s["batch_size"]
    if algo == "bc":
        config = BCConfig(hidden_dims=hidden, batch_size=batch, policy="deterministic", seed=seed)
    elif algo == "iql":
        config = IQLConfig(hidden_dims=hidden, batch_size=batch, seed=seed)
    elif algo == "cql":
        config = CQLConfig(hidden_dims=hidden, batch_size=batch,
                           cql_n_actions=s["n_action_samples"],
                           cql_alpha=s["conservative_weight"], seed=seed)
    else:  # AWAC-paper settings: batch-softmax weights, one policy sample for the advantage
        config = AWACConfig.paper(hidden_dims=hidden, batch_size=batch, awac_lambda=s["lam"],
                                  actor_weight_decay=s["actor_weight_decay"], seed=seed)
    return config, build_algorithm(config, OBS_DIM, ACT_DIM)


def count_params(model) -> dict[str, int]:
    """Trainable parameters by top-level module (target networks are frozen copies)."""
    counts: dict[str, int] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            key = name.split(".")[0]
            counts[key] = counts.get(key, 0) + p.numel()
    counts["total"] = sum(counts.values())
    return counts


def main() -> None:
    t0 = time.perf_counter()
    args = worker_args(__doc__)
    configure_threads(args.threads)
    import numpy as np
    import torch

    import seqrl
    from seqrl.data import BufferConfig, EpisodeDataset, TransitionBuffer

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    bounds = {"action_low": [-1.0] * ACT_DIM, "action_high": [1.0] * ACT_DIM}
    episodes = EpisodeDataset.from_d4rl(args.data, metadata=bounds)
    buffer = TransitionBuffer(episodes, BufferConfig(), seed=args.seed)
    config, algo = build(args.algo, args.seed)
    algo.train()
    batch_size = config.batch_size
    sample = lambda: buffer.sample(batch_size)  # noqa: E731
    if args.stack:  # K seeds as one stacked update (seqrl.algos.stacked), each its own batch
        from seqrl.algos.stacked import SeedStack, StackedBatches

        seeds = list(range(args.seed, args.seed + args.stack))
        algo = SeedStack(lambda s: (torch.manual_seed(s), build(args.algo, s)[1])[1], seeds)
        sample = StackedBatches(buffer, batch_size, seeds).next_batch

    if args.compile:  # what `--compile` does in a training run
        from seqrl.training.compiled import check_compile, compile_losses

        check_compile("cpu")
        compile_losses(algo)
    update = algo.update
    if args.precision != "fp32":  # what `--precision` does in the training loop
        from seqrl.training.precision import check_precision, update_precision

        check_precision(args.precision, "cpu")

        def update(batch, _update=algo.update):
            with update_precision(args.precision, "cpu"):
                return _update(batch)

    setup_s = time.perf_counter() - t0  # imports, dataset and model building
    result = time_updates(sample, update, args.warmup, args.updates, args.profile)
    result |= {
        "setup_s": setup_s,
        "impl": "seqrl", "algo": args.algo, "threads": torch.get_num_threads(),
        "batch_size": batch_size, "transitions": len(buffer), "stack": args.stack,
        "precision": args.precision, "compile": args.compile,
        "params": count_params(algo.members[0] if args.stack else algo),
        "config": config.to_dict(),
        "versions": {"seqrl": getattr(seqrl, "__version__", "dev"), "torch": torch.__version__,
                     "numpy": np.__version__, "python": sys.version.split()[0]},
        "env_threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")},
    }
    emit(result)


if __name__ == "__main__":
    main()
