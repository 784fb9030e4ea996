"""Truncation-aware return estimators over time-major rollouts.

Every function takes arrays of shape ``[T, *batch]`` (time first, then any batch dims such as
``[T, num_envs]``) and runs a reverse ``lax.scan`` over the time axis.

Indexing convention, for step ``t`` of a rollout (the same for every function):

- ``rewards[t]``      r_t, the reward received after taking action a_t in state s_t.
- ``values[t]``       V(s_t).
- ``next_values[t]``  V(s'_t), the value of the true next state: the pre-reset observation when
  the episode ended at t (environments auto-reset; the rollout keeps that observation),
  otherwise s_{t+1}.
- ``terminated[t]``   s'_t is a real terminal state: nothing is bootstrapped from it.
- ``truncated[t]``    the episode was cut by a time limit at t: bootstrap from ``next_values[t]``,
  but do not continue into the next episode's rewards.
- the last step ``t = T-1`` is always a cut of the rollout: it bootstraps from
  ``next_values[T-1]`` unless terminated.

Below, ``term_t``, ``trunc_t`` are 0/1, ``cut_t = trunc_t or t == T-1`` and
``done_t = term_t or trunc_t``. ``gamma`` and ``lambda_`` are scalars and may be traced (vmapped
over in sweeps); ``n`` of ``n_step_targets`` is a static Python int. Functions do not stop
gradients: wrap the result in ``jax.lax.stop_gradient`` where a target should be constant.
"""

import chex
import jax
import jax.numpy as jnp
from jax import lax

Numeric = float | jax.Array


def _as_steps(*arrays: jax.Array) -> tuple[jax.Array, ...]:
    """Per-step inputs as jax arrays sharing one shape ``[T, *batch]`` with ``T >= 1``."""
    arrays = tuple(jnp.asarray(x) for x in arrays)
    chex.assert_equal_shape(arrays)
    if arrays[0].ndim < 1 or arrays[0].shape[0] < 1:
        raise ValueError(
            f"expected time-major arrays [T, *batch] with T >= 1, got {arrays[0].shape}"
        )
    return arrays


def _check_scalars(**scalars: Numeric) -> None:
    for name, value in scalars.items():
        if jnp.ndim(value) != 0:
            raise ValueError(f"{name} must be a scalar, got shape {jnp.shape(value)}")


def _float_dtype(*arrays: jax.Array) -> jnp.dtype:
    dtype = jnp.result_type(*arrays)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"rewards and values must be floating point, got {dtype}")
    return dtype


def _discounts(gamma: Numeric, terminated: jax.Array, dtype: jnp.dtype) -> jax.Array:
    """gamma * (1 - term_t), shape [T, *batch]."""
    return jnp.where(terminated.astype(bool), 0.0, gamma).astype(dtype)


def _cuts(truncated: jax.Array) -> jax.Array:
    """cut_t = trunc_t or t == T-1, as bool [T, *batch]."""
    return truncated.astype(bool).at[-1].set(True)


def discounted_returns(
    rewards: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: Numeric,
) -> jax.Array:
    """Discounted returns, bootstrapped at truncations and at the end of the rollout.

        G_t = r_t + gamma (1 - term_t) [ cut_t ? next_values_t : G_{t+1} ]

    With ``next_values = 0`` this is the Monte-Carlo return of REINFORCE without a critic.

    Args:
      rewards: r_t, float [T, *batch].
      next_values: V(s'_t), float [T, *batch]; only read where cut_t.
      terminated: term_t, bool or 0/1 [T, *batch].
      truncated: trunc_t, bool or 0/1 [T, *batch].
      gamma: discount, scalar (may be traced).

    Returns:
      G_t, float [T, *batch].
    """
    rewards, next_values, terminated, truncated = _as_steps(
        rewards, next_values, terminated, truncated
    )
    _check_scalars(gamma=gamma)
    dtype = _float_dtype(rewards, next_values)
    rewards, next_values = rewards.astype(dtype), next_values.astype(dtype)

    def step(next_return, xs):
        reward, discount, next_value, cut = xs
        ret = reward + discount * jnp.where(cut, next_value, next_return)
        return ret, ret

    # The initial carry is never read: the last step is always a cut.
    xs = (rewards, _discounts(gamma, terminated, dtype), next_values, _cuts(truncated))
    _, returns = lax.scan(step, jnp.zeros_like(rewards[0]), xs, reverse=True)
    return returns


def gae(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: Numeric,
    lambda_: Numeric,
) -> tuple[jax.Array, jax.Array]:
    """Generalised advantage estimation (Schulman et al. 2016), truncation-aware.

        delta_t = r_t + gamma (1 - term_t) next_values_t - values_t
        A_t     = delta_t + gamma lambda (1 - done_t) A_{t+1},    A_T = 0
        targets = A + values

    A truncation bootstraps through ``delta_t`` (from the pre-reset next value) and stops the
    sum, so advantages never mix two episodes.

    Args:
      rewards: r_t, float [T, *batch].
      values: V(s_t), float [T, *batch].
      next_values: V(s'_t), float [T, *batch].
      terminated: term_t, bool or 0/1 [T, *batch].
      truncated: trunc_t, bool or 0/1 [T, *batch].
      gamma: discount, scalar (may be traced).
      lambda_: GAE lambda, scalar (may be traced).

    Returns:
      (advantages A_t, value targets A_t + values_t), both float [T, *batch].
    """
    rewards, values, next_values, terminated, truncated = _as_steps(
        rewards, values, next_values, terminated, truncated
    )
    _check_scalars(gamma=gamma, lambda_=lambda_)
    dtype = _float_dtype(rewards, values, next_values)
    rewards, values, next_values = (x.astype(dtype) for x in (rewards, values, next_values))

    deltas = rewards + _discounts(gamma, terminated, dtype) * next_values - values
    done = terminated.astype(bool) | truncated.astype(bool)
    carries = jnp.where(done, 0.0, gamma * lambda_).astype(dtype)

    def step(next_advantage, xs):
        delta, carry = xs
        advantage = delta + carry * next_advantage
        return advantage, advantage

    _, advantages = lax.scan(step, jnp.zeros_like(rewards[0]), (deltas, carries), reverse=True)
    return advantages, advantages + values


