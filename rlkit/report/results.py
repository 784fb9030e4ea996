"""Reading what `rlkit train` and `rlkit sweep` wrote, for `rlkit compare` and `rlkit plot`.

A run directory (rlkit.report.rundir) gives one Result; a sweep directory gives one per grid
point:

    <run>/config.yaml, metrics.jsonl, summary.json      (evaluation.per_seed_mean_return)
    <sweep>/sweep.yaml                                   (algo, env, seeds, grid, config, ...)
    <sweep>/summary.json                                 {"kind": "sweep", "points": [{"point",
                                                          "group", "values",
                                                          "per_seed_mean_return", ...}, ...]}
    <sweep>/group_<g>/metrics.jsonl                      run rows plus "point"; "seed" is the
                                                          seed index within the point

A run without summary.json has not finished: `load(path)` refuses it, `load(path,
finished=False)` (what curve plots use) returns it with an empty `final`. A sweep without
summary.json is refused either way (its points' values are only in the summary). Every
problem is a one-line ConfigError naming the path (bad input: the CLI exits 2).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rlkit.core.config import ConfigError
from rlkit.report.metrics import number

__all__ = ["Result", "load", "load_all"]


@dataclass(frozen=True)
class Result:
    """One arm of a comparison: a run, or one point of a sweep.

    final: [seeds] per-seed mean return of the deterministic final evaluation ("nan" decoded to
        nan); empty ([0]) for a run that has not finished.
    curve_steps: [T] env steps per seed at each log row, ascending.
    curve: [seeds, T] episode_return of each row; nan where no episode ended (null), where the
        value was not finite, or where the seed has no row at that step.
    """

    label: str
    algo: str
    env: str
    kind: str  # "run" or "sweep point"
    path: Path
    final: np.ndarray
    curve_steps: np.ndarray
    curve: np.ndarray
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.final.size > 0


def load(path: str | Path, finished: bool = True) -> list[Result]:
    """The Results of a run or sweep directory (one for a run, one per point for a sweep).

    finished=True refuses a run without summary.json; False returns it with an empty final.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} does not exist")
    if not path.is_dir():
        raise ConfigError(f"{path} is not a directory (expected a run or sweep directory)")
    if (path / "sweep.yaml").is_file():
        return _load_sweep(path)
    if (path / "config.yaml").is_file():
        return [_load_run(path, finished)]
    raise ConfigError(f"{path} is not a run or sweep directory (no config.yaml or sweep.yaml)")


def load_all(paths: list[str], finished: bool = True) -> list[Result]:
    """load() of each path, in order; labels made unique by appending @<directory> on a clash."""
    seen = set()
    results = []
    for p in paths:
        resolved = Path(p).resolve()
        if resolved in seen:
            raise ConfigError(f"{p} is given twice")
        seen.add(resolved)
        results.extend(load(p, finished))
    counts: dict[str, int] = {}
    for r in results:
        counts[r.label] = counts.get(r.label, 0) + 1
    return [
        replace(r, label=f"{r.label}@{r.path.name}") if counts[r.label] > 1 else r for r in results
    ]


# --- runs --------------------------------------------------------------------------------------


def _load_run(path: Path, finished: bool) -> Result:
    config = _read_yaml(path / "config.yaml")
    algo, env = _names(config, path / "config.yaml")
    seeds = _int(config.get("seeds", 1), path / "config.yaml", "seeds")
    summary_path = path / "summary.json"
    if summary_path.is_file():
        summary = _read_json(summary_path)
        try:
            final = _floats(summary["evaluation"]["per_seed_mean_return"])
        except (KeyError, TypeError, ValueError) as error:
            raise ConfigError(
                f"{summary_path} is corrupt: no readable evaluation.per_seed_mean_return "
                f"({type(error).__name__}: {error})"
            ) from None
    elif finished:
        raise ConfigError(
            f"run {path} has not finished (no summary.json); only `rlkit plot --kind curves` "
            "can use it"
        )
    else:
        final = np.empty(0)
    steps, curve = _curve(_read_rows(path / "metrics.jsonl"), seeds)
    return Result(path.name, algo, env, "run", path, final, steps, curve)


# --- sweeps ------------------------------------------------------------------------------------


def _load_sweep(path: Path) -> list[Result]:
    spec = _read_yaml(path / "sweep.yaml")
    algo, env = _names(spec, path / "sweep.yaml")
    summary_path = path / "summary.json"
    if not summary_path.is_file():
        raise ConfigError(f"sweep {path} has not finished (no summary.json)")
    summary = _read_json(summary_path)
    try:
        seeds = int(summary.get("seeds", spec.get("seeds", 1)))
        points = [_point(p) for p in summary["points"]]
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ConfigError(
            f"{summary_path} is corrupt: points need point, group, values, per_seed_mean_return "
            f"({type(error).__name__}: {error})"
        ) from None
    rows_by_group: dict[int, list[dict[str, Any]]] = {}
    results = []
    for point, group, values, final in points:
        if group not in rows_by_group:
            rows_by_group[group] = _read_rows(path / f"group_{group}" / "metrics.jsonl")
        rows = [r for r in rows_by_group[group] if r.get("point") == point]
        steps, curve = _curve(rows, seeds)
        label = f"{algo}[{','.join(f'{k}={_format(v)}' for k, v in values.items())}]"
        results.append(Result(label, algo, env, "sweep point", path, final, steps, curve, values))
    return results


def _point(p: dict[str, Any]) -> tuple[int, int, dict[str, Any], np.ndarray]:
    final = _floats(p["per_seed_mean_return"])
    return int(p["point"]), int(p["group"]), dict(p["values"]), final


# --- files -------------------------------------------------------------------------------------


def _curve(rows: list[dict[str, Any]], seeds: int) -> tuple[np.ndarray, np.ndarray]:
    """(steps [T], returns [seeds, T]) from rows with env_steps, seed and episode_return."""
    steps = np.array(sorted({int(r["env_steps"]) for r in rows}), np.int64)
    column = {s: i for i, s in enumerate(steps.tolist())}
    seeds = max([seeds] + [int(r["seed"]) + 1 for r in rows])
    curve = np.full((seeds, steps.size), np.nan)
    for r in rows:
        value = number(r.get("episode_return"))
        if value is not None and math.isfinite(value):
            curve[int(r["seed"]), column[int(r["env_steps"])]] = value
    return steps, curve


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """metrics.jsonl rows; an incomplete last line (a write cut short) is skipped."""
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            int(row["env_steps"]), int(row["seed"])
        except (ValueError, KeyError, TypeError) as error:
            if i == len(lines) - 1:
                break
            raise ConfigError(f"{path} line {i + 1} is corrupt: {error}") from None
        rows.append(row)
    return rows


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read {path}: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is corrupt: not a mapping")
    return data


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path} is corrupt: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is corrupt: not a JSON object")
    return data


def _names(config: dict[str, Any], path: Path) -> tuple[str, str]:
    if not isinstance(config.get("algo"), str) or not isinstance(config.get("env"), str):
        raise ConfigError(f"{path} is corrupt: it needs algo and env")
    return config["algo"], config["env"]


def _int(value: Any, path: Path, key: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{path} is corrupt: {key} is {value!r}") from None


def _floats(values: Any) -> np.ndarray:
    """A list of JSON numbers or "nan"/"inf"/"-inf" strings as a float array; [] is an error."""
    if not isinstance(values, list) or not values:
        raise ValueError("expected a non-empty list")
    return np.array([math.nan if v is None else number(v) for v in values], np.float64)


def _format(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
