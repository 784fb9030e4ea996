"""A run killed with SIGKILL and resumed ends bit-identical to a run never stopped.

For PPO and for DQN with prioritised replay and 3-step targets: one process trains 2N
iterations straight; another trains the same command with a checkpoint at N and is SIGKILLed
while it trains a chunk after N (metrics rows past N are on disk by then, which the checkpoint
does not cover); `rlkit train --resume` finishes it in a third process. The final TrainStates
(parameters, optimiser states, replay buffer with priorities, normaliser statistics, RNG,
counters), metrics.jsonl and the final evaluations must be equal bit for bit (CPU). For PPO a
fourth run is stopped with SIGTERM, saves where it is, exits 130, and resumes to the same end.
(SAC's case, 93 s of the test budget, was dropped: its TrainState is restored by the same code,
leaf by leaf; `rlkit train --resume` of SAC runs is not tested bit for bit.)

The killed process runs the real command line through a small driver that, once checkpoint N is
on disk, arms a timer that sends the signal 20 ms later from another thread: the main thread is
then inside the next chunk's computation (each chunk takes about 100 ms or more), so the kill
always lands after checkpoint N and long before the run could end. Every process compiles the
same programs, so they share one compilation cache: the first fills it, the others load from it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from rlkit.cli.evaluate import load_run

# name: (command, N): 2N iterations in chunks that divide N (a twentieth of the run, rounded up
# to whole log intervals), so that a checkpoint falls at N; each chunk takes about 100 ms or more
# on a 2-core CPU.
CASES = {
    "ppo": (
        "ppo --env CartPole-v1 --steps 102400 --set num_envs=8 --set rollout_length=64 "
        "--set hidden=[32,32] --log-every 512",
        100,
    ),
    "dqn": (
        "dqn --env CartPole-v1 --steps 40500 --set num_envs=4 --set learning_starts=500 "
        "--set buffer_size=4000 --set prioritised=true --set n_step=3 --set batch_size=64 "
        "--set hidden=[32,32] --log-every 400",
        500,  # 4 copies x train_frequency 10 = 40 steps per iteration
    ),
}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "rlkit.cli", *args]


# `python -c DRIVER AT SIGNUM args...`: the command line, signalled 20 ms after checkpoint AT is
# on disk and the chunk after it has started.
DRIVER = """
import os, sys, threading, time
import rlkit.cli.run as run_module
from rlkit.cli import main

at, signum = int(sys.argv[1]), int(sys.argv[2])
original = run_module.Run.sink

def sink(self, first_iteration, metrics):
    original(self, first_iteration, metrics)
    if first_iteration == at:
        deadline = time.monotonic() + 300
        while not (self.folder / "checkpoints" / str(at)).is_dir():
            assert time.monotonic() < deadline, "checkpoint never written"
            time.sleep(0.005)
        threading.Timer(0.02, os.kill, (os.getpid(), signum)).start()

