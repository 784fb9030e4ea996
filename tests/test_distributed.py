"""`rlkit train` as a two-process jax.distributed job on one machine equals one process.

Two processes of one CPU device each (--coordinator on a free local port) train PPO with 4 seeds:
the member axis is one global array over both processes, 2 seeds on each. One process with two
CPU devices trains the same command alone: the same layout (2 devices, 2 seeds each) running the
same per-device program, so every number is the same bit for bit: metrics.jsonl, summary.json's
per-seed returns, and the checkpoint's leaves (the CRC-32s of its record). Process 1 gets a
--runs-dir of its own, which must never be created: it writes nothing. The three processes run
at once (the two of the job need each other; the reference shares the cores meanwhile).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

COMMAND = [
    *("train", "ppo", "--env", "CartPole-v1", "--seeds", "4", "--steps", "2048"),
    *("--set", "num_envs=4", "--set", "rollout_length=64", "--set", "hidden=[16]"),
    *("--set", "num_minibatches=2", "--set", "num_epochs=2", "--log-every", "256"),
    *("--eval-episodes", "2", "--no-progress", "--name", "run"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


# One compilation cache for the module's processes: the sweep's members have the shapes of the
# run's seeds, so its chunk and evaluation programs load from what the run compiled.
_CACHE = tempfile.mkdtemp(prefix="rlkit-distributed-cache-")
atexit.register(shutil.rmtree, _CACHE, True)


def _env(devices: int) -> dict[str, str]:
    return {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "RLKIT_CACHE_DIR": _CACHE,
    }


def _start(args: list[str], devices: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "rlkit.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(devices),
    )


def _job(port: int, index: int, count: int = 2) -> list[str]:
    return [
        "--coordinator",
        f"localhost:{port}",
        "--num-processes",
        str(count),
        "--process-id",
        str(index),
        "--join-timeout",
        "60",
    ]


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err


def _lines(err: str) -> list[str]:
    """stderr less gloo's own connection notice."""
    return [line for line in err.splitlines() if line and not line.startswith("[Gloo]")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("distributed")
    port = _free_port()
    started = time.perf_counter()
    procs = {
        "job": _start([*COMMAND, "--runs-dir", str(root / "job"), *_job(port, 0)], 1),
        "other": _start([*COMMAND, "--runs-dir", str(root / "other"), *_job(port, 1)], 1),
        "alone": _start([*COMMAND, "--runs-dir", str(root / "alone")], 2),
    }
    for name, proc in procs.items():
        rc, err = _finish(proc)
        assert rc == 0, f"{name}: {err[-3000:]}"
        if name == "other":
            assert _lines(err) == [], err  # process 1 says nothing either
    print(f"three runs: {time.perf_counter() - started:.1f} s")
    return {"job": root / "job", "other": root / "other", "alone": root / "alone"}


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _signatures(run: Path) -> dict[str, dict]:
    """Each checkpoint's record of its leaves (path, shape, dtype, CRC-32), by step."""
    steps = [p for p in (run / "checkpoints").iterdir() if p.name.isdigit()]
    return {p.name: json.loads((p / "meta" / "metadata").read_text())["signature"] for p in steps}


def test_two_processes_train_the_numbers_of_one_process_with_two_devices(runs):
    job, alone = runs["job"] / "run", runs["alone"] / "run"
    assert len(_rows(job)) == 8 * 4  # 8 log intervals x 4 seeds, once each
    assert _rows(job) == _rows(alone)
    summary, reference = (json.loads((r / "summary.json").read_text()) for r in (job, alone))
    assert summary["devices"] == reference["devices"] == 2
    assert summary["evaluation"] == reference["evaluation"]
    assert sorted(_signatures(job)) == ["5", "8"]  # every fifth chunk of 1 iteration, and the end
    assert _signatures(job) == _signatures(alone)


def test_process_1_writes_nothing(runs):
    assert not runs["other"].exists()
    assert sorted(p.name for p in (runs["job"] / "run").iterdir()) == sorted(
        p.name for p in (runs["alone"] / "run").iterdir()
    )


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rlkit.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(1),
    )


def test_a_process_id_out_of_range_is_one_line_and_exit_2(tmp_path):
    out = _run([*COMMAND, "--runs-dir", str(tmp_path / "runs"), *_job(_free_port(), 2)])
    assert out.returncode == 2
    assert _lines(out.stderr) == [
        "rlkit: error: --process-id must be in 0..1 (--num-processes 2), got 2"
    ]
    assert not (tmp_path / "runs").exists()


def test_an_unreachable_coordinator_fails_in_one_line_within_the_timeout(tmp_path):
    port = _free_port()  # nobody serves it
    args = [*COMMAND, "--runs-dir", str(tmp_path / "runs"), *_job(port, 1)]
    args[-1] = "3"  # --join-timeout 3
    started = time.perf_counter()
    out = _run(args)
    elapsed = time.perf_counter() - started
    assert out.returncode == 1, out.stderr[-2000:]
    assert _lines(out.stderr) == [
        f"rlkit: error: process 1 of 2: no job formed within 3 s (the coordinator "
        f"localhost:{port} did not answer, or not all processes joined; --join-timeout)"
    ]
    assert elapsed < 3 + 30  # the watchdog, not JAX's abort 30 s later
    assert not (tmp_path / "runs").exists()


def test_seeds_that_do_not_divide_over_the_processes_are_refused_by_every_process(tmp_path):
    port = _free_port()
    args = [*COMMAND, "--runs-dir", str(tmp_path / "runs")]
    args[args.index("--seeds") + 1] = "3"
    procs = [_start([*args, *_job(port, i)], 1) for i in range(2)]
    for proc in procs:
        rc, err = _finish(proc)
        assert rc == 2, err[-2000:]
        assert _lines(err) == ["rlkit: error: --seeds 3 does not divide over --num-processes 2"]
    assert not (tmp_path / "runs").exists()


SWEEP = [
    "sweep",
    *COMMAND[1 : COMMAND.index("--seeds")],
    *("--seeds", "2", "--grid", "learning_rate=1e-3,3e-3"),
    *COMMAND[COMMAND.index("--steps") :],
]  # the same tiny PPO: 2 grid points x 2 seeds = 4 members, 2 on each process


def test_a_two_process_sweep_gives_the_numbers_of_one_process_with_two_devices(tmp_path):
    port = _free_port()
    procs = {
        "job": _start([*SWEEP, "--runs-dir", str(tmp_path / "job"), *_job(port, 0)], 1),
        "other": _start([*SWEEP, "--runs-dir", str(tmp_path / "other"), *_job(port, 1)], 1),
        "alone": _start([*SWEEP, "--runs-dir", str(tmp_path / "alone")], 2),
    }
    for name, proc in procs.items():
        rc, err = _finish(proc)
        assert rc == 0, f"{name}: {err[-3000:]}"
    assert not (tmp_path / "other").exists()
    job, alone = tmp_path / "job" / "run", tmp_path / "alone" / "run"
    points = [json.loads((r / "summary.json").read_text())["points"] for r in (job, alone)]
    assert [p["per_seed_mean_return"] for p in points[0]] == [
        p["per_seed_mean_return"] for p in points[1]
    ]
    assert _rows(job / "group_0") == _rows(alone / "group_0")
    assert {(r["point"], r["seed"]) for r in _rows(job / "group_0")} == {
        (0, 0), (0, 1), (1, 0), (1, 1)
    }  # fmt: skip
