"""TrajectoryTransformerModel against a slow reference written from the official semantics.

The reference below uses explicit loops (per-token vocabulary offset, [T, T] mask built position by
position, softmax attention per head, per-position head, official shifted loss weights), and reads its
parameters from the fast model's state_dict, so any disagreement is a bug in the fast path.
"""

import math

import pytest
import torch
from transformers import AutoConfig, AutoModel

from seqrl.models.trajectory_transformer import TrajectoryTransformerConfig, TrajectoryTransformerModel

OBS, ACT, N = 3, 2, 10
D = OBS + ACT + 2
ATOL = 1e-5


def make_config(**overrides) -> TrajectoryTransformerConfig:
    kwargs = dict(observation_dim=OBS, action_dim=ACT, vocab_size=N, n_embd=32, n_head=4, n_layer=2)
    kwargs.update(overrides)
    return TrajectoryTransformerConfig(**kwargs)


def make_model(seed: int = 0, **overrides) -> TrajectoryTransformerModel:
    torch.manual_seed(seed)
    model = TrajectoryTransformerModel(make_config(**overrides)).eval()
    with torch.no_grad():
        # pos_emb starts at zero and LayerNorm/biases at 1/0: perturb them so the test sees them
        for name, p in model.named_parameters():
            p.add_(0.3 * torch.randn_like(p) if name == "pos_emb" else 0.05 * torch.randn_like(p))
    return model


def random_tokens(B: int, T: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, N, (B, T), generator=g)
    stop = torch.rand(B, T, generator=g) < 0.15  # sprinkle STOP tokens over all dimensions
    return tokens.masked_fill(stop, N)


# ----------------------------------------------------------------------------- slow reference


def ref_layer_norm(x, w, b):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5) * w + b


def ref_gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def ref_logits_one(sd, cfg, tokens):
    """Logits [T, N+1] for one sequence of raw tokens (list of ints) starting at s^0."""
    n, d_, T = cfg.vocab_size, cfg.transition_dim, len(tokens)
    H, C = cfg.n_head, cfg.n_embd
    hd = C // H
    idx = []
    for p, t in enumerate(tokens):
        idx.append(n * d_ if t == n else t + (p % d_) * n)
    x = sd["tok_emb.weight"][idx] + sd["pos_emb"][0, :T]

    allowed = torch.zeros(T, T, dtype=torch.bool)
    for i in range(T):
        for j in range(T):
            allowed[i, j] = j <= i and j % d_ != d_ - 1

    for layer in range(cfg.n_layer):
        pre = f"blocks.{layer}."
        h = ref_layer_norm(x, sd[pre + "ln1.weight"], sd[pre + "ln1.bias"])
        q = h @ sd[pre + "attn.query.weight"].T + sd[pre + "attn.query.bias"]
        k = h @ sd[pre + "attn.key.weight"].T + sd[pre + "attn.key.bias"]
        v = h @ sd[pre + "attn.value.weight"].T + sd[pre + "attn.value.bias"]
        heads = []
        for head in range(H):
            sl = slice(head * hd, (head + 1) * hd)
            scores = q[:, sl] @ k[:, sl].T / math.sqrt(hd)
            scores = scores.masked_fill(~allowed, float("-inf"))
            heads.append(torch.softmax(scores, dim=-1) @ v[:, sl])
        y = torch.cat(heads, dim=-1)
        x = x + y @ sd[pre + "attn.proj.weight"].T + sd[pre + "attn.proj.bias"]
        h = ref_layer_norm(x, sd[pre + "ln2.weight"], sd[pre + "ln2.bias"])
        h = ref_gelu(h @ sd[pre + "mlp.0.weight"].T + sd[pre + "mlp.0.bias"])
        x = x + h @ sd[pre + "mlp.2.weight"].T + sd[pre + "mlp.2.bias"]
    x = ref_layer_norm(x, sd["ln_f.weight"], sd["ln_f.bias"])
    return torch.stack([sd["head.weight"][p % d_] @ x[p] for p in range(T)])


def ref_logits(model, tokens):
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    return torch.stack([ref_logits_one(sd, model.config, row.tolist()) for row in tokens])


