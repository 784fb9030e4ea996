"""`rlkit tune`: an Optuna search of an algorithm's traced hyperparameters, K trials per
compiled batch (rlkit.training.tune states the score, pruning, divergence and worker rules).

The whole input (algorithm, environment, config, search space, storage address) is checked
before anything is written. `--storage` is an RDB URL (`sqlite:///tune.db`, any SQLAlchemy
URL) or a journal file path (one machine, or a shared file system with working locks); without
it the study goes to `journal.log` in the run folder, and a rerun with `--storage` pointing
there resumes it. Any number of workers may share a storage and a `--study` name: together they
run exactly `--trials` trials. Each invocation writes `<runs-dir>/tune-ALGO-ENV-TIME/` with
study.json (every trial of the study when this worker ended) and best.yaml (the best trial's
run, usable as `rlkit train --config best.yaml`), and prints the best trial and a table.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from rlkit.cli import spec as specs
from rlkit.cli.errors import RunFailure, UsageError

__all__ = ["add_parser", "run"]

MAX_TRIALS = 1_000_000
MAX_BATCH = 65_536


def add_parser(sub: argparse._SubParsersAction) -> None:
    tune = sub.add_parser(
        "tune",
        help="search hyperparameters with Optuna, K trials per compiled batch",
        description="Optuna search of ALGO's traced hyperparameters on ENV: batches of --batch "
        "trials train together in one compiled program; workers sharing --storage and --study "
        "run --trials trials in all.",
    )
    tune.add_argument("algo", help="algorithm (see `rlkit algos`)")
    tune.add_argument("--env", help="environment (see `rlkit envs`)")
    tune.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=DIST",
        help="a searched hyperparameter: loguniform:LOW:HIGH, uniform:LOW:HIGH or "
        "categorical:A,B,... (traced hyperparameters only; see `rlkit algos ALGO`)",
    )
    tune.add_argument("--space", help="YAML file: {NAME: DIST} (--param entries replace its own)")
    tune.add_argument("--trials", type=int, default=16, help="trials of the study (default 16)")
    tune.add_argument("--batch", type=int, default=8, help="trials per batch (default 8)")
    tune.add_argument("--seeds", type=int, default=1, help="seeds per trial (default 1)")
    tune.add_argument(
        "--seed", type=int, help="training seed: every trial sees its keys (default 0)"
    )
    tune.add_argument("--steps", type=int, help="environment steps per seed (total_steps)")
    tune.add_argument("--preset", help="named preset of the algorithm, as the base config")
    tune.add_argument("--config", help="YAML run file (a run's config.yaml) as the base")
    tune.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a hyperparameter"
    )
    tune.add_argument(
        "--env-set", action="append", default=[], metavar="KEY=VALUE", help="environment parameter"
    )
    tune.add_argument("--storage", help="RDB URL (sqlite:///tune.db) or journal file path")
    tune.add_argument("--study", help="study name (default ALGO-ENV)")
    tune.add_argument("--sampler", choices=("tpe", "random"), default="tpe", help="default tpe")
    tune.add_argument("--sampler-seed", type=int, help="sampler seed (default: random)")
    tune.add_argument(
        "--pruner", choices=("median", "none"), default="median", help="default median"
    )
    tune.add_argument("--eval-episodes", type=int, default=32, help="final evaluation episodes")
    tune.add_argument(
        "--grace-period",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="a trial silent this long is its dead worker's: retried once (default 120)",
    )
    tune.add_argument("--runs-dir", default="runs", help="where run folders go (default runs)")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    from rlkit.training.tune import search_space

    specs.check_int("--trials", args.trials, 1, MAX_TRIALS)
    specs.check_int("--batch", args.batch, 1, MAX_BATCH)
    specs.check_int("--eval-episodes", args.eval_episodes, 1, specs.MAX_EVAL_EPISODES)
    if not (math.isfinite(args.grace_period) and args.grace_period > 0):
        raise UsageError(f"--grace-period must be a positive number, got {args.grace_period}")
    spec = specs.resolve_args(args, refuse="rlkit tune")  # its trials are vmapped
    entries = _space_file(args.space) if args.space else []
    for item in args.param:
        if "=" not in item:
            raise UsageError(f"--param expects NAME=DISTRIBUTION, got {item!r}")
        name, text = item.split("=", 1)
        entries.append((name.strip(), text.strip()))
    space = search_space(spec.config, entries)
    algo = spec.module.make(spec.config, spec.env, spec.env_params)
    return _search(args, argv, spec, algo, space)


def _space_file(path: str) -> list[tuple[str, str]]:
    """(name, distribution text) pairs of a YAML search-space file {NAME: DIST}."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise UsageError(f"cannot read --space {path}: {error.strerror}") from error
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise UsageError(f"--space {path} is not valid YAML") from error
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise UsageError(f"--space {path} must map names to distributions (loguniform:1e-4:1e-2)")
    return [(str(k), v) for k, v in data.items()]


