"""`rlkit sweep`: a grid of hyperparameters x seeds, each compiled program once, in one folder.

    rlkit sweep ppo --env CartPole-v1 --grid learning_rate=1e-4,3e-4,1e-3 --seeds 8

The grid's points (rlkit.core.grid) whose values are all traced run together: points x seeds
members vmapped in ONE compiled program (sharded over the devices like a run's seeds). Points
that differ in a shape-changing value (hidden, num_envs, a switch) form one group each, compiled
and run in turn. Every point sees the same seeds (member p * S + s has seed s's key), so arms
are paired and a point's numbers are those of `rlkit train --seeds S` with its values (up to
float rounding: a different vmap width rounds differently, tests/test_sweep.py).

The folder (under --runs-dir, like a run):

    sweep.yaml               the sweep as given: algo, env, seeds, base config, grid, points
    base.yaml                the base run (`rlkit train --config base.yaml` reruns it alone)
    group_<g>/               a run directory per compiled program: metrics.jsonl (rows carry
                             `point`, the point's index, and `seed`, the seed within the
                             point), checkpoints/, tensorboard/point_<p>_seed_<s>/, summary.json
    summary.json             per point: values, per-seed final returns, mean, median, IQM and
                             95% stratified-bootstrap CIs (rlkit.report.stats), diverged seeds

A diverging point does not stop the sweep (a learning rate that diverges is a result): its
seeds with non-finite parameters at the end are counted as `diverged_seeds` and left out of
its statistics. `--resume` continues a stopped or killed sweep: finished groups are kept, the
group in progress resumes from its checkpoint exactly as `rlkit train --resume` does.
`--wandb` writes a Weights & Biases sweep definition instead (rlkit.cli.wandb_sweep).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from rlkit.cli import spec as specs
from rlkit.cli.errors import EXIT_INTERRUPTED, RunFailure, UsageError

__all__ = ["add_parser", "run", "split_values"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    from rlkit.report.metrics import DEFAULT_LOG_EVERY

    p = sub.add_parser(
        "sweep",
        help="train a grid of hyperparameters x seeds, one compiled program per shape",
        description="Train every point of a hyperparameter grid with --seeds seeds each. Traced "
        "hyperparameters (`rlkit algos ALGO` marks them *) of the grid and the seeds run in one "
        "compiled program; values that change shapes compile one program each, run in turn.",
    )
    p.add_argument("algo", nargs="?", help="algorithm (see `rlkit algos`)")
    p.add_argument("--env", help="environment (see `rlkit envs`)")
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="a swept hyperparameter and its values (YAML values; lists in brackets: "
        "hidden=[64,64],[128,128]); repeat for a product grid",
    )
    p.add_argument("--seeds", type=int, help="seeds per grid point (default 1)")
    p.add_argument("--seed", type=int, help="base random seed (default 0)")
    p.add_argument("--steps", type=int, help="environment steps per seed (total_steps)")
    p.add_argument("--preset", help="named preset of the algorithm")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--env-set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--config", help="YAML run config (a `grid:` mapping in it is the grid)")
    p.add_argument("--name", help="sweep name (default sweep-ALGO-ENV-TIME, made unique)")
    p.add_argument("--runs-dir", default="runs", help="where the sweep folder goes (default runs)")
    p.add_argument(
        "--eval-episodes",
        type=int,
        help="final evaluation episodes per seed (default 32; a resumed sweep keeps its own)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--resume", metavar="SWEEP", help="continue this sweep from its checkpoints")
    p.add_argument("--checkpoint-every", type=int, metavar="ITERATIONS")
    p.add_argument("--keep-checkpoints", type=int, default=3)
    p.add_argument(
        "--log-every",
        type=int,
        metavar="STEPS",
        help=f"environment steps per seed between metrics rows (default {DEFAULT_LOG_EVERY})",
    )
    p.add_argument(
        "--wandb",
        action="store_true",
        help="write a W&B sweep definition (run it with `wandb sweep FILE`, then `wandb agent`) "
        "instead of training here",
    )
    p.add_argument("--out", help="with --wandb: the definition file (default wandb-sweep.yaml)")
    from rlkit.cli.main import add_job_arguments

    add_job_arguments(p)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    from rlkit.cli.train import _join
    from rlkit.training.devices import use_cpu_cores

    use_cpu_cores()
    specs.check_int("--keep-checkpoints", args.keep_checkpoints, 1, 1000)
    if args.checkpoint_every is not None:
        specs.check_int("--checkpoint-every", args.checkpoint_every, 0, specs.INT32_MAX)
    _join(args)  # one process of a jax.distributed job, when the flags say so
    if args.resume is not None:
        return _resume(args)
    args.eval_episodes = 32 if args.eval_episodes is None else args.eval_episodes
    specs.check_int("--eval-episodes", args.eval_episodes, 1, specs.MAX_EVAL_EPISODES)
    spec, grid = _resolve(args)
    plan = _plan(spec, grid)
    if args.wandb:
        from rlkit.cli.wandb_sweep import write_definition

        return write_definition(spec, grid, args)
    _check_split(spec, plan)
    from rlkit.cli.train import _agree, _elsewhere
    from rlkit.training import distributed

    folder, failure = _elsewhere(args), None
    if distributed.is_primary():
        try:
            folder = _create_folder(args, spec)
            record = spec.record("rlkit " + " ".join(argv))
            _write_records(folder, record, grid, plan, args.eval_episodes)
        except (UsageError, RunFailure) as error:
            failure = error
    _agree(failure, "process 0 could not create the sweep")
    total = sum(len(group.indices) for group, _ in plan)
    _say(
        f"rlkit: sweeping {spec.algo} on {spec.env_name}: {total} point(s) x {spec.seeds} "
        f"seed(s) in {len(plan)} compiled program(s) -> {folder}"
    )
    return _sweep(folder, spec, grid, plan, args)


def _say(line: str) -> None:
    """A line on stderr, from process 0 only (of a jax.distributed job)."""
    from rlkit.training import distributed

    if distributed.is_primary():
        print(line, file=sys.stderr)


def _check_split(spec: Any, plan: list) -> None:
    """UsageError unless every group's members divide over the job's processes."""
    from rlkit.training import distributed

    count = distributed.process_count()
    for group, _ in plan:
        members = (len(group.indices) if group.traced else 1) * spec.seeds
        if members % count:
            raise UsageError(
                f"a group of {members} members (points x --seeds) does not divide over "
                f"--num-processes {count}"
            )


# -- input ----------------------------------------------------------------------------------


def split_values(text: str) -> list[str]:
    """`v1,v2,...` split at the commas outside brackets: "[64,64],[32]" -> ["[64,64]", "[32]"]."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts]


