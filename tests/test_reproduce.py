"""`rlkit reproduce` and paper_configs: a bad file is one line and writes nothing; a tiny paper
config trains end to end and exits 0 on PASS, 1 on FAIL; tuned per-environment defaults are
used, said, recorded, and switched off by --defaults."""

from __future__ import annotations

import json

import pytest
import yaml

import agents
import paper_configs
from rlkit.cli import main, unity_env
from rlkit.cli.reproduce import judge
from rlkit.cli.spec import resolve

# 2 seeds x 4 iterations of 4 copies x 128 steps of PPO on CartPole: seconds, once compiled.
TINY = {
    "name": "test/tiny",
    "algo": "ppo",
    "env": "CartPole-v1",
    "source": "tests/test_reproduce.py",
    "steps": 2048,
    "seeds": 2,
    "config": {"num_envs": 4, "rollout_length": 128},
    "target": {"metric": "iqm", "threshold": 1},
}


def _write(tmp_path, name: str, data: dict) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"colour": "red"}, "unknown keys: colour"),
        ({"target": None}, "lacks target"),
        ({"target": {"metric": "median", "threshold": 1}}, "target.metric must be one of"),
        ({"target": {"metric": "iqm"}}, "target.threshold must be a number"),
        ({"target": {"metric": "iqm", "threshold": 1, "bar": 2}}, "target has unknown keys: bar"),
        ({"algo": "ppq"}, "unknown algorithm 'ppq'"),
        ({"env": "Nope-v0"}, "unknown environment 'Nope-v0'"),
        ({"config": {"num_envz": 4}}, "num_envz"),
        ({"config": {"total_steps": 10}}, "give steps or config.total_steps, not both"),
    ],
)
def test_a_bad_paper_config_is_one_line_exit_2_and_nothing_written(
    tmp_path, capsys, change, expected
) -> None:
    data = {k: v for k, v in {**TINY, **change}.items() if v is not None}
    runs = tmp_path / "runs"
    code = main(["reproduce", _write(tmp_path, "bad", data), "--runs-dir", str(runs)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and expected in err, err
    assert not runs.exists()


def test_a_plain_config_file_without_a_target_is_refused(tmp_path, capsys) -> None:
    path = _write(tmp_path, "plain", {"algo": "ppo", "env": "CartPole-v1"})
    assert main(["reproduce", path, "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "lacks name, source, target" in capsys.readouterr().err


def test_a_tiny_paper_config_passes_with_exit_0_and_fails_with_exit_1(tmp_path, capsys) -> None:
    runs = tmp_path / "runs"
    common = ["--runs-dir", str(runs), "--no-progress", "--eval-episodes", "2"]
    passing = _write(tmp_path, "tiny", TINY)
    assert main(["reproduce", passing, "--name", "pass", *common]) == 0
    out = capsys.readouterr().out
    assert out.startswith("PASS test/tiny (ppo on CartPole-v1, 2 seeds): iqm ") and ">= 1" in out
    verdict = json.loads((runs / "pass" / "reproduce.json").read_text())
    assert verdict["passed"] and verdict["summary"]["n"] == 2
    assert (runs / "pass" / "plots" / "learning_curve.png").stat().st_size > 0
    assert (runs / "pass" / "plots" / "learning_curve.svg").is_file()
    config = yaml.safe_load((runs / "pass" / "config.yaml").read_text())
    assert config["paper_config"] == passing and config["config"]["total_steps"] == 2048

    # The same run (the compilation cache makes it cheap) against a return CartPole cannot reach.
    failing = _write(tmp_path, "tiny", {**TINY, "target": {"metric": "mean", "threshold": 1e6}})
    assert main(["reproduce", failing, "--name", "fail", *common]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL test/tiny") and "NOT mean" in out and ">= 1e+06" in out


def test_judge_applies_tolerance_every_seed_and_the_ci_bound() -> None:
    scores = [480.0, 490.0, 500.0, 500.0, 300.0]
    # IQM drops one value from each end: mean(480, 490, 500) = 490.
    assert judge({"metric": "iqm", "threshold": 490}, scores)["passed"]
    assert not judge({"metric": "iqm", "threshold": 491}, scores)["passed"]
    assert judge({"metric": "iqm", "threshold": 491, "tolerance": 1}, scores)["passed"]
    # The 300 seed is hidden by the IQM but not by every_seed.
    assert not judge({"metric": "iqm", "threshold": 400, "every_seed": 400}, scores)["passed"]
    assert not judge({"metric": "iqm", "threshold": 400, "ci_lower": 489}, scores)["passed"]
    # A diverged seed fails the reproduction even though the others pass.
    assert not judge({"metric": "iqm", "threshold": 1}, [*scores, float("nan")])["passed"]


def test_tuned_defaults_are_said_recorded_and_switched_off_by_defaults(capsys) -> None:
    tuned = resolve("dqn", env="CartPole-v1")
    assert capsys.readouterr().err == (
        "rlkit: using tuned defaults paper_configs/dqn_cartpole_tuned.yaml "
        "(--defaults for dqn's reference defaults)\n"
    )
    # The tuned 50k-step DQN (rejax's settings, tuned), not CleanRL's reference defaults.
    config = tuned.config
    assert (config.num_envs, config.tau, config.learning_rate, config.anneal_lr) == (
        10,
        0.05,
        5e-3,
        True,
    )
    assert tuned.config.total_steps == 50_000 and tuned.preset == "rlkit/CartPole-50k"
    assert tuned.record("")["paper_config"] == "paper_configs/dqn_cartpole_tuned.yaml"
    # --steps and --set still override the tuned values.
    assert resolve("dqn", env="CartPole-v1", steps=60_000).config.total_steps == 60_000
    capsys.readouterr()

    from rlkit.cli.main import build_parser

    args = build_parser().parse_args(["train", "dqn", "--env", "CartPole-v1", "--defaults"])
    reference = resolve("dqn", env="CartPole-v1", preset=args.preset)
    assert capsys.readouterr().err == ""
    assert (reference.config.train_frequency, reference.config.total_steps) == (10, 500_000)
    assert reference.preset is None and reference.record("")["paper_config"] is None
    # No tuned config for this pair: the reference defaults, silently.
    assert resolve("ppo", env="CartPole-v1").config.num_envs == 4
    assert capsys.readouterr().err == ""


def test_every_shipped_paper_config_resolves_and_names_a_preset_once(capsys) -> None:
    pairs = []
    for path in paper_configs.files():
        data = paper_configs.load(path)
        if data["env"].startswith("unity:"):
            # A Unity player: its options and player checked, not started (a connection takes
            # seconds; tests/test_unity_bridge.py trains through the same player).
            unity_env.settings(data["env"], data.get("unity") or {}, {}, 0)
            assert data["name"] in agents.load(data["algo"]).PRESETS
            assert path.name.startswith(f"{data['algo']}_") and "cpu_minutes" in data
            continue
        spec = resolve(None, config_file=str(path))  # builds its Config and its environment
        assert spec.paper_config == f"paper_configs/{path.name}"
        assert data["name"] in spec.module.PRESETS
        if data.get("default_for_env"):
            pairs.append((data["algo"], data["env"]))
        assert path.name.startswith(f"{data['algo']}_") and "cpu_minutes" in data
    assert len(pairs) == len(set(pairs))  # at most one tuned default per (algo, env)
    assert ("dqn", "CartPole-v1") in pairs
