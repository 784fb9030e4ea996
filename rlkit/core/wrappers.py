"""Pure, vmappable environment wrappers.

Per-copy wrappers (`EpisodeStatistics`, `ClipAction`) work on a single environment and,
because they are elementwise, on a vectorised one too. Wrappers whose statistics are shared by
all copies (`NormalizeObservation`, `ScaleReward`) wrap a `VectorEnv` (observations and rewards
with a leading `num_envs` axis). The usual stack, inside out:

    env -> ClipAction -> EpisodeStatistics -> VectorEnv -> NormalizeObservation -> ScaleReward

so that episode statistics record the environment's own rewards, not the scaled ones.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from rlkit.core.env import VectorEnv, Wrapper
from rlkit.core.spaces import Box
from rlkit.ops.running_stats import RunningStats

__all__ = [
    "ClipAction",
    "EpisodeStatistics",
    "EpisodeStatisticsState",
    "NormalizeObservation",
    "ScaleReward",
    "as_vector_env",
    "episode_metrics",
    "has_wrapper",
]


def has_wrapper(env: Any, wrapper_type: type) -> bool:
    """Whether `wrapper_type` is anywhere in the chain of wrappers around an environment."""
    while env is not None:
        if isinstance(env, wrapper_type):
            return True
        env = getattr(env, "_env", None) if isinstance(env, Wrapper) else None
    return False


@struct.dataclass
class EpisodeStatisticsState:
    """env_state plus the running return and length of the current episode (per copy)."""

    env_state: Any
    episode_return: jax.Array
    episode_length: jax.Array


class EpisodeStatistics(Wrapper):
    """Records the undiscounted return and length of every finished episode.

    Adds to `info`, per step: `episode_done` (an episode ended at this step, by termination or
    truncation), and `episode_return` / `episode_length` of that episode (0 where
    `episode_done` is False). Under vmap these are [num_envs] arrays; `episode_metrics` reduces
    a rollout of them to the mean over the episodes that finished, and their count.
    """

    def inner_state(self, state: EpisodeStatisticsState) -> Any:
        return state.env_state

    def reset(self, key: jax.Array, params: Any = None) -> tuple[Any, EpisodeStatisticsState]:
        obs, env_state = self._env.reset(key, params)
        num_envs = getattr(self._env, "num_envs", None)
        zeros = jnp.zeros(() if num_envs is None else (num_envs,), jnp.float32)
        return obs, EpisodeStatisticsState(env_state, zeros, zeros.astype(jnp.int32))

    def step(
        self, key: jax.Array, state: EpisodeStatisticsState, action: Any, params: Any = None
    ) -> tuple:
        obs, env_state, reward, terminated, truncated, info = self._env.step(
            key, state.env_state, action, params
        )
        done = jnp.logical_or(terminated, truncated)
        episode_return = state.episode_return + reward.astype(jnp.float32)
        episode_length = state.episode_length + 1
        info = {
            **info,
            "episode_done": done,
            "episode_return": jnp.where(done, episode_return, 0.0),
            "episode_length": jnp.where(done, episode_length, 0),
        }
        state = EpisodeStatisticsState(
            env_state,
            jnp.where(done, 0.0, episode_return),
            jnp.where(done, 0, episode_length),
        )
        return obs, state, reward, terminated, truncated, info


def episode_metrics(info: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Mean return and length over the episodes that finished in a rollout, and their count.

    info leaves are [T, num_envs] (or any shape). Only completed episodes are averaged; with
    none finished the means are NaN, so a logger can tell "no episode" from a return of 0.
    """
    done = info["episode_done"].astype(jnp.float32)
    count = done.sum()
    safe = jnp.maximum(count, 1.0)
    nan_if_none = jnp.where(count > 0, 1.0, jnp.nan)
    return {
        "episode_return": (info["episode_return"] * done).sum() / safe * nan_if_none,
        "episode_length": (info["episode_length"] * done).sum() / safe * nan_if_none,
        "episodes": count,
    }


class ClipAction(Wrapper):
    """Clips continuous actions to the action space's bounds before the environment sees them.

    The agent stores the unclipped action (its log-probability is that of the unclipped sample).
    """

    def step(self, key: jax.Array, state: Any, action: Any, params: Any = None) -> tuple:
        params = self._env.default_params if params is None else params
        space = self._env.action_space(params)
        if not isinstance(space, Box):
            raise TypeError("ClipAction needs a Box action space")
        return self._env.step(key, state, jnp.clip(action, space.low, space.high), params)