def ref_loss(cfg, logits, targets, mask):
    """Official loss: weights built per transition, repeated, shifted by one (weights[1:]), mean over all."""
    B, T, _ = logits.shape
    per_transition = [1.0] * cfg.observation_dim + [cfg.action_weight] * cfg.action_dim
    per_transition += [cfg.reward_weight, cfg.value_weight]
    n_states = math.ceil(T / cfg.transition_dim)
    weights = (per_transition * (n_states + 1))[1 : T + 1]
    total = 0.0
    for b in range(B):
        for p in range(T):
            ce = -torch.log_softmax(logits[b, p], dim=-1)[targets[b, p]]
            total = total + ce * weights[p] * mask[b, p]
    return total / (B * T)


# ----------------------------------------------------------------------------- equivalence


@pytest.mark.parametrize("T", [D * 10 - 1, 9])
def test_logits_match_reference(T):
    model = make_model()
    assert T <= model.config.block_size
    tokens = random_tokens(2, T)
    with torch.no_grad():
        fast = model(tokens).logits
    assert fast.shape == (2, T, N + 1)
    torch.testing.assert_close(fast, ref_logits(model, tokens), atol=ATOL, rtol=0)


def test_loss_matches_reference():
    model = make_model(action_weight=5.0, reward_weight=2.0, value_weight=0.5)
    B, T = 3, 30
    tokens = random_tokens(B, T + 1, seed=2)
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    mask = (torch.rand(B, T, generator=torch.Generator().manual_seed(3)) < 0.7).float()
    with torch.no_grad():
        out = model(inputs, targets=targets, loss_mask=mask)
    expected = ref_loss(model.config, ref_logits(model, inputs), targets, mask)
    torch.testing.assert_close(out.loss, expected, atol=ATOL, rtol=0)
    assert set(out.losses_by_type) == {"obs", "action", "reward", "value"}
    assert all(torch.isfinite(v) and v >= 0 for v in out.losses_by_type.values())


def test_losses_by_type_are_per_type_means():
    model = make_model()
    B, T = 2, 2 * D
    tokens = random_tokens(B, T + 1, seed=4)
    mask = torch.ones(B, T)
    out = model(tokens[:, :-1], targets=tokens[:, 1:], loss_mask=mask)
    # each type's mean times its share of positions adds back up to the total loss
    target_dims = [(p + 1) % D for p in range(T)]
    share = {
        "obs": sum(d < OBS for d in target_dims) / T,
        "action": sum(OBS <= d < OBS + ACT for d in target_dims) / T,
        "reward": sum(d == D - 2 for d in target_dims) / T,
        "value": sum(d == D - 1 for d in target_dims) / T,
    }
    total = sum(out.losses_by_type[k] * share[k] for k in share)
    torch.testing.assert_close(total, out.loss.detach(), atol=ATOL, rtol=0)


# ----------------------------------------------------------------------------- KV cache


def test_cache_token_by_token_and_in_chunks_matches_full_forward():
    model = make_model()
    T = model.config.block_size
    tokens = random_tokens(2, T, seed=5)
    with torch.no_grad():
        full = model(tokens).logits
        prefix = 2 * D  # an encoded context of whole transitions
        out = model(tokens[:, :prefix], use_cache=True)
        pieces, past = [out.logits], out.past_key_values
        for p in range(prefix, T):
            out = model(tokens[:, p : p + 1], past_key_values=past, use_cache=True)
            pieces.append(out.logits)
            past = out.past_key_values
        torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=ATOL, rtol=0)
        assert past[0][0].shape == (2, model.config.n_head, T, model.config.n_embd // model.config.n_head)

        # uneven chunks that straddle transition boundaries, first one not a whole transition
        pieces, past, p = [], None, 0
        for size in [5, 1, 9, 3, 17, 2, T]:
            size = min(size, T - p)
            if size == 0:
                break
            out = model(tokens[:, p : p + size], past_key_values=past, use_cache=True, start_position=p)
            pieces.append(out.logits)
            past, p = out.past_key_values, p + size
        torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=ATOL, rtol=0)


