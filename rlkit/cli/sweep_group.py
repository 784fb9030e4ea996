"""One group of a sweep: its points x seeds trained as the members of one compiled program, in a
run directory of its own (sweeps/<name>/group_<g>/), checkpointed and resumable like a run.

Member m = i * S + s is the group's i-th point with seed s (rlkit.training.runner). Its rows in
metrics.jsonl carry the point's index in the whole grid ("point") and the seed within the point
("seed"); its TensorBoard folder is point_<p>_seed_<s>.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from rlkit.cli.run import Run
from rlkit.report.tensorboard import TensorBoardSink

__all__ = ["GroupRun", "train_group"]


class GroupRun(Run):
    """A Run whose "seeds" are the members of a group: rows and TensorBoard folders are labelled
    with (point, seed) instead of the member index."""

    def __init__(
        self,
        folder: Path,
        spec: Any,
        algo: Any,
        keep: int,
        point_indices: list[int],
        num_seeds: int,
        writer: bool = True,
    ) -> None:
        super().__init__(folder, spec, algo, keep=keep, wandb=False, writer=writer)
        self.point_indices = list(point_indices)
        self.num_seeds = num_seeds

    def _label(self, member: int) -> tuple[int, int]:
        return self.point_indices[member // self.num_seeds], member % self.num_seeds

    def start(self, iteration: int, resumed: bool) -> None:
        if not self.writer:
            return
        resume_step = self._env_steps(iteration) if resumed else None
        members = len(self.point_indices) * self.num_seeds
        names = ["point_{}_seed_{}".format(*self._label(m)) for m in range(members)]
        self._sinks = [TensorBoardSink(self.folder, members, resume_step=resume_step, names=names)]

    def file_rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each member's row labelled with its point and its seed within the point (the
        TensorBoard sinks get the rows by member: their folder names carry the labels)."""
        labelled = []
        for row in rows:
            point, seed = self._label(row["seed"])
            labelled.append({"iteration": row["iteration"], "point": point, **row, "seed": seed})
        return labelled


def train_group(
    folder: Path, spec: Any, group: Any, algo: Any, args: argparse.Namespace, cache: Any
) -> dict[str, Any] | None:
    """Train (or continue, or read back) one group; returns {"per_point": [per point:
    {"per_seed_mean_return": [S], "finite": [S]}]} once finished, None when a signal stopped
    it (its checkpoint saved)."""
    from rlkit.cli.sweep import group_spec
    from rlkit.cli.train import (
        CHUNKS_PER_CHECKPOINT,
        StopLatch,
        _failure,
        _stop_on_signals,
        chunk_length,
    )
    from rlkit.training import distributed
    from rlkit.training.runner import Runner

    summary_file = folder / "summary.json"
    if summary_file.is_file():
        return _finished(summary_file)
    resume = _has_checkpoint(folder)  # read by every process of a job before any writes
    distributed.any_process(False)  # (a barrier: the reads above come first)
    primary = distributed.is_primary()
    if primary and folder.exists() and not resume:
        shutil.rmtree(folder)  # killed before its first checkpoint: nothing to continue from
    if primary:
        folder.mkdir(parents=True, exist_ok=True)
    gspec = group_spec(spec, group, algo)
    run = GroupRun(
        folder,
        gspec,
        algo,
        args.keep_checkpoints,
        list(group.indices),
        spec.seeds,
        writer=primary,
    )
    runner = Runner(algo)
    points = {k: np.asarray(v, np.float32) for k, v in group.traced.items()} or None
    start = run.restore(runner) if resume else None
    chunk = chunk_length(algo.num_iterations, run.interval)
    every = args.checkpoint_every
    save = run.saver(CHUNKS_PER_CHECKPOINT * chunk if every is None else every)
    wall_start = time.perf_counter()
    with _stop_on_signals() as stop_requested:
        try:
            run.start(0 if start is None else start[0], resumed=start is not None)
            latch = StopLatch(stop_requested, save)
            result = runner.train(
                num_seeds=spec.seeds,
                seed=spec.seed,
                chunk_target=chunk,
                sinks=[run.sink],
                progress=not args.no_progress,
                eval_episodes=args.eval_episodes,
                start=start,
                on_chunk=latch.save_then_read,
                should_stop=latch.read,
                guard=False,  # a diverging point is a result of the sweep, not its end
                points=points,
            )
            if result.completed:
                per_point = _per_point(algo, result, len(group.indices), spec.seeds)
                wall = time.perf_counter() - wall_start
                run.write_summary(result, wall, cache, extra={"per_point": per_point})
        except BaseException as error:
            run.close(quiet=True)
            raise _failure(error, run) from error
        run.close()
    return {"per_point": per_point} if result.completed else None


def _per_point(algo: Any, result: Any, num_points: int, num_seeds: int) -> list[dict]:
    """Per point: each seed's mean final return and whether its policy parameters are finite."""
    import jax

    returns = np.asarray(result.evaluation["returns"], np.float64).mean(axis=1)
    from rlkit.training.distributed import to_host

    params = to_host(jax.vmap(algo.policy_params)(result.state))  # from every process
    finite = np.ones(returns.shape[0], bool)
    for leaf in jax.tree.leaves(params):
        leaf = np.asarray(leaf)
        if np.issubdtype(leaf.dtype, np.floating):
            finite &= np.isfinite(leaf.reshape(leaf.shape[0], -1)).all(axis=1)
    finite &= np.isfinite(returns)
    return [
        {
            "per_seed_mean_return": returns[p * num_seeds : (p + 1) * num_seeds].tolist(),
            "finite": finite[p * num_seeds : (p + 1) * num_seeds].tolist(),
        }
        for p in range(num_points)
    ]


def _finished(summary_file: Path) -> dict[str, Any]:
    import json

    from rlkit.cli.errors import RunFailure
    from rlkit.report.metrics import number

    try:
        per_point = json.loads(summary_file.read_text())["per_point"]
    except (OSError, ValueError, KeyError) as error:
        raise RunFailure(f"cannot read {summary_file}: {error}") from error
    for entry in per_point:
        entry["per_seed_mean_return"] = [number(v) for v in entry["per_seed_mean_return"]]
    return {"per_point": per_point}


def _has_checkpoint(folder: Path) -> bool:
    checkpoints = folder / "checkpoints"
    return checkpoints.is_dir() and any(p.name.isdigit() for p in checkpoints.iterdir())
