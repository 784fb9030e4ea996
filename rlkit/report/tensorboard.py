"""TensorBoard event files for a run, one TensorBoard "run" per seed.

    <run folder>/tensorboard/seed_0/events.out.tfevents.<time>.<host>.<pid>
    <run folder>/tensorboard/seed_1/...

`tensorboard --logdir <run folder>/tensorboard` shows the seeds as runs side by side (or
`--logdir runs` to compare whole runs: the seeds appear as `<name>/tensorboard/seed_<i>`).
Each row becomes one event at step `env_steps` (environment steps per seed) holding every
metric of the row that has a value: None ("no data in this interval") is skipped, nan and inf
are written as they are (a diverged seed shows its blow-up). Tags follow ML-Agents where the
quantity is the same one (`TAGS`), every other metric is `rlkit/<name>` (`tag`).

Files are written synchronously (no TensorFlow, no background thread): tensorboardX's
protobuf messages for the file-version and purge events, the scalar events encoded here, TFRecord
framing with a numpy CRC-32C. They are flushed to the operating system (not fsynced) after
every `write`, so a killed process loses at most the chunk in progress. Cost: about 25-45
microseconds per row of a dozen metrics. tensorboardX's `SummaryWriter` is not used: its
`flush()` does not wait for the events still queued for its writer thread (a reader right after
`flush()` missed a fifth of them), it costs about 4.5 ms per row of a dozen scalars (with
protobuf 3.20.3's pure-Python runtime), it turns the spaces of ML-Agents' tags into
underscores, and two writers started in the same second on one host get the same file name (the
second truncates the first, which a quick resume would do).

Resuming from a checkpoint at env step E (`resume_step=E`) starts a new event file per seed
that begins with tensorboardX's `purge_step` marker, a `SessionLog.START` at step E + 1:
TensorBoard's readers then drop every event with a step above E that they read from the
earlier files (what a killed process wrote after its last checkpoint), so each step shows once,
with the values of the resumed run. Two details make that hold for the reader behind
`tensorboard --logdir` (plugin_event_accumulator), not only for the older EventAccumulator:
it takes a run's first START for the session's start, not a restart, so a seed folder's first
file has a START too (at step 0: nothing to drop); and it reads a folder's files in name order,
so a new file is always named after the existing ones. A sink opened without resume_step on a
folder that has files writes no START: duplicates rather than hidden data.
"""

from __future__ import annotations

import contextlib
import functools
import math
import numbers
import os
import socket
import struct
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from tensorboardX.proto.event_pb2 import Event, SessionLog

__all__ = [
    "ROW_KEYS",
    "TAGS",
    "TensorBoardSink",
    "masked_crc32c",
    "metric_values",
    "scalar_event",
    "tag",
]

TAGS: dict[str, str] = {
    # ML-Agents' names for the same quantities (its trainers' stats reporter).
    "episode_return": "Environment/Cumulative Reward",
    "episode_length": "Environment/Episode Length",
    "entropy": "Policy/Entropy",
    "learning_rate": "Policy/Learning Rate",
    "policy_loss": "Losses/Policy Loss",
    "actor_loss": "Losses/Policy Loss",
    "value_loss": "Losses/Value Loss",
    "critic_loss": "Losses/Value Loss",
}
"""rlkit metric name -> ML-Agents tag, where the meaning is the same. Not mapped on purpose:
DQN's `epsilon` (ML-Agents' "Policy/Epsilon" is PPO's clipping range), SAC's `alpha`
(ML-Agents splits "Policy/Continuous Entropy Coeff" and "Policy/Discrete Entropy Coeff"), and
`q_mean` (ML-Agents' "Policy/Extrinsic Value Estimate" is V on the collected states)."""

ROW_KEYS = frozenset({"iteration", "seed", "env_steps", "iterations"})
"""Keys of a row that say where it belongs rather than measure something."""

_FILE_VERSION = "brain.Event:2"  # makes TensorBoard honour SessionLog.START (purge)
_PREFIX = "events.out.tfevents."


def tag(name: str) -> str:
    """The TensorBoard (and W&B) tag of metric `name`: ML-Agents' where it has one."""
    return TAGS.get(name, f"rlkit/{name}")


def metric_values(row: Mapping[str, Any]) -> Iterator[tuple[str, float]]:
    """(metric name, value) of a row's metrics that have a value (None and non-numbers left
    out; nan and inf kept)."""
    for name, value in row.items():
        if name in ROW_KEYS or value is None:
            continue
        if type(value) is float:
            yield name, value
        elif isinstance(value, numbers.Real) and not isinstance(value, bool):
            yield name, float(value)


_CRC_POLY = 0x82F63B78  # CRC-32C (Castagnoli), reflected, as TFRecord frames use


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        r = byte
        for _ in range(8):
            r = (r >> 1) ^ _CRC_POLY if r & 1 else r >> 1
        table.append(r)
    return table


