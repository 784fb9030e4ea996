"""rlkit: a JAX reinforcement-learning toolkit.

The shared core, in layers (each imports only the layers before it in this list):

    rlkit.ops      pure math: returns, losses, TD targets, distributions, optimisers, schedules,
                   dynamic programming on tabular models, fast-compiling PRNG keys
    rlkit.core     contracts: the environment, spaces, wrappers, the Algorithm, config fields,
                   finite-state environments (`tabular`), the env state a planner sees
    rlkit.nets     flax networks: torsos, heads, actor-critic, Q networks, actors
    rlkit.data     experience: rollout, replay, what on- and off-policy agents share
    rlkit.planning Monte Carlo tree search (mctx) with the environment as its model (beside
                   training, not above it)
    rlkit.training running: the runner, devices, the compilation cache, evaluation,
                   checkpoints, the divergence guard
    rlkit.report   what a run leaves: the run directory, metrics rows, TensorBoard and W&B
                   sinks, benchmark tables
    rlkit.bridges  environments outside JAX (host callbacks; beside core, not above it)
    rlkit.cli      the command line and `load_run`, the only layer that imports agents/ and
                   envs/

Agents live in `agents/`, environments in `envs/`. The public entry points (`from rlkit import
train, Runner, Objective, ...`) load lazily, so that `import rlkit` does not start JAX's backend
(call `use_cpu_cores()` and `prefer_fast_cpu_compilation()` before it starts).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_ENTRY_POINTS = {
    "Algorithm": "rlkit.core.algorithm",
    "Objective": "rlkit.core.algorithm",
    "RunResult": "rlkit.training.runner",
    "Runner": "rlkit.training.runner",
    "config_from_dict": "rlkit.core.config",
    "enable_compilation_cache": "rlkit.training.compile_cache",
    "evaluate": "rlkit.training.evaluation",
    "load_run": "rlkit.cli.evaluate",
    "prefer_fast_cpu_compilation": "rlkit.training.cpu_compilation",
    "train": "rlkit.training.runner",
    "use_cpu_cores": "rlkit.training.devices",
}
__all__ = sorted(_ENTRY_POINTS)


def __getattr__(name: str) -> Any:
    module = _ENTRY_POINTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rlkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
