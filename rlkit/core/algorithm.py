"""The Algorithm contract every agent implements (agents/<name>.py), and `Objective`, the shape
of a replaceable loss that carries state of its own.

An agent module exposes `Config` (a frozen dataclass of `rlkit.core.config.hp` fields) and
`make(config, env, env_params, ...) -> Algorithm`. The Algorithm holds pure functions:

- `init(key, hparams) -> TrainState`: parameters, optimiser states, env states, replay buffer,
  counters and RNG in one pytree; `hparams` (the config's traced fields, a dict of float32
  scalars) is stored in it, so `jax.vmap(init)` over keys and hparams gives seeds and sweeps.
- `update(state) -> (state, metrics)`: one training iteration (collect + learn); jittable,
  vmappable, without Python side effects. `metrics` is a flat dict of scalars for this
  iteration (reduced over env steps, never stacked per step).
- `act(policy_params, obs, key, deterministic, action_mask=None) -> action`: the policy on one
  batch of observations [B, ...], for evaluation and export.
- `policy_params(state)`: what `act` needs from a TrainState (weights and normaliser stats).

Extension points: each agent's `make` takes its losses or targets as keyword arguments
(`ppo.make(..., loss=...)`, `dqn.make(..., target=...)`, `sac.make(..., actor_loss=...)`),
defaulting to the module-level functions of the same agent. A replacement is traced into the same
compiled program as the rest of the iteration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["Algorithm", "Objective", "as_objective"]


class Algorithm(NamedTuple):
    """Pure functions of one configured agent, plus the static facts the runner needs.

    steps_per_iteration: environment steps (summed over vectorised copies) per `update`.
    num_iterations: `update` calls in the configured budget.
    env, env_params: the single (unvectorised) environment, for evaluation.
    init_steps: environment steps (summed over copies) that `init` already takes (the off-policy
        warm-up with random actions); a run takes init_steps + num_iterations *
        steps_per_iteration steps per seed.
    """

    init: Callable[[Any, dict[str, Any]], Any]
    update: Callable[[Any], tuple[Any, dict[str, Any]]]
    act: Callable[..., Any]
    policy_params: Callable[[Any], Any]
    hparams: dict[str, Any]
    steps_per_iteration: int
    num_iterations: int
    config: Any
    env: Any
    env_params: Any
    init_steps: int = 0


def _no_state(hparams: dict[str, jax.Array]) -> dict[str, jax.Array]:
    return {}


def _unchanged(state: dict[str, jax.Array], stats: dict[str, jax.Array]) -> dict[str, jax.Array]:
    return state


class Objective(NamedTuple):
    """A loss with state of its own that adapts between iterations (an adaptive KL coefficient,
    a Lagrange multiplier, ...), for the on-policy agents' `make(..., loss=Objective(...))`.

    loss: the agent's loss signature (see its module-level `loss`); the state's entries reach it
        in `coefs`, by name, beside the agent's own coefficients.
    init(hparams) -> state: a dict of scalars, the state at iteration 0 (stored in the TrainState,
        so it is vmapped over seeds and saved with the rest).
    adapt(state, stats) -> state: once per iteration, after learning; `stats` are the loss's own
        statistics of the iteration's last gradient pass (the last epoch), averaged.

    The state's entries are also logged, beside the agent's metrics.
    """

    loss: Callable[..., tuple[jax.Array, dict[str, jax.Array]]]
    init: Callable[[dict[str, jax.Array]], dict[str, jax.Array]] = _no_state
    adapt: Callable[[dict[str, jax.Array], dict[str, jax.Array]], dict[str, jax.Array]] = _unchanged

    def initial_state(self, hparams: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """`init(hparams)` with every entry a float32 array."""
        return {k: jnp.asarray(v, jnp.float32) for k, v in self.init(hparams).items()}


def as_objective(loss: Callable[..., Any] | Objective) -> Objective:
    """A plain loss function as a stateless Objective; an Objective as it is."""
    return loss if isinstance(loss, Objective) else Objective(loss)
