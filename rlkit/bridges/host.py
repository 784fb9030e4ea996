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

A host with discrete action masks declares `action_mask_size = A` (an int; None or absent: no
masks) and then returns the masks too (bool[N, A], True = allowed, rlkit's convention):

    reset(seed) -> (obs, mask)
    step(actions) -> (obs, reward, terminated, truncated, final_obs, mask, final_mask)
        # mask: that of obs; final_mask: that of final_obs

The JAX-side state is a step counter and, for a host with masks, the mask of the observation
last returned (so `action_mask(state, params)` is that mask, and `info` carries
`action_mask` / `final_action_mask` as rlkit's own environments do). The real state lives in the
host process, so a host environment cannot be vmapped over seeds or rewound (train it with one
seed).

Failures: an exception raised by the host inside a compiled program reaches the caller as a
runtime error of XLA's, with the host's message buried in it. The first exception a host call
raises is therefore kept as `HostVectorEnv.failure`, for the caller to report (the CLI reports a
`HostFailure`, the host's own one-line explanation, as the run's error). `close()` closes the
host when it has a `close` method.

Statistics: a host may gather statistics of its own (Unity's StatsSideChannel), keys known only
at run time; `drain_stats() -> {key: float}` returns those since its last call. They cannot
travel through the compiled program, so the CLI drains them between chunks, where it writes the
chunk's metrics, and adds them to the chunk's last row (rlkit.cli.run).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.experimental import io_callback

from rlkit.core.spaces import Box, Discrete, Space, from_gymnasium

__all__ = [
    "GymnasiumHost",
    "HostEnvironment",
    "HostFailure",
    "HostVectorEnv",
    "host_failure",
    "host_stats",
]


class HostFailure(Exception):
    """An expected failure of a host environment (its process died, timed out, refused the
    connection), explained in one line: the CLI reports it as the run's error."""


class HostEnvironment(Protocol):
    num_envs: int

    def reset(self, seed: int) -> np.ndarray: ...

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]: ...


class _QuietHostFailures(logging.Filter):
    """Drops JAX's "jax.io_callback failed" log record (a traceback on stderr) when the
    exception is a HostFailure: the caller reports that as one line (the CLI does). Any other
    exception in a callback is a bug and keeps its record. Installed once, on JAX's callback
    logger only (jax/_src/callback.py logs there with logger.exception before re-raising);
    remove it if JAX stops logging callback failures."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, HostFailure)


_CALLBACK_LOGGER = logging.getLogger("jax._src.callback")
if not any(isinstance(f, _QuietHostFailures) for f in _CALLBACK_LOGGER.filters):
    _CALLBACK_LOGGER.addFilter(_QuietHostFailures())


@struct.dataclass
class HostState:
    """steps: int32[], batched steps taken; mask: bool[N, A] of the current observation, or
    None for a host without masks."""

    steps: jax.Array
    mask: jax.Array | None = None


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
        self.mask_size = getattr(host, "action_mask_size", None)
        if self.mask_size is not None:
            mask = jax.ShapeDtypeStruct((self.num_envs, int(self.mask_size)), jnp.bool_)
            self._reset_spec: Any = (self._obs_spec, mask)
            self._step_spec = (*self._step_spec, mask, mask)
        else:
            self._reset_spec = self._obs_spec
        self.failure: BaseException | None = None

    @property
    def default_params(self) -> HostParams:
        return HostParams()

    def observation_space(self, params: Any = None) -> Space:
        return self._observation_space

    def action_space(self, params: Any = None) -> Space:
        return self._action_space

    def action_mask(self, state: HostState, params: Any = None) -> jax.Array | None:
        """The mask of the current observation (bool[N, A], True = allowed), or None."""
        return state.mask

    def close(self) -> None:
        """Close the host (its `close`, when it has one)."""
        close = getattr(self.host, "close", None)
        if close is not None:
            close()

    def drain_stats(self) -> dict[str, float]:
        """Statistics the host gathered since the last call (its `drain_stats`; {} without)."""
        drain = getattr(self.host, "drain_stats", None)
        return {} if drain is None else dict(drain())

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except BaseException as error:
            if self.failure is None:
                self.failure = error
            raise

    def _host_reset(self, seed: np.ndarray) -> Any:
        out = self._call(self.host.reset, int(seed))
        if self.mask_size is None:
            return np.asarray(out, np.float32)
        obs, mask = out
        return np.asarray(obs, np.float32), np.asarray(mask, bool)

    def _host_step(self, actions: Any) -> tuple[np.ndarray, ...]:
        out = self._call(self.host.step, jax.tree.map(np.asarray, actions))
        obs, reward, terminated, truncated, final_obs = out[:5]
        arrays = (
            np.asarray(obs, np.float32),
            np.asarray(reward, np.float32),
            np.asarray(terminated, bool),
            np.asarray(truncated, bool),
            np.asarray(final_obs, np.float32),
        )
        if self.mask_size is None:
            return arrays
        return (*arrays, np.asarray(out[5], bool), np.asarray(out[6], bool))

    def reset(self, key: jax.Array, params: Any = None) -> tuple[jax.Array, HostState]:
        seed = jax.random.randint(key, (), 0, 2**31 - 1)
        out = io_callback(self._host_reset, self._reset_spec, seed, ordered=True)
        obs, mask = (out, None) if self.mask_size is None else out
        return obs, HostState(steps=jnp.zeros((), jnp.int32), mask=mask)

    def step(self, key: jax.Array, state: HostState, action: Any, params: Any = None) -> tuple:
        out = io_callback(self._host_step, self._step_spec, action, ordered=True)
        obs, reward, terminated, truncated, final_obs = out[:5]
        info = {"final_observation": final_obs, "terminated": terminated, "truncated": truncated}
        mask = None
        if self.mask_size is not None:
            mask = out[5]
            info = {**info, "action_mask": mask, "final_action_mask": out[6]}
        return obs, HostState(steps=state.steps + 1, mask=mask), reward, terminated, truncated, info


def host_stats(env: Any) -> dict[str, float]:
    """`drain_stats()` of the host of `env` (possibly wrapped); {} for any other environment."""
    inner = getattr(env, "unwrapped", env)
    return inner.drain_stats() if isinstance(inner, HostVectorEnv) else {}


def host_failure(env: Any) -> BaseException | None:
    """The first exception the host of `env` (a HostVectorEnv, possibly wrapped) raised inside
    a host call, or None (also for an environment that is not a host one)."""
    inner = getattr(env, "unwrapped", env)
    return getattr(inner, "failure", None) if isinstance(inner, HostVectorEnv) else None


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
