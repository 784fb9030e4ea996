"""Shared test settings."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

from rlkit.training.compile_cache import CACHE_ENV, enable_compilation_cache
from rlkit.training.cpu_compilation import prefer_fast_cpu_compilation

# As the `rlkit` command does, before any test module starts JAX's backend; the processes tests
# start inherit it.
prefer_fast_cpu_compilation()

# One on-disk compilation cache for the whole session: the test processes (the pytest-xdist
# workers, which inherit this variable from the controller that imports this file first) and
# the `rlkit` processes tests start. Many tests build the same programs (the same tiny PPO on
# CartPole, ...); the first compiles, the rest load, as `rlkit train` does for a user. It is
# never the user's folder, and it goes when the session ends (a test that changes RLKIT_CACHE_DIR
# through monkeypatch gets this value back after it). Tests of the cache itself, and
# tests that count compilations in fresh processes, give their processes a folder of their own.
_SESSION_CACHE = "RLKIT_TEST_SESSION_CACHE"
if _SESSION_CACHE not in os.environ:
    os.environ[_SESSION_CACHE] = tempfile.mkdtemp(prefix="rlkit-test-xla-")
    atexit.register(shutil.rmtree, os.environ[_SESSION_CACHE], True)
os.environ[CACHE_ENV] = os.environ[_SESSION_CACHE]
enable_compilation_cache()
