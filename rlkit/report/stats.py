"""Statistics for comparing agents from a few seeds (Agarwal et al. 2021, "Deep RL at the edge
of the statistical precipice"), in plain numpy.

Layout: `scores` is [runs, tasks] (one final score per seed and task), or, when tasks have
different numbers of runs, a list of 1-D per-task arrays. A statistic maps such scores to one
number; it sees the flattened values of every task together (IQM of all runs, not a mean of
per-task IQMs).

Point estimates:
    mean, median            over all values;
    iqm                     the 25%-trimmed mean: sort the n values, drop floor(0.25 n) from each
                            end, average the rest (scipy.stats.trim_mean(x, 0.25));
    optimality_gap          mean of max(threshold - x, 0): how far below the target, on average.

Intervals: the stratified bootstrap resamples runs with replacement within each task (a task
keeps its number of runs; tasks never lend runs to each other), recomputes the statistic on
each of `reps` resamples and takes the (1 - confidence)/2 and (1 + confidence)/2 percentiles.
Randomness only through `seed` (numpy's default generator); the same seed gives the same
interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "aggregates",
    "bootstrap_band",
    "iqm",
    "min_max_normalise",
    "optimality_gap",
    "performance_profile",
    "performance_profile_ci",
    "probability_of_improvement",
    "stratified_bootstrap_ci",
    "summary",
]

Scores = np.ndarray | Sequence[np.ndarray]
Statistic = Callable[[np.ndarray], float]


def iqm(scores: Scores) -> float:
    """Interquartile mean of all values: the mean after dropping floor(n/4) from each end."""
    x = np.sort(_flat(scores))
    cut = int(0.25 * x.size)
    return float(x[cut : x.size - cut].mean())


def optimality_gap(scores: Scores, threshold: float = 1.0) -> float:
    """mean over all values of max(threshold - x, 0)."""
    return float(np.maximum(threshold - _flat(scores), 0.0).mean())


def aggregates(scores: Scores) -> dict[str, float]:
    """mean, median, iqm and optimality_gap (threshold 1.0) of all values of [runs, tasks]."""
    x = _flat(scores)
    return {
        "mean": float(x.mean()),
        "median": float(np.median(x)),
        "iqm": iqm(x),
        "optimality_gap": optimality_gap(x),
    }


def stratified_bootstrap_ci(
    scores: Scores,
    statistic: Statistic,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of statistic(scores) by the stratified bootstrap (module docstring).

    scores: [runs, tasks] or a list of per-task 1-D arrays. `statistic` takes a 1-D array of
    all resampled values (the tasks concatenated) and returns a number. Each task's indices
    [reps, runs_t] are drawn at once; the statistic is then applied per resample.
    """
    tasks = _tasks(scores)
    rng = np.random.default_rng(seed)
    resampled = np.concatenate([_resample(rng, t, reps) for t in tasks], axis=1)
    values = np.array([statistic(row) for row in resampled])
    return _percentiles(values, confidence)


def probability_of_improvement(
    x: Scores, y: Scores, reps: int = 2000, confidence: float = 0.95, seed: int = 0
) -> dict[str, float | tuple[float, float]]:
    """P(X > Y): for each task the Mann-Whitney fraction of pairs (x_i, y_j) with x_i > y_j,
    ties counting 1/2, averaged over tasks. x, y: [runs, tasks] or per-task lists with the same
    tasks (their run counts may differ). The CI resamples the runs of x and of y independently
    within each task (stratified bootstrap of both).

    Returns {"point": float, "ci": (lo, hi)}.
    """
    xs, ys = _tasks(x), _tasks(y)
    if len(xs) != len(ys):
        raise ValueError(f"x has {len(xs)} tasks, y has {len(ys)}")
    point = float(
        np.mean([_pairwise_win(a[None], b[None])[0] for a, b in zip(xs, ys, strict=True)])
    )
    rng = np.random.default_rng(seed)
    per_task = [
        _pairwise_win(_resample(rng, a, reps), _resample(rng, b, reps))
        for a, b in zip(xs, ys, strict=True)
    ]
    return {"point": point, "ci": _percentiles(np.mean(per_task, axis=0), confidence)}


def performance_profile(scores: Scores, taus: np.ndarray) -> np.ndarray:
    """Fraction of all runs (every task pooled) with score > tau, for each tau: [len(taus)]."""
    x = _flat(scores)
    return (x[:, None] > np.asarray(taus, np.float64)[None, :]).mean(axis=0)


