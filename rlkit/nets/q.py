"""Value networks: Q(s, .) over discrete actions (optionally dueling), Q(s, a) for continuous
actions, a twin of either (SAC's clipped double Q), and a state value V(s) (SAC v1's value
network)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from rlkit.nets.layers import MLP, orthogonal

__all__ = ["ContinuousQ", "QNetwork", "StateValue", "TwinQ"]


def _dense(features: int) -> nn.Dense:
    return nn.Dense(features, kernel_init=orthogonal(1.0), bias_init=nn.initializers.zeros)


class QNetwork(nn.Module):
    """x [B, F] -> Q(s, .) [B, num_actions]: an MLP torso and a linear head, or with `dueling`
    the dueling head (Wang et al. 2016) Q(s, a) = V(s) + A(s, a) - mean_a' A(s, a')."""

    num_actions: int
    hidden: Sequence[int]
    activation: str = "relu"
    dueling: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        features = MLP(self.hidden, self.activation)(x)
        if not self.dueling:
            return _dense(self.num_actions)(features)
        value = _dense(1)(features)
        advantage = _dense(self.num_actions)(features)
        return value + advantage - advantage.mean(axis=-1, keepdims=True)


class ContinuousQ(nn.Module):
    """(x [B, F], a [B, d]) -> Q(s, a) [B]: an MLP on the concatenated input."""

    hidden: Sequence[int]
    activation: str = "relu"

    @nn.compact
    def __call__(self, x: jax.Array, action: jax.Array) -> jax.Array:
        features = MLP(self.hidden, self.activation)(jnp.concatenate([x, action], axis=-1))
        return _dense(1)(features)[..., 0]


class StateValue(nn.Module):
    """x [B, F] -> V(s) [B]: an MLP and a linear head."""

    hidden: Sequence[int]
    activation: str = "relu"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return _dense(1)(MLP(self.hidden, self.activation)(x))[..., 0]


class TwinQ(nn.Module):
    """Two independent critics evaluated together (a vmapped module): outputs gain a leading
    axis of 2, e.g. [2, B] or [2, B, A]. `critic` is a module class; both copies take
    `critic_kwargs` and the same inputs."""

    critic: type[nn.Module]
    critic_kwargs: dict[str, Any]

    @nn.compact
    def __call__(self, *inputs: jax.Array) -> jax.Array:
        twin = nn.vmap(
            self.critic,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=2,
        )
        return twin(**self.critic_kwargs)(*inputs)
