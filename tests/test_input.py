"""Bad input: one line naming the problem, a non-zero exit, and nothing written.

Every case runs `rlkit` in this process with --runs-dir pointing at a folder that does not
exist yet: after a refused command it must still not exist (nothing is written before the whole
input is checked).
"""

from __future__ import annotations

import errno
import os

import pytest

from rlkit.cli import main

CARTPOLE = ["train", "ppo", "--env", "CartPole-v1"]
BALL = ["train", "ppo", "--env", "BalanceBall-v0"]

# (argv, expected exit status, a piece of the one line shown)
FLAGS = [
    (["train", "ppq", "--env", "CartPole-v1"], 2, "unknown algorithm 'ppq'"),
    (["train", "ppo", "--env", "CartPoles-v1"], 2, "unknown environment 'CartPoles-v1'"),
    ([*CARTPOLE, "--set", "gama=0.9"], 2, "unknown hyperparameter 'gama'"),
    ([*CARTPOLE, "--set", "gamma=2"], 2, "gamma must be in [0, 1], got 2.0"),
    ([*CARTPOLE, "--set", "gamma=nan"], 2, "gamma must be a finite number"),
    ([*CARTPOLE, "--set", "learning_rate=inf"], 2, "learning_rate must be a finite number"),
    ([*CARTPOLE, "--set", "learning_rate=-inf"], 2, "learning_rate must be a finite number"),
    ([*CARTPOLE, "--set", "num_envs=inf"], 2, "num_envs must be an integer"),
    ([*CARTPOLE, "--set", "num_envs=2.5"], 2, "num_envs must be an integer"),
    ([*CARTPOLE, "--set", "num_envs=0"], 2, "num_envs must be in"),
    ([*CARTPOLE, "--set", "normalize_obs=maybe"], 2, "normalize_obs must be true or false"),
    ([*CARTPOLE, "--set", "learning_rate"], 2, "expected key=value"),
    ([*CARTPOLE, "--set", "hidden=[64,"], 2, "hidden"),
    ([*CARTPOLE, "--seeds", "0"], 2, "--seeds must be in [1, 10000], got 0"),
    ([*CARTPOLE, "--seeds", "100000"], 2, "--seeds must be in [1, 10000], got 100000"),
    ([*CARTPOLE, "--seed", "-1"], 2, "--seed must be in [0, 4294967295], got -1"),
    ([*CARTPOLE, "--seed", "99999999999"], 2, "--seed must be in [0, 4294967295]"),
    ([*CARTPOLE, "--steps", "1000000000000000"], 2, "total_steps must be at most 2147483647"),
    ([*CARTPOLE, "--steps", "1e6"], 2, "argument --steps: invalid int value: '1e6'"),
    ([*CARTPOLE, "--steps", "-5"], 2, "total_steps"),
    ([*CARTPOLE, "--steps", "100"], 2, "total_steps"),
    # CleanRL's reference defaults (learning_starts 10k), not the tuned CartPole defaults.
    (["train", "dqn", "--env", "CartPole-v1", "--defaults", "--steps", "9000"], 2, "warm-up steps"),
    (["train", "sac", "--env", "Pendulum-v1", "--set", "learning_starts=20000"], 2, "warm-up"),
    ([*CARTPOLE, "--preset", "nope"], 2, "unknown preset 'nope'"),
    ([*CARTPOLE, "--eval-episodes", "0"], 2, "--eval-episodes must be in"),
    ([*CARTPOLE, "--keep-checkpoints", "0"], 2, "--keep-checkpoints must be in"),
    ([*CARTPOLE, "--checkpoint-every", "-1"], 2, "--checkpoint-every must be in"),
    ([*CARTPOLE, "--log-every", "0"], 2, "--log-every must be in"),
    ([*BALL, "--env-set", "gravty=3"], 2, "no parameter"),
    ([*BALL, "--env-set", "gravity=nan"], 2, "gravity must be a finite number"),
    ([*BALL, "--env-set", "gravity=abc"], 2, "gravity must be a number"),
    ([*BALL, "--env-set", "max_steps_in_episode=0"], 2, "max_steps_in_episode"),
    ([*BALL, "--env-set", "max_steps_in_episode=1e12"], 2, "max_steps_in_episode"),
    (["train", "ppo"], 2, "--env is required"),
    (["fly"], 2, "invalid choice"),
    ([*CARTPOLE, "--name", "a/b"], 2, "plain folder name"),
    (["train", "--resume", "/nonexistent/run"], 2, "is not a run directory"),
    (["eval", "/nonexistent/run"], 2, "is not a run directory"),
]


