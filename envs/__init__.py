"""rlkit's JAX-native environments and the registry of every environment rlkit can make.

`envs.make(name, **overrides) -> (env, params)` builds rlkit's environments and every gymnax
environment by name. An override whose key is a field of the environment's `EnvParams` changes
that parameter (e.g. `make("BalanceBall-v0", gravity=4.0)`); any other key goes to the
environment's constructor (e.g. `make("GridWorld-v0", obs_mode="image")`).

Importing this package also registers rlkit's environments with gymnax, so
`gymnax.make("BalanceBall-v0")` works for code that already uses gymnax.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import importlib
import inspect
import math
from collections.abc import Callable
from typing import Any

from rlkit.core.config import INT_MAX, ConfigError, coerce_field
from rlkit.core.gymnax_import import import_gymnax

gymnax = import_gymnax()

__all__ = ["RLKIT_ENVS", "list_envs", "make"]


def _lazy(module: str, cls: str, **kwargs: Any) -> Callable[..., Any]:
    def factory(**overrides: Any) -> Any:
        env_cls = getattr(importlib.import_module(f"envs.{module}"), cls)
        return env_cls(**{**kwargs, **overrides})

    factory.env_class = (module, cls)  # type: ignore[attr-defined]
    return factory


RLKIT_ENVS: dict[str, Callable[..., Any]] = {
    "BalanceBall-v0": _lazy("balance_ball", "BalanceBall"),
    "BalanceBallHard-v0": _lazy("balance_ball", "BalanceBallHard"),
    "ConnectFour-v0": _lazy("connect_four", "ConnectFour"),
    "GridWorld-v0": _lazy("gridworld", "GridWorld"),
    "TicTacToe-v0": _lazy("tictactoe", "TicTacToe"),
}

for _name, _factory in RLKIT_ENVS.items():
    if _name not in gymnax.registered_envs:
        gymnax.register(_name, _factory)


def list_envs() -> list[str]:
    """Every environment name `make` accepts: rlkit's first, then gymnax's."""
    return list(RLKIT_ENVS) + [n for n in gymnax.registered_envs if n not in RLKIT_ENVS]


def make(name: str, **overrides: Any) -> tuple[Any, Any]:
    """Build an environment by name: (env, params).

    Parameter overrides are validated like hyperparameters: coerced to the declared type of
    their EnvParams field, finite, max_steps_in_episode >= 1, and whatever the environment's
    own `check_params(params)` requires. ConfigError on an unknown name or key or a bad value.
    """
    names = list_envs()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"unknown environment {name!r}{hint}; `rlkit envs` lists them")
    factory = RLKIT_ENVS.get(name)
    constructor_args, param_args = {}, {}
    probe_env = factory() if factory is not None else gymnax.make(name)[0]
    param_fields = {f.name for f in dataclasses.fields(probe_env.default_params)}
    ctor_params = set(inspect.signature(type(probe_env).__init__).parameters) - {"self"}
    for key, value in overrides.items():
        if key in param_fields:
            param_args[key] = _checked(probe_env.default_params, key, value)
        elif key in ctor_params:
            constructor_args[key] = value
        else:
            allowed = sorted(param_fields | ctor_params)
            raise ConfigError(f"{name} has no parameter {key!r}; allowed: {', '.join(allowed)}")
    if factory is not None:
        env = factory(**constructor_args) if constructor_args else probe_env
    else:
        env = gymnax.make(name, **constructor_args)[0] if constructor_args else probe_env
    params = env.default_params
    if param_args:
        params = params.replace(**param_args)
    if getattr(params, "max_steps_in_episode", 1) < 1:
        raise ConfigError(f"max_steps_in_episode must be >= 1, got {params.max_steps_in_episode}")
    check = getattr(env, "check_params", None)
    if check is not None:
        check(params)
    return env, params


def _checked(defaults: Any, key: str, value: Any) -> Any:
    """An override coerced to its EnvParams field's declared type (when it declares int, float or
    bool); a number where the default is one; finite; an integer within int32 (JAX's)."""
    # A field whose annotation cannot be resolved is taken as it is, and checked against its
    # default's kind below.
    with contextlib.suppress(KeyError, NameError):
        value = coerce_field(type(defaults), key, value)
    default = getattr(defaults, key)
    numeric_default = isinstance(default, int | float) or (
        hasattr(default, "dtype") and getattr(default, "ndim", 1) == 0
    )
    if numeric_default and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ConfigError(f"{key} must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number, got {value!r}")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT_MAX:
        raise ConfigError(f"{key} must be at most {INT_MAX}, got {value}")
    return value
