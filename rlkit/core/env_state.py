"""Showing a policy the environment's state, for agents that plan with the environment itself.

The rollout core (`rlkit.data.rollout.rollout`) hands a policy the observation, the action mask
and a key. A planner (MCTS with the true model) also needs the state the environment is in.
`WithEnvState` wraps a vectorised environment so that its observation carries the state:

    obs -> {"obs": obs, "env_state": the state of `env` (the unwrapped copies), [N, ...]}

and the rollout, unchanged, passes it to the policy. Only the policy's view changes: rewards,
flags, masks and `info` are the wrapped environment's; `info["final_observation"]` stays the
plain pre-reset observation (the pre-reset state is not kept by the auto-resetting step).

`takes_env_state(act)` is how an Algorithm says that its `act` plans: its signature has an
`env_state` parameter. Evaluation (`rlkit.training.evaluation.evaluate`) then calls it as
`act(params, obs, key, deterministic, action_mask, env_state=state)`; every other `act` is
called as before.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import jax

from rlkit.core.env import Wrapper

__all__ = ["WithEnvState", "inner_state", "takes_env_state"]


def takes_env_state(act: Callable[..., Any]) -> bool:
    """Whether `act` plans with the environment's state: it has a parameter named env_state."""
    try:
        return "env_state" in inspect.signature(act).parameters
    except (TypeError, ValueError):  # a callable without a signature (a builtin)
        return False


def inner_state(venv: Any, state: Any, env: Any) -> Any:
    """The state of `env` inside `state`, the state of `venv` (`env` wrapped, possibly
    vectorised): each wrapper between them unwraps its own part (`Wrapper.inner_state`).
    Leaves keep venv's batch axis [N, ...]."""
    current = venv
    while current is not env and isinstance(current, Wrapper):
        state = current.inner_state(state)
        current = current._env
    return state


class WithEnvState(Wrapper):
    """A vectorised environment whose observations are {"obs": obs, "env_state": state}, the
    state being that of `env` (the environment `venv` was built from: `inner_state`)."""

    def __init__(self, venv: Any, env: Any):
        super().__init__(venv)
        self._target = env

    def _observe(self, obs: Any, state: Any) -> dict[str, Any]:
        return {"obs": obs, "env_state": inner_state(self._env, state, self._target)}

    def reset(self, key: jax.Array, params: Any = None) -> tuple[Any, Any]:
        obs, state = self._env.reset(key, params)
        return self._observe(obs, state), state

    def step(self, key: jax.Array, state: Any, action: Any, params: Any = None) -> tuple:
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        return self._observe(obs, state), state, reward, terminated, truncated, info
