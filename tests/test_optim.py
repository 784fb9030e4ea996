"""Gradient steps with traced learning rates: global norm, clipping and Adam against optax."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rlkit.ops.optim import apply_gradients, global_norm, make_optimiser


def _tree(key: jax.Array) -> dict:
    k1, k2, k3 = jax.random.split(key, 3)
    return {
        "dense": {"kernel": jax.random.normal(k1, (4, 3)), "bias": jax.random.normal(k2, (3,))},
        "scale": jax.random.normal(k3, ()),
    }


def test_global_norm_is_the_norm_of_all_leaves_together():
    tree = _tree(jax.random.PRNGKey(0))
    flat = np.concatenate([np.ravel(np.asarray(x)) for x in jax.tree.leaves(tree)])
    np.testing.assert_allclose(global_norm(tree), np.linalg.norm(flat), rtol=1e-6)
    np.testing.assert_allclose(global_norm(jnp.array([3.0, 4.0])), 5.0, rtol=1e-6)


def test_clipping_rescales_to_the_threshold_and_leaves_small_gradients_alone():
    params = jax.tree.map(jnp.zeros_like, _tree(jax.random.PRNGKey(1)))
    grads = _tree(jax.random.PRNGKey(2))
    norm = float(global_norm(grads))
    sgd = make_optimiser("sgd")
    for threshold, expected_scale in [(norm / 4, 0.25), (norm * 2, 1.0), (0.0, 1.0)]:
        new, _, reported = apply_gradients(sgd, params, grads, sgd.init(params), 1.0, threshold)
        np.testing.assert_allclose(reported, norm, rtol=1e-6)
        for p, g in zip(jax.tree.leaves(new), jax.tree.leaves(grads), strict=True):
            np.testing.assert_allclose(p, -expected_scale * g, rtol=1e-4, atol=1e-7)


def test_adam_steps_match_optax_adam_with_the_same_learning_rate():
    params = _tree(jax.random.PRNGKey(3))
    tx = make_optimiser("adam", eps=1e-5)
    reference = optax.adam(3e-4, eps=1e-5)
    state, ref_state, ref_params = tx.init(params), reference.init(params), params
    for i in range(3):
        grads = _tree(jax.random.PRNGKey(10 + i))
        params, state, _ = apply_gradients(tx, params, grads, state, 3e-4)
        updates, ref_state = reference.update(grads, ref_state, ref_params)
        ref_params = optax.apply_updates(ref_params, updates)
    for p, r in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params), strict=True):
        np.testing.assert_allclose(p, r, rtol=1e-5, atol=1e-7)
