"""Losses as pure functions of arrays, the terms the agents' objectives are built from.

Shapes: B a batch of samples, K critics, A discrete actions. Every loss is a mean over the batch
(a scalar), so a minibatch's loss does not grow with its size. Constants (advantages, returns,
TD targets, old log-probabilities) are the caller's to stop gradients on.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = [
    "approx_kl",
    "clipped_surrogate_loss",
    "critic_loss",
    "expected_actor_loss",
    "policy_gradient_loss",
    "sampled_actor_loss",
    "standardize",
    "td_loss",
    "temperature_loss",
    "value_loss",
]

Numeric = jax.Array | float


def standardize(x: jax.Array, eps: float = 1e-8) -> jax.Array:
    """(x - mean x) / (std x + eps) over the batch [B] (advantage normalisation)."""
    return (x - x.mean()) / (x.std() + eps)


def policy_gradient_loss(log_prob: jax.Array, weights: jax.Array) -> jax.Array:
    """-mean_b log pi(a_b|s_b) w_b: [B], [B] -> []. REINFORCE (w = G - b) and A2C (w = A)."""
    return -jnp.mean(log_prob * weights)


def clipped_surrogate_loss(
    log_ratio: jax.Array, advantages: jax.Array, clip_eps: Numeric, clip: bool = True
) -> jax.Array:
    """PPO's policy loss (Schulman et al. 2017, eq. 7), [B] -> []:

        -mean_b min(rho_b A_b, clip(rho_b, 1 - eps, 1 + eps) A_b),   rho = exp(log_ratio),

    and with `clip=False` the unclipped surrogate -mean_b rho_b A_b (its gradient at rho = 1 is
    the policy gradient)."""
    ratio = jnp.exp(log_ratio)
    surrogate = ratio * advantages
    if clip:
        clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
        surrogate = jnp.minimum(surrogate, clipped)
    return -jnp.mean(surrogate)


def approx_kl(log_ratio: jax.Array) -> jax.Array:
    """mean_b [(rho_b - 1) - log rho_b], [B] -> [], rho = exp(log_ratio) = pi_new / pi_old on
    actions sampled from pi_old: an unbiased, non-negative estimate of KL(pi_old || pi_new)
    (Schulman's "k3"; CleanRL's approx_kl). 0 when the policies agree."""
    return jnp.mean(jnp.expm1(log_ratio) - log_ratio)


def value_loss(
    values: jax.Array,
    targets: jax.Array,
    old_values: jax.Array | None = None,
    clip_eps: Numeric = 0.0,
) -> jax.Array:
    """0.5 mean_b (V_b - G_b)^2, [B] -> []; with `old_values` the clipped form of PPO's
    implementations (Huang et al. 2022, detail 9):

        0.5 mean_b max((V_b - G_b)^2, (V_old_b + clip(V_b - V_old_b, -eps, eps) - G_b)^2)."""
    error = (values - targets) ** 2
    if old_values is not None:
        clipped = old_values + jnp.clip(values - old_values, -clip_eps, clip_eps)
        error = jnp.maximum(error, (clipped - targets) ** 2)
    return 0.5 * jnp.mean(error)


def td_loss(
    td_errors: jax.Array, weights: jax.Array, kind: str = "mse", huber_delta: Numeric = 1.0
) -> jax.Array:
    """mean_b w_b l(td_b), [B] -> [], with l(x) = 0.5 x^2 ("mse") or Huber ("huber"):
    0.5 x^2 where |x| <= d, else d (|x| - d / 2)."""
    if kind == "mse":
        per_sample = 0.5 * td_errors**2
    elif kind == "huber":
        abs_error = jnp.abs(td_errors)
        quadratic = jnp.minimum(abs_error, huber_delta)
        per_sample = 0.5 * quadratic**2 + huber_delta * (abs_error - quadratic)
    else:
        raise ValueError(f"td loss must be 'mse' or 'huber', got {kind!r}")
    return jnp.mean(weights * per_sample)


def critic_loss(q_values: jax.Array, targets: jax.Array) -> jax.Array:
    """1/2 sum_k mean_b (Q_k(s_b, a_b) - y_b)^2 over critics [K, B] and targets [B] (SB3's SAC)."""
    return 0.5 * jnp.sum(jnp.mean((q_values - targets) ** 2, axis=-1))


def sampled_actor_loss(log_prob: jax.Array, q_min: jax.Array, alpha: Numeric) -> jax.Array:
    """SAC's actor loss with a reparameterised sample a_b ~ pi(.|s_b), [B] -> []:
    mean_b [alpha log pi(a_b|s_b) - min_k Q_k(s_b, a_b)]."""
    return jnp.mean(alpha * log_prob - q_min)


def expected_actor_loss(
    probs: jax.Array, log_probs: jax.Array, q_min: jax.Array, alpha: Numeric
) -> jax.Array:
    """Discrete SAC's actor loss, the expectation over all actions, [B, A] -> []:
    mean_b sum_a pi(a|s_b) (alpha log pi(a|s_b) - min_k Q_k(s_b, a)). Masked actions
    (probability 0) contribute 0."""
    safe_log_probs = jnp.where(probs > 0, log_probs, 0.0)
    return jnp.mean(jnp.sum(probs * (alpha * safe_log_probs - q_min), axis=-1))


def temperature_loss(
    log_alpha: jax.Array, entropy: jax.Array, target_entropy: Numeric
) -> jax.Array:
    """SAC's temperature loss log(alpha) mean_b (H_b - H_target), [B] -> [].

    Its gradient lowers alpha while the policy's entropy is above the target and raises it
    below. The entropy is -log pi(a~|s) of a sample (continuous) or the exact entropy
    (discrete); gradients do not flow into it. This is the log-alpha form of SB3 and ML-Agents
    (-log_alpha * (log pi + H_target)); Haarnoja et al. write it with alpha itself.
    """
    return log_alpha * jnp.mean(jax.lax.stop_gradient(entropy) - target_entropy)
