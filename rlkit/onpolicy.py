"""What the on-policy agents (REINFORCE, A2C, PPO) share: acting with the actor-critic and
collecting a rollout whose every step carries V(s_t) and V(s'_t)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from rlkit.networks import flatten_obs
from rlkit.policies import ActorCritic, PolicyParams, action_distribution, normalized_input
from rlkit.rollout import EnvCarry, Transition, rollout

__all__ = ["collect", "flatten_batch", "merge_time_env"]


def merge_time_env(v: jax.Array) -> jax.Array:
    """[T, N, ...] -> [T*N, ...]."""
    return v.reshape((-1, *v.shape[2:]))


def collect(
    venv: Any,
    env_params: Any,
    network: ActorCritic,
    policy: PolicyParams,
    carry: EnvCarry,
    key: jax.Array,
    num_steps: int,
) -> tuple[EnvCarry, Transition, jax.Array]:
    """Sample actions from the policy for `num_steps` steps of the vectorised env.

    Returns (carry, trajectory [T, N], next_values [T, N]). The trajectory's extras hold
    `log_prob` and `value` = V(s_t) of the acting policy; next_values[t] = V(s'_t), the value of
    the true next state (the pre-reset observation where an episode ended at t), so returns
    bootstrap a truncation correctly.
    """
    action_space = network.action_space

    def behave(obs: Any, mask: jax.Array | None, key: jax.Array) -> tuple:
        actor_out, value = network.apply(policy.params, normalized_input(policy, obs))
        dist = action_distribution(action_space, actor_out, mask)
        action = dist.sample(key)
        return action, {"log_prob": dist.log_prob(action), "value": value}

    carry, traj = rollout(venv, env_params, behave, carry, key, num_steps)
    next_x = normalized_input(policy, jax.tree.map(merge_time_env, traj.next_obs))
    next_values = network.apply(policy.params, next_x, method="value")
    return carry, traj, next_values.reshape(traj.reward.shape)


def flatten_batch(traj: Transition, policy: PolicyParams, **per_step: jax.Array) -> dict[str, Any]:
    """A [T, N] trajectory as a [T*N] learning batch.

    Keys: x (network input, normalised with the acting policy's statistics), raw_x (flat
    unnormalised input, to update the statistics), action, mask (or None), log_prob, value,
    and every extra [T, N] array given by keyword (advantages, targets, ...).
    """
    raw_x = flatten_obs(jax.tree.map(merge_time_env, traj.obs))
    return {
        "x": policy.obs_stats.normalize(raw_x) if policy.normalize else raw_x,
        "raw_x": raw_x,
        "action": merge_time_env(traj.action),
        "mask": None if traj.action_mask is None else merge_time_env(traj.action_mask),
        "log_prob": merge_time_env(traj.extras["log_prob"]),
        "value": merge_time_env(traj.extras["value"]),
        **{name: merge_time_env(jnp.asarray(v)) for name, v in per_step.items()},
    }
