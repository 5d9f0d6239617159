"""Trajectory Transformer planning speed: fast BeamPlanner vs the official-loop reference planner.

Same weights, same context and observation, same random stream: the reference (`reference_plan`, a full
forward pass over the cropped sequence for every sampled token, as the official `beam_plan`) plans ONE
env step, the fast planner several; the first fast plan is compared token for token with the reference's.
Then env steps/s of the fast planner with 1, 8 and 32 environments planned in one batch.

Identity: in float32 the two planners round differently (cached single-token passes vs full windows),
so two beams whose scores differ by ~1e-6 relative can swap at a pruning step and the plans part from
there; the benchmark reports where and by how much. A float64 run (hopper shapes, H 15, B 32 by default,
`--exact-full` for the official B 128) must match token for token.

Shapes: hopper (obs 11, act 3) at the official defaults (H 15, B 128, expand 2, cdf_act 0.6, context 5)
and halfcheetah (obs 17, act 6) at its official H 5, B 32; official model size (4 layers, 4 heads, 128
wide, N 100) with random weights: pos_emb ~ N(0, 0.3) and the head scaled x5 so next-token distributions
are peaked like a trained model's (near-uniform ones put many scores within float rounding of each
other; the timing does not depend on it). Context: 5 random transitions (steady state).

FLOPs are counted as 2 x (block + ln_f + one head's parameters) per token position processed, minus
what the fast planner skips in the last block of re-encoded windows; attention is not counted.
Runs with 1 intra-op thread by default: on the 2 shared cores, 2 threads were several times slower for
both planners (threads wait on each other while other processes hold the cores).

    python benchmarks/tt_plan.py            # ~5-7 min on 2 shared CPU cores, mostly the hopper reference step
    python benchmarks/tt_plan.py --quick    # smaller H/B for both planners (stated in the JSON)
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from seqrl.data.discretize import Discretizer
from seqrl.models.trajectory_transformer import TrajectoryTransformerConfig, TrajectoryTransformerModel
from seqrl.planning.beam import BeamPlanner
from seqrl.planning.config import PlannerConfig
from seqrl.planning.reference import encode_transition, reference_plan
from seqrl.hub import TrajectoryModel

SHAPES = {"hopper": (11, 3), "halfcheetah": (17, 6)}


def make_model(obs_dim: int, act_dim: int, seed: int = 0, dtype=torch.float32) -> TrajectoryModel:
    torch.manual_seed(seed)
    config = TrajectoryTransformerConfig(observation_dim=obs_dim, action_dim=act_dim, vocab_size=100)
    model = TrajectoryTransformerModel(config).eval()
    with torch.no_grad():
        model.pos_emb.normal_(0.0, 0.3)
        model.head.weight.mul_(5.0)
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(20_000, obs_dim + act_dim + 2)).astype(np.float32)
    return TrajectoryModel(model.to(dtype), Discretizer.fit(data, n_bins=100), {})


def flops_per_position(model) -> tuple[int, int]:
    """(FLOPs per token position, FLOPs the last block skips per trimmed position)."""
    cfg = model.config
    blocks = sum(p.numel() for p in model.blocks.parameters()) + sum(p.numel() for p in model.ln_f.parameters())
    head = (cfg.vocab_size + 1) * cfg.n_embd
    last = model.blocks[-1]
    kept = sum(p.numel() for m in (last.ln1, last.attn.key, last.attn.value) for p in m.parameters())
    skipped = sum(p.numel() for p in last.parameters()) - kept + head
    return 2 * (blocks + head), 2 * skipped


class Positions:
    """Counts token positions through model.forward (the reference planner)."""

    def __init__(self, model):
        self.count = 0
        model.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs):
        self.count += (args[0] if args else kwargs["input_ids"]).numel()


def random_context(tm, n: int, rng) -> torch.Tensor:
    O, A = tm.observation_dim, tm.action_dim
    obs, actions, rewards = rng.normal(size=(n, O)), rng.uniform(-1, 1, size=(n, A)), rng.normal(size=n)
    return encode_transition(tm.discretizer, obs, actions, rewards)


def compare(name: str, config: PlannerConfig, fast_steps: int, seed: int = 0, dtype=torch.float32,
            profile: bool = False) -> dict:
    obs_dim, act_dim = SHAPES[name]
    tm = make_model(obs_dim, act_dim, seed, dtype)
    per_pos, per_trim = flops_per_position(tm.model)
    rng = np.random.default_rng(seed)
    context = random_context(tm, 5, rng)
    obs = rng.normal(size=obs_dim).astype(np.float32)

    fast = BeamPlanner(tm, config, seed=seed)
    fast.reset(n_envs=1)
    fast.set_context(0, context)
    state = fast.generators[0].get_state()

    # reference: one env step from the same context, observation and generator state
    counter = Positions(tm.model)
    generator = torch.Generator().manual_seed(0)
    generator.set_state(state)
    t0 = time.perf_counter()
    ref_plan, ref_action, ref_score = reference_plan(tm.model, tm.discretizer, context, obs, config, generator,
                                                     return_score=True)
    ref_seconds = time.perf_counter() - t0
    ref_flops = counter.count * per_pos

    # fast: the same step, then more steps as the context slides
    seconds, flops, fed = [], [], []
    identical, divergence = None, None
    for step in range(fast_steps):
        dec = fast.decoder
        positions, trimmed = dec.token_positions, dec.trimmed_positions
        t0 = time.perf_counter()
        action = fast.act(obs[None])
        seconds.append(time.perf_counter() - t0)
        flops.append((dec.token_positions - positions) * per_pos - (dec.trimmed_positions - trimmed) * per_trim)
        fed.append(dec.token_positions - positions)
        if step == 0:
            same_action = np.array_equal(action[0], ref_action.numpy())
            identical = bool(torch.equal(fast.plans[0], ref_plan)) and bool(same_action)
            if not identical:  # where, and how close the two chosen plans score (near-ties flip in float32)
                first = int((fast.plans[0] != ref_plan).any(-1).nonzero()[0, 0])
                gap = float((fast.scores[0] - ref_score).abs() / ref_score.abs())
                divergence = {"first_transition": first, "score_relative_difference": gap}
        fast.observe([float(rng.normal())], [False])
        obs = rng.normal(size=obs_dim).astype(np.float32)

    fast_seconds = float(np.mean(seconds))
    result = {
        "shape": name, "obs_dim": obs_dim, "act_dim": act_dim, "dtype": str(dtype).removeprefix("torch."),
        "config": config.to_dict(),
        "reference_s_per_step": ref_seconds, "fast_s_per_step": fast_seconds, "fast_s_per_step_all": seconds,
        "speedup": ref_seconds / fast_seconds, "identical_plan_and_action": identical, "divergence": divergence,
        "reference_token_positions": counter.count, "reference_gflop": ref_flops / 1e9,
        "reference_gflops_per_s": ref_flops / ref_seconds / 1e9,
        "fast_token_positions": float(np.mean(fed)), "fast_gflop": float(np.mean(flops)) / 1e9, "fast_gflops_per_s": float(np.sum(flops) / np.sum(seconds) / 1e9),
    }
    if profile:  # one more fast step under torch.profiler (benchmarks/profiling.py)
        from profiling import breakdown_line, profile_steps

        def step():
            fast.act(rng.normal(size=(1, obs_dim)).astype(np.float32))
            fast.observe([float(rng.normal())], [False])

        result["profile"] = profile_steps(step, 1, fast_seconds)
        print(f"{name} fast planner: {breakdown_line(result['profile'])}", flush=True)
    print(f"{name} {result['dtype']}: reference {ref_seconds:.2f} s/step "
          f"({result['reference_gflops_per_s']:.1f} GFLOP/s), "
          f"fast {fast_seconds:.2f} s/step ({result['fast_gflops_per_s']:.1f} GFLOP/s), "
          f"{result['speedup']:.1f}x, identical plan: {identical}{'' if identical else f' {divergence}'}", flush=True)
    return result


def batched(name: str, config: PlannerConfig, n_envs_list: list[int], steps: int, seed: int = 0) -> list[dict]:
    obs_dim, act_dim = SHAPES[name]
    tm = make_model(obs_dim, act_dim, seed)
    rng = np.random.default_rng(seed)
    rows = []
    for n_envs in n_envs_list:
        planner = BeamPlanner(tm, config, seed=seed)
        planner.reset(n_envs=n_envs)
        for i in range(n_envs):
            planner.set_context(i, random_context(tm, 5, rng))
        t0 = time.perf_counter()
        for _ in range(steps):
            planner.act(rng.normal(size=(n_envs, obs_dim)).astype(np.float32))
            planner.observe(rng.normal(size=n_envs), np.zeros(n_envs, bool))
        seconds = time.perf_counter() - t0
        rows.append({"n_envs": n_envs, "steps": steps, "seconds": seconds, "env_steps_per_s": n_envs * steps / seconds})
        print(f"{name} batch {n_envs:3d} envs: {rows[-1]['env_steps_per_s']:.2f} env steps/s", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="hopper H 5 B 32, halfcheetah H 3 B 16, fewer steps")
    parser.add_argument("--fast-steps", type=int, default=3, help="timed fast-planner env steps per shape")
    parser.add_argument("--batch-steps", type=int, default=1, help="env steps per batch size")
    parser.add_argument("--batch-envs", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--exact-full", action="store_true",
                        help="float64 identity check at the full hopper defaults (adds ~6 min) instead of H 15 B 32")
    parser.add_argument("--profile", action="store_true",
                        help="profile one more fast-planner step per shape: matmul / elementwise (sampling, top-k) / "
                        "views / Python, and each matmul timed alone for the floor (benchmarks/profiling.py)")
    parser.add_argument("--out", default="benchmarks/results/tt_plan.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    official = PlannerConfig()  # hopper-medium-v2: H 15, B 128, expand 2, cdf_act 0.6
    cheetah = PlannerConfig(horizon=5, beam_width=32)  # halfcheetah-medium-v2
    # float64 run: no float32 near-tie between beam scores can flip, so plans must match exactly
    exact = official if args.exact_full else PlannerConfig(horizon=15, beam_width=32)
    if args.quick:
        official = PlannerConfig(horizon=5, beam_width=32)
        cheetah = exact = PlannerConfig(horizon=3, beam_width=16)

    t0 = time.perf_counter()
    results = {
        "quick": args.quick, "threads": args.threads, "torch": torch.__version__, "machine": platform.processor(),
        "device": "cpu",
        "flops_note": "2 x (block + ln_f + one head) parameters per token position; attention not counted",
        "compare": [compare("hopper", official, args.fast_steps, profile=args.profile),
                    compare("halfcheetah", cheetah, args.fast_steps, profile=args.profile)],
        "exact_float64": compare("hopper", exact, 1, dtype=torch.float64),
        "batched_shape": "halfcheetah", "batched_config": cheetah.to_dict(),
        "batched": batched("halfcheetah", cheetah, args.batch_envs, args.batch_steps),
    }
    results["total_seconds"] = time.perf_counter() - t0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))

    hop, hc = results["compare"]
    ex = results["exact_float64"]
    batch = ", ".join(f"{r['n_envs']}: {r['env_steps_per_s']:.2f}" for r in results["batched"])
    print(f"| TT planning, CPU {args.threads} thread{'s' * (args.threads > 1)}{' (quick)' if args.quick else ''} "
          f"| hopper H{hop['config']['horizon']} B{hop['config']['beam_width']}: reference "
          f"{hop['reference_s_per_step']:.1f} s/step, fast {hop['fast_s_per_step']:.2f} s/step "
          f"({hop['speedup']:.1f}x, {hop['fast_gflops_per_s']:.0f} GFLOP/s) "
          f"| halfcheetah H{hc['config']['horizon']} B{hc['config']['beam_width']}: {hc['reference_s_per_step']:.1f} "
          f"vs {hc['fast_s_per_step']:.2f} s/step ({hc['speedup']:.1f}x) "
          f"| identical plans float32: hopper {hop['identical_plan_and_action']}, halfcheetah "
          f"{hc['identical_plan_and_action']}; float64 hopper "
          f"H{ex['config']['horizon']} B{ex['config']['beam_width']}: "
          f"{ex['identical_plan_and_action']} "
          f"| batched env steps/s ({batch}) |")


if __name__ == "__main__":
    main()
