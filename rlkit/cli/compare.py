"""`rlkit compare`: final scores of runs and sweep points, side by side, with honest intervals.

Per environment, for each entry (a run or a sweep point): the finite per-seed final returns
(non-finite ones dropped and counted), their mean, median and IQM with 95% bootstrap CIs, the
optimality gap, and the probability of improvement over the baseline entry. Over several
environments, the entries found in every environment (matched by arm: a run's algorithm, a
sweep point's label) are min-max normalised per environment and aggregated with the stratified
bootstrap (each environment a task). Numbers come from rlkit.report.stats.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rlkit.cli.errors import UsageError

__all__ = ["add_parser", "compare", "format_table", "run"]

_DESCRIPTION = """\
Compare the final deterministic-evaluation returns of runs and sweep points (one entry per
run, one per sweep point). Per environment: seeds, mean, median and IQM (25%-trimmed mean)
with 95% bootstrap CIs over seeds, the optimality gap mean(max(threshold - x, 0)) with
threshold the environment's --normalise HIGH when given, else the best score observed in that
environment over all entries; and P(entry > baseline) (Mann-Whitney, ties 1/2) with a 95% CI.
Over several environments: the same statistics of min-max normalised scores (LOW:HIGH from
--normalise, else the observed min and max in that environment; the output says which),
stratified by environment, for the entries present in every environment.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "compare",
        help="compare runs and sweeps: IQM, mean, CIs, probability of improvement",
        description=_DESCRIPTION,
    )
    parser.add_argument("paths", nargs="+", metavar="RUN_OR_SWEEP", help="run or sweep directory")
    parser.add_argument(
        "--baseline",
        metavar="LABEL",
        help="entry to compare against: a run's directory name or a sweep point's label like "
        "ppo[learning_rate=0.001] (default: the first entry of each environment)",
    )
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (2000)")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    parser.add_argument(
        "--normalise",
        action="append",
        default=[],
        metavar="ENV=LOW:HIGH",
        help="min-max normalisation of ENV's returns (e.g. CartPole-v1=0:500)",
    )


def run(args: argparse.Namespace, argv: list[str]) -> int:
    from rlkit.report.metrics import dumps
    from rlkit.report.results import load_all

    if args.reps < 1:
        raise UsageError(f"--reps must be at least 1, not {args.reps}")
    normalise = _parse_normalise(args.normalise)
    results = load_all(args.paths, finished=True)
    labels = [r.label for r in results]
    if args.baseline is not None and args.baseline not in labels:
        raise UsageError(f"--baseline {args.baseline!r} is none of: {', '.join(labels)}")
    unknown = sorted(set(normalise) - {r.env for r in results})
    if unknown:
        raise UsageError(f"--normalise names an environment no entry has: {', '.join(unknown)}")
    report = compare(results, args.baseline, args.reps, normalise)
    print(format_table(report))
    if args.json:
        try:
            Path(args.json).write_text(dumps(report, indent=2) + "\n")
        except OSError as error:
            raise UsageError(f"cannot write --json {args.json}: {error.strerror}") from None
        print(f"wrote {args.json}")
    return 0


def compare(
    results: list[Any],
    baseline: str | None,
    reps: int,
    normalise: dict[str, tuple[float, float]],
) -> dict[str, Any]:
    """The numbers of the comparison: {"envs": {env: {...}}, "aggregate": {...} or None}."""
    import numpy as np

    envs: dict[str, list[Any]] = {}
    for r in results:
        envs.setdefault(r.env, []).append(r)
    report: dict[str, Any] = {"envs": {}, "aggregate": None}
    finals = {}  # env -> arm -> finite finals
    for env, entries in envs.items():
        pool = np.concatenate([_finite(r.final) for r in entries])
        low, high, source = _bounds(env, pool, normalise)
        threshold = high if env in normalise else (float(pool.max()) if pool.size else np.nan)
        base = next((r for r in entries if r.label == baseline), entries[0])
        report["envs"][env] = {
            "baseline": base.label,
            "optimality_gap_threshold": threshold,
            "threshold_source": "--normalise HIGH" if env in normalise else "best observed",
            "normalisation": {"low": low, "high": high, "source": source},
            "entries": [_entry(r, base, threshold, reps) for r in entries],
        }
        arms = [_arm(r) for r in entries]
        finals[env] = {a: _finite(r.final) for a, r in zip(arms, entries, strict=True)}
        for a in {a for a in arms if arms.count(a) > 1}:
            del finals[env][a]  # two entries of one arm in one env: not matched across envs
    if len(envs) > 1:
        report["aggregate"] = _aggregate(report, finals, results, baseline, reps)
    return report