def test_batch1_prefix_cache_broadcast_to_beams():
    model = make_model()
    B, prefix, T = 3, D + 4, 3 * D
    context = random_tokens(1, prefix, seed=6)
    continuations = random_tokens(B, T - prefix, seed=7)
    with torch.no_grad():
        past = model(context, use_cache=True).past_key_values
        expanded = tuple((k.expand(B, -1, -1, -1), v.expand(B, -1, -1, -1)) for k, v in past)
        via_expand = model(continuations, past_key_values=expanded).logits
        via_broadcast = model(continuations, past_key_values=past).logits
        for b in range(B):
            full = model(torch.cat([context, continuations[b : b + 1]], dim=1)).logits[0, prefix:]
            torch.testing.assert_close(via_expand[b], full, atol=ATOL, rtol=0)
            torch.testing.assert_close(via_broadcast[b], full, atol=ATOL, rtol=0)


# ----------------------------------------------------------------------------- semantics


def test_value_tokens_are_invisible_to_attention():
    model = make_model()
    T = 4 * D
    tokens = random_tokens(1, T, seed=8)
    with torch.no_grad():
        base = model(tokens).logits
        for p in range(D - 1, T, D):  # every value token
            changed = tokens.clone()
            changed[0, p] = (tokens[0, p] + 3) % (N + 1)
            logits = model(changed).logits
            assert torch.equal(logits[:, p + 1 :], base[:, p + 1 :]), f"value token at {p} leaked"
        obs_changed = tokens.clone()
        obs_changed[0, D] = (tokens[0, D] + 3) % (N + 1)  # s^0 of the second transition
        logits = model(obs_changed).logits
        assert (logits[:, D + 1 :] - base[:, D + 1 :]).abs().amax() > 1e-4


def test_token_offsets_and_shared_stop_row():
    model = make_model()
    seen = []
    hook = model.tok_emb.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].clone()))
    tokens = random_tokens(2, 2 * D + 3, seed=9)
    tokens[0, :D] = N  # a STOP at every dimension
    with torch.no_grad():
        past = model(tokens[:, :D], use_cache=True).past_key_values
        model(tokens[:, D:], past_key_values=past)  # second chunk must keep absolute offsets
    hook.remove()
    got = torch.cat(seen, dim=1)
    for b in range(2):
        for p in range(tokens.shape[1]):
            t = int(tokens[b, p])
            assert int(got[b, p]) == (N * D if t == N else t + (p % D) * N)
    assert model.tok_emb.num_embeddings == N * D + 1


def test_loss_weight_is_shifted_to_the_target():
    model = make_model(action_weight=5.0)
    with torch.no_grad():
        model.head.weight.zero_()  # uniform logits: every target costs exactly log(N+1)
    B, T = 2, 3 * D - 1
    tokens = random_tokens(B, T + 1, seed=10)
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    unit = math.log(N + 1) / (B * T)

    def loss_on(positions):
        mask = torch.zeros(B, T)
        mask[:, positions] = 1.0
        return model(inputs, targets=targets, loss_mask=mask).loss.item()

    # the last observation token predicts a^1: weighted 5; the last action token predicts r: weighted 1
    assert loss_on([OBS - 1]) == pytest.approx(5 * unit * B, rel=1e-5)
    assert loss_on([OBS + ACT - 1]) == pytest.approx(1 * unit * B, rel=1e-5)

    # all wrong targets on action positions only: loss is exactly 5x the unweighted model's
    action_targets = [p for p in range(T) if OBS <= (p + 1) % D < OBS + ACT]
    plain = make_model(action_weight=1.0)
    plain.load_state_dict(model.state_dict())
    mask = torch.zeros(B, T)
    mask[:, action_targets] = 1.0
    weighted = model(inputs, targets=targets, loss_mask=mask).loss
    unweighted = plain(inputs, targets=targets, loss_mask=mask).loss
    torch.testing.assert_close(weighted, 5 * unweighted, atol=ATOL, rtol=0)


