"""DQN throughput on gymnax CartPole-v1 at rejax 0.1.x's settings (PRESETS["rejax/CartPole"]).

10 envs, buffer 50k, batch 100, 5 gradient steps per vectorised env step, dueling, double,
100k env steps per seed. Prints, for 1 seed and for several vmapped seeds: compile seconds,
training seconds, env steps per second (summed over seeds), CPU seconds of the process during
training, and the final greedy evaluation return. For scale, on a 2-core CPU rejax trained this
in 25 s (4.0k steps/s) and SB3 ran at 1.1k steps/s.

    python benchmarks/dqn.py [--seeds 1 4] [--steps 100000]

Wall-clock figures are only comparable on an otherwise idle machine; the CPU seconds show how
much of the wall time the process actually ran when the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import time

from rlkit.devices import use_cpu_cores

# One JAX CPU device per core, so vmapped seeds split over the cores; before gymnax is imported,
# because gymnax starts JAX's backend at import. XLA_FLAGS=--xla_force_host_platform_device_count=1
# keeps one device.
use_cpu_cores()

import envs  # noqa: E402
from agents import dqn  # noqa: E402
from rlkit.config import config_from_dict  # noqa: E402
from rlkit.runner import train  # noqa: E402


def measure(num_seeds: int, total_steps: int) -> dict[str, float]:
    env, params = envs.make("CartPole-v1")
    overrides = {**dqn.PRESETS["rejax/CartPole"], "total_steps": total_steps}
    algo = dqn.make(config_from_dict(dqn.Config, overrides), env, params)
    cpu_start = time.process_time()
    result = train(algo, num_seeds=num_seeds)
    cpu = time.process_time() - cpu_start
    returns = result.evaluation["returns"]
    return {
        **result.timing,
        "cpu_seconds": cpu,
        "eval_return": float(returns.mean()),
        "eval_return_min_seed": float(returns.mean(axis=1).min()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--steps", type=int, default=100_000)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus")
    for num_seeds in args.seeds:
        m = measure(num_seeds, args.steps)
        print(
            f"seeds {num_seeds} on {m['devices']} device(s): compile {m['compile_seconds']:.1f} s, "
            f"train {m['train_seconds']:.1f} s, {m['steps_per_second']:,.0f} steps/s "
            f"(all seeds), process cpu {m['cpu_seconds']:.1f} s incl. compile and eval, "
            f"eval return {m['eval_return']:.1f} (worst seed {m['eval_return_min_seed']:.1f})",
            flush=True,
        )


if __name__ == "__main__":
    main()
