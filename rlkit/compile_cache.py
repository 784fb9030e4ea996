"""Compiled programs kept on disk, so that running the same program again skips compilation.

Compiling a training program takes seconds (PPO on CartPole: about 5 s on a 2-core CPU), often
more than a short run trains. JAX can keep compiled executables on disk, keyed by the program,
the jax/jaxlib versions, the backend, the devices and the compiler flags; a later process that
builds the same program (same algorithm, environment, shapes and static settings: traced
hyperparameters such as learning rates may differ) loads it instead. `rlkit train` turns this
on; library users call `enable_compilation_cache()` themselves.

Where: $RLKIT_CACHE_DIR, else $XDG_CACHE_HOME/rlkit/xla, else ~/.cache/rlkit/xla. The
least recently used entries go once the folder passes MAX_BYTES. RLKIT_CACHE_DIR=off turns the
cache off; a directory chosen through JAX itself (JAX_COMPILATION_CACHE_DIR) is left as it is.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

__all__ = ["CACHE_ENV", "MAX_BYTES", "cache_dir", "enable_compilation_cache"]

CACHE_ENV = "RLKIT_CACHE_DIR"
MAX_BYTES = 2 * 1024**3
# Programs that compile faster than this are not worth a file (JAX's default is 1 s, which
# leaves out the small init and evaluation programs that together still cost a second).
_MIN_COMPILE_SECONDS = 0.2
_OFF = ("", "0", "off", "none", "false")


def cache_dir() -> Path | None:
    """The cache folder rlkit would use, or None when RLKIT_CACHE_DIR turns the cache off."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen is not None:
        return None if chosen.strip().lower() in _OFF else Path(chosen).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rlkit" / "xla"


def enable_compilation_cache(directory: str | os.PathLike | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache in `directory` (default: `cache_dir()`).

    Call it before the first compilation of the process: JAX decides once whether to use the
    cache. Returns the folder in use, or None when it stays off (RLKIT_CACHE_DIR=off, or the
    folder cannot be created: a cache is an optimisation, never a reason to fail a run).
    """
    already = jax.config.jax_compilation_cache_dir
    if already:
        return Path(already)
    folder = Path(directory).expanduser() if directory is not None else cache_dir()
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", _MIN_COMPILE_SECONDS)
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    return folder