def performance_profile_ci(
    scores: Scores, taus: np.ndarray, reps: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise percentile band (lo [len(taus)], hi [len(taus)]) of performance_profile by the
    stratified bootstrap."""
    tasks = _tasks(scores)
    rng = np.random.default_rng(seed)
    resampled = np.concatenate([_resample(rng, t, reps) for t in tasks], axis=1)
    taus = np.asarray(taus, np.float64)
    profiles = (resampled[:, :, None] > taus[None, None, :]).mean(axis=1)  # [reps, taus]
    alpha = 100 * (1 - confidence) / 2
    return np.percentile(profiles, alpha, axis=0), np.percentile(profiles, 100 - alpha, axis=0)


def bootstrap_band(
    curve: np.ndarray,
    statistic: str = "iqm",
    reps: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a learning curve [seeds, T] (nan: no value), the statistic ("iqm" or "mean") over the
    finite seeds at each step and its bootstrap percentile interval: (point, lo, hi), each [T],
    nan where a step has no finite value. Each step resamples its own finite seeds, all `reps`
    resamples at once ([reps, n] indices, then a row-wise trimmed mean).
    """
    if statistic not in ("iqm", "mean"):
        raise ValueError(f"statistic must be 'iqm' or 'mean', not {statistic!r}")
    curve = np.asarray(curve, np.float64)
    rng = np.random.default_rng(seed)
    point, lo, hi = (np.full(curve.shape[1], np.nan) for _ in range(3))
    alpha = 100 * (1 - confidence) / 2
    for t in range(curve.shape[1]):
        x = curve[:, t][np.isfinite(curve[:, t])]
        if x.size == 0:
            continue
        trim = 0.25 if statistic == "iqm" else 0.0
        point[t] = _trimmed_rows(x[None], trim)[0]
        boot = _trimmed_rows(_resample(rng, x, reps), trim)
        lo[t], hi[t] = np.percentile(boot, [alpha, 100 - alpha])
    return point, lo, hi


def min_max_normalise(scores: np.ndarray, low: float, high: float) -> np.ndarray:
    """(scores - low) / (high - low): low maps to 0, high to 1. high must differ from low."""
    if high == low:
        raise ValueError(f"normalisation needs high != low (both {low})")
    return (np.asarray(scores, np.float64) - low) / (high - low)


def summary(
    values: np.ndarray, reps: int = 2000, confidence: float = 0.95, seed: int = 0
) -> dict[str, object]:
    """Summary of one set of per-seed values [seeds] (one task): n (finite values kept),
    non_finite (how many nan/inf were dropped), mean, median, iqm and
    ci95 {"mean": [lo, hi], "iqm": [lo, hi]} by the bootstrap over seeds. With one value the
    intervals collapse to it; with none every number is nan.
    """
    x = np.asarray(values, np.float64).ravel()
    finite = x[np.isfinite(x)]
    out: dict[str, object] = {"n": int(finite.size), "non_finite": int(x.size - finite.size)}
    if finite.size == 0:
        nan = float("nan")
        return out | {"mean": nan, "median": nan, "iqm": nan, "ci95": _ci_dict((nan, nan))}
    mean_ci = stratified_bootstrap_ci(finite, _mean, reps, confidence, seed)
    iqm_ci = stratified_bootstrap_ci(finite, iqm, reps, confidence, seed)
    return out | {
        "mean": float(finite.mean()),
        "median": float(np.median(finite)),
        "iqm": iqm(finite),
        "ci95": {"mean": list(mean_ci), "iqm": list(iqm_ci)},
    }


# --- helpers -----------------------------------------------------------------------------------


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x))


def _ci_dict(ci: tuple[float, float]) -> dict[str, list[float]]:
    return {"mean": list(ci), "iqm": list(ci)}


def _flat(scores: Scores) -> np.ndarray:
    """Every value of [runs, tasks] (or of a per-task list) as one 1-D float array."""
    x = np.concatenate([t.ravel() for t in _tasks(scores)])
    if x.size == 0:
        raise ValueError("no scores")
    return x


def _tasks(scores: Scores) -> list[np.ndarray]:
    """Per-task 1-D arrays: the columns of a [runs, tasks] array (a 1-D array is one task)."""
    if isinstance(scores, np.ndarray) or not isinstance(scores, (list, tuple)):
        array = np.asarray(scores, np.float64)
        if array.ndim == 1:
            array = array[:, None]
        if array.ndim != 2:
            raise ValueError(f"scores must be [runs, tasks], got shape {array.shape}")
        return [array[:, t] for t in range(array.shape[1])]
    return [np.asarray(t, np.float64).ravel() for t in scores]


def _resample(rng: np.random.Generator, task: np.ndarray, reps: int) -> np.ndarray:
    """[reps, runs]: the task's runs drawn with replacement, `reps` times."""
    return task[rng.integers(0, task.size, size=(reps, task.size))]


def _pairwise_win(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[reps]: for x [reps, n], y [reps, m], the mean over pairs of 1[x > y] + 1/2 1[x == y]."""
    diff = x[:, :, None] - y[:, None, :]
    return (diff > 0).mean(axis=(1, 2)) + 0.5 * (diff == 0).mean(axis=(1, 2))


def _trimmed_rows(x: np.ndarray, proportion: float) -> np.ndarray:
    """[rows]: the mean of each row of x [rows, n] after dropping floor(proportion n) per end."""
    n = x.shape[1]
    cut = int(proportion * n)
    return np.sort(x, axis=1)[:, cut : n - cut].mean(axis=1)


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(values, [alpha, 100 - alpha])
    return float(lo), float(hi)
