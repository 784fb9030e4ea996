"""`rlkit plot`: learning curves, sweep curves and performance profiles as PNG and SVG.

Figures (rlkit.report.plots), each written as <out>/<name>.png and <out>/<name>.svg:
    curves          learning_curves: IQM (mean below 4 seeds) of episode return over env steps
                    with a 95% bootstrap band; unfinished runs are included.
    sweep_<key>     sweep_curve: final return against each swept key with 95% CI error bars.
    profile         performance_profiles: fraction of seeds above each final return.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rlkit.cli.errors import UsageError

__all__ = ["add_parser", "run"]

_KINDS = ("curves", "sweep", "profile", "all")


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "plot",
        help="plot runs and sweeps: learning curves, sweep curves, performance profiles",
        description="Write PNG and SVG figures of runs and sweeps and print their paths. "
        "curves: IQM over seeds (the mean below 4 seeds) of the episode return against env "
        "steps, 95% bootstrap band (unfinished runs included); sweep: final evaluation return "
        "against each swept value, 95% CI error bars; profile: fraction of seeds whose final "
        "return exceeds tau, 95% stratified-bootstrap band.",
    )
    parser.add_argument("paths", nargs="+", metavar="RUN_OR_SWEEP", help="run or sweep directory")
    parser.add_argument(
        "--out", help="output folder (default: RUN/plots for one directory, else ./plots)"
    )
    parser.add_argument("--kind", choices=_KINDS, default="all", help="which figures (all)")
    parser.add_argument("--per-seed", action="store_true", help="thin per-seed learning curves")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    from rlkit.report import plots
    from rlkit.report.results import load_all

    results = load_all(args.paths, finished=False)
    finished = [r for r in results if r.finished]
    swept = _swept_keys(results)
    kinds = {"curves", "sweep", "profile"} if args.kind == "all" else {args.kind}
    if args.kind == "sweep" and not swept:
        raise UsageError("--kind sweep needs a sweep directory with a swept value")
    if args.kind == "profile" and not finished:
        raise UsageError("--kind profile needs a finished run or sweep (with summary.json)")
    if args.kind == "curves" and not any(r.curve_steps.size for r in results):
        raise UsageError("no metrics rows to plot (metrics.jsonl is empty or missing)")
    out = Path(args.out) if args.out else _default_out(args.paths)
    paths: list[Path] = []
    if "curves" in kinds and any(r.curve_steps.size for r in results):
        paths += plots.learning_curves(results, out / "curves", per_seed=args.per_seed)
    if "sweep" in kinds:
        for key in swept:
            paths += plots.sweep_curve(results, key, out / f"sweep_{_safe(key)}")
    if "profile" in kinds and finished:
        paths += plots.performance_profiles(finished, out / "profile")
    for path in paths:
        print(path)
    return 0


def _default_out(paths: list[str]) -> Path:
    return Path(paths[0]) / "plots" if len(paths) == 1 else Path("plots")


def _swept_keys(results: list) -> list[str]:
    """Keys that take more than one value over the finished sweep points, in first-seen order."""
    seen: dict[str, set[str]] = {}
    for r in results:
        if r.finished:
            for key, value in r.values.items():
                seen.setdefault(key, set()).add(repr(value))
    return [key for key, values in seen.items() if len(values) > 1]


def _safe(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
