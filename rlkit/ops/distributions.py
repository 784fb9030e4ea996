"""Action distributions for policy heads: Categorical (with masks), DiagGaussian, TanhGaussian.

rlkit keeps its own small distributions rather than depending on distrax, which now pulls in
tfp-nightly. Each distribution is a ``flax.struct.dataclass``, so it is a pytree: it can be
returned from jitted functions, vmapped over and stored in a state. All methods work for any
leading batch shape ``[*batch]``; the event axis (actions for Categorical, action dimensions
for the Gaussians) is the last one.
"""

import math

import jax
import jax.numpy as jnp
from flax import struct

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)
_TANH_CLIP = 1.0 - 1e-6


def _masked_logit(dtype: jnp.dtype) -> jax.Array:
    # Large and negative but finite: exp underflows to exactly 0, while gradients and
    # p * log p stay finite (no -inf, no 0 * inf = NaN). Half of the smallest float leaves room
    # for subtracting logsumexp without overflowing to -inf.
    return jnp.asarray(jnp.finfo(dtype).min / 2, dtype)


@struct.dataclass
class Categorical:
    """Categorical distribution over the last axis of ``logits``, with an optional action mask.

    Attributes:
      logits: unnormalised log-probabilities, float [*batch, num_actions].
      mask: bool [*batch, num_actions] or None; True = the action is ALLOWED. (Unity
        ML-Agents' wire format uses True = masked: invert it before building this.) Masked
        actions get probability exactly 0 and are never sampled. Each row must allow at least
        one action (with none allowed, the distribution is uniform over all actions).
    """

    logits: jax.Array
    mask: jax.Array | None = None

    def masked_logits(self) -> jax.Array:
        """Logits with masked entries replaced by a large negative finite number."""
        if self.mask is None:
            return self.logits
        return jnp.where(self.mask, self.logits, _masked_logit(self.logits.dtype))

    def log_probs(self) -> jax.Array:
        """log p(a) for every action, float [*batch, num_actions]."""
        return jax.nn.log_softmax(self.masked_logits(), axis=-1)

    def probs(self) -> jax.Array:
        """p(a) for every action, float [*batch, num_actions]; 0 for masked actions."""
        return jax.nn.softmax(self.masked_logits(), axis=-1)

    def sample(self, key: jax.Array) -> jax.Array:
        """One action per batch entry, int [*batch]."""
        return jax.random.categorical(key, self.masked_logits(), axis=-1)

    def log_prob(self, action: jax.Array) -> jax.Array:
        """log p(action), float [*batch] for an int action [*batch]."""
        chosen = jnp.take_along_axis(self.log_probs(), action[..., None].astype(jnp.int32), -1)
        return chosen[..., 0]

    def entropy(self) -> jax.Array:
        """H = -sum_a p(a) log p(a) over allowed actions, float [*batch]."""
        log_probs = self.log_probs()
        plogp = jnp.exp(log_probs) * log_probs
        if self.mask is not None:
            plogp = jnp.where(self.mask, plogp, 0.0)
        return -jnp.sum(plogp, axis=-1)

    def mode(self) -> jax.Array:
        """The most probable allowed action, int [*batch]."""
        return jnp.argmax(self.masked_logits(), axis=-1)


def _gaussian_log_density(x: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """sum_i log N(x_i; mean_i, exp(log_std_i)^2) over the last axis."""
    z = (x - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - _HALF_LOG_2PI, axis=-1)


def _tanh_log_det_jacobian(u: jax.Array) -> jax.Array:
    """sum_i log(1 - tanh(u_i)^2) over the last axis, stable for large |u|.

    1 - tanh(u)^2 = 4 / (e^u + e^-u)^2, so log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)).
    """
    return jnp.sum(2.0 * (_LOG_2 - u - jax.nn.softplus(-2.0 * u)), axis=-1)


@struct.dataclass
class DiagGaussian:
    """Gaussian with diagonal covariance over the last axis.

    Attributes:
      mean: float [*batch, action_dim].
      log_std: float, broadcastable to ``mean`` (a state-independent log-std of shape
        [action_dim] is the caller's choice and broadcasts).
    """

    mean: jax.Array
    log_std: jax.Array

    def sample(self, key: jax.Array) -> jax.Array:
        """x = mean + std * eps, eps ~ N(0, I); float [*batch, action_dim]."""
        noise = jax.random.normal(key, jnp.broadcast_shapes(self.mean.shape, self.log_std.shape))
        return self.mean + jnp.exp(self.log_std) * noise.astype(self.mean.dtype)

    def log_prob(self, x: jax.Array) -> jax.Array:
        """sum_i [-(x_i - mean_i)^2 / (2 std_i^2) - log std_i - log(2 pi) / 2], float [*batch]."""
        return _gaussian_log_density(x, self.mean, self.log_std)

    def entropy(self) -> jax.Array:
        """sum_i [1/2 + log(2 pi)/2 + log std_i], float [*batch]."""
        log_std = jnp.broadcast_to(
            self.log_std, jnp.broadcast_shapes(self.mean.shape, self.log_std.shape)
        )
        return jnp.sum(0.5 + _HALF_LOG_2PI + log_std, axis=-1)

    def mode(self) -> jax.Array:
        """The mean, float [*batch, action_dim]."""
        return self.mean


@struct.dataclass
class TanhGaussian:
    """a = tanh(u), u ~ N(mean, diag(exp(log_std)^2)): the squashed Gaussian policy of SAC.

    By change of variables, log p(a) = log N(u; mean, std) - sum_i log(1 - tanh(u_i)^2).

    Attributes:
      mean: pre-squash mean, float [*batch, action_dim].
      log_std: pre-squash log-std, float, broadcastable to ``mean``.
    """

    mean: jax.Array
    log_std: jax.Array

    def sample_and_log_prob(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(a [*batch, action_dim] in (-1, 1), log p(a) [*batch]), reparameterised in u."""
        u = DiagGaussian(self.mean, self.log_std).sample(key)
        log_prob = _gaussian_log_density(u, self.mean, self.log_std) - _tanh_log_det_jacobian(u)
        return jnp.tanh(u), log_prob

    def sample(self, key: jax.Array) -> jax.Array:
        """a = tanh(u), float [*batch, action_dim]."""
        return self.sample_and_log_prob(key)[0]

    def log_prob(self, action: jax.Array) -> jax.Array:
        """log p(action), float [*batch], for an action in (-1, 1).

        The action is clipped to +-(1 - 1e-6) before atanh so that actions at the bound (or
        rounded onto it) give a finite log-probability.
        """
        u = jnp.arctanh(jnp.clip(action, -_TANH_CLIP, _TANH_CLIP))
        return _gaussian_log_density(u, self.mean, self.log_std) - _tanh_log_det_jacobian(u)

    def mode(self) -> jax.Array:
        """tanh(mean), float [*batch, action_dim]."""
        return jnp.tanh(self.mean)
