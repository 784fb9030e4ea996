"""A Runner owns the compiled programs of one algorithm: training it again compiles nothing,
and nothing is shared between runners (no cache in the module).

Compilations are counted with JAX's own event for every XLA compilation
(`/jax/core/compile/backend_compile_duration`, reported through the public `jax.monitoring`).
A run compiles three programs: init, the chunk of iterations (which also checks that the
parameters are finite, for the divergence guard) and the final evaluation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from agents import ppo
from rlkit.training.runner import Runner, RunResult, seed_keys, train

BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"
PROGRAMS_PER_RUN = 3  # init, chunk (with the guard's check of the parameters), evaluation
RUN = {"num_seeds": 2, "eval_episodes": 2}


@contextlib.contextmanager
def compilations() -> Iterator[list[str]]:
    """The names of the functions XLA compiles while the block runs."""
    names: list[str] = []

    def listen(event: str, duration: float, **info: str | int) -> None:
        if event == BACKEND_COMPILE:
            names.append(str(info.get("fun_name")))

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        yield names
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)


@pytest.fixture(scope="module")
def trained() -> tuple[Runner, RunResult]:
    """A runner of a tiny PPO (4 iterations of 16 steps, so compiling dominates) after one run,
    which also compiled JAX's own small programs (key folding, ...) once for the process."""
    env, params = envs.make("CartPole-v1")
    config = ppo.Config(num_envs=2, rollout_length=8, total_steps=64, hidden=(8,))
    runner = Runner(ppo.make(config, env, params))
    return runner, runner.train(**RUN)


def _run(trainer, **options):
    with compilations() as compiled:
        result = trainer(**RUN, **options)
    return result, compiled


def test_one_runner_compiles_each_program_once_however_often_it_trains(trained) -> None:
    runner, first = trained
    again, compiled = _run(runner.train)
    assert compiled == []
    for name, values in first.metrics.items():  # a donated state did not leak between runs
        np.testing.assert_array_equal(again.metrics[name], values, err_msg=name)

    # Other seeds and other values of traced hparams have the same shapes: still no compile.
    hparams = {name: jnp.asarray(value) * 0.5 for name, value in runner.algo.hparams.items()}
    _, compiled = _run(runner.train, seed=7, hparams=hparams)
    assert compiled == []

    # A chunk of 2 iterations instead of 1 (4 / 20, rounded up) is a new chunk program only.
    _, compiled = _run(runner.train, chunk_target=2)
    assert len(compiled) == 1
    _, compiled = _run(runner.train, chunk_target=2)
    assert compiled == []


def test_a_second_runner_compiles_its_own_programs_and_so_does_each_train_call(trained) -> None:
    # `train(algo)` is a fresh Runner: the fixture's runner holds this very algorithm's
    # programs, and none of them is shared.
    _, compiled = _run(lambda **options: train(trained[0].algo, **options))
    assert len(compiled) == PROGRAMS_PER_RUN


def test_seed_i_draws_the_same_keys_and_starts_alike_whatever_the_seed_count(trained) -> None:
    # What holds across seed counts (README, "Determinism"): the random streams and, for PPO,
    # the initial state. Later numbers may round differently: another program is vmapped.
    runner, _ = trained
    np.testing.assert_array_equal(seed_keys(7, 1)[0], seed_keys(7, 4)[0])
    np.testing.assert_array_equal(seed_keys(7, 4)[3], seed_keys(7, 8)[3])
    algo = runner.algo
    alone = jax.jit(algo.init)(seed_keys(7, 1)[0], algo.hparams)
    among = jax.jit(jax.vmap(algo.init, in_axes=(0, None)))(seed_keys(7, 4), algo.hparams)
    for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(among), strict=True):
        np.testing.assert_array_equal(a, b[0])