def _parse_grid(config_cls: type, items: list[str], from_file: dict | None) -> dict[str, list]:
    """The grid: the config file's `grid:` mapping, then each --grid KEY=V1,V2 (a later entry
    replaces an earlier one of the same key)."""
    from rlkit.core.config import ConfigError, parse_assignment
    from rlkit.core.grid import parse_grid_values

    raw: dict[str, list] = {}
    for key, values in (from_file or {}).items():
        if not isinstance(values, list):
            raise ConfigError(f"grid {key} must be a list of values, got {values!r}")
        raw[str(key)] = values
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--grid expects KEY=V1,V2,..., got {item!r}")
        key, text = item.split("=", 1)
        raw[key.strip()] = [parse_assignment(f"{key}={v}")[1] for v in split_values(text)]
    if not raw:
        raise UsageError("give the grid: --grid KEY=V1,V2,... (see `rlkit algos ALGO`)")
    return {key: parse_grid_values(config_cls, key, values) for key, values in raw.items()}


def _resolve(args: argparse.Namespace) -> tuple[Any, dict[str, list]]:
    """The base RunSpec and the checked grid (every point's Config is built, so a bad value of
    any point is refused before anything is written)."""
    spec = specs.resolve_args(args, sweep=True)
    file_grid = None
    if args.config is not None:
        file_grid = specs.read_config_file(args.config, sweep=True).get("grid")
        if file_grid is not None and not isinstance(file_grid, dict):
            raise UsageError(
                f"config file {args.config}: grid must be a mapping, got {file_grid!r}"
            )
    grid = _parse_grid(spec.module.Config, args.grid, file_grid)
    return spec, grid


