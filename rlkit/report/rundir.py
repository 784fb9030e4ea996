"""The run directory, rlkit's embedded default store.

    runs/<name>/config.yaml    everything needed to rerun it (`rlkit train --config` reads it)
    runs/<name>/metrics.jsonl  one row per iteration and seed
    runs/<name>/summary.json   final evaluation, wall/compile time, steps per second

Files are written whole to a temporary name and renamed, so a crash never leaves half a file;
metrics rows are appended and flushed after every chunk.
"""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import yaml

__all__ = ["RunDirectory", "package_versions"]

_PACKAGES = ("rlkit", "jax", "jaxlib", "flax", "optax", "chex", "gymnax", "numpy")


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that decide a run's numbers."""
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _json_value(x: Any) -> Any:
    value = np.asarray(x).item() if np.ndim(x) == 0 else np.asarray(x).tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RunDirectory:
    """Writes one run's files; `sink` is a runner sink appending metrics rows."""

    def __init__(self, root: str | Path, name: str, steps_per_iteration: int):
        self.path = Path(root) / name
        if self.path.exists() and any(self.path.iterdir()):
            raise ValueError(f"run directory {self.path} already exists; choose another --name")
        self.path.mkdir(parents=True, exist_ok=True)
        self.steps_per_iteration = steps_per_iteration
        self.metrics_path = self.path / "metrics.jsonl"

    def write_config(self, config: dict[str, Any]) -> None:
        record = {**config, "versions": package_versions()}
        _atomic_write(self.path / "config.yaml", yaml.safe_dump(record, sort_keys=False))

    def sink(self, first_iteration: int, metrics: dict[str, np.ndarray]) -> None:
        """Append rows {iteration, seed, env_steps, metric...} for a chunk of [seeds, K] metrics."""
        num_seeds, length = next(iter(metrics.values())).shape[:2]
        lines = []
        for k in range(length):
            iteration = first_iteration + k
            for seed in range(num_seeds):
                row = {
                    "iteration": iteration,
                    "seed": seed,
                    "env_steps": (iteration + 1) * self.steps_per_iteration,
                }
                row.update({name: _json_value(v[seed, k]) for name, v in metrics.items()})
                lines.append(json.dumps(row))
        with open(self.metrics_path, "a") as f:
            f.write("\n".join(lines) + "\n")
            f.flush()

    def write_summary(self, summary: dict[str, Any]) -> None:
        _atomic_write(self.path / "summary.json", json.dumps(summary, indent=2) + "\n")
