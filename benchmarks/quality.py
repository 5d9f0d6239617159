"""The quality table: seqrl's BC, CQL, IQL, AWAC, MOPO, COMBO (and TT, BRAC) against d3rlpy's on the
same datasets at the same budget, several seeds, normalized scores as mean ± s.e. over seeds.

Every cell (library, algorithm, dataset, seed) is one process writing one JSON file under --results,
so an interrupted table resumes where it stopped (existing cells are skipped). seqrl runs its recipe
(`seqrl.training.run.main`) with the YAML the table used, `recipes/configs/<algo>/v5-short.yaml`
(settings for a budget of thousands of updates, not D4RL's 1M: see the README); d3rlpy runs its
reproduction settings (benchmarks/_d3rlpy_quality_worker.py, in benchmarks/.venv-d3rlpy, created on
first use) on the same transitions exported to .npz. Both final deterministic policies are evaluated
by the same code in the same environment build (d3rlpy's is exported with `save_policy` as
TorchScript and run in seqrl's gymnasium 1.4 / mujoco 4.0 Hopper-v5: d3rlpy's own venv pins
gymnasium 1.0 / mujoco 3.2.7, whose Hopper-v5 drifts apart from the one the data was made in after a
few hundred steps), on the same reset seeds (10,000 + k), normalized with the dataset's reference
scores. d3rlpy's return in its own env is kept in each cell as `own_env_return_mean`.

MOPO and COMBO: each dataset's dynamics ensemble is fitted once (seed 0, early stopping or
--dynamics-epochs) and shared by the MOPO and COMBO cells of every seed through `--dynamics`; each
reads its dataset's own YAML, `recipes/configs/<algo>/v5-short-<env>-<quality>.yaml`, with the
references' (h, lambda / beta). d3rlpy 2.x has neither method, so their d3rlpy cells run d3rlpy 1.1.1
(benchmarks/_d3rlpy1_quality_worker.py in benchmarks/.venv-d3rlpy1, created on first use) with its
reproductions' settings, on one 1.1.1 dynamics fit per dataset of --dynamics-epochs passes.

    python benchmarks/quality.py                                    # hopper medium + medium-replay, 3 seeds
    python benchmarks/quality.py --datasets seqrl/walker2d/medium-v0 --algos iql,bc --seeds 0,1,2,3,4
    python benchmarks/quality.py --datasets seqrl/hopper/medium-v0 --algos mopo,combo
    python benchmarks/quality.py --table                            # print the markdown table of what is done
"""

from __future__ import annotations

import argparse
import shlex
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from seqrl.training.run import starting_yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from model_based import peer_python  # noqa: E402  d3rlpy 1.1.1's venv (MOPO, COMBO), created on first use

DEFAULT_DATASETS = "seqrl/hopper/medium-v0,seqrl/hopper/medium-replay-v0"
DEFAULT_STEPS = {"bc": 10_000, "iql": 10_000, "awac": 10_000, "cql": 3_000, "tt": 2_000, "mopo": 10_000, "combo": 3_000, "brac": 10_000}
MODEL_BASED = ("mopo", "combo")  # not in d3rlpy 2.x: their d3rlpy cells run d3rlpy 1.1.1
SEQRL_ONLY = ("tt", "brac")  # in no d3rlpy (its BEAR is another method than BRAC)
DYNAMICS_EPOCHS = 30  # the ensemble's CPU budget per dataset (references: until early stopping)
SEQRL_CELL = '''
import json, sys, torch
torch.set_num_threads({threads})
from seqrl.training.run import main
r = main("{algo}", {argv!r})
print("RESULT " + json.dumps({{"eval": r["eval"], "evaluations": r["evaluations"]}}))
'''

DYNAMICS_CELL = '''
import json, sys, torch
torch.set_num_threads({threads})
from seqrl.training.run import main
r = main("dynamics", {argv!r})
print("RESULT " + json.dumps(r["model"].metadata["training"]))
'''


def cell_path(results: Path, lib: str, algo: str, dataset: str, seed: int) -> Path:
    return results / f"{lib}__{algo}__{dataset.replace('/', '_')}__seed{seed}.json"


