"""One side of benchmarks/tt_train.py: runs in its own process, in either virtual environment.

    --impl seqrl   seqrl's TrajectoryTransformerModel (main venv)
    --impl hf430   transformers 4.30's TrajectoryTransformerModel (the peer's venv)

Modes:
    init   (hf430 only) build the peer model from a seed, perturb its weights and save the state dict
    check  load those weights, eval mode (dropout off): loss and logits on a fixed batch, then one full
           training step and the loss again; saves logits so the driver can compare the two sides
    train  load those weights, train mode (dropout 0.1): warm-up steps, then timed full steps
           (forward with targets + loss mask, backward, grad clip 1.0, AdamW step); peak RSS

Both sides run the very same code apart from `build_model`, `forward_loss` and `make_optimizer` (each
side's own trainer: seqrl's fused AdamW, the official torch AdamW; same hyperparameters). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

# Hopper (D4RL locomotion) shapes, official TT hyperparameters
OBS, ACT, N = 11, 3, 100
D = OBS + ACT + 2
BLOCK = 10 * D - 1  # 159: the last token of 10 transitions is only ever a target
ARCH = dict(n_layer=4, n_head=4, n_embd=128, embd_pdrop=0.1, attn_pdrop=0.1, resid_pdrop=0.1)
WEIGHTS = dict(action_weight=5.0, reward_weight=1.0, value_weight=1.0)


def proc_status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def hf_to_seqrl(state: dict) -> dict:
    """Map the HF port's parameter names onto seqrl's (official) ones; drop the attention-mask buffers."""
    out = {}
    for name, value in state.items():
        if name.endswith(".attn.mask"):
            continue
        name = name.replace(".l1.", ".mlp.0.").replace(".l2.", ".mlp.2.")
        out[name] = value
    return out


def build_model(impl: str):
    if impl == "hf430":
        from transformers import TrajectoryTransformerConfig, TrajectoryTransformerModel

        cfg = TrajectoryTransformerConfig(
            vocab_size=N, observation_dim=OBS, action_dim=ACT, transition_dim=D, block_size=BLOCK, **ARCH, **WEIGHTS
        )
        return TrajectoryTransformerModel(cfg)
    from seqrl.models.trajectory_transformer import TrajectoryTransformerConfig, TrajectoryTransformerModel

    cfg = TrajectoryTransformerConfig(observation_dim=OBS, action_dim=ACT, vocab_size=N, **ARCH, **WEIGHTS)
    assert cfg.block_size == BLOCK and cfg.transition_dim == D
    return TrajectoryTransformerModel(cfg)


def load_weights(impl: str, model, path: str) -> None:
    state = torch.load(path)
    if impl == "seqrl":
        state = hf_to_seqrl(state)
    result = model.load_state_dict(state, strict=False)
    # the peer keeps its attention masks as buffers; they are rebuilt by its constructor, not saved
    missing = [k for k in result.missing_keys if not k.endswith(".attn.mask")]
    if missing or result.unexpected_keys:
        raise SystemExit(f"weights do not map: missing {missing}, unexpected {result.unexpected_keys}")


def forward_loss(impl: str, model, inputs, targets, mask):
    if impl == "hf430":
        # the port's `attention_mask` is the loss mask (it is never used in attention)
        out = model(inputs, targets=targets, attention_mask=mask, use_cache=False, return_dict=True)
    else:
        out = model(inputs, targets=targets, loss_mask=mask)
    return out.loss, out.logits


def make_batch(batch: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, N, (batch, BLOCK + 1), generator=g)
    tokens = tokens.masked_fill(torch.rand(batch, BLOCK + 1, generator=g) < 0.05, N)  # some STOP tokens
    mask = (torch.rand(batch, BLOCK, generator=g) < 0.9).float()
    return tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous(), mask


def make_optimizer(impl: str, model):
    if impl == "seqrl":
        # what seqrl's training loop builds (seqrl/algos/tt.py): the same groups and hyperparameters,
        # as one fused AdamW kernel per step; the official trainer steps torch's default AdamW, as below
        from seqrl.algos.tt import TTConfig, make_tt_optimizer

        return make_tt_optimizer(model, TTConfig())
    # official minGPT split, by name so that both implementations get the same groups:
    # decay Linear and per-dimension head weights; not biases, LayerNorm, tok_emb or pos_emb
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 and name not in ("tok_emb.weight", "pos_emb") else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=6e-4, betas=(0.9, 0.95))


def train_step(impl, model, opt, batch) -> float:
    loss, _ = forward_loss(impl, model, *batch)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss.item()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", choices=["seqrl", "hf430"], required=True)
    ap.add_argument("--mode", choices=["init", "check", "train"], required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads; 0 = torch's default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--logits-out", default=None)
    ap.add_argument("--profile", type=int, default=0, help="train mode: profile this many more steps (benchmarks/profiling.py)")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    import transformers

    info = {
        "impl": args.impl,
        "mode": args.mode,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
    }

    if args.mode == "init":
        if args.impl != "hf430":
            raise SystemExit("init builds the peer's weights: use --impl hf430")
        torch.manual_seed(args.seed)
        model = build_model(args.impl)
        with torch.no_grad():
            # pos_emb starts at zero and LayerNorms at 1/0: perturb everything so the check sees every weight
            for _, p in model.named_parameters():
                p.add_(0.02 * torch.randn_like(p))
        torch.save({k: v for k, v in model.state_dict().items() if not k.endswith(".attn.mask")}, args.weights)
        info["parameters"] = sum(p.numel() for p in model.parameters())
        print(json.dumps(info))
        return

    model = build_model(args.impl)
    load_weights(args.impl, model, args.weights)
    info["parameters"] = sum(p.numel() for p in model.parameters())

    if args.mode == "check":
        model.eval()  # dropout off: both sides compute the same function
        batch = make_batch(args.batch, args.seed + 1)
        with torch.no_grad():
            loss0, logits = forward_loss(args.impl, model, *batch)
        if args.logits_out:
            torch.save(logits.contiguous(), args.logits_out)
        opt = make_optimizer(args.impl, model)
        train_step(args.impl, model, opt, batch)  # still eval mode: a deterministic full step
        with torch.no_grad():
            loss1, _ = forward_loss(args.impl, model, *batch)
        info.update(loss=loss0.item(), loss_after_step=loss1.item(), batch=args.batch)
        print(json.dumps(info))
        return

    model.train()
    torch.manual_seed(args.seed)  # dropout masks
    batch = make_batch(args.batch, args.seed + 1)
    opt = make_optimizer(args.impl, model)
    info["rss_before_mb"] = proc_status_mb("VmRSS")
    times, cpu_times, losses = [], [], []
    for i in range(args.warmup + args.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        losses.append(train_step(args.impl, model, opt, batch))
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
    if args.profile:  # after the timing, so the timed steps never run under the profiler
        import statistics

        from profiling import profile_steps  # benchmarks/, this script's folder

        info["profile"] = profile_steps(lambda: train_step(args.impl, model, opt, batch), args.profile,
                                        statistics.median(times))
    info.update(
        batch=args.batch,
        tokens_per_step=args.batch * BLOCK,
        warmup=args.warmup,
        step_s=times,
        step_cpu_s=cpu_times,
        losses=losses,
        peak_rss_mb=proc_status_mb("VmHWM"),
    )
    print(json.dumps(info))


if __name__ == "__main__":
    main()
