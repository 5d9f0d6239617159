"""Several seeds of one value-based algorithm trained as one: K copies, stacked.

Every parameter and buffer of the K copies is stacked into one tensor with a leading seed dim
(K, ...), held by a template copy of the algorithm whose own `update` runs unchanged: its loss
methods (`loss_methods`, e.g. IQL's `loss`, AWAC's `critic_loss` and `actor_loss`) are replaced
by `torch.func.vmap` over the K seeds, and everything after them is elementwise over the stacked
tensors (Adam, the Polyak target update, lr schedules). So seed k's losses, gradients and
weights are those of a separate run with seed k (tested to float tolerance), while each layer
runs as one batched matmul over the seeds.

Each seed keeps its own RNG streams: its batch indices (`StackedBatches`) and its noise (policy
samples, CQL's uniform actions). The noise a loss asks for is found once per call signature by
a recording pass, then drawn for every seed from that seed's own generator in the order a single
run draws it, and fed into the vmapped loss (`NoiseTape`).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from seqrl.algos.base import OfflineAlgorithm

# algorithms whose whole update is a stack of loss methods (MOPO / COMBO roll out a model between
# updates, which is one seed's job)
STACKABLE = ("bc", "iql", "awac", "sac", "cql", "brac")


class NoiseTape:
    """Stands in for a torch.Generator inside a stacked loss (see seqrl.models.nets.standard_normal).

    record: draws from `generator` and notes (kind, shape) of every request.
    play: hands out the given pre-drawn tensors in order, checking each request's kind and shape.
    """

    def __init__(self, device: torch.device, generator: torch.Generator | None = None,
                 tape: list[Tensor] | None = None, plan: list[tuple[str, tuple]] | None = None):
        self.device = device
        self.generator, self.tape, self.plan = generator, tape, plan
        self.requests: list[tuple[str, tuple]] = []

    def _next(self, kind: str, shape: tuple, like: Tensor) -> Tensor:
        if self.tape is None:  # recording
            self.requests.append((kind, shape))
            draw = torch.randn if kind == "normal" else torch.rand
            return draw(shape, generator=self.generator, device=like.device, dtype=like.dtype)
        i = len(self.requests)
        self.requests.append((kind, shape))
        if i >= len(self.tape) or self.plan[i] != (kind, shape):
            raise RuntimeError(f"stacked update: noise request {i} ({kind} {shape}) differs from the recorded "
                               f"plan {self.plan}: the loss must draw the same noise every call")
        return self.tape[i]

    def randn(self, shape: tuple, like: Tensor) -> Tensor:
        return self._next("normal", shape, like)

    def rand(self, shape: tuple, like: Tensor) -> Tensor:
        return self._next("uniform", shape, like)


class _Call(nn.Module):
    """functional_call needs a module's forward: this one calls one of the algorithm's methods."""

    def __init__(self, algorithm: OfflineAlgorithm):
        super().__init__()
        self.algo = algorithm

    def forward(self, name: str, args: tuple, kwargs: dict):
        return getattr(type(self.algo), name)(self.algo, *args, **kwargs)


def _set_tensor(module: nn.Module, name: str, value: Tensor, parameter: bool) -> None:
    owner, _, leaf = name.rpartition(".")
    target = module.get_submodule(owner) if owner else module
    if parameter:
        setattr(target, leaf, value)
    else:
        target._buffers[leaf] = value


class SeedStack:
    """K seeds of one algorithm as one learner. `members[k]` is built exactly as a single run with
    seed k builds it (same initial weights); `update(batch)` takes a batch with a leading seed dim
    (K, B, ...) and returns each metric per seed [K]; `sync_members()` copies each seed's
    weights back into its member (for evaluation and saving)."""

    def __init__(self, build: Callable[[int], OfflineAlgorithm], seeds: list[int]):
        """`build(seed)` makes one seed's algorithm as a single run would (it seeds the global RNG
        that initialises the weights)."""
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"SeedStack needs distinct seeds, got {seeds}")
        self.members = [build(s) for s in seeds]
        self.K = len(seeds)
        members = self.members
        if any(m.config.seed != s for m, s in zip(members, seeds)):
            raise ValueError("build(seed) must return an algorithm configured with that seed")
        with torch.random.fork_rng(devices=[]):  # the template's own initial weights are replaced below
            template = build(seeds[0])
        # stacked leaves replace the template's tensors; its optimizers are pointed at them
        replaced: dict[int, Tensor] = {}
        for name, p in list(template.named_parameters()):
            stacked = nn.Parameter(torch.stack([m.get_parameter(name).detach() for m in members]).contiguous(),
                                   requires_grad=p.requires_grad)
            replaced[id(p)] = stacked
            _set_tensor(template, name, stacked, parameter=True)
        for name, b in list(template.named_buffers()):
            _set_tensor(template, name, torch.stack([m.get_buffer(name) for m in members]).contiguous(), parameter=False)
        for optimizer in template.optimizers.values():
            if optimizer.state:
                raise ValueError("SeedStack stacks freshly built algorithms (their optimizers have state)")
            for group in optimizer.param_groups:
                group["params"] = [replaced[id(p)] for p in group["params"]]
        self.template = template
        self._caller = _Call(template)
        self._plans: dict[Any, list[tuple[str, tuple]]] = {}
        for name in template.loss_methods:
            setattr(template, name, self._stacked(name))
        # the losses come back per seed [K]; the seeds are independent, so the gradient of their sum
        # gives each seed's parameters exactly its own loss's gradient
        template._optimize = lambda loss, optimizer=None: OfflineAlgorithm._optimize(template, loss.sum(), optimizer)

    # ------------------------------------------------------------------ the vmapped losses
    def _tensors(self) -> dict[str, Tensor]:
        t = self.template
        return {f"algo.{n}": p for n, p in t.named_parameters()} | {f"algo.{n}": b for n, b in t.named_buffers()}

    def _stacked(self, name: str):
        def call(*args, **kwargs):
            device = self.template.obs_mean.device
            key = (name, tuple(sorted((k, repr(v)) for k, v in kwargs.items())),
                   tuple(tuple(v.shape) for a in args if isinstance(a, dict) for v in a.values()))
            if key not in self._plans:
                self._plans[key] = self._record(name, args, kwargs, device)
            plan = self._plans[key]
            # each seed's noise from its own generator, in a single run's order
            gens = [m._rng(device) for m in self.members]
            like = self.template.obs_mean
            tape = [torch.stack([(torch.randn if kind == "normal" else torch.rand)(
                shape, generator=g, device=device, dtype=like.dtype) for g in gens]) for kind, shape in plan]

            def one_seed(tensors, args, tape):
                saved, self.template.generator = self.template.generator, NoiseTape(device, tape=tape, plan=plan)
                try:
                    return functional_call(self._caller, tensors, (name, args, kwargs))
                finally:
                    self.template.generator = saved

            arg_dims = tuple(0 if isinstance(a, (dict, Tensor)) else None for a in args)  # flags stay shared
            return vmap(one_seed, in_dims=(0, arg_dims, 0), randomness="error")(self._tensors(), args, tape)

        return call

    def _record(self, name, args, kwargs, device) -> list[tuple[str, tuple]]:
        """One seed's pass with a scratch generator, noting the noise the loss asks for."""
        first = {k: v[0] for k, v in self._tensors().items()}
        one = tuple({k: v[0] for k, v in a.items()} if isinstance(a, dict) else a[0] if isinstance(a, Tensor) else a
                    for a in args)
        saved = self.template.generator
        self.template.generator = tape = NoiseTape(device, generator=torch.Generator(device=device).manual_seed(0))
        try:
            with torch.no_grad():
                functional_call(self._caller, first, (name, one, kwargs))
        finally:
            self.template.generator = saved
        return tape.requests

    # ------------------------------------------------------------------ learner
    def update(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        for k, v in batch.items():
            if v.shape[0] != self.K:
                raise ValueError(f"stacked batch {k!r} has {v.shape[0]} seeds, the stack {self.K}")
        return self.template.update(batch)

    @property
    def num_updates(self) -> int:
        return self.template.num_updates

    @torch.no_grad()
    def sync_members(self) -> list[OfflineAlgorithm]:
        """Copy seed k's weights, buffers and update count into member k; returns the members."""
        t = self.template
        for k, m in enumerate(self.members):
            for name, p in t.named_parameters():
                m.get_parameter(name).copy_(p[k])
            for name, b in t.named_buffers():
                m.get_buffer(name).copy_(b[k])
            m.num_updates = t.num_updates
        return self.members

    def training_state(self) -> dict[str, Any]:
        """The stack's weights and optimizer states (seed dim first) and every seed's RNG."""
        state = self.template.training_state()
        device = self.template.obs_mean.device
        state["seed_generators"] = [m._rng(device).get_state() for m in self.members]
        state["seeds"] = [m.config.seed for m in self.members]
        return state

    def load_training_state(self, state: dict[str, Any]) -> None:
        seeds = [m.config.seed for m in self.members]
        if state.get("seeds") != seeds:
            raise ValueError(f"state is for seeds {state.get('seeds')}, this stack trains {seeds}")
        self.template.load_training_state(state)
        device = self.template.obs_mean.device
        for m, g in zip(self.members, state["seed_generators"]):
            m._rng(device).set_state(g.cpu())
        self.sync_members()


class StackedBatches:
    """K seeds' batches from one buffer: seed k's indices from its own generator (seeded as a single
    run's buffer), gathered at once into (K, B, ...)."""

    def __init__(self, buffer, batch_size: int, seeds: list[int]):
        self.buffer, self.batch_size = buffer, batch_size
        self.generators = [torch.Generator(device=buffer.device).manual_seed(s) for s in seeds]

    def next_batch(self) -> dict[str, Tensor]:
        idx = torch.stack([torch.randint(self.buffer.size, (self.batch_size,), generator=g, device=self.buffer.device)
                           for g in self.generators])
        return self.buffer.rows(idx)

    def state_dict(self) -> dict:
        return {"generators": [g.get_state() for g in self.generators]}

    def load_state_dict(self, state: dict) -> None:
        if len(state["generators"]) != len(self.generators):
            raise ValueError(f"batch state for {len(state['generators'])} seeds, this run trains {len(self.generators)}")
        for g, s in zip(self.generators, state["generators"]):
            g.set_state(s)
