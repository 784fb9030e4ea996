"""Running mean and variance of a stream of batches, kept as a pure pytree.

Used by the observation-normalisation wrapper and by agents that normalise observations
inside the policy (as ML-Agents does, so that the normaliser travels with the parameters into
evaluation and export).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class RunningStats:
    """Mean and (population) variance of everything seen so far, per feature.

    mean, var: [*feature_shape]; count: scalar float (a small prior count keeps the first
    update well defined, as in SB3's VecNormalize).
    """

    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @classmethod
    def create(cls, feature_shape: tuple[int, ...]) -> RunningStats:
        return cls(
            mean=jnp.zeros(feature_shape, jnp.float32),
            var=jnp.ones(feature_shape, jnp.float32),
            count=jnp.asarray(1e-4, jnp.float32),
        )

    def update(self, batch: jax.Array) -> RunningStats:
        """Merge a batch [B, *feature_shape] (Chan et al.'s parallel mean/variance update).

        delta = mean_b - mean; n = count + B
        mean' = mean + delta * B / n
        var'  = (var * count + var_b * B + delta^2 * count * B / n) / n
        """
        batch = batch.reshape((-1, *self.mean.shape)).astype(jnp.float32)
        batch_count = batch.shape[0]
        batch_mean = batch.mean(axis=0)
        batch_var = batch.var(axis=0)
        delta = batch_mean - self.mean
        total = self.count + batch_count
        mean = self.mean + delta * batch_count / total
        m2 = (
            self.var * self.count
            + batch_var * batch_count
            + delta**2 * self.count * batch_count / total
        )
        return RunningStats(mean=mean, var=m2 / total, count=total)

    def normalize(self, x: jax.Array, clip: float = 10.0, eps: float = 1e-8) -> jax.Array:
        """(x - mean) / sqrt(var + eps), clipped to [-clip, clip]."""
        return jnp.clip((x - self.mean) / jnp.sqrt(self.var + eps), -clip, clip)
