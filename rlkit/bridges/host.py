"""Host environments: batched environments that live outside JAX, entering the same contract.

A Unity player (through mlagents_envs) or a gymnasium vector env runs on the host and is already
batched. `HostVectorEnv` wraps one so that it looks exactly like a `VectorEnv` to the rollout
core: `reset`/`step` are jittable functions whose bodies call out to the host with
`jax.experimental.io_callback` (ordered, so steps happen in program order inside `lax.scan`).
Every agent then trains on it unchanged, inside the same compiled update.

A host object implements:

    reset(seed: int) -> obs                                   # numpy [N, *obs_shape]
    step(actions) -> (obs, reward, terminated, truncated, final_obs)
        # numpy, batch-first; obs is post-auto-reset, final_obs the pre-reset observation of
        # copies whose episode ended (equal to obs elsewhere)

The JAX-side state is only a step counter: the real state lives in the host process, so a host
environment cannot be vmapped over seeds or rewound (train it with one seed).
"""

from __future__ import annotations

from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.experimental import io_callback

from rlkit.core.spaces import Box, Discrete, Space, from_gymnasium

__all__ = ["GymnasiumHost", "HostEnvironment", "HostVectorEnv"]


class HostEnvironment(Protocol):
    num_envs: int

    def reset(self, seed: int) -> np.ndarray: ...

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]: ...


@struct.dataclass
class HostState:
    steps: jax.Array


@struct.dataclass
class HostParams:
    """Host environments keep their parameters on the host; this is a placeholder pytree."""


class HostVectorEnv:
    """A batched host environment behind the vectorised-env contract (see module docstring)."""

    def __init__(self, host: HostEnvironment, observation_space: Space, action_space: Space):
        self.host = host
        self.num_envs = int(host.num_envs)
        self._observation_space = observation_space
        self._action_space = action_space
        obs_shape = (self.num_envs, *observation_space.shape)
        self._obs_spec = jax.ShapeDtypeStruct(obs_shape, jnp.float32)
        flags = jax.ShapeDtypeStruct((self.num_envs,), jnp.bool_)
        rewards = jax.ShapeDtypeStruct((self.num_envs,), jnp.float32)
        self._step_spec = (self._obs_spec, rewards, flags, flags, self._obs_spec)

    @property
    def default_params(self) -> HostParams:
        return HostParams()

    def observation_space(self, params: Any = None) -> Space:
        return self._observation_space

    def action_space(self, params: Any = None) -> Space:
        return self._action_space

    def _host_reset(self, seed: np.ndarray) -> np.ndarray:
        return np.asarray(self.host.reset(int(seed)), np.float32)

    def _host_step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        obs, reward, terminated, truncated, final_obs = self.host.step(np.asarray(actions))
        return (
            np.asarray(obs, np.float32),
            np.asarray(reward, np.float32),
            np.asarray(terminated, bool),
            np.asarray(truncated, bool),
            np.asarray(final_obs, np.float32),
        )

    def reset(self, key: jax.Array, params: Any = None) -> tuple[jax.Array, HostState]:
        seed = jax.random.randint(key, (), 0, 2**31 - 1)
        obs = io_callback(self._host_reset, self._obs_spec, seed, ordered=True)
        return obs, HostState(steps=jnp.zeros((), jnp.int32))

    def step(
        self, key: jax.Array, state: HostState, action: jax.Array, params: Any = None
    ) -> tuple:
        obs, reward, terminated, truncated, final_obs = io_callback(
            self._host_step, self._step_spec, action, ordered=True
        )
        info = {"final_observation": final_obs, "terminated": terminated, "truncated": truncated}
        return obs, HostState(steps=state.steps + 1), reward, terminated, truncated, info


class GymnasiumHost:
    """A gymnasium vector env (same-step auto-reset) as a host environment."""

    def __init__(self, env_id: str, num_envs: int, **make_kwargs: Any):
        import gymnasium

        self.env = gymnasium.make_vec(
            env_id,
            num_envs=num_envs,
            vectorization_mode="sync",
            vector_kwargs={"autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP},
            **make_kwargs,
        )
        self.num_envs = num_envs

    def spaces(self) -> tuple[Space, Space]:
        obs_space = from_gymnasium(self.env.single_observation_space)
        action_space = from_gymnasium(self.env.single_action_space)
        if not isinstance(obs_space, Box) or not isinstance(action_space, Box | Discrete):
            raise TypeError("GymnasiumHost supports Box observations and Box/Discrete actions")
        return obs_space, action_space

    def reset(self, seed: int) -> np.ndarray:
        obs, _ = self.env.reset(seed=seed)
        return obs

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        final_obs = obs.copy()
        ended = info.get("_final_obs")
        if ended is not None:
            for i in np.flatnonzero(ended):
                final_obs[i] = info["final_obs"][i]
        return obs, reward, terminated, truncated, final_obs
