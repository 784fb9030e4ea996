"""TD targets of the value-based learners, as pure functions of arrays.

Shapes: B windows (or transitions), n steps per window, A discrete actions. Masks are bool with
True = allowed. A target bootstraps from the next observation s' unless the step terminated: a
time-limit truncation bootstraps from the pre-reset observation the episode was cut in.

    Q-learning (DQN):   V'(s') = max_{a allowed} Q_target(s', a)
    Double Q-learning:  V'(s') = Q_target(s', argmax_{a allowed} Q_online(s', a))
    soft (SAC):         V'(s') = min_k Q_target_k(s', a') - alpha log pi(a'|s'),  a' ~ pi
                        V'(s') = sum_a' pi(a'|s') [min_k Q_target_k(s', a') - alpha log pi(a'|s')]
    n-step window:      y = sum_{k<m} gamma^k r_k + gamma^m (1 - term_{m-1}) V'(s'_{m-1})

where the window stops after m <= n steps at its first episode end.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rlkit.ops.returns import n_step_targets

__all__ = [
    "bootstrap_index",
    "expected_soft_value",
    "masked_argmax",
    "masked_max",
    "one_step_target",
    "q_learning_value",
    "sampled_soft_value",
    "window_targets",
]

Numeric = jax.Array | float


def _masked(q: jax.Array, mask: jax.Array | None) -> jax.Array:
    # The smallest finite float, not -inf, so that 0 * (a fully masked row) cannot make a NaN.
    return q if mask is None else jnp.where(mask, q, jnp.finfo(q.dtype).min)


def masked_argmax(q: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """argmax over allowed actions: q [..., A], mask [..., A] or None -> int [...]."""
    return jnp.argmax(_masked(q, mask), axis=-1)


def masked_max(q: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """max over allowed actions: q [..., A], mask [..., A] or None -> [...]."""
    return jnp.max(_masked(q, mask), axis=-1)


def q_learning_value(
    q_next_target: jax.Array,
    q_next_online: jax.Array | None = None,
    next_mask: jax.Array | None = None,
) -> jax.Array:
    """V'(s') [B] from action values at the bootstrap observations [B, A]: the Q-learning
    max of the target network, or, given the online network's values (Double DQN, van Hasselt
    et al. 2016), the target network's value of the online network's greedy action."""
    if q_next_online is None:
        return masked_max(q_next_target, next_mask)
    greedy = masked_argmax(q_next_online, next_mask)
    return jnp.take_along_axis(q_next_target, greedy[:, None], axis=1)[:, 0]


def bootstrap_index(terminated: jax.Array, truncated: jax.Array) -> jax.Array:
    """Where each window's target bootstraps: its first episode end, else its last step.

    terminated, truncated: bool [B, n] -> int [B] in [0, n). (At a terminal step the bootstrap
    value is multiplied by 0; the index only says which next observation to evaluate.)
    """
    ends = (terminated | truncated).at[:, -1].set(True)
    return jnp.argmax(ends, axis=1)


def window_targets(
    rewards: jax.Array,
    bootstrap: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: Numeric,
) -> jax.Array:
    """n-step targets y [B] of windows rewards/terminated/truncated [B, n]:

        y = sum_{k<m} gamma^k r_k + gamma^m (1 - term_{m-1}) bootstrap,

    m - 1 = bootstrap_index (the first episode end, else n - 1). `bootstrap` [B] is V'(s'_{m-1}).
    """
    n = rewards.shape[1]
    next_values = jnp.broadcast_to(bootstrap[None, :], (n, bootstrap.shape[0]))
    return n_step_targets(rewards.T, next_values, terminated.T, truncated.T, gamma, n)[0]


def one_step_target(
    reward: jax.Array, terminated: jax.Array, next_value: jax.Array, gamma: Numeric
) -> jax.Array:
    """y = r + gamma (1 - terminated) V'(s'): [B]. Truncated steps bootstrap (terminated = 0)."""
    return reward + gamma * (1.0 - terminated.astype(reward.dtype)) * next_value


def sampled_soft_value(q_min: jax.Array, log_prob: jax.Array, alpha: Numeric) -> jax.Array:
    """V(s) = min_k Q_k(s, a) - alpha log pi(a|s) for one sampled a ~ pi: [B] -> [B]."""
    return q_min - alpha * log_prob


def expected_soft_value(
    probs: jax.Array, log_probs: jax.Array, q_min: jax.Array, alpha: Numeric
) -> jax.Array:
    """V(s) = sum_a pi(a|s) (min_k Q_k(s, a) - alpha log pi(a|s)): [B, A] -> [B].

    Actions with probability 0 (masked) contribute 0 whatever their Q or log-probability (their
    log-probability is replaced by 0 first, so no 0 * inf appears in values or gradients).
    """
    safe_log_probs = jnp.where(probs > 0, log_probs, 0.0)
    return jnp.sum(probs * (q_min - alpha * safe_log_probs), axis=-1)
