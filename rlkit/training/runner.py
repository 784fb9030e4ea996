"""The runner: compiles `update` into chunks of K iterations and vmaps them over seeds.

One compiled program runs K iterations (`lax.fori_loop`) for every seed at once (`vmap`); the
TrainState is donated, so buffers are updated in place. Between chunks the host receives the
per-iteration metrics ([seeds, K] scalars), hands them to the sinks and advances the progress
bar. The iteration count of a chunk is a runtime argument, so a last, shorter chunk reuses the
same compilation. With several devices (accelerators, or CPU cores exposed by
`rlkit.training.devices.use_cpu_cores`) the seed axis is split over them
(`rlkit.training.devices.seed_sharding`).

A `Runner` owns the compiled programs of one algorithm (init, chunk, evaluation), so training
it again with the same shapes (tests, repeated benchmark runs, sweeps of traced hparams) does
not compile again; `train(algo, ...)` is one run of a fresh Runner. Nothing is cached in the
module: a program lives as long as the runner that compiled it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rlkit.core.algorithm import Algorithm
from rlkit.training.devices import seed_sharding
from rlkit.training.distributed import to_host
from rlkit.training.evaluation import evaluate
from rlkit.training.guard import Diverged, check_metrics, params_finite

__all__ = [
    "RunResult",
    "Runner",
    "member_hparams",
    "member_keys",
    "over_seeds",
    "seed_keys",
    "stack_hparams",
    "train",
]

ChunkSink = Callable[[int, dict[str, np.ndarray]], None]


@dataclass
class RunResult:
    """What a training run produced.

    state: the last TrainState (leaves with a leading seed axis).
    metrics: per-iteration metrics of the iterations this call ran, each [seeds, iterations].
    evaluation: final deterministic evaluation, returns/lengths [seeds, episodes]; empty when
        the run stopped early.
    timing: compile_seconds, train_seconds, env_steps (per seed, this call), steps_per_second
        (all seeds), devices (how many devices the seeds were split over).
    iteration: iterations done, counted from the start of the run (a resumed run included).
    completed: whether the whole budget was trained (False when `should_stop` ended it).
    """

    state: Any
    metrics: dict[str, np.ndarray]
    evaluation: dict[str, np.ndarray]
    timing: dict[str, float] = field(default_factory=dict)
    iteration: int = 0
    completed: bool = True


def over_seeds(fn: Callable, num_seeds: int, in_axes: tuple) -> Callable:
    """`jax.vmap(fn, in_axes)` over the seed axis; with one seed, the same shapes without vmap,
    so host environments (whose io_callbacks cannot be vmapped) train too."""
    if num_seeds > 1:
        return jax.vmap(fn, in_axes=in_axes)

    def single(*args: Any) -> Any:
        args = [
            jax.tree.map(lambda x: x[0], arg) if axis == 0 else arg
            for arg, axis in zip(args, in_axes, strict=True)
        ]
        return jax.tree.map(lambda x: x[None], fn(*args))

    return single


def _chunk_program(
    algo: Algorithm, capacity: int, num_seeds: int
) -> Callable[..., tuple[Any, dict, jax.Array]]:
    """A compiled program running `n <= capacity` iterations (n is a runtime argument, so the
    last, shorter chunk reuses the same compilation); metrics come back as [seeds, capacity]
    with the first n filled, with bool [seeds]: the policy parameters at the end are finite."""
    finite = params_finite(algo.policy_params)

    def run(state: Any, n: jax.Array) -> tuple[Any, dict, jax.Array]:
        metric_shapes = jax.eval_shape(algo.update, state)[1]
        empty = jax.tree.map(lambda m: jnp.zeros((capacity, *m.shape), m.dtype), metric_shapes)

        def body(i: jax.Array, carry: tuple) -> tuple:
            state, history = carry
            state, metrics = algo.update(state)
            history = jax.tree.map(lambda h, m: h.at[i].set(m), history, metrics)
            return state, history

        state, history = jax.lax.fori_loop(0, n, body, (state, empty))
        return state, history, finite(state)

    return jax.jit(over_seeds(run, num_seeds, (0, None)), donate_argnums=0)


class Runner:
    """Trains one algorithm, compiling each of its programs once per distinct shape and
    placement, and keeping them for later runs.

        runner = Runner(algo)
        a = runner.train(num_seeds=4)            # compiles init, chunk and evaluation
        b = runner.train(num_seeds=4, seed=1)    # compiles nothing

    A program is keyed by what its compilation depends on: the seed count and its sharding,
    the shapes and dtypes of its arguments (the hparams' for init, the TrainState's for the
    others), the chunk length and the episode count; traced hparam values may differ. The
    programs are not bounded: one runner serves one algorithm, so it holds one program per
    distinct (seed count, chunk length, episode count) it was asked for, a handful; they go
    with the runner.
    """

    def __init__(self, algo: Algorithm) -> None:
        self.algo = algo
        self._programs: dict[tuple, Any] = {}

    def train(
        self,
        *,
        num_seeds: int = 1,
        seed: int = 0,
        hparams: dict[str, Any] | None = None,
        chunk_target: int | None = None,
        sinks: Sequence[ChunkSink] = (),
        progress: bool = False,
        eval_episodes: int = 32,
        start: tuple[int, Any] | None = None,
        on_chunk: Callable[[int, Any], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        guard: bool = True,
        points: dict[str, Any] | None = None,
        first_seed: int = 0,
    ) -> RunResult:
        """Train `num_seeds` independent copies of the algorithm for its configured budget.

        Seed i starts from `fold_in(PRNGKey(seed), i)`, so seed i is the same run whatever
        `num_seeds` is (paired across the arms of an ablation). `hparams` defaults to the
        config's.

        points: a sweep of traced hyperparameters, name -> values [P] (the grid's points, each
            overriding `hparams`). Then P * num_seeds members train in the same one program:
            member m = p * num_seeds + s is grid point p with seed s's key, and every leading
            axis below ("seeds") is the member axis [P * num_seeds].
        first_seed: the seeds are seed indices first_seed .. first_seed + num_seeds - 1 (keys
            fold_in(PRNGKey(seed), index)), so a slice of a many-seed run, or one seed of it,
            runs on its own (separate processes, hosts of a jax.distributed run).

        Chunks hold `chunk_target` iterations (default: a twentieth of the run). Each
        sink is called as sink(first_iteration, metrics), metrics [seeds, K], after every chunk.

        start: (iteration, state) to continue a run from (a restored checkpoint: the state
            after `iteration` iterations) instead of initialising one.
        on_chunk(iteration, state): after every chunk that passed the guard, with the
            iterations done so far, before `state` is donated to the next chunk (the moment to
            save a checkpoint: the call must have read the state when it returns).
        should_stop(): asked after every chunk; True ends the run there (completed False, no
            evaluation).
        guard: raise rlkit.training.guard.Diverged, after that chunk's sinks have seen its
            metrics, when a loss, a gradient norm or a policy parameter is not finite.
        """
        if num_seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {num_seeds}")
        algo = self.algo
        hparams = algo.hparams if hparams is None else hparams
        num_iterations = algo.num_iterations
        if chunk_target is None:
            chunk_target = max(1, math.ceil(num_iterations / 20))
        k = max(1, min(chunk_target, num_iterations))

        num_points = 1 if points is None else _num_points(points)
        members = num_points * num_seeds
        sharding = seed_sharding(members)
        compile_start = time.perf_counter()
        if start is None:
            iteration = 0
            state = self._initial_state(num_seeds, seed, hparams, sharding, points, first_seed)
        else:
            iteration, state = start
        chunk = self._program(
            ("chunk", k, members, sharding, _signature(state)),
            lambda: _chunk_program(algo, k, members).lower(state, jnp.int32(k)).compile(),
        )
        compile_seconds = time.perf_counter() - compile_start

        first = iteration
        bar = _progress_bar(num_iterations * algo.steps_per_iteration) if progress else None
        if bar is not None:
            bar.update(iteration * algo.steps_per_iteration)
        history: list[dict[str, np.ndarray]] = []
        train_start = time.perf_counter()
        while iteration < num_iterations:
            length = min(k, num_iterations - iteration)
            state, metrics, finite = chunk(state, jnp.int32(length))
            metrics, finite = to_host((metrics, finite))  # gathered from every process
            metrics = {name: value[:, :length] for name, value in metrics.items()}
            for sink in sinks:
                sink(iteration, metrics)
            history.append(metrics)
            if guard:
                _guard(iteration, metrics, np.asarray(finite))
            iteration += length
            if on_chunk is not None:
                on_chunk(iteration, state)
            if bar is not None:
                _advance(bar, length * algo.steps_per_iteration, metrics, members, train_start)
            if should_stop is not None and should_stop():
                break
        jax.block_until_ready(state)
        train_seconds = time.perf_counter() - train_start
        if bar is not None:
            bar.close()

        names = history[0] if history else {}
        metrics = {name: np.concatenate([m[name] for m in history], axis=1) for name in names}
        completed = iteration >= num_iterations
        evaluation = (
            self.final_evaluation(
                state, seed, num_seeds, eval_episodes, num_points=num_points, first_seed=first_seed
            )
            if completed
            else {}
        )
        env_steps = (iteration - first) * algo.steps_per_iteration
        timing = {
            "compile_seconds": compile_seconds,
            "train_seconds": train_seconds,
            "env_steps": float(env_steps),
            "steps_per_second": env_steps * members / max(train_seconds, 1e-9),
            "devices": 1 if sharding is None else sharding.mesh.size,
        }
        return RunResult(state, metrics, evaluation, timing, iteration, completed)

    def abstract_state(self, num_seeds: int, hparams: dict[str, Any] | None = None) -> Any:
        """The TrainState of `num_seeds` seeds as jax.ShapeDtypeStructs (leaves [seeds, ...])
        carrying the sharding `train` places it with: the target a checkpoint is restored
        into. Nothing is compiled or run."""
        hparams = self.algo.hparams if hparams is None else hparams
        keys = jax.ShapeDtypeStruct((num_seeds, 2), jnp.uint32)
        shapes = jax.eval_shape(over_seeds(self.algo.init, num_seeds, (0, None)), keys, hparams)
        sharding = seed_sharding(num_seeds)
        if sharding is None:
            sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        return jax.tree.map(
            lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes
        )

    def _initial_state(
        self,
        num_seeds: int,
        seed: int,
        hparams: dict,
        sharding: Any,
        points: dict[str, Any] | None = None,
        first_seed: int = 0,
    ) -> Any:
        """The members' fresh TrainStates (leaves [members, ...]), placed by `sharding`: one
        per seed, or with `points` one per (point, seed) (see `train`)."""
        if points is None:
            members, axes = num_seeds, (0, None)
            keys = seed_keys(seed, num_seeds, first_seed)
        else:
            num_points = _num_points(points)
            members, axes = num_points * num_seeds, (0, 0)
            keys = member_keys(seed, num_seeds, num_points, first_seed)
            hparams = member_hparams(hparams, points, num_seeds)
        keys = _place(keys, sharding)
        init = self._program(
            ("init", members, axes, sharding, _signature(hparams)),
            lambda: (
                jax.jit(over_seeds(self.algo.init, members, axes), out_shardings=sharding)
                .lower(keys, hparams)
                .compile()
            ),
        )
        return init(keys, hparams)

    def final_evaluation(
        self,
        state: Any,
        seed: int,
        num_seeds: int,
        episodes: int,
        deterministic: bool = True,
        num_points: int = 1,
        first_seed: int = 0,
    ) -> dict[str, np.ndarray]:
        """Evaluation of every seed's policy in `state` (leaves [seeds, ...]) from keys
        fold_in(seed_keys(seed, num_seeds, first_seed)[i], 1): returns/lengths [seeds, episodes];
        deterministic actions unless `deterministic` is False. A host environment has a fixed
        number of copies C: it evaluates in ceil(episodes / C) rounds of one episode per copy
        (round r > 0 from the keys folded with r) and keeps the first `episodes`. For a sweep's
        state (leaves [points * seeds, ...]) pass `num_points`: member p * num_seeds + s
        evaluates with seed s's key."""
        algo = self.algo
        members = num_points * num_seeds
        sharding = seed_sharding(members)
        keys = _place(
            jax.vmap(lambda k: jax.random.fold_in(k, 1))(
                member_keys(seed, num_seeds, num_points, first_seed)
            ),
            sharding,
        )
        per_round = getattr(algo.env, "num_envs", episodes)  # a host env's own copies
        rounds = -(-episodes // per_round)

        def one(train_state: Any, key: jax.Array) -> dict[str, jax.Array]:
            params = algo.policy_params(train_state)
            return evaluate(
                algo.env, algo.env_params, algo.act, params, key, per_round, deterministic
            )

        program = self._program(
            ("evaluate", per_round, deterministic, members, sharding, _signature(state)),
            lambda: jax.jit(over_seeds(one, members, (0, 0))).lower(state, keys).compile(),
        )
        results = [to_host(program(state, keys))]
        for r in range(1, rounds):
            round_keys = jax.vmap(lambda k, r=r: jax.random.fold_in(k, r))(keys)
            results.append(to_host(program(state, round_keys)))
        return {
            name: np.concatenate([result[name] for result in results], axis=1)[:, :episodes]
            for name in results[0]
        }

    def _program(self, key: tuple, build: Callable[[], Any]) -> Any:
        """The compiled program stored under `key`; `build()` lowers and compiles it the first
        time."""
        if key not in self._programs:
            self._programs[key] = build()
        return self._programs[key]


def train(algo: Algorithm, **options: Any) -> RunResult:
    """One run of `algo` by a fresh `Runner`: `Runner(algo).train(**options)` (same options).

    It compiles on every call (from JAX's on-disk cache where one is enabled, see
    `rlkit.training.compile_cache`); to train one algorithm several times, keep a Runner.
    """
    return Runner(algo).train(**options)


def _guard(first_iteration: int, metrics: dict[str, np.ndarray], finite: np.ndarray) -> None:
    """Diverged at a chunk's first non-finite loss or gradient norm, else at its first seed
    whose parameters are not finite at the chunk's end."""
    check_metrics(first_iteration, metrics)
    if not finite.all():
        last = first_iteration + next(iter(metrics.values())).shape[1] - 1
        raise Diverged("parameters", last, int(np.argmin(finite)))


def _place(x: jax.Array, sharding: Any) -> jax.Array:
    return x if sharding is None else jax.device_put(x, sharding)


def _signature(tree: Any) -> tuple:
    """The tree's structure and its leaves' shapes and dtypes: what a compilation depends on."""
    leaves, treedef = jax.tree.flatten(tree)
    return (treedef, tuple((jnp.shape(x), jnp.result_type(x)) for x in leaves))


def member_keys(seed: int, num_seeds: int, num_points: int, first: int = 0) -> jax.Array:
    """Keys [num_points * num_seeds, 2]: member p * num_seeds + s gets seed_keys(...)[s], so
    every grid point of a sweep sees the same seeds (paired, and equal to separate runs)."""
    return jnp.tile(seed_keys(seed, num_seeds, first), (num_points, 1))


def member_hparams(
    hparams: dict[str, Any], points: dict[str, Any], num_seeds: int
) -> dict[str, jax.Array]:
    """hparams per member [P * num_seeds]: `hparams` with each point's values in place,
    point p's repeated for its num_seeds members (the order of `member_keys`)."""
    num_points = _num_points(points)
    unknown = sorted(set(points) - set(hparams))
    if unknown:
        raise ValueError(f"not traced hyperparameters of this algorithm: {', '.join(unknown)}")
    out = {}
    for name, value in hparams.items():
        value = jnp.asarray(value)
        if name in points:
            per_point = jnp.asarray(points[name], value.dtype)
        else:
            per_point = jnp.broadcast_to(value, (num_points, *value.shape))
        out[name] = jnp.repeat(per_point, num_seeds, axis=0)
    return out


def _num_points(points: dict[str, Any]) -> int:
    sizes = {int(np.shape(v)[0]) for v in points.values()}
    if len(sizes) != 1:
        raise ValueError(f"every swept hyperparameter needs the same number of points: {sizes}")
    return sizes.pop()


def seed_keys(seed: int, num_seeds: int, first: int = 0) -> jax.Array:
    """Keys [num_seeds, 2]: key i = fold_in(PRNGKey(seed), first + i)."""
    base = jax.random.PRNGKey(seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(first + jnp.arange(num_seeds))


def _progress_bar(total_steps: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total_steps, unit="step", unit_scale=True, dynamic_ncols=True)


def _advance(bar: Any, steps: int, metrics: dict, num_seeds: int, start: float) -> None:
    bar.update(steps)
    elapsed = max(time.perf_counter() - start, 1e-9)
    postfix = {"steps/s": f"{bar.n * num_seeds / elapsed:,.0f}"}
    if "episode_return" in metrics:
        latest = np.asarray(metrics["episode_return"])[:, -1]
        if np.isfinite(latest).any():
            postfix["return"] = f"{np.nanmean(latest):.2f}"
    bar.set_postfix(postfix, refresh=False)


def stack_hparams(hparams: Sequence[dict[str, Any]]) -> dict[str, jax.Array]:
    """Stack a list of hparam dicts along a new leading axis (for sweeps)."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *hparams)
