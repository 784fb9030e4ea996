"""MCTS throughput: search simulations per second at 1 and 256 vmapped roots (it measures; no
asserts).

    python benchmarks/mcts.py [--env GridWorld-v0] [--roots 1 256] [--simulations 32]
                              [--search gumbel] [--leaf-rollout-steps 16] [--repeat 5]

One decision of agents/mcts.py (rlkit.planning.mcts over the environment's own step, random
rollouts at the leaves) on B roots at once, each the state of its own environment copy. Prints,
per root count, the compile seconds, the median seconds of one search over `--repeat` runs,
simulations per second (B * simulations / median) and environment steps per second inside the
search (each simulation expands one node with one step and runs leaf_rollouts *
leaf_rollout_steps rollout steps).
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax

import envs
from agents import mcts as agent
from rlkit.core.config import config_from_dict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="GridWorld-v0")
    parser.add_argument("--roots", type=int, nargs="+", default=[1, 256])
    parser.add_argument("--simulations", type=int, default=32)
    parser.add_argument("--search", default="gumbel", choices=("gumbel", "puct"))
    parser.add_argument("--leaf-rollout-steps", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if args.repeat < 1 or min(args.roots) < 1:
        parser.error("--repeat and --roots must be >= 1")

    env, params = envs.make(args.env)
    config = config_from_dict(
        agent.Config,
        {
            "num_simulations": args.simulations,
            "search": args.search,
            "leaf_rollout_steps": args.leaf_rollout_steps,
        },
    )
    algo = agent.make(config, env, params)
    steps_per_simulation = 1 + config.leaf_rollouts * config.leaf_rollout_steps
    print(
        f"MCTS {args.search} on {args.env}: {args.simulations} simulations per decision, leaf "
        f"value from {config.leaf_rollouts} x {config.leaf_rollout_steps}-step random rollouts, "
        f"{jax.devices()[0].platform}"
    )
    print(f"{'roots':>7} {'compile_s':>10} {'search_s':>10} {'sims/s':>12} {'env steps/s':>14}")
    for roots in args.roots:
        obs, states = jax.vmap(env.reset, in_axes=(0, None))(
            jax.random.split(jax.random.PRNGKey(0), roots), params
        )

        def decide(key: jax.Array, obs=obs, states=states) -> jax.Array:
            return algo.act(algo.hparams, obs, key, True, None, env_state=states)

        start = time.perf_counter()
        program = jax.jit(decide).lower(jax.random.PRNGKey(0)).compile()
        compile_seconds = time.perf_counter() - start
        times = []
        for i in range(args.repeat):
            start = time.perf_counter()
            jax.block_until_ready(program(jax.random.PRNGKey(i)))
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        sims = roots * args.simulations / median
        print(
            f"{roots:>7} {compile_seconds:>10.2f} {median:>10.4f} {sims:>12,.0f} "
            f"{sims * steps_per_simulation:>14,.0f}"
        )


if __name__ == "__main__":
    main()