def _search(args: Any, argv: list[str], spec: Any, algo: Any, space: dict) -> int:
    """Open the study and the run folder (a given storage first, so that a bad one leaves no
    folder), tune, write the results."""
    from rlkit.training.compile_cache import enable_compilation_cache
    from rlkit.training.devices import use_cpu_cores
    from rlkit.training.runner import Runner
    from rlkit.training.tune import tune

    use_cpu_cores()
    study_name = args.study or f"{spec.algo}-{spec.env_name}"
    if args.storage:
        storage_text = args.storage
        study = _open_study(storage_text, study_name, args, spec, space)
        folder = _run_folder(args.runs_dir, spec)
    else:
        folder = _run_folder(args.runs_dir, spec)
        storage_text = str(folder / "journal.log")
        study = _open_study(storage_text, study_name, args, spec, space)
    enable_compilation_cache()
    print(
        f"rlkit: tuning {spec.algo} on {spec.env_name}: study {study_name!r} in {storage_text}, "
        f"{args.trials} trials in batches of {args.batch} x {spec.seeds} seed(s) -> {folder}",
        file=sys.stderr,
    )

    def said(report: Any) -> None:
        shown = ", ".join(
            f"#{n} {s.name.lower()}" + (f" {v:.1f}" if math.isfinite(v) else "")
            for n, s, v in zip(report.numbers, report.states, report.scores, strict=True)
        )
        print(
            f"rlkit: batch of {len(report.numbers)} in {report.seconds:.1f} s: {shown}",
            file=sys.stderr,
        )

    start = time.perf_counter()
    tune(
        Runner(algo),
        study,
        space,
        trials=args.trials,
        batch=args.batch,
        num_seeds=spec.seeds,
        seed=spec.seed,
        eval_episodes=args.eval_episodes,
        chunk_target=None,
        grace_period=args.grace_period,
        on_batch=said,
    )
    wall = time.perf_counter() - start
    return _write_results(folder, study, spec, argv, wall)


def _open_rdb_storage(url: str, attempts: int = 5) -> Any:
    """Optuna's RDBStorage on `url`. Opening one creates the missing tables, so workers started
    together on a new database race to create them and the loser's CREATE TABLE fails ("table
    ... already exists"); the tables then exist, and opening again succeeds: up to `attempts`
    tries, 0.1-0.5 s apart, for that error only."""
    import optuna
    import sqlalchemy.exc

    # sqlite: wait up to a minute for another worker's write lock (its default: 5 s)
    wait = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    attempt = 1
    while True:
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=wait)
        except sqlalchemy.exc.OperationalError as error:
            if "already exists" not in str(error) or attempt == attempts:
                raise
            time.sleep(0.1 * attempt)
            attempt += 1


