"""Probe environments: tiny tasks with known answers that isolate one part of a learner.

Each has a value function and a best action that can be written down, so a test can check that
an agent's critic and greedy policy converge to them (after Andy Jones' "Debugging RL, without
the agonizing pain"). All episodes are short and end by termination.

| probe | obs | reward | V* |
|---|---|---|---|
| ConstantReward | [0] | 1, terminated after 1 step | 1 |
| ObsDependentReward | [+-1] at random | obs, terminated after 1 step | obs |
| TwoStepDiscount | [0] then [1] | 0 then 1, terminated step 2 | gamma at [0], 1 at [1] |
| ActionDependentReward | [0] | 1 if the best action else -1 | 1 (best action 1) |

With `continuous=True` the actions are Box(-1, 1, (1,)); ActionDependentReward then pays
1 - 4 (a - 0.5)^2 (best action 0.5, V* = 1) and the other probes ignore the action.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from rlkit.core.env import Environment
from rlkit.core.spaces import Box, Discrete

__all__ = ["ActionDependentReward", "ConstantReward", "ObsDependentReward", "TwoStepDiscount"]


@struct.dataclass
class ProbeState:
    obs: jax.Array
    time: jax.Array


@struct.dataclass
class ProbeParams:
    max_steps_in_episode: int = 10


class _Probe(Environment):
    num_discrete_actions = 1

    def __init__(self, continuous: bool = False):
        super().__init__()
        self.continuous = continuous

    @property
    def default_params(self) -> ProbeParams:
        return ProbeParams()

    def observation_space(self, params: ProbeParams) -> Box:
        return Box(-1.0, 1.0, (1,), jnp.float32)

    def action_space(self, params: ProbeParams) -> Box | Discrete:
        if self.continuous:
            return Box(-1.0, 1.0, (1,), jnp.float32)
        return Discrete(self.num_discrete_actions)

    def first_obs(self, key: jax.Array) -> jax.Array:
        return jnp.zeros((1,), jnp.float32)

    def reset_env(self, key: jax.Array, params: ProbeParams) -> tuple[jax.Array, ProbeState]:
        obs = self.first_obs(key)
        return obs, ProbeState(obs=obs, time=jnp.zeros((), jnp.int32))

    def reward_and_end(
        self, state: ProbeState, action: Any
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(reward, terminated, next obs)."""
        raise NotImplementedError

    def step_env(
        self, key: jax.Array, state: ProbeState, action: Any, params: ProbeParams
    ) -> tuple[jax.Array, ProbeState, jax.Array, jax.Array, dict]:
        reward, terminated, obs = self.reward_and_end(state, action)
        state = ProbeState(obs=obs, time=state.time + 1)
        return obs, state, reward.astype(jnp.float32), terminated, {}


class ConstantReward(_Probe):
    """Reward 1 every episode of one step: checks the critic can fit a constant."""

    def reward_and_end(self, state: ProbeState, action: Any) -> tuple:
        return jnp.ones(()), jnp.bool_(True), state.obs


class ObsDependentReward(_Probe):
    """Obs is +1 or -1 at random and the reward equals it: checks the critic reads obs."""

    def first_obs(self, key: jax.Array) -> jax.Array:
        return jnp.where(jax.random.bernoulli(key), 1.0, -1.0).reshape((1,)).astype(jnp.float32)

    def reward_and_end(self, state: ProbeState, action: Any) -> tuple:
        return state.obs[0], jnp.bool_(True), state.obs


class TwoStepDiscount(_Probe):
    """Obs [0] then [1]; reward 1 only at the end of step two: checks discounting (V = gamma)."""

    def reward_and_end(self, state: ProbeState, action: Any) -> tuple:
        second = state.time >= 1
        return jnp.where(second, 1.0, 0.0), second, jnp.ones((1,), jnp.float32)


class ActionDependentReward(_Probe):
    """One step; reward 1 for the best action and -1 for the other (discrete, best = 1), or
    1 - 4 (a - 0.5)^2 (continuous, best = 0.5): checks the policy and advantage path."""

    num_discrete_actions = 2

    def reward_and_end(self, state: ProbeState, action: Any) -> tuple:
        if self.continuous:
            a = jnp.clip(jnp.reshape(action, (-1,))[0], -1.0, 1.0)
            reward = 1.0 - 4.0 * (a - 0.5) ** 2
        else:
            reward = jnp.where(action == 1, 1.0, -1.0)
        return reward, jnp.bool_(True), state.obs
