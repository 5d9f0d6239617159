"""Make a D4RL-style dataset family (random, medium, medium-replay, expert, medium-expert) for a
Gymnasium MuJoCo v5 environment: `python recipes/make_datasets.py --env Hopper-v5`.

1. trains SAC online (`seqrl train sac --online`, evaluation snapshots every --eval_every steps)
   into --run_dir, or resumes it there (skipped when the run is complete);
2. exports the family's assets into seqrl/data/family_assets/<env>/ (medium and expert actors,
   medium-replay rows, reference scores, the run's curve) - what later builds use;
3. builds the five Minari datasets seqrl/<env>/<quality>-v0 into MINARI_DATASETS_PATH and prints
   their summaries.

Budget used for the shipped families: README ("Dataset families").
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from seqrl.data.families import ENVS, QUALITIES, ensure_family  # noqa: E402
from seqrl.training.families import export_family  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="Hopper-v5", choices=sorted(ENVS.values()), help="the environment")
    p.add_argument("--steps", type=int, default=200_000, help="environment steps of the SAC run")
    p.add_argument("--random_steps", type=int, default=10_000, help="uniform random steps first (SB3's learning_starts for MuJoCo)")
    p.add_argument("--eval_every", type=int, default=10_000, help="evaluate and snapshot every N steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run_dir", default="", help="where the SAC run goes (default outputs/datasets/<env>-sac)")
    p.add_argument("--skip_training", action="store_true", help="export from an existing --run_dir as it is")
    args = p.parse_args(argv)
    short = next(s for s, e in ENVS.items() if e == args.env)
    run_dir = Path(args.run_dir or f"outputs/datasets/{short}-sac")
    command = (f"seqrl train sac --online --env {args.env} --max_steps {args.steps} --random_steps "
               f"{args.random_steps} --learning_starts {args.random_steps} --eval_every {args.eval_every} "
               f"--seed {args.seed}")
    if not args.skip_training:
        from seqrl.training.run import main as train

        train("sac", ["--online", "--env", args.env, "--max_steps", str(args.steps), "--random_steps",
                      str(args.random_steps), "--learning_starts", str(args.random_steps), "--eval_every",
                      str(args.eval_every), "--eval_episodes", "10", "--snapshot_evals", "--save_every",
                      str(args.eval_every * 2), "--log_every", "2000", "--buffer_size", str(args.steps),
                      "--seed", str(args.seed), "--output_dir", str(run_dir), "--resume"])
    record = export_family(run_dir, args.env, command)
    print(f"{args.env}: expert {record['expert']['return']:.0f} at step {record['expert']['step']:,}, "
          f"medium {record['medium']['return']:.0f} at step {record['medium']['step']:,}; reference scores "
          f"{record['ref_min_score']:.1f} / {record['ref_max_score']:.1f}")
    from seqrl.data import load_dataset

    for quality in QUALITIES:
        dataset_id = f"seqrl/{short}/{quality}-v0"
        t0 = time.perf_counter()
        ensure_family(dataset_id, force=True)
        print(f"{dataset_id} ({time.perf_counter() - t0:.0f} s): {load_dataset(dataset_id).summary()}", flush=True)


if __name__ == "__main__":
    main()
