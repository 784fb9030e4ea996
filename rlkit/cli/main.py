"""The `rlkit` command: its parser and its one rule for failures.

Expected failures are one line on stderr: bad input (UsageError, rlkit.core.config.ConfigError)
exits 2 before anything is written; a run that cannot go on (RunFailure: it diverged, the disk
is full, no checkpoint is readable) exits 1 and keeps what it saved; an interrupted run exits
130 after saving a checkpoint. Any other exception is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import threading
from typing import NoReturn

from rlkit.cli.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, RunFailure, UsageError

__all__ = ["build_parser", "main"]

# Commands in modules of their own: each exposes add_parser(subparsers) and run(args, argv) -> int,
# and imports nothing heavy (JAX, matplotlib, optuna) at module level, so `--help` stays fast.
_COMMAND_MODULES = {
    "sweep": "rlkit.cli.sweep",
    "tune": "rlkit.cli.tune",
    "compare": "rlkit.cli.compare",
    "plot": "rlkit.cli.plot",
    "reproduce": "rlkit.cli.reproduce",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _add_train(sub: argparse._SubParsersAction) -> None:
    from rlkit.report.metrics import DEFAULT_LOG_EVERY

    train = sub.add_parser(
        "train",
        help="train an agent, or continue a run (--resume)",
        description="Train ALGO on ENV, or continue a stopped run with --resume RUN.",
    )
    train.add_argument("algo", nargs="?", help="algorithm (see `rlkit algos`)")
    train.add_argument(
        "--env",
        help="environment (see `rlkit envs`), gym:ENV_ID for a gymnasium one, or "
        "unity:PATH_TO_PLAYER / unity:editor for Unity ML-Agents",
    )
    train.add_argument("--seeds", type=int, help="independent seeds, vmapped (default 1)")
    train.add_argument("--seed", type=int, help="base random seed (default 0)")
    train.add_argument("--steps", type=int, help="environment steps per seed (total_steps)")
    train.add_argument("--preset", help="named preset of the algorithm (see `rlkit algos ALGO`)")
    train.add_argument(
        "--defaults",
        dest="preset",
        action="store_const",
        const="defaults",  # rlkit.cli.spec.REFERENCE_DEFAULTS
        help="the algorithm's reference defaults, not the tuned defaults of paper_configs "
        "for this environment",
    )
    train.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a hyperparameter"
    )
    train.add_argument(
        "--env-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an environment parameter (e.g. gravity=4.0)",
    )
    train.add_argument("--config", help="YAML file (a run's config.yaml reruns that run)")
    train.add_argument("--name", help="run name (default ALGO-ENV-TIME, made unique)")
    train.add_argument("--runs-dir", default="runs", help="where run directories go (default runs)")
    train.add_argument("--eval-episodes", type=int, default=32, help="final evaluation episodes")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--resume", metavar="RUN", help="continue this run from its checkpoint")
    train.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="ITERATIONS",
        help="save a checkpoint after the chunk that reaches each multiple of ITERATIONS "
        "(default: every fifth chunk, about 4 per run; 0: only at the end and on a signal)",
    )
    train.add_argument(
        "--keep-checkpoints", type=int, default=3, help="newest checkpoints kept (default 3)"
    )
    train.add_argument(
        "--log-every",
        type=int,
        metavar="STEPS",
        help=f"environment steps per seed between metrics rows (default {DEFAULT_LOG_EVERY})",
    )
    train.add_argument("--wandb", action="store_true", help="also log to Weights & Biases")
    add_job_arguments(train)
    from rlkit.cli import unity_env

    unity_env.add_arguments(train)


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    """--coordinator, --num-processes, --process-id, --join-timeout: one process of a
    jax.distributed job (rlkit.cli.train._join)."""
    multi = parser.add_argument_group(
        "several processes (jax.distributed; the members split over them, process 0 writes)"
    )
    multi.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address")
    multi.add_argument("--num-processes", type=int, metavar="N", help="processes in the job")
    multi.add_argument("--process-id", type=int, metavar="I", help="this process, 0..N-1")
    multi.add_argument(
        "--join-timeout",
        type=int,
        default=300,
        metavar="SECONDS",
        help="give up when the job has not formed after SECONDS (default 300)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rlkit", description="JAX reinforcement learning: train and compare agents."
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train(sub)

    evaluate = sub.add_parser(
        "eval",
        help="evaluate a run's saved policy",
        description="Episodes of the policy in RUN's newest checkpoint (deterministic actions "
        "unless --stochastic), for every seed of the run.",
    )
    evaluate.add_argument("run", help="a run directory (runs/<name>)")
    evaluate.add_argument("--episodes", type=int, default=32, help="episodes per seed")
    evaluate.add_argument("--stochastic", action="store_true", help="sample actions")
    evaluate.add_argument(
        "--seed",
        type=int,
        help="evaluation random seed (default: the run's, which repeats its final evaluation)",
    )

    for module in _COMMAND_MODULES.values():
        importlib.import_module(module).add_parser(sub)

    algos = sub.add_parser("algos", help="list algorithms, or one algorithm's hyperparameters")
    algos.add_argument("algo", nargs="?", help="show this algorithm's hyperparameters and presets")

    env_cmd = sub.add_parser("envs", help="list environments; roll rlkit's with random actions")
    env_cmd.add_argument("--num-envs", type=int, default=1024, help="copies for the speed check")
    env_cmd.add_argument("--steps", type=int, default=200, help="steps for the speed check")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `rlkit` console script."""
    from rlkit.core.config import ConfigError
    from rlkit.training.cpu_compilation import prefer_fast_cpu_compilation

    prefer_fast_cpu_compilation()  # before anything starts JAX's backend
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = _parse(build_parser(), argv)
        return _dispatch(args, argv)
    except (UsageError, ConfigError) as error:
        print(f"rlkit: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except RunFailure as error:
        print(f"rlkit: error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("rlkit: interrupted", file=sys.stderr)
        if threading.active_count() > 1:
            # A second signal stops at once, maybe in the middle of a compiled program whose
            # threads (and a checkpoint's background write) are still running: tearing the
            # interpreter down under them crashed (SIGSEGV, exit 139). What is saved is saved;
            # leave without the teardown.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """The parsed command line. `rlkit train` also takes a hyperparameter as `--key=value`
    (the form W&B sweep agents pass), the same as `--set key=value`."""
    args, extra = parser.parse_known_args(argv)
    unknown = []
    for item in extra:
        match = re.fullmatch(r"--([A-Za-z_][A-Za-z0-9_]*)=(.*)", item, re.DOTALL)
        if args.command == "train" and match:
            args.set.append(f"{match[1]}={match[2]}")
        else:
            unknown.append(item)
    if unknown:
        raise UsageError(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def _dispatch(args: argparse.Namespace, argv: list[str]) -> int:
    if args.command in _COMMAND_MODULES:
        return importlib.import_module(_COMMAND_MODULES[args.command]).run(args, argv)
    if args.command == "train":
        from rlkit.cli.train import run_train

        return run_train(args, argv)
    if args.command == "eval":
        from rlkit.cli.evaluate import run_eval

        return run_eval(args)
    from rlkit.cli.listing import list_algorithms, list_environments

    if args.command == "algos":
        return list_algorithms(args)
    return list_environments(args)
