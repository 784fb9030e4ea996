"""The Algorithm contract every agent implements (agents/<name>.py).

An agent module exposes `Config` (a frozen dataclass of `rlkit.config.hp` fields) and
`make(config, env, env_params) -> Algorithm`. The Algorithm holds pure functions:

- `init(key, hparams) -> TrainState`: parameters, optimiser states, env states, replay buffer,
  counters and RNG in one pytree; `hparams` (the config's traced fields, a dict of float32
  scalars) is stored in it, so `jax.vmap(init)` over keys and hparams gives seeds and sweeps.
- `update(state) -> (state, metrics)`: one training iteration (collect + learn); jittable,
  vmappable, without Python side effects. `metrics` is a flat dict of scalars for this
  iteration (reduced over env steps, never stacked per step).
- `act(policy_params, obs, key, deterministic, action_mask=None) -> action`: the policy on one
  batch of observations [B, ...], for evaluation and export.
- `policy_params(state)`: what `act` needs from a TrainState (weights and normaliser stats).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["Algorithm"]


class Algorithm(NamedTuple):
    """Pure functions of one configured agent, plus the static facts the runner needs.

    steps_per_update: environment steps (summed over vectorised copies) per `update`.
    num_updates: updates in the configured budget (`config.total_steps // steps_per_update`).
    env, env_params: the single (unvectorised) environment, for evaluation.
    """

    init: Callable[[Any, dict[str, Any]], Any]
    update: Callable[[Any], tuple[Any, dict[str, Any]]]
    act: Callable[..., Any]
    policy_params: Callable[[Any], Any]
    hparams: dict[str, Any]
    steps_per_update: int
    num_updates: int
    config: Any
    env: Any
    env_params: Any
