"""Hyperparameter configs: frozen dataclasses whose fields carry their help, range and kind.

Every agent's `Config` is a frozen dataclass built from `hp(...)` fields:

    learning_rate: float = hp(2.5e-4, "Adam step size (CleanRL ppo.py)", low=0.0, traced=True)

- `traced=True` marks a hyperparameter that does not change array shapes (learning rates, gamma,
  lambda, clip epsilon, coefficients, tau, PER alpha/beta, ...). Traced values reach the compiled
  program as arrays (`hparams_of(config)`), so one compilation sweeps them with `vmap`.
- Everything else (num_envs, widths, batch sizes, switches) is static: changing it recompiles.
- `validate(config)` (call it from `__post_init__`) raises ConfigError naming the field and its
  allowed range or choices.

ConfigError (a ValueError) is the one exception for input that cannot configure a run: the
command line shows it as one line, and any other exception keeps its traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import types
import typing
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import yaml

__all__ = [
    "INT_MAX",
    "ConfigError",
    "coerce_field",
    "config_from_dict",
    "config_to_dict",
    "describe",
    "hp",
    "hparams_of",
    "load_presets",
    "parse_assignment",
    "validate",
]


#: The largest integer a config field may hold: JAX counts steps and sizes in int32.
INT_MAX = 2**31 - 1


class ConfigError(ValueError):
    """Input that cannot configure a run (a value out of range, an unknown name, a budget that
    cannot train): reported to the user as one line naming the problem."""


def hp(
    default: Any,
    help: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    choices: tuple[Any, ...] | None = None,
    traced: bool = False,
) -> Any:
    """A config field: default, one-line help (with the default's source), range, kind."""
    metadata = {
        "help": help,
        "low": low,
        "high": high,
        "low_open": low_open,
        "choices": choices,
        "traced": traced,
    }
    if isinstance(default, list | dict):
        raise TypeError("use tuples for sequence defaults (configs are frozen)")
    return dataclasses.field(default=default, metadata=metadata)


def validate(config: Any) -> None:
    """Check every field's type, finiteness and range or choices; raise ConfigError naming the
    first bad one. Integers must be at most INT_MAX."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        meta = f.metadata
        choices = meta.get("choices")
        if choices is not None and value not in choices:
            raise ConfigError(f"{f.name} must be one of {list(choices)}, got {value!r}")
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            _check_type(f.name, hints[f.name], v)
            if isinstance(v, bool) or not isinstance(v, int | float):
                continue
            if not math.isfinite(v):
                raise ConfigError(f"{f.name} must be a finite number, got {v!r}")
            if isinstance(v, int) and abs(v) > INT_MAX:
                raise ConfigError(f"{f.name} must be at most {INT_MAX}, got {v!r}")
            low, high = meta.get("low"), meta.get("high")
            too_low = low is not None and (v <= low if meta.get("low_open") else v < low)
            if too_low or (high is not None and v > high):
                lo = "(" if meta.get("low_open") else "["
                lo_s = "-inf" if low is None else f"{low:g}"
                hi_s = "inf" if high is None else f"{high:g}"
                raise ConfigError(f"{f.name} must be in {lo}{lo_s}, {hi_s}], got {v!r}")


def _check_type(name: str, declared: Any, value: Any) -> None:
    """ConfigError unless `value` is of the declared scalar type (an int passes for a float;
    a bool is not a number); sequence and union declarations check their items' type."""
    args = [a for a in typing.get_args(declared) if a is not type(None) and a is not Ellipsis]
    if typing.get_origin(declared) is not None and args:
        if value is None and type(None) in typing.get_args(declared):
            return
        declared = args[0]
    if declared is bool and not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    if declared is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if declared is float and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if declared is str and not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {value!r}")


def hparams_of(config: Any) -> dict[str, jnp.ndarray]:
    """The traced hyperparameters of a config, as float32 arrays (vmappable)."""
    return {
        f.name: jnp.asarray(getattr(config, f.name), jnp.float32)
        for f in dataclasses.fields(config)
        if f.metadata.get("traced")
    }


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain dict of a config (tuples become lists), for YAML/JSON."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def _field_type(config_cls: type, name: str) -> Any:
    hints = typing.get_type_hints(config_cls)
    return hints[name]


def coerce_field(config_cls: type, name: str, value: Any) -> Any:
    """Coerce a parsed value to the declared type of field `name`, or raise ConfigError."""
    declared = _field_type(config_cls, name)
    origin = typing.get_origin(declared)
    if origin in (types.UnionType, typing.Union):
        options = [a for a in typing.get_args(declared) if a is not type(None)]
        if value is None:
            return None
        declared = options[0]
        origin = typing.get_origin(declared)
    if origin is tuple:
        item_type = typing.get_args(declared)[0]
        if not isinstance(value, list | tuple):
            value = [value]
        return tuple(_coerce_scalar(name, item_type, v) for v in value)
    return _coerce_scalar(name, declared, value)


def _coerce_scalar(name: str, declared: Any, value: Any) -> Any:
    if declared is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    if declared is int:
        if isinstance(value, str):
            value = _yaml_number(value)  # 1e6 is the whole number a user meant
        whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not whole:
            raise ConfigError(f"{name} must be an integer, got {value!r}")
        return int(value)
    if declared is float:
        if isinstance(value, str):
            value = _yaml_number(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value!r}")
        return float(value)
    if declared is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r}")
        return value
    return value


