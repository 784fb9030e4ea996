"""Checkpoints of a run's whole TrainState, on orbax-checkpoint (pinned 0.12.8).

What is saved: every leaf of the TrainState pytree (parameters, optimiser states, environment
states, the replay buffer with its priorities, normaliser statistics, RNG keys as uint32
arrays, counters, the traced hparams), each an array with a leading seed axis, plus a JSON
record: the caller's metadata (algorithm, environment, config...) and the state's signature
(the tree structure as a string, and each leaf's path, shape, dtype and CRC-32 of its bytes).
Leaves are stored flat, by position (`leaf00000`, ...): the tree is rebuilt from the restore
target's structure, which the signature has checked to be the saved one, so orbax never has to
rebuild custom pytree nodes (flax structs, optax named tuples, empty nodes).

Layout on disk (one directory per checkpoint, named by the iterations done)::

    runs/<name>/checkpoints/
        40/
            meta/metadata             the JSON record (format, iteration, metadata, signature)
            state/                    the arrays: orbax PyTree item, OCDBT + zarr, zstd
            _CHECKPOINT_METADATA      orbax's own step metadata
        60/ ...
        80.orbax-checkpoint-tmp-<t>/  a save in progress (or cut short): never listed

Atomicity: orbax writes a checkpoint into `<step>.orbax-checkpoint-tmp-<t>` and renames it to
`<step>` once every file is written, so a process killed mid-save leaves only the temporary
folder, which `steps()` never lists and the first `save` of the next writer removes (a reader
leaves it alone: it may belong to a save in progress in another process). A checkpoint whose
files were damaged afterwards (truncated, deleted, bit flips: the CRC-32s catch what the
decoder does not) is skipped by `restore_latest`, which falls back to the previous one.

Donation safety: `save` copies every leaf into a fresh host numpy array (`np.array(leaf,
copy=True)`: it waits for the computation producing the leaf, gathers a sharded leaf's shards
and shares no memory with the device buffers) before it returns. orbax then writes those
private copies to disk in a background thread (its numpy handler is told not to copy them
again); nothing else holds them, so the caller may donate the state's buffers to the next
jitted chunk at once. The background write overlaps with training; the next `save`, `wait` or
`close` waits for it and reports its failure, if any.

Keep-last-N: after each save completes, orbax deletes all but the newest `keep` checkpoints. A
save at iteration i first deletes the checkpoints at i and later: they belong to a line of
training that this run, resumed from an earlier checkpoint, has replaced (in practice the
unreadable ones `restore_latest` skipped). One writer per directory: in a job of several
processes (rlkit.training.distributed) each process's manager is its own (orbax's
`active_processes`), process 0 saves the state it gathered, and every process may restore.

Quiet: orbax logs every save and restore at INFO through absl. Importing this module adds a
filter to the "absl" and root loggers that drops records below WARNING whose source file is
in the orbax package; every other record (orbax's warnings and errors, other absl users)
passes unchanged, with one exception below.

A failed background write (e.g. the disk filled up): orbax reports it twice, once as ERROR
records with tracebacks logged by its background threads, and once by raising it again from
the next `wait_until_finished`, which `save`, `wait` and `close` turn into a one-line
CheckpointError ("disk full" when the reason is ENOSPC). So the same filter also drops
orbax's ERROR records from the three sites that log an exception they store for that re-raise
(`_SignalingThread.run() raised an exception`, `Failed to run N Handler Commit operations
...`, `[wait_until_finished] Save Finalize thread (...) failed.`), and only while a write of a
Checkpoints object is in flight or failed in the last `_GRACE_S` seconds; any other orbax error
stays visible. Besides, when one write fails, orbax's asyncio loop for the save is closed while
tensorstore still completes other writes of it: tensorstore's C++ threads then call
`loop.call_soon_threadsafe` on the closed loop and report the `RuntimeError: Event loop is
closed` through `PyErr_WriteUnraisable`, i.e. `sys.unraisablehook`, one bare traceback each.
Nothing narrower than that hook sees them, so the first `save` installs a process-wide
`sys.unraisablehook` that drops exactly those (a RuntimeError "Event loop is closed" with no
object, raised in asyncio's `call_soon_threadsafe`, on a thread Python did not start) during
the same window, and hands everything else to the hook that was installed before it.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import sys
import threading
import time
import zlib
from pathlib import Path
from types import TracebackType
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import type_handlers

__all__ = ["CheckpointError", "Checkpoints", "checkpoint_bytes"]

FORMAT = 1  # version of the JSON record's layout
_STATE, _META = "state", "meta"  # orbax item names
_TMP_SUFFIX = ".orbax-checkpoint-tmp"


class CheckpointError(Exception):
    """A checkpoint cannot be saved, found, read or used for this run (a one-line message)."""


class _QuietOrbax(logging.Filter):
    """Drops orbax's records below WARNING (its INFO lines on every save and restore), and its
    ERROR records about a failed background write that CheckpointError reports again."""

    _source = os.sep + "orbax" + os.sep

    def filter(self, record: logging.LogRecord) -> bool:
        if _reraised_orbax_error(record):
            return False
        return record.levelno >= logging.WARNING or self._source not in record.pathname


def _quiet_orbax() -> None:
    """Filter orbax's INFO records out of the "absl" logger (where orbax's `from absl import
    logging` calls go) and the root logger (its few modules that use `logging` directly).
    Filters on a logger act on records logged there, so no other logger is touched."""
    for name in ("absl", None):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _QuietOrbax) for f in logger.filters):
            logger.addFilter(_QuietOrbax())


_quiet_orbax()

# -- orbax's reports of a failed background write, which CheckpointError reports again ----------

_GRACE_S = 10.0  # how long after a failed write its stragglers are still dropped
_window = threading.Lock()
_in_flight = 0  # background writes of Checkpoints objects not yet waited for
_quiet_until = 0.0  # time.monotonic() until which a failed write's stragglers are dropped
_previous_unraisablehook: Any = None

# The format strings of orbax's ERROR records for an exception it stores and re-raises from
# wait_until_finished (orbax 0.12.8: _src/futures/future.py, checkpointers/async_checkpointer.py,
# checkpoint_manager.py).
_RERAISED = (
    "_SignalingThread.run() raised an exception",
    "Handler Commit operations or the Commit callback in background save thread",
    "[wait_until_finished] Save Finalize thread (%s) failed.",
)


def _writing() -> bool:
    """Whether a Checkpoints write is in flight or failed a moment ago."""
    return _in_flight > 0 or time.monotonic() < _quiet_until


def _reraised_orbax_error(record: logging.LogRecord) -> bool:
    """An orbax ERROR record about a background write's failure that the next save, wait or
    close raises again as CheckpointError."""
    return (
        record.levelno == logging.ERROR
        and record.exc_info is not None
        and _QuietOrbax._source in record.pathname
        and any(m in str(record.msg) for m in _RERAISED)
        and _writing()
    )


def _closed_loop_noise(args: Any) -> bool:
    """tensorstore completing a write of orbax's after orbax closed the asyncio loop."""
    if args.exc_type is not RuntimeError or args.object is not None:
        return False
    if str(args.exc_value) != "Event loop is closed" or args.exc_traceback is None:
        return False
    first = args.exc_traceback
    if first.tb_frame.f_code.co_name != "call_soon_threadsafe":
        return False
    if os.sep + "asyncio" + os.sep not in first.tb_frame.f_code.co_filename:
        return False
    dummy = getattr(threading, "_DummyThread", None)  # a thread Python did not start
    return dummy is not None and isinstance(threading.current_thread(), dummy) and _writing()