def export_npz(dataset: str, out: Path) -> dict:
    """The dataset's transitions in d3rlpy's MDPDataset layout (terminals vs timeouts kept apart)."""
    from seqrl.data import load_dataset

    ds = load_dataset(dataset)
    if not out.exists():
        a = ds.arrays()
        ends = np.asarray(a["truncated"], bool) & ~np.asarray(a["terminated"], bool)
        np.savez(out, observations=a["observation"].astype(np.float32), actions=a["action"].astype(np.float32),
                 rewards=a["reward"].astype(np.float32), terminals=np.asarray(a["terminated"], np.float32),
                 timeouts=ends.astype(np.float32))
    return ds.metadata


def run(cmd: list[str], threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), TQDM_DISABLE="1")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    lines = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    if r.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed:\n{r.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def seqrl_config(algo: str, dataset: str) -> Path:
    """The YAML `seqrl train ALGO --dataset DATASET` starts from: the dataset's own v5-short YAML where
    the method has per-dataset settings (MOPO's (h, lambda), COMBO's (h, beta)), else the method's one
    v5-short YAML."""
    return Path(starting_yaml(algo, False, dataset))


def ensure_dynamics(dataset: str, work: Path, threads: int, epochs: int) -> Path:
    """One dynamics ensemble per dataset (seed 0), fitted once and shared by the MOPO and COMBO cells
    of every seed: the cells' spread is then the policy's, and each cell saves the fit's minutes."""
    out = work / f"dynamics_{dataset.replace('/', '_')}"
    if not (out / "model" / "seqrl.json").exists():
        argv = ["--dataset", dataset, "--output_dir", str(out), "--max_epochs", str(epochs), "--seed", "0",
                "--threads", str(threads), "--resume"]
        run([sys.executable, "-c", DYNAMICS_CELL.format(threads=threads, argv=argv)], threads)
    return out / "model"


def seqrl_cell(algo, dataset, seed, steps, episodes, threads, out_dir, dynamics: Path | None = None,
               extra: list[str] = ()) -> dict:
    argv = ["--config", str(seqrl_config(algo, dataset)), "--dataset", dataset, "--max_steps", str(steps),
            "--seed", str(seed), "--eval_episodes", str(episodes), "--eval_every", "0", "--save_every", str(steps),
            "--output_dir", str(out_dir), "--no-resume", "--threads", str(threads), *extra]
    if dynamics is not None:
        argv += ["--dynamics", str(dynamics)]
    res = run([sys.executable, "-c", SEQRL_CELL.format(threads=threads, algo=algo, argv=argv)], threads)
    ev = res["eval"]
    return {"return_mean": ev["return_mean"], "return_stderr": ev["return_stderr"],
            "normalized_score": ev.get("normalized_score")}


def tt_cell(dataset, seed, steps, episodes, threads, out_dir) -> dict:
    """Train a Trajectory Transformer (recipes/configs/tt/v5-short.yaml) and plan with
    recipes/configs/plan/v5-short.yaml, both as their recipes run."""
    cfg = ROOT / "recipes" / "configs"
    run([sys.executable, "-c", "import sys, json; sys.argv[0] = 'train_tt'; sys.path.insert(0, 'recipes'); "
         f"import train_tt; train_tt.main({['--config', str(cfg / 'tt' / 'v5-short.yaml'), '--dataset', dataset, '--max_steps', str(steps), '--seed', str(seed), '--output_dir', str(out_dir), '--no-resume', '--threads', str(threads)]!r}); print('RESULT {{}}')"],
        threads)
    plan = out_dir / "plan.json"
    run([sys.executable, "-c", "import sys; sys.path.insert(0, 'recipes'); import plan_tt; "
         f"plan_tt.main({['--checkpoint', str(out_dir / 'model'), '--config', str(cfg / 'plan' / 'v5-short.yaml'), '--episodes', str(episodes), '--seed', '10000', '--output', str(plan), '--no-progress', '--threads', str(threads)]!r}); print('RESULT {{}}')"],
        threads)
    res = json.loads(plan.read_text())
    return {"return_mean": res["mean"], "return_stderr": res["stderr"], "normalized_score": res.get("normalized_mean")}


def d3rlpy_cell(python, algo, dataset, seed, steps, episodes, threads, npz, meta) -> dict:
    cmd = [str(python), str(HERE / "_d3rlpy_quality_worker.py"), "--algo", algo, "--data", str(npz),
           "--env", meta["env_id"], "--steps", str(steps), "--episodes", str(episodes), "--seed", str(seed),
           "--threads", str(threads)] + (["--medium"] if dataset.endswith("/medium-v0") else [])
    policy_file = npz.parent / f"d3rlpy_{algo}_{npz.stem}_{seed}.pt"
    res = run(cmd + ["--policy_out", str(policy_file)], threads)
    own = np.asarray(res["returns"])
    return evaluate_torchscript(policy_file, meta, episodes, threads) | {
        "own_env_return_mean": float(own.mean()), "train_seconds": res["train_seconds"]}


def d4rl_task(dataset: str) -> str:
    """seqrl/hopper/medium-replay-v0 -> hopper-medium-replay, the key of d3rlpy's per-dataset tables."""
    env, quality = dataset.split("/")[1:3]
    return f"{env}-{quality.rsplit('-v', 1)[0]}"


def d3rlpy1_model_based_cell(python, algo, dataset, seed, steps, threads, npz, meta, episodes, epochs) -> dict:
    """MOPO or COMBO of d3rlpy 1.1.1 (benchmarks/_d3rlpy1_quality_worker.py, its reproductions' settings)
    on one dynamics fit per dataset (seed 0, shared by both methods and every seed, as seqrl's cells):
    --dynamics-epochs passes over the data at its batch of 100, with no early stopping in d3rlpy's fit."""
    worker = [str(python), str(HERE / "_d3rlpy1_quality_worker.py"), "--data", str(npz), "--task", d4rl_task(dataset),
              "--threads", str(threads)]
    dynamics = npz.parent / f"d3rlpy1_dynamics_{npz.stem}.pt"
    if not dynamics.exists():
        tmp = dynamics.with_suffix(".tmp.pt")
        rows = len(np.load(npz)["rewards"])
        run(worker + ["--algo", "dynamics", "--steps", str(epochs * rows // 100), "--seed", "0",
                      "--dynamics", str(tmp)], threads)
        os.replace(tmp, dynamics)
    policy_file = npz.parent / f"d3rlpy1_{algo}_{npz.stem}_{seed}.pt"
    res = run(worker + ["--algo", algo, "--steps", str(steps), "--seed", str(seed), "--dynamics", str(dynamics),
                        "--policy_out", str(policy_file)], threads)
    return evaluate_torchscript(policy_file, meta, episodes, threads) | {
        "train_seconds": res["train_seconds"], "version": "1.1.1"}


def evaluate_torchscript(policy_file: Path, meta: dict, episodes: int, threads: int) -> dict:
    """A peer's exported greedy policy evaluated exactly as seqrl's: same env build, code and reset seeds."""
    import torch

    from seqrl.evaluation import evaluate, evaluation_env

    torch.set_num_threads(threads)
    scripted = torch.jit.load(str(policy_file))

    def act(obs):
        with torch.no_grad():
            return scripted(torch.as_tensor(obs, dtype=torch.float32)).numpy()

    result = evaluate(act, n_episodes=episodes, **evaluation_env(meta), seed=10_000, progress=False,
                      ref_min_score=meta.get("ref_min_score"), ref_max_score=meta.get("ref_max_score"))
    return {"return_mean": result.mean, "return_stderr": result.stderr, "normalized_score": result.normalized_mean}


def table(results: Path) -> str:
    cells = [json.loads(p.read_text()) for p in sorted(results.glob("*__*__*__seed*.json"))]  # cells only
    groups: dict[tuple, list] = {}
    for c in cells:
        groups.setdefault((c["dataset"], c["algo"], c["lib"]), []).append(c)
    from seqrl.data import load_dataset

    lines = ["| dataset (data's normalized mean) | algorithm | updates | seqrl: mean ± s.e. (each seed) | d3rlpy 2.8.1 (MOPO, COMBO: 1.1.1) | seeds |", "|---|---|---|---|---|---|"]
    for dataset in sorted({k[0] for k in groups}):
        meta = load_dataset(dataset)
        lo, hi = meta.metadata["ref_min_score"], meta.metadata["ref_max_score"]
        data_norm = 100 * (meta.summary().return_mean - lo) / (hi - lo)
        for algo in ("bc", "cql", "iql", "awac", "brac", "tt", *MODEL_BASED):
            row = []
            for lib in ("seqrl", "d3rlpy"):
                scores = [c["normalized_score"] for c in groups.get((dataset, algo, lib), [])]
                if not scores:
                    row.append("n/a (not in d3rlpy)" if lib == "d3rlpy" and algo == "brac" else "–")
                    continue
                se = np.std(scores, ddof=1) / math.sqrt(len(scores)) if len(scores) > 1 else float("nan")
                each = ", ".join(f"{x:.1f}" for x in scores)
                row.append(f"**{np.mean(scores):.1f} ± {se:.1f}** ({each})")
            counts = [len(groups.get((dataset, algo, lib), [])) for lib in ("seqrl", "d3rlpy")]
            n = "/".join(map(str, counts))
            if any(counts):
                steps = next(c["steps"] for lib in ("seqrl", "d3rlpy") for c in groups.get((dataset, algo, lib), []))
                lines.append(f"| {dataset} ({data_norm:.1f}) | {algo.upper()} | {steps:,} | {row[0]} | {row[1]} | {n} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default=DEFAULT_DATASETS)
    p.add_argument("--algos", default="bc,iql,awac,cql", help="any of bc, iql, awac, cql, brac, tt, mopo, combo (tt and brac seqrl only)")
    p.add_argument("--libs", default="seqrl,d3rlpy", help="seqrl and/or d3rlpy (2.8.1; 1.1.1 for mopo and combo)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", default="", help="per algorithm, e.g. iql=20000,cql=5000 (defaults: %s)" % DEFAULT_STEPS)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--dynamics-epochs", type=int, default=DYNAMICS_EPOCHS,
                   help="most epochs of the one dynamics fit per dataset that MOPO and COMBO share")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--results", default=str(HERE / "results" / "quality"))
    p.add_argument("--table", action="store_true", help="only print the table of finished cells")
    p.add_argument("--seqrl-args", default="", help="extra options for every seqrl cell (e.g. '--kl_coef 1.0'); "
                   "use another --results folder for such a variant")
    args = p.parse_args()
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    if args.table:
        print(table(results))
        return
    steps = dict(DEFAULT_STEPS) | {k: int(v) for k, v in (x.split("=") for x in args.steps.split(",") if x)}
    libs = args.libs.split(",")
    python = None
    if "d3rlpy" in libs and set(args.algos.split(",")) - set(SEQRL_ONLY) - set(MODEL_BASED):
        from value_based import ensure_d3rlpy_venv

        python = ensure_d3rlpy_venv()
    work = results / "work"
    work.mkdir(exist_ok=True)
    for dataset in args.datasets.split(","):
        npz = work / f"{dataset.replace('/', '_')}.npz"
        meta = export_npz(dataset, npz)
        for seed in map(int, args.seeds.split(",")):
            for algo in args.algos.split(","):
                for lib in libs:
                    if lib == "d3rlpy" and algo in SEQRL_ONLY:
                        continue
                    path = cell_path(results, lib, algo, dataset, seed)
                    if path.exists():
                        continue
                    t0 = time.perf_counter()
                    if lib == "seqrl" and algo == "tt":
                        res = tt_cell(dataset, seed, steps[algo], args.episodes, args.threads, work / f"run_tt_{dataset.replace('/', '_')}_{seed}")
                    elif lib == "seqrl":
                        dynamics = (ensure_dynamics(dataset, work, args.threads, args.dynamics_epochs)
                                    if algo in MODEL_BASED else None)
                        res = seqrl_cell(algo, dataset, seed, steps[algo], args.episodes, args.threads,
                                         work / f"run_{algo}_{dataset.replace('/', '_')}_{seed}", dynamics,
                                         shlex.split(args.seqrl_args))
                    elif algo in MODEL_BASED:
                        res = d3rlpy1_model_based_cell(peer_python(), algo, dataset, seed, steps[algo], args.threads,
                                                       npz, meta, args.episodes, args.dynamics_epochs)
                    else:
                        res = d3rlpy_cell(python, algo, dataset, seed, steps[algo], args.episodes, args.threads, npz, meta)
                    res |= {"lib": lib, "algo": algo, "dataset": dataset, "seed": seed, "steps": steps[algo],
                            "episodes": args.episodes, "threads": args.threads,
                            "seconds": round(time.perf_counter() - t0, 1), "date": time.strftime("%Y-%m-%d"),
                            **({"seqrl_args": args.seqrl_args} if args.seqrl_args and lib == "seqrl" else {})}
                    tmp = path.with_suffix(".tmp")
                    tmp.write_text(json.dumps(res, indent=1))
                    os.replace(tmp, path)
                    print(f"{lib:6s} {algo:4s} {dataset} seed {seed}: normalized {res['normalized_score']:.1f} "
                          f"(return {res['return_mean']:.0f} ± {res['return_stderr']:.0f}), {res['seconds']:.0f} s", flush=True)
    print(table(results))


if __name__ == "__main__":
    main()
