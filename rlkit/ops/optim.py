"""Gradient steps whose learning rate and clipping threshold are traced values.

optax's optimisers bake the learning rate in when they are built; rlkit sweeps learning rates
with vmap, so the learning rate (and the max gradient norm) are arguments of the step instead:

    g' = g * min(1, max_grad_norm / ||g||)        (global-norm clipping, skipped if <= 0)
    u, opt_state' = scale_by_<optimiser>(g', opt_state)
    params' = params - learning_rate * u
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

__all__ = ["OPTIMISERS", "apply_gradients", "global_norm", "make_optimiser"]

OPTIMISERS = ("adam", "rmsprop", "sgd")


def make_optimiser(
    name: str, eps: float = 1e-8, decay: float = 0.99
) -> optax.GradientTransformation:
    """The update direction of an optimiser, without its learning rate.

    adam: Adam's scaled moments (eps as in the reference: 1e-5 for PPO/A2C in CleanRL/SB3).
    rmsprop: RMSprop, decay 0.99, eps inside the square root as in TF (the squared-gradient
        average starts at 0, so it is not exactly SB3's RMSpropTFLike, which starts it at 1).
    sgd: the gradient itself.
    """
    if name == "adam":
        return optax.scale_by_adam(eps=eps)
    if name == "rmsprop":
        return optax.scale_by_rms(decay=decay, eps=eps, eps_in_sqrt=True)
    if name == "sgd":
        return optax.identity()
    raise ValueError(f"optimiser must be one of {list(OPTIMISERS)}, got {name!r}")


def apply_gradients(
    tx: optax.GradientTransformation,
    params: Any,
    grads: Any,
    opt_state: Any,
    learning_rate: jax.Array | float,
    max_grad_norm: jax.Array | float = 0.0,
) -> tuple[Any, Any, jax.Array]:
    """One descent step; returns (params, opt_state, pre-clipping global gradient norm)."""
    grad_norm = global_norm(grads)
    scale = jnp.where(max_grad_norm > 0, jnp.minimum(1.0, max_grad_norm / (grad_norm + 1e-6)), 1.0)
    grads = jax.tree.map(lambda g: g * scale, grads)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = jax.tree.map(lambda p, u: p - learning_rate * u, params, updates)
    return params, opt_state, grad_norm


def global_norm(tree: Any) -> jax.Array:
    """sqrt(sum of squares of every leaf), computed on the leaves concatenated: one reduction
    instead of one per leaf (on CPU each small reduction is a kernel launch of its own)."""
    leaves = [jnp.ravel(x) for x in jax.tree.leaves(tree)]
    flat = leaves[0] if len(leaves) == 1 else jnp.concatenate(leaves)
    return jnp.sqrt(jnp.sum(jnp.square(flat)))
