"""PPO throughput on gymnax CartPole-v1 at rejax 0.1.3's settings (it measures; no asserts).

    python benchmarks/ppo.py [--steps 500000] [--seeds 1 16]

Settings (agents/ppo.py preset "rejax/CartPole"): 5 envs x 100 steps, 5 epochs x 5
minibatches, 64x64 tanh, lr 7.5e-4. For scale, measured on a 2-core CPU: rejax trained 500k
steps in 3.7 s after a 4.3 s compile (136k steps/s; 155k with 16 seeds); SB3 PPO 4.7k steps/s.
Prints compile seconds, steps/s (summed over seeds) and the final deterministic return.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# benchmarks/envs.py would shadow rlkit's `envs` package when this script runs as a file.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from rlkit.devices import use_cpu_cores  # noqa: E402

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
    args = parser.parse_args()
    env, params = envs.make("CartPole-v1")
    config = config_from_dict(
        ppo.Config, {**ppo.PRESETS["rejax/CartPole"], "total_steps": args.steps}
    )
    algo = ppo.make(config, env, params)
    print(f"PPO CartPole-v1, {algo.num_updates * algo.steps_per_update:,} steps per seed")
    print(
        f"{'seeds':>5} {'devices':>7} {'compile s':>10} {'train s':>8} {'steps/s':>12} "
        f"{'final return':>13}"
    )
    for seeds in args.seeds:
        result = train(algo, num_seeds=seeds, chunk_target=algo.num_updates, eval_episodes=32)
        t = result.timing
        print(
            f"{seeds:>5} {t['devices']:>7} {t['compile_seconds']:>10.1f} "
            f"{t['train_seconds']:>8.1f} "
            f"{t['steps_per_second']:>12,.0f} {result.evaluation['returns'].mean():>13.1f}"
        )


if __name__ == "__main__":
    main()
