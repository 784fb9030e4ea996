"""Tests for rlkit.ops.distributions against closed forms and scipy.stats."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from rlkit.ops.distributions import Categorical, DiagGaussian, TanhGaussian

LOGITS = np.array(
    [[[0.3, -1.2, 2.0, 0.5], [1.0, 1.0, 1.0, 1.0], [-3.0, 0.0, 4.0, -0.5]]], np.float32
)  # [1, 3, 4]: two batch dims
# True = allowed. Row 2 masks the largest logit, so the mask changes the mode.
MASK = np.array(
    [[[True, False, True, True], [False, True, True, False], [True, True, False, True]]]
)


def _renormalised_allowed(logits, mask):
    """Reference masked probabilities: softmax over the allowed entries only, 0 elsewhere."""
    exp = np.where(mask, np.exp(logits.astype(np.float64)), 0.0)
    return exp / exp.sum(-1, keepdims=True)


# ---------------------------------------------------------------- Categorical


def test_categorical_log_prob_probs_entropy_match_scipy():
    dist = Categorical(jnp.asarray(LOGITS))
    log_probs = special.log_softmax(LOGITS.astype(np.float64), axis=-1)
    actions = np.array([[2, 0, 3]])
    np.testing.assert_allclose(
        dist.log_prob(jnp.asarray(actions)),
        np.take_along_axis(log_probs, actions[..., None], -1)[..., 0],
        rtol=1e-6,
    )
    np.testing.assert_allclose(dist.probs(), np.exp(log_probs), rtol=1e-6)
    np.testing.assert_allclose(dist.entropy(), stats.entropy(np.exp(log_probs), axis=-1), rtol=1e-6)
    # The uniform row has entropy log 4.
    np.testing.assert_allclose(dist.entropy()[0, 1], np.log(4.0), rtol=1e-6)
    np.testing.assert_array_equal(dist.mode(), np.argmax(LOGITS, -1))


def test_categorical_all_allowed_mask_equals_no_mask():
    plain = Categorical(jnp.asarray(LOGITS))
    masked = Categorical(jnp.asarray(LOGITS), jnp.ones(LOGITS.shape, bool))
    np.testing.assert_allclose(masked.log_probs(), plain.log_probs(), rtol=1e-6)
    np.testing.assert_allclose(masked.entropy(), plain.entropy(), rtol=1e-6)


def test_masked_categorical_probs_log_prob_entropy_mode():
    dist = Categorical(jnp.asarray(LOGITS), jnp.asarray(MASK))
    expected = _renormalised_allowed(LOGITS, MASK)
    probs = np.asarray(dist.probs())
    assert np.all(probs[~MASK] == 0.0), "masked actions must have probability exactly 0"
    np.testing.assert_allclose(probs, expected, rtol=1e-6)
    allowed_actions = np.array([[3, 1, 0]])
    np.testing.assert_allclose(
        dist.log_prob(jnp.asarray(allowed_actions)),
        np.log(np.take_along_axis(expected, allowed_actions[..., None], -1)[..., 0]),
        rtol=1e-6,
    )
    entropy = np.asarray(dist.entropy())
    assert np.all(np.isfinite(entropy))
    np.testing.assert_allclose(entropy, stats.entropy(expected, axis=-1), rtol=1e-6)
    # Row 1 ties between allowed indices 1 and 2 (argmax takes the first); row 2's largest
    # logit (4.0 at index 2) is masked, so its mode is the best allowed action, index 1.
    np.testing.assert_array_equal(dist.mode(), [[2, 1, 1]])


def test_masked_actions_never_sampled():
    """100k draws: masked actions never appear; allowed frequencies match the renormalised
    probabilities within 5 standard errors."""
    num_samples = 100_000
    logits = np.array([2.0, 5.0, -1.0, 0.5, 1.0], np.float32)  # index 1 dominates, but is masked
    mask = np.array([True, False, True, True, False])
    dist = Categorical(
        jnp.broadcast_to(logits, (num_samples, 5)), jnp.broadcast_to(mask, (num_samples, 5))
    )
    samples = np.asarray(dist.sample(jax.random.key(0)))
    assert samples.shape == (num_samples,)
    counts = np.bincount(samples, minlength=5)
    assert counts[~mask].sum() == 0
    expected = _renormalised_allowed(logits, mask)
    standard_error = np.sqrt(expected * (1 - expected) / num_samples)
    assert np.all(np.abs(counts / num_samples - expected) <= 5 * standard_error + 1e-12)


def test_masked_categorical_gradients_are_finite_and_closed_form():
    """d log p(a) / d logit_j = 1[j = a] - p_j for allowed j, and 0 for masked j."""
    logits = jnp.asarray(LOGITS)
    mask = jnp.asarray(MASK)
    # Row 1 takes a masked action (index 0): its log-prob is very negative but finite.
    actions = jnp.array([[3, 0, 0]])

    def objective(logits_):
        dist = Categorical(logits_, mask)
        return jnp.sum(dist.log_prob(actions)) + jnp.sum(dist.entropy())

    assert np.all(np.isfinite(np.asarray(objective(logits))))
    grads = np.asarray(jax.grad(objective)(logits))
    assert np.all(np.isfinite(grads))
    assert np.all(grads[~MASK] == 0.0)

    grad_log_prob = np.asarray(
        jax.grad(lambda x: Categorical(x, mask).log_prob(actions)[0, 2])(logits)
    )
    expected = -_renormalised_allowed(LOGITS, MASK)[0, 2]
    expected[0] += 1.0
    np.testing.assert_allclose(grad_log_prob[0, 2], expected, rtol=1e-5, atol=1e-7)


def test_categorical_is_a_pytree():
    """Returned from jit and vmapped over like any pytree."""
    make = jax.jit(lambda x, m: Categorical(x, m))
    dist = make(jnp.asarray(LOGITS[0]), jnp.asarray(MASK[0]))
    assert isinstance(dist, Categorical)
    entropies = jax.vmap(lambda d: d.entropy())(dist)
    np.testing.assert_allclose(
        entropies, stats.entropy(_renormalised_allowed(LOGITS[0], MASK[0]), axis=-1), rtol=1e-6
    )


# ---------------------------------------------------------------- DiagGaussian

MEAN = np.array([[0.5, -1.0, 2.0], [0.0, 0.3, -0.7]], np.float32)  # [2, 3]
LOG_STD = np.array([-0.5, 0.0, 0.4], np.float32)  # [3]: state-independent, broadcast


def test_diag_gaussian_log_prob_and_entropy_match_scipy():
    dist = DiagGaussian(jnp.asarray(MEAN), jnp.asarray(LOG_STD))
    x = np.array([[0.1, 0.2, 0.3], [-1.5, 2.0, 0.0]], np.float32)
    std = np.exp(LOG_STD.astype(np.float64))
    np.testing.assert_allclose(
        dist.log_prob(jnp.asarray(x)), stats.norm.logpdf(x, MEAN, std).sum(-1), rtol=1e-6
    )
    entropy = np.asarray(dist.entropy())
    assert entropy.shape == (2,)
    np.testing.assert_allclose(entropy, np.broadcast_to(stats.norm.entropy(0, std).sum(), (2,)))
    np.testing.assert_array_equal(dist.mode(), MEAN)


def test_diag_gaussian_sample_moments():
    num_samples = 200_000
    dist = DiagGaussian(jnp.broadcast_to(MEAN[0], (num_samples, 3)), jnp.asarray(LOG_STD))
    samples = np.asarray(dist.sample(jax.random.key(1)))
    assert samples.shape == (num_samples, 3)
    std = np.exp(LOG_STD)
    # Standard error of the mean is std / sqrt(N); of the std, about std / sqrt(2N).
    np.testing.assert_array_less(np.abs(samples.mean(0) - MEAN[0]), 5 * std / np.sqrt(num_samples))
    np.testing.assert_array_less(np.abs(samples.std(0) - std), 5 * std / np.sqrt(2 * num_samples))


# ---------------------------------------------------------------- TanhGaussian


def _squashed_log_density(action, mean, std):
    """Change of variables computed directly in float64:
    log p(a) = log N(atanh a; mean, std) - log |d tanh(u)/du| = ... - log(1 - a^2)."""
    action = action.astype(np.float64)
    u = np.arctanh(action)
    return (stats.norm.logpdf(u, mean, std) - np.log(1.0 - action**2)).sum(-1)


def test_tanh_gaussian_log_prob_is_change_of_variables():
    dist = TanhGaussian(jnp.asarray(MEAN), jnp.asarray(LOG_STD))
    action = np.array([[0.1, -0.9, 0.99], [-0.5, 0.0, 0.7]], np.float32)
    np.testing.assert_allclose(
        dist.log_prob(jnp.asarray(action)),
        _squashed_log_density(action, MEAN, np.exp(LOG_STD.astype(np.float64))),
        rtol=1e-5,
    )
    np.testing.assert_allclose(dist.mode(), np.tanh(MEAN), rtol=1e-6)


def test_tanh_gaussian_log_prob_finite_at_the_bounds():
    dist = TanhGaussian(jnp.asarray(MEAN), jnp.asarray(LOG_STD))
    action = jnp.array([[1.0, -1.0, 1.0], [-1.0, 1.0, -1.0]])
    log_prob = dist.log_prob(action)
    assert np.all(np.isfinite(np.asarray(log_prob)))
    assert np.all(
        np.isfinite(
            np.asarray(jax.grad(lambda m: dist.replace(mean=m).log_prob(action).sum())(dist.mean))
        )
    )


def test_tanh_gaussian_sample_and_log_prob_consistent_with_log_prob():
    """For moderate pre-squash values (|u| < ~3, where float32 atanh is accurate) the log-prob
    returned with a sample equals log_prob of that action, with a batch of 1000 draws."""
    mean = jnp.broadcast_to(jnp.asarray(MEAN[0]) * 0.5, (1000, 3))
    dist = TanhGaussian(mean, jnp.asarray(LOG_STD) - 0.5)
    action, log_prob = dist.sample_and_log_prob(jax.random.key(2))
    assert action.shape == (1000, 3) and log_prob.shape == (1000,)
    assert np.all(np.abs(np.asarray(action)) < 1.0)
    np.testing.assert_allclose(log_prob, dist.log_prob(action), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        log_prob,
        _squashed_log_density(np.asarray(action), np.asarray(mean), np.exp(LOG_STD - 0.5)),
        rtol=1e-4,
        atol=1e-4,
    )


@pytest.mark.parametrize("offset", [0.0, 12.0, -12.0])
def test_tanh_gaussian_sample_log_prob_stable_when_saturated(offset):
    """Where tanh saturates (|u| ~ 12: 1 - tanh(u)^2 ~ 1e-10, below float32 resolution near 1)
    the log-prob must still match the change of variables in u-space, computed in float64 with
    log(1 - tanh(u)^2) = -2 log cosh(u). sample(key) is tanh of DiagGaussian.sample(key)."""
    mean = jnp.asarray(MEAN) + offset
    log_std = jnp.asarray(LOG_STD)
    key = jax.random.key(3)
    action, log_prob = TanhGaussian(mean, log_std).sample_and_log_prob(key)
    u = np.asarray(DiagGaussian(mean, log_std).sample(key), np.float64)
    np.testing.assert_allclose(action, np.tanh(u), rtol=1e-6)
    expected = (
        stats.norm.logpdf(u, np.asarray(mean), np.exp(LOG_STD.astype(np.float64)))
        + 2.0 * np.log(np.cosh(u))
    ).sum(-1)
    assert np.all(np.isfinite(np.asarray(log_prob)))
    np.testing.assert_allclose(log_prob, expected, rtol=1e-5)