def test_init_and_optimizer_groups():
    torch.manual_seed(0)
    model = TrajectoryTransformerModel(make_config())
    assert torch.count_nonzero(model.pos_emb) == 0
    assert torch.equal(model.ln_f.weight, torch.ones_like(model.ln_f.weight))
    bound = 1 / math.sqrt(model.config.n_embd)
    assert model.head.weight.abs().max() <= bound
    assert model.head.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)  # uniform(-b, b)
    assert model.tok_emb.weight.std().item() == pytest.approx(0.02, rel=0.05)

    decay, no_decay = model.optimizer_param_groups(weight_decay=0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decay_names = {names[id(p)] for p in decay["params"]}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert decay_names | no_decay_names == set(names.values()) and not decay_names & no_decay_names
    assert "head.weight" in decay_names and "blocks.0.attn.key.weight" in decay_names
    assert "blocks.1.mlp.2.weight" in decay_names
    assert {"pos_emb", "tok_emb.weight", "ln_f.weight", "blocks.0.attn.key.bias"} <= no_decay_names


def test_training_mode_backward():
    model = make_model()
    model.train()
    tokens = random_tokens(2, D * 3, seed=11)
    out = model(tokens[:, :-1], targets=tokens[:, 1:], loss_mask=torch.ones(2, D * 3 - 1))
    out.loss.backward()
    assert model.pos_emb.grad is not None and model.head.weight.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- persistence


def test_save_and_load_round_trip(tmp_path):
    model = make_model()
    tokens = random_tokens(2, 20, seed=12)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert isinstance(AutoConfig.from_pretrained(tmp_path), TrajectoryTransformerConfig)
    with torch.no_grad():
        expected = model(tokens).logits
        for cls in (TrajectoryTransformerModel, AutoModel):
            loaded = cls.from_pretrained(tmp_path).eval()
            assert isinstance(loaded, TrajectoryTransformerModel)
            assert loaded.config.transition_dim == D and loaded.config.block_size == model.config.block_size
            assert torch.equal(loaded(tokens).logits, expected)


# ----------------------------------------------------------------------------- errors


def test_clear_errors():
    model = make_model()
    tokens = random_tokens(1, 10)
    with pytest.raises(ValueError, match="loss_mask"):
        model(tokens, targets=tokens)
    with pytest.raises(ValueError, match="block_size"):
        model(random_tokens(1, model.config.block_size + 1))
    past = model(tokens, use_cache=True).past_key_values
    with pytest.raises(ValueError, match="block_size"):
        model(random_tokens(1, model.config.block_size - 9), past_key_values=past)
    with pytest.raises(ValueError, match="s\\^0"):
        model(tokens, start_position=3)
    for bad in (N + 1, -1):
        with pytest.raises(ValueError, match="tokens must lie"):
            model(tokens.masked_fill(torch.arange(10) == 4, bad))
    for dtype in (torch.int32, torch.float32):
        with pytest.raises(TypeError, match="torch.long"):
            model(tokens.to(dtype))


def test_config_validation_and_defaults():
    cfg = TrajectoryTransformerConfig(observation_dim=11, action_dim=3)
    assert (cfg.transition_dim, cfg.block_size, cfg.vocab_size, cfg.n_embd) == (16, 159, 100, 128)
    assert (cfg.hidden_size, cfg.num_attention_heads, cfg.num_hidden_layers) == (128, 4, 4)
    assert cfg.model_type == "seqrl_trajectory_transformer"
    with pytest.raises(ValueError, match="divisible"):
        TrajectoryTransformerConfig(observation_dim=3, action_dim=2, n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="positive"):
        TrajectoryTransformerConfig(observation_dim=0, action_dim=2)
    with pytest.raises(ValueError, match="transition_dim"):
        TrajectoryTransformerConfig(observation_dim=3, action_dim=2, transition_dim=6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])  # float32 takes the C kernel where built
