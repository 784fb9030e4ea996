"""The environment contract: gymnax 1.0's, plus action masks and a vectorised form.

Every environment is functional and stateless, so `jax.jit` and `jax.vmap` apply:

- `env.default_params -> EnvParams`: a pytree of physical constants and limits.
- `env.reset(key, params) -> (obs, state)`
- `env.step(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)`:
  auto-resets when the episode ends; `info["final_observation"]` holds the pre-reset observation,
  so a learner can bootstrap from it on truncation (a time-limit cut) and not on termination.
- `env.observation_space(params)`, `env.action_space(params)`: spaces of `rlkit.core.spaces`.
- Discrete envs with invalid actions expose `env.action_mask(state, params) -> bool[num_actions]`
  (True = allowed) and put the mask of the returned observation in `info["action_mask"]` and
  that of `info["final_observation"]` in `info["final_action_mask"]`.

gymnax environments satisfy this contract unchanged; rlkit's own environments subclass
`Environment` below, which is a gymnax environment, so they also load through `gymnax.make`.

Agents never vmap an environment themselves. They receive a vectorised environment
(`VectorEnv`: `num_envs` copies under `jax.vmap`). A host environment (a Unity process, a
gymnasium vector env) is already batched: it enters as an object with the same batched
interface whose `reset`/`step` call out through `jax.experimental.io_callback`, so agents and
the rollout core run unchanged on it (see `rlkit/host.py`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from rlkit.core.gymnax_import import import_gymnax

_gymnax_environment = import_gymnax().environments.environment  # without seaborn (gymnax_import)
GymnaxEnvironment = _gymnax_environment.Environment
EnvParams, EnvState = _gymnax_environment.EnvParams, _gymnax_environment.EnvState

__all__ = [
    "EnvParams",
    "EnvState",
    "Environment",
    "VectorEnv",
    "Wrapper",
    "action_mask",
]


class Environment(GymnaxEnvironment):
    """Base class of rlkit's JAX-native environments (a gymnax `Environment`).

    Subclasses implement gymnax's `step_env`, `reset_env`, `is_truncated` (default: the step
    counter `state.time` reaching `params.max_steps_in_episode`), the spaces, and optionally
    `action_mask`. When the environment defines one, `step` adds the mask of the returned
    (post-reset) state to `info["action_mask"]` and that of the pre-reset state to
    `info["final_action_mask"]`.
    """

    def action_mask(self, state: EnvState, params: EnvParams) -> jax.Array | None:
        """Allowed actions in `state` (bool[num_actions], True = allowed), or None if all are."""
        return None

    def step(
        self,
        key: jax.Array,
        state: EnvState,
        action: int | float | jax.Array,
        params: EnvParams | None = None,
    ) -> tuple[Any, EnvState, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        """gymnax's auto-resetting step, plus the masks of both observations it knows of:
        `info["action_mask"]` for the returned (post-reset) one and `info["final_action_mask"]`
        for `info["final_observation"]` (pre-reset), which off-policy learners need to
        bootstrap a truncated step over the allowed actions only."""
        params = self.default_params if params is None else params
        step_key, reset_key = jax.random.split(key)
        obs_st, state_st, reward, terminated, info = self.step_env(step_key, state, action, params)
        truncated = self.is_truncated(state_st, params)
        done = jnp.logical_or(terminated, truncated)
        obs_re, state_re = self.reset_env(reset_key, params)
        pick = lambda reset, stepped: jax.lax.select(done, reset, stepped)  # noqa: E731
        next_state = jax.tree.map(pick, state_re, state_st)
        obs = jax.tree.map(pick, obs_re, obs_st)
        info = {
            **info,
            "terminated": terminated,
            "truncated": truncated,
            "final_observation": obs_st,
        }
        final_mask = self.action_mask(state_st, params)
        if final_mask is not None:
            mask = self.action_mask(next_state, params)
            info = {**info, "action_mask": mask, "final_action_mask": final_mask}
        return obs, next_state, reward, terminated, truncated, info


def action_mask(env: Any, state: Any, params: Any) -> jax.Array | None:
    """The action mask of any environment (rlkit, gymnax, wrapped or vectorised), or None."""
    get_mask = getattr(env, "action_mask", None)
    return None if get_mask is None else get_mask(state, params)


class Wrapper:
    """Base of environment wrappers: forwards everything it does not override to `env`.

    A stateful wrapper keeps the wrapped environment's state in a field `env_state` of its
    own state and overrides `inner_state`; a stateless one leaves the state as it is.
    """

    def __init__(self, env: Any):
        self._env = env

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)

    @property
    def unwrapped(self) -> Any:
        """The innermost environment."""
        return getattr(self._env, "unwrapped", self._env)

    def inner_state(self, state: Any) -> Any:
        """The wrapped environment's state inside this wrapper's state."""
        return state

    def action_mask(self, state: Any, params: Any) -> jax.Array | None:
        return action_mask(self._env, self.inner_state(state), params)

    def reset(self, key: jax.Array, params: Any = None) -> tuple[Any, Any]:
        return self._env.reset(key, params)

    def step(self, key: jax.Array, state: Any, action: Any, params: Any = None) -> tuple:
        return self._env.step(key, state, action, params)


class VectorEnv(Wrapper):
    """`num_envs` independent copies of an environment, batched with `jax.vmap`.

    Observations, rewards, flags, states and info leaves gain a leading axis of size
    `num_envs`; `params` is shared by all copies. The spaces stay those of one copy.
    Each copy gets its own key (the given key is split `num_envs` ways).
    """

    def __init__(self, env: Any, num_envs: int):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        super().__init__(env)
        self.num_envs = int(num_envs)

    def reset(self, key: jax.Array, params: Any = None) -> tuple[Any, Any]:
        params = self._env.default_params if params is None else params
        keys = jax.random.split(key, self.num_envs)
        return jax.vmap(self._env.reset, in_axes=(0, None))(keys, params)

    def step(self, key: jax.Array, state: Any, action: Any, params: Any = None) -> tuple:
        params = self._env.default_params if params is None else params
        keys = jax.random.split(key, self.num_envs)
        return jax.vmap(self._env.step, in_axes=(0, 0, 0, None))(keys, state, action, params)

    def action_mask(self, state: Any, params: Any) -> jax.Array | None:
        if getattr(self._env, "action_mask", None) is None:
            return None
        params = self._env.default_params if params is None else params
        probe = jax.eval_shape(lambda s: self._env.action_mask(s, params), _first(state))
        if probe is None:
            return None
        return jax.vmap(self._env.action_mask, in_axes=(0, None))(state, params)


def _first(tree: Any) -> Any:
    return jax.tree.map(lambda x: x[0], tree)
