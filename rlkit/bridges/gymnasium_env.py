"""Gymnasium both ways: rlkit's JAX environments as `gymnasium.Env`s, and a gymnasium environment as
a host environment that rlkit's agents train on.

rlkit -> gymnasium. `GymnasiumEnv(env, params)` wraps any environment of the JAX contract
(rlkit.core.env; gymnax's too) as a `gymnasium.Env` (envs/gymnasium_registry.py registers rlkit's
own environments with gymnasium as `rlkit/<name>` with it). It takes and returns numpy; its reset
and step are each one jitted program, compiled once per environment object (copies that gymnasium
makes of one registered id share it). Randomness is a JAX key chain, started by `reset(seed=s)` at
`jax.random.PRNGKey(s)`:

    reset:  key, k = split(key); obs, state = env.reset(k, params)
    step:   key, k = split(key); _, state, reward, terminated, truncated, info =
                env.step(k, state, action, params); the observation returned is
                info["final_observation"] (gymnasium does not reset on its own)

`reset()` without a seed continues the chain (a first unseeded reset starts it from a seed drawn
from gymnasium's `np_random`, itself seeded from the OS). Termination and truncation are the JAX
env's own flags: `truncated` is its time limit (`params.max_steps_in_episode`), so the gymnasium ids
have no TimeLimit wrapper (`max_episode_steps` None). After an episode ends, call `reset` as
gymnasium requires: the JAX state has already moved to a new episode whose first observation was not
returned. An environment with action masks (GridWorld, TicTacToe) puts the mask of the returned
observation in `info["action_mask"]` (bool[n], True = allowed). Rendering is not supported
(render_mode None only).

gymnasium -> rlkit. `gymnasium_vector_env(env_id, num_envs)` is a gymnasium vector env (sync, same-
step auto-reset) behind the vectorised-env contract (rlkit.bridges.host), with episode statistics
and action clipping as a JAX env gets them; `rlkit train ppo --env gym:CartPole-v1` uses it. Being a
host environment, it trains one seed and cannot be vmapped or rewound."""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from rlkit.bridges.host import GymnasiumHost, HostVectorEnv
from rlkit.core.config import ConfigError
from rlkit.core.env import action_mask
from rlkit.core.spaces import Box, Discrete, to_gymnasium
from rlkit.core.wrappers import ClipAction, EpisodeStatistics

__all__ = [
    "GymnasiumEnv",
    "GymnasiumParams",
    "gymnasium_vector_env",
]

SEED_LIMIT = 2**32  # PRNGKey keeps 32 bits of a seed; a larger one would alias a smaller one


class GymnasiumEnv(gymnasium.Env):
    """One environment of the JAX contract as a `gymnasium.Env` (module docstring).

    Args:
        env: an environment of rlkit.core.env's contract (reset, step, spaces; optionally
            action_mask), unvectorised.
        params: its EnvParams (default: env.default_params).
        render_mode: None; no other mode is supported.

    Spaces are `to_gymnasium` of the JAX env's (Box, Discrete, Dict, Tuple, exactly: bounds,
    shape and dtype). Observations are numpy arrays (dicts of them for a Dict space), rewards
    Python floats, terminated/truncated Python bools.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, env: Any, params: Any = None, render_mode: str | None = None) -> None:
        if render_mode is not None:
            raise ValueError(f"rlkit environments do not render; got render_mode={render_mode!r}")
        self.env = env
        self.params = env.default_params if params is None else params
        self._action_space = env.action_space(self.params)
        self.observation_space = to_gymnasium(env.observation_space(self.params))
        self.action_space = to_gymnasium(self._action_space)
        self.render_mode = None
        self._key: jax.Array | None = None
        self._state: Any = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Start an episode: (observation, info). `seed` restarts the key chain at
        PRNGKey(seed) (an int in [0, 2**32)); `options` is not used."""
        super().reset(seed=seed)
        if seed is not None:
            if not 0 <= seed < SEED_LIMIT:
                raise ValueError(f"seed must be in [0, 2**32), got {seed}")
            self._key = jax.random.PRNGKey(seed)
        elif self._key is None:
            self._key = jax.random.PRNGKey(int(self.np_random.integers(SEED_LIMIT)))
        self._key, obs, self._state, mask = _reset(self.env, self._key, self.params)
        return _to_numpy(obs), _info(mask)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """One step: (observation, reward, terminated, truncated, info). A Discrete action is
        an int in [0, n); a Box action an array of the space's shape (cast to its dtype)."""
        if self._state is None:
            raise RuntimeError("call reset before step")
        key, obs, self._state, reward, terminated, truncated, mask = _step(
            self.env, self._key, self._state, self._jax_action(action), self.params
        )
        self._key = key
        obs, reward, terminated, truncated = jax.device_get((obs, reward, terminated, truncated))
        return _to_numpy(obs), float(reward), bool(terminated), bool(truncated), _info(mask)

    def _jax_action(self, action: Any) -> jax.Array:
        """`action` as the JAX env takes it: int32[] for Discrete, the Box's dtype and shape."""
        space = self._action_space
        if isinstance(space, Discrete):
            value = np.asarray(action)
            if value.shape != () or not np.issubdtype(value.dtype, np.integer):
                raise ValueError(f"a Discrete({space.n}) action is one integer, got {action!r}")
            if not 0 <= int(value) < int(space.n):
                raise ValueError(f"action must be in [0, {space.n}), got {int(value)}")
            return jnp.int32(int(value))
        if isinstance(space, Box):
            value = np.asarray(action, dtype=np.dtype(space.dtype))
            if value.shape != tuple(space.shape):
                raise ValueError(f"action must have shape {tuple(space.shape)}, got {value.shape}")
            return jnp.asarray(value)
        return jax.tree.map(jnp.asarray, action)


