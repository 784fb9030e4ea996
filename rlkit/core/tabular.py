"""Environments with a finite state space: the `FiniteStates` contract and their exact model.

An environment whose states (apart from its step counter) are finitely many can implement
`FiniteStates`: a numbering of its states 0 .. S-1, readable from a state and from an
observation, an enumeration in that order, and the start distribution. Then

- tabular learners (agents/qlearning.py) keep a table indexed by `obs_index(obs)`, so they act
  on the observations the rollout core and the evaluation hand them;
- `deterministic_model(env, params)` steps every state with every action once and returns the
  exact model (rlkit.ops.dynamic_programming.TabularModel), on which value and policy
  iteration compute V*, Q* and the optimal policies.

Time limits: the step counter is not part of the index. A time-limit truncation cuts an episode
of the task; it is not a transition of it (learners bootstrap across it), so the model is the
task without the limit, and the optimal values are those of the untimed task. They are the
time-limited task's optimal values too wherever an optimal policy ends its episodes before the
limit (on GridWorld-v0: at most 10 of the 100 steps).

The contract (every method static in `params`' shape; `num_states` a Python int):

    num_states(params) -> int                           S
    state_index(state, params) -> int32[]               the index of an env state
    obs_index(obs, params) -> int32[]                   the index of the state obs shows
    enumerate_states(params) -> EnvState, leaves [S, ...]: row i has index i
    initial_distribution(params) -> float32[S]          of the state after `reset`

with state_index(enumerate_states(params)[i]) = i and obs_index(the observation of a state) =
state_index(that state). GridWorld-v0 implements it (envs/gridworld.py).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

from rlkit.core.config import ConfigError
from rlkit.core.env import action_mask
from rlkit.core.spaces import Discrete
from rlkit.ops.dynamic_programming import TabularModel

__all__ = ["FiniteStates", "deterministic_model", "finite_states"]


@runtime_checkable
class FiniteStates(Protocol):
    """An environment with finitely many states, numbered (module docstring)."""

    def num_states(self, params: Any) -> int: ...

    def state_index(self, state: Any, params: Any) -> jax.Array: ...

    def obs_index(self, obs: Any, params: Any) -> jax.Array: ...

    def enumerate_states(self, params: Any) -> Any: ...

    def initial_distribution(self, params: Any) -> jax.Array: ...


def finite_states(env: Any, params: Any, who: str) -> FiniteStates:
    """The innermost environment of `env` (through wrappers) if it implements FiniteStates with
    a Discrete action space; ConfigError naming `who` (what needs it) otherwise."""
    inner = getattr(env, "unwrapped", env)
    if not isinstance(inner, FiniteStates):
        name = getattr(inner, "name", type(inner).__name__)
        raise ConfigError(
            f"{who} needs an environment with a finite, numbered state space "
            f"(rlkit.core.tabular.FiniteStates), such as GridWorld-v0; {name} has none"
        )
    if not isinstance(inner.action_space(params), Discrete):
        raise ConfigError(f"{who} needs a Discrete action space")
    return inner


def deterministic_model(env: Any, params: Any) -> TabularModel:
    """The exact model (K = 1 outcome) of a FiniteStates environment whose `step_env` does not
    depend on its key: every enumerated state stepped once with every action.

    next_state[s, a, 0] = state_index(step_env(s, a)), reward and terminated of that step;
    action_mask[s] = env.action_mask(s) (all True without one); initial =
    initial_distribution. Runs on the host (not jittable: it checks determinism by stepping
    with two keys, ValueError if the outcomes differ). S x A steps in one vmapped program.
    """
    env = finite_states(env, params, "deterministic_model")
    states = env.enumerate_states(params)
    actions = jnp.arange(env.action_space(params).n)

    def outcomes(key: jax.Array, states: Any, actions: jax.Array) -> tuple[Any, ...]:
        def one(state: Any, action: jax.Array) -> tuple[jax.Array, ...]:
            _, after, reward, terminated, _ = env.step_env(key, state, action, params)
            return env.state_index(after, params), reward, terminated

        per_action = jax.vmap(one, in_axes=(None, 0))
        mask = jax.vmap(lambda s: action_mask(env, s, params))(states)
        return (*jax.vmap(per_action, in_axes=(0, None))(states, actions), mask)

    # The states are arguments, not constants of the program: XLA would fold S x A steps.
    program = jax.jit(outcomes)
    first = program(jax.random.key(0), states, actions)
    second = program(jax.random.key(1), states, actions)
    if not all(np.array_equal(a, b) for a, b in zip(first[:3], second[:3], strict=True)):
        raise ValueError(f"{env.name}'s step depends on its key: no deterministic model")
    next_state, reward, terminated, mask = first
    if mask is None:
        mask = jnp.ones(next_state.shape, bool)
    return TabularModel(
        next_state=next_state[..., None].astype(jnp.int32),
        probability=jnp.ones((*next_state.shape, 1), jnp.float32),
        reward=reward[..., None].astype(jnp.float32),
        terminated=terminated[..., None].astype(bool),
        action_mask=jnp.asarray(mask, bool),
        initial=jnp.asarray(env.initial_distribution(params), jnp.float32),
    )
