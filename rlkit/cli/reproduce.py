"""`rlkit reproduce FILE`: train a paper config (paper_configs/README.md) and check its target.

The paper config is trained as an ordinary run (rlkit.cli.train: the same checks before anything
is written, the same run directory, resumable with `--resume RUN`). Then the target metric (IQM
or mean of the per-seed final deterministic evaluation returns, rlkit.report.stats) is compared
with `threshold - tolerance`, with the optional `every_seed` and `ci_lower` conditions; a seed
whose return is not finite fails the run. The verdict goes to stdout (PASS or FAIL with the
numbers) and to <run>/reproduce.json, and the learning curve against the target line to
<run>/plots/learning_curve.{png,svg}.

Exit status: 0 PASS, 1 FAIL, 2 a bad file or option (one line, nothing written), 130
interrupted (a checkpoint is kept: continue with `rlkit reproduce FILE --resume RUN`).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

from rlkit.cli import spec as specs
from rlkit.cli.errors import EXIT_FAILURE, UsageError

__all__ = ["add_parser", "judge", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The `reproduce` subcommand's parser."""
    parser = sub.add_parser(
        "reproduce",
        help="train a paper config and check its published target (exit 0 PASS, 1 FAIL)",
        description="Train the paper config FILE (paper_configs/*.yaml) as an ordinary run, "
        "then compare the target metric over seeds of the final deterministic evaluation with "
        "the file's target. Prints PASS or FAIL with the numbers. Exit status: 0 PASS, 1 FAIL, "
        "2 bad file or option (nothing written), 130 interrupted (resume with --resume RUN).",
    )
    parser.add_argument("file", help="a paper config, e.g. paper_configs/dqn_cartpole_tuned.yaml")
    parser.add_argument("--seeds", type=int, help="seeds (default: the file's `seeds`)")
    parser.add_argument("--runs-dir", default="runs", help="where the run goes (default runs)")
    parser.add_argument("--name", help="run name (default <file stem>-<time>, made unique)")
    parser.add_argument("--eval-episodes", type=int, default=32, help="final evaluation episodes")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--resume", metavar="RUN", help="continue this stopped reproduction")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Check FILE, train it, judge the target; the exit status of the module docstring."""
    import paper_configs
    from rlkit.cli.train import run_train

    path = Path(args.file)
    data = specs.read_config_file(path)
    paper_configs.check(data, path)  # a plain config file has no target: refused here
    if args.seeds is not None:
        specs.check_int("--seeds", args.seeds, 1, specs.MAX_SEEDS)
    if args.resume is not None:
        if args.seeds is not None or args.name is not None:
            raise UsageError("--resume continues a run as it was configured; drop --seeds/--name")
        folder = Path(args.resume)
    else:
        folder = Path(args.runs_dir) / (args.name or _unique_name(Path(args.runs_dir), path.stem))
    status = run_train(_train_args(args, path, folder), argv)
    if status != 0:
        return status
    verdict = judge(data["target"], _final_returns(folder))
    verdict |= {"paper_config": paper_configs.label(path), "name": data["name"], "run": str(folder)}
    (folder / "reproduce.json").write_text(json.dumps(verdict, indent=2) + "\n")
    plots = _plot(folder, data["target"], verdict)
    print(_report(verdict, data, plots))
    return 0 if verdict["passed"] else EXIT_FAILURE


def judge(target: dict[str, Any], per_seed: list[float]) -> dict[str, Any]:
    """The verdict on per-seed final returns [seeds]: the summary (rlkit.report.stats.summary),
    each condition as {"check": text, "passed": bool}, and `passed` (all of them, and every
    seed finite)."""
    import numpy as np

    from rlkit.report import stats

    values = np.asarray(per_seed, np.float64)
    summary = stats.summary(values)
    metric = target["metric"]
    bar = target["threshold"] - target.get("tolerance", 0)
    value = summary[metric]
    checks = [_check(f"{metric} {value:.2f} >= {bar:g}", value >= bar)]
    if "every_seed" in target:
        lowest = float(np.min(values))
        checks.append(
            _check(
                f"lowest seed {lowest:.2f} >= {target['every_seed']:g}",
                lowest >= target["every_seed"],
            )
        )
    if "ci_lower" in target:
        low = summary["ci95"][metric][0]
        checks.append(
            _check(
                f"95% CI of the {metric} from {low:.2f} >= {target['ci_lower']:g}",
                low >= target["ci_lower"],
            )
        )
    if summary["non_finite"]:
        checks.append(_check(f"{summary['non_finite']} seed(s) not finite", False))
    passed = all(c["passed"] for c in checks) and not math.isnan(value)
    return {
        "passed": passed,
        "metric": metric,
        "value": value,
        "checks": checks,
        "summary": summary,
    }


