"""The run directory, rlkit's embedded default store.

    runs/<name>/config.yaml            everything needed to rerun it (`rlkit train --config`)
    runs/<name>/metrics.jsonl          one row per log interval and seed (rlkit.report.metrics)
    runs/<name>/summary.json           final evaluation, wall/compile time, steps per second
    runs/<name>/checkpoints/<step>/    orbax checkpoints (rlkit.training.checkpoints)
    runs/<name>/tensorboard/seed_<i>/  TensorBoard event files (rlkit.report.tensorboard)

config.yaml and summary.json are written whole to a temporary name and renamed, so a crash
never leaves half a file; metrics rows are appended and flushed after every chunk, and a
resumed run first drops the rows after its checkpoint (`truncate`), so the file holds each
iteration once. Files get the permissions a user's files normally get (0666 less the umask).
The folder itself is created by rlkit.report.runs.create_run_folder.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from rlkit.report.metrics import dumps

__all__ = ["RunDirectory", "atomic_write", "package_versions"]

_PACKAGES = (
    "rlkit",
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "chex",
    "gymnax",
    "numpy",
    "orbax-checkpoint",
)


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that decide a run's numbers."""
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def atomic_write(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all: a temporary file beside it (created 0666 less
    the umask, like any file the user writes), flushed to disk, then renamed over `path`."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class RunDirectory:
    """Writes one run's files in an existing folder: config, metrics rows, summary."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.metrics_path = self.path / "metrics.jsonl"

    def write_config(self, config: dict[str, Any]) -> None:
        record = {**config, "versions": package_versions()}
        atomic_write(self.path / "config.yaml", yaml.safe_dump(record, sort_keys=False))

    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        """Append metrics rows (rlkit.report.metrics.aggregate) as JSON lines and flush."""
        if not rows:
            return
        with open(self.metrics_path, "a") as f:
            f.write("".join(dumps(row) + "\n" for row in rows))
            f.flush()

    def truncate(self, iterations: int) -> None:
        """Keep only the rows of the first `iterations` iterations (a resume from a checkpoint
        saved after them), and drop a last line a kill left half-written."""
        if not self.metrics_path.exists():
            return
        kept = []
        for line in self.metrics_path.read_text().splitlines(keepends=True):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                break
            if not line.endswith("\n") or row["iteration"] >= iterations:
                break
            kept.append(line)
        atomic_write(self.metrics_path, "".join(kept))

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write(self.path / "summary.json", dumps(summary, indent=2) + "\n")
