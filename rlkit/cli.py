"""The `rlkit` command line: train, algos, envs.

This is the only module of rlkit that imports agents/ and envs/. Bad input (unknown
algorithm, environment or hyperparameter, out-of-range value, unreadable config file) prints one
line `rlkit: error: ...` and exits with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import yaml

__all__ = ["main"]

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rlkit", description="JAX reinforcement learning: train and compare agents."
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = sub.add_parser("train", help="train an agent", description="Train ALGO on ENV.")
    train.add_argument("algo", help="algorithm (see `rlkit algos`)")
    train.add_argument("--env", help="environment (see `rlkit envs`)")
    train.add_argument("--seeds", type=int, help="independent seeds, vmapped (default 1)")
    train.add_argument("--seed", type=int, help="base random seed (default 0)")
    train.add_argument("--steps", type=int, help="environment steps per seed (total_steps)")
    train.add_argument("--preset", help="named preset of the algorithm (see `rlkit algos ALGO`)")
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
    train.add_argument("--name", help="run name (default ALGO-ENV-TIME)")
    train.add_argument("--runs-dir", default="runs", help="where run directories go (default runs)")
    train.add_argument("--eval-episodes", type=int, default=32, help="final evaluation episodes")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")

    algos = sub.add_parser("algos", help="list algorithms, or one algorithm's hyperparameters")
    algos.add_argument("algo", nargs="?", help="show this algorithm's hyperparameters and presets")

    env_cmd = sub.add_parser("envs", help="list environments; roll rlkit's with random actions")
    env_cmd.add_argument("--num-envs", type=int, default=1024, help="copies for the speed check")
    env_cmd.add_argument("--steps", type=int, default=200, help="steps for the speed check")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `rlkit` console script."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = _build_parser().parse_args(argv)
        if args.command == "train":
            return _train(args, argv)
        if args.command == "algos":
            return _algos(args)
        return _envs(args)
    except (UsageError, ValueError, TypeError) as error:
        print(f"rlkit: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("rlkit: interrupted", file=sys.stderr)
        return 130


def _parse_assignments(items: list[str]) -> dict[str, Any]:
    from rlkit.core.config import parse_assignment

    return dict(parse_assignment(item) for item in items)


def _read_config_file(path: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise UsageError(f"cannot read config file {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise UsageError(f"config file {path} is not valid YAML") from error
    if not isinstance(data, dict):
        raise UsageError(f"config file {path} must hold a mapping")
    known = {
        "algo",
        "env",
        "env_overrides",
        "seeds",
        "seed",
        "preset",
        "config",
        "versions",
        "command",
    }
    unknown = set(data) - known
    if unknown:
        raise UsageError(f"config file {path} has unknown keys: {', '.join(sorted(unknown))}")
    return data


def resolve_run(args: argparse.Namespace) -> dict[str, Any]:
    """Merge defaults < preset < config file < --steps < --set into one run description."""
    import agents

    file = _read_config_file(args.config) if args.config else {}
    algo_name = args.algo
    if file.get("algo") not in (None, algo_name):
        raise UsageError(f"config file is for {file['algo']}, not {algo_name}")
    module = agents.load(algo_name)
    env_name = args.env or file.get("env")
    if env_name is None:
        raise UsageError("--env is required (see `rlkit envs`)")
    preset = args.preset or file.get("preset")
    overrides: dict[str, Any] = {}
    if preset is not None:
        if preset not in module.PRESETS:
            choices = ", ".join(module.PRESETS) or "none"
            raise UsageError(f"unknown preset {preset!r} for {algo_name}; presets: {choices}")
        overrides.update(module.PRESETS[preset])
    overrides.update(file.get("config") or {})
    if args.steps is not None:
        overrides["total_steps"] = args.steps
    overrides.update(_parse_assignments(args.set))
    seeds = args.seeds if args.seeds is not None else int(file.get("seeds", 1))
    seed = args.seed if args.seed is not None else int(file.get("seed", 0))
    if seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {seeds}")
    env_overrides = {**(file.get("env_overrides") or {}), **_parse_assignments(args.env_set)}
    return {
        "algo": algo_name,
        "env": env_name,
        "env_overrides": env_overrides,
        "seeds": seeds,
        "seed": seed,
        "preset": preset,
        "overrides": overrides,
    }


def _train(args: argparse.Namespace, argv: list[str]) -> int:
    from rlkit.training.compile_cache import enable_compilation_cache
    from rlkit.training.devices import use_cpu_cores

    use_cpu_cores()  # before JAX starts: seeds of a multi-seed run spread over the cores
    cache = enable_compilation_cache()  # before the first compilation: a rerun skips compiling

    import agents
    import envs
    from rlkit.core.config import config_from_dict, config_to_dict
    from rlkit.report.rundir import RunDirectory
    from rlkit.training.runner import train

    run = resolve_run(args)
    if args.eval_episodes < 1:
        raise UsageError(f"--eval-episodes must be >= 1, got {args.eval_episodes}")
    module = agents.load(run["algo"])
    env, env_params = envs.make(run["env"], **run["env_overrides"])
    config = config_from_dict(module.Config, run["overrides"])
    algo = module.make(config, env, env_params)

    name = args.name or f"{run['algo']}-{run['env']}-{time.strftime('%Y%m%d-%H%M%S')}"
    rundir = RunDirectory(args.runs_dir, name, algo.steps_per_iteration)
    rundir.write_config(
        {
            "algo": run["algo"],
            "env": run["env"],
            "env_overrides": run["env_overrides"],
            "seeds": run["seeds"],
            "seed": run["seed"],
            "preset": run["preset"],
            "config": config_to_dict(config),
            "command": "rlkit " + " ".join(argv),
        }
    )
    print(
        f"rlkit: training {run['algo']} on {run['env']}, {run['seeds']} seed(s), "
        f"{algo.num_iterations * algo.steps_per_iteration:,} steps each -> {rundir.path}",
        file=sys.stderr,
    )
    start = time.perf_counter()
    result = train(
        algo,
        num_seeds=run["seeds"],
        seed=run["seed"],
        sinks=[rundir.sink],
        progress=not args.no_progress,
        eval_episodes=args.eval_episodes,
    )
    wall = time.perf_counter() - start
    summary = {**_summary(result, wall), "compilation_cache": None if cache is None else str(cache)}
    rundir.write_summary(summary)
    ev = summary["evaluation"]
    print(
        f"rlkit: final deterministic evaluation: mean return {ev['mean_return']:.3f} "
        f"(per seed {', '.join(f'{r:.2f}' for r in ev['per_seed_mean_return'])}); "
        f"{summary['steps_per_second']:,.0f} steps/s, compile {summary['compile_seconds']:.1f} s, "
        f"wall {wall:.1f} s",
        file=sys.stderr,
    )
    return 0


def _summary(result: Any, wall: float) -> dict[str, Any]:
    import numpy as np

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
        "wall_seconds": wall,
        "compile_seconds": result.timing["compile_seconds"],
        "train_seconds": result.timing["train_seconds"],
        "env_steps_per_seed": int(result.timing["env_steps"]),
        "steps_per_second": result.timing["steps_per_second"],
        "devices": int(result.timing.get("devices", 1)),
    }


def _algos(args: argparse.Namespace) -> int:
    import agents
    from rlkit.core.config import describe

    if args.algo is None:
        for name, (_, description) in agents.ALGORITHMS.items():
            print(f"{name:<10} {description}")
        return 0
    module = agents.load(args.algo)
    print(f"{args.algo}: {module.__doc__.strip().splitlines()[0]}")
    print("\nhyperparameters (* = traced: sweepable without recompiling):")
    for name, default, help_text, traced in describe(module.Config):
        mark = "*" if traced else " "
        print(f"  {mark} {name:<24} {default!s:<14} {help_text}")
    presets = getattr(module, "PRESETS", {})
    if presets:
        print("\npresets (--preset NAME):")
        for name, values in presets.items():
            print(f"    {name:<24} {', '.join(f'{k}={v}' for k, v in values.items())}")
    return 0


def _envs(args: argparse.Namespace) -> int:
    import envs

    if args.num_envs < 1 or args.steps < 1:
        raise UsageError("--num-envs and --steps must be >= 1")
    print(
        "rlkit environments (random actions, jitted scan over "
        f"{args.num_envs} copies x {args.steps} steps):"
    )
    for name in envs.RLKIT_ENVS:
        env, params = envs.make(name)
        rate, compile_s = random_rollout_speed(env, params, args.num_envs, args.steps)
        obs_shape = _space_shape(env.observation_space(params))
        print(
            f"  {name:<22} obs {obs_shape!s:<22} actions {env.action_space(params)!r:<34} "
            f"{rate:>14,.0f} steps/s  (compile {compile_s:.1f} s)"
        )
    print("gymnax environments (also available to every agent):")
    gymnax_names = [n for n in envs.list_envs() if n not in envs.RLKIT_ENVS]
    for i in range(0, len(gymnax_names), 4):
        print("  " + "  ".join(f"{n:<24}" for n in gymnax_names[i : i + 4]).rstrip())
    return 0


def _space_shape(space: Any) -> Any:
    spaces = getattr(space, "spaces", None)
    if isinstance(spaces, dict):
        return {k: _space_shape(v) for k, v in spaces.items()}
    return tuple(space.shape)


def random_rollout_speed(env: Any, params: Any, num_envs: int, steps: int) -> tuple[float, float]:
    """Random-action steps per second of `num_envs` copies in a jitted scan, and compile seconds."""
    import jax

    from rlkit.core.env import VectorEnv

    venv = VectorEnv(env, num_envs)
    space = env.action_space(params)

    def run(key: jax.Array) -> jax.Array:
        _, state = venv.reset(key, params)

        def step(carry: tuple, key: jax.Array) -> tuple:
            state, total = carry
            act_key, step_key = jax.random.split(key)
            action = jax.vmap(space.sample)(jax.random.split(act_key, num_envs))
            _, state, reward, *_ = venv.step(step_key, state, action, params)
            return (state, total + reward.sum()), None

        (_, total), _ = jax.lax.scan(step, (state, 0.0), jax.random.split(key, steps))
        return total

    start = time.perf_counter()
    compiled = jax.jit(run).lower(jax.random.PRNGKey(0)).compile()
    compile_seconds = time.perf_counter() - start
    jax.block_until_ready(compiled(jax.random.PRNGKey(0)))
    start = time.perf_counter()
    jax.block_until_ready(compiled(jax.random.PRNGKey(1)))
    return num_envs * steps / (time.perf_counter() - start), compile_seconds


if __name__ == "__main__":
    sys.exit(main())