def _read_yaml(path: Path) -> dict[str, Any]:
    """A YAML file's mapping; UsageError in one line when it cannot be read or is not one."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except IsADirectoryError as error:
        raise UsageError(f"config file {path} is a directory") from error
    except OSError as error:
        raise UsageError(f"cannot read config file {path}: {error.strerror}") from error
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        raise UsageError(f"config file {path} is not valid YAML text") from error
    if not isinstance(data, dict):
        raise UsageError(f"config file {path} must hold a mapping, got {type(data).__name__}")
    return data


def _plan(spec: Any, grid: dict[str, list]) -> list[tuple[Any, Any]]:
    """(group, its algorithm) per compiled program; every point's Config is checked."""
    from rlkit.core.config import config_from_dict
    from rlkit.core.grid import groups, points

    for point in points(grid):
        config_from_dict(spec.module.Config, point, base=spec.config)
    plan = []
    for group in groups(spec.module.Config, grid):
        first = {k: v[0] for k, v in group.traced.items()}
        config = config_from_dict(spec.module.Config, {**group.static, **first}, base=spec.config)
        plan.append((group, spec.module.make(config, spec.env, spec.env_params)))
    return plan


def _create_folder(args: argparse.Namespace, spec: Any) -> Path:
    from rlkit.report.runs import RunFolderError, create_run_folder, default_run_name

    try:
        default = "sweep-" + default_run_name(spec.algo, spec.env_name)
        return create_run_folder(args.runs_dir, args.name, default)
    except RunFolderError as error:
        raise UsageError(str(error)) from error


def _write_records(folder: Path, record: dict, grid: dict, plan: list, eval_episodes: int) -> None:
    import shutil

    from rlkit.core.grid import points
    from rlkit.report.rundir import atomic_write, package_versions

    sweep = {
        **record,
        "grid": grid,
        "points": points(grid),
        "groups": [list(group.indices) for group, _ in plan],
        "eval_episodes": eval_episodes,
        "versions": package_versions(),
    }
    try:
        atomic_write(folder / "sweep.yaml", yaml.safe_dump(_plain(sweep), sort_keys=False))
        atomic_write(folder / "base.yaml", yaml.safe_dump(_plain(record), sort_keys=False))
    except OSError as error:
        shutil.rmtree(folder, ignore_errors=True)
        raise RunFailure(f"cannot write the sweep in {folder}: {error.strerror}") from error


