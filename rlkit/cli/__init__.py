"""The `rlkit` command line (train, eval, algos, envs) and `load_run`: the only layer of rlkit
that imports agents/ and envs/.

    rlkit.cli.main      the parser and the failure rule (one line; exit 2, 1 or 130)
    rlkit.cli.spec      a run's input, resolved and checked whole before anything is written
    rlkit.cli.train     `rlkit train`: fresh runs, --resume, checkpoints on signals
    rlkit.cli.run       one run's folder, sinks and checkpoints
    rlkit.cli.evaluate  `rlkit eval` and `load_run` (a run's policy and config from Python)
    rlkit.cli.listing   `rlkit algos`, `rlkit envs`
"""

from __future__ import annotations

from rlkit.cli.main import main

__all__ = ["main"]
