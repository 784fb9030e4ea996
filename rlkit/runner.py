"""The runner: compiles `update` into chunks of K iterations and vmaps them over seeds.

One compiled program runs K iterations (`lax.scan`) for every seed at once (`vmap`); the
TrainState is donated, so buffers are updated in place. Between chunks the host receives the
per-iteration metrics ([seeds, K] scalars), hands them to the sinks and advances the progress
bar. The iteration count of a chunk is a runtime argument, so a last, shorter chunk
reuses the same compilation. With several devices (accelerators, or CPU cores exposed by
`rlkit.devices.use_cpu_cores`) the seed axis is split over them (`rlkit.devices.seed_sharding`).
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

from rlkit.algorithm import Algorithm
from rlkit.devices import seed_sharding
from rlkit.evaluation import evaluate

__all__ = ["RunResult", "seed_keys", "stack_hparams", "train"]

ChunkSink = Callable[[int, dict[str, np.ndarray]], None]


@dataclass
class RunResult:
    """What a training run produced.

    state: the final TrainState (leaves with a leading seed axis).
    metrics: per-iteration metrics, each [seeds, iterations] (numpy).
    evaluation: final deterministic evaluation, returns/lengths [seeds, episodes].
    timing: compile_seconds, train_seconds, env_steps (per seed), steps_per_second (all seeds),
        devices (how many devices the seeds were split over).
    """

    state: Any
    metrics: dict[str, np.ndarray]
    evaluation: dict[str, np.ndarray]
    timing: dict[str, float] = field(default_factory=dict)


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
) -> Callable[..., tuple[Any, dict]]:
    """A compiled program running `n <= capacity` iterations (n is a runtime argument, so the
    last, shorter chunk reuses the same compilation); metrics come back as [seeds, capacity]
    with the first n filled."""

    def run(state: Any, n: jax.Array) -> tuple[Any, dict]:
        metric_shapes = jax.eval_shape(algo.update, state)[1]
        empty = jax.tree.map(lambda m: jnp.zeros((capacity, *m.shape), m.dtype), metric_shapes)

        def body(i: jax.Array, carry: tuple) -> tuple:
            state, history = carry
            state, metrics = algo.update(state)
            history = jax.tree.map(lambda h, m: h.at[i].set(m), history, metrics)
            return state, history

        return jax.lax.fori_loop(0, n, body, (state, empty))

    return jax.jit(over_seeds(run, num_seeds, (0, None)), donate_argnums=0)


_COMPILED: dict[tuple, Any] = {}
_COMPILED_MAX = 16


def _compiled(key: tuple, build: Callable[[], Any]) -> Any:
    """Compiled programs of this process, keyed by the algorithm's functions and the argument
    shapes, so training the same algorithm again (tests, sweeps of traced hparams) does not
    compile again. Bounded: the oldest entry goes first."""
    if key not in _COMPILED:
        if len(_COMPILED) >= _COMPILED_MAX:
            _COMPILED.pop(next(iter(_COMPILED)))
        _COMPILED[key] = build()
    return _COMPILED[key]


def _place(x: jax.Array, sharding: Any) -> jax.Array:
    return x if sharding is None else jax.device_put(x, sharding)


def _signature(tree: Any) -> tuple:
    leaves, treedef = jax.tree.flatten(tree)
    return (treedef, tuple((jnp.shape(x), jnp.result_type(x)) for x in leaves))


def train(
    algo: Algorithm,
    *,
    num_seeds: int = 1,
    seed: int = 0,
    hparams: dict[str, Any] | None = None,
    chunk_target: int | None = None,
    sinks: Sequence[ChunkSink] = (),
    progress: bool = False,
    eval_episodes: int = 32,
) -> RunResult:
    """Train `num_seeds` independent copies of `algo` for its configured budget.

    Seed i starts from `fold_in(PRNGKey(seed), i)`, so seed i is the same run whatever
    `num_seeds` is (paired across the arms of an ablation). `hparams` defaults to the
    config's. Each sink is called as sink(first_iteration, metrics), metrics [seeds, K], after
    every chunk.
    """
    if num_seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {num_seeds}")
    hparams = algo.hparams if hparams is None else hparams
    num_updates = algo.num_updates
    if chunk_target is None:
        chunk_target = max(1, math.ceil(num_updates / 20))
    k = max(1, min(chunk_target, num_updates))

    sharding = seed_sharding(num_seeds)
    keys = _place(seed_keys(seed, num_seeds), sharding)
    compile_start = time.perf_counter()
    init = _compiled(
        ("init", algo.init, num_seeds, sharding, _signature(hparams)),
        lambda: (
            jax.jit(over_seeds(algo.init, num_seeds, (0, None)), out_shardings=sharding)
            .lower(keys, hparams)
            .compile()
        ),
    )
    state = init(keys, hparams)
    chunk = _compiled(
        ("chunk", algo.update, k, num_seeds, _signature(state)),
        lambda: _chunk_program(algo, k, num_seeds).lower(state, jnp.int32(k)).compile(),
    )
    compile_seconds = time.perf_counter() - compile_start

    bar = _progress_bar(num_updates * algo.steps_per_update) if progress else None
    history: list[dict[str, np.ndarray]] = []
    train_start = time.perf_counter()
    iteration = 0
    while iteration < num_updates:
        length = min(k, num_updates - iteration)
        state, metrics = chunk(state, jnp.int32(length))
        metrics = {name: value[:, :length] for name, value in jax.device_get(metrics).items()}
        for sink in sinks:
            sink(iteration, metrics)
        history.append(metrics)
        iteration += length
        if bar is not None:
            _advance(bar, length * algo.steps_per_update, metrics, num_seeds, train_start)
    jax.block_until_ready(state)
    train_seconds = time.perf_counter() - train_start
    if bar is not None:
        bar.close()

    metrics = {name: np.concatenate([m[name] for m in history], axis=1) for name in history[0]}
    evaluation = final_evaluation(algo, state, seed, num_seeds, eval_episodes)
    env_steps = num_updates * algo.steps_per_update
    timing = {
        "compile_seconds": compile_seconds,
        "train_seconds": train_seconds,
        "env_steps": float(env_steps),
        "steps_per_second": env_steps * num_seeds / max(train_seconds, 1e-9),
        "devices": 1 if sharding is None else sharding.mesh.size,
    }
    return RunResult(state=state, metrics=metrics, evaluation=evaluation, timing=timing)


def seed_keys(seed: int, num_seeds: int) -> jax.Array:
    """Keys [num_seeds, 2]: key i = fold_in(PRNGKey(seed), i)."""
    base = jax.random.PRNGKey(seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(num_seeds))


def final_evaluation(
    algo: Algorithm, state: Any, seed: int, num_seeds: int, episodes: int
) -> dict[str, np.ndarray]:
    """Deterministic evaluation of every seed's final policy: returns/lengths [seeds, episodes]."""
    sharding = seed_sharding(num_seeds)
    keys = _place(
        jax.vmap(lambda k: jax.random.fold_in(k, 1))(seed_keys(seed, num_seeds)), sharding
    )

    episodes = getattr(algo.env, "num_envs", episodes)  # a host env evaluates on its copies

    def one(train_state: Any, key: jax.Array) -> dict[str, jax.Array]:
        return evaluate(
            algo.env, algo.env_params, algo.act, algo.policy_params(train_state), key, episodes
        )

    program = _compiled(
        (
            "evaluate",
            algo.act,
            algo.policy_params,
            episodes,
            num_seeds,
            sharding,
            _signature(state),
        ),
        lambda: jax.jit(over_seeds(one, num_seeds, (0, 0))).lower(state, keys).compile(),
    )
    return jax.device_get(program(state, keys))


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
