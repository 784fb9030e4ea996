"""Side channels of the Unity bridge: environment parameters and engine settings to Unity,
statistics from it.

Environment parameters (`--env-set key=value`, a config file's `env_overrides`) are
ML-Agents' EnvironmentParametersChannel values. A value is a number (a float parameter) or a
sampler that Unity draws from at every episode, written

    uniform:MIN,MAX              (ML-Agents' uniform sampler, MIN < MAX)
    gaussian:MEAN,STD            (STD > 0)
    multirange:A,B[,C,D...]      (uniform over the intervals [A,B], [C,D], ...; pairs, each A < B)

Each sampler gets the seed run_seed + its position among the samplers, so a run's draws repeat.

Statistics (ML-Agents' StatsSideChannel) arrive with every exchange; `drain_stats` reduces what
came since its last call to one number per key, by the aggregation Unity named: AVERAGE and
HISTOGRAM the mean, MOST_RECENT the last value, SUM the sum. Keys become `unity/<key>`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "EngineSettings",
    "Sampler",
    "apply_engine_settings",
    "apply_parameters",
    "drain_stats",
    "parse_parameter",
    "parse_parameters",
]

STATS_PREFIX = "unity/"


@dataclasses.dataclass(frozen=True)
class Sampler:
    """An ML-Agents sampler: kind "uniform" (min, max), "gaussian" (mean, std) or "multirange"
    (a, b, c, d, ...: interval pairs)."""

    kind: str
    values: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class EngineSettings:
    """ML-Agents' EngineConfigurationChannel; defaults are mlagents-learn's (its
    --width/--height/--quality-level/--time-scale/--target-frame-rate/--capture-frame-rate)."""

    time_scale: float = 20.0
    width: int = 84
    height: int = 84
    quality_level: int = 5
    target_frame_rate: int = -1
    capture_frame_rate: int = 60


def parse_parameter(key: str, value: Any) -> float | Sampler:
    """A parameter value as a float or a Sampler (module docstring); ValueError naming `key`
    and the syntax otherwise."""
    if isinstance(value, bool):
        raise ValueError(
            f"environment parameter {key} must be a number or a sampler, got {value!r}"
        )
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"environment parameter {key} must be finite, got {value}")
        return float(value)
    text = str(value).strip()
    kind, colon, rest = text.partition(":")
    expected = {
        "uniform": "uniform:MIN,MAX",
        "gaussian": "gaussian:MEAN,STD",
        "multirange": "multirange:A,B[,C,D...]",
    }
    if not colon or kind not in expected:
        raise ValueError(
            f"environment parameter {key}={text!r}: expected a number or "
            + ", ".join(expected.values())
        )
    try:
        numbers = tuple(float(x) for x in rest.split(","))
    except ValueError:
        raise ValueError(
            f"environment parameter {key}={text!r}: expected {expected[kind]}"
        ) from None
    pairs = list(zip(numbers[::2], numbers[1::2], strict=False))
    ok = (
        all(math.isfinite(x) for x in numbers)
        and {
            "uniform": len(numbers) == 2 and numbers[0] < numbers[-1],
            "gaussian": len(numbers) == 2 and numbers[-1] > 0,
            "multirange": len(numbers) >= 2
            and len(numbers) % 2 == 0
            and all(a < b for a, b in pairs),
        }[kind]
    )
    if not ok:
        raise ValueError(
            f"environment parameter {key}={text!r}: expected {expected[kind]} (see --help)"
        )
    return Sampler(kind, numbers)


def parse_parameters(overrides: Mapping[str, Any]) -> dict[str, float | Sampler]:
    """Every override parsed by `parse_parameter`."""
    return {str(key): parse_parameter(str(key), value) for key, value in overrides.items()}


def apply_parameters(channel: Any, parameters: Mapping[str, float | Sampler], seed: int) -> None:
    """Queue the parameters on an EnvironmentParametersChannel (sent with the next reset)."""
    for position, (key, value) in enumerate(parameters.items()):
        if isinstance(value, float):
            channel.set_float_parameter(key, value)
        elif value.kind == "uniform":
            channel.set_uniform_sampler_parameters(key, *value.values, seed + position)
        elif value.kind == "gaussian":
            channel.set_gaussian_sampler_parameters(key, *value.values, seed + position)
        else:
            channel.set_multirangeuniform_sampler_parameters(
                key, list(zip(value.values[::2], value.values[1::2], strict=True)), seed + position
            )


def apply_engine_settings(channel: Any, settings: EngineSettings) -> None:
    """Queue the engine settings on an EngineConfigurationChannel."""
    channel.set_configuration_parameters(
        width=settings.width,
        height=settings.height,
        quality_level=settings.quality_level,
        time_scale=settings.time_scale,
        target_frame_rate=settings.target_frame_rate,
        capture_frame_rate=settings.capture_frame_rate,
    )


def drain_stats(channels: Iterable[Any]) -> dict[str, float]:
    """`unity/<key>` -> one number, from what every StatsSideChannel received since the last
    drain (module docstring's reductions; the values of all workers together)."""
    from rlkit.bridges import unity_messages

    unity_messages.install()  # before mlagents_envs imports its messages (any protobuf)
    from mlagents_envs.side_channel.stats_side_channel import StatsAggregationMethod

    values: dict[str, list[tuple[float, Any]]] = {}
    for channel in channels:
        for key, entries in channel.get_and_reset_stats().items():
            values.setdefault(key, []).extend(entries)
    out = {}
    for key, entries in values.items():
        numbers = [float(v) for v, _ in entries]
        method = entries[-1][1]
        if method == StatsAggregationMethod.MOST_RECENT:
            out[STATS_PREFIX + key] = numbers[-1]
        elif method == StatsAggregationMethod.SUM:
            out[STATS_PREFIX + key] = sum(numbers)
        else:  # AVERAGE, HISTOGRAM
            out[STATS_PREFIX + key] = sum(numbers) / len(numbers)
    return out