def _check(text: str, passed: bool) -> dict[str, Any]:
    return {"check": text, "passed": bool(passed)}


def _train_args(args: argparse.Namespace, path: Path, folder: Path) -> argparse.Namespace:
    """The `rlkit train` arguments of this reproduction: --config FILE, or --resume RUN."""
    fresh = args.resume is None
    return argparse.Namespace(
        algo=None,
        env=None,
        preset=None,
        config=str(path) if fresh else None,
        steps=None,
        set=[],
        env_set=[],
        seeds=args.seeds,
        seed=None,
        log_every=None,
        name=folder.name if fresh else None,
        runs_dir=str(folder.parent),
        eval_episodes=args.eval_episodes,
        no_progress=args.no_progress,
        resume=None if fresh else str(folder),
        checkpoint_every=None,
        keep_checkpoints=3,
        wandb=False,
    )


def _unique_name(root: Path, stem: str) -> str:
    """<stem>-<YYYYmmdd-HHMMSS>, with -2, -3, ... when taken."""
    base = f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    name, i = base, 2
    while (root / name).exists():
        name, i = f"{base}-{i}", i + 1
    return name


def _final_returns(folder: Path) -> list[float]:
    summary = json.loads((folder / "summary.json").read_text())
    return [float(v) for v in summary["evaluation"]["per_seed_mean_return"]]


def _report(verdict: dict[str, Any], data: dict[str, Any], plots: list[Path]) -> str:
    """PASS/FAIL, the paper config, each check, the statistics and where the files are."""
    s = verdict["summary"]
    head = "PASS" if verdict["passed"] else "FAIL"
    checks = "; ".join(("" if c["passed"] else "NOT ") + c["check"] for c in verdict["checks"])
    lo, hi = s["ci95"][verdict["metric"]]
    seeds = f"{s['n']} seed" + ("" if s["n"] == 1 else "s")
    return (
        f"{head} {data['name']} ({data['algo']} on {data['env']}, {seeds}): {checks}\n"
        f"  mean {s['mean']:.2f}, median {s['median']:.2f}, iqm {s['iqm']:.2f}, "
        f"95% CI of the {verdict['metric']} [{lo:.2f}, {hi:.2f}]\n"
        f"  run {verdict['run']}; plot {', '.join(str(p) for p in plots)}"
    )


def _plot(folder: Path, target: dict[str, Any], verdict: dict[str, Any]) -> list[Path]:
    """<run>/plots/learning_curve.{png,svg}: the training episode return (the target's
    statistic over seeds, a 95% bootstrap band, thin per-seed lines), the final evaluation's
    statistic as a point, and the target line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlkit.report import results, stats
    from rlkit.report.plots import finite_points

    (result,) = results.load(folder)
    metric = verdict["metric"]
    band = stats.bootstrap_band(result.curve, metric)
    steps, point, lo, hi = finite_points(result.curve_steps, *band)
    fig, ax = plt.subplots(figsize=(7, 4))
    for seed_curve in result.curve:
        ax.plot(*finite_points(result.curve_steps, seed_curve), color="C0", alpha=0.15, lw=0.7)
    ax.plot(steps, point, color="C0", label=f"training episode return ({metric} over seeds)")
    ax.fill_between(steps, lo, hi, color="C0", alpha=0.25, linewidth=0)
    final = ([result.curve_steps[-1]], [verdict["value"]])
    ax.plot(*final, "o", color="C1", label=f"final evaluation ({metric})")
    ax.axhline(
        target["threshold"], color="C3", linestyle="--", label=f"target {target['threshold']:g}"
    )
    ax.set_xlabel("environment steps per seed")
    ax.set_ylabel("episode return")
    ax.set_title(f"{result.algo} on {result.env}: {'PASS' if verdict['passed'] else 'FAIL'}")
    ax.legend(loc="lower right", fontsize="small")
    out = folder / "plots"
    out.mkdir(exist_ok=True)
    paths = [out / f"learning_curve.{ext}" for ext in ("png", "svg")]
    fig.tight_layout()
    for p in paths:
        fig.savefig(p, dpi=120)
    plt.close(fig)
    return paths