run_module.Run.sink = sink
sys.exit(main(sys.argv[3:]))
"""


def _signalled(args: list[str], at: int, signum: int, env: dict) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", DRIVER, str(at), str(int(signum)), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)


def _env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    return {**env, "RLKIT_CACHE_DIR": str(cache), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(_cli(*args), capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc


def _rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def _stop_with_sigterm(args: list[str], folder: Path, at: int, env: dict[str, str]) -> int:
    """SIGTERM the run in its chunk after `at`; it must save, exit 130 and say where it stopped.
    Returns that iteration."""
    proc = _signalled(args, at, signal.SIGTERM, env)
    assert proc.returncode == 130, proc.stderr
    assert "SIGTERM: stopping after this chunk" in proc.stderr
    stopped_at = int(proc.stderr.split("stopped at iteration ")[1].split()[0])
    assert (folder / "checkpoints" / str(stopped_at)).is_dir()
    assert _rows(folder)[-1]["iteration"] == stopped_at - 1
    assert not (folder / "summary.json").exists()
    return stopped_at


def _assert_same_run(first: Path, second: Path) -> None:
    """Final TrainStates, metrics rows and final evaluations equal, bit for bit."""
    a_run, b_run = load_run(first), load_run(second)
    assert a_run.iteration == b_run.iteration == a_run.algo.num_iterations
    leaves = jax.tree_util.tree_leaves_with_path(a_run.state)
    other = jax.tree.leaves(b_run.state)
    assert len(leaves) == len(other)
    for (path, a), b in zip(leaves, other, strict=True):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype, jax.tree_util.keystr(path)
        np.testing.assert_array_equal(a, b, err_msg=jax.tree_util.keystr(path))
    assert _rows(first) == _rows(second)
    assert _rows(second)[-1]["iteration"] == a_run.algo.num_iterations - 1
    summaries = [json.loads((f / "summary.json").read_text()) for f in (first, second)]
    assert summaries[0]["evaluation"] == summaries[1]["evaluation"]


@pytest.mark.parametrize("algo", list(CASES))
def test_a_killed_and_resumed_run_is_bit_identical_to_an_uninterrupted_one(
    algo: str, tmp_path: Path
) -> None:
    command, n = CASES[algo]
    env = _env(tmp_path / "xla")
    common = ["train", *command.split(), "--runs-dir", str(tmp_path), "--no-progress"]
    common += ["--eval-episodes", "4", "--checkpoint-every", str(n)]
    resume = ["--no-progress", "--eval-episodes", "4"]
    straight = tmp_path / "straight"
    _run([*common, "--name", "straight"], env)

    killed = tmp_path / "killed"
    proc = _signalled([*common, "--name", "killed"], n, signal.SIGKILL, env)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert _rows(killed)[-1]["iteration"] >= n  # rows the checkpoint at n does not cover
    assert not (killed / "summary.json").exists()
    resumed = _run(["train", "--resume", str(killed), *resume], env)
    assert f"at iteration {n} of {2 * n}" in resumed.stderr
    _assert_same_run(straight, killed)

    if algo == "ppo":  # a polite stop (SIGTERM, or Ctrl-C) saves where it is and resumes alike
        stopped = tmp_path / "stopped"
        at = _stop_with_sigterm([*common, "--name", "stopped"], stopped, n, env)
        assert n < at < 2 * n
        resumed = _run(["train", "--resume", str(stopped), *resume], env)
        assert f"at iteration {at} of {2 * n}" in resumed.stderr
        _assert_same_run(straight, stopped)


def test_a_truncated_newest_checkpoint_is_named_and_the_one_before_it_used(tmp_path, capsys):
    from rlkit.cli import main

    args = ["train", "ppo", "--env", "CartPole-v1", "--steps", "4096", "--set", "num_envs=4"]
    args += ["--set", "rollout_length=64", "--log-every", "256", "--checkpoint-every", "4"]
    args += ["--runs-dir", str(tmp_path), "--name", "run", "--no-progress", "--eval-episodes", "2"]
    assert main(args) == 0
    checkpoints = tmp_path / "run" / "checkpoints"
    assert sorted(int(p.name) for p in checkpoints.iterdir()) == [8, 12, 16]  # keeps 3
    data = max((p for p in (checkpoints / "16").rglob("*") if p.is_file()), key=os.path.getsize)
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])  # a disk that lost its tail
    (tmp_path / "run" / "summary.json").unlink()  # as if killed before the end
    capsys.readouterr()

    assert main(["train", "--resume", str(tmp_path / "run"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "rlkit: warning: checkpoint 16 is unreadable (" in err and "); using 12" in err
    assert "at iteration 12 of 16" in err
    rows = _rows(tmp_path / "run")
    assert [r["iteration"] for r in rows] == list(range(16))  # each iteration once


def test_a_second_signal_stops_at_once_with_exit_130(tmp_path):
    """The first SIGINT asks for a stop after the chunk; a second one stops in the chunk, exit
    130. (Once, a SAC run so stopped crashed in the interpreter's teardown, SIGSEGV 139; this
    PPO run does not reproduce that crash without the fix in rlkit.cli.main.)"""
    import time

    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    command = [sys.executable, "-m", "rlkit.cli", "train", "ppo", "--env", "CartPole-v1",
               "--steps", "5000000", "--no-progress", "--runs-dir", str(tmp_path)]  # fmt: skip
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:  # wait until it trains (its line says so)
        lines.append(line)
        if line.startswith("rlkit: training"):
            break
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    for line in proc.stderr:  # the first one is acknowledged...
        lines.append(line)
        if "SIGINT: stopping after this chunk" in line:
            break
    proc.send_signal(signal.SIGINT)  # ...the second stops inside the chunk (490 iterations)
    rest = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, "".join(lines) + rest
    assert rest.strip().splitlines()[-1] == "rlkit: interrupted"
    assert not (next(tmp_path.iterdir()) / "summary.json").exists()
