"""Observation and action spaces, shared with gymnax and convertible to and from gymnasium.

rlkit uses gymnax's jittable space classes as they are, so that a gymnax environment's spaces are
rlkit spaces without conversion. This module adds what rlkit needs on top: conversion both ways to
gymnasium spaces (for the gymnasium bridge and for users' tooling) and a few shape helpers the
networks use.
"""

from __future__ import annotations

import gymnasium
import jax.numpy as jnp
import numpy as np

from rlkit.core.gymnax_import import import_gymnax

_gymnax_spaces = import_gymnax().environments.spaces  # gymnax without seaborn (gymnax_import)
Box, Dict, Discrete = _gymnax_spaces.Box, _gymnax_spaces.Dict, _gymnax_spaces.Discrete
Space, Tuple = _gymnax_spaces.Space, _gymnax_spaces.Tuple

__all__ = [
    "Box",
    "Dict",
    "Discrete",
    "Space",
    "Tuple",
    "from_gymnasium",
    "is_discrete",
    "num_actions",
    "to_gymnasium",
]


def to_gymnasium(space: Space) -> gymnasium.spaces.Space:
    """Convert an rlkit (gymnax) space to the equivalent gymnasium space."""
    if isinstance(space, Discrete):
        return gymnasium.spaces.Discrete(space.n)
    if isinstance(space, Box):
        shape = tuple(space.shape)
        dtype = np.dtype(space.dtype)
        low = np.broadcast_to(np.asarray(space.low, dtype=dtype), shape)
        high = np.broadcast_to(np.asarray(space.high, dtype=dtype), shape)
        return gymnasium.spaces.Box(low=low, high=high, shape=shape, dtype=dtype)
    if isinstance(space, Dict):
        return gymnasium.spaces.Dict({k: to_gymnasium(v) for k, v in space.spaces.items()})
    if isinstance(space, Tuple):
        return gymnasium.spaces.Tuple(tuple(to_gymnasium(s) for s in space.spaces))
    raise TypeError(f"cannot convert {type(space).__name__} to a gymnasium space")


def from_gymnasium(space: gymnasium.spaces.Space) -> Space:
    """Convert a gymnasium space to the equivalent rlkit (gymnax) space."""
    if isinstance(space, gymnasium.spaces.Discrete):
        if int(space.start) != 0:
            raise ValueError(f"Discrete spaces must start at 0, got start={space.start}")
        return Discrete(int(space.n))
    if isinstance(space, gymnasium.spaces.Box):
        return Box(
            low=jnp.asarray(space.low),
            high=jnp.asarray(space.high),
            shape=tuple(space.shape),
            dtype=space.dtype,
        )
    if isinstance(space, gymnasium.spaces.Dict):
        return Dict({k: from_gymnasium(v) for k, v in space.spaces.items()})
    if isinstance(space, gymnasium.spaces.Tuple):
        return Tuple([from_gymnasium(s) for s in space.spaces])
    raise TypeError(f"cannot convert gymnasium {type(space).__name__} to an rlkit space")


def is_discrete(space: Space) -> bool:
    """True for a single categorical action space."""
    return isinstance(space, Discrete)


def num_actions(space: Space) -> int:
    """Number of categories of a Discrete space, or the flat size of a Box (continuous actions)."""
    if isinstance(space, Discrete):
        return int(space.n)
    if isinstance(space, Box):
        return int(np.prod(space.shape))
    raise TypeError(f"unsupported action space {type(space).__name__}")
