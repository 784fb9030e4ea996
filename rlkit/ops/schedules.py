"""Schedules of traced values over training: the one linear ramp every agent anneals with.

DQN's exploration epsilon, prioritised replay's importance exponent beta, and the on-policy
agents' learning-rate, clip-epsilon and entropy-coefficient annealing are all

    value(p) = start + (end - start) * clip(p, 0, 1),

with p the progress towards the ramp's end (steps done / steps the ramp lasts).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["linear", "progress"]

Numeric = jax.Array | float | int


def progress(done: Numeric, horizon: Numeric) -> jax.Array:
    """done / horizon clipped to [0, 1], as float32 (horizon > 0)."""
    return jnp.clip(jnp.asarray(done, jnp.float32) / horizon, 0.0, 1.0)


def linear(start: Numeric, end: Numeric, fraction: Numeric) -> jax.Array:
    """start at fraction 0, end from fraction 1 on, linear between; fraction is clipped to
    [0, 1] (pass `progress(done, horizon)` or any ratio)."""
    fraction = jnp.clip(jnp.asarray(fraction, jnp.float32), 0.0, 1.0)
    return start + (end - start) * fraction
