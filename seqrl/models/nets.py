"""Small networks for the value-based algorithms: MLPs, batched ensembles and policies.

Twin critics (and any other ensemble) are one `EnsembleMLP`: each layer is a single batched
matmul over the members instead of a Python loop over modules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
LOG_2 = math.log(2.0)


# ----------------------------------------------------------------------------- initialisation


def _init_linear_(weight: Tensor, bias: Tensor, scheme: str, gain: float) -> None:
    """Initialise one (out, in) weight and its bias in place.

    default: what nn.Linear does; orthogonal: CORL/official-IQL style (bias 0);
    xavier: xavier-uniform with bias 0 (CORL's last actor layer, gain 1e-2);
    truncated_normal: std 1 / (2 sqrt(in)), torch's default cut at +-2, bias 0 (the MBPO/MOPO
    lineage's dynamics ensembles).
    """
    fan_in = weight.shape[1]
    if scheme == "default":
        bound = 1.0 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)) reduces to this
        nn.init.uniform_(weight, -bound, bound)
        nn.init.uniform_(bias, -bound, bound)
    elif scheme == "orthogonal":
        nn.init.orthogonal_(weight, gain=gain)
        nn.init.zeros_(bias)
    elif scheme == "xavier":
        nn.init.xavier_uniform_(weight, gain=gain)
        nn.init.zeros_(bias)
    elif scheme == "truncated_normal":
        nn.init.trunc_normal_(weight, std=1.0 / (2.0 * math.sqrt(fan_in)))
        nn.init.zeros_(bias)
    else:
        raise ValueError(f"unknown init scheme {scheme!r}")


def _init_layers(
    layers: Sequence[nn.Module], hidden_init: str, last_init: str, last_gain: float
) -> None:
    for i, layer in enumerate(layers):
        last = i == len(layers) - 1
        layer.reset_parameters(
            last_init if last else hidden_init, last_gain if last else math.sqrt(2.0)
        )


def _make_activation(activation: type[nn.Module] | nn.Module) -> nn.Module:
    if isinstance(activation, nn.Module):
        return activation
    # ReLU in place: the pre-activation is never needed again, saves one big buffer per layer
    return nn.ReLU(inplace=True) if activation is nn.ReLU else activation()


# ----------------------------------------------------------------------------- plain MLP


class Linear(nn.Linear):
    """nn.Linear with a selectable init scheme."""

    def reset_parameters(self, scheme: str = "default", gain: float = 1.0) -> None:
        with torch.no_grad():
            _init_linear_(self.weight, self.bias, scheme, gain)


class MLP(nn.Module):
    """Linear -> activation -> ... -> Linear; `squeeze_output` drops a trailing size-1 dim."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dims: Sequence[int],
        activation: type[nn.Module] | nn.Module = nn.ReLU,
        squeeze_output: bool = False,
        hidden_init: str = "default",
        last_init: str = "default",
        last_gain: float = 1.0,
    ):
        super().__init__()
        dims = [in_dim, *hidden_dims, out_dim]
        self.layers = nn.ModuleList(Linear(i, o) for i, o in zip(dims[:-1], dims[1:]))
        self.activation = _make_activation(activation)
        self.squeeze_output = squeeze_output
        _init_layers(self.layers, hidden_init, last_init, last_gain)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        x = self.layers[-1](x).float()  # heads stay float32 under bf16 autocast (a no-op otherwise)
        return x.squeeze(-1) if self.squeeze_output else x


# ----------------------------------------------------------------------------- ensembles


class VectorizedLinear(nn.Module):
    """E independent linear layers: weight (E, in, out), bias (E, 1, out), input [E, B, in]."""

    def __init__(self, ensemble_size: int, in_features: int, out_features: int):
        super().__init__()
        self.ensemble_size = ensemble_size
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(ensemble_size, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(ensemble_size, 1, out_features))
        self.reset_parameters()

    def reset_parameters(self, scheme: str = "default", gain: float = 1.0) -> None:
        # initialise each member exactly as an nn.Linear (out, in) would be, then transpose in
        with torch.no_grad():
            for e in range(self.ensemble_size):
                w = torch.empty(self.out_features, self.in_features)
                b = torch.empty(self.out_features)
                _init_linear_(w, b, scheme, gain)
                self.weight[e].copy_(w.T)
                self.bias[e, 0].copy_(b)

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)

    def extra_repr(self) -> str:
        return f"ensemble_size={self.ensemble_size}, in={self.in_features}, out={self.out_features}"


