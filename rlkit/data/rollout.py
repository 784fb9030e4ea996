"""Collecting experience: a `lax.scan` of a policy over a vectorised environment.

The rollout core is the only place that steps environments for agents. It keeps the
pre-reset next observation of every step (`next_obs`), so learners bootstrap a time-limit cut
from the state the episode was cut in, and the action mask of every observation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from rlkit.core.env import action_mask

__all__ = ["EnvCarry", "Transition", "next_action_masks", "reset_envs", "rollout"]


@struct.dataclass
class EnvCarry:
    """The vectorised environment between steps: its state and current observation [N, ...]."""

    env_state: Any
    obs: Any


class Transition(NamedTuple):
    """One step of N environments; a rollout stacks these to [T, N, ...].

    obs: s_t; action: a_t; reward: r_t; terminated / truncated: how the episode ended at t;
    next_obs: s'_t, the true next observation (pre-reset when the episode ended at t);
    action_mask: allowed actions at s_t ([N, A] bool) or None; extras: policy outputs at s_t
    (log-probabilities, values, ...); episode: EpisodeStatistics' per-step episode records;
    next_action_mask: allowed actions at s'_t ([N, A] bool, or None without masks): exact where
    the environment reports it (`info["final_action_mask"]`, as rlkit's environments do), else
    the stand-in of `next_action_masks`.
    """

    obs: Any
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    next_obs: Any
    action_mask: jax.Array | None
    extras: dict[str, jax.Array]
    episode: dict[str, jax.Array]
    next_action_mask: jax.Array | None = None


Policy = Callable[[Any, jax.Array | None, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]


def reset_envs(env: Any, env_params: Any, key: jax.Array) -> EnvCarry:
    """Reset a vectorised environment."""
    obs, env_state = env.reset(key, env_params)
    return EnvCarry(env_state=env_state, obs=obs)


def rollout(
    env: Any,
    env_params: Any,
    policy: Policy,
    carry: EnvCarry,
    key: jax.Array,
    num_steps: int,
) -> tuple[EnvCarry, Transition]:
    """Run `policy(obs, action_mask, key) -> (action, extras)` for `num_steps` steps.

    Returns the final carry and the trajectory, leaves shaped [num_steps, num_envs, ...]. With
    action masks, every step carries the mask of its next observation (`next_action_mask`).
    """

    def step(carry: EnvCarry, step_key: jax.Array) -> tuple[EnvCarry, Transition]:
        policy_key, env_key = jax.random.split(step_key)
        mask = action_mask(env, carry.env_state, env_params)
        action, extras = policy(carry.obs, mask, policy_key)
        obs, env_state, reward, terminated, truncated, info = env.step(
            env_key, carry.env_state, action, env_params
        )
        transition = Transition(
            obs=carry.obs,
            action=action,
            reward=reward.astype(jnp.float32),
            terminated=terminated,
            truncated=truncated,
            next_obs=info["final_observation"],
            action_mask=mask,
            extras=extras,
            episode={k: info[k] for k in ("episode_done", "episode_return", "episode_length")},
            next_action_mask=info.get("final_action_mask"),
        )
        return EnvCarry(env_state=env_state, obs=obs), transition

    carry, traj = jax.lax.scan(step, carry, jax.random.split(key, num_steps))
    if traj.action_mask is not None and traj.next_action_mask is None:
        final_mask = action_mask(env, carry.env_state, env_params)
        stand_in = next_action_masks(traj.action_mask, final_mask, traj.terminated, traj.truncated)
        traj = traj._replace(next_action_mask=stand_in)
    return carry, traj


def next_action_masks(
    masks: jax.Array, final_mask: jax.Array, terminated: jax.Array, truncated: jax.Array
) -> jax.Array:
    """The mask of each step's next observation s'_t, for an environment that does not report it.

    masks: bool [T, N, A], the mask of s_t; final_mask: [N, A], the mask of the observation after
    the last step; terminated, truncated: [T, N]. Where the episode goes on, s'_t = s_{t+1},
    whose mask is the next step's (final_mask after step T-1): exact. Where it ended, the
    environment has reset and the pre-reset state is gone, so s_t's own mask stands in; it is
    read only on truncation (a terminal state is not bootstrapped). Returns [T, N, A].
    """
    following = jnp.concatenate([masks[1:], final_mask[None]])
    ended = (terminated | truncated)[..., None]
    return jnp.where(ended, masks, following)
