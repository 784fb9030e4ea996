"""Timing an algorithm's training for the scripts in `benchmarks/` (they measure and print).

`measure` compiles once and trains `repeat` times from the same seeds (one `Runner` keeps the
compiled programs), so the figures separate the compile from training and show the spread
between identical runs: on a shared or virtual machine single runs of the same work differ by
10% or more, so a median and a best are reported rather than one number. `report` measures
and prints every benchmark's results with the same columns.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

import numpy as np

from rlkit.core.algorithm import Algorithm
from rlkit.training.runner import Runner

__all__ = ["Measurement", "measure", "parse", "parser", "report", "steps_title"]


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One seed count's figures.

    train_seconds: wall time of each training run (no compile, no evaluation); steps: env steps
    per seed; cpu_seconds: process CPU time over all the runs (on a shared machine wall time
    overstates the cost); returns: final deterministic evaluation return per seed (last run).
    """

    seeds: int
    devices: int
    compile_seconds: float
    train_seconds: tuple[float, ...]
    steps: int
    cpu_seconds: float
    returns: np.ndarray

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.train_seconds)

    @property
    def steps_per_second(self) -> float:
        """Env steps per second summed over seeds, at the median run."""
        return self.steps * self.seeds / self.median_seconds


def measure(
    algo: Algorithm, num_seeds: int, repeat: int = 3, eval_episodes: int = 32
) -> Measurement:
    """Train `algo` `repeat` times with `num_seeds` vmapped seeds, in one chunk each (no host
    round trip until the end), on one Runner: the first run compiles, the others reuse its
    programs, so the compile is counted once, from the first run."""
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    runner = Runner(algo)
    cpu_start = time.process_time()
    runs = [
        runner.train(
            num_seeds=num_seeds, chunk_target=algo.num_iterations, eval_episodes=eval_episodes
        )
        for _ in range(repeat)
    ]
    return Measurement(
        seeds=num_seeds,
        devices=int(runs[0].timing["devices"]),
        compile_seconds=runs[0].timing["compile_seconds"],
        train_seconds=tuple(r.timing["train_seconds"] for r in runs),
        steps=int(runs[0].timing["env_steps"]),
        cpu_seconds=time.process_time() - cpu_start,
        returns=np.asarray(runs[-1].evaluation["returns"]).mean(axis=1),
    )


def parser(description: str, seeds: list[int], steps: int) -> argparse.ArgumentParser:
    """The options every benchmark takes: --seeds (vmapped seed counts), --steps (env steps per
    seed), --repeat (training runs per seed count); `parse` checks them."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--seeds", type=int, nargs="+", default=seeds, help="vmapped seed counts")
    p.add_argument("--steps", type=int, default=steps, help="environment steps per seed")
    p.add_argument("--repeat", type=int, default=3, help="training runs per seed count")
    return p


def parse(p: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse the command line; a non-positive count is a usage error (exit 2)."""
    args = p.parse_args()
    for name in ("seeds", "steps", "repeat"):
        values = getattr(args, name)
        for value in values if isinstance(values, list) else [values]:
            if value < 1:
                p.error(f"--{name} must be >= 1, got {value}")
    return args


def steps_title(algo: Algorithm, total_steps: int) -> str:
    """'N timed steps per seed', and the requested budget where it differs: an off-policy
    agent's warm-up steps run in `init` (before the clock starts), and an on-policy agent runs
    whole iterations only."""
    timed = algo.num_iterations * algo.steps_per_iteration
    requested = f" (of {total_steps:,} requested)" if timed != total_steps else ""
    return f"{timed:,} timed steps per seed{requested}"


def report(
    title: str, algo: Algorithm, args: argparse.Namespace, reference: str, eval_episodes: int = 32
) -> None:
    """Measure `algo` for each of `args.seeds` (`args.repeat` runs each) and print the table:
    a title line with the timed steps and the machine's CPU count and load, one row per seed
    count as it is measured, then what the columns mean and the `reference` figures."""
    _print_header(f"{title}, {steps_title(algo, args.steps)}")
    for seeds in args.seeds:
        _print_row(measure(algo, seeds, args.repeat, eval_episodes))
    print(
        "train s: median of the runs (best s: the fastest); steps/s: summed over seeds, at the "
        f"median; cpu s: process CPU time over all runs, compile included.\n{reference}"
    )


def _print_header(title: str) -> None:
    print(f"{title}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(
        f"{'seeds':>5} {'devices':>7} {'compile s':>9} {'train s':>8} {'best s':>7} "
        f"{'steps/s':>10} {'cpu s':>6}  return (mean, worst seed)"
    )


def _print_row(m: Measurement) -> None:
    print(
        f"{m.seeds:>5} {m.devices:>7} {m.compile_seconds:>9.1f} {m.median_seconds:>8.2f} "
        f"{min(m.train_seconds):>7.2f} {m.steps_per_second:>10,.0f} {m.cpu_seconds:>6.1f}  "
        f"{m.returns.mean():.1f}, {m.returns.min():.1f}",
        flush=True,
    )
