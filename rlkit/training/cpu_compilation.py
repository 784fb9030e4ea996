"""Faster compilation on XLA's CPU backend: LLVM at -O1 instead of XLA's default -O2.

On a CPU, compiling rlkit's programs takes most of a short run's wall time, and LLVM's -O2
pipeline is much of the compile. At -O1 the same programs compile faster and run as fast:
on the 2-core CI machine (`python benchmarks/compile.py`, 3 alternating pairs of processes,
4 seeds over 2 CPU devices, 100k CartPole steps) PPO compiled in 14.1 s instead of 18.1 s and
DQN in 12.3 s instead of 15.6 s, training 3.3 s vs 3.0 s and 8.4 s vs 8.5 s. The numbers are
IEEE arithmetic at both levels, but not always the same bits: single-device PPO and DQN runs
gave identical results at both levels, while the 2-device DQN run rounded differently
somewhere and training amplified it (final returns 500, 176.5, 295.3, 500 at -O1 against
453.9, 176.5, 500, 500 at -O2), as another vmap width does (README "Determinism"). Each level
is deterministic on its own. tests/test_cpu_compilation.py compares a small training-like
program at both levels.

The setting is an XLA flag, read once when JAX's backend starts, so `prefer_fast_cpu_compilation`
must run before JAX's first computation (the `rlkit` command calls it first thing; the test
suite's conftest too). It leaves XLA alone when the user chose a level in XLA_FLAGS, when
RLKIT_CPU_OPT_LEVEL=default, and when an accelerator plugin is installed (the flag would also
lower the GPU backend's LLVM level, which is not measured here).

This module imports nothing heavy, so that the command line can call it before JAX loads.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import MutableMapping

__all__ = ["FLAG", "prefer_fast_cpu_compilation"]

FLAG = "--xla_backend_optimization_level=1"
_OPT_OUT = "RLKIT_CPU_OPT_LEVEL"
_ACCELERATOR_PLUGINS = ("jax_plugins", "libtpu", "jax_cuda12_plugin", "jax_cuda13_plugin")


def prefer_fast_cpu_compilation(environ: MutableMapping[str, str] | None = None) -> bool:
    """Add `FLAG` to XLA_FLAGS in `environ` (default: this process's environment, which child
    processes inherit); True if it was added.

    Has no effect on a backend that already started. Does nothing when XLA_FLAGS already sets
    an optimization level, when RLKIT_CPU_OPT_LEVEL is "default", or when JAX may run on an
    accelerator (an accelerator plugin is importable and JAX_PLATFORMS is not "cpu").
    """
    environ = os.environ if environ is None else environ
    if environ.get(_OPT_OUT, "").strip().lower() == "default":
        return False
    flags = environ.get("XLA_FLAGS", "")
    if "xla_backend_optimization_level" in flags:
        return False
    if environ.get("JAX_PLATFORMS", "").strip().lower() != "cpu" and _accelerator_plugin():
        return False
    environ["XLA_FLAGS"] = f"{flags} {FLAG}".strip()
    return True


def _accelerator_plugin() -> bool:
    """Whether a GPU or TPU plugin for jax is installed (JAX finds them as these modules)."""
    return any(importlib.util.find_spec(name) is not None for name in _ACCELERATOR_PLUGINS)
