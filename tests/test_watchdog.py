"""Watchdog: a vmapped multi-seed run must finish.

jaxlib 0.10.0-0.10.2 deadlock on a 2-core CPU when a batched LAPACK call runs under vmap: the QR
inside orthogonal initialisation is enough (every pool thread waits on the others, 0% CPU,
forever). rlkit pins jax<0.10; this test fails, rather than hangs, if a version with that bug
comes back. It runs in a subprocess so a deadlock can be killed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import jax, envs
    from agents import ppo
    from rlkit.training.runner import train
    env, params = envs.make("CartPole-v1")
    algo = ppo.make(ppo.Config(num_envs=4, rollout_length=16, total_steps=4 * 16 * 2), env, params)
    result = train(algo, num_seeds=8, eval_episodes=2)  # vmapped orthogonal init: batched QR
    print("finished", jax.__version__, result.metrics["policy_loss"].shape)
    """
)


def test_vmapped_multi_seed_run_finishes_under_a_watchdog() -> None:
    try:
        proc = subprocess.run(
            [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=420
        )
    except subprocess.TimeoutExpired as error:
        raise AssertionError(
            "a vmapped 8-seed PPO run did not finish in 420 s: the jaxlib vmap/LAPACK deadlock?"
        ) from error
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "finished 0.9.2 (8, 2)" in proc.stdout
