"""Flax building blocks shared by every network: MLP torsos, policy and value heads.

Initialisation follows the reference implementations (CleanRL, PureJaxRL, SB3): orthogonal
weights with gain sqrt(2) in hidden layers, 0.01 for policy outputs, 1.0 for value outputs,
zero biases. Observations may be arrays or dicts of arrays (they are flattened and
concatenated in key order; image encoders will plug in here).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from rlkit.ops.running_stats import RunningStats

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "CategoricalHead",
    "GaussianHead",
    "PolicyParams",
    "ValueHead",
    "flatten_obs",
    "normalized_input",
]

# The names config fields offer (rlkit.core.fields.ACTIVATIONS; a test keeps the two equal).
ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu, "gelu": nn.gelu, "swish": nn.swish}


def flatten_obs(obs: Any, batch_ndim: int = 1) -> jax.Array:
    """Concatenate an observation pytree into [*batch, features] float32."""
    leaves = jax.tree.leaves(obs)
    flat = [x.reshape((*x.shape[:batch_ndim], -1)).astype(jnp.float32) for x in leaves]
    return flat[0] if len(flat) == 1 else jnp.concatenate(flat, axis=-1)


@struct.dataclass
class PolicyParams:
    """What `act` needs: network weights and the observation statistics (if normalising)."""

    params: Any
    obs_stats: RunningStats
    normalize: bool = struct.field(pytree_node=False, default=False)


def normalized_input(policy: PolicyParams, obs: Any) -> jax.Array:
    """Flatten observations [B, ...] to [B, F], normalised when the policy normalises."""
    x = flatten_obs(obs)
    return policy.obs_stats.normalize(x) if policy.normalize else x


def orthogonal(scale: float) -> nn.initializers.Initializer:
    return nn.initializers.orthogonal(scale)


class MLP(nn.Module):
    """Dense layers with an activation after each: [..., in] -> [..., hidden[-1]]."""

    hidden: Sequence[int]
    activation: str = "tanh"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        for width in self.hidden:
            x = act(
                nn.Dense(
                    width, kernel_init=orthogonal(np.sqrt(2)), bias_init=nn.initializers.zeros
                )(x)
            )
        return x


class CategoricalHead(nn.Module):
    """Logits [..., num_actions] from features."""

    num_actions: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return nn.Dense(
            self.num_actions, kernel_init=orthogonal(0.01), bias_init=nn.initializers.zeros
        )(x)


class GaussianHead(nn.Module):
    """Mean [..., action_dim] from features and a state-independent log-std [action_dim]."""

    action_dim: int
    init_log_std: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        mean = nn.Dense(
            self.action_dim, kernel_init=orthogonal(0.01), bias_init=nn.initializers.zeros
        )(x)
        log_std = self.param(
            "log_std", nn.initializers.constant(self.init_log_std), (self.action_dim,)
        )
        return mean, jnp.broadcast_to(log_std, mean.shape)


class ValueHead(nn.Module):
    """A scalar per input: [..., features] -> [...]."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return nn.Dense(1, kernel_init=orthogonal(1.0), bias_init=nn.initializers.zeros)(x)[..., 0]
