"""The command line's two kinds of expected failure, each shown as one line.

UsageError (exit 2): the input cannot define a run (an unknown name, a value out of range, an
unreadable config file); raised before anything is written. rlkit.core.config.ConfigError is
the same kind. RunFailure (exit 1): the run started and cannot go on (it diverged, the disk is
full, a checkpoint is unreadable); what was saved is kept. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

__all__ = ["EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_USAGE", "RunFailure", "UsageError"]

EXIT_USAGE = 2
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit status 2."""


class RunFailure(Exception):
    """A run that cannot go on: reported as one line, exit status 1."""
