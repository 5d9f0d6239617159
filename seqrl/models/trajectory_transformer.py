"""Trajectory Transformer (Janner et al., 2021) as a `transformers` model, with an exact KV cache.

Token layout (official): a window of transitions, each `[s^1..s^obs, a^1..a^act, r, V]`, so
`D = obs + act + 2` tokens per transition. Raw tokens are per-dimension bins in [0, N]; N is the
shared STOP token. A window always starts at s^0 of a transition, so the token at absolute window
position p has dimension p % D. Everything that depends on the dimension (vocabulary offset, output
head, loss weight) and the position embedding is chosen by that absolute position, with or without
a cache; that is what the deprecated Hugging Face port got wrong when decoding incrementally.

Parameter names match the official `trajectory/models/transformers.py` GPT (`tok_emb`, `pos_emb`,
`blocks.i.attn.{key,query,value,proj}`, `blocks.i.mlp.{0,2}`, `ln_f`, `head.weight`), so official
state dicts load with `load_state_dict` (drop the `blocks.i.attn.mask` buffers).

Cache contract (`past_key_values`): a tuple over layers of `(k, v)`, each `[B, n_head, P, head_dim]`,
holding the P tokens just before `start_position` (default `start_position = P`, i.e. the cache is
window positions 0..P-1). New tokens get positions start_position .. start_position + T - 1. A
batch-1 cache is broadcast to the input batch (e.g. one encoded context shared by B beams); an
explicit `k.expand(B, -1, -1, -1)` works too since the cache is never required to be contiguous.

Training on CPU: with dropout on, `F.scaled_dot_product_attention` falls back to an unfused path and
`F.dropout` draws a double per element, so attention runs `seqrl.cpu.attention.TrainingAttention` (blocked causal, with a
hand-written backward) and dropout masks come from 16-bit slices of 64-bit draws, drawn and applied by a
small C kernel where a compiler is available (`seqrl/cpu/dropout.py`): the same math and distribution
(p on a 2**-16 grid), about 2-2.5x faster per training step at Hopper shapes (benchmarks/tt_train.py).
Other devices and eval mode use SDPA and `F.dropout` as before.
"""

from dataclasses import dataclass
import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from seqrl.cpu.attention import TrainingAttention
from seqrl.cpu.dropout import Dropout

KV = tuple[torch.Tensor, torch.Tensor]
TOKEN_TYPES = ("obs", "action", "reward", "value")