def format_table(report: dict[str, Any]) -> str:
    """The report as aligned text: one table per environment, then the aggregate."""
    blocks = []
    for env, block in report["envs"].items():
        title = (
            f"{env}: final deterministic evaluation return; optimality-gap threshold "
            f"{block['optimality_gap_threshold']:.4g} ({block['threshold_source']}); "
            f"baseline {block['baseline']}"
        )
        blocks.append(_table(title, block["entries"]))
    aggregate = report["aggregate"]
    if aggregate is not None:
        bounds = "; ".join(
            f"{env} {n['low']:.4g}:{n['high']:.4g} ({n['source']})"
            for env, n in aggregate["normalisation"].items()
        )
        title = (
            f"aggregate over {len(aggregate['normalisation'])} environments, min-max normalised "
            f"({bounds}); stratified bootstrap; optimality-gap threshold 1; "
            f"baseline {aggregate['baseline']}"
        )
        blocks.append(_table(title, aggregate["entries"]) if aggregate["entries"] else title)
        if aggregate.get("note"):
            blocks.append(aggregate["note"])
    return "\n\n".join(blocks)


# --- numbers -----------------------------------------------------------------------------------


def _entry(r: Any, base: Any, threshold: float, reps: int) -> dict[str, Any]:
    from rlkit.report import stats

    s = stats.summary(r.final, reps=reps)
    x, y = _finite(r.final), _finite(base.final)
    row = {
        "label": r.label,
        "kind": r.kind,
        "path": str(r.path),
        "values": r.values,
        "seeds": s["n"],
        "non_finite": s["non_finite"],
        "mean": s["mean"],
        "mean_ci95": s["ci95"]["mean"],
        "median": s["median"],
        "iqm": s["iqm"],
        "iqm_ci95": s["ci95"]["iqm"],
        "optimality_gap": stats.optimality_gap(x, threshold) if x.size else float("nan"),
    }
    row["probability_of_improvement"] = _improvement(r is base, x, y, reps)
    return row


def _aggregate(
    report: dict[str, Any],
    finals: dict[str, dict[str, Any]],
    results: list[Any],
    baseline: str | None,
    reps: int,
) -> dict[str, Any]:
    """Normalised scores of the arms present (with finite scores) in every environment, as
    per-environment tasks of the stratified bootstrap."""
    from rlkit.report import stats

    envs = list(finals)
    arms = [a for a in finals[envs[0]] if all(a in finals[e] and finals[e][a].size for e in envs)]
    norm = {e: report["envs"][e]["normalisation"] for e in envs}
    out: dict[str, Any] = {"normalisation": norm, "entries": [], "baseline": None}
    if not arms:
        out["note"] = (
            "no aggregate: no entry (arm: a run's algorithm, a sweep point's label) is in "
            "every environment once with finite scores"
        )
        return out
    chosen = [_arm(r) for r in results if r.label == baseline]
    base_arm = chosen[0] if chosen and chosen[0] in arms else arms[0]
    out["baseline"] = base_arm
    tasks = {
        a: [
            stats.min_max_normalise(finals[e][a], norm[e]["low"], norm[e]["high"])
            if norm[e]["high"] != norm[e]["low"]
            else finals[e][a] * 0.0
            for e in envs
        ]
        for a in arms
    }
    for a in arms:
        agg = stats.aggregates(tasks[a])
        out["entries"].append(
            {
                "label": a,
                "seeds": sum(t.size for t in tasks[a]),
                "non_finite": 0,
                "mean": agg["mean"],
                "mean_ci95": list(stats.stratified_bootstrap_ci(tasks[a], _mean, reps)),
                "median": agg["median"],
                "iqm": agg["iqm"],
                "iqm_ci95": list(stats.stratified_bootstrap_ci(tasks[a], stats.iqm, reps)),
                "optimality_gap": agg["optimality_gap"],
                "probability_of_improvement": _improvement(
                    a == base_arm, tasks[a], tasks[base_arm], reps
                ),
            }
        )
    return out


