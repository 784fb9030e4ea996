"""Compile and training time at XLA's default CPU level (-O2) against rlkit's -O1 (it measures;
no asserts).

    python benchmarks/compile.py [--pairs 3] [--steps 100000]

Each measurement is a fresh process (XLA reads its flags once, when the backend starts) that
builds PPO (rejax/CartPole preset) and DQN (defaults) on CartPole-v1 and trains each once with
4 vmapped seeds; the two levels alternate, pair after pair, because the same program's time
varies between processes on a shared machine. Prints, per level and algorithm, the median
compile seconds, the median training seconds and whether the final returns of the two levels
were equal in every pair (rlkit.training.cpu_compilation explains the setting).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from rlkit.training.cpu_compilation import FLAG, prefer_fast_cpu_compilation

CHILD = """
import json, sys
from rlkit.training.devices import use_cpu_cores
use_cpu_cores()
import envs
from agents import dqn, ppo
from rlkit.core.config import config_from_dict
from rlkit.report.benchmarking import measure
steps = int(sys.argv[1])
env, params = envs.make("CartPole-v1")
algos = {
    "ppo": ppo.make(config_from_dict(
        ppo.Config, {**ppo.PRESETS["rejax/CartPole"], "total_steps": steps}), env, params),
    "dqn": dqn.make(dqn.Config(total_steps=steps), env, params),
}
out = {}
for name, algo in algos.items():
    m = measure(algo, num_seeds=4, repeat=1)
    out[name] = [m.compile_seconds, m.train_seconds[0], m.returns.tolist()]
print(json.dumps(out))
"""

LEVELS = {"-O2 (XLA default)": "default", "-O1 (rlkit)": ""}


def _child(steps: int, opt_level: str) -> dict:
    env = {**os.environ, "RLKIT_CPU_OPT_LEVEL": opt_level}
    if not opt_level:
        prefer_fast_cpu_compilation(env)
    else:
        env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split() if f != FLAG)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(steps)], env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--steps", type=int, default=100_000)
    args = p.parse_args()
    results: dict[str, list[dict]] = {label: [] for label in LEVELS}
    for _ in range(args.pairs):
        for label, level in LEVELS.items():
            results[label].append(_child(args.steps, level))
    print(f"CartPole-v1, 4 seeds, {args.steps} steps, {args.pairs} alternating pairs of processes")
    print(f"{'level':<20}{'algo':<6}{'compile s':>10}{'train s':>10}")
    for label, runs in results.items():
        for algo in runs[0]:
            compile_s = statistics.median(r[algo][0] for r in runs)
            train_s = statistics.median(r[algo][1] for r in runs)
            print(f"{label:<20}{algo:<6}{compile_s:>10.2f}{train_s:>10.2f}")
    o2, o1 = results.values()
    same = all(a[k][2] == b[k][2] for a, b in zip(o2, o1, strict=True) for k in a)
    print(f"final returns equal at both levels in every pair: {same}")


if __name__ == "__main__":
    main()
