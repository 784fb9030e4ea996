"""`rlkit train`: a fresh run, or `--resume RUN` to continue one from its last checkpoint.

A fresh run resolves and checks its whole input (rlkit.cli.spec), builds the algorithm, and only
then creates its folder. It trains in chunks of about a twentieth of the run, rounded up to
whole log intervals (so no metrics row is cut short). A checkpoint is saved every
`--checkpoint-every` iterations (default: every fifth chunk), after the last one, and when
SIGINT or SIGTERM asks it to stop (after the chunk in progress; a second signal stops at once).
A resumed run restores the newest readable checkpoint, drops the metrics written after it, and
continues with the same chunks, so its numbers are those of a run that was never stopped.
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
    from rlkit.training.compile_cache import enable_compilation_cache
    from rlkit.training.devices import use_cpu_cores

    use_cpu_cores()  # before JAX starts: seeds of a multi-seed run spread over the cores
    specs.check_int("--eval-episodes", args.eval_episodes, 1, specs.MAX_EVAL_EPISODES)
    specs.check_int("--keep-checkpoints", args.keep_checkpoints, 1, 1000)
    if args.checkpoint_every is not None:
        specs.check_int("--checkpoint-every", args.checkpoint_every, 0, specs.INT32_MAX)
    if args.resume is not None:
        return _resume(args)
    spec = specs.resolve(
        args.algo,
        env=args.env,
        preset=args.preset,
        config_file=args.config,
        steps=args.steps,
        sets=args.set,
        env_sets=args.env_set,
        seeds=args.seeds,
        seed=args.seed,
        log_every=args.log_every,
    )
    algo = spec.module.make(spec.config, spec.env, spec.env_params)
    folder = _create_folder(args, spec)  # the first thing written, once the input is checked
    cache = enable_compilation_cache()  # before the first compilation: a rerun skips compiling
    _say_rounding(spec, algo)
    run = _open_run(folder, spec, algo, args)
    try:
        run.directory.write_config(spec.record("rlkit " + " ".join(argv)))
    except OSError as error:
        shutil.rmtree(folder, ignore_errors=True)  # the empty folder this command just made
        raise RunFailure(f"cannot write the run in {folder}: {_reason(error)}") from error
    print(
        f"rlkit: training {spec.algo} on {spec.env_name}, {spec.seeds} seed(s), "
        f"{_trained_steps(algo):,} steps each -> {folder}",
        file=sys.stderr,
    )
    return _train(run, algo, args, cache, resume=False)


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
    spec = specs.resolve(None, config_file=str(config_file))
    algo = spec.module.make(spec.config, spec.env, spec.env_params)
    cache = enable_compilation_cache()
    run = _open_run(folder, spec, algo, args)
    return _train(run, algo, args, cache, resume=True)


def _train(run: Any, algo: Any, args: Any, cache: Any, resume: bool) -> int:
    from rlkit.training.checkpoints import CheckpointError
    from rlkit.training.runner import Runner

    spec = run.spec
    chunk = chunk_length(algo.num_iterations, run.interval)
    every = args.checkpoint_every
    if every is None:
        every = CHUNKS_PER_CHECKPOINT * chunk
    runner = Runner(algo)
    start = None
    if resume:
        start = run.restore(runner)
        if start[0] >= algo.num_iterations and (run.folder / "summary.json").exists():
            print(f"rlkit: {run.folder} has finished training; nothing to resume", file=sys.stderr)
            run.close()
            return 0
        print(
            f"rlkit: resuming {spec.algo} on {spec.env_name} at iteration {start[0]} of "
            f"{algo.num_iterations} ({run.folder})",
            file=sys.stderr,
        )
    save = run.saver(every)
    wall_start = time.perf_counter()
    with _stop_on_signals() as stop_requested:
        try:
            run.start(0 if start is None else start[0], resumed=start is not None)
            result = runner.train(
                num_seeds=spec.seeds,
                seed=spec.seed,
                chunk_target=chunk,
                sinks=[run.sink],
                progress=not args.no_progress,
                eval_episodes=args.eval_episodes,
                start=start,
                on_chunk=lambda iteration, state: save(iteration, state, stop_requested()),
                should_stop=stop_requested,
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
        print(
            f"rlkit: stopped at iteration {result.iteration} of {algo.num_iterations}; "
            f"checkpoint saved; continue with: rlkit train --resume {run.folder}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
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
    from rlkit.training.checkpoints import CheckpointError
    from rlkit.training.guard import Diverged

    kept = run.kept()
    where = f"checkpoint {kept} is kept" if kept is not None else "no checkpoint was saved"
    if isinstance(error, Diverged):
        return RunFailure(f"training diverged: {error}; {where} in {run.folder}")
    if isinstance(error, CheckpointError):
        return RunFailure(f"{error}; {where}")
    if isinstance(error, OSError):
        return RunFailure(f"cannot write the run in {run.folder}: {_reason(error)}; {where}")
    return error


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

    try:
        return create_run_folder(
            args.runs_dir, args.name, default_run_name(spec.algo, spec.env_name)
        )
    except RunFolderError as error:
        raise UsageError(str(error)) from error


def _open_run(folder: Path, spec: Any, algo: Any, args: Any) -> Any:
    from rlkit.cli.run import Run

    return Run(folder, spec, algo, keep=args.keep_checkpoints, wandb=args.wandb)


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
