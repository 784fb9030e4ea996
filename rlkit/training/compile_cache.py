"""Compiled programs kept on disk, so that running the same program again skips compilation.

Compiling a training program takes seconds (PPO on CartPole: about 5 s on a 2-core CPU), often
more than a short run trains. JAX can keep compiled executables on disk, keyed by the program,
the jax/jaxlib versions, the backend, the devices and the compiler flags; a later process that
builds the same program (same algorithm, environment, shapes and static settings: traced
hyperparameters such as learning rates may differ) loads it instead. `rlkit train` turns this
on; library users call `enable_compilation_cache()` themselves.

Where: a folder per CPU model (`host_cpu_key`) in $RLKIT_CACHE_DIR, else in
$XDG_CACHE_HOME/rlkit/xla, else in ~/.cache/rlkit/xla. JAX's cache key does not name the CPU,
and XLA:CPU only logs an error when it loads a program compiled for instructions this CPU lacks,
so a home folder shared by different machines must not hand one machine's programs to another.
The least recently used entries go once the folder passes MAX_BYTES. RLKIT_CACHE_DIR=off turns
the cache off; a directory chosen through JAX itself (JAX_COMPILATION_CACHE_DIR) is left as it is,
and so is a threshold set in JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS.

XLA:CPU also counts two LLVM tuning preferences (+prefer-no-gather, +prefer-no-scatter: set for
AMD Zen 4 and some Intel cores) as CPU features when it checks a loaded program, finds them
missing from the host's list, and logs two errors ("could lead to ... SIGILL") and a warning
for every program it loads, on the very machine that compiled it (jax-ml/jax#38445). The program
is correct and runs. `enable_compilation_cache` therefore holds back stderr (file descriptor 2,
where XLA logs) while JAX deserialises a program found in the cache, and then writes out what
was held without exactly those lines (`quiet_cache_loads`, `drop_false_alarms`); every other
line reaches stderr unchanged.

The filter is a process-wide trick, so it is contained:
- narrow: it wraps only the `backend.deserialize_executable` call inside JAX's private cache
  reader (jax/_src/compilation_cache.py `get_executable_and_time`, which reaches that call only
  on a hit), the one XLA call of the read: the lookup, the decompression and a miss are not
  held back;
- shared: threads that load at once share one redirection of fd 2 (a lock and a count of open
  blocks); the last block out restores fd 2 and writes what all of them held;
- pinned: it is installed only for the jax and jaxlib release it was written for
  (`_QUIET_LOADS_FOR`); any other release gets JAX's output as it is, with no wrapping at all;
- fail-safe: if the private reader is not where it was, nothing is wrapped.
Remove it (`_install_quiet_loads`, `quiet_cache_loads`, `_QuietDeserialise`) once XLA:CPU
stops counting tuning preferences as CPU features when it loads a program (jax-ml/jax#38445).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import platform
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import jax

__all__ = [
    "CACHE_ENV",
    "MAX_BYTES",
    "cache_dir",
    "drop_false_alarms",
    "enable_compilation_cache",
    "host_cpu_key",
    "quiet_cache_loads",
]

CACHE_ENV = "RLKIT_CACHE_DIR"
MAX_BYTES = 2 * 1024**3
# Programs that compile faster than this are not worth a file (JAX's default is 1 s, which
# leaves out the small init and evaluation programs that together still cost a second).
_MIN_COMPILE_SECONDS = 0.2
_MIN_COMPILE_ENV = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"
_OFF = ("", "0", "off", "none", "false")

_FALSE_ALARMS = re.compile(
    rb"cpu_aot_loader\.cc:\d+\] Loading XLA:CPU AOT result\. Target machine feature "
    rb"\+prefer-no-(gather|scatter) is not "
    rb"|pjrt_executable\.cc:\d+\] Assume version compatibility\. PjRt-IFRT does not track XLA "
    rb"executable versions\."
)


def host_cpu_key(cpuinfo: str | None = None) -> str:
    """A short name for this CPU model and its instruction sets: the architecture and a hash of
    the first processor's model name and feature flags (from /proc/cpuinfo on Linux; from
    `platform.processor()` elsewhere). `cpuinfo` overrides the file's text (for tests)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = platform.processor()
    first = cpuinfo.split("\n\n")[0]
    wanted = [
        line for line in first.splitlines() if re.match(r"(model name|flags|Features)\s*:", line)
    ]
    digest = hashlib.sha256("\n".join(wanted or [first]).encode()).hexdigest()[:12]
    return f"{platform.machine() or 'cpu'}-{digest}"


