"""Hyperparameter grids: the points of a sweep, and how they split into compiled programs.

A grid maps hyperparameter names to lists of values; its points are the Cartesian product, the
first name varying slowest:

    grid = {"learning_rate": [1e-4, 1e-3], "gamma": [0.9, 0.99]}
    points(grid) == [{"learning_rate": 1e-4, "gamma": 0.9}, {"learning_rate": 1e-4,
                     "gamma": 0.99}, {"learning_rate": 1e-3, "gamma": 0.9}, ...]

A traced hyperparameter (`hp(..., traced=True)`) changes no array shape, so every value of it
runs in one compiled program (vmapped beside the seeds). Any other (a width, num_envs, a
switch) changes the program: the points are split into groups of equal static values, one
compiled program each, run in turn.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from rlkit.core.config import ConfigError, coerce_field

__all__ = ["Group", "groups", "parse_grid_values", "points", "traced_names"]


@dataclasses.dataclass(frozen=True)
class Group:
    """Points sharing one compiled program.

    indices: the points' positions in `points(grid)` (ascending).
    static: the shape-changing values they share (name -> value; empty when the grid sweeps
        only traced hyperparameters).
    traced: name -> the points' values, in the order of `indices` (empty when nothing traced
        is swept: the group then holds one point).
    """

    indices: tuple[int, ...]
    static: dict[str, Any]
    traced: dict[str, list[Any]]


def traced_names(config_cls: type) -> set[str]:
    """The names of the traced (vmappable) fields of an agent's Config."""
    return {f.name for f in dataclasses.fields(config_cls) if f.metadata.get("traced")}


def points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values (first name slowest), as dicts."""
    names = list(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]


def groups(config_cls: type, grid: dict[str, list[Any]]) -> list[Group]:
    """The grid's points split by their shape-changing values, in order of first appearance."""
    traced = traced_names(config_cls)
    by_static: dict[tuple, list[int]] = {}
    all_points = points(grid)
    for index, point in enumerate(all_points):
        key = tuple((k, _hashable(v)) for k, v in point.items() if k not in traced)
        by_static.setdefault(key, []).append(index)
    out = []
    for key, indices in by_static.items():
        static = {k: all_points[indices[0]][k] for k, _ in key}
        swept = {k: [all_points[i][k] for i in indices] for k in grid if k in traced}
        out.append(Group(tuple(indices), static, swept))
    return out


def parse_grid_values(config_cls: type, name: str, values: list[Any]) -> list[Any]:
    """A grid entry's values coerced to the field's type; ConfigError naming the field for an
    unknown name, an empty list or a repeated value."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    if name not in names:
        raise ConfigError(f"unknown hyperparameter {name!r} in the grid")
    if not values:
        raise ConfigError(f"grid {name} has no values")
    coerced = [coerce_field(config_cls, name, v) for v in values]
    if len({_hashable(v) for v in coerced}) != len(coerced):
        raise ConfigError(f"grid {name} repeats a value: {values}")
    return coerced


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list | tuple) else value
