"""Paper configs: one YAML file per published result rlkit reproduces (paper_configs/README.md).

A paper config is a config file (`rlkit train --config FILE` reads it as one) plus what a
reproduction needs: `name`, `source`, the `target` to pass and what it costs. It serves three
uses, all read from here:

* `rlkit reproduce FILE` trains it and checks the target (rlkit.cli.reproduce);
* its `name` is a preset of its algorithm (`rlkit train ALGO --preset NAME`,
  `agents.<algo>.PRESETS`): the hyperparameters (`config`, and `steps` as total_steps) only;
* `default_for_env: true` makes it the tuned default of its (algo, env) pair, which
  `rlkit train ALGO --env ENV` uses unless `--defaults` asks for the algorithm's own.

This module only reads YAML (no JAX), so `agents` can build PRESETS from it at import.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from rlkit.core.config import ConfigError, coerce_field

__all__ = [
    "DIRECTORY",
    "PAPER_KEYS",
    "check",
    "files",
    "hyperparameters",
    "label",
    "load",
    "preset_file",
    "presets",
    "tuned_default",
]

DIRECTORY = Path(__file__).resolve().parent

# Keys only a paper config has (the rest are a config file's, rlkit.cli.spec._FILE_KEYS).
PAPER_KEYS = ("name", "source", "target", "steps", "needs_gpu", "cpu_minutes", "default_for_env")
_REQUIRED = ("name", "algo", "env", "source", "target")
_TARGET_KEYS = ("metric", "threshold", "tolerance", "every_seed", "ci_lower")
METRICS = ("iqm", "mean")


def files() -> list[Path]:
    """The paper configs that ship with rlkit, sorted by file name."""
    return sorted(DIRECTORY.glob("*.yaml"))


def label(path: Path) -> str:
    """How a shipped paper config is named in messages and config.yaml: paper_configs/<file>;
    any other file by its path as given."""
    path = Path(path)
    if path.resolve().parent == DIRECTORY:
        return f"paper_configs/{path.name}"
    return str(path)


def load(path: Path) -> dict[str, Any]:
    """A paper config's mapping, checked by `check`; ConfigError naming the file otherwise."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read paper config {path}: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"paper config {path} must hold a mapping")
    check(data, path)
    return data


def check(data: dict[str, Any], path: Path | str) -> None:
    """The paper-config part of the schema (README.md): required keys, the target, the types of
    the keys only a paper config has. The config-file keys are rlkit.cli.spec's to check, and
    the hyperparameters the algorithm's Config's. ConfigError naming the file and key."""
    missing = [key for key in _REQUIRED if data.get(key) is None]
    if missing:
        raise ConfigError(f"paper config {path} lacks {', '.join(missing)}")
    for key in ("name", "source"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise ConfigError(f"paper config {path}: {key} must be a non-empty string")
    for key in ("needs_gpu", "default_for_env"):
        if key in data and not isinstance(data[key], bool):
            raise ConfigError(f"paper config {path}: {key} must be true or false")
    if "cpu_minutes" in data and not _is_number(data["cpu_minutes"], allow_none=True):
        raise ConfigError(f"paper config {path}: cpu_minutes must be a number")
    steps = data.get("steps")
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"paper config {path}: steps must be a positive integer")
        if "total_steps" in (data.get("config") or {}):
            raise ConfigError(f"paper config {path}: give steps or config.total_steps, not both")
    _check_target(data["target"], path)


def _check_target(target: Any, path: Path | str) -> None:
    if not isinstance(target, dict):
        raise ConfigError(f"paper config {path}: target must be a mapping")
    unknown = sorted(set(map(str, target)) - set(_TARGET_KEYS))
    if unknown:
        raise ConfigError(f"paper config {path}: target has unknown keys: {', '.join(unknown)}")
    if target.get("metric") not in METRICS:
        raise ConfigError(f"paper config {path}: target.metric must be one of {', '.join(METRICS)}")
    if not _is_number(target.get("threshold")):
        raise ConfigError(f"paper config {path}: target.threshold must be a number")
    for key in ("tolerance", "every_seed", "ci_lower"):
        if key in target and not _is_number(target[key]):
            raise ConfigError(f"paper config {path}: target.{key} must be a number")
    if target.get("tolerance", 0) < 0:
        raise ConfigError(f"paper config {path}: target.tolerance must be >= 0")


def _is_number(value: Any, allow_none: bool = False) -> bool:
    if value is None:
        return allow_none
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def hyperparameters(data: dict[str, Any]) -> dict[str, Any]:
    """The Config overrides of a paper config: its `config`, and `steps` as total_steps."""
    values = dict(data.get("config") or {})
    if data.get("steps") is not None:
        values["total_steps"] = data["steps"]
    return values


def presets(algo: str, config_cls: type) -> dict[str, dict[str, Any]]:
    """{name: hyperparameters} of the shipped paper configs for `algo`, each value coerced to
    its Config field's type (YAML lists become tuples); ConfigError on an unknown field or a
    name used twice."""
    found: dict[str, dict[str, Any]] = {}
    where: dict[str, Path] = {}
    names = set(config_cls.__dataclass_fields__)
    for path in files():
        data = load(path)
        if data["algo"] != algo:
            continue
        name, values = data["name"], hyperparameters(data)
        if name in found:
            raise ConfigError(f"preset {name} of {algo} is in both {where[name]} and {path}")
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"paper config {path} has unknown {algo} fields: {unknown}")
        found[name] = {k: coerce_field(config_cls, k, v) for k, v in values.items()}
        where[name] = path
    return found


def preset_file(algo: str, name: str) -> Path | None:
    """The shipped paper config whose `name` is preset `name` of `algo`, if any."""
    for path in files():
        data = load(path)
        if data["algo"] == algo and data["name"] == name:
            return path
    return None


def tuned_default(algo: str, env: str) -> Path | None:
    """The shipped paper config marked `default_for_env` for (algo, env), if any; ConfigError
    when two are marked (at most one per pair)."""
    marked = []
    for path in files():
        data = load(path)
        if data.get("default_for_env") and (data["algo"], data["env"]) == (algo, env):
            marked.append(path)
    if len(marked) > 1:
        shown = ", ".join(label(p) for p in marked)
        raise ConfigError(f"{algo} on {env} has {len(marked)} tuned defaults: {shown}")
    return marked[0] if marked else None