@pytest.mark.parametrize("p", [0.0, 0.3])
def test_training_attention_matches_autograd(monkeypatch, p, dtype):
    """The CPU training attention (blocked causal, hand-written backward, dropout folded into the
    softmax backward) equals autograd through softmax(q k^T / sqrt(hd) + mask) * keep / (1 - p) @ v,
    outputs and gradients, with the keep masks it drew recorded and replayed into the reference."""
    from seqrl.cpu import attention
    from seqrl.cpu.attention import TrainingAttention

    model = make_model()
    T = 100  # three query blocks of _ATTENTION_ROWS = 40: the skipped upper blocks are exercised
    assert T > 2 * attention._ATTENTION_ROWS
    mask = model._positions(T, 0, 0, torch.device("cpu"))[2].to(dtype)
    drawn = []

    real_drop_entries = attention.drop_entries

    def recording_drop_entries(probs, p_):
        dropped = real_drop_entries(probs, p_)
        drawn.append((dropped != 0).to(torch.float64))  # allowed probabilities are > 0: zero means dropped
        return dropped

    monkeypatch.setattr(attention, "drop_entries", recording_drop_entries)
    g = torch.Generator().manual_seed(3)
    B, H, hd = 2, 3, 8
    q, k, v = (torch.randn(B, H, T, hd, generator=g, dtype=dtype, requires_grad=True) for _ in range(3))
    grad_out = torch.randn(B, H, T, hd, generator=g, dtype=dtype)

    y = TrainingAttention.apply(q, k, v, mask, p)
    fast_grads = torch.autograd.grad(y, (q, k, v), grad_out)

    # the blocks' keep masks, zero-padded to [B*H, T, T] (the padding lies where the mask is -inf)
    keep = torch.zeros(B * H, T, T, dtype=torch.float64)
    row = 0
    for block in drawn:
        keep[:, row : row + block.shape[1], : block.shape[2]] = block
        row += block.shape[1]
    assert row == T and len(drawn) == 3
    if p > 0:
        dropped_share = 1 - keep[:, mask == 0].mean()
        assert abs(dropped_share - p) < 0.02
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    probs = torch.softmax(q64 @ k64.transpose(-1, -2) / math.sqrt(hd) + mask.double(), dim=-1)
    y_ref = (probs * keep.view(B, H, T, T) / (1 - p)) @ v64
    ref_grads = torch.autograd.grad(y_ref, (q64, k64, v64), grad_out.double())

    tol = 1e-9 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(y.double(), y_ref, rtol=tol, atol=tol)
    for fast, ref, name in zip(fast_grads, ref_grads, "qkv"):
        torch.testing.assert_close(fast.double(), ref, rtol=tol, atol=tol, msg=lambda m: f"grad {name}: {m}")