def _yaml_number(text: str) -> Any:
    """A number written as YAML 1.1 reads a string (3e-4, 1e6: no dot), else the text as it is."""
    try:
        return float(text)
    except ValueError:
        return text


#: Fields renamed when the agents' names were unified (old name -> new name).
RENAMED = {"adam_eps": "optimiser_eps", "train_freq": "train_frequency"}


def config_from_dict(config_cls: type, values: dict[str, Any], base: Any = None) -> Any:
    """Build a config from a dict of overrides; unknown keys and bad values raise ConfigError."""
    names = [f.name for f in dataclasses.fields(config_cls)]
    kwargs = {} if base is None else config_to_dict(base)
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()}
    for key, value in values.items():
        if key in RENAMED and RENAMED[key] in names:
            raise ConfigError(f"hyperparameter {key!r} is now called {RENAMED[key]!r}")
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"unknown hyperparameter {key!r}{hint}")
        kwargs[key] = coerce_field(config_cls, key, value)
    return config_cls(**kwargs)


def parse_assignment(text: str) -> tuple[str, Any]:
    """Parse `key=value` (value in YAML: 3e-4, true, [64, 64], adam) into (key, value)."""
    if "=" not in text:
        raise ConfigError(f"expected key=value, got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"expected key=value, got {text!r}")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as error:
        raise ConfigError(f"cannot parse the value of {key}: {raw!r}") from error
    if isinstance(value, str):
        # YAML 1.1 reads 3e-4 (no dot) as a string; accept it as a number.
        with contextlib.suppress(ValueError):
            value = float(value)
    return key, value


def describe(config_cls: type) -> list[tuple[str, Any, str, bool]]:
    """(name, default, help, traced) of every field, for `rlkit algos`."""
    return [
        (f.name, f.default, f.metadata.get("help", ""), bool(f.metadata.get("traced")))
        for f in dataclasses.fields(config_cls)
    ]


def load_presets(path: str | Path, config_cls: type) -> dict[str, dict[str, Any]]:
    """Named presets from a YAML file: {name: {field: value}}, each value coerced to its field's
    type (YAML lists become tuples). Top-level keys starting with "_" are templates for YAML
    merge keys (`<<: *name`), not presets. An unknown field raises ConfigError."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    names = {f.name for f in dataclasses.fields(config_cls)}
    presets = {}
    for preset, values in data.items():
        if preset.startswith("_"):
            continue
        unknown = set(values) - names
        if unknown:
            raise ConfigError(f"preset {preset} in {path} has unknown fields: {sorted(unknown)}")
        presets[preset] = {k: coerce_field(config_cls, k, v) for k, v in values.items()}
    return presets
