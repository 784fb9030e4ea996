"""`rlkit algos` and `rlkit envs`: what exists, with each algorithm's hyperparameters and each
environment's shapes and random-action speed."""

from __future__ import annotations

import argparse
import time
from typing import Any

from rlkit.cli.errors import UsageError

__all__ = ["list_algorithms", "list_environments", "random_rollout_speed"]


def list_algorithms(args: argparse.Namespace) -> int:
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


def list_environments(args: argparse.Namespace) -> int:
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