class EnsembleMLP(nn.Module):
    """E independent MLPs run as one batched matmul per layer.

    ``forward(*inputs)`` treats the inputs as one concatenated feature vector (``critic(obs, act)``)
    without materialising the concatenation: the first layer's weight is split per input and
    each input is multiplied only at its own batch shape, then broadcast. So with ``obs`` [B, D]
    and ``act`` [B, N, A] (N sampled actions per state, as in CQL) the observation part of the
    first layer is computed once per state, not N times. Every input's batch shape must be a
    prefix of the longest one. With ``member_dim=True`` the inputs carry a leading E dim (one
    batch per member); otherwise all members see the same inputs.

    Output: [E, *batch, out_dim], or [E, *batch] when ``squeeze_output`` (critics).
    ``detach_params=True`` evaluates with detached weights: gradients reach the inputs only
    (the SAC/CQL actor loss back-propagates through Q into the actions, not into the critic).
    """

    def __init__(
        self,
        in_dims: int | Sequence[int],
        out_dim: int,
        hidden_dims: Sequence[int],
        ensemble_size: int = 2,
        activation: type[nn.Module] | nn.Module = nn.ReLU,
        squeeze_output: bool = False,
        hidden_init: str = "default",
        last_init: str = "default",
        last_gain: float = 1.0,
    ):
        super().__init__()
        self.in_dims = (in_dims,) if isinstance(in_dims, int) else tuple(in_dims)
        self.ensemble_size = ensemble_size
        dims = [sum(self.in_dims), *hidden_dims, out_dim]
        self.layers = nn.ModuleList(
            VectorizedLinear(ensemble_size, i, o) for i, o in zip(dims[:-1], dims[1:])
        )
        self.activation = _make_activation(activation)
        self.squeeze_output = squeeze_output
        _init_layers(self.layers, hidden_init, last_init, last_gain)

    def _first_layer(self, xs: Sequence[Tensor], w: Tensor, b: Tensor, member_dim: bool):
        """First layer on the (virtually) concatenated inputs. Returns a fresh (non-view) tensor
        [E, rows, H] or [E, *batch, H], and the batch shape."""
        E = self.ensemble_size
        lead = 1 if member_dim else 0
        shapes = [tuple(x.shape[lead:-1]) for x in xs]
        out_shape = max(shapes, key=len)
        if sum(x.shape[-1] for x in xs) != w.shape[1]:
            raise ValueError(f"inputs have {sum(x.shape[-1] for x in xs)} features, "
                             f"the network expects {w.shape[1]}")

        def members(x: Tensor) -> Tensor:  # [E, rows, d], shared inputs broadcast over members
            d = x.shape[-1]
            return x.reshape(E, -1, d) if member_dim else x.reshape(1, -1, d).expand(E, -1, d)

        if all(shape == out_shape for shape in shapes):  # nothing to broadcast: one matmul
            x = xs[0] if len(xs) == 1 else torch.cat(xs, dim=-1)
            return torch.baddbmm(b, members(x), w), out_shape
        # the bias goes with the input that has the fewest rows (cheapest place to add it)
        smallest = min(range(len(xs)), key=lambda i: math.prod(shapes[i]))
        h, start = None, 0
        for i, (x, shape) in enumerate(zip(xs, shapes)):
            if out_shape[: len(shape)] != shape:
                raise ValueError(f"batch shape {shape} is not a prefix of {out_shape}")
            wi = w[:, start : start + x.shape[-1]]
            start += x.shape[-1]
            part = torch.baddbmm(b, members(x), wi) if i == smallest else torch.bmm(members(x), wi)
            part = part.view(E, *shape, *([1] * (len(out_shape) - len(shape))), -1)
            h = part if h is None else h + part
        return h, out_shape

    def forward(self, *xs: Tensor, member_dim: bool = False, detach_params: bool = False) -> Tensor:
        E = self.ensemble_size
        params = [(layer.weight, layer.bias) for layer in self.layers]
        if detach_params:
            params = [(w.detach(), b.detach()) for w, b in params]
        h, out_shape = self._first_layer(xs, *params[0], member_dim)
        if len(params) > 1:  # activate before flattening: in-place ops on views cost a copy
            h = self.activation(h)
        h = h.reshape(E, -1, h.shape[-1])
        for i, (w, b) in enumerate(params[1:], start=2):
            if i < len(params):
                h = self.activation(torch.baddbmm(b, h, w))
            elif w.shape[-1] == 1:  # a scalar head: mul + sum beats a batched GEMV (fwd and bwd)
                h = (h * w.transpose(1, 2)).sum(-1, keepdim=True) + b
            else:
                h = torch.baddbmm(b, h, w)
        h = h.float().view(E, *out_shape, -1)  # float32 heads under bf16 autocast, as MLP
        return h.squeeze(-1) if self.squeeze_output else h


