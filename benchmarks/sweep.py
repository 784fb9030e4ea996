"""A sweep in one compiled program against separate runs (it measures; no asserts).

    python benchmarks/sweep.py [--steps 50000] [--points 64] [--repeat 3] [--skip-processes]

1. Wall time, compile and start-up included, of `rlkit sweep ppo --env CartPole-v1 --grid
   learning_rate=4 values --seeds 4` (one process) against 16 runs of the same size as 16 separate
   `rlkit train --seeds 1` processes, one after another: with the compilation cache they share
   (what a user gets: the first compiles, the other 15 load it) and with the cache off (each
   compiles). The sweep starts from an empty cache.
2. Training steps/s (compile excluded, median of --repeat runs of the one compiled program) of
   a --points-point learning-rate sweep with 1 seed each against --points vmapped seeds of one
   configuration: the price of a traced hyperparameter per member (none is expected: both are
   the same program but for where each member's learning rate comes from).

PPO at its CartPole defaults (CleanRL: 4 envs x 128 steps, 4 epochs x 4 minibatches).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RATES = ("1e-4", "3e-4", "1e-3", "3e-3")


def _rlkit(args: list[str], cache: str) -> float:
    """Seconds of one `rlkit` process, start to exit."""
    env = {**os.environ, "RLKIT_CACHE_DIR": cache}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "rlkit.cli", *args], env=env, check=True, capture_output=True
    )
    return time.perf_counter() - start


def processes(steps: int, runs: Path) -> None:
    common = ["ppo", "--env", "CartPole-v1", "--steps", str(steps), "--runs-dir", str(runs)]
    common += ["--no-progress"]
    with tempfile.TemporaryDirectory() as cache:
        grid = ["--grid", "learning_rate=" + ",".join(RATES), "--seeds", "4"]
        sweep = _rlkit(["sweep", *common, *grid], cache)
    results = {}
    for label, shared in (("shared cache", True), ("cache off", False)):
        with tempfile.TemporaryDirectory() as cache:
            total = 0.0
            for rate in RATES:
                for seed in range(4):
                    args = ["train", *common, "--set", f"learning_rate={rate}", "--seed", str(seed)]
                    total += _rlkit(args, cache if shared else "off")
            results[label] = total
    print(f"16 runs (4 learning rates x 4 seeds), {steps:,} steps each, wall time with compile:")
    print(f"  rlkit sweep, one process:        {sweep:8.1f} s")
    for label, total in results.items():
        ratio = total / sweep
        print(f"  16 rlkit train, {label + ':':<17}{total:8.1f} s  ({ratio:.1f}x the sweep)")


def throughput(steps: int, points: int, repeat: int) -> None:
    import numpy as np

    import envs
    from agents import ppo
    from rlkit.training.runner import Runner

    env, params = envs.make("CartPole-v1")
    algo = ppo.make(ppo.Config(total_steps=steps), env, params)
    rates = np.geomspace(1e-4, 3e-3, points).astype(np.float32)
    arms = {
        f"{points}-point learning-rate sweep": {"num_seeds": 1, "points": {"learning_rate": rates}},
        f"{points} vmapped seeds": {"num_seeds": points},
    }
    runner = Runner(algo)
    seconds = {label: [] for label in arms}
    for _ in range(repeat):  # alternating the arms, so machine noise hits both alike
        for label, options in arms.items():
            result = runner.train(eval_episodes=1, **options)
            seconds[label].append(result.timing["train_seconds"])
    trained = algo.num_iterations * algo.steps_per_iteration * points
    print(f"\ntraining steps/s, compile excluded, median of {repeat} ({steps:,} steps per member):")
    for label, times in seconds.items():
        median = statistics.median(times)
        print(f"  {label:<34}{trained / median:12,.0f} steps/s  ({median:.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--points", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-processes", action="store_true", help="only part 2")
    args = parser.parse_args()
    if not args.skip_processes:
        with tempfile.TemporaryDirectory() as runs:
            processes(args.steps, Path(runs))
    from rlkit.training.cpu_compilation import prefer_fast_cpu_compilation
    from rlkit.training.devices import use_cpu_cores

    use_cpu_cores()
    prefer_fast_cpu_compilation()  # as the `rlkit train` processes of part 1 compile
    throughput(args.steps, args.points, args.repeat)


if __name__ == "__main__":
    main()
