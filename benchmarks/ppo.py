"""PPO throughput on gymnax CartPole-v1 at rejax 0.1.3's settings (it measures; no asserts).

    python benchmarks/ppo.py [--steps 500000] [--seeds 1 16]

Settings (agents/ppo.py preset "rejax/CartPole"): 5 envs x 100 steps, 5 epochs x 5
minibatches, 64x64 tanh, lr 7.5e-4. For scale, measured on a 2-core CPU: rejax trained 500k
steps in 3.7 s after a 4.3 s compile (136k steps/s; 155k with 16 seeds); SB3 PPO 4.7k steps/s.
Prints compile seconds, training seconds (the median and the best of `--repeat` runs of the one
compiled program: on a shared machine single runs vary by 10% or more), steps/s at the median
(summed over seeds) and the final deterministic return.
"""

from __future__ import annotations

import argparse
import statistics

from rlkit.devices import use_cpu_cores

# One JAX CPU device per core, so vmapped seeds split over the cores; before gymnax is imported,
# because gymnax starts JAX's backend at import. XLA_FLAGS=--xla_force_host_platform_device_count=1
# keeps one device.
use_cpu_cores()

import envs  # noqa: E402
from agents import ppo  # noqa: E402
from rlkit.config import config_from_dict  # noqa: E402
from rlkit.runner import train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--repeat", type=int, default=3, help="training runs per seed count")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")
    env, params = envs.make("CartPole-v1")
    config = config_from_dict(
        ppo.Config, {**ppo.PRESETS["rejax/CartPole"], "total_steps": args.steps}
    )
    algo = ppo.make(config, env, params)
    print(f"PPO CartPole-v1, {algo.num_updates * algo.steps_per_update:,} steps per seed")
    print(
        f"{'seeds':>5} {'devices':>7} {'compile s':>10} {'train s':>8} {'best s':>7} "
        f"{'steps/s':>12} {'final return':>13}"
    )
    for seeds in args.seeds:
        runs = []
        for _ in range(args.repeat):  # the compiled program is cached after the first run
            runs.append(
                train(algo, num_seeds=seeds, chunk_target=algo.num_updates, eval_episodes=32)
            )
        compile_seconds = runs[0].timing["compile_seconds"]
        seconds = [r.timing["train_seconds"] for r in runs]
        median = statistics.median(seconds)
        steps = algo.num_updates * algo.steps_per_update * seeds
        print(
            f"{seeds:>5} {runs[0].timing['devices']:>7} {compile_seconds:>10.1f} "
            f"{median:>8.2f} {min(seconds):>7.2f} {steps / median:>12,.0f} "
            f"{runs[-1].evaluation['returns'].mean():>13.1f}"
        )


if __name__ == "__main__":
    main()
