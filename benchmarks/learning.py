"""Do the value-based methods learn? Each recipe trains on a built-in dataset and is evaluated
against the behaviour data it learned from.

For every (algorithm, dataset) pair this runs `seqrl.training.run.main` (the code behind
`recipes/train_<algo>.py`, with that recipe's default YAML) for a CPU-sized budget of updates,
evaluates the final policy on 10 episodes, and reports the mean return +- s.e. beside the
dataset's mean episode return, as JSON (benchmarks/results/learning.json) and markdown rows for
the README. The slow tests (`pytest -m slow`) check the same on a smaller dataset.

    python benchmarks/learning.py                                   # IQL, CQL, AWAC, BC on IP medium
    python benchmarks/learning.py --algos iql --datasets seqrl/invertedpendulum/mixed-v0 --steps 5000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", default="iql,cql,awac,bc", help="comma-separated algorithms")
    parser.add_argument("--datasets", default="seqrl/invertedpendulum/medium-v0", help="comma-separated dataset ids")
    parser.add_argument("--steps", type=int, default=3000, help="updates per run (the recipes' defaults are larger)")
    parser.add_argument("--episodes", type=int, default=10, help="evaluation episodes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(HERE / "results" / "learning.json"))
    args = parser.parse_args()

    import torch

    from seqrl.data import load_dataset
    from seqrl.training.run import main as train

    rows, results = [], []
    for dataset in args.datasets.split(","):
        data = load_dataset(dataset).summary()
        for algo in args.algos.split(","):
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                result = train(algo, ["--dataset", dataset, "--output_dir", out, "--max_steps", str(args.steps),
                                      "--eval_episodes", str(args.episodes), "--eval_every", "0",
                                      "--save_every", str(args.steps), "--seed", str(args.seed), "--no-resume",
                                      "--threads", str(torch.get_num_threads())])
                seconds = time.perf_counter() - start
            ev = result["eval"]
            entry = {"algorithm": algo, "dataset": dataset, "updates": args.steps, "seconds": round(seconds, 1),
                     "return_mean": ev["return_mean"], "return_stderr": ev["return_stderr"],
                     "normalized_score": ev.get("normalized_score"), "data_return_mean": data.return_mean,
                     "beats_data": ev["return_mean"] > data.return_mean}
            results.append(entry)
            rows.append(f"| {algo.upper()} | {dataset} | {args.steps:,} | {ev['return_mean']:.1f} ± "
                        f"{ev['return_stderr']:.1f} | {data.return_mean:.1f} | {seconds:.0f} s |")
            print(rows[-1], flush=True)

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"benchmark": "value-based learning on built-in data",
                                          "episodes": args.episodes, "torch_threads": torch.get_num_threads(),
                                          "results": results}, indent=2))
    print("\n| algorithm | dataset | updates | return (10 episodes, ± s.e.) | data mean return | time |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
