"""SAC throughput on gymnax Pendulum-v1 at rejax 0.1.3's settings (it measures; no asserts).

    python benchmarks/sac.py [--steps 50000] [--seeds 1 8] [--repeat 3] [--preset NAME]

rejax configs/gymnax/pendulum.yaml (sac): 1 env, buffer 10k, fill 256, batch 256, lr 0.01,
polyak 0.98, swish 2x64, normalised observations (the `rejax/Pendulum` preset). Prints, per
seed count, compile seconds, the median and the best of `--repeat` training runs, steps/s,
process CPU seconds and the final deterministic return (rlkit.report.benchmarking).
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
from agents import sac  # noqa: E402
from rlkit.core.config import config_from_dict  # noqa: E402
from rlkit.report import benchmarking as bench  # noqa: E402

REFERENCE = (
    "Reference, unloaded 2-core CPU: rejax 0.1.3 took 45 s for 50k steps (1.1k steps/s); "
    "SB3 84 steps/s."
)


def main() -> None:
    p = bench.parser(__doc__.splitlines()[0], seeds=[1, 8], steps=50_000)
    p.add_argument("--preset", default="rejax/Pendulum", choices=sorted(sac.PRESETS))
    args = bench.parse(p)
    env, params = envs.make("Pendulum-v1")
    config = config_from_dict(sac.Config, {**sac.PRESETS[args.preset], "total_steps": args.steps})
    algo = sac.make(config, env, params)
    bench.report(f"SAC {args.preset} on Pendulum-v1", algo, args, REFERENCE, eval_episodes=16)


if __name__ == "__main__":
    main()
