"""The one training loop of seqrl (Accelerate): progress bar, TensorBoard, periodic
evaluation, atomic checkpoints and exact resume, for every learner.

A learner is anything with
    train_step(batch) -> dict[str, Tensor]      one update; metrics as 0-d tensors
    state_dict() / load_state_dict(state)       everything needed to resume exactly
and the batches come from a `BatchSource` (`next_batch()`, `state_dict()`, `load_state_dict()`),
so both the Trajectory Transformer (token windows) and the value-based methods (transition
buffer) run through the same loop. A learner whose `finished` attribute turns true (the dynamics
ensemble's early stopping) ends the run at that step.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from seqrl.cpu.memory import reuse_freed_memory
from seqrl.training.precision import update_precision

CHECKPOINT_DIR = "checkpoints"
LATEST_FILE = "latest"
LOGS_FILE = "logs.json"  # in each checkpoint: the history and evaluations up to it
RUN_FILE = "run.json"  # in each checkpoint: the run's id and identity (algorithm, dataset, ...)
STATE_FILE = "training_state.pt"  # tensors and plain types only: loaded with weights_only=True


class ResumeError(ValueError):
    """A checkpoint that cannot be resumed as asked: the message names what is wrong."""


class Learner(Protocol):
    def train_step(self, batch) -> dict[str, torch.Tensor]: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


class BatchSource(Protocol):
    def next_batch(self): ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


@dataclass
class LoopConfig:
    max_steps: int = 1000
    log_every: int = 50
    save_every: int = 1000
    eval_every: int = 0            # 0: evaluate only at the end (when an evaluator is given)
    keep_checkpoints: int = 2
    progress: bool = True
    progress_desc: str = "training"
    progress_total: bool = True  # False: max_steps is only a safety cap (a fit ended by early stopping), no ETA
    reuse_freed_memory: bool = True  # glibc heap thresholds for step-to-step reuse (seqrl/cpu/memory.py)
    precision: str = "fp32"  # "bf16": each train_step under bfloat16 autocast (seqrl/training/precision.py)
    device_type: str = "cpu"  # where that autocast applies
    extra_log: dict = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ------------------------------------------------------------------ checkpoints
def _rng_state() -> dict:
    """The global RNG states as tensors and plain types (loadable without unpickling code)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": random.getstate(), "torch": torch.get_rng_state(),
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}}


def _set_rng_state(state: dict) -> None:
    random.setstate(_as_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])


