"""PRNG keys that compile fast on XLA's CPU backend, for programs with many random draws."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["fast_compiling_key"]


def fast_compiling_key(key: jax.Array, impl: str = "unsafe_rbg") -> jax.Array:
    """A PRNG key of implementation `impl` (XLA's RngBitGenerator) seeded from `key`'s bits.

    Why: a search draws random numbers at many sites (mctx's tie-breaking noise, Gumbel and
    Dirichlet noise, the leaf rollouts, the environment's own step), and every site of JAX's
    default threefry (partitionable) is a large unrolled hash that XLA's CPU backend takes
    seconds to compile (4.6 s for one `jax.random.uniform` on the 2-core CI machine, 0.5 s with
    rbg). The numbers are as random; they are a different stream from threefry's, so a search is
    reproducible from its key but not equal to one drawn with threefry keys. Remove when
    threefry compiles as fast (or rlkit's default PRNG changes).
    """
    data = jax.random.key_data(key).reshape(-1)[:2].astype(jnp.uint32)
    return jax.random.wrap_key_data(
        jnp.concatenate([data, data ^ jnp.uint32(0x9E3779B9)]), impl=impl
    )