@struct.dataclass
class NormalizeObservationState:
    env_state: Any
    stats: RunningStats


class NormalizeObservation(Wrapper):
    """Normalises observations with running mean/variance shared by all copies of a VectorEnv.

    obs' = clip((obs - mean) / sqrt(var + 1e-8), -clip, clip); the statistics are updated with
    every batch of observations the environment returns (including the reset batch) and the
    pre-reset `info["final_observation"]` is normalised with the same statistics.
    """

    def __init__(self, env: Any, clip: float = 10.0):
        super().__init__(env)
        self.clip = clip

    def inner_state(self, state: NormalizeObservationState) -> Any:
        return state.env_state

    def reset(self, key: jax.Array, params: Any = None) -> tuple[Any, NormalizeObservationState]:
        obs, env_state = self._env.reset(key, params)
        stats = RunningStats.create(obs.shape[1:]).update(obs)
        return stats.normalize(obs, self.clip), NormalizeObservationState(env_state, stats)

    def step(
        self, key: jax.Array, state: NormalizeObservationState, action: Any, params: Any = None
    ) -> tuple:
        obs, env_state, reward, terminated, truncated, info = self._env.step(
            key, state.env_state, action, params
        )
        stats = state.stats.update(obs)
        info = {**info, "final_observation": stats.normalize(info["final_observation"], self.clip)}
        obs = stats.normalize(obs, self.clip)
        return obs, NormalizeObservationState(env_state, stats), reward, terminated, truncated, info


@struct.dataclass
class ScaleRewardState:
    env_state: Any
    discounted_return: jax.Array
    stats: RunningStats


class ScaleReward(Wrapper):
    """Divides rewards by the running standard deviation of the discounted return.

    As in "The 37 implementation details of PPO" (reward scaling): R_t = gamma R_{t-1} + r_t per
    copy, reset at episode ends; r' = clip(r / sqrt(Var[R] + 1e-8), -clip, clip). Rewards are
    not centred.
    """

    def __init__(self, env: Any, gamma: float = 0.99, clip: float = 10.0):
        super().__init__(env)
        self.gamma = gamma
        self.clip = clip

    def inner_state(self, state: ScaleRewardState) -> Any:
        return state.env_state

    def reset(self, key: jax.Array, params: Any = None) -> tuple[Any, ScaleRewardState]:
        obs, env_state = self._env.reset(key, params)
        num_envs = obs.shape[0]
        returns = jnp.zeros((num_envs,), jnp.float32)
        return obs, ScaleRewardState(env_state, returns, RunningStats.create(()))

    def step(
        self, key: jax.Array, state: ScaleRewardState, action: Any, params: Any = None
    ) -> tuple:
        obs, env_state, reward, terminated, truncated, info = self._env.step(
            key, state.env_state, action, params
        )
        returns = state.discounted_return * self.gamma + reward
        stats = state.stats.update(returns)
        scaled = jnp.clip(reward / jnp.sqrt(stats.var + 1e-8), -self.clip, self.clip)
        done = jnp.logical_or(terminated, truncated)
        state = ScaleRewardState(env_state, jnp.where(done, 0.0, returns), stats)
        return obs, state, scaled, terminated, truncated, info


def as_vector_env(
    env: Any,
    num_envs: int,
    *,
    clip_actions: bool = True,
    scale_rewards_gamma: float | None = None,
) -> Any:
    """The vectorised environment an agent trains on.

    A single environment gets ClipAction (Box actions, when `clip_actions`), EpisodeStatistics
    and `num_envs` copies; a vectorised or host environment (anything with `num_envs`) is used
    as it is after checking its size and that it records episode statistics. With
    `scale_rewards_gamma`, rewards are divided by the running std of the discounted return.
    """
    if hasattr(env, "num_envs"):
        if env.num_envs != num_envs:
            raise ValueError(f"num_envs is {num_envs} but the environment has {env.num_envs}")
        if not has_wrapper(env, EpisodeStatistics):
            raise ValueError("a vectorised environment must record EpisodeStatistics")
    else:
        params = env.default_params
        if clip_actions and isinstance(env.action_space(params), Box):
            env = ClipAction(env)
        if not has_wrapper(env, EpisodeStatistics):
            env = EpisodeStatistics(env)
        env = VectorEnv(env, num_envs)
    if scale_rewards_gamma is not None:
        env = ScaleReward(env, gamma=scale_rewards_gamma)
    return env
