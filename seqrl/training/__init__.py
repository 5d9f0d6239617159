"""Training: the one loop (`loop.py`), its batch sources for online training (`online.py`) and the
run assembly every entry point calls (`run.py`: data -> view -> learner -> loop -> checkpoint ->
evaluation, for every algorithm; `plan.py`: a Trajectory Transformer checkpoint -> beam search ->
evaluation)."""

from seqrl.training.loop import (
    BatchSource, Learner, LoopConfig, atomic_write_dir, atomic_write_text, latest_checkpoint, load_checkpoint,
    save_checkpoint, seed_everything, train,
)

__all__ = ["BatchSource", "Learner", "LoopConfig", "atomic_write_dir", "atomic_write_text", "latest_checkpoint",
           "load_checkpoint", "save_checkpoint", "seed_everything", "train"]
