"""Hyperparameter search on Optuna: K trials at a time, vmapped in one compiled program.

Batch. A worker asks Optuna for K trials, stacks their values as the runner's `points`
(name -> [K]) and trains K * num_seeds members in one program (`Runner.train(points=...)`,
member m = p * num_seeds + s). Every batch has K points, the last one padded with copies of its
first trial (whose padded results are dropped), so the runner compiles once for the whole
search. Only traced hyperparameters (`hp(..., traced=True)`) can be searched: a shape-changing
one would need a compilation per value, so `search_space` refuses it, naming the field.

Score. Trial p's score is the mean over its seeds s and the evaluation episodes e of the final
deterministic evaluation return, (1 / (S E)) sum_{s,e} R[p * S + s, e], after the full budget;
the study maximises it. Its per-seed means are kept as the user attribute `rlkit.seed_returns`.

Pruning. After every chunk of iterations, trial p reports (`trial.report(v, step)`, step = the
iterations done) v = the mean over its seeds and the chunk's iterations of `episode_return`
(iterations where no episode ended, NaN, are left out; a chunk with none reports nothing), and
asks the pruner. A vmapped batch cannot drop a member mid-program: a pruned trial stops
reporting, keeps training (that compute is the accepted cost) and is told PRUNED at the end of
the batch, its value being its last report; when every trial of a batch is pruned, the batch
stops at that chunk.

Divergence. Training runs with `guard=False`, so one diverging trial does not end its batch. A
trial whose loss or gradient norm (the metrics rlkit.training.guard checks) is not finite at
any iteration of any of its seeds, whose policy parameters are not finite at the end, or whose
score is not finite, is told FAIL with the user attribute `rlkit.diverged`.

Workers sharing a storage. The study's trials numbered 0 .. N-1 are its N slots. A worker asks
one trial at a time, and only while a slot is free: the study holds fewer than N trials, or a
WAITING one numbered below N (a retry, below). The storage numbers trials atomically, so no two
trials share a number. Two workers can both see the last free slot and both ask; the one whose
trial is numbered N or more tells it FAIL at once with the user attribute `rlkit.surplus`,
untrained. A worker ends when no slot is free and no trial below N is RUNNING or WAITING; while
another worker's trials run it waits (they finish, or go stale and are retried). Guarantee:
when a worker ends, each slot below N is finished (COMPLETE, PRUNED or FAIL) and recorded once;
surplus trials appear only in that race (at most one per racing worker and free slot) and
carry no score.

Heartbeats. A worker writes time.time() into the user attribute `rlkit.heartbeat` of each trial
it runs every grace_period / 4 seconds (a thread, so compiling counts as alive). Before it
asks, a worker reclaims the RUNNING trials whose last heartbeat (or start, if later) is older
than grace_period: a trial on its first attempt goes back to WAITING and is trained again, with
its params, by whichever worker asks next (`rlkit.attempt` counts attempts); a trial that was
already retried, or a surplus one, is told FAIL with `rlkit.stale`. So a killed worker loses at
most its current batch, which is retried once. This is Optuna's heartbeat/RetryFailedTrial rule
done with user attributes, so that it works for the journal storage too and keeps the trial's
number (Optuna's retry adds a new trial, which would break the slot count). It assumes the
workers' clocks agree to well within grace_period. A worker that was only slow (paused longer
than grace_period) may have its trial retried by another: the trial is still recorded once,
since the storage refuses the second tell (`skip_if_finished`), but it was trained twice.
"""

from __future__ import annotations

import difflib
import math
import os
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any

import jax
import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from optuna.trial import FrozenTrial, Trial, TrialState

from rlkit.core.config import ConfigError, config_from_dict
from rlkit.training.guard import guarded_metric
from rlkit.training.runner import Runner

__all__ = [
    "MAX_ATTEMPTS",
    "BatchReport",
    "chunk_values",
    "diverged_trials",
    "parse_distribution",
    "search_space",
    "trial_scores",
    "tune",
]

#: Attempts a trial gets: a trial whose worker stopped twice is told FAIL.
MAX_ATTEMPTS = 2

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)

# -- the search space --------------------------------------------------------------------------


