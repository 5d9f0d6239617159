"""Model-based speed: seqrl against d3rlpy 1.1.1 (the last d3rlpy with MOPO and COMBO), in one run on
the same Hopper-shaped synthetic data (obs 11, act 3, 100,000 transitions, same generator and seed):

    ensemble training steps/s   7 members, 4 x 200 Swish, batch 256 per member, Adam 1e-3
    rollout transitions/s       50,000 start states x h 5, the SAC actor's sampled actions; MOPO's
                                (every member, for the penalty) and COMBO's (no penalty: seqrl runs
                                only each row's sampled elite, d3rlpy every member as for MOPO)
    policy updates/s            MOPO (SAC 2x256, real_ratio 0.05) and COMBO (2x256, real_ratio 0.5)

Each side runs in its own process and virtual environment (d3rlpy 1.1.1 in benchmarks/.venv-d3rlpy1,
created on first use: an sdist built with cython<3 and --no-build-isolation), one after the other,
with the same torch threads. seqrl's FLOP per operation come from torch's FLOP counter; GFLOP/s on
d3rlpy's side assume the same work per operation. COMBO is timed twice on seqrl's side: pushing down
at the model rows only (`combo_states: model`, d3rlpy's and the paper's rho: the same work) and at
every row (`mix`, OfflineRL-Kit's and seqrl's default: twice the sampled-action work).

    python benchmarks/model_based.py                 # 1 thread, ~3 min
    python benchmarks/model_based.py --threads 2

Writes benchmarks/results/model_based.json and prints markdown table lines.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEER_VENV = HERE / ".venv-d3rlpy1"
INSTALL = [["torch==2.13.0"], ["numpy", "cython<3"], ["--no-build-isolation", "d3rlpy==1.1.1"]]


def peer_python() -> Path:
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {PEER_VENV} (d3rlpy 1.1.1, about a minute)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        for packages in INSTALL:
            subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    return python


def run(python, worker: str, args) -> dict:
    cmd = [str(python), str(HERE / worker), "--threads", str(args.threads), "--transitions", str(args.transitions),
           "--steps", str(args.steps), "--combo-steps", str(args.combo_steps)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--transitions", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=200, help="timed ensemble and MOPO steps")
    ap.add_argument("--combo-steps", type=int, default=100)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "model_based.json")
    args = ap.parse_args()
    peer = run(peer_python(), "_d3rlpy1_model_based_worker.py", args)
    ours = run(sys.executable, "_seqrl_model_based_worker.py", args)
    rows = [("ensemble training steps/s", "dynamics_train", "updates_per_s", "sample_and_update_per_s"),
            ("rollout transitions/s (50k x h 5)", "rollout", "transitions_per_s", "transitions_per_s"),
            ("rollout transitions/s without a penalty (COMBO; d3rlpy's COMBO runs the same rollout as its MOPO)",
             "rollout_unpenalised", "transitions_per_s", "transitions_per_s"),
            ("MOPO updates/s (mixed batches, sampling included)", "mopo_update", "updates_per_s", "sample_and_update_per_s"),
            ("COMBO updates/s (push-down at model rows, as d3rlpy)", "combo_update", "updates_per_s", "sample_and_update_per_s"),
            ("COMBO updates/s (seqrl's default: push-down at every row; d3rlpy at model rows)", "combo_mix_update",
             "updates_per_s", "sample_and_update_per_s")]
    table = []
    print(f"| operation ({args.threads} thread(s)) | seqrl | d3rlpy 1.1.1 | ratio | seqrl GFLOP/s |")
    print("|---|---|---|---|---|")
    for label, key, ours_key, peer_key in rows:
        peer_row = peer.get(key) or peer.get(key.replace("_mix", "").replace("_unpenalised", ""))
        if key not in ours or peer_row is None:
            continue
        a, b = ours[key][ours_key], peer_row[peer_key]
        table.append({"operation": label, "seqrl": a, "d3rlpy": b, "ratio": a / b,
                      "seqrl_gflop_per_s": ours[key].get("gflop_per_s")})
        print(f"| {label} | {a:,.1f} | {b:,.1f} | **{a / b:.2f}x** | {ours[key].get('gflop_per_s', 0):.0f} |")
    args.out.write_text(json.dumps({"threads": args.threads, "table": table, "seqrl": ours, "d3rlpy": peer}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
