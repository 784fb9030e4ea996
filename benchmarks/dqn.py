"""DQN throughput on gymnax CartPole-v1 at rejax 0.1.x's settings (it measures; no asserts).

    python benchmarks/dqn.py [--steps 100000] [--seeds 1 4] [--repeat 3]

The `rejax/CartPole` preset: 10 envs, buffer 50k, batch 100, 5 gradient steps per vectorised
env step, dueling, double. Prints, per seed count, compile seconds, the median and the best of
`--repeat` training runs, steps/s, process CPU seconds and the final greedy return
(rlkit.report.benchmarking).
"""

from __future__ import annotations

from rlkit.training.cpu_compilation import prefer_fast_cpu_compilation
from rlkit.training.devices import use_cpu_cores

# One JAX CPU device per core, so vmapped seeds split over the cores; before gymnax is imported,
# because gymnax starts JAX's backend at import. XLA_FLAGS=--xla_force_host_platform_device_count=1
# keeps one device. And XLA's CPU backend at -O1, as the `rlkit` command compiles.
use_cpu_cores()
prefer_fast_cpu_compilation()

import envs  # noqa: E402
from agents import dqn  # noqa: E402
from rlkit.core.config import config_from_dict  # noqa: E402
from rlkit.report import benchmarking as bench  # noqa: E402

REFERENCE = "Reference, 2-core CPU: rejax trained 100k steps in 25 s (4.0k steps/s); SB3 1.1k."


def main() -> None:
    args = bench.parse(bench.parser(__doc__.splitlines()[0], seeds=[1, 4], steps=100_000))
    env, params = envs.make("CartPole-v1")
    config = config_from_dict(
        dqn.Config, {**dqn.PRESETS["rejax/CartPole"], "total_steps": args.steps}
    )
    algo = dqn.make(config, env, params)
    bench.report("DQN rejax/CartPole on CartPole-v1", algo, args, REFERENCE, eval_episodes=32)


if __name__ == "__main__":
    main()