def _as_tuples(x):
    return tuple(_as_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


def atomic_write_dir(target: Path, write: Callable[[Path], None]) -> Path:
    """Write a directory next to `target` and rename it into place: a crash leaves either the
    old checkpoint or the new one, never half of one."""
    target = Path(target)
    tmp = target.with_name(target.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    write(tmp)
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    return target


def atomic_write_text(path: Path, text: str) -> None:
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def latest_checkpoint(output_dir) -> Path | None:
    """The checkpoint `latest` points at, None when there is no pointer; a pointer to a missing
    checkpoint is an error (resuming must never silently start again from step 0)."""
    pointer = Path(output_dir) / CHECKPOINT_DIR / LATEST_FILE
    if not pointer.exists():
        return None
    path = pointer.parent / pointer.read_text().strip()
    if not (path / STATE_FILE).exists():
        raise ResumeError(f"{pointer} points at {path.name}, which holds no {STATE_FILE}: the checkpoint is gone; "
                          f"move {pointer.parent} away to start fresh")
    return path


def read_run(path) -> dict:
    f = Path(path) / RUN_FILE
    return json.loads(f.read_text()) if f.exists() else {}


def read_training_state(path) -> dict:
    """A checkpoint's training state, loaded without executing code (weights_only=True)."""
    file = Path(path) / STATE_FILE
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ResumeError(f"{file} is not a seqrl training state (refused to load it: {reason})") from None


def save_checkpoint(output_dir, step: int, learner: Learner, source: BatchSource, accelerator=None,
                    keep: int = 2, logs: dict | None = None, run: dict | None = None) -> Path:
    """`logs`: the run's logged metrics and evaluations so far, so a resumed run's history is whole.
    `run`: {"run_id", "identity"}; only this run's older checkpoints are pruned."""
    root = Path(output_dir) / CHECKPOINT_DIR
    rank = accelerator.process_index if accelerator is not None else 0
    state = {"step": step, "learner": learner.state_dict(), "source": source.state_dict(), "rng": _rng_state()}
    if accelerator is not None and accelerator.num_processes > 1:
        # Every rank has its own RNG stream (dropout); rank 0 writes the shared state.
        rng_states = accelerator.gather_for_metrics([state["rng"]], use_gather_object=True)
        state["rng_by_rank"] = rng_states
        accelerator.wait_for_everyone()
    run = run or {}
    if rank == 0:
        root.mkdir(parents=True, exist_ok=True)
        def write(d: Path) -> None:
            torch.save(state, d / STATE_FILE)
            (d / LOGS_FILE).write_text(json.dumps(logs or {}))
            (d / RUN_FILE).write_text(json.dumps({**run, "step": step}, default=str))

        atomic_write_dir(root / f"step_{step}", write)
        atomic_write_text(root / LATEST_FILE, f"step_{step}")
        # Older checkpoints of THIS run beyond the kept ones go only after the new one is in place;
        # another run's checkpoints in the same folder are never touched.
        mine = sorted(int(p.name[5:]) for p in root.glob("step_*") if p.name[5:].isdigit()
                      and read_run(p).get("run_id") == run.get("run_id") and int(p.name[5:]) < step)
        for old in mine[:max(0, len(mine) - max(1, keep) + 1)]:
            shutil.rmtree(root / f"step_{old}", ignore_errors=True)
    if accelerator is not None:
        accelerator.wait_for_everyone()
    return root / f"step_{step}"


def load_checkpoint(path, learner: Learner, source: BatchSource, accelerator=None, logs: dict | None = None) -> int:
    """Restore a checkpoint; returns its step. `logs` (a dict) receives the saved history and evaluations."""
    state = read_training_state(path)
    if logs is not None and (Path(path) / LOGS_FILE).exists():
        logs.update(json.loads((Path(path) / LOGS_FILE).read_text()))
    learner.load_state_dict(state["learner"])
    source.load_state_dict(state["source"])
    rank = accelerator.process_index if accelerator is not None else 0
    rng = state.get("rng_by_rank", [state["rng"]])
    _set_rng_state(rng[rank] if rank < len(rng) else state["rng"])
    return int(state["step"])


def _check_identity(checkpoint: Path, identity: dict) -> None:
    saved = read_run(checkpoint).get("identity") or {}
    wrong = {k: (saved[k], v) for k, v in identity.items() if k in saved and saved[k] != v}
    if wrong:
        what = "; ".join(f"{k} {a!r} there, {b!r} here" for k, (a, b) in wrong.items())
        raise ResumeError(f"--resume: {checkpoint} is another run ({what}); use another --output_dir")


# ------------------------------------------------------------------ the loop
def train(
    learner: Learner,
    source: BatchSource,
    config: LoopConfig,
    output_dir,
    *,
    accelerator=None,
    evaluate: Callable[[int], dict[str, float]] | None = None,
    resume: bool = False,
    on_log: Callable[[int, dict[str, float]], None] | None = None,
    identity: dict | None = None,
) -> dict[str, Any]:
    """Run `config.max_steps` updates; returns the last logged metrics and evaluation. `identity`
    (e.g. algorithm and dataset) is saved with every checkpoint; resuming a checkpoint whose
    identity differs is refused."""
    output_dir = Path(output_dir)
    is_main = accelerator is None or accelerator.is_main_process
    if config.reuse_freed_memory:
        reuse_freed_memory()
    start = 0
    # every logged interval and every evaluation, kept in the checkpoints so that a resumed run loses none
    logs: dict[str, list] = {"history": [], "evaluations": []}
    run = {"run_id": uuid.uuid4().hex, "identity": identity or {}}
    if resume:
        ckpt = latest_checkpoint(output_dir)
        if ckpt is None:
            if is_main:
                print(f"--resume: no checkpoint in {output_dir / CHECKPOINT_DIR}, starting at step 0")
        else:
            _check_identity(ckpt, run["identity"])
            run["run_id"] = read_run(ckpt).get("run_id", run["run_id"])  # continue that run's numbering
            start = load_checkpoint(ckpt, learner, source, accelerator, logs)
            if is_main:
                print(f"resumed from {ckpt} at step {start}")
    writer = None
    if is_main:
        from torch.utils.tensorboard import SummaryWriter

        output_dir.mkdir(parents=True, exist_ok=True)
        writer = SummaryWriter(str(output_dir / "tensorboard"), purge_step=start if start else None)

    history: list[dict[str, float]] = logs["history"]
    last_eval: dict[str, float] = {}
    pending: list[dict[str, torch.Tensor]] = []
    bar = tqdm(total=config.max_steps if config.progress_total else None, initial=start, disable=not (is_main and config.progress),
               desc=config.progress_desc, dynamic_ncols=True)
    t_last, step = time.perf_counter(), start
    interval = 0  # loop steps since the last log
    end = start if getattr(learner, "finished", False) else config.max_steps  # a finished run stays finished
    for step in range(start, end):
        batch = source.next_batch()
        with update_precision(config.precision, config.device_type):
            metrics = learner.train_step(batch)
        if metrics:  # an online step before learning starts has none
            pending.append(metrics)
        interval += 1
        done = step + 1
        if getattr(learner, "finished", False):
            end = done
        if done % config.log_every == 0 or done == end:
            # One host sync per log interval: average the pending metrics here (a metric only some
            # steps report, e.g. online episode returns, is averaged over those steps).
            keys = dict.fromkeys(k for m in pending for k in m)
            logged = {k: float(torch.stack([m[k].detach().float() for m in pending if k in m]).mean()) for k in keys}
            elapsed = time.perf_counter() - t_last
            logged["updates_per_s"] = interval / max(elapsed, 1e-9)
            if "tokens" in logged:
                logged["tokens_per_s"] = logged.pop("tokens") * interval / max(elapsed, 1e-9)
            pending, interval, t_last = [], 0, time.perf_counter()
            history.append({"step": done, **logged})
            if writer is not None:
                for k, v in logged.items():
                    writer.add_scalar(f"train/{k}", v, done)
            if on_log is not None:
                on_log(done, logged)
            bar.set_postfix({k: f"{v:.4g}" for k, v in list(logged.items())[:3]})
        bar.update(1)
        if done == end:
            break
        if evaluate is not None and config.eval_every and done % config.eval_every == 0:
            last_eval = _run_eval(evaluate, done, writer, is_main)
            logs["evaluations"].append({"step": done, **last_eval})
        if config.save_every and done % config.save_every == 0:
            save_checkpoint(output_dir, done, learner, source, accelerator, config.keep_checkpoints, logs, run)
    bar.close()
    final = None
    if end > start:
        final = save_checkpoint(output_dir, end, learner, source, accelerator, config.keep_checkpoints, logs, run)
    if evaluate is not None:
        last_eval = _run_eval(evaluate, end, writer, is_main)
        logs["evaluations"].append({"step": end, **last_eval})
        if final is not None and is_main:  # saved before evaluating (an env failure loses no training): add it
            atomic_write_text(final / LOGS_FILE, json.dumps(logs))
    if writer is not None:
        writer.close()
    if is_main:
        atomic_write_text(output_dir / "train_history.json", json.dumps(history, indent=1))
        atomic_write_text(output_dir / "eval_history.json", json.dumps(logs["evaluations"], indent=1))
    return {"history": history, "evaluations": logs["evaluations"], "eval": last_eval, "steps": end}


def _run_eval(evaluate, step, writer, is_main) -> dict[str, float]:
    result = evaluate(step)
    if writer is not None:
        for k, v in result.items():
            if isinstance(v, (int, float)):
                writer.add_scalar(f"eval/{k}", v, step)
    if is_main:
        tqdm.write(f"[eval @ {step}] " + ", ".join(f"{k}={v:.4g}" for k, v in result.items() if isinstance(v, float)))
    return result
