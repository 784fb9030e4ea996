"""The divergence guard: a run whose losses, gradients or parameters stop being finite ends at
the chunk where it happens, with the metric, iteration and seed named, instead of training on
NaNs and reporting a meaningless return.

What is checked after every chunk: every metric whose name ends in "loss" and "grad_norm"
(each agent reports its losses and its gradient norm under such names), for every iteration
and seed of the chunk, and every leaf of every seed's policy parameters (`Algorithm.
policy_params`) at the chunk's end. Other metrics may be NaN by design (episode_return where
no episode ended, explained_variance of constant targets) and are not checked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Diverged", "check_metrics", "guarded_metric", "params_finite"]


class Diverged(Exception):
    """Training produced a non-finite value: `what` (a metric name or "parameters") at
    iteration `iteration` (0-based) of seed `seed`."""

    def __init__(self, what: str, iteration: int, seed: int, value: float | None = None):
        self.what, self.iteration, self.seed, self.value = what, iteration, seed, value
        shown = "" if value is None else f" ({value})"
        super().__init__(f"{what} is not finite{shown} at iteration {iteration}, seed {seed}")


def guarded_metric(name: str) -> bool:
    """Whether the guard checks the metric `name`: losses and gradient norms."""
    return name.endswith("loss") or name == "grad_norm"


def check_metrics(first_iteration: int, metrics: dict[str, np.ndarray]) -> None:
    """Raise Diverged at the first non-finite guarded value of a chunk's metrics [seeds, K]
    (earliest iteration first, then the lowest seed)."""
    first = None
    for name, values in metrics.items():
        if not guarded_metric(name):
            continue
        bad = ~np.isfinite(np.asarray(values, np.float64))
        if bad.any():
            seed, k = min(zip(*np.nonzero(bad), strict=True), key=lambda sk: (sk[1], sk[0]))
            if first is None or (k, seed) < (first[2], first[1]):
                first = (name, int(seed), int(k), float(values[seed, k]))
    if first is not None:
        name, seed, k, value = first
        raise Diverged(name, first_iteration + k, seed, value)


def params_finite(policy_params: Callable[[Any], Any]) -> Callable[[Any], jax.Array]:
    """state (one seed's) -> bool scalar: every floating-point policy parameter is finite.
    Traced into the runner's chunk program (vmapped over seeds), so checking costs no
    compilation or transfer of its own."""

    def finite(state: Any) -> jax.Array:
        leaves = jax.tree.leaves(policy_params(state))
        floats = [x for x in leaves if jnp.issubdtype(x.dtype, jnp.floating)]
        return jnp.all(jnp.stack([jnp.isfinite(x).all() for x in floats]))

    return finite