def _open_study(storage_text: str, name: str, args: Any, spec: Any, space: dict) -> Any:
    """The study `name` in the storage, created if new (maximise); UsageError when it cannot
    be opened or was made for another algorithm, environment, base config or space."""
    import optuna

    from rlkit.core.config import config_to_dict

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        if "://" in storage_text:
            storage: Any = _open_rdb_storage(storage_text)
        else:
            from optuna.storages.journal import JournalFileBackend

            storage = optuna.storages.JournalStorage(JournalFileBackend(storage_text))
    except Exception as error:  # SQLAlchemy and OS errors: one line each
        raise UsageError(
            f"cannot open --storage {storage_text}: {error}".splitlines()[0]
        ) from error
    seed = args.sampler_seed
    sampler = (
        optuna.samplers.TPESampler(seed=seed, constant_liar=True)
        if args.sampler == "tpe"
        else optuna.samplers.RandomSampler(seed=seed)
    )
    pruner = (
        optuna.pruners.MedianPruner() if args.pruner == "median" else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction="maximize",
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    made_for = json.loads(
        json.dumps(
            {
                "algo": spec.algo,
                "env": spec.env_name,
                "env_overrides": spec.env_overrides,
                "seeds": spec.seeds,
                "seed": spec.seed,
                "config": {k: v for k, v in config_to_dict(spec.config).items() if k not in space},
                "space": {k: repr(v) for k, v in space.items()},
            }
        )
    )
    recorded = study.user_attrs.get("rlkit.made_for")
    if recorded is None:
        study.set_user_attr("rlkit.made_for", made_for)
    elif recorded != made_for:
        differ = sorted(k for k in made_for if made_for[k] != recorded.get(k))
        raise UsageError(
            f"study {name!r} in {storage_text} was made for another run ({', '.join(differ)} "
            "differ); give another --study"
        )
    return study


def _run_folder(runs_dir: str, spec: Any) -> Path:
    from rlkit.report.runs import RunFolderError, create_run_folder

    default = f"tune-{spec.algo}-{spec.env_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        return create_run_folder(runs_dir, None, default)
    except RunFolderError as error:
        raise UsageError(str(error)) from error


def _write_results(folder: Path, study: Any, spec: Any, argv: list[str], wall: float) -> int:
    """study.json (every trial), best.yaml (the best trial as a run file), the table and the
    best trial on stdout; RunFailure when no trial completed."""
    import yaml
    from optuna.trial import TrialState

    from rlkit.core.config import config_from_dict, config_to_dict

    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    rows = [_trial_row(t) for t in trials]
    try:
        (folder / "study.json").write_text(
            json.dumps({"study": study.study_name, "wall_seconds": wall, "trials": rows}, indent=1)
        )
        completed = [t for t in trials if t.state == TrialState.COMPLETE]
        if completed:
            best = max(completed, key=lambda t: t.value)
            config = config_from_dict(type(spec.config), best.params, base=spec.config)
            record = spec.record("rlkit " + " ".join(argv))
            record["config"] = config_to_dict(config)
            (folder / "best.yaml").write_text(yaml.safe_dump(record, sort_keys=False))
    except OSError as error:
        raise RunFailure(f"cannot write the results in {folder}: {error.strerror}") from error
    print(f"{'trial':>5}  {'state':<8}  {'score':>9}  attempt  params")
    for row in rows:
        score = "" if row["value"] is None else f"{row['value']:.2f}"
        params = ", ".join(f"{k}={v:.4g}" for k, v in row["params"].items())
        attempt = row["user_attrs"].get("rlkit.attempt", "")
        print(f"{row['number']:>5}  {row['state']:<8}  {score:>9}  {attempt!s:>7}  {params}")
    if not completed:
        raise RunFailure(f"no trial of study {study.study_name!r} completed; see {folder}")
    params = ", ".join(f"{k}={v:.6g}" for k, v in best.params.items())
    print(f"best: trial {best.number}, score {best.value:.3f}: {params}")
    print(
        f"rlkit: {wall:.1f} s; results in {folder} (train the best: "
        f"rlkit train --config {folder / 'best.yaml'})",
        file=sys.stderr,
    )
    return 0


def _trial_row(trial: Any) -> dict[str, Any]:
    """A trial as plain JSON: number, state, value, params, intermediate values, user attrs."""
    return {
        "number": trial.number,
        "state": trial.state.name,
        "value": trial.value,
        "params": trial.params,
        "intermediate_values": {str(k): v for k, v in trial.intermediate_values.items()},
        "user_attrs": trial.user_attrs,
        "datetime_start": None if trial.datetime_start is None else str(trial.datetime_start),
        "datetime_complete": (
            None if trial.datetime_complete is None else str(trial.datetime_complete)
        ),
    }