# ----------------------------------------------------------------------------- noise


def standard_normal(shape, generator, like: Tensor) -> Tensor:
    """N(0, 1) noise of `shape` on `like`'s device and dtype. `generator` is a torch.Generator
    (or None: the global RNG) or any object with `randn(shape, like)` / `rand(shape, like)`
    (seqrl.algos.stacked feeds several seeds' noise through one vmapped update that way)."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)
    return generator.randn(tuple(shape), like)


def standard_uniform(shape, generator, like: Tensor) -> Tensor:
    """U[0, 1) noise, as `standard_normal`."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.rand(shape, generator=generator, device=like.device, dtype=like.dtype)
    return generator.rand(tuple(shape), like)


# ----------------------------------------------------------------------------- policies


def gaussian_log_prob(mean: Tensor, log_std: Tensor, actions: Tensor) -> Tensor:
    """log N(actions; mean, exp(log_std)) summed over the last dim."""
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std).sum(-1) - actions.shape[-1] * LOG_SQRT_2PI


def tanh_log_det_jacobian(u: Tensor) -> Tensor:
    """log |d tanh(u) / du| = log(1 - tanh(u)^2), in the stable form torch's TanhTransform uses."""
    return 2.0 * (LOG_2 - u - F.softplus(-2.0 * u))


def _expand_samples(mean: Tensor, log_std: Tensor, n: int | None):
    """Add a sample dim (-2) of size n, or leave the shapes alone when n is None."""
    if n is None:
        return mean, log_std.expand_as(mean), tuple(mean.shape)
    mean, log_std = mean.unsqueeze(-2), log_std.expand_as(mean).unsqueeze(-2)
    return mean, log_std, (*mean.shape[:-2], n, mean.shape[-1])


class TanhGaussianPolicy(nn.Module):
    """SAC/CQL actor: state-dependent mean and log-std, tanh-squashed samples.

    log-std = clamp(multiplier * raw + offset, min, max); CORL learns multiplier and offset
    (initial 1 and -1) with the actor, which ``learn_log_std_scale`` reproduces.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_dims: Sequence[int],
        log_std_min: float = -20.0,
        log_std_max: float = 2.0,
        log_std_multiplier: float = 1.0,
        log_std_offset: float = 0.0,
        learn_log_std_scale: bool = False,
        hidden_init: str = "default",
        last_init: str = "default",
        last_gain: float = 1.0,
    ):
        super().__init__()
        self.act_dim = act_dim
        self.log_std_min, self.log_std_max = log_std_min, log_std_max
        self.net = MLP(obs_dim, 2 * act_dim, hidden_dims, hidden_init=hidden_init,
                       last_init=last_init, last_gain=last_gain)
        scale = torch.tensor(float(log_std_multiplier)), torch.tensor(float(log_std_offset))
        if learn_log_std_scale:
            self.log_std_multiplier, self.log_std_offset = (nn.Parameter(t) for t in scale)
        else:
            self.register_buffer("log_std_multiplier", scale[0])
            self.register_buffer("log_std_offset", scale[1])

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, log_std) of the pre-tanh Gaussian."""
        mean, log_std = self.net(obs).chunk(2, dim=-1)
        log_std = self.log_std_multiplier * log_std + self.log_std_offset
        return mean, log_std.clamp(self.log_std_min, self.log_std_max)

    @staticmethod
    def sample_from(mean, log_std, n=None, generator=None) -> tuple[Tensor, Tensor]:
        """Reparameterised tanh(u), u ~ N(mean, std); n adds a sample dim at -2."""
        mean, log_std, shape = _expand_samples(mean, log_std, n)
        eps = standard_normal(shape, generator, mean)
        u = mean + log_std.exp() * eps
        # (u - mean) / std is eps itself: no need to recompute it for the Normal term
        log_prob = (-0.5 * eps.pow(2) - log_std - LOG_SQRT_2PI - tanh_log_det_jacobian(u)).sum(-1)
        return torch.tanh(u), log_prob

    @staticmethod
    def log_prob_from(mean, log_std, actions, eps: float = 1e-6) -> Tensor:
        """log pi(actions) by change of variables; actions at +-1 are pulled in by eps."""
        if actions.dim() > mean.dim():  # several actions per state: [B, N, A]
            mean, log_std = mean.unsqueeze(-2), log_std.unsqueeze(-2)
        u = torch.atanh(actions.clamp(-1.0 + eps, 1.0 - eps))
        return gaussian_log_prob(mean, log_std, u) - tanh_log_det_jacobian(u).sum(-1)

    def sample(self, obs: Tensor, n: int | None = None, generator=None) -> tuple[Tensor, Tensor]:
        return self.sample_from(*self(obs), n=n, generator=generator)

    def log_prob(self, obs: Tensor, actions: Tensor) -> Tensor:
        return self.log_prob_from(*self(obs), actions)

    def deterministic(self, obs: Tensor) -> Tensor:
        return torch.tanh(self(obs)[0])


