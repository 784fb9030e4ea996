"""Exploration by action-value learners: epsilon-greedy over the allowed actions."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rlkit.ops.distributions import Categorical
from rlkit.ops.targets import masked_argmax

__all__ = ["epsilon_greedy"]


def epsilon_greedy(
    q: jax.Array, mask: jax.Array | None, epsilon: jax.Array | float, key: jax.Array
) -> jax.Array:
    """With probability epsilon an action uniform over the allowed ones, else the masked argmax.

    q [B, A], mask bool [B, A] (True = allowed) or None -> actions int32 [B].
    """
    explore_key, action_key = jax.random.split(key)
    uniform = Categorical(jnp.zeros_like(q), mask).sample(action_key)
    explore = jax.random.uniform(explore_key, q.shape[:-1]) < epsilon
    return jnp.where(explore, uniform, masked_argmax(q, mask)).astype(jnp.int32)
