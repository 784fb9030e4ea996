"""What the studies in experiments/ share: their command line, turning a trained RunResult into
`rlkit.report.results.Result` arms, and writing each study's table and plots.

Every study trains its arms with `rlkit.Runner` on paired seeds (seed i starts from the key
fold_in(PRNGKey(0), i) in every arm) and writes to experiments/results/<study>/:

    table.md                      per arm: seeds, mean, median and IQM [95% CI] of the final
                                  return, the training AUC's IQM [95% CI], and for an ablation
                                  P(arm > baseline) [95% CI]; the same table is printed
    curves.png, .svg              learning curves: IQM over seeds, 95% bootstrap band
    profile.png, .svg             performance profiles of the final return (comparisons), or
    sweep.png, .svg               the final return against the swept value (sweeps)

The numbers:
    final   per seed, the mean return of the final deterministic evaluation (32 episodes);
    AUC     per seed, the mean return of every training episode (Schulman et al. 2016's
            "area under the learning curve", PAPER-TARGETS #9): sum over iterations of
            episode_return x episodes, over the sum of episodes;
    curve   per seed, the mean return of the training episodes that ended in each of about 100
            bins of consecutive iterations, over env steps (nan where none ended).
Statistics are rlkit.report.stats (Agarwal et al. 2021): IQM with a 95% stratified-bootstrap
interval (2000 resamples) and the probability of improvement P(X > Y) (Mann-Whitney, ties 1/2).

Command line of every study: --seeds N, --steps FACTOR (multiplies every env-step budget),
--quick (2 seeds and a tiny budget: a smoke test, not a result), --out DIR, and --envs for a
study of several environments.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from rlkit.report import plots, stats
from rlkit.report.results import Result

__all__ = ["Arm", "arguments", "arms", "budget", "write"]

RESULTS = Path(__file__).resolve().parent / "results"
CURVE_POINTS = 100


class Arm(NamedTuple):
    """One arm of a study: its Result (final [seeds], curve [seeds, T]) and auc [seeds]."""

    result: Result
    auc: np.ndarray


def arguments(
    study: str,
    doc: str,
    seeds: int,
    argv: Sequence[str] | None = None,
    envs: Sequence[str] | None = None,
) -> argparse.Namespace:
    """The study's command line: seeds, steps (a factor), quick, out (experiments/results/<study>
    unless given), and for a study of several `envs` the ones to run (default all)."""
    parser = argparse.ArgumentParser(
        description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=seeds, help=f"seeds per arm (default {seeds})")
    parser.add_argument(
        "--steps", type=float, default=1.0, help="multiply every env-step budget (default 1)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="2 seeds and a tiny budget: a smoke test"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / study, help="output directory")
    if envs is not None:
        parser.add_argument(
            "--envs", nargs="+", choices=envs, default=list(envs), help="envs to run (all)"
        )
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds = 2
    return args


def budget(args: argparse.Namespace, steps: int, quick: int) -> int:
    """The env steps per seed of one arm: `steps` times --steps, or `quick` with --quick."""
    return quick if args.quick else max(1, round(steps * args.steps))


def arms(
    run: Any,
    algo: Any,
    env: str,
    labels: Sequence[str],
    values: Sequence[dict[str, Any]] | None = None,
    curve_points: int = CURVE_POINTS,
) -> list[Arm]:
    """The arms of a RunResult of `algo` (rlkit.core.algorithm.Algorithm): one per label, in
    member order (a sweep's point p holds members p * S .. p * S + S - 1, so one label for a
    plain run, one per point for a sweep of `points=`); `values` are the swept values per point.
    `curve_points`: bins of the learning curve (fewer where episodes are long, so that every
    bin holds an episode end).
    """
    returns = np.asarray(run.metrics["episode_return"], np.float64)  # [members, iterations]
    episodes = np.asarray(run.metrics["episodes"], np.float64)
    finals = np.asarray(run.evaluation["returns"], np.float64).mean(axis=1)  # [members]
    steps, curve = binned_curve(
        returns, episodes, algo.init_steps, algo.steps_per_iteration, curve_points
    )
    auc = weighted_mean(returns, episodes)
    seeds = len(finals) // len(labels)
    out = []
    for p, label in enumerate(labels):
        members = slice(p * seeds, (p + 1) * seeds)
        point = {} if values is None else dict(values[p])
        result = Result(
            label,
            algo_name(algo),
            env,
            "sweep point" if values is not None else "run",
            RESULTS,
            finals[members],
            steps,
            curve[members],
            point,
        )
        out.append(Arm(result, auc[members]))
    return out


def algo_name(algo: Any) -> str:
    """The agent's module name (agents.ppo -> "ppo") from its config's class."""
    return type(algo.config).__module__.rsplit(".", 1)[-1]


def weighted_mean(returns: np.ndarray, episodes: np.ndarray) -> np.ndarray:
    """[members]: sum_i returns[:, i] episodes[:, i] / sum_i episodes[:, i] over the iterations
    where an episode ended (returns is nan elsewhere); nan for a member with no episode."""
    done = episodes > 0
    total = np.where(done, returns * episodes, 0.0).sum(axis=-1)
    count = np.where(done, episodes, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def binned_curve(
    returns: np.ndarray,
    episodes: np.ndarray,
    init_steps: int,
    steps_per_iteration: int,
    points: int = CURVE_POINTS,
) -> tuple[np.ndarray, np.ndarray]:
    """(steps [T], curve [members, T]) with T = min(iterations, points): consecutive iterations
    in T near-equal bins, each bin the mean return of the episodes that ended in it, at the env
    steps per seed when its last iteration ended (init_steps + (i + 1) steps_per_iteration)."""
    iterations = returns.shape[1]
    bins = np.array_split(np.arange(iterations), min(iterations, points))
    steps = np.array([init_steps + (b[-1] + 1) * steps_per_iteration for b in bins], np.int64)
    curve = np.stack([weighted_mean(returns[:, b], episodes[:, b]) for b in bins], axis=1)
    return steps, curve


def write(
    study_arms: Sequence[Arm],
    out: Path,
    title: str,
    setting: str,
    baseline: str | None = None,
    sweep_key: str | None = None,
) -> str:
    """Write table.md, the learning curves and the profile (or, with `sweep_key`, the sweep
    curve) into `out`; print and return the table. `baseline`: the label every other arm of the
    same env is compared with by P(arm > baseline) of the final returns."""
    out.mkdir(parents=True, exist_ok=True)
    results = [a.result for a in study_arms]
    lines = [f"# {title}", "", setting.strip(), ""]
    envs = dict.fromkeys(r.env for r in results)
    for env in envs:
        group = [a for a in study_arms if a.result.env == env]
        lines += [f"## {env}", "", *table(group, baseline), ""]
    lines += [
        "final: per seed, the mean return of 32 deterministic evaluation episodes after training;",
        "AUC: per seed, the mean return of all training episodes. IQM with a 95% stratified-",
        "bootstrap CI over seeds (2000 resamples); P(arm > baseline): probability of improvement",
        "of the final return over the baseline's, paired seeds, 95% bootstrap CI.",
        "",
    ]
    text = "\n".join(lines)
    (out / "table.md").write_text(text)
    print(text)
    figures = plots.learning_curves(results, out / "curves")
    if sweep_key is None:
        figures += plots.performance_profiles(results, out / "profile")
    else:
        figures += plots.sweep_curve(results, sweep_key, out / "sweep")
    for path in figures:
        if path.suffix == ".png":
            small_png(path)
    return text


def small_png(path: Path) -> None:
    """Rewrite a PNG with a 256-colour palette (a third of the size of matplotlib's RGBA for
    these line plots), so committed figures stay well under 200 kB."""
    from PIL import Image

    with Image.open(path) as image:
        palette = image.convert("RGB").quantize(256)
    palette.save(path, optimize=True)


def table(group: Sequence[Arm], baseline: str | None) -> list[str]:
    """Markdown rows of one env's arms (see `write`)."""
    head = "| arm | seeds | final mean | final median | final IQM [95% CI] | AUC IQM [95% CI] |"
    rule = "|---|---|---|---|---|---|"
    base = next((a for a in group if a.result.label == baseline), None)
    if base is not None:
        head += " P(arm > baseline) [95% CI] |"
        rule += "---|"
    rows = [head, rule]
    for arm in group:
        final, auc = stats.summary(arm.result.final), stats.summary(arm.auc)
        row = (
            f"| {arm.result.label} | {final['n']} | {final['mean']:.1f} | {final['median']:.1f} "
            f"| {interval(final)} | {interval(auc)} |"
        )
        if base is not None:
            if arm is base:
                row += " (baseline) |"
            else:
                p = stats.probability_of_improvement(arm.result.final, base.result.final)
                row += f" {p['point']:.2f} [{p['ci'][0]:.2f}, {p['ci'][1]:.2f}] |"
        rows.append(row)
    return rows


def interval(s: dict[str, Any]) -> str:
    """'IQM [lo, hi]' of a stats.summary."""
    lo, hi = s["ci95"]["iqm"]
    return f"{s['iqm']:.1f} [{lo:.1f}, {hi:.1f}]"
