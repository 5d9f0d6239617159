"""Several seeds at once: seed-updates per second of K seeds stacked in one process
(`seqrl train ALGO --seeds ...`, seqrl.algos.stacked) against K sequential single runs of seqrl
and of d3rlpy 2.8.1, on the data, networks and batch sizes of benchmarks/value_based.py.

K sequential runs go at a single run's rate (setup aside), so their seed-updates per second is
the single run's updates per second; a stacked update of K seeds counts K seed-updates. Each
measurement is a fresh process (the value_based workers; `--stack K` for seqrl's stacked side),
interleaved per algorithm, medians over repeats. Also reported: GFLOP/s, so a ratio can be read
against the matmul ceiling (K seeds are K times the FLOPs of one).

    python benchmarks/multi_seed.py                        # bc, iql, cql, awac; K = 1, 5, 10; 2 threads
    python benchmarks/multi_seed.py --algos iql --ks 5 --repeats 3
    python benchmarks/multi_seed.py --quick                # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from value_based import (ALGOS, D3RLPY_VENV, DEFAULT_UPDATES, HERE, LABELS, QUICK_UPDATES, ensure_d3rlpy_venv,
                         make_dataset, median, run_worker)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algos", default=",".join(ALGOS), help=f"comma-separated subset of {','.join(ALGOS)}")
    p.add_argument("--ks", default="1,5,10", help="numbers of stacked seeds to time (default 1,5,10)")
    p.add_argument("--repeats", type=int, default=2, help="interleaved runs per cell (default 2)")
    p.add_argument("--threads", type=int, default=2, help="torch/OMP threads of every worker (default 2: the machine)")
    p.add_argument("--transitions", type=int, default=100_000, help="dataset size (default 100k)")
    p.add_argument("--no-d3rlpy", action="store_true", help="skip the peer (no venv needed)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 repeat, few updates")
    p.add_argument("--out", default=str(HERE / "results" / "multi_seed.json"), help="JSON output")
    args = p.parse_args()
    algos = [a for a in args.algos.split(",") if a]
    unknown = sorted(set(algos) - set(ALGOS))
    if unknown:
        p.error(f"unknown algorithms {unknown}; choose from {list(ALGOS)}")
    ks = [int(k) for k in args.ks.split(",")]
    repeats = 1 if args.quick else args.repeats
    per_algo = QUICK_UPDATES if args.quick else DEFAULT_UPDATES
    from seqrl.cpu.memory import reuse_freed_memory_env

    malloc = reuse_freed_memory_env()
    pythons = {"seqrl": Path(os.sys.executable)}
    if not args.no_d3rlpy:
        pythons["d3rlpy"] = ensure_d3rlpy_venv(D3RLPY_VENV)
    results: dict = {"settings": {"threads": args.threads, "repeats": repeats, "ks": ks, "transitions": args.transitions,
                                  "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                                  "date": time.strftime("%Y-%m-%d")}, "algorithms": {}}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "hopper_random.npz"
        np.savez(data, **make_dataset(args.transitions, 0))
        for algo in algos:
            cells: dict[str, list] = {}
            for r in range(repeats):
                for k in [0, *ks]:  # 0: the single run
                    updates = max(3, per_algo[algo] // max(1, k))  # about the same seconds per cell
                    res = run_worker("seqrl", pythons["seqrl"], algo, data, updates, max(2, updates // 10),
                                     args.threads, 0, malloc, stack=k)
                    cells.setdefault(f"seqrl_k{k}", []).append(res)
                if "d3rlpy" in pythons:
                    res = run_worker("d3rlpy", pythons["d3rlpy"], algo, data, per_algo[algo],
                                     max(3, per_algo[algo] // 10), args.threads, 0, malloc)
                    cells.setdefault("d3rlpy", []).append(res)
            single = median([c["updates_per_s"] for c in cells["seqrl_k0"]])
            peer = median([c["updates_per_s"] for c in cells["d3rlpy"]]) if "d3rlpy" in cells else None
            row = {"single_updates_per_s": single, "d3rlpy_updates_per_s": peer,
                   "single_gflop_per_s": median([c["gflop_per_s"] for c in cells["seqrl_k0"]]), "stacked": {}}
            for k in ks:
                rate = k * median([c["updates_per_s"] for c in cells[f"seqrl_k{k}"]])
                row["stacked"][k] = {"seed_updates_per_s": rate, "vs_sequential_seqrl": rate / single,
                                     "vs_sequential_d3rlpy": rate / peer if peer else None,
                                     "gflop_per_s": median([c["gflop_per_s"] for c in cells[f"seqrl_k{k}"]])}
            results["algorithms"][algo] = row | {"runs": cells}
            print(table({algo: row}, args.threads), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(table(results["algorithms"], args.threads))
    print(f"wrote {args.out}")


def table(algorithms: dict, threads: int) -> str:
    rows = ["| algorithm | K | stacked seed-upd/s | K sequential seqrl | K sequential d3rlpy | stacked / seqrl "
            "| stacked / d3rlpy | GFLOP/s stacked (single) |", "|---|---|---|---|---|---|---|---|"]
    for algo, row in algorithms.items():
        peer = row["d3rlpy_updates_per_s"]
        for k, cell in row["stacked"].items():
            vs_peer = f"{cell['vs_sequential_d3rlpy']:.2f}x" if peer else "-"
            rows.append(f"| {LABELS[algo]} | {k} | {cell['seed_updates_per_s']:.0f} | {row['single_updates_per_s']:.0f} "
                        f"| {f'{peer:.0f}' if peer else '-'} | {cell['vs_sequential_seqrl']:.2f}x | {vs_peer} "
                        f"| {cell['gflop_per_s']:.0f} ({row['single_gflop_per_s']:.0f}) |")
    rows.append(f"\n{threads} torch thread(s) per process; seed-updates per second (a stacked update of K seeds is K).")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