def _assert_one_line(capsys, status: int, expected_status: int, message: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert status == expected_status, err
    assert len(err) == 1, err
    assert err[0].startswith("rlkit: error:") and message in err[0], err[0]
    return err[0]


@pytest.mark.parametrize(("argv", "status", "message"), FLAGS, ids=lambda x: str(x)[:60])
def test_bad_flags_get_one_line_and_write_nothing(argv, status, message, tmp_path, capsys):
    runs = tmp_path / "runs"
    code = main([*argv, "--runs-dir", str(runs)] if argv[0] == "train" else argv)
    _assert_one_line(capsys, code, status, message)
    assert not runs.exists()


CONFIG_FILES = [
    ("seeds: two\n", "config file {path}: seeds must be an integer, got 'two'"),
    ("seeds: 2.7\n", "config file {path}: seeds must be an integer, got 2.7"),
    ("seed: -3\n", "seed must be in [0, 4294967295]"),
    ("config: {gamma: .nan}\n", "gamma must be a finite number"),
    ("config: {learning_rate: fast}\n", "learning_rate must be a number, got 'fast'"),
    ("config: {num_envs: 8.5}\n", "num_envs must be an integer, got 8.5"),
    ("config: [1, 2]\n", "config must be a mapping"),
    ("env_overrides: {gravity: .inf}\n", "gravity must be a finite number"),
    ("lerning_rate: 0.1\n", "unknown keys: lerning_rate"),
    ("algo: dqn\n", "config file is for dqn, not ppo"),
    ("env: 3\n", "env must be a string"),
    ("- a\n- b\n", "must hold a mapping, got list"),
    ("seeds: [1\n", "is not valid YAML (line"),
    ("log_every: 0\n", "log_every must be in"),
]


@pytest.mark.parametrize(("text", "message"), CONFIG_FILES, ids=lambda x: str(x)[:40])
def test_bad_config_files_name_the_field(text, message, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    standalone = text.startswith(("env:", "- ", "algo:"))
    path.write_text(text if standalone else "env: BalanceBall-v0\n" + text)
    runs = tmp_path / "runs"
    code = main(["train", "ppo", "--config", str(path), "--runs-dir", str(runs)])
    _assert_one_line(capsys, code, 2, message.format(path=path))
    assert not runs.exists()


def test_config_file_paths_that_are_not_files(tmp_path, capsys):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    for path, message in [
        (tmp_path / "missing.yaml", "cannot read config file"),
        (tmp_path, "is a directory"),
        (binary, "is not text"),
    ]:
        code = main([*CARTPOLE, "--config", str(path), "--runs-dir", str(tmp_path / "runs")])
        _assert_one_line(capsys, code, 2, message)


def test_yaml_numbers_in_scientific_notation_are_numbers(tmp_path, capsys):
    # YAML 1.1 reads 3e-4 as a string; a config file and --set must agree that it is a number.
    path = tmp_path / "run.yaml"
    path.write_text("env: CartPole-v1\nconfig: {learning_rate: 3e-4, total_steps: 1e4}\n")
    from rlkit.cli.spec import resolve

    spec = resolve("ppo", config_file=str(path))
    assert spec.config.learning_rate == pytest.approx(3e-4) and spec.config.total_steps == 10_000


def test_runs_dir_that_is_a_file_or_cannot_be_created(tmp_path, capsys, monkeypatch):
    a_file = tmp_path / "file"
    a_file.write_text("")
    code = main([*CARTPOLE, "--runs-dir", str(a_file)])
    _assert_one_line(capsys, code, 2, f"--runs-dir {a_file} is not a directory")

    def refuse(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(os, "mkdir", refuse)
    code = main([*CARTPOLE, "--runs-dir", str(tmp_path / "runs")])
    _assert_one_line(capsys, code, 2, "Permission denied")


def test_a_taken_name_is_refused_and_the_run_in_it_kept(tmp_path, capsys):
    (tmp_path / "taken" / "checkpoints" / "10").mkdir(parents=True)
    code = main([*CARTPOLE, "--runs-dir", str(tmp_path), "--name", "taken"])
    line = _assert_one_line(capsys, code, 2, "already exists")
    assert "--resume" in line
    assert (tmp_path / "taken" / "checkpoints" / "10").is_dir()


def test_default_names_are_unique_when_runs_start_in_the_same_second(tmp_path):
    from rlkit.report.runs import create_run_folder

    folders = [create_run_folder(tmp_path, None, "ppo-CartPole-v1-20261201-120000") for _ in "abc"]
    assert [f.name for f in folders] == [
        "ppo-CartPole-v1-20261201-120000",
        "ppo-CartPole-v1-20261201-120000-2",
        "ppo-CartPole-v1-20261201-120000-3",
    ]


def test_an_unexpected_error_keeps_its_traceback(monkeypatch):
    import rlkit.cli.spec

    def broken(*args, **kwargs):
        raise ValueError("a bug, not bad input")

    monkeypatch.setattr(rlkit.cli.spec, "resolve", broken)
    with pytest.raises(ValueError, match="a bug"):
        main([*CARTPOLE, "--runs-dir", "/nonexistent"])


def test_resume_refuses_flags_that_would_change_the_run(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text("algo: ppo\nenv: CartPole-v1\n")
    code = main(["train", "--resume", str(tmp_path), "--set", "gamma=0.9"])
    _assert_one_line(capsys, code, 2, "drop --set")
    code = main(["train", "ppo", "--resume", str(tmp_path)])
    _assert_one_line(capsys, code, 2, "drop ALGO")


def test_a_full_disk_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    import rlkit.report.rundir

    def full(path, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(rlkit.report.rundir, "atomic_write", full)
    whole = ["--steps", "4096", "--set", "num_envs=4", "--set", "rollout_length=64"]
    code = main([*CARTPOLE, *whole, "--runs-dir", str(tmp_path), "--name", "full"])
    _assert_one_line(capsys, code, 1, "disk full")
    assert not (tmp_path / "full").exists()  # the folder it had just made is not left behind


def test_a_budget_that_is_not_whole_iterations_is_said_in_one_line(capsys):
    from rlkit.cli.spec import resolve
    from rlkit.cli.train import _say_rounding

    spec = resolve(
        "dqn", env="CartPole-v1", preset="defaults", steps=10_999, sets=["learning_starts=1000"]
    )
    algo = spec.module.make(spec.config, spec.env, spec.env_params)
    _say_rounding(spec, algo)
    # 1000 warm-up steps, then whole iterations of 10 copies x 1 step: 999 iterations.
    assert capsys.readouterr().err == (
        "rlkit: note: total_steps 10,999 trains 10,990 steps per seed: 999 whole iterations "
        "of 10 after 1,000 warm-up steps\n"
    )
    spec = resolve(
        "dqn", env="CartPole-v1", preset="defaults", steps=11_000, sets=["learning_starts=1000"]
    )
    _say_rounding(spec, spec.module.make(spec.config, spec.env, spec.env_params))
    assert capsys.readouterr().err == ""  # a whole number of iterations: nothing to say
