"""The command line: a short training run writes its run directory; bad input is one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import yaml

from rlkit.cli import main
from rlkit.cli.evaluate import load_run
from rlkit.training.compile_cache import host_cpu_key


def test_train_writes_config_metrics_and_summary(tmp_path, capsys) -> None:
    args = [
        "train",
        "ppo",
        "--env",
        "CartPole-v1",
        "--steps",
        "4096",
        "--seeds",
        "2",
        "--set",
        "num_envs=4",
        "--set",
        "rollout_length=64",
        "--runs-dir",
        str(tmp_path),
        "--name",
        "short",
        "--no-progress",
        "--eval-episodes",
        "4",
    ]
    assert main(args) == 0
    run = tmp_path / "short"
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["algo"] == "ppo" and config["env"] == "CartPole-v1" and config["seeds"] == 2
    assert config["config"]["rollout_length"] == 64 and config["versions"]["jax"] == "0.9.2"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # 4096 steps / (4 envs x 64 steps) = 16 iterations; a row per ceil(1000 / 256) = 4 of them
    # (--log-every 1000 by default) and seed.
    assert len(rows) == 4 * 2
    assert {r["seed"] for r in rows} == {0, 1} and {r["iterations"] for r in rows} == {4}
    assert rows[-1]["iteration"] == 15 and rows[-1]["env_steps"] == 4096
    assert {"episode_return", "policy_loss", "value_loss", "entropy"} <= set(rows[0])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["env_steps_per_seed"] == 4096 and summary["checkpoint"] == 16
    assert len(summary["evaluation"]["per_seed_mean_return"]) == 2
    assert summary["steps_per_second"] > 0 and summary["compile_seconds"] > 0
    assert sorted(p.name for p in (run / "tensorboard").iterdir()) == ["seed_0", "seed_1"]

    # The saved policy is the one the final evaluation measured: `rlkit eval` with the same
    # episode count repeats its numbers.
    loaded = load_run(run)
    assert loaded.iteration == 16 and loaded.config.rollout_length == 64
    assert loaded.act(np.zeros((3, 4), np.float32)).shape == (3,)
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "4"]) == 0
    out = capsys.readouterr().out
    assert "at iteration 16 of 16: 4 deterministic episode(s) per seed" in out
    for seed, value in enumerate(summary["evaluation"]["per_seed_mean_return"]):
        assert f"seed {seed}: mean return {value:.3f}" in out

    # Rerunning from the written config gives the same metrics (same seed, CPU).
    assert (
        main(
            [
                "train",
                "ppo",
                "--config",
                str(run / "config.yaml"),
                "--runs-dir",
                str(tmp_path),
                "--name",
                "again",
                "--no-progress",
                "--eval-episodes",
                "4",
            ]
        )
        == 0
    )
    again = [
        json.loads(line) for line in (tmp_path / "again" / "metrics.jsonl").read_text().splitlines()
    ]
    assert again == rows


def test_console_script_reports_bad_input_without_a_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rlkit.cli", "train", "ppo", "--env", "Nope-v0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        "rlkit: error: unknown environment 'Nope-v0'; `rlkit envs` lists them"
    )


def _train_in_fresh_process(tmp_path, name: str, cache: str) -> subprocess.CompletedProcess:
    env = {
        **{k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"},
        "RLKIT_CACHE_DIR": cache,
        "JAX_LOG_COMPILES": "1",  # also logs each persistent-cache hit, as a warning
        # store every program, however fast it compiles, so that every one is loaded again
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    }
    args = ["train", "ppo", "--env", "CartPole-v1", "--steps", "2048", "--set", "num_envs=4"]
    args += ["--runs-dir", str(tmp_path), "--name", name, "--no-progress", "--eval-episodes", "2"]
    proc = subprocess.run(
        [sys.executable, "-m", "rlkit.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def test_a_rerun_loads_the_compiled_training_program_from_the_cache(tmp_path) -> None:
    cache = tmp_path / "xla-cache" / host_cpu_key()  # rlkit keeps a folder per CPU model
    first = _train_in_fresh_process(tmp_path, "first", str(cache.parent))
    assert "compilation cache hit" not in first.stderr
    # init, the training chunk, the evaluation and every small eager program
    stored = [entry for entry in cache.iterdir() if entry.name.endswith("-cache")]
    assert len(stored) > 3
    second = _train_in_fresh_process(tmp_path, "second", str(cache.parent))
    # every program the first run stored is loaded, not compiled again
    assert second.stderr.count("Persistent compilation cache hit") == len(stored)
    # without XLA's false alarms about any loaded program (jax-ml/jax#38445)
    assert "prefer-no-gather" not in second.stderr
    assert "Assume version compatibility" not in second.stderr
    runs = [tmp_path / name for name in ("first", "second")]
    metrics = [(run / "metrics.jsonl").read_text() for run in runs]
    assert metrics[0] == metrics[1]  # the loaded program computes the same numbers
    summaries = [json.loads((run / "summary.json").read_text()) for run in runs]
    assert summaries[0]["evaluation"] == summaries[1]["evaluation"]
    assert summaries[1]["compilation_cache"] == str(cache)


def test_algos_lists_every_algorithm(capsys) -> None:
    assert main(["algos"]) == 0
    out = capsys.readouterr().out
    for name in ("reinforce", "a2c", "ppo", "dqn", "sac"):
        assert name in out
    assert main(["algos", "ppo"]) == 0
    out = capsys.readouterr().out
    assert "* learning_rate" in out and "mlagents/3DBall" in out