def _improvement(is_base: bool, x: Any, y: Any, reps: int) -> dict[str, Any] | None:
    """P(x > y) with its CI; None for the baseline itself, nan when either side is empty."""
    from rlkit.report import stats

    sizes = [t.size for t in (x if isinstance(x, list) else [x])]
    sizes += [t.size for t in (y if isinstance(y, list) else [y])]
    if is_base:
        return None
    if min(sizes) == 0:
        return {"point": float("nan"), "ci95": [float("nan"), float("nan")]}
    p = stats.probability_of_improvement(x, y, reps=reps)
    return {"point": p["point"], "ci95": list(p["ci"])}


def _bounds(
    env: str, pool: Any, normalise: dict[str, tuple[float, float]]
) -> tuple[float, float, str]:
    if env in normalise:
        return *normalise[env], "--normalise"
    if pool.size == 0:
        return float("nan"), float("nan"), "observed min:max (none finite)"
    return float(pool.min()), float(pool.max()), "observed min:max"


def _arm(r: Any) -> str:
    return r.label if r.kind == "sweep point" else r.algo


def _finite(x: Any) -> Any:
    import numpy as np

    return x[np.isfinite(x)]


def _mean(x: Any) -> float:
    return float(x.mean())


# --- text --------------------------------------------------------------------------------------


def _table(title: str, entries: list[dict[str, Any]]) -> str:
    header = ["entry", "seeds", "mean [95% CI]", "median", "IQM [95% CI]", "opt. gap", "P(>base)"]
    fmt = _fixed_format([abs(e["mean"]) for e in entries])
    rows = [header]
    for e in entries:
        seeds = str(e["seeds"]) + (f" (+{e['non_finite']} non-finite)" if e["non_finite"] else "")
        poi = e["probability_of_improvement"]
        rows.append(
            [
                e["label"],
                seeds,
                _with_ci(e["mean"], e["mean_ci95"], fmt),
                f"{e['median']:{fmt}}",
                _with_ci(e["iqm"], e["iqm_ci95"], fmt),
                f"{e['optimality_gap']:{fmt}}",
                "baseline" if poi is None else _with_ci(poi["point"], poi["ci95"], ".2f"),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [title]
    for j, row in enumerate(rows):
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fixed_format(magnitudes: list[float]) -> str:
    """Decimals for a table: 1 for returns in the hundreds, 2 from 1, 3 below (normalised)."""
    import math

    scale = max([m for m in magnitudes if math.isfinite(m)], default=0.0)
    return ".1f" if scale >= 100 else ".2f" if scale >= 1 else ".3f"


def _with_ci(point: float, ci: list[float], fmt: str) -> str:
    return f"{point:{fmt}} [{ci[0]:{fmt}}, {ci[1]:{fmt}}]"


def _parse_normalise(items: list[str]) -> dict[str, tuple[float, float]]:
    out = {}
    for item in items:
        env, sep, bounds = item.partition("=")
        low, colon, high = bounds.partition(":")
        try:
            if not (env and sep and colon):
                raise ValueError
            low_f, high_f = float(low), float(high)
        except ValueError:
            raise UsageError(f"--normalise {item!r} is not ENV=LOW:HIGH") from None
        if not high_f > low_f:
            raise UsageError(f"--normalise {item!r}: HIGH must be greater than LOW")
        out[env] = (low_f, high_f)
    return out