def td_lambda(
    rewards: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: Numeric,
    lambda_: Numeric,
) -> jax.Array:
    """Lambda-returns (Sutton & Barto, ch. 12), truncation-aware.

        G_t = r_t + gamma (1 - term_t) [ cut_t ? next_values_t
                                               : (1 - lambda) next_values_t + lambda G_{t+1} ]

    When ``next_values_t = values_{t+1}`` wherever the episode continues, these equal the
    targets of ``gae`` with the same gamma and lambda.

    Args:
      rewards: r_t, float [T, *batch].
      next_values: V(s'_t), float [T, *batch].
      terminated: term_t, bool or 0/1 [T, *batch].
      truncated: trunc_t, bool or 0/1 [T, *batch].
      gamma: discount, scalar (may be traced).
      lambda_: mixing parameter, scalar (may be traced); 1 gives ``discounted_returns``,
        0 gives one-step TD targets.

    Returns:
      G_t, float [T, *batch].
    """
    rewards, next_values, terminated, truncated = _as_steps(
        rewards, next_values, terminated, truncated
    )
    _check_scalars(gamma=gamma, lambda_=lambda_)
    dtype = _float_dtype(rewards, next_values)
    rewards, next_values = rewards.astype(dtype), next_values.astype(dtype)
    lambda_ = jnp.asarray(lambda_, dtype)

    def step(next_return, xs):
        reward, discount, next_value, cut = xs
        mixed = (1.0 - lambda_) * next_value + lambda_ * next_return
        ret = reward + discount * jnp.where(cut, next_value, mixed)
        return ret, ret

    # The initial carry is never read: the last step is always a cut.
    xs = (rewards, _discounts(gamma, terminated, dtype), next_values, _cuts(truncated))
    _, returns = lax.scan(step, jnp.zeros_like(rewards[0]), xs, reverse=True)
    return returns


def n_step_targets(
    rewards: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: Numeric,
    n: int,
) -> jax.Array:
    """n-step bootstrapped targets, stopping at the first episode end.

        G_t = sum_{k<m} gamma^k r_{t+k} + gamma^m (1 - term_{t+m-1}) next_values_{t+m-1}

    where m <= n is the number of steps taken: the window stops after the first step t+k with
    done_{t+k} (terminated or truncated) or at the end of the array (t+k = T-1). Recursively,
    with G^(j) the j-step target,

        G^(j)_t = r_t + gamma (1 - term_t) [ cut_t or j == 1 ? next_values_t : G^(j-1)_{t+1} ]

    and G_t = G^(n)_t. DQN calls this on sampled sequences of length n and reads index 0.

    Args:
      rewards: r_t, float [T, *batch].
      next_values: V(s'_t) (or max_a Q(s'_t, a)), float [T, *batch].
      terminated: term_t, bool or 0/1 [T, *batch].
      truncated: trunc_t, bool or 0/1 [T, *batch].
      gamma: discount, scalar (may be traced).
      n: static Python int >= 1, the largest number of rewards summed.

    Returns:
      G_t, float [T, *batch].
    """
    rewards, next_values, terminated, truncated = _as_steps(
        rewards, next_values, terminated, truncated
    )
    _check_scalars(gamma=gamma)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a Python int >= 1, got {n!r}")
    dtype = _float_dtype(rewards, next_values)
    length = rewards.shape[0]

    # Pad time by n-1 so that step t+k exists for every t < T and k < n. Padded steps are
    # never used: cut_{T-1} is True, so no window reads past the last real step.
    def pad(x: jax.Array, fill) -> jax.Array:
        return jnp.concatenate([x, jnp.full((n - 1, *x.shape[1:]), fill, x.dtype)])

    rewards_p = pad(rewards.astype(dtype), 0)
    next_values_p = pad(next_values.astype(dtype), 0)
    discounts_p = pad(_discounts(gamma, terminated, dtype), 0)
    cuts_p = pad(_cuts(truncated), True)

    # Scan over the offset k = n-1, ..., 0. After offset k, targets[t] is the (n-k)-step target
    # starting at t+k; the first iteration (k = n-1) always bootstraps.
    def step(targets_after, k):
        at_offset = lambda x: lax.dynamic_slice_in_dim(x, k, length)  # noqa: E731
        cut = at_offset(cuts_p) | (k == n - 1)
        bootstrap = jnp.where(cut, at_offset(next_values_p), targets_after)
        return at_offset(rewards_p) + at_offset(discounts_p) * bootstrap, None

    targets, _ = lax.scan(step, jnp.zeros_like(rewards_p[:length]), jnp.arange(n), reverse=True)
    return targets
