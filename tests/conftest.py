"""Shared test settings."""

from __future__ import annotations

import pytest

from rlkit.training.cpu_compilation import prefer_fast_cpu_compilation

# As the `rlkit` command does, before any test module starts JAX's backend; the processes tests
# start inherit it.
prefer_fast_cpu_compilation()


@pytest.fixture(autouse=True)
def _no_compilation_cache_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """`rlkit train` run in-process must not turn JAX's on-disk cache on for the rest of the
    test process (JAX decides once per process) nor write to the user's cache folder;
    tests/test_cli.py tests the cache in fresh processes with a folder of their own."""
    monkeypatch.setenv("RLKIT_CACHE_DIR", "off")