@functools.partial(jax.jit, static_argnums=0)
def _reset(env: Any, key: jax.Array, params: Any) -> tuple[jax.Array, Any, Any, Any]:
    """(next key, obs, state, action mask or None) of a reset from `key` (module docstring)."""
    key, reset_key = jax.random.split(key)
    obs, state = env.reset(reset_key, params)
    return key, obs, state, action_mask(env, state, params)


@functools.partial(jax.jit, static_argnums=0)
def _step(env: Any, key: jax.Array, state: Any, action: jax.Array, params: Any) -> tuple:
    """(next key, pre-reset obs, state, reward, terminated, truncated, the pre-reset obs's mask
    or None) of one step from `key` (module docstring)."""
    key, step_key = jax.random.split(key)
    _, state, reward, terminated, truncated, info = env.step(step_key, state, action, params)
    mask = info.get("final_action_mask")
    return key, info["final_observation"], state, reward, terminated, truncated, mask


def _to_numpy(tree: Any) -> Any:
    """Writable numpy copies of a pytree of arrays (a dict observation stays a dict)."""
    return jax.tree.map(np.array, tree)


def _info(mask: Any) -> dict[str, Any]:
    return {} if mask is None else {"action_mask": np.array(mask, dtype=bool)}


# -- a gymnasium environment as a host environment -------------------------------------------------


@struct.dataclass
class GymnasiumParams:
    """The env params of a gymnasium host environment (its real parameters live on the host).

    max_steps_in_episode: gymnasium's time limit (`spec.max_episode_steps`), or 1000 when it
        has none; evaluation (rlkit.training.evaluation) runs this many steps. Static.
    """

    max_steps_in_episode: int = struct.field(pytree_node=False, default=1000)


def gymnasium_vector_env(
    env_id: str, num_envs: int, **make_kwargs: Any
) -> tuple[EpisodeStatistics, GymnasiumParams]:
    """`num_envs` copies of the gymnasium environment `env_id` as a vectorised env: (venv,
    params) for any agent's make(config, venv, params) with config.num_envs == num_envs.

    The copies run in this process (gymnasium's sync vector env, same-step auto-reset,
    `make_kwargs` passed to gymnasium.make_vec) and are stepped through io_callback
    (rlkit.bridges.host.HostVectorEnv); Box actions are clipped to the space, and episode
    statistics recorded, as for a JAX env (rlkit.core.wrappers.as_vector_env). Observations
    must be a Box, actions a Box or a Discrete. ConfigError, one line, for an id gymnasium does
    not know, keywords it refuses, or other spaces.
    """
    try:
        host = GymnasiumHost(env_id, num_envs, **make_kwargs)
    except gymnasium.error.Error as error:
        raise ConfigError(f"unknown gymnasium environment {env_id!r}: {_line(error)}") from None
    except TypeError as error:
        raise ConfigError(f"gymnasium environment {env_id!r}: {_line(error)}") from None
    try:
        observation_space, action_space = host.spaces()
    except (TypeError, ValueError) as error:
        host.env.close()
        raise ConfigError(f"gymnasium environment {env_id!r}: {_line(error)}") from None
    venv: Any = HostVectorEnv(host, observation_space, action_space)
    if isinstance(action_space, Box):
        venv = ClipAction(venv)
    limit = host.env.spec.max_episode_steps if host.env.spec is not None else None
    params = GymnasiumParams(max_steps_in_episode=int(limit or 1000))
    return EpisodeStatistics(venv), params


def _line(error: BaseException) -> str:
    """An exception's message on one line."""
    return " ".join(str(error).split()) or type(error).__name__
