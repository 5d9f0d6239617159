"""Scripted behaviour policies of graded quality for the built-in datasets.

Every controller is a callable ``controller(observations) -> actions`` working on a *batch*
(``observations`` of shape ``[n, obs_dim]``, actions of shape ``[n, act_dim]``), so the same
object drives a plain loop (``n == 1``) or a vector env. Stochastic controllers draw their noise
from their own ``np.random.Generator``; :func:`seqrl.data.collect.rollout` re-seeds it through
``reset_rng(seed)`` so a rollout is a pure function of its seed.

Quality levels (see :func:`make_controller`):

* ``"expert"``: a tuned state-feedback controller plus a little Gaussian action noise (like a
  stochastic expert such as a SAC policy; the noise gives the data some action coverage).
* ``"medium"``: the expert with a fraction ``epsilon`` of its actions replaced by uniformly random
  ones and more Gaussian noise.
* ``"random"``: actions uniform in the action bounds.

The gains below are named constants; each comment says how it was found. The returns quoted were
measured with 200-step episodes (InvertedPendulum-v5 with ``max_episode_steps=200``, Pendulum-v1
with its default 200).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = [
    "CONTROLLER_NAMES",
    "INVERTED_PENDULUM_LQR_GAIN",
    "PENDULUM_LQR_GAIN",
    "PENDULUM_ENERGY_GAIN",
    "PENDULUM_SWITCH_COS",
    "NOISE_LEVELS",
    "InvertedPendulumLQR",
    "PendulumSwingUp",
    "NoisyController",
    "UniformRandomController",
    "expert_base",
    "make_controller",
    "make_noisy_expert",
]

CONTROLLER_NAMES = ("random", "medium", "expert")

# --------------------------------------------------------------------------------------------
# InvertedPendulum-v5. Observation: [cart x, pole angle theta, x_dot, theta_dot]; action: force
# in [-3, 3]; the episode terminates when |theta| > 0.2.
#
# Gain found by linearising the environment at the upright equilibrium with central finite
# differences through the environment's own simulator (``set_state`` + ``do_simulation`` with its
# frame_skip, i.e. the 0.04 s control step) and solving the discrete-time LQR problem by Riccati
# iteration with Q = I (4x4) and R = 0.1. Closed-loop spectral radius 0.961. Checked by rollouts:
# it balances 50 of 50 episodes for the full 200 steps (and for 1000 steps), and still keeps
# mean returns of about 193/200 with N(0, 1) action noise. Control law: u = K . obs.
INVERTED_PENDULUM_LQR_GAIN = np.array([0.9536, 9.9682, 1.6074, 1.9453])

# --------------------------------------------------------------------------------------------
# Pendulum-v1. Observation: [cos theta, sin theta, theta_dot] (theta = 0 is upright); action:
# torque in [-2, 2]; dynamics theta_ddot = 15 sin(theta) + 3 u (g = 10, m = l = 1), dt = 0.05.
#
# Near upright: discrete LQR on the linearisation (A = [[1 + 15 dt^2, dt], [15 dt, 1]],
# B = [[3 dt^2], [3 dt]]) with Q = diag(1, 0.1) (the reward's weights) and R = 0.01, solved by
# Riccati iteration. Control law u = -K . [theta, theta_dot].
PENDULUM_LQR_GAIN = np.array([12.9662, 3.2821])
# Away from upright: energy pumping. With E = theta_dot^2 / 2 + 15 (cos theta - 1) (0 when
# resting upright), dE/dt = 3 u theta_dot, so u = k (0 - E) theta_dot drives E to 0. A grid over
# k in {0.1, 0.5, 2, 10} and the switching threshold cos(theta) > {0.6, 0.8, 0.9} over 50 seeded
# episodes gave mean returns between -137 and -164; k = 2 with cos(theta) > 0.8 gave -137.5
# (random actions: about -1195).
PENDULUM_ENERGY_GAIN = 2.0
PENDULUM_SWITCH_COS = 0.8

# --------------------------------------------------------------------------------------------
# Noise levels per quality: (epsilon = probability of a uniform random action, sigma = std of
# Gaussian action noise added otherwise). The medium levels were picked by sweeping epsilon and
# sigma over 50 seeded episodes each, aiming at a mean return of roughly 30-60 % of the expert's
# for InvertedPendulum (most medium episodes end in a fall) and about half-way between random
# and expert for Pendulum (normalised score about 0.5).
NOISE_LEVELS: dict[str, dict[str, tuple[float, float]]] = {
    "InvertedPendulum-v5": {"expert": (0.0, 0.1), "medium": (0.2, 0.3)},
    "Pendulum-v1": {"expert": (0.0, 0.1), "medium": (0.6, 0.5)},
}

_ACTION_BOUNDS = {
    "InvertedPendulum-v5": (np.array([-3.0]), np.array([3.0])),
    "Pendulum-v1": (np.array([-2.0]), np.array([2.0])),
}


def _as_batch(observations: np.ndarray) -> np.ndarray:
    obs = np.asarray(observations, dtype=np.float64)
    if obs.ndim == 1:
        obs = obs[None]
    return obs


class InvertedPendulumLQR:
    """Deterministic linear state feedback ``u = K . obs`` for InvertedPendulum-v5."""

    def __init__(self, gain: np.ndarray = INVERTED_PENDULUM_LQR_GAIN, limit: float = 3.0):
        self.gain = np.asarray(gain, dtype=np.float64)
        self.limit = float(limit)

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        obs = _as_batch(observations)
        # An explicit sum over the four terms (not a matrix product) so every row's result is
        # independent of the batch size: a vector-env rollout reproduces a single-env one bit
        # for bit.
        u = np.zeros(obs.shape[0])
        for i in range(self.gain.shape[0]):
            u = u + self.gain[i] * obs[:, i]
        return np.clip(u, -self.limit, self.limit)[:, None]


class PendulumSwingUp:
    """Deterministic energy-shaping swing-up with an LQR stabiliser near upright (Pendulum-v1)."""

    def __init__(
        self,
        lqr_gain: np.ndarray = PENDULUM_LQR_GAIN,
        energy_gain: float = PENDULUM_ENERGY_GAIN,
        switch_cos: float = PENDULUM_SWITCH_COS,
        limit: float = 2.0,
    ):
        self.lqr_gain = np.asarray(lqr_gain, dtype=np.float64)
        self.energy_gain = float(energy_gain)
        self.switch_cos = float(switch_cos)
        self.limit = float(limit)

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        obs = _as_batch(observations)
        cos_t, sin_t, vel = obs[:, 0], obs[:, 1], obs[:, 2]
        theta = np.arctan2(sin_t, cos_t)
        stabilise = -(self.lqr_gain[0] * theta + self.lqr_gain[1] * vel)
        energy = 0.5 * vel * vel + 15.0 * (cos_t - 1.0)
        pump = self.energy_gain * (-energy) * vel
        # Resting exactly at the bottom gives no energy gradient: kick it.
        pump = np.where(np.abs(vel) < 1e-3, 1.0, pump)
        u = np.where(cos_t > self.switch_cos, stabilise, pump)
        return np.clip(u, -self.limit, self.limit)[:, None]


class UniformRandomController:
    """Actions uniform in ``[low, high]``."""

    def __init__(self, low: np.ndarray, high: np.ndarray, seed: int = 0):
        self.low = np.asarray(low, dtype=np.float64)
        self.high = np.asarray(high, dtype=np.float64)
        self.rng = np.random.default_rng(seed)

    def reset_rng(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        n = _as_batch(observations).shape[0]
        return self.rng.uniform(self.low, self.high, size=(n, self.low.shape[0]))


class NoisyController:
    """``base`` with epsilon-uniform action replacement and Gaussian action noise.

    Per row: with probability ``epsilon`` a uniform action in ``[low, high]``, otherwise
    ``base(obs) + N(0, sigma^2)``; clipped to the bounds. The generator is advanced by the same
    amount on every call whatever the values, so the stream of draws depends only on the seed
    and the batch sizes.
    """

    def __init__(
        self,
        base: Callable[[np.ndarray], np.ndarray],
        low: np.ndarray,
        high: np.ndarray,
        *,
        epsilon: float = 0.0,
        sigma: float = 0.0,
        seed: int = 0,
    ):
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        if sigma < 0.0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        self.base = base
        self.low = np.asarray(low, dtype=np.float64)
        self.high = np.asarray(high, dtype=np.float64)
        self.epsilon = float(epsilon)
        self.sigma = float(sigma)
        self.rng = np.random.default_rng(seed)

    def reset_rng(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        obs = _as_batch(observations)
        n, act_dim = obs.shape[0], self.low.shape[0]
        action = np.asarray(self.base(obs), dtype=np.float64).reshape(n, act_dim)
        noise = self.rng.standard_normal((n, act_dim))
        coin = self.rng.random(n)
        uniform = self.rng.uniform(self.low, self.high, size=(n, act_dim))
        action = action + self.sigma * noise
        action = np.where((coin < self.epsilon)[:, None], uniform, action)
        return np.clip(action, self.low, self.high)


def _check_env(env_id: str) -> None:
    if env_id not in _ACTION_BOUNDS:
        raise ValueError(
            f"No scripted controllers for {env_id!r}; known: {', '.join(sorted(_ACTION_BOUNDS))}"
        )


def expert_base(env_id: str) -> Callable[[np.ndarray], np.ndarray]:
    """The deterministic (noise-free) expert controller of ``env_id``."""
    _check_env(env_id)
    if env_id == "InvertedPendulum-v5":
        return InvertedPendulumLQR()
    return PendulumSwingUp()


def make_noisy_expert(
    env_id: str, epsilon: float, sigma: float, seed: int = 0
) -> NoisyController:
    """The expert of ``env_id`` with epsilon-uniform replacement and Gaussian noise ``sigma``."""
    _check_env(env_id)
    low, high = _ACTION_BOUNDS[env_id]
    return NoisyController(
        expert_base(env_id), low, high, epsilon=epsilon, sigma=sigma, seed=seed
    )


def make_controller(env_id: str, name: str, seed: int = 0):
    """A batch controller of quality ``name`` (``"random"``, ``"medium"`` or ``"expert"``)."""
    _check_env(env_id)
    if name not in CONTROLLER_NAMES:
        raise ValueError(
            f"Unknown controller {name!r}; known: {', '.join(CONTROLLER_NAMES)}"
        )
    low, high = _ACTION_BOUNDS[env_id]
    if name == "random":
        return UniformRandomController(low, high, seed=seed)
    epsilon, sigma = NOISE_LEVELS[env_id][name]
    return make_noisy_expert(env_id, epsilon, sigma, seed=seed)