def parse_distribution(name: str, text: str) -> BaseDistribution:
    """An Optuna distribution from `loguniform:LOW:HIGH`, `uniform:LOW:HIGH` or
    `categorical:A,B,...` (numbers); ConfigError naming `name` otherwise."""
    kind, _, rest = str(text).partition(":")
    try:
        if kind in ("uniform", "loguniform"):
            low, high = (float(x) for x in rest.split(":"))
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ConfigError(f"{name}: {kind} needs finite LOW < HIGH, got {text!r}")
            if kind == "loguniform" and low <= 0:
                raise ConfigError(f"{name}: loguniform needs LOW > 0, got {text!r}")
            return FloatDistribution(low, high, log=kind == "loguniform")
        if kind == "categorical":
            choices = tuple(float(x) for x in rest.split(","))
            if len(set(choices)) != len(choices) or not all(map(math.isfinite, choices)):
                raise ConfigError(f"{name}: categorical needs distinct finite numbers: {text!r}")
            return CategoricalDistribution(choices)
    except ValueError as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"{name}: cannot read the numbers of {text!r}") from error
    raise ConfigError(
        f"{name}: expected loguniform:LOW:HIGH, uniform:LOW:HIGH or categorical:A,B,..., "
        f"got {text!r}"
    )


def search_space(config: Any, specs: Iterable[tuple[str, str]]) -> dict[str, BaseDistribution]:
    """name -> distribution for `specs` (name, text) pairs (a later name replaces an earlier),
    checked against `config` (a Config instance): ConfigError for an unknown field, one that is
    not traced, or a range reaching outside the field's own (each bound, each choice is set on
    the config and validated)."""
    by_name = {f.name: f for f in fields(config)}
    traced = sorted(n for n, f in by_name.items() if f.metadata.get("traced"))
    space: dict[str, BaseDistribution] = {}
    for name, text in specs:
        if name not in by_name:
            close = difflib.get_close_matches(name, list(by_name), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"unknown hyperparameter {name!r}{hint}")
        if name not in traced:
            raise ConfigError(
                f"{name} changes the compiled program (it is not traced), so a batch cannot "
                f"search it; searchable: {', '.join(traced)}"
            )
        distribution = parse_distribution(name, text)
        for value in _extremes(distribution):
            config_from_dict(type(config), {name: value}, base=config)
        space[name] = distribution
    if not space:
        raise ConfigError("nothing to search: give at least one --param NAME=DISTRIBUTION")
    return space


def _extremes(distribution: BaseDistribution) -> tuple[float, ...]:
    if isinstance(distribution, CategoricalDistribution):
        return tuple(distribution.choices)
    return (distribution.low, distribution.high)


# -- one batch's numbers (pure) ----------------------------------------------------------------


def trial_scores(returns: np.ndarray, num_points: int, num_seeds: int) -> np.ndarray:
    """Evaluation returns [P * S, E] (member p * S + s) -> per-seed means [P, S]; a trial's
    score is their mean over seeds."""
    returns = np.asarray(returns, np.float64)
    return returns.reshape(num_points, num_seeds, -1).mean(axis=2)


def chunk_values(episode_return: np.ndarray, num_points: int, num_seeds: int) -> np.ndarray:
    """A chunk's episode_return [P * S, L] -> [P]: each trial's mean over its seeds and the
    chunk's iterations, NaN entries (no episode ended) left out; NaN if all are."""
    values = np.asarray(episode_return, np.float64).reshape(num_points, num_seeds, -1)
    finite = np.isfinite(values)
    total = np.where(finite, values, 0.0).sum(axis=(1, 2))
    count = finite.sum(axis=(1, 2))
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def diverged_trials(
    metrics: dict[str, np.ndarray], params_ok: np.ndarray, num_points: int, num_seeds: int
) -> np.ndarray:
    """bool [P]: some seed of the trial had a non-finite guarded metric (losses, grad_norm;
    metrics [P * S, iterations]) or non-finite policy parameters at the end (params_ok
    [P * S])."""
    bad = ~np.asarray(params_ok, bool).reshape(num_points, num_seeds).all(axis=1)
    for name, values in metrics.items():
        if guarded_metric(name):
            finite = np.isfinite(np.asarray(values, np.float64))
            bad |= ~finite.reshape(num_points, -1).all(axis=1)
    return bad


# -- the search --------------------------------------------------------------------------------


