"""`rlkit tune`: batches of trials in one compiled program, workers sharing a storage, a killed
worker's batch retried, bad input refused, pruning.

Every run is REINFORCE on CartPole-v1 for 4096 steps per seed (8 iterations of 4 copies x 128
steps), 4 trials x 2 seeds per batch: the in-process tests share one Runner (one compilation),
the worker processes share one on-disk compilation cache (the first compiles, the rest load).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import sqlalchemy
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from rlkit.cli.main import main
from rlkit.cli.spec import resolve
from rlkit.training.runner import Runner
from rlkit.training.tune import search_space, tune

SETS = ["rollout_length=128", "hidden=[16]"]
BATCH, SEEDS, EPISODES = 4, 2, 4
SPACE = {"learning_rate": FloatDistribution(1e-5, 1e-1, log=True)}
WORKER = [
    *("-m", "rlkit.cli", "tune", "reinforce", "--env", "CartPole-v1", "--steps", "4096"),
    *("--set", SETS[0], "--set", SETS[1], "--param", "learning_rate=loguniform:1e-5:1e-1"),
    *("--batch", str(BATCH), "--seeds", str(SEEDS), "--eval-episodes", str(EPISODES)),
    *("--sampler", "random", "--pruner", "none"),
]

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def runner() -> Runner:
    spec = resolve("reinforce", env="CartPole-v1", steps=4096, sets=SETS)
    return Runner(spec.module.make(spec.config, spec.env, spec.env_params))


def _study(seed: int, pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    return optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=seed),
        pruner=pruner or optuna.pruners.NopPruner(),
    )


def _tune(runner: Runner, study: optuna.Study, trials: int, **options) -> list:
    return tune(
        runner,
        study,
        SPACE,
        trials=trials,
        batch=BATCH,
        num_seeds=SEEDS,
        eval_episodes=EPISODES,
        chunk_target=2,
        **options,
    )


def test_a_search_compiles_once_and_a_trial_scores_as_it_does_without_neighbours(runner):
    """6 trials = a batch of 4 and a padded batch of 2: the runner holds one init, one chunk
    and one evaluation program after both (the second compiled nothing). A trial's score is
    the mean over its 2 seeds x 4 episodes of the final greedy return, the same number when
    the batch holds only copies of its value (the same program; float32 tolerance)."""
    programs = []
    study = _study(0)
    _tune(runner, study, 6, on_batch=lambda report: programs.append(len(runner._programs)))
    assert programs == [3, 3]
    assert sorted(key[0] for key in runner._programs) == ["chunk", "evaluate", "init"]
    trials = sorted(study.trials, key=lambda t: t.number)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6
    for trial in (trials[0], trials[5]):
        value = np.float32(trial.params["learning_rate"])
        alone = runner.train(
            num_seeds=SEEDS,
            points={"learning_rate": np.full(BATCH, value)},
            guard=False,
            chunk_target=2,
            eval_episodes=EPISODES,
        )
        returns = alone.evaluation["returns"].reshape(BATCH, SEEDS, EPISODES)
        np.testing.assert_allclose(returns.mean(axis=(1, 2)), trial.value, rtol=1e-6)
        np.testing.assert_allclose(returns[0].mean(axis=1), trial.user_attrs["rlkit.seed_returns"])
    assert len(runner._programs) == 3


def test_the_median_pruner_prunes_trials_that_no_pruner_completes(runner):
    """Same sampler seed, so the same 8 learning rates: with no pruner all 8 complete; with the
    median pruner (after 2 completed trials) the first batch completes (nothing to compare
    with yet) and some of the second, worse than the first batch's median at some chunk, are
    PRUNED, their value their last report."""
    plain, pruned = _study(3), _study(3, optuna.pruners.MedianPruner(2, 0))
    _tune(runner, plain, 8)
    _tune(runner, pruned, 8)
    plain_trials = sorted(plain.trials, key=lambda t: t.number)
    pruned_trials = sorted(pruned.trials, key=lambda t: t.number)
    assert [t.params for t in plain_trials] == [t.params for t in pruned_trials]
    assert all(t.state == TrialState.COMPLETE for t in plain_trials)
    states = [t.state for t in pruned_trials]
    assert states[:BATCH] == [TrialState.COMPLETE] * BATCH
    assert TrialState.PRUNED in states[BATCH:]
    for trial in pruned_trials:
        if trial.state == TrialState.PRUNED:
            assert trial.value == trial.intermediate_values[max(trial.intermediate_values)]


def _environment(cache: Path) -> dict[str, str]:
    return {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
        "RLKIT_CACHE_DIR": str(cache),
        "PYTHONWARNINGS": "ignore",
    }


def _worker(
    tmp: Path, storage: str, trials: int, grace: float = 120.0, cache: str = "cache"
) -> subprocess.Popen:
    command = [sys.executable, *WORKER, "--trials", str(trials), "--storage", storage]
    command += ["--grace-period", str(grace), "--runs-dir", str(tmp / "runs")]
    return subprocess.Popen(
        command,
        env=_environment(tmp.parent / cache),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(worker: subprocess.Popen) -> str:
    output, _ = worker.communicate(timeout=240)
    assert worker.returncode == 0, output
    return output


def _trials(storage: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name="reinforce-CartPole-v1", storage=storage)
    return sorted(study.get_trials(), key=lambda t: t.number)


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Path:
    """A folder whose `cache` the worker processes share."""
    folder = tmp_path_factory.mktemp("workers") / "run"
    folder.mkdir()
    return folder


def test_two_workers_on_one_storage_run_exactly_the_studys_trials(shared):
    """Two processes on one sqlite study of 10 trials in batches of 4: every number 0..9
    appears once, finished; a trial numbered 10 or more can only be a surplus of the race for
    the last slot, told FAIL untrained; both workers trained."""
    storage = f"sqlite:///{shared / 'two.db'}"
    optuna.create_study(study_name="reinforce-CartPole-v1", storage=storage)  # tables, once
    workers = [_worker(shared, storage, 10) for _ in range(2)]
    for worker in workers:
        _finish(worker)
    trials = _trials(storage)
    slots = [t for t in trials if t.number < 10]
    assert [t.number for t in slots] == list(range(10))
    assert all(t.state == TrialState.COMPLETE for t in slots)
    for extra in trials[10:]:
        assert extra.state == TrialState.FAIL and extra.user_attrs["rlkit.surplus"]
    assert len({t.user_attrs["rlkit.worker"] for t in slots}) == 2
    run = next((shared / "runs").glob("tune-reinforce-CartPole-v1-*"))
    best = resolve(None, config_file=str(run / "best.yaml"))
    assert best.config.learning_rate == max(slots, key=lambda t: t.value).params["learning_rate"]


def test_a_killed_worker_loses_only_its_batch_which_a_restarted_worker_retries(shared):
    """SIGKILL while the first batch's 4 trials are RUNNING; a new worker (grace 2 s) finds them
    silent, retries them (attempt 2, same trial numbers and params) and finishes: exactly 6
    trials, numbered 0..5, all COMPLETE."""
    storage = f"sqlite:///{shared / 'kill.db'}"
    # The tables first: this test's reads would otherwise race the worker's creating them (each
    # opening of an RDB storage creates missing tables), which once made the worker fail.
    optuna.create_study(study_name="reinforce-CartPole-v1", storage=storage)
    # An empty compilation cache of its own: the batch's trials stay RUNNING while it compiles.
    first = _worker(shared, storage, 6, grace=2.0, cache="cold-cache")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and first.poll() is None:
        try:
            if sum(t.state == TrialState.RUNNING for t in _trials(storage)) == BATCH:
                break
        except sqlalchemy.exc.SQLAlchemyError:
            pass  # the worker is writing
        time.sleep(0.2)
    assert first.poll() is None, f"the worker ended before it was killed: {first.communicate()[0]}"
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed = {t.number: t.params for t in _trials(storage) if t.state == TrialState.RUNNING}
    assert sorted(killed) == [0, 1, 2, 3], "the worker was not killed mid-batch"
    _finish(_worker(shared, storage, 6, grace=2.0))
    trials = _trials(storage)
    assert [t.number for t in trials] == list(range(6))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    for number, params in killed.items():
        assert trials[number].user_attrs["rlkit.attempt"] == 2
        assert trials[number].params == params
    assert {t.user_attrs["rlkit.attempt"] for t in trials[BATCH:]} == {1}


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("learning_rate=loguniform:0:1e-2", "learning_rate: loguniform needs LOW > 0"),
        ("learning_rate=normal:1:2", "expected loguniform:LOW:HIGH"),
        ("learnig_rate=uniform:0.1:0.2", "unknown hyperparameter 'learnig_rate' (did you mean"),
        ("num_envs=uniform:1:8", "num_envs changes the compiled program (it is not traced)"),
        ("gamma=uniform:0.9:1.5", "gamma must be in [0, 1], got 1.5"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, param, message):
    storage = tmp_path / "study.db"
    argv = ["tune", "reinforce", "--env", "CartPole-v1", "--param", param]
    argv += ["--storage", f"sqlite:///{storage}", "--runs-dir", str(tmp_path / "runs")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_later_search_space_entry_replaces_an_earlier_one_for_the_same_field(runner):
    config = resolve("reinforce", env="CartPole-v1", steps=4096, sets=SETS).config
    space = search_space(config, [("gamma", "uniform:0.9:0.95"), ("gamma", "categorical:0.9,0.99")])
    assert list(space) == ["gamma"] and space["gamma"].choices == (0.9, 0.99)


def test_a_worker_that_loses_the_race_to_create_the_tables_opens_the_storage_again(
    tmp_path, monkeypatch
):
    """Workers started together on a new database race to create its tables; the loser's
    CREATE TABLE fails with "already exists" (the tables are there by then): opening again
    succeeds. Other errors are not retried."""
    from rlkit.cli import tune as tune_cli

    real, calls = optuna.storages.RDBStorage, []

    def racing(url, **kwargs):
        calls.append(url)
        if len(calls) == 1:
            real(url, **kwargs)  # the other worker: the tables now exist
            orig = Exception("table studies already exists")
            raise sqlalchemy.exc.OperationalError("CREATE TABLE studies", {}, orig)
        return real(url, **kwargs)

    monkeypatch.setattr(optuna.storages, "RDBStorage", racing)
    url = f"sqlite:///{tmp_path / 'new.db'}"
    storage = tune_cli._open_rdb_storage(url)
    assert len(calls) == 2 and storage.get_all_studies() == []

    def locked(url, **kwargs):
        calls.append(url)
        raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("database is locked"))

    monkeypatch.setattr(optuna.storages, "RDBStorage", locked)
    calls.clear()
    with pytest.raises(sqlalchemy.exc.OperationalError, match="locked"):
        tune_cli._open_rdb_storage(url)
    assert len(calls) == 1
