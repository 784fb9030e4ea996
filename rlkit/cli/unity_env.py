"""`--env unity:PATH` and `--env unity:editor`: the Unity options of `rlkit train`, checked,
then the connection (rlkit.bridges.unity).

The options are a mapping (`unity:` in config.yaml and in a config file; the command line's
flags override it): behavior, time_scale, workers, base_port, timeout, no_graphics, args (extra
player arguments), eval_steps (batched steps of the final evaluation), max_unity_steps (the
bound of the bridge's decision rule). Everything that can be checked without Unity is checked
first (UsageError, exit 2, nothing written): the player exists, --workers only with a player,
the ranges, the samplers of --env-set. Connecting may then fail (RunFailure, exit 1: Unity did
not start or answer, the port is taken, another protocol version) or find no such behaviour
(UsageError); either way every Unity process started is closed.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from rlkit.cli.errors import RunFailure, UsageError

__all__ = ["PREFIX", "add_arguments", "connect", "options_from_args", "settings"]

PREFIX = "unity:"
EDITOR = "editor"
_KEYS = {
    "behavior": str,
    "time_scale": float,
    "workers": int,
    "base_port": int,
    "timeout": float,
    "no_graphics": bool,
    "args": list,
    "eval_steps": int,
    "max_unity_steps": int,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The Unity flags of `rlkit train` (defaults None: the config file's, then the bridge's)."""
    group = parser.add_argument_group(
        "Unity ML-Agents (--env unity:PATH_TO_PLAYER or --env unity:editor)",
        "Environment parameters go through --env-set KEY=VALUE: a number, or a sampler "
        "uniform:MIN,MAX, gaussian:MEAN,STD or multirange:A,B[,C,D...] drawn by Unity per episode.",
    )
    group.add_argument("--behavior", help="the behaviour to train (default: the only one)")
    group.add_argument("--time-scale", type=float, help="Unity's time scale (default 20)")
    group.add_argument("--workers", type=int, help="Unity processes of a player (default 1)")
    group.add_argument("--base-port", type=int, help="first port (default 5005; Editor 5004)")
    group.add_argument(
        "--unity-timeout", type=float, help="seconds to wait for Unity's answers (default 60)"
    )
    graphics = group.add_mutually_exclusive_group()
    graphics.add_argument(
        "--no-graphics", dest="no_graphics", action="store_true", default=None,
        help="start players with -nographics -batchmode (the default)",
    )  # fmt: skip
    graphics.add_argument(
        "--graphics", dest="no_graphics", action="store_false", help="start players with graphics"
    )
    group.add_argument(
        "--eval-steps", type=int,
        help="batched steps of the final evaluation (default 1000; episodes that do not end "
        "by then count as that long)",
    )  # fmt: skip
    group.add_argument(
        "--unity-arg", action="append", default=[], metavar="ARG",
        help="an extra command-line argument for the player (repeatable; write one that "
        "starts with a dash as --unity-arg=-ARG)",
    )  # fmt: skip


def options_from_args(args: Any, file_options: dict[str, Any] | None) -> dict[str, Any]:
    """The Unity options: the config file's, overridden by the flags given."""
    options = dict(file_options or {})
    flags = {
        "behavior": getattr(args, "behavior", None),
        "time_scale": getattr(args, "time_scale", None),
        "workers": getattr(args, "workers", None),
        "base_port": getattr(args, "base_port", None),
        "timeout": getattr(args, "unity_timeout", None),
        "no_graphics": getattr(args, "no_graphics", None),
        "eval_steps": getattr(args, "eval_steps", None),
    }
    options.update({k: v for k, v in flags.items() if v is not None})
    if getattr(args, "unity_arg", None):
        options["args"] = list(args.unity_arg)
    return options


def given_without_unity(args: Any) -> str | None:
    """The first Unity flag given, for an environment that is not a Unity one."""
    names = (
        "behavior",
        "time_scale",
        "workers",
        "base_port",
        "unity_timeout",
        "no_graphics",
        "eval_steps",
    )
    for name in names:
        if getattr(args, name, None) is not None:
            return "--" + name.replace("_", "-")
    return "--unity-arg" if getattr(args, "unity_arg", None) else None


def settings(env_name: str, options: dict[str, Any], env_overrides: dict[str, Any], seed: int):
    """The checked UnitySettings of `--env unity:...` (UsageError otherwise; module docstring)."""
    from rlkit.bridges.unity import UnitySettings, resolve_player
    from rlkit.bridges.unity_channels import EngineSettings, parse_parameters
    from rlkit.core.config import ConfigError

    unknown = sorted(set(options) - set(_KEYS))
    if unknown:
        raise UsageError(f"unknown Unity options: {', '.join(unknown)} (known: {', '.join(_KEYS)})")
    for key, kind in _KEYS.items():
        value = options.get(key)
        if value is not None and not _is(value, kind):
            raise UsageError(f"Unity option {key} must be {kind.__name__}, got {value!r}")
    target = env_name.removeprefix(PREFIX)
    if not target:
        raise UsageError("--env unity: needs a player's path or `editor`")
    editor = target == EDITOR
    workers = options.get("workers", 1)
    if editor and "workers" in options:
        raise UsageError("--workers needs a Unity player: the Editor is one process")
    _range("--workers", workers, 1, 64)
    port = options.get("base_port")
    if port is not None:
        _range("--base-port", port, 1, 65535 - workers + 1)
    time_scale = float(options.get("time_scale", 20.0))
    if not (math.isfinite(time_scale) and time_scale > 0):
        raise UsageError(f"--time-scale must be a positive number, got {time_scale}")
    timeout = float(options.get("timeout", 60.0))
    if not (math.isfinite(timeout) and timeout >= 1):
        raise UsageError(f"--unity-timeout must be at least 1 second, got {timeout}")
    _range("eval_steps", options.get("eval_steps", 1000), 1, 10**7)
    _range("max_unity_steps", options.get("max_unity_steps", 1000), 1, 10**7)
    try:
        if not editor:
            resolve_player(target)
        parameters = parse_parameters(env_overrides)
    except (ConfigError, ValueError) as error:
        raise UsageError(str(error)) from None
    return UnitySettings(
        file_name=None if editor else target,
        behavior=options.get("behavior"),
        workers=workers,
        base_port=port,
        timeout=timeout,
        no_graphics=bool(options.get("no_graphics", True)),
        extra_args=tuple(options.get("args", ())),
        parameters=parameters,
        engine=EngineSettings(time_scale=time_scale),
        seed=seed,
        max_unity_steps=options.get("max_unity_steps", 1000),
    )


def connect(unity_settings: Any, eval_steps: int) -> tuple[Any, Any]:
    """(venv, params) of the settings; RunFailure when Unity cannot be reached, UsageError for
    a behaviour it does not have (every started process closed)."""
    from rlkit.bridges.host import HostFailure
    from rlkit.bridges.unity import unity_vector_env
    from rlkit.core.config import ConfigError

    if unity_settings.file_name is None:
        print(
            f"rlkit: waiting for the Unity Editor on port {unity_settings.port}: press Play "
            f"(--unity-timeout {unity_settings.timeout:g} s)",
            file=sys.stderr,
        )
    try:
        return unity_vector_env(unity_settings, eval_steps)
    except HostFailure as error:
        raise RunFailure(str(error)) from error
    except ConfigError as error:
        raise UsageError(str(error)) from error


def _is(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is list:
        return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
    return isinstance(value, kind)


def _range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise UsageError(f"{name} must be in [{low}, {high}], got {value}")
