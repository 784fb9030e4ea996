"""The benchmark scripts and their shared timing helper (rlkit.report.benchmarking).

Benchmarks measure and print; these tests check what they print is what was measured and
that the scripts run end to end, not how fast anything is.
"""

from __future__ import annotations

import pathlib
import re
import statistics
import subprocess
import sys

import jax
import pytest

import envs
from agents import ppo
from rlkit.core.config import config_from_dict
from rlkit.report import benchmarking

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _tiny_ppo():
    env, params = envs.make("CartPole-v1")
    overrides = {"total_steps": 256, "num_envs": 2, "rollout_length": 32, "num_minibatches": 2}
    overrides["hidden"] = (8,)  # a small program: these tests time it, they do not train it
    return ppo.make(config_from_dict(ppo.Config, overrides), env, params)


def test_measure_compiles_once_and_reports_every_run_and_the_rate_at_the_median(
    monkeypatch,
) -> None:
    # Each training run is counted by the XLA compilations it triggers (JAX's event for each).
    compiled_per_run: list[int] = []
    train = benchmarking.Runner.train

    def counted_train(runner, **options):
        events: list[str] = []

        def listen(event: str, duration: float, **info) -> None:
            events.append(event)

        jax.monitoring.register_event_duration_secs_listener(listen)
        try:
            return train(runner, **options)
        finally:
            jax.monitoring.unregister_event_duration_listener(listen)
            compiled_per_run.append(events.count("/jax/core/compile/backend_compile_duration"))

    monkeypatch.setattr(benchmarking.Runner, "train", counted_train)
    algo = _tiny_ppo()
    m = benchmarking.measure(algo, num_seeds=2, repeat=3, eval_episodes=2)
    assert compiled_per_run[0] >= 3  # init, the one chunk, evaluation
    assert compiled_per_run[1:] == [0, 0]
    assert len(m.train_seconds) == 3 and all(t > 0 for t in m.train_seconds)
    assert m.steps == algo.num_iterations * algo.steps_per_iteration == 256
    assert m.median_seconds == statistics.median(m.train_seconds)
    assert m.steps_per_second == pytest.approx(256 * 2 / m.median_seconds)
    assert m.returns.shape == (2,)
    assert m.cpu_seconds > 0 and m.compile_seconds > 0


def test_measure_rejects_no_runs() -> None:
    with pytest.raises(ValueError, match="repeat must be >= 1"):
        benchmarking.measure(_tiny_ppo(), num_seeds=1, repeat=0)


def test_steps_title_names_the_requested_budget_only_when_it_differs() -> None:
    algo = _tiny_ppo()
    assert benchmarking.steps_title(algo, 256) == "256 timed steps per seed"
    assert benchmarking.steps_title(algo, 300) == "256 timed steps per seed (of 300 requested)"


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )


@pytest.mark.parametrize(
    ("script", "steps", "seeds"),
    [("ppo.py", "1000", ["1", "2"]), ("sac.py", "600", ["1"]), ("dqn.py", "6000", ["1"])],
)
def test_benchmark_script_prints_one_row_per_seed_count(
    script: str, steps: str, seeds: list[str]
) -> None:
    proc = _run(script, "--steps", steps, "--seeds", *seeds, "--repeat", "1")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if re.match(r"\s+\d+\s+\d", line)]
    assert [row[0] for row in rows] == seeds
    assert re.search(r"[\d,]+ timed steps per seed", proc.stdout.splitlines()[0])
    for row in rows:
        devices, compile_s, train_s, best_s = int(row[1]), *map(float, row[2:5])
        assert devices >= 1 and compile_s > 0 and best_s <= train_s
        assert float(row[5].replace(",", "")) > 0  # steps/s


def test_benchmark_script_rejects_a_non_positive_count() -> None:
    proc = _run("ppo.py", "--repeat", "0")
    assert proc.returncode == 2
    assert "--repeat must be >= 1, got 0" in proc.stderr
