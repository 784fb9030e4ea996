"""Sweeps: a grid of traced hyperparameters x seeds is one compiled program whose members are the
separate runs; shape-changing values compile a program each; a stopped sweep resumes exactly;
`--wandb` writes a definition whose trials `rlkit train` accepts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml

import agents.ppo as ppo
import envs
from rlkit.cli.main import _parse as parse_command_line
from rlkit.cli.main import build_parser, main
from rlkit.core.grid import groups, points
from rlkit.report import stats
from rlkit.training.runner import Runner

ROOT = Path(__file__).resolve().parents[1]
# 64 iterations of 4 x 16 steps, a metrics row and a chunk per iteration.
TINY = ["--set", "num_envs=4", "--set", "rollout_length=16", "--eval-episodes", "2",
        "--log-every", "64"]  # fmt: skip


@pytest.fixture(scope="module")
def compile_events():
    """Names of the XLA backend compilations since the module started (appended as they run)."""
    seen: list[str] = []

    def listen(name: str, duration: float, **kwargs) -> None:
        if "backend_compile" in name:
            seen.append(name)

    jax.monitoring.register_event_duration_secs_listener(listen)
    return seen


def test_a_4_learning_rates_x_4_seeds_sweep_is_one_compilation_and_matches_16_separate_runs(
    compile_events,
):
    env, params = envs.make("CartPole-v1")
    algo = ppo.make(ppo.Config(num_envs=4, rollout_length=32, total_steps=4 * 32 * 6), env, params)
    rates = np.array([1e-4, 3e-4, 1e-3, 3e-3], np.float32)
    runner = Runner(algo)
    sweep = runner.train(num_seeds=4, points={"learning_rate": rates}, eval_episodes=2)
    kinds = [key[0] for key in runner._programs]
    assert sorted(kinds) == ["chunk", "evaluate", "init"]  # one training program for all 16

    before = len(compile_events)
    again = runner.train(num_seeds=4, points={"learning_rate": rates / 2}, eval_episodes=2)
    assert len(compile_events) == before, "other traced values must not compile anything"
    assert not np.allclose(again.metrics["value_loss"], sweep.metrics["value_loss"])

    separate = Runner(algo)
    for p, rate in enumerate(rates):
        hparams = {**algo.hparams, "learning_rate": np.float32(rate)}
        for s in range(4):
            alone = separate.train(num_seeds=1, hparams=hparams, first_seed=s, eval_episodes=2)
            member = p * 4 + s
            for a, b in zip(
                jax.tree.leaves(sweep.state.params),
                jax.tree.leaves(alone.state.params),
                strict=True,
            ):
                # Up to float rounding: a vmap of 16 sums in another order than one of 1.
                np.testing.assert_allclose(a[member], b[0], rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(
                sweep.metrics["episode_return"][member], alone.metrics["episode_return"][0]
            )
            np.testing.assert_array_equal(
                sweep.evaluation["returns"][member], alone.evaluation["returns"][0]
            )
    assert [key[0] for key in separate._programs].count("chunk") == 1


def test_points_are_the_product_and_only_shape_changing_values_split_groups():
    grid = {"learning_rate": [1e-4, 1e-3], "hidden": [(32,), (64, 64)], "gamma": [0.9, 0.99]}
    assert points(grid)[:3] == [
        {"learning_rate": 1e-4, "hidden": (32,), "gamma": 0.9},
        {"learning_rate": 1e-4, "hidden": (32,), "gamma": 0.99},
        {"learning_rate": 1e-4, "hidden": (64, 64), "gamma": 0.9},
    ]
    split = groups(ppo.Config, grid)
    assert [g.static for g in split] == [{"hidden": (32,)}, {"hidden": (64, 64)}]
    assert [g.indices for g in split] == [(0, 1, 4, 5), (2, 3, 6, 7)]
    assert split[0].traced == {"learning_rate": [1e-4, 1e-4, 1e-3, 1e-3], "gamma": [0.9, 0.99] * 2}


def _sweep_command(runs: Path, name: str, *extra: str) -> list[str]:
    return [
        "sweep", "ppo", "--env", "CartPole-v1", "--steps", "4096", "--seeds", "2",
        "--grid", "learning_rate=1e-3,3e-3", "--grid", "hidden=[16],[32]",
        "--runs-dir", str(runs), "--name", name, "--no-progress", *TINY, *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
    runs = tmp_path_factory.mktemp("sweeps")
    assert main(_sweep_command(runs, "whole", "--checkpoint-every", "8")) == 0
    return runs / "whole"


def test_a_sweep_folder_holds_a_group_per_program_and_each_points_statistics(finished_sweep):
    summary = json.loads((finished_sweep / "summary.json").read_text())
    assert [row["values"] for row in summary["points"]] == [
        {"learning_rate": 1e-3, "hidden": [16]},
        {"learning_rate": 1e-3, "hidden": [32]},
        {"learning_rate": 3e-3, "hidden": [16]},
        {"learning_rate": 3e-3, "hidden": [32]},
    ]
    assert [row["group"] for row in summary["points"]] == [0, 1, 0, 1]
    for row in summary["points"]:
        returns = np.array(row["per_seed_mean_return"])
        assert returns.shape == (2,)
        expected = stats.summary(returns)
        assert row["iqm"] == pytest.approx(expected["iqm"])
        assert row["ci95"]["iqm"] == pytest.approx(expected["ci95"]["iqm"])
    group_rows = [json.loads(line) for line in (finished_sweep / "group_0" / "metrics.jsonl")
                  .read_text().splitlines()]  # fmt: skip
    assert {(r["point"], r["seed"]) for r in group_rows} == {(0, 0), (0, 1), (2, 0), (2, 1)}
    folders = sorted(p.name for p in (finished_sweep / "group_1" / "tensorboard").iterdir())
    assert folders == ["point_1_seed_0", "point_1_seed_1", "point_3_seed_0", "point_3_seed_1"]
    # The base run reruns on its own.
    base = yaml.safe_load((finished_sweep / "base.yaml").read_text())
    assert base["algo"] == "ppo" and base["seeds"] == 2


def test_a_sweep_killed_in_a_group_resumes_to_the_same_numbers(finished_sweep, tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    command = [sys.executable, "-m", "rlkit.cli", *_sweep_command(tmp_path, "cut")]
    process = subprocess.Popen([*command, "--checkpoint-every", "8"], cwd=ROOT, env=env,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    first = tmp_path / "cut" / "group_0" / "checkpoints"
    deadline = time.monotonic() + 300
    while process.poll() is None and not (first.is_dir() and any(first.iterdir())):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.kill()
    _, err = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, err
    assert not (tmp_path / "cut" / "group_0" / "summary.json").exists()  # killed inside group 0
    resumed = subprocess.run(
        [sys.executable, "-m", "rlkit.cli", "sweep", "--resume", str(tmp_path / "cut"),
         "--no-progress"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    whole = json.loads((finished_sweep / "summary.json").read_text())["points"]
    cut = json.loads((tmp_path / "cut" / "summary.json").read_text())["points"]
    assert [r["per_seed_mean_return"] for r in cut] == [r["per_seed_mean_return"] for r in whole]
    for group in ("group_0", "group_1"):
        cut_rows = (tmp_path / "cut" / group / "metrics.jsonl").read_text()
        assert cut_rows == (finished_sweep / group / "metrics.jsonl").read_text()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "give the grid: --grid KEY=V1,V2,..."),
        (["--grid", "lerning_rate=1e-3,1e-2"], "unknown hyperparameter 'lerning_rate' in the grid"),
        (["--grid", "learning_rate=1e-3,-1"], "learning_rate must be in [0, inf], got -1.0"),
        (["--grid", "learning_rate=1e-3,1e-3"], "grid learning_rate repeats a value"),
        (["--grid", "learning_rate"], "--grid expects KEY=V1,V2,..., got 'learning_rate'"),
        (["--grid", "hidden=[16,16],fast"], "hidden must be an integer, got 'fast'"),
    ],
)
def test_a_bad_grid_is_one_line_and_writes_nothing(tmp_path, capsys, extra, message):
    runs = tmp_path / "runs"
    argv = ["sweep", "ppo", "--env", "CartPole-v1", "--runs-dir", str(runs), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rlkit: error: ") and message in err and "\n" not in err
    assert not runs.exists()


def test_a_wandb_definition_runs_trials_that_rlkit_train_accepts(tmp_path, monkeypatch):
    from wandb.sdk.launch.sweeps import utils as sweep_utils

    monkeypatch.chdir(tmp_path)
    argv = ["sweep", "ppo", "--env", "CartPole-v1", "--seeds", "3", "--wandb",
            "--grid", "learning_rate=1e-3,3e-4", "--grid", "hidden=[32,32],[64]"]  # fmt: skip
    assert main(argv) == 0
    definition = yaml.safe_load((tmp_path / "wandb-sweep.yaml").read_text())
    assert definition["parameters"]["hidden"] == {"values": [[32, 32], [64]]}
    # One trial as W&B's agent expands it (its own code), then parsed by rlkit's command line.
    trial = {"args": {"learning_rate": {"value": 3e-4}, "hidden": {"value": [64]}}}
    expanded = sweep_utils.create_sweep_command_args(trial)
    command = []
    for part in definition["command"]:
        command += expanded[part[2:-1]] if part == "${args}" else [part]
    assert command[:3] == ["${env}", "rlkit", "train"]
    args = parse_command_line(build_parser(), command[2:])
    from rlkit.cli.spec import resolve

    spec = resolve(args.algo, env=args.env, sets=args.set, seeds=args.seeds)
    assert spec.config.learning_rate == 3e-4 and spec.config.hidden == (64,)
    assert spec.seeds == 3 and args.wandb
    assert main(argv) == 2  # the definition is not overwritten


def test_a_config_file_grid_is_the_sweeps_and_a_grid_flag_replaces_its_entry(tmp_path):
    config = tmp_path / "sweep.yaml"
    config.write_text("algo: ppo\nenv: CartPole-v1\nseeds: 2\n"
                      "grid: {gamma: [0.9, 0.99], learning_rate: [1.0e-3]}\n")  # fmt: skip
    out = tmp_path / "definition.yaml"
    argv = ["sweep", "--config", str(config), "--grid", "learning_rate=1e-4,1e-3"]
    assert main([*argv, "--wandb", "--out", str(out)]) == 0
    parameters = yaml.safe_load(out.read_text())["parameters"]
    assert parameters == {"gamma": {"values": [0.9, 0.99]},
                          "learning_rate": {"values": [1e-4, 1e-3]}}  # fmt: skip
    config.write_text("algo: ppo\nenv: CartPole-v1\ngrid: [0.9]\n")
    assert main([*argv, "--wandb", "--out", str(tmp_path / "other.yaml")]) == 2