def _unraisablehook(args: Any) -> None:
    if not _closed_loop_noise(args):
        (_previous_unraisablehook or sys.__unraisablehook__)(args)


def _install_unraisablehook() -> None:
    global _previous_unraisablehook
    with _window:
        if sys.unraisablehook is not _unraisablehook:
            _previous_unraisablehook = sys.unraisablehook
            sys.unraisablehook = _unraisablehook


def _write_started() -> None:
    global _in_flight
    _install_unraisablehook()
    with _window:
        _in_flight += 1


def _write_ended(failed: bool) -> None:
    global _in_flight, _quiet_until
    with _window:
        _in_flight = max(0, _in_flight - 1)
        if failed:
            _quiet_until = time.monotonic() + _GRACE_S


def _registry() -> Any:
    """Type handlers for the state item: numpy arrays without orbax's defensive deep copy (save
    hands it private copies already), and orbax's own handler for jax.Array (never used for
    saving here; orbax warns when a registry lacks one)."""
    return type_handlers.create_type_handler_registry(
        (np.ndarray, type_handlers.NumpyHandler(deepcopy_host_arrays=False)),
        (jax.Array, type_handlers.get_type_handler(jax.Array)),
    )


class Checkpoints:
    """The checkpoints of one run in `directory` (runs/<name>/checkpoints), newest `keep` kept.

        ckpt = Checkpoints(run_dir / "checkpoints")
        ckpt.save(40, state, {"algo": "ppo", "env": "CartPole-v1"})
        iteration, state, warnings = ckpt.restore_latest(like, {"algo": "ppo"})
        ckpt.close()

    Nothing is created on disk before the first `save`. Call `close()` (or use it as a context
    manager) so that the last background write finishes before the process exits.
    """

    def __init__(self, directory: str | Path, keep: int = 3) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory = Path(directory).absolute()
        self.keep = keep
        self._manager: ocp.CheckpointManager | None = None
        self._saved = False
        self._pending: int | None = None  # the step whose background write is in flight

    def __enter__(self) -> Checkpoints:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- saving ---------------------------------------------------------------------------------

    def save(self, iteration: int, state: Any, metadata: dict) -> None:
        """Save `state` (a pytree of arrays) as the checkpoint of step `iteration` (iterations
        done), with `metadata` (JSON-able) beside it. When this returns, the state has been read
        completely and may be donated; the write to disk finishes in the background."""
        iteration = int(iteration)
        if iteration < 0:
            raise ValueError(f"iteration must be >= 0, got {iteration}")
        try:
            json.dumps(metadata)
        except (TypeError, ValueError) as e:
            raise TypeError(f"checkpoint metadata is not JSON-able: {e}") from e
        leaves, treedef = jax.tree_util.tree_flatten_with_path(state)
        arrays: dict[str, np.ndarray] = {}
        signature = []
        for i, (path, leaf) in enumerate(leaves):
            host = _host_copy(leaf, jax.tree_util.keystr(path))
            if host.size:  # orbax cannot store empty arrays: the signature rebuilds them
                arrays[_leaf_name(i)] = host
            signature.append(
                [jax.tree_util.keystr(path), list(host.shape), _dtype_name(host), _crc32(host)]
            )
        if not arrays:
            raise CheckpointError("the state holds no array data to checkpoint")
        record = {
            "format": FORMAT,
            "iteration": iteration,
            "metadata": metadata,
            "signature": {"treedef": str(treedef), "leaves": signature},
        }
        if jax.process_count() > 1:
            self.directory.mkdir(parents=True, exist_ok=True)
        manager = self._open()
        self.wait()  # the previous save: its failure surfaces here
        try:
            if not self._saved:
                _remove_temporary(self.directory)
                self._saved = True
            for step in manager.all_steps():
                if step >= iteration:
                    manager.delete(step)
            self._pending = iteration
            _write_started()
            manager.save(
                iteration,
                args=ocp.args.Composite(
                    **{_STATE: ocp.args.PyTreeSave(arrays), _META: ocp.args.JsonSave(record)}
                ),
                force=True,
            )
        except Exception as e:
            if self._pending is not None:
                self._pending = None
                _write_ended(failed=True)
            raise CheckpointError(
                f"saving checkpoint {iteration} in {self.directory} failed: {_reason(e)}"
            ) from e

    def wait(self) -> None:
        """Wait for the background write of the last save; CheckpointError if it failed."""
        if self._manager is None:
            return
        pending, failed = self._pending, True
        try:
            self._manager.wait_until_finished()
            failed = False
        except Exception as e:
            what = "a checkpoint" if pending is None else f"checkpoint {pending}"
            raise CheckpointError(f"writing {what} in {self.directory} failed: {_reason(e)}") from e
        finally:
            if pending is not None:
                self._pending = None
                _write_ended(failed)

    def close(self) -> None:
        """Finish pending writes and release orbax's threads; the object may be used again."""
        if self._manager is None:
            return
        try:
            self.wait()
        finally:
            self._manager.close()
            self._manager = None

    # -- reading --------------------------------------------------------------------------------

    def steps(self) -> list[int]:
        """The complete checkpoints' steps, ascending (temporary folders are not listed)."""
        if not self.directory.is_dir():
            return []
        self.wait()  # this object's own save in progress counts once it is complete
        manager = self._open()
        manager.reload()
        return sorted(int(s) for s in manager.all_steps())

    def metadata(self, step: int) -> dict:
        """The metadata saved with checkpoint `step`."""
        if step not in self.steps():
            raise CheckpointError(f"no checkpoint {step} in {self.directory}")
        try:
            return self._record(step)["metadata"]
        except Exception as e:
            raise CheckpointError(
                f"checkpoint {step} in {self.directory} is unreadable ({_reason(e)})"
            ) from e

    def restore_latest(self, like: Any, expect: dict) -> tuple[int, Any, list[str]]:
        """The newest readable checkpoint, as (iteration, state, warnings).

        like: the target pytree (live arrays, or jax.ShapeDtypeStruct with a sharding); the
            restored leaves are jax arrays placed with its leaves' shardings.
        expect: metadata entries the checkpoint must have (e.g. {"algo": "ppo"}).

        An unreadable checkpoint is skipped for the one before it, with a warning naming both;
        a checkpoint for another algorithm, environment or state shape raises CheckpointError
        at once, as does finding no readable checkpoint.
        """
        targets, treedef = jax.tree_util.tree_flatten_with_path(like)
        wanted = [
            (jax.tree_util.keystr(path), tuple(np.shape(t)), _dtype_name(t)) for path, t in targets
        ]
        steps = self.steps()
        if not steps:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        skipped: list[tuple[int, str]] = []
        for step in reversed(steps):
            try:
                record = self._record(step)
            except Exception as e:
                skipped.append((step, _reason(e)))
                continue
            self._check_expected(step, record["metadata"], expect)
            saved = record["signature"]["leaves"]
            self._check_signature(step, saved, wanted)
            try:
                host = self._read_arrays(step, saved)
            except Exception as e:
                skipped.append((step, _reason(e)))
                continue
            leaves = [
                jax.device_put(array, _sharding(target))
                for array, (_, target) in zip(host, targets, strict=True)
            ]
            warnings = [f"checkpoint {s} is unreadable ({why}); using {step}" for s, why in skipped]
            return step, jax.tree_util.tree_unflatten(treedef, leaves), warnings
        reasons = "; ".join(f"{s}: {why}" for s, why in skipped)
        raise CheckpointError(f"no readable checkpoint in {self.directory} ({reasons})")

    # -- internals ------------------------------------------------------------------------------

    def _open(self) -> ocp.CheckpointManager:
        if self._manager is None:
            self._manager = ocp.CheckpointManager(
                self.directory,
                options=ocp.CheckpointManagerOptions(
                    max_to_keep=self.keep,
                    create=jax.process_count() == 1,  # else made by `save` (orbax refuses)
                    enable_async_checkpointing=True,
                    multiprocessing_options=_this_process_only(),
                ),
                item_handlers={
                    _STATE: ocp.PyTreeCheckpointHandler(type_handler_registry=_registry()),
                    _META: ocp.JsonCheckpointHandler(),
                },
            )
        return self._manager

    def _record(self, step: int) -> dict:
        """The JSON record of checkpoint `step` (raises if unreadable or malformed)."""
        restored = self._open().restore(
            step, args=ocp.args.Composite(**{_META: ocp.args.JsonRestore()})
        )
        record = restored[_META]
        if not isinstance(record, dict) or not {"format", "metadata", "signature"} <= set(record):
            raise ValueError("its record lacks format, metadata or signature")
        if record["format"] != FORMAT:
            raise ValueError(f"its record has format {record['format']}, this rlkit reads {FORMAT}")
        return record

    def _check_expected(self, step: int, metadata: dict, expect: dict) -> None:
        for key, value in expect.items():
            value = json.loads(json.dumps(value))  # as it would read back (tuples: lists)
            if key not in metadata:
                raise CheckpointError(
                    f"checkpoint {step} in {self.directory} has no {key} (expected {value})"
                )
            if metadata[key] != value:
                raise CheckpointError(
                    f"checkpoint {step} in {self.directory} is for {key} {metadata[key]}, "
                    f"not {value}"
                )

    def _check_signature(self, step: int, saved: list, wanted: list[tuple]) -> None:
        where = f"checkpoint {step} in {self.directory} does not fit this state"
        for i, ((path, shape, dtype, _), (want_path, want_shape, want_dtype)) in enumerate(
            zip(saved, wanted, strict=False)
        ):
            shape = tuple(shape)
            if path != want_path:
                raise CheckpointError(
                    f"{where}: its leaf {i} is {path}, this state's is {want_path}"
                )
            if (shape, dtype) != (want_shape, want_dtype):
                hint = ""
                if len(shape) == len(want_shape) > 0 and shape[1:] == want_shape[1:]:
                    hint = f" ({shape[0]} seeds in the checkpoint, {want_shape[0]} here)"
                raise CheckpointError(
                    f"{where}: {path} is {_describe(dtype, shape)} in the checkpoint, "
                    f"{_describe(want_dtype, want_shape)} here{hint}"
                )
        if len(saved) > len(wanted):
            raise CheckpointError(
                f"{where}: it has {len(saved)} leaves, this state {len(wanted)} "
                f"(the checkpoint also has {saved[len(wanted)][0]})"
            )
        if len(saved) < len(wanted):
            raise CheckpointError(
                f"{where}: it has {len(saved)} leaves, this state {len(wanted)} "
                f"(this state also has {wanted[len(saved)][0]})"
            )

    def _read_arrays(self, step: int, saved: list) -> list[np.ndarray]:
        """The leaves of checkpoint `step` as host arrays, each checked against its CRC-32."""
        names = [_leaf_name(i) for i, (_, shape, _, _) in enumerate(saved) if np.prod(shape)]
        restored = self._open().restore(
            step,
            args=ocp.args.Composite(
                **{
                    _STATE: ocp.args.PyTreeRestore(
                        restore_args={n: ocp.RestoreArgs(restore_type=np.ndarray) for n in names}
                    )
                }
            ),
        )[_STATE]
        if set(restored) != set(names):
            raise ValueError(f"it holds {len(restored)} arrays, its record {len(names)}")
        arrays = []
        for i, (path, shape, dtype, crc) in enumerate(saved):
            name = _leaf_name(i)
            array = restored[name] if name in restored else np.zeros(shape, dtype)
            array = np.asarray(array)
            if array.shape != tuple(shape) or _dtype_name(array) != dtype:
                raise ValueError(f"{path} reads back as {_describe(_dtype_name(array), shape)}")
            if _crc32(array) != crc:
                raise ValueError(f"{path} fails its checksum")
            arrays.append(array)
        return arrays


