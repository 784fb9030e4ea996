"""Throughput of SAC on gymnax Pendulum-v1 at rejax 0.1.3's settings.

rejax configs/gymnax/pendulum.yaml (sac): 1 env, buffer 10k, fill 256, batch 256, lr 0.01,
polyak 0.98, swish 2x64, normalised observations; run here for 50k steps (the `rejax/Pendulum`
preset). For scale, on an unloaded 2-core CPU rejax took 45 s for these 50k steps (1.1k steps/s)
and SB3 84 steps/s.

Prints, for 1 seed and for each vmapped seed count: compile seconds, training seconds,
environment steps per second (summed over seeds), process CPU seconds (a guide when the machine
is shared: wall time then overstates the cost) and the final deterministic evaluation return.

    python benchmarks/sac.py                 # 1 and 8 seeds, 50k steps
    python benchmarks/sac.py --seeds 1 4 16 --steps 20000
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
from agents import sac  # noqa: E402
from rlkit.config import config_from_dict  # noqa: E402
from rlkit.runner import train  # noqa: E402


def run(num_seeds: int, total_steps: int, preset: str) -> dict[str, float]:
    env, params = envs.make("Pendulum-v1")
    config = config_from_dict(sac.Config, {**sac.PRESETS[preset], "total_steps": total_steps})
    algo = sac.make(config, env, params)
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    # one chunk: no host round trip until the end, as in benchmarks/ppo.py
    result = train(algo, num_seeds=num_seeds, chunk_target=algo.num_updates, eval_episodes=16)
    returns = result.evaluation["returns"].mean(axis=1)  # [seeds]
    return {
        **result.timing,
        "cpu_seconds": time.process_time() - cpu_start,
        "wall_seconds": time.perf_counter() - wall_start,
        "return_mean": float(returns.mean()),
        "return_min": float(returns.min()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 8], help="vmapped seed counts")
    parser.add_argument("--steps", type=int, default=50_000, help="environment steps per seed")
    parser.add_argument("--preset", default="rejax/Pendulum", choices=sorted(sac.PRESETS))
    args = parser.parse_args()

    load = os.getloadavg()[0]
    print(
        f"SAC {args.preset} on Pendulum-v1, {args.steps} steps per seed; {os.cpu_count()} CPUs, "
        f"load average {load:.1f}"
    )
    header = "seeds  devices  compile_s  train_s  steps/s(all seeds)  cpu_s  eval_return(mean, min)"
    print(header)
    for num_seeds in args.seeds:
        r = run(num_seeds, args.steps, args.preset)
        print(
            f"{num_seeds:5d}  {r['devices']:7d}  {r['compile_seconds']:9.1f}  "
            f"{r['train_seconds']:7.1f}  "
            f"{r['steps_per_second']:18,.0f}  {r['cpu_seconds']:5.0f}  "
            f"{r['return_mean']:8.1f}, {r['return_min']:.1f}",
            flush=True,
        )
    print(
        f"load average now {os.getloadavg()[0]:.1f}; reference (2-core CPU, unloaded): "
        "rejax 1.1k steps/s (45 s), SB3 84 steps/s"
    )


if __name__ == "__main__":
    main()
