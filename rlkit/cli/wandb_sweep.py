"""`rlkit sweep --wandb`: a Weights & Biases sweep definition whose agents run `rlkit train`.

W&B's server picks the points (grid, random or Bayesian search over the given values) and each
`wandb agent` runs one trial as

    /usr/bin/env rlkit train ALGO --env ENV --seeds S [the sweep's other flags] --wandb \\
        --no-progress --learning_rate=0.001 --gamma=0.99

(W&B's `${args}` passes every swept value as `--key=value`, which `rlkit train` accepts as
`--set key=value`). Each trial is an ordinary run directory and W&B run; the search runs on
W&B's server, so it needs an account and network (this command writes the file and nothing
else: the file is checked against wandb's own command expansion in tests/test_sweep.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from rlkit.cli.errors import UsageError

__all__ = ["definition", "write_definition"]

# What W&B ranks trials by: the W&B sink logs the mean episode return under this key.
METRIC = "Environment/Cumulative Reward"


def definition(spec: Any, grid: dict[str, list], args: argparse.Namespace) -> dict[str, Any]:
    """The sweep definition (W&B's sweep YAML) as a dict."""
    command = ["${env}", "rlkit", "train", spec.algo, "--env", spec.env_name]
    command += ["--seeds", str(spec.seeds), "--seed", str(spec.seed)]
    if args.steps is not None:
        command += ["--steps", str(args.steps)]
    if args.preset is not None:
        command += ["--preset", args.preset]
    if args.config is not None:
        command += ["--config", str(Path(args.config).resolve())]
    for item in args.set:
        command += ["--set", item]
    for item in args.env_set:
        command += ["--env-set", item]
    if args.log_every is not None:
        command += ["--log-every", str(args.log_every)]
    command += ["--runs-dir", str(Path(args.runs_dir).resolve()), "--wandb", "--no-progress"]
    command.append("${args}")
    parameters = {
        k: {"values": [list(v) if isinstance(v, tuple) else v for v in values]}
        for k, values in grid.items()
    }
    return {
        "name": args.name or f"{spec.algo}-{spec.env_name}",
        "method": "grid",
        "metric": {"name": METRIC, "goal": "maximize"},
        "parameters": parameters,
        "command": command,
    }


def write_definition(spec: Any, grid: dict[str, list], args: argparse.Namespace) -> int:
    """Write the definition to --out (default wandb-sweep.yaml, not overwritten) and say how
    to start it."""
    path = Path(args.out or "wandb-sweep.yaml")
    if path.exists():
        raise UsageError(f"{path} already exists; choose another --out")
    text = yaml.safe_dump(definition(spec, grid, args), sort_keys=False)
    try:
        path.write_text(text)
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror}") from error
    print(f"rlkit: wrote the W&B sweep definition {path}", file=sys.stderr)
    print(
        f"rlkit: start it with `wandb sweep {path}`, then `wandb agent ENTITY/PROJECT/ID` on "
        "each machine",
        file=sys.stderr,
    )
    return 0
