"""Metrics rows: per-interval reduction, and JSON that tells "no data" from "not finite"."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rlkit.report.metrics import aggregate, dumps, json_value, log_interval, number
from rlkit.report.rundir import RunDirectory


def test_log_interval_gives_about_one_row_per_log_every_steps() -> None:
    assert log_interval(1, 1000) == 1000  # SAC: one env step per iteration
    assert log_interval(10, 1000) == 100  # DQN: 10 copies x 1 step
    assert log_interval(512, 1000) == 2  # ceil(1000 / 512)
    assert log_interval(4096, 1000) == 1


def test_rows_reduce_each_interval_by_its_rule() -> None:
    # 2 seeds x 4 iterations, interval 2 -> rows for iterations {0,1} and {2,3} per seed.
    metrics = {
        "loss": np.array([[1.0, 3.0, 5.0, 7.0], [2.0, 2.0, 2.0, 2.0]], np.float32),
        "episodes": np.array([[0.0, 2.0, 1.0, 3.0], [0.0, 0.0, 0.0, 1.0]], np.float32),
        "episode_return": np.array(
            [[np.nan, 10.0, 4.0, 8.0], [np.nan, np.nan, np.nan, 6.0]], np.float32
        ),
    }
    rows = aggregate(10, metrics, interval=2, steps_per_iteration=100, init_steps=50)
    assert [(r["iteration"], r["seed"]) for r in rows] == [(11, 0), (11, 1), (13, 0), (13, 1)]
    first, _, second, seed1 = rows
    assert first["env_steps"] == 50 + 12 * 100 and first["iterations"] == 2
    assert first["loss"] == 2.0 and second["loss"] == 6.0  # means of (1, 3) and (5, 7)
    assert first["episodes"] == 2.0 and second["episodes"] == 4.0
    assert first["episode_return"] == 10.0  # the NaN iteration had no episode
    assert second["episode_return"] == pytest.approx((4.0 * 1 + 8.0 * 3) / 4)  # per episode
    assert rows[1]["episode_return"] is None  # seed 1 finished no episode in 10..11
    assert seed1["episode_return"] == 6.0


def test_a_row_never_spans_a_chunk_boundary() -> None:
    # A chunk of iterations 3..7 with interval 4: rows cover {3}, {4,5,6,7}.
    metrics = {"loss": np.arange(5, dtype=np.float32)[None]}
    rows = aggregate(3, metrics, interval=4, steps_per_iteration=1)
    assert [(r["iteration"], r["iterations"], r["loss"]) for r in rows] == [
        (3, 1, 0.0),
        (7, 4, 2.5),
    ]


def test_non_finite_values_are_strings_and_missing_ones_null() -> None:
    metrics = {
        "loss": np.array([[np.nan, np.inf, -np.inf, 1.0]], np.float32),
        "episode_return": np.full((1, 4), np.nan, np.float32),
        "episodes": np.zeros((1, 4), np.float32),
    }
    rows = aggregate(0, metrics, interval=1, steps_per_iteration=1)
    text = [dumps(r) for r in rows]
    decoded = [json.loads(t) for t in text]  # strict JSON: no bare NaN
    assert [d["loss"] for d in decoded] == ["nan", "inf", "-inf", 1.0]
    assert all(d["episode_return"] is None for d in decoded)
    assert math.isnan(number("nan")) and number("-inf") == -math.inf and number(None) is None
    with pytest.raises(ValueError):
        json.dumps({"x": float("nan")}, allow_nan=False)
    assert json_value(np.array([1.0, np.nan])) == [1.0, "nan"]


def test_truncate_keeps_the_rows_before_a_checkpoint_and_drops_a_torn_line(tmp_path) -> None:
    directory = RunDirectory(tmp_path)
    metrics = {"loss": np.arange(6, dtype=np.float32).reshape(1, 6)}
    directory.write_rows(aggregate(0, metrics, interval=2, steps_per_iteration=1))
    with open(directory.metrics_path, "a") as f:
        f.write('{"iteration": 7, "se')  # a kill in the middle of a write
    directory.truncate(4)
    rows = [json.loads(line) for line in directory.metrics_path.read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 3]


def test_run_files_get_the_permissions_of_a_users_files(tmp_path) -> None:
    import os

    old = os.umask(0o022)
    try:
        directory = RunDirectory(tmp_path)
        directory.write_summary({"x": 1})
        directory.write_rows(aggregate(0, {"a": np.ones((1, 1))}, 1, 1))
    finally:
        os.umask(old)
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == 0o644
    assert directory.metrics_path.stat().st_mode & 0o777 == 0o644
