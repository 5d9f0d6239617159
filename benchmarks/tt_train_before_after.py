"""TT training step time of seqrl at two commits (this checkout and an older one) and the peer,
interleaved in one run on the same machine: did a change make training slower?

    python benchmarks/tt_train_before_after.py --old 9f6ac19      # issue 14's before/after

The older tree is checked out with `git worktree` into a temporary folder and imported in place of
the editable install; both seqrl sides and the peer run benchmarks/_tt_train_worker.py (same
weights, same batch, 3 warm-up + 3 timed steps) in separate processes, in turn.
Writes benchmarks/results/tt_train_before_after.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKER = HERE / "_tt_train_worker.py"
PEER_PY = HERE / ".venv-hf430" / "bin" / "python"
# run the worker with the older tree's seqrl in front of the editable install's finder
SHIM = ("import runpy, sys; sys.meta_path = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]; "
        "sys.path.insert(0, sys.argv.pop(1)); sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "2147483647", "TQDM_DISABLE": "1"}


def run(cmd: list[str]) -> dict:
    import os

    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, **ENV}, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", required=True, help="the older commit")
    ap.add_argument("--batch-sizes", default="256,32")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "tt_train_before_after.json")
    args = ap.parse_args()
    if not PEER_PY.exists():
        raise SystemExit("run benchmarks/tt_train.py --quick once first: it creates the peer's venv")
    with tempfile.TemporaryDirectory() as tmp:
        old_tree = Path(tmp) / "old"
        subprocess.run(["git", "worktree", "add", "--detach", str(old_tree), args.old], check=True, cwd=ROOT,
                       capture_output=True)
        try:
            weights = str(Path(tmp) / "w.pt")
            run([str(PEER_PY), str(WORKER), "--impl", "hf430", "--mode", "init", "--weights", weights])
            sides = {"new": [sys.executable, str(WORKER), "--impl", "seqrl"],
                     "old": [sys.executable, "-c", SHIM, str(old_tree), str(WORKER), "--impl", "seqrl"],
                     "peer": [str(PEER_PY), str(WORKER), "--impl", "hf430"]}
            results = []
            for batch in (int(b) for b in args.batch_sizes.split(",")):
                times = {k: [] for k in sides}
                for r in range(args.repeats):
                    for name, cmd in sides.items():
                        info = run(cmd + ["--mode", "train", "--weights", weights, "--batch", str(batch), "--steps", "3",
                                          "--warmup", "3", "--threads", str(args.threads)])
                        times[name].append(statistics.median(info["step_s"]))
                        print(f"batch {batch} repeat {r + 1} {name}: {times[name][-1]:.3f} s/step", flush=True)
                med = {k: statistics.median(v) for k, v in times.items()}
                results.append({"batch": batch, "step_s": times, "median_step_s": med,
                                "ratio_new": med["peer"] / med["new"], "ratio_old": med["peer"] / med["old"]})
                print(f"batch {batch}: peer/new {results[-1]['ratio_new']:.2f}x, peer/old {results[-1]['ratio_old']:.2f}x")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old_tree)], cwd=ROOT, capture_output=True)
    args.out.write_text(json.dumps({"old": args.old, "threads": args.threads, "results": results}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
