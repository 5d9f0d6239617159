"""Train a Trajectory Transformer.

    accelerate launch recipes/train_tt.py                       # built-in data, CPU-sized config
    accelerate launch recipes/train_tt.py --config recipes/configs/tt/hopper-medium-v2.yaml --dataset ...
    accelerate launch --multi_gpu --num_processes 2 recipes/train_tt.py   # two processes (CPU: gloo)

Writes OUTPUT_DIR/model (a checkpoint for `seqrl.from_pretrained` and
`TrajectoryTransformerModel.from_pretrained`), OUTPUT_DIR/checkpoints (resumable with
--resume) and OUTPUT_DIR/tensorboard.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from seqrl.algos.tt import TTConfig, TTLearner, WindowBatches, official_updates  # noqa: E402
from seqrl.config import parse_config, to_dict  # noqa: E402
from seqrl.data import EpisodeDataset, TokenizerConfig, TokenWindows  # noqa: E402
from seqrl.models.trajectory_transformer import TrajectoryTransformerConfig, TrajectoryTransformerModel  # noqa: E402
from seqrl.plotting import plot_runs  # noqa: E402
from seqrl.pretrained import TrajectoryModel, save_training_metrics  # noqa: E402
from seqrl.training import LoopConfig, seed_everything, train  # noqa: E402

DEFAULT_CONFIG = str(Path(__file__).resolve().parent / "configs" / "tt" / "invertedpendulum-medium.yaml")


def make_accelerator():
    from accelerate import Accelerator

    # `accelerate launch --cpu --num_processes N` uses the simple launcher: it sets MASTER_ADDR
    # for N > 1 but starts ONE process (no WORLD_SIZE). Refuse rather than silently train alone.
    if os.environ.get("MASTER_ADDR") and "WORLD_SIZE" not in os.environ \
            and os.environ.get("ACCELERATE_USE_CPU", "").lower() == "true":
        raise SystemExit("`accelerate launch --cpu --num_processes N` runs a single process; for N CPU processes use "
                         "`accelerate launch --multi_gpu --num_processes N recipes/train_tt.py` or torchrun")
    # Without cpu=True, each CPU process of a multi-process launch believes it is alone.
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    expected = int(os.environ.get("WORLD_SIZE", "1"))
    if accelerator.num_processes != expected:
        raise SystemExit(f"launched {expected} processes but Accelerate sees {accelerator.num_processes}")
    return accelerator


def main(argv=None) -> dict:
    config = parse_config(TTConfig, argv, description=__doc__, default_config=DEFAULT_CONFIG)
    accelerator = make_accelerator()
    seed_everything(config.seed + accelerator.process_index)
    out = Path(config.output_dir)

    episodes = EpisodeDataset.load(config.dataset)
    if config.env_id:
        episodes.metadata["env_id"] = config.env_id
        episodes.metadata.pop("eval_env", None)
        episodes.metadata.pop("env_module", None)
    tokenizer = TokenizerConfig(discount=config.discount, termination_penalty=config.termination_penalty,
                                n_bins=config.n_bins, method=config.discretizer, context=config.context,
                                max_path_length=config.max_path_length)
    with accelerator.main_process_first():  # one process writes the token cache, the others read it
        windows = TokenWindows(episodes, tokenizer)
    model_config = TrajectoryTransformerConfig(
        observation_dim=episodes.observation_dim, action_dim=episodes.action_dim, vocab_size=config.n_bins,
        block_size=config.context * (episodes.observation_dim + episodes.action_dim + 2) - 1,
        n_layer=config.n_layer, n_head=config.n_head, n_embd=config.n_embd, embd_pdrop=config.dropout,
        attn_pdrop=config.dropout, resid_pdrop=config.dropout, action_weight=config.action_weight,
        reward_weight=config.reward_weight, value_weight=config.value_weight)
    torch.manual_seed(config.seed)  # identical initial weights on every process
    model = TrajectoryTransformerModel(model_config)
    seed_everything(config.seed + accelerator.process_index)

    steps = official_updates(config, len(windows))
    if config.max_steps is not None:
        steps = min(steps, config.max_steps)
    if accelerator.is_main_process:
        print(f"data: {episodes.summary()}")
        print(f"{len(windows):,} windows of {config.context} transitions; {model.num_parameters():,} parameters; "
              f"{steps:,} updates of batch {config.batch_size} on {accelerator.num_processes} process(es)")

    learner = TTLearner(model, config, len(windows), accelerator)
    batches = WindowBatches(windows, config.batch_size, config.seed, accelerator.process_index,
                            accelerator.num_processes, device=accelerator.device)
    loop = LoopConfig(max_steps=steps, log_every=config.log_every, save_every=config.save_every,
                      reuse_freed_memory=config.reuse_freed_memory)
    result = train(learner, batches, loop, out, accelerator=accelerator, resume=config.resume)

    if accelerator.is_main_process:
        last = result["history"][-1] if result["history"] else {}
        metadata = {
            "env_id": episodes.env_id, "env_kwargs": episodes.metadata.get("env_kwargs", {}),
            "max_episode_steps": episodes.metadata.get("max_episode_steps"), "eval_env": episodes.metadata.get("eval_env"),
            "env_module": episodes.metadata.get("env_module"),
            "action_low": episodes.metadata.get("action_low"), "action_high": episodes.metadata.get("action_high"),
            "ref_min_score": episodes.metadata.get("ref_min_score"), "ref_max_score": episodes.metadata.get("ref_max_score"),
            "dataset": {"source": episodes.metadata.get("source", config.dataset), **episodes.summary().as_dict()},
            "tokenizer": {"method": config.discretizer, "n_bins": config.n_bins, "discount": config.discount,
                          "termination_penalty": config.termination_penalty, "context": config.context,
                          "max_path_length": windows.max_path_length},
            "training": {**to_dict(config), "steps": steps, "final_loss": last.get("loss"),
                         "final_losses_by_type": {k[5:]: v for k, v in last.items() if k.startswith("loss_")}},
        }
        trajectory_model = TrajectoryModel(accelerator.unwrap_model(learner.model).eval(), windows.discretizer, metadata)
        trajectory_model.save_pretrained(out / "model")
        save_training_metrics(out / "model", result["history"])
        print(f"saved {out / 'model'} (final loss {last.get('loss', float('nan')):.4f})")
        print(f"curves: {plot_runs([out], out / 'curves.png')}")
    accelerator.wait_for_everyone()
    return result


if __name__ == "__main__":
    main()