def _splitmix64_keep(seed: int, n: int, p: float) -> torch.Tensor:
    """numpy transcription of dropout_kernel.c: SplitMix64 at counters 0, 1, ...; element i reads the i-th
    uint16 of the draws and is kept when it is >= round(p * 2**16)."""
    import numpy as np

    with np.errstate(over="ignore"):
        z = np.uint64(seed) + (np.arange((n + 3) // 4, dtype=np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return torch.from_numpy((z.view(np.uint16)[:n] >= round(p * 2**16)).astype(np.float32))


def _kernel_or_skip():
    from seqrl.cpu import dropout

    if dropout.dropout_kernel() is None:
        pytest.skip("no C compiler here: the CPU dropout kernel is not built")
    return dropout


def _torch_path_mask(shape, p):
    from seqrl.cpu import dropout

    return dropout.keep_mask(shape, p, torch.device("cpu"), torch.float32)


def _kernel_mask(shape, p):
    dropout = _kernel_or_skip()
    return dropout.kernel_dropout(torch.ones(shape), p, dropout.draw_seed(), 1.0)


@pytest.mark.parametrize("draw_mask", [_torch_path_mask, _kernel_mask], ids=["torch", "kernel"])
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_keep_mask_drop_rate_and_dropout_scaling(p, draw_mask):
    """Both CPU dropout masks (torch path and C kernel) drop p of the entries (on a 2**-16 grid),
    independently of position, are reproducible under torch.manual_seed, and Dropout rescales the kept
    entries by 1 / (1 - p)."""
    from seqrl.cpu import dropout as tt

    torch.manual_seed(0)
    keep = draw_mask((400, 2501), p)  # odd size: the last draw is cut
    assert keep.dtype == torch.float32 and keep.shape == (400, 2501)
    assert set(keep.unique().tolist()) == {0.0, 1.0}
    n = keep.numel()
    dropped = 1 - keep.double().mean()
    assert abs(dropped - p) < 4 * math.sqrt(p * (1 - p) / n)
    # each of the four 16-bit slices of a draw, and each column, drops at the same rate
    for lane in range(4):
        lane_drop = 1 - keep.flatten()[lane::4].double().mean()
        assert abs(lane_drop - p) < 4 * math.sqrt(p * (1 - p) / (n / 4))
    assert (1 - keep.double().mean(0)).std() < 3 * math.sqrt(p * (1 - p) / 400)
    torch.manual_seed(0)
    assert torch.equal(draw_mask((400, 2501), p), keep)
    # the next call draws fresh bits: masks of successive calls are independent (both drop at rate p**2)
    torch.manual_seed(0)
    draw_mask((400, 2501), p)
    second = draw_mask((400, 2501), p)
    both = ((keep == 0) & (second == 0)).double().mean()
    assert abs(both - p**2) < 4 * math.sqrt(p**2 * (1 - p**2) / n)
    if draw_mask is _torch_path_mask:
        torch.manual_seed(0)  # low-precision activations get the same draws, compared exactly
        assert torch.equal(tt.keep_mask((400, 2501), p, torch.device("cpu"), torch.bfloat16).float(), keep)

    dropout = tt.Dropout(p).train()
    x = torch.rand(300, 700) + 1.0
    y = dropout(x)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / (1 - p))
    assert abs((1 - kept.double().mean()) - p) < 4 * math.sqrt(p * (1 - p) / x.numel())


@pytest.mark.parametrize("n", [1, 5, 1023, 1024 * 37 + 3])  # below a draw, one chunk, many chunks over threads
def test_dropout_kernel_is_the_splitmix_rule_and_backward_redraws_the_mask(n):
    """The compiled kernel keeps exactly the elements of the numpy transcription of its rule, scales the
    kept ones, and Dropout's backward (which stores no mask, only the seed) uses the forward's mask."""
    dropout = _kernel_or_skip()
    p, seed = 0.3, 123456789
    x = torch.randn(n)
    y = dropout.kernel_dropout(x, p, seed, 2.5)
    keep = _splitmix64_keep(seed, n, p)
    torch.testing.assert_close(y, x * keep * 2.5, rtol=0, atol=0)
    # non-contiguous input is read in logical order
    xt = torch.randn(7, n).t()
    torch.testing.assert_close(dropout.kernel_dropout(xt, p, seed, 1.0), xt.contiguous().view(-1).mul(
        _splitmix64_keep(seed, 7 * n, p)).view(n, 7), rtol=0, atol=0)

    layer = dropout.Dropout(p).train()
    x = torch.randn(n, 3, requires_grad=True)
    y = layer(x)
    assert y.grad_fn.saved_tensors == ()  # no mask kept for the backward
    grad = torch.randn(n, 3)
    y.backward(grad)
    torch.testing.assert_close(x.grad, grad * (y != 0) / (1 - p))


@pytest.mark.parametrize("setting", ["off", "no compiler"])
def test_dropout_without_the_kernel_takes_the_torch_path(monkeypatch, tmp_path, setting):
    """SEQRL_CPU_KERNELS=0, or no working C compiler, takes the torch path (a stored mask) with the same
    distribution, and nothing is left half-built in the kernel cache."""
    from seqrl.cpu import dropout

    monkeypatch.setenv("SEQRL_CACHE", str(tmp_path))
    if setting == "off":
        monkeypatch.setenv("SEQRL_CPU_KERNELS", "0")
    else:
        monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    dropout.dropout_kernel.cache_clear()
    try:
        assert dropout.dropout_kernel() is None and not dropout.uses_kernel(torch.ones(3))
        x = torch.rand(200, 300, requires_grad=True)
        y = dropout.Dropout(0.2).train()(x + 1.0)
        assert abs((y == 0).double().mean() - 0.2) < 0.01
        y.sum().backward()
        torch.testing.assert_close(x.grad, (y != 0).float() / 0.8)
        assert not list(tmp_path.glob("kernels/*"))
    finally:
        monkeypatch.undo()
        dropout.dropout_kernel.cache_clear()


def test_decode_step_equals_forward_chunk_then_token_by_token():
    """The planner's cached decoding step: a chunk, then single tokens at explicit positions over the
    preallocated buffers, gives forward's logits at every last position (eval mode)."""
    torch.manual_seed(0)
    cfg = TrajectoryTransformerConfig(observation_dim=3, action_dim=2, vocab_size=10, block_size=20, n_layer=2,
                                      n_head=2, n_embd=16)
    model = TrajectoryTransformerModel(cfg).eval()
    with torch.no_grad():
        model.pos_emb.normal_()
    tokens = torch.randint(0, 11, (4, 14))  # stop tokens (10) included
    cache = model.new_decode_cache(rows=4, window=20)
    got = [model.decode_step(cache, tokens[:, :9], 0)]
    got += [model.decode_step(cache, tokens[:, t:t + 1], t) for t in range(9, 14)]
    with torch.no_grad():
        want = model(tokens).logits
    for i, t in enumerate(range(8, 14)):
        torch.testing.assert_close(got[i], want[:, t], rtol=1e-5, atol=1e-5)