def _plain(value: Any) -> Any:
    """Tuples as lists, for YAML."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _resume(args: argparse.Namespace) -> int:
    fixed = ("algo", "env", "preset", "config", "steps", "seeds", "seed", "name", "log_every")
    given = [f"--{k.replace('_', '-')}" for k in fixed if getattr(args, k) not in (None, [])]
    given += ["--set"] * bool(args.set) + ["--env-set"] * bool(args.env_set)
    given += ["--grid"] * bool(args.grid) + ["--wandb"] * bool(args.wandb)
    given += ["--eval-episodes"] * (args.eval_episodes is not None)
    if given:
        shown = "ALGO" if given[0] == "--algo" else given[0]
        raise UsageError(f"--resume continues a sweep as it was configured; drop {shown}")
    folder = Path(args.resume)
    if not (folder / "sweep.yaml").is_file() or not (folder / "base.yaml").is_file():
        raise UsageError(f"{folder} is not a sweep directory (it has no sweep.yaml)")
    spec = specs.resolve(None, config_file=str(folder / "base.yaml"))
    sweep = _read_yaml(folder / "sweep.yaml")
    recorded = sweep.get("grid")
    args.eval_episodes = sweep.get("eval_episodes", 32)
    specs.check_int("eval_episodes in sweep.yaml", args.eval_episodes, 1, specs.MAX_EVAL_EPISODES)
    if not isinstance(recorded, dict):
        raise UsageError(f"{folder}/sweep.yaml has no grid mapping")
    grid = _parse_grid(spec.module.Config, [], recorded)
    plan = _plan(spec, grid)
    _check_split(spec, plan)
    _say(f"rlkit: resuming the sweep in {folder}")
    return _sweep(folder, spec, grid, plan, args)


# -- training -------------------------------------------------------------------------------


def _sweep(folder: Path, spec: Any, grid: dict, plan: list, args: argparse.Namespace) -> int:
    from rlkit.cli.sweep_group import train_group
    from rlkit.core.grid import points
    from rlkit.training.compile_cache import enable_compilation_cache

    cache = enable_compilation_cache()
    wall_start = time.perf_counter()
    results: dict[int, dict[str, Any]] = {}
    for number, (group, algo) in enumerate(plan):
        static = group.static.items()
        shown = ", ".join(f"{k}={json.dumps(_plain(v))}" for k, v in static) or "traced values only"
        _say(
            f"rlkit: group {number + 1}/{len(plan)} ({shown}): {len(group.indices)} point(s) x "
            f"{spec.seeds} seed(s) in one program"
        )
        outcome = train_group(folder / f"group_{number}", spec, group, algo, args, cache)
        if outcome is None:
            _say(
                f"rlkit: sweep stopped in group {number + 1}/{len(plan)}; checkpoint saved; "
                f"continue with: rlkit sweep --resume {folder}"
            )
            return EXIT_INTERRUPTED
        for index, per_seed in zip(group.indices, outcome["per_point"], strict=True):
            results[index] = {"group": number, **per_seed}
    summary = _summary(spec, grid, points(grid), results, time.perf_counter() - wall_start)
    from rlkit.training import distributed

    if distributed.is_primary():
        _write_summary(folder, summary)
        _print_table(summary)
    return 0


def _summary(spec: Any, grid: dict, all_points: list, results: dict, wall: float) -> dict:
    """summary.json of a finished sweep (module docstring)."""
    import numpy as np

    from rlkit.report.stats import summary as statistics

    rows = []
    for index, values in enumerate(all_points):
        returns = np.asarray(results[index]["per_seed_mean_return"], np.float64)
        finite_params = np.asarray(results[index]["finite"], bool)
        kept = np.where(finite_params, returns, np.nan)
        rows.append(
            {
                "point": index,
                "group": results[index]["group"],
                "values": values,
                "per_seed_mean_return": returns.tolist(),
                "diverged_seeds": int((~finite_params).sum()),
                **statistics(kept),
            }
        )
    return {
        "kind": "sweep",
        "algo": spec.algo,
        "env": spec.env_name,
        "seeds": spec.seeds,
        "grid": _plain(grid),
        "evaluation": "deterministic, mean return over the final evaluation episodes per seed",
        "points": rows,
        "wall_seconds_this_process": wall,
    }


def _write_summary(folder: Path, summary: dict) -> None:
    from rlkit.report.metrics import dumps
    from rlkit.report.rundir import atomic_write

    try:
        atomic_write(folder / "summary.json", dumps(summary, indent=1) + "\n")
    except OSError as error:
        raise RunFailure(f"cannot write {folder}/summary.json: {error.strerror}") from error


def _print_table(summary: dict) -> None:
    """The points, one line each, to stdout."""
    names = list(summary["grid"])
    header = [*names, "mean", "IQM", "IQM 95% CI", "diverged"]
    lines = [header]
    for row in summary["points"]:
        lo, hi = row["ci95"]["iqm"]
        lines.append(
            [
                *(json.dumps(row["values"][k]) for k in names),
                _fmt(row["mean"]),
                _fmt(row["iqm"]),
                f"[{_fmt(lo)}, {_fmt(hi)}]",
                str(row["diverged_seeds"]),
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)))


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def group_spec(spec: Any, group: Any, algo: Any) -> Any:
    """The RunSpec of one group's run directory: its Config, and its members as "seeds"."""
    members = max(1, len(group.indices) if group.traced else 1) * spec.seeds
    return dataclasses.replace(spec, config=algo.config, seeds=members)
