"""PPO throughput on gymnax CartPole-v1 at rejax 0.1.3's settings (it measures; no asserts).

    python benchmarks/ppo.py [--steps 500000] [--seeds 1 16] [--repeat 3]

Settings (agents/ppo.py preset "rejax/CartPole"): 5 envs x 100 steps, 5 epochs x 5
minibatches, 64x64 tanh, lr 7.5e-4. Prints, per seed count, compile seconds, the median and the
best of `--repeat` training runs of the one compiled program, steps/s and the final
deterministic return (rlkit.report.benchmarking).
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
from agents import ppo  # noqa: E402
from rlkit.core.config import config_from_dict  # noqa: E402
from rlkit.report import benchmarking as bench  # noqa: E402

REFERENCE = (
    "Reference, 2-core CPU: rejax 0.1.3 trained 500k steps in 3.7 s after a 4.3 s compile "
    "(136k steps/s; 155k with 16 seeds); SB3 PPO 4.7k steps/s."
)


def main() -> None:
    args = bench.parse(bench.parser(__doc__.splitlines()[0], seeds=[1, 16], steps=500_000))
    env, params = envs.make("CartPole-v1")
    config = config_from_dict(
        ppo.Config, {**ppo.PRESETS["rejax/CartPole"], "total_steps": args.steps}
    )
    algo = ppo.make(config, env, params)
    bench.report("PPO rejax/CartPole on CartPole-v1", algo, args, REFERENCE, eval_episodes=32)


if __name__ == "__main__":
    main()