class _Crc32c:
    """CRC-32C of bytes, for TFRecord framing (tensorboardX's is pure Python, ~170 ns a byte).

    The CRC is linear over GF(2): the register after n bytes is Z[n] (what the initial value
    0xFFFFFFFF becomes after n zero bytes) XOR, over every byte d_i, P[n-1-i][d_i] (byte d_i
    fed into a zero register, followed by n-1-i zero bytes). With P and Z tabulated a record's
    CRC is one numpy gather and reduce; short inputs take the byte-at-a-time loop."""

    def __init__(self) -> None:
        self.table = _crc_table()
        self.length = 0  # tables are made on first use (a few ms for 1024 bytes)

    def _grow(self, length: int) -> None:
        table = np.array(self.table, dtype=np.uint32)
        p = np.empty((length, 256), np.uint32)
        z = np.empty(length + 1, np.uint32)
        p[0], z[0] = table, 0xFFFFFFFF
        for k in range(1, length):
            p[k] = table[p[k - 1] & 0xFF] ^ (p[k - 1] >> 8)
        for k in range(1, length + 1):
            z[k] = table[z[k - 1] & 0xFF] ^ (z[k - 1] >> 8)
        # Row n-1-i of p at flat offset base[length - n + i]: one slice of `base` per length.
        self.p, self.z, self.length = p.ravel(), z, length
        self.base = np.arange(length - 1, -1, -1, dtype=np.intp) * 256

    def __call__(self, data: bytes) -> int:
        n = len(data)
        if n < 64:
            crc, table = 0xFFFFFFFF, self.table
            for byte in data:
                crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
            return crc ^ 0xFFFFFFFF
        if n > self.length:
            self._grow(max(n, 2 * self.length, 1024))
        offsets = self.base[self.length - n :] + np.frombuffer(data, np.uint8)
        register = np.bitwise_xor.reduce(self.p.take(offsets)) ^ self.z[n]
        return int(register) ^ 0xFFFFFFFF


_crc32c = _Crc32c()


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C (same value as tensorboardX.record_writer.masked_crc32c)."""
    x = _crc32c(data)
    return (((x >> 15) | (x << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


@functools.lru_cache(maxsize=1024)
def _value_head(name: str) -> bytes:
    """Summary.Value{tag = name, simple_value = <4 bytes to follow>} up to the float."""
    text = name.encode()
    inner = len(_field(1, text)) + 5
    return _varint(1 << 3 | 2) + _varint(inner) + _field(1, text) + b"\x15"


def _float32(value: float) -> bytes:
    try:
        return struct.pack("<f", value)
    except OverflowError:  # beyond float32: what float32 arithmetic would give
        return struct.pack("<f", math.copysign(math.inf, value))


def scalar_event(wall_time: float, step: int, values: Iterable[tuple[str, float]]) -> bytes:
    """The serialized `Event{wall_time, step, summary{value: [{tag, simple_value}...]}}`.

    Encoded here, byte for byte what protobuf writes (tests/test_sinks.py compares them): for a
    dozen scalars about 13 us, against 29 us through tensorboardX's messages on protobuf 7's upb
    runtime and 510 us on protobuf 3.20.3's pure-Python one (what rlkit's old protobuf cap got)."""
    summary = b"".join(_value_head(name) + _float32(value) for name, value in values)
    step_bytes = _varint(step & 0xFFFF_FFFF_FFFF_FFFF)
    return b"\x09" + struct.pack("<d", wall_time) + b"\x10" + step_bytes + _field(5, summary)


class _EventFile:
    """One event file, written record by record (TFRecord framing) and flushed on demand."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        stamp = int(time.time())
        self.first = True  # the folder's first event file
        for name in os.listdir(folder):
            if name.startswith(_PREFIX):
                self.first = False
                field = name[len(_PREFIX) :].split(".", 1)[0]
                if field.isdigit():
                    stamp = max(stamp, int(field) + 1)  # sort after every existing file
        while True:
            path = folder / f"{_PREFIX}{stamp:010d}.{socket.gethostname()}.{os.getpid()}"
            try:
                # "x": never truncate an existing file; kept open for the sink's lifetime.
                self._file: BinaryIO = open(path, "xb")  # noqa: SIM115
                break
            except FileExistsError:
                stamp += 1
        self.path = path
        self.write(Event(wall_time=time.time(), file_version=_FILE_VERSION).SerializeToString())

    def write(self, data: bytes) -> None:
        header = len(data).to_bytes(8, "little")
        self._file.write(header)
        self._file.write(masked_crc32c(header).to_bytes(4, "little"))
        self._file.write(data)
        self._file.write(masked_crc32c(data).to_bytes(4, "little"))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class TensorBoardSink:
    """Runner sink writing `<folder>/tensorboard/seed_<i>/` event files (module docstring).

    `folder` is the run folder; `resume_step` the env step of the checkpoint a resumed run
    restarts from (events the earlier process wrote after it are purged); `names` the folders
    of the rows' "seed" indices 0, 1, ... (default seed_<i>; a sweep names its members)."""

    def __init__(
        self,
        folder: Path,
        num_seeds: int,
        resume_step: int | None = None,
        names: Sequence[str] | None = None,
    ):
        self.path = Path(folder) / "tensorboard"
        self._files: list[_EventFile] = []
        names = [f"seed_{seed}" for seed in range(num_seeds)] if names is None else names
        try:
            for name in names:
                events = _EventFile(self.path / name)
                self._files.append(events)
                # tensorboardX's purge_step marker: readers drop the steps >= resume + 1 that
                # they read before it. A fresh folder's START (step 0) drops nothing; without
                # resume_step, a folder that has files gets none (and loses nothing).
                if resume_step is not None or events.first:
                    step = 0 if resume_step is None else resume_step + 1
                    start = SessionLog(status=SessionLog.START)
                    event = Event(wall_time=time.time(), step=step, session_log=start)
                    events.write(event.SerializeToString())
                events.flush()
        except BaseException:
            self.close()
            raise

    def write(self, rows: list[dict[str, Any]]) -> None:
        """One event per row at step env_steps in its seed's file; then flush every file."""
        if not self._files:
            raise ValueError("write after close")
        wall_time = time.time()
        for row in rows:
            values = [(tag(name), value) for name, value in metric_values(row)]
            if values:
                event = scalar_event(wall_time, int(row["env_steps"]), values)
                self._files[row["seed"]].write(event)
        for events in self._files:
            events.flush()

    def close(self) -> None:
        """Close the files (again: nothing)."""
        files, self._files = self._files, []
        for events in files:
            with contextlib.suppress(OSError):
                events.close()
