"""One run on disk while it trains: its folder's files, its sinks and its checkpoints.

Every chunk's metrics are reduced to rows (rlkit.report.metrics) and written to metrics.jsonl,
the TensorBoard event files and, with --wandb, Weights & Biases. Checkpoints go to
<run>/checkpoints with the run's algorithm, environment and seeds as metadata, so a resume
into anything else is refused. A resume restores the newest readable checkpoint, drops the
rows and events written after it, and continues.

In a job of several processes (rlkit.training.distributed) every process holds a Run, and
only process 0's is a `writer`: the others write nothing (no metrics, events, checkpoints or
summary) but take part in every gather a checkpoint needs, at the same iterations.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rlkit.bridges.host import host_stats
from rlkit.cli.errors import RunFailure
from rlkit.report.metrics import aggregate, log_interval
from rlkit.report.rundir import RunDirectory
from rlkit.report.tensorboard import TensorBoardSink

__all__ = ["Run"]


class Run:
    """The files of one run in `folder`: call `start(iteration)` (0, or what `restore`
    returned) before training, `sink` after every chunk, `close` at the end. With `writer`
    False (a process other than 0 of a distributed job) nothing is written."""

    def __init__(
        self, folder: Path, spec: Any, algo: Any, keep: int, wandb: bool, writer: bool = True
    ) -> None:
        from rlkit.training.checkpoints import Checkpoints

        self.folder = Path(folder)
        self.spec, self.algo = spec, algo
        self.directory = RunDirectory(self.folder)
        self.checkpoints = Checkpoints(self.folder / "checkpoints", keep=keep)
        self.interval = log_interval(algo.steps_per_iteration, spec.log_every)
        self.use_wandb = wandb
        self.writer = writer
        self._sinks: list[Any] = []
        self.saved: int | None = None
        self.checkpoint_seconds = 0.0  # the training loop's time in save calls

    # -- metrics ---------------------------------------------------------------------------

    def start(self, iteration: int, resumed: bool) -> None:
        """Open the sinks for a run that has done `iteration` iterations; a resumed run's
        events after that step (left by the process that was stopped) are hidden."""
        if not self.writer:
            return
        resume_step = self._env_steps(iteration) if resumed else None
        self._sinks = [TensorBoardSink(self.folder, self.spec.seeds, resume_step=resume_step)]
        if self.use_wandb:
            from rlkit.report.wandb_sink import open_wandb

            sink = open_wandb(self.folder, self.folder.name, self.spec.record(""), resume=resumed)
            if sink is not None:
                self._sinks.append(sink)

    def sink(self, first_iteration: int, metrics: dict[str, np.ndarray]) -> None:
        """The runner's sink: a chunk's metrics [seeds, K] as rows, to every destination."""
        if not self.writer:
            return
        rows = aggregate(
            first_iteration,
            metrics,
            self.interval,
            self.algo.steps_per_iteration,
            self.algo.init_steps,
        )
        _add_host_stats(rows, host_stats(self.spec.env))
        self.directory.write_rows(self.file_rows(rows))
        for sink in self._sinks:
            sink.write(rows)

    def file_rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows as metrics.jsonl holds them (a run: as they are; a sweep group labels each
        member with its point and seed)."""
        return rows

    def _env_steps(self, iteration: int) -> int:
        return self.algo.init_steps + iteration * self.algo.steps_per_iteration

    # -- checkpoints -----------------------------------------------------------------------

    def _metadata(self, iteration: int) -> dict[str, Any]:
        return {
            "algo": self.spec.algo,
            "env": self.spec.env_name,
            "seeds": self.spec.seeds,
            "iteration": iteration,
            "env_steps": self._env_steps(iteration),
        }

    def saver(self, every: int) -> Callable[[int, Any, bool], None]:
        """on_chunk for the runner: save after the chunk that reaches each multiple of `every`
        iterations (0: never on schedule), after the last one, and when a stop was asked.
        A state spread over several processes is gathered first (by every process)."""
        from rlkit.training.distributed import process_count, to_host

        last = self.algo.num_iterations

        def save(iteration: int, state: Any, stopping: bool) -> None:
            previous = self.saved or 0
            due = every > 0 and iteration // every > previous // every
            if due or stopping or iteration >= last:
                start = time.perf_counter()
                if process_count() > 1:
                    state = to_host(state)  # a collective: every process, at this iteration
                if self.writer:
                    self.checkpoints.save(iteration, state, self._metadata(iteration))
                self.checkpoint_seconds += time.perf_counter() - start
                self.saved = iteration

        return save

    def kept(self) -> int | None:
        """The newest complete checkpoint on disk (a save whose background write failed is
        not one), without waiting for writes in flight."""
        folder = self.folder / "checkpoints"
        steps = (
            [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() else []
        )
        return max(steps, default=None)

    def restore(self, runner: Any) -> tuple[int, Any]:
        """The newest readable checkpoint as (iteration, state), placed as `runner` trains;
        the rows after it are dropped from metrics.jsonl. RunFailure when none is usable."""
        from rlkit.training.checkpoints import CheckpointError

        like = runner.abstract_state(self.spec.seeds)
        expect = {"algo": self.spec.algo, "env": self.spec.env_name, "seeds": self.spec.seeds}
        try:
            iteration, state, warnings = self.checkpoints.restore_latest(like, expect)
        except CheckpointError as error:
            raise RunFailure(str(error)) from error
        for warning in warnings:
            print(f"rlkit: warning: {warning}", file=sys.stderr)
        if self.writer:
            self.directory.truncate(iteration)
        self.saved = iteration
        return iteration, state

    # -- the end ---------------------------------------------------------------------------

    def write_summary(
        self, result: Any, wall: float, cache: Any, extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """summary.json (with `extra`'s entries), once the last checkpoint is on disk (so a
        summary never names a checkpoint that a crash could still lose)."""
        start = time.perf_counter()
        self.checkpoints.wait()
        self.checkpoint_seconds += time.perf_counter() - start
        summary = {
            **summarise(result, wall),
            "env_steps_per_seed": self._env_steps(result.iteration),
            "checkpoint": self.saved,
            "checkpoint_seconds": self.checkpoint_seconds,
            "compilation_cache": None if cache is None else str(cache),
            **(extra or {}),
        }
        if self.writer:
            self.directory.write_summary(summary)
        return summary

    def close(self, quiet: bool = False) -> None:
        """Finish pending checkpoint writes and close every sink (each is tried, so that one
        failing keeps no other open); the first failure is raised unless `quiet` (the run is
        already failing with an error of its own)."""
        errors = []
        for close in [self.checkpoints.close, *(s.close for s in self._sinks)]:
            try:
                close()
            except Exception as error:
                errors.append(error)
        self._sinks = []
        if errors and not quiet:
            raise errors[0]


def _add_host_stats(rows: list[dict[str, Any]], stats: dict[str, float]) -> None:
    """A host environment's statistics of the chunk (`unity/<key>`, drained after it) go into
    the chunk's last row of every seed."""
    if not stats or not rows:
        return
    last = rows[-1]["iteration"]
    for row in rows:
        if row["iteration"] == last:
            row.update(stats)


def summarise(result: Any, wall: float) -> dict[str, Any]:
    """summary.json of a finished run: the final evaluation and the timings."""
    returns = np.asarray(result.evaluation["returns"], dtype=np.float64)
    lengths = np.asarray(result.evaluation["lengths"], dtype=np.float64)
    return {
        "evaluation": {
            "deterministic": True,
            "episodes_per_seed": int(returns.shape[1]),
            "mean_return": float(returns.mean()),
            "per_seed_mean_return": returns.mean(axis=1).tolist(),
            "mean_length": float(lengths.mean()),
        },
        "iterations": int(result.iteration),
        "wall_seconds": wall,
        "compile_seconds": result.timing["compile_seconds"],
        "train_seconds": result.timing["train_seconds"],
        "steps_per_second": result.timing["steps_per_second"],
        "devices": int(result.timing.get("devices", 1)),
    }
