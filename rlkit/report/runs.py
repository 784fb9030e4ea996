"""Where runs live: creating a run's folder atomically under a unique name, and finding one.

`create_run_folder(root, name)` makes `root/name` with one `mkdir` (atomic: of two processes
asking for the same folder, exactly one gets it). An explicit name that is taken is an error,
so a run (and its checkpoints) is never overwritten; the default name ALGO-ENV-TIME gets a
suffix -2, -3, ... when several runs start in the same second. Folders and files get the
permissions a user's files normally get (0777 / 0666 less the umask).
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

__all__ = ["RunFolderError", "create_run_folder", "default_run_name"]

_MAX_SUFFIX = 1000


class RunFolderError(Exception):
    """A run folder that cannot be made: `message` says why in one line."""


def default_run_name(algo: str, env: str) -> str:
    """ALGO-ENV-YYYYmmdd-HHMMSS."""
    return f"{algo}-{env}-{time.strftime('%Y%m%d-%H%M%S')}"


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise RunFolderError(f"run name {name!r} must be a plain folder name (no '/')")


def create_run_folder(root: str | Path, name: str | None, default: str) -> Path:
    """Create and return root/name (root/default[-N] when name is None). RunFolderError when
    root cannot hold it (not a folder, not writable) or an explicit name is taken."""
    root = Path(root)
    if name is not None:
        _check_name(name)
    if root.exists() and not root.is_dir():
        raise RunFolderError(f"--runs-dir {root} is not a directory")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunFolderError(f"cannot create --runs-dir {root}: {error.strerror}") from error
    candidates = (
        [name]
        if name is not None
        else [default] + [f"{default}-{i}" for i in range(2, _MAX_SUFFIX)]
    )
    for candidate in candidates:
        path = root / candidate
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            if name is not None:
                has = (
                    "with checkpoints: continue it with --resume" if _has_checkpoints(path) else ""
                )
                hint = f" ({has} {path})" if has else ""
                raise RunFolderError(
                    f"run directory {path} already exists{hint}; choose another --name"
                ) from None
        except OSError as error:
            reason = "disk full" if error.errno == errno.ENOSPC else error.strerror
            raise RunFolderError(f"cannot create run directory {path}: {reason}") from error
    raise RunFolderError(f"no free run name like {default} under {root}")


def _has_checkpoints(path: Path) -> bool:
    folder = path / "checkpoints"
    return folder.is_dir() and any(folder.iterdir())