class TrajectoryTransformerConfig(PretrainedConfig):
    """Configuration of a `TrajectoryTransformerModel`; defaults are the official D4RL locomotion ones.

    `n_embd` is the full model width (official configs store 32 per head and multiply by `n_head`).
    `transition_dim` is derived as `observation_dim + action_dim + 2` and `block_size` as
    `10 * transition_dim - 1` (10 transitions, the last token is only ever a target).
    """

    model_type = "seqrl_trajectory_transformer"
    attribute_map = {"hidden_size": "n_embd", "num_attention_heads": "n_head", "num_hidden_layers": "n_layer"}

    observation_dim: int
    action_dim: int
    vocab_size: int = 100
    transition_dim: int | None = None
    block_size: int | None = None
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    embd_pdrop: float = 0.1
    attn_pdrop: float = 0.1
    resid_pdrop: float = 0.1
    action_weight: float = 5.0
    reward_weight: float = 1.0
    value_weight: float = 1.0
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        for name in ("observation_dim", "action_dim", "vocab_size", "n_layer", "n_head", "n_embd"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        expected_dim = self.observation_dim + self.action_dim + 2
        if self.transition_dim is None:
            self.transition_dim = expected_dim
        if self.transition_dim != expected_dim:
            raise ValueError(
                f"transition_dim must be observation_dim + action_dim + 2 = {expected_dim}, got {self.transition_dim}"
            )
        if self.block_size is None:
            self.block_size = 10 * self.transition_dim - 1
        if self.block_size <= 0:
            raise ValueError(f"block_size must be positive, got {self.block_size}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        super().__post_init__(**kwargs)


@dataclass
class TrajectoryTransformerOutput(ModelOutput):
    """`logits` [B, T, N+1] over raw per-dimension tokens; `losses_by_type` maps obs/action/reward/value
    (by the type of the *target* token) to the mean of weighted, masked CE over those positions (detached)."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    # named `cache`: transformers >= 5.24 renames a ModelOutput field called `past_key_values` to `cache`
    cache: tuple[KV, ...] | None = None
    losses_by_type: dict[str, torch.Tensor] | None = None

    @property
    def past_key_values(self) -> tuple[KV, ...] | None:
        """The same tuple as `cache`, under the name the forward takes it back."""
        return self.cache


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Boolean-masked softmax attention (SDPA). One query per row, the common case while decoding, is
    two batched matrix-vector products: about 2x faster than SDPA's CPU kernel."""
    if q.shape[2] > 1:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    return scores.masked_fill(~mask, float("-inf")).softmax(-1) @ v


class CausalSelfAttention(nn.Module):
    def __init__(self, config: TrajectoryTransformerConfig):
        super().__init__()
        # separate projections, named as in the official code, so its checkpoints load as-is
        self.key = nn.Linear(config.n_embd, config.n_embd)
        self.query = nn.Linear(config.n_embd, config.n_embd)
        self.value = nn.Linear(config.n_embd, config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.resid_drop = Dropout(config.resid_pdrop)
        self.n_head = config.n_head
        self.attn_pdrop = config.attn_pdrop

    def forward(self, x: torch.Tensor, mask: torch.Tensor, layer_past: KV | None = None) -> tuple[torch.Tensor, KV]:
        """mask: additive float [T, P + T] (0 or -inf)."""
        B, T, C = x.shape
        # [B, T, C] -> [B, n_head, T, head_dim]
        q, k, v = (rearrange(t, "b t (h e) -> b h t e", h=self.n_head) for t in (self.query(x), self.key(x), self.value(x)))
        if layer_past is not None:
            # expand() lets a batch-1 prefix cache serve B rows without copying it first
            k = torch.cat([layer_past[0].expand(B, -1, -1, -1), k], dim=2)
            v = torch.cat([layer_past[1].expand(B, -1, -1, -1), v], dim=2)
        dropout_p = self.attn_pdrop if self.training else 0.0
        if dropout_p > 0.0 and x.device.type == "cpu" and dropout_p < 1.0:
            y = TrainingAttention.apply(q, k, v, mask, dropout_p)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        return self.resid_drop(self.proj(rearrange(y, "b h t e -> b t (h e)"))), (k, v)

    def decode(self, h: torch.Tensor, cache: KV, start: int, mask: torch.Tensor, last_only: bool) -> torch.Tensor:
        """Inference on h [R, T, C] at window positions start..start+T-1: write its keys and values into
        the preallocated cache buffers [R, n_head, window, head_dim] in place, attend over the whole
        buffer (mask [T, window] boolean hides what is not yet written); `last_only`: the last query only."""
        R, T, C = h.shape
        split = lambda t: t.view(R, -1, self.n_head, C // self.n_head).transpose(1, 2)  # noqa: E731
        k, v = cache
        k[:, :, start:start + T] = split(self.key(h))
        v[:, :, start:start + T] = split(self.value(h))
        if last_only:
            h, mask = h[:, -1:], mask[-1:]
        y = _attend(split(self.query(h)), k, v, mask)
        return self.proj(y.transpose(1, 2).reshape(R, h.shape[1], C))


class Block(nn.Module):
    def __init__(self, config: TrajectoryTransformerConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.ln2 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        # nn.Sequential keeps the official parameter names mlp.0 / mlp.2
        self.mlp = nn.Sequential(
            nn.Linear(config.n_embd, 4 * config.n_embd),
            nn.GELU(),
            nn.Linear(4 * config.n_embd, config.n_embd),
            Dropout(config.resid_pdrop),
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor, layer_past: KV | None = None) -> tuple[torch.Tensor, KV]:
        a, present = self.attn(self.ln1(x), mask, layer_past)
        x = x + a
        x = x + self.mlp(self.ln2(x))
        return x, present

    def decode(self, x: torch.Tensor, cache: KV, start: int, mask: torch.Tensor, last_only: bool) -> torch.Tensor:
        a = self.attn.decode(self.ln1(x), cache, start, mask, last_only)
        x = (x[:, -1:] if last_only else x) + a
        return x + self.mlp(self.ln2(x))


class PerDimensionHead(nn.Module):
    """One bias-free linear per token dimension (official `EinLinear`): weight [D, N+1, n_embd]."""

    def __init__(self, transition_dim: int, in_features: int, out_features: int):
        super().__init__()
        self.in_features = in_features
        self.weight = nn.Parameter(torch.empty(transition_dim, out_features, in_features))

    def forward(self, x: torch.Tensor, start: int) -> torch.Tensor:
        """x [B, T, C] at absolute positions start..start+T-1; position p uses head p % D."""
        B, T, C = x.shape
        D = self.weight.shape[0]
        if T < D:
            # short chunks (cached decoding): gather just the heads needed
            dims = torch.arange(start, start + T, device=x.device) % D
            return torch.einsum("btc,tvc->btv", x, self.weight[dims])
        # long windows: pad to whole transitions and run all D heads batched (official pad_to_full_observation);
        # about 2x faster in training than gathering a [T, N+1, C] weight
        front = start % D
        n = -(-(front + T) // D)
        x = rearrange(F.pad(x, (0, 0, front, n * D - front - T)), "b (n d) c -> b n d c", d=D)
        logits = torch.einsum("bndc,dvc->bndv", x, self.weight)
        return rearrange(logits, "b n d v -> b (n d) v")[:, front : front + T]


class TrajectoryTransformerModel(PreTrainedModel):
    config_class = TrajectoryTransformerConfig
    base_model_prefix = "trajectory_transformer"
    main_input_name = "input_ids"

    def __init__(self, config: TrajectoryTransformerConfig):
        super().__init__(config)
        N, D = config.vocab_size, config.transition_dim
        # N bins per dimension, offset by d * N, plus one STOP row shared by all dimensions
        self.tok_emb = nn.Embedding(N * D + 1, config.n_embd)
        self.pos_emb = nn.Parameter(torch.zeros(1, config.block_size, config.n_embd))
        self.drop = Dropout(config.embd_pdrop)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = PerDimensionHead(D, config.n_embd, N + 1)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        # minGPT init; the `init` helpers skip tensors already loaded by from_pretrained
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, PerDimensionHead):
            # kaiming_uniform_(a=sqrt(5)) per dimension, as nn.Linear/EinLinear: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            bound = 1.0 / math.sqrt(module.in_features)
            init.uniform_(module.weight, -bound, bound)
        elif isinstance(module, TrajectoryTransformerModel):
            init.zeros_(module.pos_emb)

    def optimizer_param_groups(self, weight_decay: float) -> list[dict]:
        """minGPT split: decay Linear and per-dimension head weights; not biases, LayerNorm, embeddings, pos_emb."""
        decay = {id(m.weight) for m in self.modules() if isinstance(m, (nn.Linear, PerDimensionHead))}
        params = [p for p in self.parameters() if p.requires_grad]
        return [
            {"params": [p for p in params if id(p) in decay], "weight_decay": weight_decay},
            {"params": [p for p in params if id(p) not in decay], "weight_decay": 0.0},
        ]

    def loss_weights(self, device=None, dtype=None) -> torch.Tensor:
        """Weight [D] of a *target* token by its dimension: 1 for obs, action/reward/value weights after."""
        cfg = self.config
        w = torch.ones(cfg.transition_dim, device=device, dtype=dtype)
        w[cfg.observation_dim : cfg.observation_dim + cfg.action_dim] = cfg.action_weight
        w[-2] = cfg.reward_weight
        w[-1] = cfg.value_weight
        return w

    def forward(
        self,
        input_ids: torch.LongTensor,
        targets: torch.LongTensor | None = None,
        loss_mask: torch.Tensor | None = None,
        past_key_values: tuple[KV, ...] | None = None,
        use_cache: bool = False,
        start_position: int | None = None,
        return_dict: bool = True,
    ) -> TrajectoryTransformerOutput | tuple:
        """input_ids [B, T] raw tokens in [0, N]; targets [B, T] raw tokens (input shifted by one);
        loss_mask [B, T] required with targets. See the module docstring for the cache contract."""
        cfg = self.config
        N, D = cfg.vocab_size, cfg.transition_dim
        if input_ids.dtype != torch.long:
            raise TypeError(f"input_ids must be torch.long raw tokens, got {input_ids.dtype}")
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be [batch, time], got shape {tuple(input_ids.shape)}")
        B, T = input_ids.shape
        lo, hi = torch.aminmax(input_ids)
        if lo < 0 or hi > N:
            raise ValueError(f"tokens must lie in [0, {N}] (N = vocab_size is STOP), got range [{lo}, {hi}]")

        P = 0 if past_key_values is None else past_key_values[0][0].shape[2]
        start = P if start_position is None else start_position
        if start < P or (start - P) % D != 0:
            raise ValueError(
                f"the cache must start at s^0 of a transition: start_position={start}, cached tokens={P}, D={D}"
            )
        if start + T > cfg.block_size:
            raise ValueError(f"window too long: positions up to {start + T} > block_size {cfg.block_size}")

        device = input_ids.device
        dims, offsets, mask = self._positions(T, start, P, device)
        # per-dimension vocabulary offset by absolute position; STOP shares a single row
        tok = torch.where(input_ids == N, N * D, input_ids + offsets)
        x = self.drop(self.tok_emb(tok) + self.pos_emb[:, start : start + T])
        mask = mask.to(x.dtype)

        presents = []
        for i, block in enumerate(self.blocks):
            x, present = block(x, mask, None if past_key_values is None else past_key_values[i])
            presents.append(present)
        logits = self.head(self.ln_f(x), start)

        loss = losses_by_type = None
        if targets is not None:
            if loss_mask is None:
                raise ValueError("loss_mask is required when targets are given (loss = mean of CE * weight * mask)")
            if targets.shape != (B, T) or loss_mask.shape != (B, T):
                raise ValueError(
                    f"targets and loss_mask must be [{B}, {T}], got {tuple(targets.shape)} and {tuple(loss_mask.shape)}"
                )
            if targets.dtype != torch.long:
                raise TypeError(f"targets must be torch.long raw tokens, got {targets.dtype}")
            ce = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1), reduction="none").view(B, T)
            target_dims = (dims + 1) % D  # input position p predicts the token at p + 1
            per_token = ce * self.loss_weights(device, ce.dtype)[target_dims] * loss_mask.to(ce.dtype)
            loss = per_token.mean()  # official: mean over all positions, not over the mask sum
            losses_by_type = self._losses_by_type(per_token.detach(), target_dims)

        output = TrajectoryTransformerOutput(
            loss=loss,
            logits=logits,
            cache=tuple(presents) if use_cache else None,
            losses_by_type=losses_by_type,
        )
        return output if return_dict else output.to_tuple()

    def window_logits(self, input_ids: torch.LongTensor) -> torch.Tensor:
        """Logits [B, T, N+1] of a window that starts at s^0 (position 0), without the input checks
        and with shape-agnostic ops only, so that it exports with a dynamic length (seqrl export);
        equal to `forward(input_ids).logits` (tested)."""
        cfg = self.config
        N, D = cfg.vocab_size, cfg.transition_dim
        T = input_ids.shape[1]
        pos = torch.arange(T, device=input_ids.device)
        dims = pos % D
        tok = torch.where(input_ids == N, N * D, input_ids + dims * N)
        x = self.drop(self.tok_emb(tok) + self.pos_emb[:, :T])
        allowed = (pos[None, :] <= pos[:, None]) & (dims != D - 1)[None, :]
        mask = torch.zeros(T, T, dtype=x.dtype, device=x.device).masked_fill(~allowed, float("-inf"))
        for block in self.blocks:
            x = block(x, mask)[0]
        return torch.einsum("btc,tvc->btv", self.ln_f(x), self.head.weight[dims])

    # ---------------------------------------------------------------- cached decoding (the planner)
    def new_decode_cache(self, rows: int, window: int) -> list[KV]:
        """Preallocated key/value buffers [rows, n_head, window, head_dim] per layer for `decode_step`."""
        cfg = self.config
        shape = (rows, cfg.n_head, window, cfg.n_embd // cfg.n_head)
        like = self.pos_emb
        # zeros, not empty: unwritten positions are masked out but must not hold NaN/inf (0 * NaN = NaN)
        return [(like.new_zeros(shape), like.new_zeros(shape)) for _ in self.blocks]

    @torch.no_grad()
    def decode_step(self, cache: list[KV], tokens: torch.Tensor, start: int) -> torch.Tensor:
        """The forward pass for planning: tokens [R, T] at explicit window positions start..start+T-1,
        on top of cache positions [0, start), their keys and values written into `cache` in place
        (`new_decode_cache`); returns the logits [R, N+1] of the last position. The same math as
        `forward` in eval mode; unlike its functional cache, nothing is copied per token, and when
        T > 1 the last block runs only the last query (the others need just their keys and values)."""
        N, D = self.config.vocab_size, self.config.transition_dim
        window = cache[0][0].shape[2]
        dims, allowed = self._decode_layout(window, tokens.device)
        R, T = tokens.shape
        end = start + T
        tok = torch.where(tokens == N, N * D, tokens + dims[start:end] * N)
        x = self.tok_emb(tok) + self.pos_emb[:, start:end]
        mask = allowed[start:end]
        for i, block in enumerate(self.blocks):
            x = block.decode(x, cache[i], start, mask, last_only=i == len(self.blocks) - 1 and T > 1)
        return self.head(self.ln_f(x), end - 1)[:, -1]

    def _decode_layout(self, window: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(dims [window], allowed [window, window] boolean): causal, and no token attends to a value token."""
        key = ("decode", window, str(device))
        cache = self.__dict__.setdefault("_position_cache", {})
        if key not in cache:
            pos = torch.arange(window, device=device)
            dims = pos % self.config.transition_dim
            cache[key] = dims, (pos[None, :] <= pos[:, None]) & (dims != self.config.transition_dim - 1)[None, :]
        return cache[key]

    def _positions(self, T: int, start: int, P: int, device: torch.device) -> tuple[torch.Tensor, ...]:
        """Per-call index tensors, cached by (T, start, P, device): token dimension [T], vocabulary offset [T]
        and the additive attention mask [T, P + T] (0 where allowed, -inf elsewhere)."""
        key = (T, start, P, str(device))
        cache = self.__dict__.setdefault("_position_cache", {})
        if key not in cache:
            D, N = self.config.transition_dim, self.config.vocab_size
            q_pos = torch.arange(start, start + T, device=device)
            k_pos = torch.arange(start - P, start + T, device=device)
            dims = q_pos % D
            # causal by absolute position, and no token may attend to a value token (V sees the future)
            allowed = (k_pos[None, :] <= q_pos[:, None]) & (k_pos % D != D - 1)[None, :]
            mask = torch.zeros(allowed.shape, device=device).masked_fill_(~allowed, float("-inf"))
            if len(cache) >= 256:  # training needs one entry, cached decoding a few hundred: stay bounded
                cache.clear()
            cache[key] = (dims, dims * N, mask)
        return cache[key]

    def _losses_by_type(self, per_token: torch.Tensor, target_dims: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.config
        # 0 obs, 1 action, 2 reward, 3 value; comparisons only, so no host sync on GPU
        obs, act = cfg.observation_dim, cfg.action_dim
        kind = (target_dims >= obs).long() + (target_dims >= obs + act).long() + (target_dims == obs + act + 1).long()
        onehot = (kind[:, None] == torch.arange(len(TOKEN_TYPES), device=kind.device)).to(per_token.dtype)  # [T, 4]
        means = (per_token.sum(0) @ onehot) / (onehot.sum(0) * per_token.shape[0]).clamp(min=1)
        return dict(zip(TOKEN_TYPES, means.unbind()))


AutoConfig.register(TrajectoryTransformerConfig.model_type, TrajectoryTransformerConfig)
AutoModel.register(TrajectoryTransformerConfig, TrajectoryTransformerModel)

__all__ = ["TrajectoryTransformerConfig", "TrajectoryTransformerModel", "TrajectoryTransformerOutput"]
