"""Online SAC speed: environment steps per second with one update per step, seqrl against
d3rlpy 2.8.1's `fit_online`, in one run (each side in its own process, interleaved repeats).

Both sides: Hopper-v5, SAC with 2x256 actor and twin critics, batch 256, every rate 3e-4,
automatic temperature, a FIFO replay buffer, `--random` uniform-random steps first (no updates
before them), then one update per environment step, no evaluation, same torch threads. seqrl runs
`seqrl train sac --online` (the recipe as a user runs it, final checkpoint included); d3rlpy runs
`SAC.fit_online` with its no-op logger and no progress bar. Timed: the whole training call.

    python benchmarks/online_sac.py                       # 4,000 steps (1,000 random), 1 thread, 2 repeats
    python benchmarks/online_sac.py --steps 80000 --random 10000 --threads 2 --repeats 1
    python benchmarks/online_sac.py --threads 2 --seqrl eager,bf16,bf16+compile
    python benchmarks/online_sac.py --threads 2 --profile 200
        # also: where seqrl's step goes (env + policy call, update split by benchmarks/profiling.py)
        # and the ceiling the update's matmuls set: the rate seqrl could reach if all else were free

The ceiling: seqrl's measured run with every update cut to the time of its matmuls alone (the same
shapes back to back: the same maths cannot run faster here), everything else (environment, policy
calls, random phase, start-up) as measured; its rate over d3rlpy's is the largest ratio this machine
allows without fewer FLOPs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from value_based import (D3RLPY_VENV, SEQRL_VARIANTS_HELP, ensure_d3rlpy_venv, parse_variants,  # noqa: E402
                         seqrl_key, variant_options)

D3RLPY_SIDE = '''
import json, sys, time, warnings
warnings.simplefilter("ignore")
import torch
torch.set_num_threads({threads})
import gymnasium as gym, d3rlpy
from d3rlpy.models.encoders import VectorEncoderFactory
d3rlpy.seed(0)
env = gym.make("{env}")
enc = VectorEncoderFactory(hidden_units=[256, 256])
sac = d3rlpy.algos.SACConfig(batch_size=256, actor_learning_rate=3e-4, critic_learning_rate=3e-4,
                             temp_learning_rate=3e-4, actor_encoder_factory=enc,
                             critic_encoder_factory=enc).create(device="cpu:0")
buffer = d3rlpy.dataset.create_fifo_replay_buffer(limit={steps}, env=env)
start = time.perf_counter()
sac.fit_online(env, buffer, n_steps={steps}, n_steps_per_epoch={steps}, update_start_step={random},
               random_steps={random}, save_interval=10**9, show_progress=False,
               logger_adapter=d3rlpy.logging.NoopAdapterFactory())
print("RESULT " + json.dumps({{"seconds": time.perf_counter() - start, "transitions": buffer.transition_count}}))
'''

SEQRL_SIDE = '''
import json, sys, time, torch
torch.set_num_threads({threads})
from seqrl.training.run import main
start = time.perf_counter()
main("sac", ["--online", "--env", "{env}", "--max_steps", "{steps}", "--random_steps", "{random}",
             "--learning_starts", "{random}", "--eval_episodes", "0", "--save_every", "0",
             "--log_every", "1000", "--output_dir", "{out}", "--seed", "0", "--threads", "{threads}", *{extra!r}])
print("RESULT " + json.dumps({{"seconds": time.perf_counter() - start}}))
'''


PROFILE_SIDE = '''
import json, sys, torch
torch.set_num_threads({threads})
sys.path.insert(0, {bench!r})
from profiling import breakdown_line, marked_sample, median_seconds, profile_steps
from seqrl.algos import SAC, SACConfig
from seqrl.data.transitions import ReplayBuffer
from seqrl.training.online import EnvironmentSource, OnlineConfig, make_env
online = OnlineConfig(env_id="{env}", random_steps={random}, learning_starts={random},
                      buffer_size={capacity}, batch_size=256, seed=0)
env = make_env(online)
obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
algo = SAC(SACConfig(batch_size=256, seed=0), obs_dim, act_dim, action_low=env.action_space.low,
           action_high=env.action_space.high)  # the recipe's defaults: 2x256, rates 3e-4
replay = ReplayBuffer(obs_dim, act_dim, online.buffer_size, seed=0)
source = EnvironmentSource(online, algo, replay, env)
for _ in range({random}):
    source.step()  # the random phase
update = lambda: algo.update(replay.sample(256))
for _ in range(50):  # warm-up, as the timed runs are past their first updates
    source.step(); update()
env_s = median_seconds(source.step, {steps})  # the policy's sampled action, env.step, the replay write
update_s = median_seconds(update, {steps})
prof = profile_steps(lambda: algo.update(marked_sample(lambda: replay.sample(256))()), {steps}, update_s)
print("RESULT " + json.dumps({{"env_step_ms": env_s * 1e3, "update_ms": update_s * 1e3, "profile": prof,
                              "floor_ms": prof["matmul_roofline"]["floor_ms"], "breakdown": breakdown_line(prof)}}))
'''


def run_side(python: Path, code: str, threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), TQDM_DISABLE="1")
    r = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=env, cwd=HERE.parent)
    lines = [line for line in r.stdout.splitlines() if line.startswith("RESULT ")]
    if r.returncode != 0 or not lines:
        raise SystemExit(f"{python} failed:\n{r.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="Hopper-v5")
    p.add_argument("--steps", type=int, default=4000, help="environment steps per run")
    p.add_argument("--random", type=int, default=1000, help="uniform random steps before updates start")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--seqrl", default="eager", metavar="VARIANTS", help=SEQRL_VARIANTS_HELP)
    p.add_argument("--d3rlpy-venv", default=str(D3RLPY_VENV))
    p.add_argument("--out", default=str(HERE / "results" / "online_sac.json"))
    p.add_argument("--profile", type=int, default=0, metavar="STEPS",
                   help="after the timing, time STEPS env steps and STEPS updates of seqrl apart, profile "
                        "the update and report the ceiling its matmuls set (0: none)")
    args = p.parse_args()
    variants = parse_variants(args.seqrl)
    if args.profile and "eager" not in variants:
        raise SystemExit("--profile profiles eager seqrl: keep eager in --seqrl")
    d3rlpy_python = ensure_d3rlpy_venv(Path(args.d3rlpy_venv))
    runs = {seqrl_key(v): [] for v in variants} | {"d3rlpy": []}
    for repeat in range(args.repeats):
        for variant in variants:
            with tempfile.TemporaryDirectory() as out:
                runs[seqrl_key(variant)].append(run_side(Path(sys.executable), SEQRL_SIDE.format(
                    threads=args.threads, env=args.env, steps=args.steps, random=args.random, out=out,
                    extra=variant_options(variant)), args.threads))
        runs["d3rlpy"].append(run_side(d3rlpy_python, D3RLPY_SIDE.format(
            threads=args.threads, env=args.env, steps=args.steps, random=args.random), args.threads))
        print(f"repeat {repeat}: " + ", ".join(f"{k} {r[-1]['seconds']:.1f} s" for k, r in runs.items()), flush=True)
    best = {side: min(r["seconds"] for r in rs) for side, rs in runs.items()}
    rate = {side: args.steps / s for side, s in best.items()}
    ratios = {side: rate[side] / rate["d3rlpy"] for side in rate if side != "d3rlpy"}
    profile = None
    if args.profile:
        profile = run_side(Path(sys.executable), PROFILE_SIDE.format(
            threads=args.threads, env=args.env, random=args.random, capacity=args.random + 3 * args.profile + 100,
            steps=args.profile, bench=str(HERE)), args.threads)
        saved_s = (args.steps - args.random) * (profile["update_ms"] - profile["floor_ms"]) / 1e3
        profile["ceiling_steps_per_s"] = args.steps / (best["seqrl"] - saved_s)
        profile["ceiling_ratio"] = profile["ceiling_steps_per_s"] / rate["d3rlpy"]
    result = {"env": args.env, "steps": args.steps, "random_steps": args.random,
              "updates": args.steps - args.random, "threads": args.threads, "runs": runs,
              "steps_per_s": rate, "ratio": ratios.get("seqrl"), "ratios": ratios,
              "profile": profile, "machine": os.uname().machine, "date": time.strftime("%Y-%m-%d")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    for side, ratio in ratios.items():
        print(f"| online SAC {args.env}, {args.steps:,} steps ({args.random:,} random), {args.threads} thread(s) | "
              f"{side} {rate[side]:.1f} vs d3rlpy {rate['d3rlpy']:.1f} env steps/s = **{ratio:.2f}x** |")
    if profile:
        print(f"seqrl per env step: env + policy call {profile['env_step_ms']:.2f} ms, update {profile['update_ms']:.2f} ms\n"
              f"update: {profile['breakdown']}\n"
              f"ceiling: {profile['ceiling_steps_per_s']:.0f} env steps/s = {profile['ceiling_ratio']:.2f}x d3rlpy "
              f"(the run with each update at its matmul floor)")


if __name__ == "__main__":
    main()
