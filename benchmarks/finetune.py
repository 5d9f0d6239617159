"""Offline-to-online fine-tuning on a v5 family: normalized return before and after, the lowest
evaluation early in the online phase (a collapse shows there), and CORL's regret, over seeds.

Each seed: the offline run (the YAML `seqrl train` starts from on that dataset: on a v5 family
`recipes/configs/<algo>/v5-short.yaml`, as the quality table runs it),
then `seqrl finetune` of its model in the dataset's environment for --online-steps, evaluated every
--eval-every steps on 10 deterministic episodes (reset seeds 10,000 + k). Every cell is one JSON file
under --results, so an interrupted table resumes; `--table` prints the markdown table.

    python benchmarks/finetune.py                                     # IQL, hopper medium, 3 seeds
    python benchmarks/finetune.py --algos cql --calql --offline-steps 3000 --online-steps 3000
    python benchmarks/finetune.py --table
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from quality import run  # noqa: E402  (one subprocess per run, its threads set)

from seqrl.training.run import starting_yaml  # noqa: E402  (the YAML `seqrl train` would start from)

CELL = '''
import json, torch
torch.set_num_threads({threads})
from seqrl.training.run import main as train
from seqrl.training.finetune import main as finetune
import os
if not os.path.exists({model!r} + "/seqrl.json"):
    train("{algo}", {offline!r})
r = finetune({online!r})
print("RESULT " + json.dumps({{k: r[k] for k in ("before", "after", "evaluations", "regret", "online_episodes")}}))
'''
EARLY_STEPS = 3000  # "does not collapse in the first few thousand steps"


def cell_path(results: Path, algo: str, dataset: str, seed: int, calql: bool) -> Path:
    return results / f"{algo}{'-calql' if calql else ''}__{dataset.replace('/', '_')}__seed{seed}.json"


def table(results: Path) -> str:
    cells = [json.loads(p.read_text()) for p in sorted(results.glob("*.json"))]
    groups: dict[tuple, list] = {}
    for c in cells:
        groups.setdefault((c["dataset"], c["name"], c["offline_steps"], c["online_steps"]), []).append(c)

    def stat(xs):
        se = np.std(xs, ddof=1) / math.sqrt(len(xs)) if len(xs) > 1 else float("nan")
        return f"**{np.mean(xs):.1f} ± {se:.1f}** ({', '.join(f'{x:.1f}' for x in xs)})"

    lines = ["| dataset | method | offline updates -> online steps | before | after | lowest in the first "
             f"{EARLY_STEPS:,} online steps | regret | seeds |", "|---|---|---|---|---|---|---|---|"]
    for (dataset, name, off, on), cs in sorted(groups.items()):
        before = [c["before"]["normalized_score"] for c in cs]
        after = [c["after"]["normalized_score"] for c in cs]
        early = [min(e["normalized_score"] for e in c["evaluations"] if e["step"] <= EARLY_STEPS) for c in cs]
        regrets = [c["regret"] for c in cs]
        lines.append(f"| {dataset} | {name} | {off:,} -> {on:,} | {stat(before)} | {stat(after)} | {stat(early)} | "
                     f"{np.mean(regrets):.3f} | {len(cs)} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="seqrl/hopper/medium-v0", help="any dataset `seqrl train` takes (default hopper medium)")
    p.add_argument("--algos", default="iql", help="any of iql, awac, cql, sac, brac")
    p.add_argument("--calql", action="store_true", help="CQL: Cal-QL's bound offline and online, separate buffers at 0.5")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds, one offline + one online run each")
    p.add_argument("--offline-steps", type=int, default=10_000, help="offline updates before fine-tuning")
    p.add_argument("--online-steps", type=int, default=10_000, help="online environment steps (one update each)")
    p.add_argument("--eval-every", type=int, default=1_000, help="online steps between evaluations")
    p.add_argument("--episodes", type=int, default=10, help="deterministic episodes per evaluation")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--results", default=str(HERE / "results" / "finetune"), help="one JSON per cell here")
    p.add_argument("--table", action="store_true", help="only print the table of finished cells")
    args = p.parse_args()
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    if args.table:
        print(table(results))
        return
    work = results / "work"
    for algo in args.algos.split(","):
        for seed in map(int, args.seeds.split(",")):
            path = cell_path(results, algo, args.dataset, seed, args.calql)
            if path.exists():
                continue
            run_dir = work / f"{algo}{'-calql' if args.calql else ''}_{args.dataset.replace('/', '_')}_{seed}"
            offline = ["--config", starting_yaml(algo, False, args.dataset), "--dataset", args.dataset,
                       "--max_steps", str(args.offline_steps), "--seed", str(seed), "--output_dir", str(run_dir / "offline"),
                       "--eval_episodes", str(args.episodes), "--threads", str(args.threads)]
            online = [str(run_dir / "offline" / "model"), "--max_steps", str(args.online_steps), "--seed", str(seed),
                      "--eval_every", str(args.eval_every), "--eval_episodes", str(args.episodes),
                      "--output_dir", str(run_dir / "online"), "--threads", str(args.threads), "--log_every", "1000"]
            if args.calql:
                offline += ["--calql"]
                online += ["--calql", "--offline_ratio", "0.5"]
            t0 = time.perf_counter()
            res = run([sys.executable, "-c", CELL.format(threads=args.threads, algo=algo, offline=offline, online=online,
                                                         model=str(run_dir / "offline" / "model"))], args.threads)
            res |= {"dataset": args.dataset, "algo": algo, "name": algo.upper() + (" (Cal-QL)" if args.calql else ""),
                    "seed": seed, "offline_steps": args.offline_steps, "online_steps": args.online_steps,
                    "seconds": round(time.perf_counter() - t0, 1), "threads": args.threads, "date": time.strftime("%Y-%m-%d")}
            path.write_text(json.dumps(res, indent=1))
            print(f"{res['name']} seed {seed}: {res['before']['normalized_score']:.1f} -> {res['after']['normalized_score']:.1f}, "
                  f"regret {res['regret']:.3f} ({res['seconds']:.0f} s)", flush=True)
    print(table(results))


if __name__ == "__main__":
    main()
