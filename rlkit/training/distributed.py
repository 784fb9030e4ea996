"""Training over several processes (hosts) with `jax.distributed`.

Route: one global program. After `initialize`, `jax.devices()` lists the devices of every
process; `rlkit.training.devices.seed_sharding` splits the member axis (seeds, or grid points
x seeds) over all of them, so the TrainState is one global jax.Array per leaf whose shards live
on different processes, and every process runs the same compiled chunk (SPMD). The members are
independent, so the program holds no communication. What the host reads (a chunk's metrics,
its finite flags, the final evaluation, a state to checkpoint) is gathered by `to_host`, a
collective: every process calls it at the same point and receives the whole array. Only
process 0 (`is_primary`) writes the run directory; the others compute the same host values
and discard them.

The slicing rule (`rlkit.training.devices.seed_sharding`): with N processes of L devices each
(the same L everywhere) and M members, M must divide by N; process k holds members
k*M/N .. (k+1)*M/N - 1 (contiguous), spread over the largest count of its own devices that
divides M/N, the same count on every process. Member m's numbers do not depend on N: a
2-process run of 4 seeds equals a 1-process run on 2 devices, bit for bit.

Checkpoints: `to_host` gathers the state to every process and process 0 alone writes it, in the
format of a one-process run; to resume, every process reads the shared folder and places its
shards. The state therefore passes through every host's memory at each checkpoint: fine for
rlkit's states, wasteful for a replay buffer of gigabytes (orbax can write each process's
shards itself, a format of its own; not done here).

A process that cannot join (the coordinator unreachable, a peer that never comes): JAX's
client aborts the whole process from C++ when `initialization_timeout` passes (a stack trace,
exit 134), so `initialize` arms a watchdog that ends the process first, after `timeout_s`,
with one line and exit 1 (`os._exit`: nothing is written before initialisation). Remove the
watchdog once jax.distributed.initialize raises instead of aborting. A process failing later,
while training, leaves the others waiting in their next gather until JAX's heartbeat or
shutdown deadline (100 s, 300 s by default) aborts them the same way: not caught here.

CPU collectives: the gathers run on CPU through gloo, jax 0.9's default
(`jax_cpu_collectives_implementation`); nothing needs to be set.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from typing import Any

import jax
import numpy as np

__all__ = [
    "any_process",
    "check_settings",
    "initialize",
    "is_primary",
    "parse_coordinator",
    "process_count",
    "to_host",
]

_GRACE_S = 30  # JAX's own deadline, after the watchdog's: the watchdog always speaks first


def parse_coordinator(address: str) -> tuple[str, int]:
    """HOST:PORT -> (host, port); ValueError naming the problem."""
    match = re.fullmatch(r"(.+):(\d+)", address)
    if match is None or not 0 < int(match[2]) < 65536:
        raise ValueError(f"--coordinator must be HOST:PORT (port 1-65535), got {address!r}")
    return match[1], int(match[2])


def check_settings(coordinator: str, num_processes: int, process_id: int) -> None:
    """ValueError, one line, for settings `initialize` would refuse."""
    parse_coordinator(coordinator)
    if num_processes < 1:
        raise ValueError(f"--num-processes must be >= 1, got {num_processes}")
    if not 0 <= process_id < num_processes:
        raise ValueError(
            f"--process-id must be in 0..{num_processes - 1} (--num-processes {num_processes}), "
            f"got {process_id}"
        )


def initialize(coordinator: str, num_processes: int, process_id: int, timeout_s: int) -> None:
    """Join the `num_processes`-process job coordinated at `coordinator` (process 0 serves it)
    as `process_id`. Must run before JAX's backend starts. When the job has not formed after
    `timeout_s` seconds, prints one line and exits 1 (see the module docstring)."""
    check_settings(coordinator, num_processes, process_id)
    done = threading.Event()

    def give_up() -> None:
        if done.is_set():
            return
        waited = (
            f"serving {coordinator}, the other processes did not join"
            if process_id == 0
            else f"the coordinator {coordinator} did not answer, or not all processes joined"
        )
        print(
            f"rlkit: error: process {process_id} of {num_processes}: no job formed within "
            f"{timeout_s} s ({waited}; --join-timeout)",
            file=sys.stderr,
            flush=True,
        )
        os._exit(1)

    watchdog = threading.Timer(timeout_s, give_up)
    watchdog.daemon = True
    watchdog.start()
    try:
        jax.distributed.initialize(
            coordinator,
            num_processes,
            process_id,
            initialization_timeout=timeout_s + _GRACE_S,
        )
    finally:
        done.set()
        watchdog.cancel()


def process_count() -> int:
    """Processes in this job: 1 without `initialize`."""
    return jax.process_count()


def is_primary() -> bool:
    """Whether this process writes the run's files: process 0 (also in a one-process run)."""
    return jax.process_index() == 0


def to_host(tree: Any) -> Any:
    """`tree`'s arrays as host numpy arrays. A leaf spread over several processes is gathered
    (a collective: every process must call this at the same point, with the same tree); the
    others are read as `jax.device_get` reads them, so a one-process run is unchanged."""

    def spread(leaf: Any) -> bool:
        return isinstance(leaf, jax.Array) and not leaf.is_fully_addressable

    if not any(spread(leaf) for leaf in jax.tree.leaves(tree)):
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return jax.tree.map(
        lambda leaf: (
            multihost_utils.process_allgather(leaf, tiled=True)
            if spread(leaf)
            else jax.device_get(leaf)
        ),
        tree,
    )


def any_process(flag: bool) -> bool:
    """Whether `flag` holds on any process (a collective when there are several), so that
    every process takes the same decision, e.g. to stop after a signal reached one of them."""
    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.asarray(flag))))
