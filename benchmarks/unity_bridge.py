"""The Unity bridge's throughput against the Unity double's BalanceBall (12 agents); it measures,
it asserts nothing.

    python benchmarks/unity_bridge.py [--exchanges 300] [--iterations 4]

Prints, for one player (tests/unity_double/bin/BalanceBall, launched as a Unity player):
  * mlagents_envs alone: exchanges per second of UnityEnvironment.step() with zero actions
    (gRPC plus the double's own step: the floor any bridge pays);
  * the bridge's host step (rlkit.bridges.unity.UnityHost.step: the decision rule, observation
    flattening, action mapping by agent id) in exchanges/s and agent steps/s, and its own cost
    per exchange beyond mlagents_envs';
  * the same inside a compiled lax.scan through io_callback (HostVectorEnv);
  * PPO (paper_configs/ppo_3dball_unity_double.yaml's settings): seconds per iteration, and
    the share of an iteration spent in host callbacks (Unity and the bridge) vs JAX (acting,
    GAE, the epochs of updates).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from rlkit.training.cpu_compilation import prefer_fast_cpu_compilation

prefer_fast_cpu_compilation()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import paper_configs  # noqa: E402
from agents import ppo  # noqa: E402
from rlkit.bridges.host import HostVectorEnv  # noqa: E402
from rlkit.bridges.unity import UnityHost, UnitySettings  # noqa: E402
from rlkit.core.config import config_from_dict  # noqa: E402
from rlkit.core.wrappers import ClipAction, EpisodeStatistics  # noqa: E402
from rlkit.training.runner import Runner  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PLAYER = ROOT / "tests" / "unity_double" / "bin" / "BalanceBall"
PPO_CONFIG = ROOT / "paper_configs" / "ppo_3dball_unity_double.yaml"


class TimedHost:
    """A host whose reset/step wall time is summed in `seconds`."""

    def __init__(self, host: UnityHost):
        self.host, self.seconds = host, 0.0
        self.num_envs = host.num_envs

    def reset(self, seed: int) -> Any:
        start = time.perf_counter()
        try:
            return self.host.reset(seed)
        finally:
            self.seconds += time.perf_counter() - start

    def step(self, actions: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.host.step(actions)
        finally:
            self.seconds += time.perf_counter() - start


class ExchangeTimer:
    """Times every step() of one UnityEnvironment (an instance attribute over its method,
    removed again by `remove`): the gRPC exchange and the player's own step."""

    def __init__(self, env: Any):
        self.env, self.seconds, self.calls = env, 0.0, 0
        step = env.step

        def timed() -> None:
            start = time.perf_counter()
            step()
            self.seconds += time.perf_counter() - start
            self.calls += 1

        env.step = timed

    def remove(self) -> None:
        del self.env.step


def rate(n: int, fn: Any) -> float:
    """Calls of fn per second over n calls."""
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchanges", type=int, default=300, help="exchanges per measurement")
    parser.add_argument("--iterations", type=int, default=4, help="PPO iterations timed")
    parser.add_argument("--base-port", type=int, default=5405)
    args = parser.parse_args()
    os.environ.setdefault("RLKIT_UNITY_DOUBLE_PYTHON", sys.executable)
    host = UnityHost(UnitySettings(str(PLAYER), base_port=args.base_port, timeout=60))
    try:
        n, agents = args.exchanges, host.num_envs
        host.reset(0)
        worker = host.workers[0].env
        raw = rate(n, lambda: worker.step())
        host.reset(0)
        zeros = np.zeros((agents, 2), np.float32)
        exchange = ExchangeTimer(worker)
        start = time.perf_counter()
        for _ in range(n):
            host.step(zeros)
        bridge_seconds = time.perf_counter() - start
        bridged = n / bridge_seconds
        own = (bridge_seconds - exchange.seconds) / exchange.calls
        exchange.remove()
        print(f"Unity double BalanceBall, {agents} agents, 1 player, {n} exchanges each")
        print(f"  mlagents_envs step():        {raw:6.1f} exchanges/s")
        print(
            f"  bridge host step:            {bridged:6.1f} exchanges/s = "
            f"{bridged * agents:6.0f} agent steps/s; the bridge's own work (decision rule, "
            f"flattening, mapping by id) {1e3 * own:.2f} ms per exchange "
            f"({100 * (bridge_seconds - exchange.seconds) / bridge_seconds:.0f}%)"
        )

        timed = TimedHost(host)
        venv = EpisodeStatistics(ClipAction(HostVectorEnv(timed, host.observation_space,
                                                          host.action_space)))  # fmt: skip

        @jax.jit
        def scan(key: jax.Array) -> jax.Array:
            obs, state = venv.reset(key)

            def body(state, _):
                _, state, reward, *_ = venv.step(key, state, jnp.zeros((agents, 2)))
                return state, reward.sum()

            return jax.lax.scan(body, state, None, length=n)[1].sum()

        jax.block_until_ready(scan(jax.random.PRNGKey(0)))  # compile (and one run)
        start = time.perf_counter()
        jax.block_until_ready(scan(jax.random.PRNGKey(1)))
        compiled = (n + 1) / (time.perf_counter() - start)
        print(
            f"  compiled scan (io_callback): {compiled:6.1f} exchanges/s = "
            f"{compiled * agents:6.0f} agent steps/s"
        )

        data = paper_configs.load(PPO_CONFIG)
        settings = {**data["config"], "num_envs": agents, "total_steps": 10**7}
        algo = ppo.make(config_from_dict(ppo.Config, settings), venv, venv.default_params)
        marks: list[tuple[float, float]] = []  # (wall, host seconds) after each iteration

        def mark(iteration: int, state: Any) -> None:
            marks.append((time.perf_counter(), timed.seconds))

        Runner(algo).train(
            num_seeds=1,
            chunk_target=1,
            on_chunk=mark,
            should_stop=lambda: len(marks) > args.iterations,
            guard=False,
        )
        (wall0, host0), (wall1, host1) = marks[0], marks[-1]  # the first iteration warms up
        per_iteration = (wall1 - wall0) / args.iterations
        share = (host1 - host0) / (wall1 - wall0)
        steps = algo.steps_per_iteration
        print(
            f"  PPO ({PPO_CONFIG.name}): {per_iteration:.2f} s per iteration of {steps} agent "
            f"steps ({steps / per_iteration:.0f} agent steps/s); host callbacks (Unity + "
            f"bridge) {100 * share:.0f}% of it, JAX {100 * (1 - share):.0f}%"
        )
    finally:
        host.close()


if __name__ == "__main__":
    main()
