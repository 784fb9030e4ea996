"""Stand-alone actors of the off-policy agents: a tanh-squashed Gaussian for Box actions and a
categorical actor for Discrete ones (SAC). Output layers start small (orthogonal gain 0.01),
so the first policy is close to uniform."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from rlkit.nets.layers import MLP, orthogonal

__all__ = ["LOG_STD_MAX", "LOG_STD_MIN", "CategoricalActor", "SquashedGaussianActor"]

# Hard clip of the actor's log-std (SB3 sac/policies.py; ML-Agents torch/distributions.py clamps
# its conditional log-sigma to the same range).
LOG_STD_MIN = -20.0
LOG_STD_MAX = 2.0


class SquashedGaussianActor(nn.Module):
    """x [B, F] -> (mean [B, d], log_std [B, d]) of a tanh-Gaussian; both are outputs of the
    network, log_std clipped to [LOG_STD_MIN, LOG_STD_MAX]."""

    action_dim: int
    hidden: Sequence[int]
    activation: str = "relu"

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        features = MLP(self.hidden, self.activation)(x)
        out = nn.Dense(2 * self.action_dim, kernel_init=orthogonal(0.01))(features)
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


class CategoricalActor(nn.Module):
    """x [B, F] -> logits [B, num_actions]."""

    num_actions: int
    hidden: Sequence[int]
    activation: str = "relu"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        features = MLP(self.hidden, self.activation)(x)
        return nn.Dense(self.num_actions, kernel_init=orthogonal(0.01))(features)