class GaussianPolicy(nn.Module):
    """Diagonal Gaussian with a state-independent learned log-std and an unsquashed Normal.

    ``tanh_mean=True``: IQL (official and CORL) and d3rlpy style, the mean is tanh(MLP(s)).
    ``tanh_mean=False``: CORL AWAC, unbounded mean. Samples can be clipped to [-1, 1].
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_dims: Sequence[int],
        log_std_min: float = -20.0,
        log_std_max: float = 2.0,
        tanh_mean: bool = True,
        clip_samples: bool = False,
        hidden_init: str = "default",
        last_init: str = "default",
        last_gain: float = 1.0,
    ):
        super().__init__()
        self.act_dim = act_dim
        self.log_std_min, self.log_std_max = log_std_min, log_std_max
        self.tanh_mean, self.clip_samples = tanh_mean, clip_samples
        self.net = MLP(obs_dim, act_dim, hidden_dims, hidden_init=hidden_init,
                       last_init=last_init, last_gain=last_gain)
        self.log_std = nn.Parameter(torch.zeros(act_dim))

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """(mean [..., A], log_std [A]); log_std broadcasts against mean."""
        mean = self.net(obs)
        mean = torch.tanh(mean) if self.tanh_mean else mean
        return mean, self.log_std.clamp(self.log_std_min, self.log_std_max)

    def sample_from(self, mean, log_std, n=None, generator=None) -> tuple[Tensor, Tensor]:
        mean, log_std, shape = _expand_samples(mean, log_std, n)
        eps = standard_normal(shape, generator, mean)
        actions = mean + log_std.exp() * eps
        if self.clip_samples:
            actions = actions.clamp(-1.0, 1.0)
        return actions, gaussian_log_prob(mean, log_std, actions)

    @staticmethod
    def log_prob_from(mean, log_std, actions) -> Tensor:
        if actions.dim() > mean.dim():
            mean = mean.unsqueeze(-2)
        return gaussian_log_prob(mean, log_std, actions)

    def sample(self, obs: Tensor, n: int | None = None, generator=None) -> tuple[Tensor, Tensor]:
        return self.sample_from(*self(obs), n=n, generator=generator)

    def log_prob(self, obs: Tensor, actions: Tensor) -> Tensor:
        return self.log_prob_from(*self(obs), actions)

    def deterministic(self, obs: Tensor) -> Tensor:
        return self(obs)[0]


class DeterministicPolicy(nn.Module):
    """a = tanh(MLP(s)) (TD3+BC / BC / IQL-deterministic actor)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden_dims: Sequence[int], **init_kwargs):
        super().__init__()
        self.act_dim = act_dim
        self.net = MLP(obs_dim, act_dim, hidden_dims, **init_kwargs)

    def forward(self, obs: Tensor) -> Tensor:
        return torch.tanh(self.net(obs))

    def deterministic(self, obs: Tensor) -> Tensor:
        return self(obs)

    def sample(self, obs: Tensor, n: int | None = None, generator=None) -> tuple[Tensor, None]:
        a = self(obs)
        if n is not None:
            a = a.unsqueeze(-2).expand(*a.shape[:-1], n, a.shape[-1])
        return a, None
