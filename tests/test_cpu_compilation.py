"""XLA's CPU backend at -O1 (rlkit.training.cpu_compilation): when the flag is set, and that it
computes the same numbers (its speed: benchmarks/compile.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from rlkit.training import cpu_compilation
from rlkit.training.cpu_compilation import FLAG, prefer_fast_cpu_compilation


def test_the_flag_is_added_to_xla_flags_and_kept_beside_the_users_flags(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cpu_compilation, "_accelerator_plugin", lambda: False)
    environ = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    assert prefer_fast_cpu_compilation(environ)
    assert environ["XLA_FLAGS"] == f"--xla_force_host_platform_device_count=2 {FLAG}"
    empty: dict[str, str] = {}
    assert prefer_fast_cpu_compilation(empty) and empty["XLA_FLAGS"] == FLAG


@pytest.mark.parametrize(
    ("environ", "plugin"),
    [
        ({"XLA_FLAGS": "--xla_backend_optimization_level=3"}, False),  # the user's own level
        ({"RLKIT_CPU_OPT_LEVEL": "default"}, False),  # opted out
        ({}, True),  # a GPU or TPU plugin is installed
        ({"JAX_PLATFORMS": "cuda"}, True),
    ],
)
def test_the_flag_is_left_out_when_the_user_or_an_accelerator_says_so(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], plugin: bool
) -> None:
    monkeypatch.setattr(cpu_compilation, "_accelerator_plugin", lambda: plugin)
    before = dict(environ)
    assert not prefer_fast_cpu_compilation(environ)
    assert environ == before


def test_with_a_plugin_installed_jax_platforms_cpu_still_gets_the_flag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cpu_compilation, "_accelerator_plugin", lambda: True)
    environ = {"JAX_PLATFORMS": "cpu"}
    assert prefer_fast_cpu_compilation(environ) and environ["XLA_FLAGS"] == FLAG


def test_the_test_suite_runs_at_the_level_the_command_line_uses() -> None:
    assert FLAG in os.environ.get("XLA_FLAGS", "").split()


# A program with what training programs are made of: matrix products, reductions, transcendental
# functions, threefry random draws, a scan and a gradient. It prints its results.
_PROGRAM = """
import json, jax, jax.numpy as jnp
def loss(w, x):
    h = jnp.tanh(x @ w[0]) @ w[1]
    return jnp.mean(jax.nn.logsumexp(h, axis=-1) - jnp.log1p(jnp.exp(-h[:, 0] ** 2)))
def step(carry, key):
    w, x = carry
    x = x + 0.1 * jax.random.normal(key, x.shape)
    g = jax.grad(loss)(w, x)
    return (jax.tree.map(lambda a, b: a - 0.05 * b, w, g), x), loss(w, x)
@jax.jit
def run(key):
    k1, k2, k3 = jax.random.split(key, 3)
    w = (jax.random.normal(k1, (16, 64)), jax.random.normal(k2, (64, 8)))
    x = jax.random.uniform(k3, (32, 16))
    (w, x), losses = jax.lax.scan(step, (w, x), jax.random.split(key, 50))
    return w, losses
out = jax.tree.leaves(run(jax.random.key(0)))
print(json.dumps([jnp.asarray(a).ravel().tolist() for a in out]))
"""


def _run_program(xla_flags: str) -> list[np.ndarray]:
    env = {**os.environ, "XLA_FLAGS": xla_flags, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return [np.asarray(a) for a in json.loads(done.stdout.strip().splitlines()[-1])]


def test_a_training_like_program_computes_the_same_numbers_at_the_default_level_and_at_o1() -> None:
    # Rounding may differ in the last bits (the module docstring); 50 gradient steps keep it
    # far below this tolerance, while a miscompiled operation would not.
    default = _run_program("")
    fast = _run_program(FLAG)
    for a, b in zip(default, fast, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
