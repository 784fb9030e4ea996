"""Random-action throughput of rlkit's JAX environments.

For each environment and batch size, one jitted `lax.scan` of `steps` decisions: sample a random
action per copy (`action_space(params).sample`), step the `VectorEnv` (auto-reset included).
Compile time is measured separately (lower + compile); the run is timed after one warm-up call,
with `block_until_ready`, best and median of `repeats`. Prints a table of env steps per second
(decisions x copies / second). It measures; it asserts nothing. On a shared machine the numbers
are noisy: compare best-of-N.

    python benchmarks/env_steps.py [--envs BalanceBall-v0 GridWorld-v0] [--num-envs 1 256 4096]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import jax

import envs
from rlkit.core.env import VectorEnv

DEFAULT_ENVS = ("BalanceBall-v0", "GridWorld-v0")
DEFAULT_NUM_ENVS = (1, 256, 4096)
# Scan lengths chosen so that one timed run takes roughly a second or less per batch size.
DEFAULT_STEPS = {1: 20_000, 256: 2_000, 4096: 500}


def random_action_rollout(name: str, num_envs: int, steps: int) -> Callable[[jax.Array], jax.Array]:
    """Jitted key -> summed reward of `steps` random-action steps of `num_envs` copies."""
    env, params = envs.make(name)
    venv = VectorEnv(env, num_envs)
    space = env.action_space(params)

    def run(key: jax.Array) -> jax.Array:
        key, reset_key = jax.random.split(key)
        _, state = venv.reset(reset_key, params)

        def step(state, step_key):
            action_key, env_key = jax.random.split(step_key)
            actions = jax.vmap(space.sample)(jax.random.split(action_key, num_envs))
            _, state, reward, _, _, _ = venv.step(env_key, state, actions, params)
            return state, reward.sum()

        _, rewards = jax.lax.scan(step, state, jax.random.split(key, steps))
        return rewards.sum()

    return jax.jit(run)


def measure(name: str, num_envs: int, steps: int, repeats: int) -> dict[str, float]:
    """Compile seconds and best/median env steps per second of one (env, num_envs) pair."""
    key = jax.random.PRNGKey(0)
    start = time.perf_counter()
    compiled = random_action_rollout(name, num_envs, steps).lower(key).compile()
    compile_s = time.perf_counter() - start
    compiled(key).block_until_ready()  # warm-up: first-call allocations
    times = []
    for i in range(repeats):
        run_key = jax.random.PRNGKey(i + 1)
        start = time.perf_counter()
        compiled(run_key).block_until_ready()
        times.append(time.perf_counter() - start)
    total = num_envs * steps
    return {
        "compile_s": compile_s,
        "best": total / min(times),
        "median": total / statistics.median(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", nargs="+", default=list(DEFAULT_ENVS))
    parser.add_argument("--num-envs", nargs="+", type=int, default=list(DEFAULT_NUM_ENVS))
    parser.add_argument("--steps", type=int, default=None, help="scan length (default per size)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    print(f"jax {jax.__version__} on {jax.devices()[0].platform}: random-action env steps/s")
    header = (
        f"{'env':<18}{'num_envs':>9}{'steps':>8}{'compile s':>11}{'best/s':>14}{'median/s':>14}"
    )
    print(header)
    print("-" * len(header))
    for name in args.envs:
        for num_envs in args.num_envs:
            steps = args.steps or DEFAULT_STEPS.get(num_envs, max(500, 2_000_000 // num_envs))
            row = measure(name, num_envs, steps, args.repeats)
            print(
                f"{name:<18}{num_envs:>9}{steps:>8}{row['compile_s']:>11.2f}"
                f"{row['best']:>14,.0f}{row['median']:>14,.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
