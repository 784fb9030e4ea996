"""Metrics rows: a chunk's per-iteration metrics reduced to one row per log interval and seed,
and the JSON encoding that keeps "no data" apart from "not finite".

A row covers the iterations of one log interval: [j * interval, (j + 1) * interval), cut
short at a chunk's end (a row never spans two chunks, so the rows of a resumed run are those
of a run never stopped: it restarts at a chunk boundary). With `interval` chosen as
ceil(log_every / steps_per_iteration) iterations, a seed gets about one row per `log_every`
environment steps, whatever the algorithm does per iteration: at most 1M / log_every rows
per 1M steps (about 0.4 kB each), so 1000 rows and about 0.4 MB per seed at the default.

Reduction over the iterations of a row:
    episodes                        the sum (episodes that ended in the interval);
    episode_return, episode_length  the mean over those episodes (each iteration's value
                                    weighted by its episode count); no data if none ended;
    every other metric              the mean over the iterations.

Encoding (`json_value`): a finite number as it is; None ("no data": no episode ended, JSON
null) stays None; a non-finite number becomes the string "nan", "inf" or "-inf", so a
diverged loss is never mistaken for a missing value. Every file rlkit writes is strict JSON.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

__all__ = ["DEFAULT_LOG_EVERY", "aggregate", "dumps", "json_value", "log_interval"]

DEFAULT_LOG_EVERY = 1000  # environment steps per seed between rows
_PER_EPISODE = ("episode_return", "episode_length")
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def log_interval(steps_per_iteration: int, log_every: int = DEFAULT_LOG_EVERY) -> int:
    """Iterations per row: ceil(log_every / steps_per_iteration), at least 1."""
    return max(1, -(-log_every // steps_per_iteration))


def aggregate(
    first_iteration: int,
    metrics: dict[str, np.ndarray],
    interval: int,
    steps_per_iteration: int,
    init_steps: int = 0,
) -> list[dict[str, Any]]:
    """Rows of a chunk: metrics [seeds, K] of iterations first_iteration .. first_iteration+K-1.

    Each row: iteration (the last one it covers), seed, env_steps (per seed, at the end of that
    iteration: init_steps + (iteration + 1) * steps_per_iteration), iterations (how many it
    covers), then each metric reduced as the module docstring says (None for no data).
    Ordered by iteration, then seed.
    """
    num_seeds, length = next(iter(metrics.values())).shape[:2]
    values = {name: np.asarray(v, np.float64) for name, v in metrics.items()}
    rows = []
    start = 0
    while start < length:
        absolute = first_iteration + start
        stop = min(length, start + interval - absolute % interval)
        last = first_iteration + stop - 1
        for seed in range(num_seeds):
            row: dict[str, Any] = {
                "iteration": last,
                "seed": seed,
                "env_steps": init_steps + (last + 1) * steps_per_iteration,
                "iterations": stop - start,
            }
            window = {name: v[seed, start:stop] for name, v in values.items()}
            row.update(_reduce(window))
            rows.append(row)
        start = stop
    return rows


def _reduce(window: dict[str, np.ndarray]) -> dict[str, float | None]:
    episodes = window.get("episodes")
    out: dict[str, float | None] = {}
    for name, v in window.items():
        if name == "episodes":
            out[name] = float(v.sum())
        elif name in _PER_EPISODE and episodes is not None:
            total = episodes.sum()
            ended = episodes > 0
            out[name] = float((v[ended] * episodes[ended]).sum() / total) if total > 0 else None
        elif name in _PER_EPISODE:
            seen = v[~np.isnan(v)]
            out[name] = float(seen.mean()) if seen.size else None
        else:
            out[name] = float(v.mean())
    return out


def json_value(x: Any) -> Any:
    """A value as strict JSON: None stays None, non-finite floats become "nan"/"inf"/"-inf",
    numpy scalars and arrays become Python numbers and lists (elementwise)."""
    if x is None or isinstance(x, (bool, str)):
        return x
    if isinstance(x, dict):
        return {k: json_value(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_value(v) for v in x]
    array = np.asarray(x)
    if array.ndim > 0:
        return [json_value(v) for v in array.tolist()]
    value = array.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def dumps(obj: Any, **kwargs: Any) -> str:
    """json.dumps of json_value(obj); raises rather than write a bare NaN."""
    return json.dumps(json_value(obj), allow_nan=False, **kwargs)


def number(value: Any) -> float | None:
    """The inverse of json_value for one metric: None, a float, or nan/inf from its string."""
    if value is None:
        return None
    if isinstance(value, str):
        return _NON_FINITE[value]
    return float(value)
