"""How many torch threads on a shared machine: IQL updates per second (batch 256, 2x256, Hopper
shapes) for several thread settings, each in its own process, while the machine runs whatever
else it runs (run it beside a training job to see the loaded case). Reports updates/s per setting.

    python benchmarks/threads.py --seconds 20
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

WORKER = '''
import json, time, torch
torch.set_num_threads({threads})
from seqrl.algos import IQL, IQLConfig
algo = IQL(IQLConfig(max_steps=10**6), 11, 3)
g = torch.Generator().manual_seed(0)
batch = {{"observations": torch.randn(256, 11, generator=g), "actions": torch.rand(256, 3, generator=g) * 2 - 1,
          "rewards": torch.randn(256, generator=g), "next_observations": torch.randn(256, 11, generator=g),
          "terminals": torch.zeros(256)}}
for _ in range(20):
    algo.update(batch)
n, start = 0, time.perf_counter()
while time.perf_counter() - start < {seconds}:
    algo.update(batch)
    n += 1
print("RESULT " + json.dumps({{"updates_per_s": n / (time.perf_counter() - start)}}))
'''

SETTINGS = {  # name -> (threads, extra environment)
    "1 thread": (1, {}),
    "2 threads (OpenMP default wait)": (2, {}),
    "2 threads, OMP_WAIT_POLICY=PASSIVE": (2, {"OMP_WAIT_POLICY": "PASSIVE"}),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=20.0, help="timed seconds per setting")
    p.add_argument("--out", default=str(HERE / "results" / "threads.json"))
    args = p.parse_args()
    rows = {}
    for name, (threads, extra) in SETTINGS.items():
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")} | extra
        r = subprocess.run([sys.executable, "-c", WORKER.format(threads=threads, seconds=args.seconds)],
                           capture_output=True, text=True, env=env)
        line = next(x for x in r.stdout.splitlines() if x.startswith("RESULT "))
        rows[name] = json.loads(line[7:])["updates_per_s"]
        print(f"{name:40s} {rows[name]:8.1f} IQL updates/s  (load average {os.getloadavg()[0]:.2f})", flush=True)
    Path(args.out).write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(),
                                          "updates_per_s": rows}, indent=1))


if __name__ == "__main__":
    main()
