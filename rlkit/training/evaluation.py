"""Evaluation episodes, separate from training: one finished episode per vectorised copy.

An `act` with an `env_state` parameter (a planner: agents/mcts.py, agents/alphazero.py) also
receives the state of the environment copies, [E, ...] (rlkit.core.env_state); every other
`act` is called with observations only, as always.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from rlkit.core.env_state import WithEnvState, takes_env_state
from rlkit.core.wrappers import as_vector_env
from rlkit.data.rollout import reset_envs, rollout

__all__ = ["evaluate"]


def evaluate(
    env: Any,
    env_params: Any,
    act: Callable[..., jax.Array],
    policy_params: Any,
    key: jax.Array,
    num_episodes: int,
    deterministic: bool = True,
    max_steps: int | None = None,
) -> dict[str, jax.Array]:
    """Return and length of the first episode of each of `num_episodes` copies of `env`.

    Runs `max_steps` steps (default: the env's `max_steps_in_episode`, else 1000); an episode
    that has not ended by then counts with its return so far (`finished` says which ended).
    Returns dict(returns [E], lengths [E], finished [E]).

    When `act` takes `env_state` (`takes_env_state`), it is called as act(policy_params, obs,
    key, deterministic, mask, env_state=state), state that of `env`'s copies [E, ...].
    """
    if max_steps is None:
        max_steps = int(getattr(env_params, "max_steps_in_episode", 1000))
    venv = as_vector_env(env, num_episodes)
    plans = takes_env_state(act)
    if plans:
        venv = WithEnvState(venv, env)
    reset_key, run_key = jax.random.split(key)
    carry = reset_envs(venv, env_params, reset_key)

    def policy(obs: Any, mask: jax.Array | None, key: jax.Array) -> tuple[jax.Array, dict]:
        if plans:
            state = obs["env_state"]
            return act(policy_params, obs["obs"], key, deterministic, mask, env_state=state), {}
        return act(policy_params, obs, key, deterministic, mask), {}

    _, traj = rollout(venv, env_params, policy, carry, run_key, max_steps)
    done = traj.episode["episode_done"]  # [T, E]
    first = jnp.argmax(done, axis=0)  # index of the first episode end per copy
    finished = done.any(axis=0)
    cols = jnp.arange(num_episodes)
    running_return = jnp.cumsum(traj.reward, axis=0)[-1]
    returns = jnp.where(finished, traj.episode["episode_return"][first, cols], running_return)
    lengths = jnp.where(finished, traj.episode["episode_length"][first, cols], max_steps)
    return {"returns": returns, "lengths": lengths, "finished": finished}
