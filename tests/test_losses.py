"""Tests for the on-policy terms of rlkit.ops.losses: hand-computed numbers (derivations beside
them) and rlax 0.1.9 as an independent reference where it has the function.

The batch used throughout has B = 4 samples:

    ratio rho = pi / pi_old   0.5   1.0   1.5   2.0      (log_ratio = log rho)
    advantage A               2     0     3    -1       (mean 1, population std sqrt(2.5))
    clip epsilon              0.2
"""

import jax
import jax.numpy as jnp
import numpy as np
import rlax

from rlkit.ops.losses import (
    approx_kl,
    clipped_surrogate_loss,
    policy_gradient_loss,
    standardize,
    value_loss,
)

RATIO = np.array([0.5, 1.0, 1.5, 2.0], np.float32)
LOG_RATIO = np.log(RATIO)
ADV = np.array([2.0, 0.0, 3.0, -1.0], np.float32)
EPS = 0.2


def test_standardize_gives_zero_mean_and_unit_population_std():
    # mean 3, population std sqrt(((-2)^2 + 1 + 0 + 1 + 2^2) / 5) = sqrt(2).
    np.testing.assert_allclose(
        standardize(jnp.arange(1.0, 6.0)), np.array([-2, -1, 0, 1, 2]) / np.sqrt(2), rtol=1e-6
    )
    # A constant batch has std 0: eps keeps the result finite (all zeros).
    np.testing.assert_array_equal(standardize(jnp.full((3,), 7.0)), 0.0)


def test_clipped_surrogate_takes_the_pessimistic_term_of_each_sample():
    # rho A                  = [1.0, 0, 4.5, -2.0]
    # clip(rho, 0.8, 1.2) A  = [1.6, 0, 3.6, -1.2]
    # min                    = [1.0, 0, 3.6, -2.0]: sum 2.6, mean 0.65, loss -0.65
    loss = clipped_surrogate_loss(jnp.asarray(LOG_RATIO), jnp.asarray(ADV), EPS)
    np.testing.assert_allclose(loss, -0.65, rtol=1e-6)
    reference = rlax.clipped_surrogate_pg_loss(jnp.asarray(RATIO), jnp.asarray(ADV), EPS)
    np.testing.assert_allclose(loss, reference, rtol=1e-6)


def test_unclipped_surrogate_is_the_plain_importance_weighted_advantage():
    # -mean(rho A) = -(1 + 0 + 4.5 - 2) / 4 = -0.875
    loss = clipped_surrogate_loss(jnp.asarray(LOG_RATIO), jnp.asarray(ADV), EPS, clip=False)
    np.testing.assert_allclose(loss, -0.875, rtol=1e-6)


def test_clipped_samples_pass_no_gradient():
    # d/dlog_rho of -(1/B) rho A is -(1/B) rho A where the unclipped term is the minimum, and 0
    # where the clipped (constant) one is: sample 2 (rho 1.5 > 1.2 with A > 0). Sample 3 (rho 2,
    # A < 0) keeps its gradient: clipping bounds only the improvement, not the penalty.
    grad = jax.grad(clipped_surrogate_loss)(jnp.asarray(LOG_RATIO), jnp.asarray(ADV), EPS)
    np.testing.assert_allclose(grad, [-1.0 / 4, 0.0, 0.0, 2.0 / 4], rtol=1e-6)


def test_policy_gradient_loss_matches_hand_numbers_and_rlax():
    # Two actions, pi(a = 1) = [0.5, 0.25, 0.75, 0.5]; weights A:
    # -mean(log pi A) = -(2 log .5 + 0 + 3 log .75 - log .5) / 4 = -(log .5 + 3 log .75) / 4
    p = np.array([0.5, 0.25, 0.75, 0.5], np.float32)
    logits = jnp.log(jnp.stack([1 - p, p], axis=1))
    log_prob = jax.nn.log_softmax(logits)[:, 1]
    expected = -(np.log(0.5) + 3 * np.log(0.75)) / 4  # 0.38906
    loss = policy_gradient_loss(log_prob, jnp.asarray(ADV))
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    actions = jnp.ones(4, jnp.int32)
    reference = rlax.policy_gradient_loss(logits, actions, jnp.asarray(ADV), jnp.ones(4))
    np.testing.assert_allclose(loss, reference, rtol=1e-6)


VALUES = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
TARGETS = np.array([2.0, 2.0, 0.0, 5.0], np.float32)
OLD_VALUES = np.array([1.5, 1.0, 3.5, 3.9], np.float32)


def test_value_loss_is_half_the_mean_squared_error():
    # (V - G)^2 = [1, 0, 9, 1]: 0.5 * 11 / 4 = 1.375
    loss = value_loss(jnp.asarray(VALUES), jnp.asarray(TARGETS))
    np.testing.assert_allclose(loss, 1.375, rtol=1e-6)
    np.testing.assert_allclose(loss, rlax.l2_loss(VALUES, TARGETS).mean(), rtol=1e-6)


def test_clipped_value_loss_takes_the_larger_error_around_the_old_values():
    # V - V_old = [-0.5, 1.0, -0.5, 0.1] -> clip to +-0.2: [-0.2, 0.2, -0.2, 0.1]
    # V_clip = V_old + that = [1.3, 1.2, 3.3, 4.0]; (V_clip - G)^2 = [0.49, 0.64, 10.89, 1.0]
    # max with (V - G)^2 = [1, 0, 9, 1]: [1, 0.64, 10.89, 1] -> 0.5 * 13.53 / 4 = 1.69125
    loss = value_loss(jnp.asarray(VALUES), jnp.asarray(TARGETS), jnp.asarray(OLD_VALUES), EPS)
    np.testing.assert_allclose(loss, 1.69125, rtol=1e-6)


def test_approx_kl_is_zero_for_equal_policies_and_matches_hand_numbers():
    # (rho - 1) - log rho at rho = 0.5 and 2: (-0.5 + log 2) + (1 - log 2) = 0.5, mean 0.25.
    np.testing.assert_allclose(approx_kl(jnp.log(jnp.array([0.5, 2.0]))), 0.25, rtol=1e-6)
    np.testing.assert_array_equal(approx_kl(jnp.zeros(3)), 0.0)
