"""Figures of Results (rlkit.report.results): learning curves, a sweep's final score against a
swept value, and performance profiles. Each function writes `<out_stem>.png` and
`<out_stem>.svg` and returns both paths.

Statistics follow rlkit.report.stats: the IQM over seeds with a 95% percentile-bootstrap
interval (the mean instead when there are fewer than 4 seeds, where the 25% trim drops
nothing). A curve is drawn through the log rows where it has a value: a row in which no episode
ended (every episode still running, as when a policy balances for the whole time limit) is
skipped, not drawn as a gap, so sparse rows still show as a line. matplotlib is imported inside
the functions with the Agg backend, so importing this module costs nothing and no display is
needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlkit.report import stats
from rlkit.report.results import Result

__all__ = [
    "finite_points",
    "learning_curves",
    "performance_profiles",
    "spans_decades",
    "sweep_curve",
]

_IQM_MIN_SEEDS = 4  # below this the 25% trim drops nothing: say "mean"


def learning_curves(
    results: Sequence[Result], out_stem: str | Path, per_seed: bool = False
) -> list[Path]:
    """One panel per environment: for each Result, the IQM (or mean) over seeds of
    episode_return against env steps per seed, with a 95% bootstrap band; thin per-seed lines
    when per_seed."""
    plt = _pyplot()
    envs = _by_env(results)
    fig, axes = plt.subplots(1, len(envs), figsize=(6 * len(envs), 4), squeeze=False)
    for ax, (env, group) in zip(axes[0], envs.items(), strict=True):
        for i, r in enumerate(group):
            color = f"C{i % 10}"
            name = _statistic(r.curve.shape[0])
            steps, point, lo, hi = finite_points(
                r.curve_steps, *stats.bootstrap_band(r.curve, name)
            )
            ax.plot(steps, point, color=color, label=f"{r.label} ({name}, n={len(r.curve)})")
            ax.fill_between(steps, lo, hi, color=color, alpha=0.2, linewidth=0)
            if per_seed:
                for seed_curve in r.curve:
                    ax.plot(
                        *finite_points(r.curve_steps, seed_curve), color=color, alpha=0.3, lw=0.6
                    )
        ax.set(title=env, xlabel="environment steps per seed", ylabel="training episode return")
        ax.legend(fontsize="small", title="95% bootstrap CI band", title_fontsize="small")
        ax.grid(alpha=0.3)
    return _save(fig, out_stem)


def sweep_curve(results: Sequence[Result], key: str, out_stem: str | Path) -> list[Path]:
    """Final score (IQM or mean over seeds, 95% bootstrap CI as error bars) against the swept
    value `key`, one line per combination of the other swept values. Log x-axis when the values
    are positive numbers spanning more than a decade; categorical when they are not numbers."""
    plt = _pyplot()
    points = [r for r in results if key in r.values and r.finished]
    if not points:
        raise ValueError(f"no finished sweep point varies {key!r}")
    lines: dict[str, list[Result]] = {}
    for r in points:
        others = ",".join(f"{k}={v}" for k, v in r.values.items() if k != key)
        lines.setdefault(f"{r.algo} {r.env}" + (f" [{others}]" if others else ""), []).append(r)
    values = [r.values[key] for r in points]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    categories = sorted({str(v) for v in values})
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, group in lines.items():
        group = sorted(group, key=lambda r: r.values[key] if numeric else str(r.values[key]))
        x = [r.values[key] if numeric else categories.index(str(r.values[key])) for r in group]
        centre, lo, hi = np.array([_final_with_ci(r.final) for r in group]).T
        label = f"{name} ({_statistic(min(len(r.final) for r in group))})"
        ax.errorbar(x, centre, yerr=[centre - lo, hi - centre], marker="o", capsize=3, label=label)
    if numeric and spans_decades(values):
        ax.set_xscale("log")
    if not numeric:
        ax.set_xticks(range(len(categories)), categories)
    ax.set(xlabel=key, ylabel="final evaluation return", title=f"sweep over {key}")
    ax.legend(fontsize="small", title="95% bootstrap CI", title_fontsize="small")
    ax.grid(alpha=0.3)
    return _save(fig, out_stem)


def performance_profiles(
    results: Sequence[Result], out_stem: str | Path, points: int = 101
) -> list[Path]:
    """One panel per environment: for each Result, the fraction of its seeds whose final score
    exceeds tau, over `points` taus spanning the env's observed scores, with a 95%
    stratified-bootstrap band."""
    plt = _pyplot()
    envs = _by_env([r for r in results if r.finished])
    if not envs:
        raise ValueError("no finished result to profile")
    fig, axes = plt.subplots(1, len(envs), figsize=(6 * len(envs), 4), squeeze=False)
    for ax, (env, group) in zip(axes[0], envs.items(), strict=True):
        finite = np.concatenate([r.final[np.isfinite(r.final)] for r in group])
        low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
        pad = 0.05 * (high - low) or 1.0
        taus = np.linspace(low - pad, high + pad, points)
        for i, r in enumerate(group):
            color = f"C{i % 10}"
            profile = stats.performance_profile(r.final, taus)
            label = f"{r.label} (n={len(r.final)})"
            ax.step(taus, profile, color=color, where="post", label=label)
            lo, hi = stats.performance_profile_ci(r.final, taus, reps=1000)
            ax.fill_between(taus, lo, hi, color=color, alpha=0.2, step="post", linewidth=0)
        ax.set(
            title=env, xlabel=r"final evaluation return $\tau$", ylabel=r"fraction of runs > $\tau$"
        )
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize="small", title="95% bootstrap CI band", title_fontsize="small")
        ax.grid(alpha=0.3)
    return _save(fig, out_stem)


# --- helpers -----------------------------------------------------------------------------------


def finite_points(steps: np.ndarray, *curves: np.ndarray) -> tuple[np.ndarray, ...]:
    """(steps, *curves) [T] restricted to the steps where the first curve is finite, so that a
    line joins the rows that have a value (matplotlib breaks a line at every nan, and a value
    between two nans would not be drawn at all)."""
    keep = np.isfinite(curves[0])
    return (np.asarray(steps)[keep], *(np.asarray(c)[keep] for c in curves))


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out_stem: str | Path) -> list[Path]:
    import matplotlib.pyplot as plt

    stem = Path(out_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    paths = [stem.with_name(f"{stem.name}.{ext}") for ext in ("png", "svg")]
    for path in paths:
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return paths


def _by_env(results: Sequence[Result]) -> dict[str, list[Result]]:
    envs: dict[str, list[Result]] = {}
    for r in results:
        envs.setdefault(r.env, []).append(r)
    return envs


def spans_decades(values: Sequence[float]) -> bool:
    """Whether swept values want a log axis: all positive, max / min > 10."""
    return min(values) > 0 and max(values) / min(values) > 10


def _statistic(seeds: int) -> str:
    return "iqm" if seeds >= _IQM_MIN_SEEDS else "mean"


def _final_with_ci(final: np.ndarray) -> tuple[float, float, float]:
    """(centre, lo, hi) of the finite per-seed finals: IQM or mean, 95% bootstrap CI."""
    s = stats.summary(final)
    name = _statistic(int(s["n"]))
    ci = s["ci95"][name]
    return s[name], ci[0], ci[1]
