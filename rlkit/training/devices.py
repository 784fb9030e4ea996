"""Spreading independent seeds over devices.

Seeds never exchange data, so a run of S seeds splits into D equal groups, one per device, with
no communication: the seed axis of every state leaf is sharded over a one-axis mesh. On a GPU
or TPU host the devices are the accelerators. On a CPU host XLA exposes one device by default
and runs one seed group on one core; `use_cpu_cores` asks JAX for one CPU device per core
before its backend starts, so a multi-seed run keeps every core busy (a single seed is
unaffected: it runs on the first device).

`use_cpu_cores` asks a private JAX function whether the backend has started (`_backends_started`);
where this jax lacks it, it changes nothing and multi-seed runs share one core, as by default.
"""

from __future__ import annotations

import importlib
import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["SEED_AXIS", "seed_sharding", "use_cpu_cores"]

SEED_AXIS = "seeds"


def use_cpu_cores(count: int | None = None) -> bool:
    """Expose `count` (default: the usable cores) CPU devices to JAX; True if it took effect.

    Must run before JAX's first computation; afterwards, or when the user already chose a
    device count (the `jax_num_cpu_devices` option or XLA's
    --xla_force_host_platform_device_count), it changes nothing.
    """
    if _backends_started() is not False:  # started, or this jax cannot tell: leave it alone
        return False
    if jax.config.jax_num_cpu_devices >= 0:
        return False
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return False
    if count is None:
        count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    jax.config.update("jax_num_cpu_devices", max(1, int(count or 1)))
    return True


def _backends_started() -> bool | None:
    """Whether JAX's backends have started (the device count is then fixed, and setting
    `jax_num_cpu_devices` raises); None when this jax lacks the private function that says so
    (`jax._src.xla_bridge.backends_are_initialized`, jax 0.9.2). Remove the guard once JAX
    exposes that test publicly (for example in `jax.extend.backend`)."""
    try:
        xla_bridge = importlib.import_module("jax._src.xla_bridge")
    except ImportError:
        return None
    started = getattr(xla_bridge, "backends_are_initialized", None)
    return None if started is None else bool(started())


def seed_sharding(num_seeds: int) -> NamedSharding | None:
    """How to place arrays whose leading axis is the seed axis: split over the largest number
    of local devices that divides `num_seeds` evenly; None (default placement) for one device
    or one seed.

    In a job of several processes (rlkit.training.distributed) the axis is first split into
    contiguous equal slices, one per process in process order (ValueError when `num_seeds`
    does not divide), each over the largest count of that process's devices dividing its
    slice: a global mesh, the same on every process."""
    processes = jax.process_count()
    if num_seeds % processes:
        raise ValueError(f"{num_seeds} seeds do not divide over {processes} processes")
    local = jax.local_devices()
    per_process = num_seeds // processes
    count = max(d for d in range(1, len(local) + 1) if per_process % d == 0)
    if count * processes < 2:
        return None
    if processes == 1:
        devices = local[:count]
    else:
        devices = [
            d
            for p in range(processes)
            for d in [d for d in jax.devices() if d.process_index == p][:count]
        ]
    mesh = Mesh(np.asarray(devices), (SEED_AXIS,))
    return NamedSharding(mesh, PartitionSpec(SEED_AXIS))