def _this_process_only() -> ocp.options.MultiprocessingOptions:
    """orbax's default in a one-process run; in a job of several processes, a manager of this
    process alone (its own primary), so that no orbax barrier waits for the others: the
    caller saves from one process only (host arrays it gathered), and every process may read."""
    if jax.process_count() == 1:
        return ocp.options.MultiprocessingOptions()
    index = jax.process_index()
    return ocp.options.MultiprocessingOptions(primary_host=index, active_processes={index})


def checkpoint_bytes(directory: str | Path, step: int) -> int:
    """Bytes on disk of checkpoint `step` in `directory` (all its files)."""
    root = Path(directory) / str(int(step))
    if not root.is_dir():
        raise CheckpointError(f"no checkpoint {step} in {directory}")
    total = 0
    for folder, _, files in os.walk(root):
        total += sum(os.path.getsize(os.path.join(folder, f)) for f in files)
    return total


def _host_copy(leaf: Any, path: str) -> np.ndarray:
    """A host array that owns its memory: the caller may donate `leaf` right after."""
    dtype = getattr(leaf, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        raise CheckpointError(
            f"state leaf {path} is a typed PRNG key: keep keys as uint32 arrays "
            "(jax.random.PRNGKey, or jax.random.key_data)"
        )
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        raise CheckpointError(  # gather it first: rlkit.training.distributed.to_host
            f"state leaf {path} spans several processes: save the gathered state"
        )
    try:
        return np.array(leaf, copy=True)
    except RuntimeError as e:  # e.g. a deleted (already donated) array
        raise CheckpointError(f"cannot read state leaf {path}: {_reason(e)}") from e


def _sharding(target: Any) -> Any:
    """Where a restored leaf goes: the target's sharding; the default device if it has none."""
    return getattr(target, "sharding", None)


def _leaf_name(i: int) -> str:
    return f"leaf{i:05d}"


def _dtype_name(x: Any) -> str:
    return np.dtype(x.dtype).name if hasattr(x, "dtype") else np.asarray(x).dtype.name


def _describe(dtype: str, shape: Any) -> str:
    return f"{dtype}[{','.join(str(d) for d in shape)}]"


def _crc32(array: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(array).reshape(-1).view(np.uint8))


def _reason(error: BaseException) -> str:
    """A short, one-line account of `error`: the innermost cause's first line; "disk full" for
    ENOSPC (tensorstore's account of it is a paragraph of paths)."""
    while error.__cause__ is not None:
        error = error.__cause__
    if _disk_full(error):
        return "disk full"
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _disk_full(error: BaseException) -> bool:
    """Whether `error` is ENOSPC: an OSError, or tensorstore's ValueError that quotes it."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True
    text = str(error)
    return "No space left on device" in text or f"os_error_code='{errno.ENOSPC}'" in text


def _remove_temporary(directory: Path) -> None:
    """Remove what saves cut short left (`<step>.orbax-checkpoint-tmp-<t>` folders)."""
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        if _TMP_SUFFIX in entry.name and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