def cache_dir() -> Path | None:
    """The cache folder rlkit would use (its subfolder for this CPU), or None when
    RLKIT_CACHE_DIR turns the cache off."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen is None:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rlkit" / "xla"
    elif chosen.strip().lower() in _OFF:
        return None
    else:
        base = Path(chosen).expanduser()
    return base / host_cpu_key()


@dataclasses.dataclass
class _HeldStderr:
    """The one redirection of file descriptor 2 that every open `quiet_cache_loads` block
    shares, whichever thread opened it (fd 2 belongs to the process, not to a thread)."""

    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    depth: int = 0  # blocks open, over all threads
    saved: int = -1  # while depth > 0: a duplicate of the real fd 2
    file: IO[bytes] | None = None  # while depth > 0: where fd 2 points


_HELD = _HeldStderr()


@contextlib.contextmanager
def quiet_cache_loads() -> Iterator[None]:
    """While the block runs, hold back what is written to stderr (file descriptor 2, where
    XLA logs), then write it out without XLA's false alarms about loaded CPU programs (see the
    module docstring).

    Re-entrant and thread-safe: the first block to open redirects fd 2 to a temporary file,
    blocks opened meanwhile (nested, or in other threads) share it, and the last one to close
    restores fd 2 and writes the held text, filtered, once.
    """
    with _HELD.lock:
        if _HELD.depth == 0:
            _hold(_HELD)
        _HELD.depth += 1
    try:
        yield
    finally:
        with _HELD.lock:
            _HELD.depth -= 1
            if _HELD.depth == 0:
                _release(_HELD)


def _hold(held: _HeldStderr) -> None:
    sys.stderr.flush()  # what Python buffered before the block belongs to the real stderr
    held.file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by _release)
    held.saved = os.dup(2)
    os.dup2(held.file.fileno(), 2)


def _release(held: _HeldStderr) -> None:
    sys.stderr.flush()  # what Python buffered inside the block belongs to the held text
    os.dup2(held.saved, 2)
    os.close(held.saved)
    file, held.file, held.saved = held.file, None, -1
    with file:
        file.seek(0)
        _write_all(2, drop_false_alarms(file.read()))


# The jax and jaxlib release whose private cache reader `_install_quiet_loads` wraps, and whose
# XLA:CPU logs the false alarms. For any other release the filter stays off: the reader may have
# moved or changed, and a fixed XLA needs no filter. Check both on a pin change, then move it.
_QUIET_LOADS_FOR = "0.9.2"


def _quiet_loads_apply() -> bool:
    import jaxlib

    return jax.__version__ == _QUIET_LOADS_FOR and jaxlib.__version__ == _QUIET_LOADS_FOR


def _install_quiet_loads() -> None:
    """Hold back stderr while JAX deserialises a program read from its persistent cache,
    whoever compiles.

    JAX has no public hook for it: this wraps the private reader
    `jax._src.compilation_cache.get_executable_and_time(cache_key, compile_options, backend,
    executable_devices)` (jax 0.9.2), handing it a backend whose `deserialize_executable` runs
    inside `quiet_cache_loads`. In jax/_src/compilation_cache.py the reader returns on a miss
    (lines 290-292) before it deserialises a hit (line 297), its only XLA call (the rest is a
    file read, zstd and byte slicing), so only the load that logs the false alarms is held
    back. Its one caller, `_cache_read` (jax/_src/compiler.py:778), passes the arguments by
    position. Off for other jax/jaxlib releases (`_QUIET_LOADS_FOR`); if the private reader
    is absent, loads stay as loud as JAX makes them and nothing else changes. Remove once
    jax-ml/jax#38445 is fixed.
    """
    if not _quiet_loads_apply():
        return
    try:
        from jax._src import compilation_cache as jax_cache
    except ImportError:
        return
    read = getattr(jax_cache, "get_executable_and_time", None)
    if read is None or getattr(read, "quiet_loads", False):
        return

    @functools.wraps(read)
    def quiet_read(
        cache_key: str, compile_options: Any, backend: Any, executable_devices: Any
    ) -> Any:
        return read(cache_key, compile_options, _QuietDeserialise(backend), executable_devices)

    quiet_read.quiet_loads = True  # type: ignore[attr-defined]
    jax_cache.get_executable_and_time = quiet_read


class _QuietDeserialise:
    """`backend` (an XLA client), except that `deserialize_executable` runs inside
    `quiet_cache_loads`. It only passes through JAX's Python cache reader, never into XLA."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def deserialize_executable(self, *args: Any, **kwargs: Any) -> Any:
        with quiet_cache_loads():
            return self._backend.deserialize_executable(*args, **kwargs)


def drop_false_alarms(text: bytes) -> bytes:
    """`text` without the lines of XLA's false alarms about loaded CPU programs."""
    lines = text.splitlines(keepends=True)
    return b"".join(line for line in lines if not _FALSE_ALARMS.search(line))


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def enable_compilation_cache(directory: str | os.PathLike | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache in `directory` (default: `cache_dir()`).

    Call it before the first compilation of the process: JAX decides once whether to use the
    cache. Returns the folder in use, or None when it stays off (RLKIT_CACHE_DIR=off, or the
    folder cannot be created: a cache is an optimisation, never a reason to fail a run).
    """
    already = jax.config.jax_compilation_cache_dir
    if already:
        _install_quiet_loads()
        return Path(already)
    folder = Path(directory).expanduser() if directory is not None else cache_dir()
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    if _MIN_COMPILE_ENV not in os.environ:  # a threshold set through JAX itself is kept
        jax.config.update("jax_persistent_cache_min_compile_time_secs", _MIN_COMPILE_SECONDS)
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    _install_quiet_loads()
    return folder