@dataclass
class BatchReport:
    """What one batch did: its trials' numbers, their end states, scores (NaN unless
    COMPLETE) and the batch's wall seconds."""

    numbers: list[int]
    states: list[TrialState]
    scores: list[float]
    seconds: float


def tune(
    runner: Runner,
    study: optuna.Study,
    space: dict[str, BaseDistribution],
    *,
    trials: int,
    batch: int,
    num_seeds: int,
    seed: int = 0,
    eval_episodes: int = 32,
    chunk_target: int | None = None,
    grace_period: float = 120.0,
    on_batch: Callable[[BatchReport], None] | None = None,
) -> list[BatchReport]:
    """Run batches of `batch` trials of `study` (maximised) until its `trials` slots are all
    finished (module docstring: score, pruning, divergence, slots and heartbeats): when no slot
    is free but another worker's trials still run, it waits for them to finish or go stale (and
    then retries them). Returns this worker's batches. Every batch trains `batch` * `num_seeds`
    members with seed `seed`'s keys 0..S-1 (the same seeds for every trial), so one
    compilation serves every batch."""
    if trials < 1 or batch < 1 or num_seeds < 1:
        raise ValueError(
            f"trials, batch and seeds must be >= 1, got {trials}, {batch}, {num_seeds}"
        )
    worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    reports = []
    while True:
        _reclaim_stale(study, trials, grace_period)
        claimed = _claim(study, space, batch, trials, worker)
        if not claimed:
            if not _others_running(study, trials):
                return reports
            time.sleep(min(grace_period / 4, 1.0))  # another worker's trials: done or stale
            continue
        start = time.perf_counter()
        with _Heartbeat(claimed, grace_period / 4):
            states, scores = _run_batch(
                runner,
                study,
                claimed,
                list(space),
                batch,
                num_seeds,
                seed,
                eval_episodes,
                chunk_target,
            )
        report = BatchReport(
            [t.number for t in claimed], states, scores, time.perf_counter() - start
        )
        reports.append(report)
        if on_batch is not None:
            on_batch(report)


def _claim(
    study: optuna.Study, space: dict[str, BaseDistribution], k: int, trials: int, worker: str
) -> list[Trial]:
    """Up to k trials asked one at a time while a slot is free; a surplus trial (numbered
    `trials` or more, lost race) is told FAIL untrained and ends the claim."""
    claimed: list[Trial] = []
    while len(claimed) < k and _slot_free(study, trials):
        trial = study.ask(space)
        if trial.number >= trials:
            trial.set_user_attr("rlkit.surplus", True)
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            break
        trial.set_user_attr("rlkit.attempt", int(trial.user_attrs.get("rlkit.attempt", 0)) + 1)
        trial.set_user_attr("rlkit.worker", worker)
        trial.set_user_attr("rlkit.heartbeat", time.time())
        claimed.append(trial)
    return claimed


def _others_running(study: optuna.Study, trials: int) -> bool:
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
    return any(t.number < trials for t in running)


def _slot_free(study: optuna.Study, trials: int) -> bool:
    all_trials = study.get_trials(deepcopy=False)
    waiting = any(t.state == TrialState.WAITING and t.number < trials for t in all_trials)
    return len(all_trials) < trials or waiting


def _last_beat(trial: FrozenTrial) -> float:
    """The latest of the trial's heartbeat and its start (a retried trial keeps the heartbeat
    of its previous attempt until its new worker writes one)."""
    start = trial.datetime_start.timestamp() if trial.datetime_start is not None else 0.0
    return max(float(trial.user_attrs.get("rlkit.heartbeat", 0.0)), start)


def _reclaim_stale(study: optuna.Study, trials: int, grace_period: float) -> None:
    """RUNNING trials silent for more than grace_period: back to WAITING on their first
    attempt, else (or when surplus) FAIL with `rlkit.stale`."""
    # Optuna has no public accessor for a study's storage; its own fail_stale_trials reads it so.
    storage = study._storage
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        latest = storage.get_trial(frozen._trial_id)  # re-read: narrows the race with a popper
        if latest.state != TrialState.RUNNING or time.time() - _last_beat(latest) <= grace_period:
            continue
        retry = latest.number < trials and latest.user_attrs.get("rlkit.attempt", 1) < MAX_ATTEMPTS
        try:
            if not retry:
                storage.set_trial_user_attr(latest._trial_id, "rlkit.stale", True)
            storage.set_trial_state_values(
                latest._trial_id, TrialState.WAITING if retry else TrialState.FAIL
            )
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker finished or failed it meanwhile


