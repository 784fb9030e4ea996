"""Hyperparameter configs: frozen dataclasses whose fields carry their help, range and kind.

Every agent's `Config` is a frozen dataclass built from `hp(...)` fields:

    learning_rate: float = hp(2.5e-4, "Adam step size (CleanRL ppo.py)", low=0.0, traced=True)

- `traced=True` marks a hyperparameter that does not change array shapes (learning rates, gamma,
  lambda, clip epsilon, coefficients, tau, PER alpha/beta, ...). Traced values reach the compiled
  program as arrays (`hparams_of(config)`), so one compilation sweeps them with `vmap`.
- Everything else (num_envs, widths, batch sizes, switches) is static: changing it recompiles.
- `validate(config)` (call it from `__post_init__`) raises ValueError naming the field and its
  allowed range or choices.
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
    "config_from_dict",
    "config_to_dict",
    "describe",
    "hp",
    "hparams_of",
    "load_presets",
    "parse_assignment",
    "validate",
]


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
    """Check every field against its range/choices; raise ValueError naming the first bad one."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        meta = f.metadata
        choices = meta.get("choices")
        if choices is not None and value not in choices:
            raise ValueError(f"{f.name} must be one of {list(choices)}, got {value!r}")
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int | float):
                continue
            low, high = meta.get("low"), meta.get("high")
            too_low = low is not None and (v <= low if meta.get("low_open") else v < low)
            if too_low or (high is not None and v > high):
                lo = "(" if meta.get("low_open") else "["
                lo_s = "-inf" if low is None else f"{low:g}"
                hi_s = "inf" if high is None else f"{high:g}"
                raise ValueError(f"{f.name} must be in {lo}{lo_s}, {hi_s}], got {v!r}")


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


def _coerce(config_cls: type, name: str, value: Any) -> Any:
    """Coerce a parsed value to the declared type of field `name`, or raise ValueError."""
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
        raise ValueError(f"{name} must be true or false, got {value!r}")
    if declared is int:
        if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
            raise ValueError(f"{name} must be an integer, got {value!r}")
        return int(value)
    if declared is float:
        if isinstance(value, str):
            # YAML 1.1 reads 3e-4 (no dot) as a string; it is the number the user meant.
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        return float(value)
    if declared is str:
        return str(value)
    return value


#: Fields renamed when the agents' names were unified (old name -> new name).
RENAMED = {"adam_eps": "optimiser_eps", "train_freq": "train_frequency"}


def config_from_dict(config_cls: type, values: dict[str, Any], base: Any = None) -> Any:
    """Build a config from a dict of overrides; unknown keys and bad values raise ValueError."""
    names = [f.name for f in dataclasses.fields(config_cls)]
    kwargs = {} if base is None else config_to_dict(base)
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()}
    for key, value in values.items():
        if key in RENAMED and RENAMED[key] in names:
            raise ValueError(f"hyperparameter {key!r} is now called {RENAMED[key]!r}")
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"unknown hyperparameter {key!r}{hint}")
        kwargs[key] = _coerce(config_cls, key, value)
    return config_cls(**kwargs)


def parse_assignment(text: str) -> tuple[str, Any]:
    """Parse `key=value` (value in YAML: 3e-4, true, [64, 64], adam) into (key, value)."""
    if "=" not in text:
        raise ValueError(f"expected key=value, got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ValueError(f"expected key=value, got {text!r}")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as error:
        raise ValueError(f"cannot parse the value of {key}: {raw!r}") from error
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
    merge keys (`<<: *name`), not presets. An unknown field raises ValueError."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    names = {f.name for f in dataclasses.fields(config_cls)}
    presets = {}
    for preset, values in data.items():
        if preset.startswith("_"):
            continue
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"preset {preset} in {path} has unknown fields: {sorted(unknown)}")
        presets[preset] = {k: _coerce(config_cls, k, v) for k, v in values.items()}
    return presets
