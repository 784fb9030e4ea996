"""`rlkit train`: a fresh run, or `--resume RUN` to continue one from its last checkpoint.

A fresh run resolves and checks its whole input (rlkit.cli.spec), builds the algorithm, and only
then creates its folder. It trains in chunks of about a twentieth of the run, rounded up to
whole log intervals (so no metrics row is cut short). A checkpoint is saved every
`--checkpoint-every` iterations (default: every fifth chunk), after the last one, and when
SIGINT or SIGTERM asks it to stop (after the chunk in progress; a second signal stops at once).
A resumed run restores the newest readable checkpoint, drops the metrics written after it, and
continues with the same chunks, so its numbers are those of a run that was never stopped.

With --coordinator HOST:PORT --num-processes N --process-id I the run is one of N processes of
a jax.distributed job (rlkit.training.distributed): the seeds split over the processes, every
process trains its slice and takes part in every gather, and process 0 alone creates and
writes the run directory (the others print nothing but errors). A failure of process 0 before
training (its folder, its config) ends every process; a stop asked of any process stops all.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rlkit.cli import spec as specs
from rlkit.cli.errors import EXIT_INTERRUPTED, RunFailure, UsageError

__all__ = ["run_train"]

CHUNKS_PER_CHECKPOINT = 5  # the default interval: every fifth chunk, so about 4 per run


def run_train(args: argparse.Namespace, argv: list[str]) -> int:
    from rlkit.training.devices import use_cpu_cores

    use_cpu_cores()  # before JAX starts: seeds of a multi-seed run spread over the cores
    specs.check_int("--eval-episodes", args.eval_episodes, 1, specs.MAX_EVAL_EPISODES)
    specs.check_int("--keep-checkpoints", args.keep_checkpoints, 1, 1000)
    if args.checkpoint_every is not None:
        specs.check_int("--checkpoint-every", args.checkpoint_every, 0, specs.INT32_MAX)
    _join(args)  # before JAX starts, too
    if args.resume is not None:
        return _resume(args)
    spec = specs.resolve_args(args)
    try:
        return _fresh(args, argv, spec)
    finally:
        specs.close_env(spec.env)  # a Unity environment's processes end with the command


def _fresh(args: argparse.Namespace, argv: list[str], spec: Any) -> int:
    """A fresh run of the resolved `spec` (run_train's part once the input is checked)."""
    from rlkit.training import distributed
    from rlkit.training.compile_cache import enable_compilation_cache

    _check_split(spec.seeds)
    algo = spec.module.make(spec.config, spec.env, spec.env_params)
    primary = distributed.is_primary()
    folder, failure = None, None
    if primary:
        try:
            folder = _create_folder(args, spec)  # the first thing written, once input is checked
        except UsageError as error:
            failure = error
    _agree(failure, "process 0 could not create the run directory")
    if folder is not None:
        _keep_host_logs(spec.env, folder)
    cache = enable_compilation_cache()  # before the first compilation: a rerun skips compiling
    if primary:
        _say_rounding(spec, algo)
    run = _open_run(folder or _elsewhere(args), spec, algo, args)
    if primary:
        try:
            run.directory.write_config(spec.record("rlkit " + " ".join(argv)))
        except OSError as error:
            shutil.rmtree(folder, ignore_errors=True)  # the empty folder this command just made
            failure = RunFailure(f"cannot write the run in {folder}: {_reason(error)}")
            failure.__cause__ = error
    _agree(failure, "process 0 could not write the run's config")
    if primary:
        print(
            f"rlkit: training {spec.algo} on {spec.env_name}, {spec.seeds} seed(s), "
            f"{_trained_steps(algo):,} steps each -> {folder}",
            file=sys.stderr,
        )
    return _train(run, algo, args, cache, resume=False)


def _keep_host_logs(env: Any, folder: Path) -> None:
    """A host that writes logs (Unity players) copies them into <run>/unity-logs when closed."""
    host = getattr(getattr(env, "unwrapped", env), "host", None)
    if hasattr(host, "logs_to"):
        host.logs_to = folder / "unity-logs"


def _join(args: argparse.Namespace) -> None:
    """Join the jax.distributed job that --coordinator, --num-processes and --process-id name
    (all three, or none: a one-process run); UsageError for values it would refuse."""
    from rlkit.training import distributed

    coordinator = getattr(args, "coordinator", None)
    count, index = getattr(args, "num_processes", None), getattr(args, "process_id", None)
    if coordinator is None:
        if count is not None or index is not None:
            raise UsageError("--num-processes and --process-id need --coordinator HOST:PORT")
        return
    if count is None or index is None:
        raise UsageError("--coordinator needs --num-processes and --process-id")
    timeout = specs.check_int("--join-timeout", args.join_timeout, 1, 86_400)
    try:
        distributed.check_settings(coordinator, count, index)
    except ValueError as error:
        raise UsageError(str(error)) from None
    distributed.initialize(coordinator, count, index, timeout)


def _check_split(seeds: int) -> None:
    """UsageError unless the seeds divide over the processes (one slice each)."""
    from rlkit.training import distributed

    count = distributed.process_count()
    if seeds % count:
        raise UsageError(f"--seeds {seeds} does not divide over --num-processes {count}")


def _agree(failure: Exception | None, what: str) -> None:
    """Raise `failure` (a process-0 step failed) in every process: the others raise a
    RunFailure saying `what`, so that none goes on to train alone."""
    from rlkit.training import distributed

    if distributed.any_process(failure is not None):
        raise failure or RunFailure(f"{what} (see its error)")


def _elsewhere(args: argparse.Namespace) -> Path:
    """The run folder as a process other than 0 names it in messages (it writes nothing)."""
    return Path(args.resume or Path(args.runs_dir) / (args.name or "<process 0's run>"))


def _resume(args: argparse.Namespace) -> int:
    from rlkit.training.compile_cache import enable_compilation_cache

    fixed = ("algo", "env", "preset", "config", "steps", "seeds", "seed", "name", "log_every")
    given = [f"--{k.replace('_', '-')}" for k in fixed if getattr(args, k) not in (None, [])]
    given += ["--set"] * bool(args.set) + ["--env-set"] * bool(args.env_set)
    if given:
        shown = "ALGO" if given[0] == "--algo" else given[0]
        raise UsageError(f"--resume continues a run as it was configured; drop {shown}")
    folder = Path(args.resume)
    config_file = folder / "config.yaml"
    if not config_file.is_file():
        raise UsageError(f"{folder} is not a run directory (it has no config.yaml)")
    # a host env's state was never checkpointed: refused before one is built
    spec = specs.resolve(None, config_file=str(config_file), refuse="--resume")
    _check_split(spec.seeds)
    algo = spec.module.make(spec.config, spec.env, spec.env_params)
    cache = enable_compilation_cache()
    run = _open_run(folder, spec, algo, args)
    return _train(run, algo, args, cache, resume=True)


def _train(run: Any, algo: Any, args: Any, cache: Any, resume: bool) -> int:
    from rlkit.training import distributed
    from rlkit.training.checkpoints import CheckpointError
    from rlkit.training.runner import Runner

    spec, primary = run.spec, distributed.is_primary()
    chunk = chunk_length(algo.num_iterations, run.interval)
    every = args.checkpoint_every
    if every is None:
        every = CHUNKS_PER_CHECKPOINT * chunk
    runner = Runner(algo)
    start = None
    if resume:
        start = run.restore(runner)
        if start[0] >= algo.num_iterations and (run.folder / "summary.json").exists():
            if primary:
                print(
                    f"rlkit: {run.folder} has finished training; nothing to resume", file=sys.stderr
                )
            run.close()
            return 0
        if primary:
            print(
                f"rlkit: resuming {spec.algo} on {spec.env_name} at iteration {start[0]} of "
                f"{algo.num_iterations} ({run.folder})",
                file=sys.stderr,
            )
    save = run.saver(every)
    wall_start = time.perf_counter()
    with _stop_on_signals() as asked:

        def stop_requested() -> bool:  # asked of any process: every process stops there
            return distributed.any_process(asked())

        try:
            run.start(0 if start is None else start[0], resumed=start is not None)
            latch = StopLatch(stop_requested, save)
            result = runner.train(
                num_seeds=spec.seeds,
                seed=spec.seed,
                chunk_target=chunk,
                sinks=[run.sink],
                progress=not args.no_progress and primary,
                eval_episodes=args.eval_episodes,
                start=start,
                on_chunk=latch.save_then_read,
                should_stop=latch.read,
            )
            if result.completed:
                summary = run.write_summary(result, time.perf_counter() - wall_start, cache)
        except BaseException as error:
            run.close(quiet=True)  # what was saved stays; this error is the one to report
            raise _failure(error, run) from error
        try:
            run.close()
        except (CheckpointError, OSError) as error:
            raise _failure(error, run) from error
    if not result.completed:
        if primary:
            then = f"continue with: rlkit train --resume {run.folder}"
            if specs.is_host_env(spec.env_name):  # refused by _resume: say so here
                then = f"{spec.env_name} runs on the host, so the run cannot be resumed"
            print(
                f"rlkit: stopped at iteration {result.iteration} of {algo.num_iterations}; "
                f"checkpoint saved; {then}",
                file=sys.stderr,
            )
        return EXIT_INTERRUPTED
    if not primary:
        return 0
    ev = summary["evaluation"]
    print(
        f"rlkit: final deterministic evaluation: mean return {ev['mean_return']:.3f} "
        f"(per seed {', '.join(f'{r:.2f}' for r in ev['per_seed_mean_return'])}); "
        f"{summary['steps_per_second']:,.0f} steps/s, compile {summary['compile_seconds']:.1f} s, "
        f"wall {summary['wall_seconds']:.1f} s",
        file=sys.stderr,
    )
    return 0


def _failure(error: BaseException, run: Any) -> BaseException:
    """The one-line RunFailure for an expected failure during training; any other error as it
    is (a bug keeps its traceback)."""
    from rlkit.bridges.host import HostFailure, host_failure
    from rlkit.training.checkpoints import CheckpointError
    from rlkit.training.guard import Diverged

    kept = run.kept()
    where = f"checkpoint {kept} is kept" if kept is not None else "no checkpoint was saved"
    host_error = error if isinstance(error, HostFailure) else host_failure(run.spec.env)
    if isinstance(host_error, HostFailure):  # raised inside a compiled chunk: XLA wrapped it
        return RunFailure(f"{host_error}; {where} in {run.folder}")
    if isinstance(error, Diverged):
        return RunFailure(f"training diverged: {error}; {where} in {run.folder}")
    if isinstance(error, CheckpointError):
        return RunFailure(f"{error}; {where}")
    if isinstance(error, OSError):
        return RunFailure(f"cannot write the run in {run.folder}: {_reason(error)}; {where}")
    return error


class StopLatch:
    """Reads "was a stop asked?" once per chunk, so the chunk's save and the runner's stop
    agree: a signal that lands between them waits for the next chunk, never stops a run whose
    last chunk was not saved."""

    def __init__(self, asked: Any, save: Any) -> None:
        self.asked, self.save, self.stopping = asked, save, False

    def save_then_read(self, iteration: int, state: Any) -> None:
        """on_chunk: read the stop request, then save (a stop forces a save)."""
        self.stopping = self.asked()
        self.save(iteration, state, self.stopping)

    def read(self) -> bool:
        """should_stop: what this chunk's save saw."""
        return self.stopping


def chunk_length(num_iterations: int, log_interval: int) -> int:
    """Iterations per compiled chunk: about a twentieth of the run, rounded up to whole log
    intervals, so that no metrics row is cut short by a chunk's end."""
    twentieth = -(-num_iterations // 20)
    return log_interval * -(-twentieth // log_interval)


def _reason(error: OSError) -> str:
    """An OSError in words: 'disk full' for ENOSPC, else its strerror."""
    if error.errno == errno.ENOSPC:
        return "disk full"
    return error.strerror or str(error)


def _trained_steps(algo: Any) -> int:
    """Environment steps per seed the run takes: warm-up (off-policy init) and iterations."""
    return algo.init_steps + algo.num_iterations * algo.steps_per_iteration


def _say_rounding(spec: Any, algo: Any) -> None:
    """One line when total_steps is not a whole number of iterations."""
    trained, asked = _trained_steps(algo), spec.config.total_steps
    if trained != asked:
        warm = f" after {algo.init_steps:,} warm-up steps" if algo.init_steps else ""
        print(
            f"rlkit: note: total_steps {asked:,} trains {trained:,} steps per seed: "
            f"{algo.num_iterations:,} whole iterations of {algo.steps_per_iteration:,}{warm}",
            file=sys.stderr,
        )


def _create_folder(args: argparse.Namespace, spec: Any) -> Path:
    from rlkit.report.runs import RunFolderError, create_run_folder, default_run_name

    env = spec.env_name.replace(":", "-").replace("/", "-")  # gym:ALE/Pong-v5: a plain name
    try:
        return create_run_folder(args.runs_dir, args.name, default_run_name(spec.algo, env))
    except RunFolderError as error:
        raise UsageError(str(error)) from error


def _open_run(folder: Path, spec: Any, algo: Any, args: Any) -> Any:
    from rlkit.cli.run import Run
    from rlkit.training import distributed

    return Run(
        folder,
        spec,
        algo,
        keep=args.keep_checkpoints,
        wandb=args.wandb,
        writer=distributed.is_primary(),
    )


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[Any]:
    """While the block runs, the first SIGINT or SIGTERM only asks the run to stop (after the
    chunk in progress, once its checkpoint is saved); a second one stops at once. Yields the
    function that says whether a stop was asked."""
    asked: list[int] = []

    def handle(signum: int, frame: Any) -> None:
        if asked:
            raise KeyboardInterrupt
        asked.append(signum)
        print(
            f"\nrlkit: {signal.Signals(signum).name}: stopping after this chunk "
            "(again to stop now)",
            file=sys.stderr,
        )

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: bool(asked)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