class _Heartbeat:
    """While the block runs, writes time.time() to each trial's `rlkit.heartbeat` every
    `interval` seconds from a thread (a failed write is skipped: the next one may succeed)."""

    def __init__(self, trials: list[Trial], interval: float) -> None:
        self.trials, self.interval = trials, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self.stop.wait(self.interval):
            for trial in self.trials:
                try:
                    trial.set_user_attr("rlkit.heartbeat", time.time())
                except Exception:  # a finished trial or a busy storage
                    continue

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


class _Reporter:
    """The runner's sink and should_stop for one batch: reports chunk values, asks the pruner,
    and says stop when every trial is pruned."""

    def __init__(self, trials: list[Trial], num_points: int, num_seeds: int) -> None:
        self.trials, self.num_points, self.num_seeds = trials, num_points, num_seeds
        self.pruned = [False] * len(trials)

    def sink(self, first_iteration: int, metrics: dict[str, np.ndarray]) -> None:
        returns = metrics.get("episode_return")
        if returns is None:
            return
        step = first_iteration + returns.shape[1]
        values = chunk_values(returns, self.num_points, self.num_seeds)
        for i, trial in enumerate(self.trials):
            if self.pruned[i] or not np.isfinite(values[i]):
                continue
            with warnings.catch_warnings():  # a retried trial has reported this step before
                warnings.simplefilter("ignore", UserWarning)
                trial.report(float(values[i]), step)
            self.pruned[i] = trial.should_prune()

    def all_pruned(self) -> bool:
        return all(self.pruned)


def _run_batch(
    runner: Runner,
    study: optuna.Study,
    trials: list[Trial],
    names: list[str],
    k: int,
    num_seeds: int,
    seed: int,
    eval_episodes: int,
    chunk_target: int | None,
) -> tuple[list[TrialState], list[float]]:
    """Train `trials` (padded to k points) in one program, tell each; (states, scores)."""
    values = [[float(t.params[n]) for n in names] for t in trials]
    values += [values[0]] * (k - len(trials))
    points = {n: np.asarray([v[i] for v in values], np.float32) for i, n in enumerate(names)}
    reporter = _Reporter(trials, k, num_seeds)
    result = runner.train(
        num_seeds=num_seeds,
        seed=seed,
        points=points,
        guard=False,
        sinks=[reporter.sink],
        should_stop=reporter.all_pruned,
        chunk_target=chunk_target,
        eval_episodes=eval_episodes,
    )
    if result.completed:
        per_seed = trial_scores(result.evaluation["returns"], k, num_seeds)
    else:
        per_seed = np.full((k, num_seeds), np.nan)
    params_ok = _params_finite(runner, result.state)
    diverged = diverged_trials(result.metrics, params_ok, k, num_seeds)
    states, scores = [], []
    for i, trial in enumerate(trials):
        score = float(per_seed[i].mean())
        if reporter.pruned[i]:
            state, value = TrialState.PRUNED, None
        elif diverged[i] or not math.isfinite(score):
            trial.set_user_attr("rlkit.diverged", True)
            state, value = TrialState.FAIL, None
        else:
            trial.set_user_attr("rlkit.seed_returns", per_seed[i].tolist())
            state, value = TrialState.COMPLETE, score
        study.tell(trial, value, state=state, skip_if_finished=True)
        states.append(state)
        scores.append(score if state == TrialState.COMPLETE else math.nan)
    return states, scores


def _params_finite(runner: Runner, state: Any) -> np.ndarray:
    """bool [members]: every floating-point policy parameter of each member is finite."""
    leaves = jax.tree.leaves(jax.vmap(runner.algo.policy_params)(state))
    members = leaves[0].shape[0]
    ok = np.ones(members, bool)
    for leaf in jax.device_get(leaves):
        if np.issubdtype(leaf.dtype, np.floating):
            ok &= np.isfinite(leaf.reshape(members, -1)).all(axis=1)
    return ok
