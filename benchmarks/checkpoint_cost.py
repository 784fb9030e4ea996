"""What checkpointing costs `rlkit train`, and how big a 1M-transition buffer's checkpoint is.

    python benchmarks/checkpoint_cost.py [--pairs 3] [--only ppo|sac|size] [--steps N]

It measures and prints; it asserts nothing. Every run is a fresh `rlkit train` subprocess with
--no-progress, in its own run folder under one temporary directory, with the compilation cache
on in a temporary RLKIT_CACHE_DIR shared by all the runs; one warm-up run per configuration
fills the cache first, so that no measured run compiles and compile time is not what differs.

Cost, for (a) PPO on BalanceBall-v0 with --preset mlagents/3DBall (its budget, 500k steps, or
--steps) and (b) SAC on Pendulum-v1 with its defaults (20k steps, or --sac-steps): `--pairs`
pairs of runs, one with the default checkpoints (every fifth chunk, about 4 per run, plus the
last iteration) and one with --checkpoint-every 0 (the final checkpoint only); the order
within a pair alternates (default first, then final-only first, ...) so that a drift in the
machine's load does not favour one arm. From each run's summary.json it reports the median
train_seconds of each arm and their difference (the checkpoints the default arm adds: the time
the loop is blocked in saves plus what the background writes take from training), and the
median checkpoint_seconds / train_seconds of the default arm (the direct measure:
checkpoint_seconds is the loop's time blocked in save calls plus the final wait for the last
background write, and train_seconds holds every save call but not that final wait). Also: the
checkpoints each arm writes (counted with `rlkit train`'s own rule from the run's config), and
the bytes on disk of one (the final) checkpoint.

Size: `rlkit train --checkpoint-every 0` of DQN on CartPole-v1 and SAC on Pendulum-v1 whose
replay buffer holds `--transitions` (1M) transitions: buffer_size = learning_starts = 1M,
num_envs 100, total_steps = 1M plus one iteration, so the off-policy warm-up (uniform random
actions, inside init) fills the buffer and one iteration trains. It reports the final
checkpoint's bytes on disk (file sizes; and blocks allocated, as `du` counts), the raw bytes of
the restored state (`rlkit.load_run(run).state`: sum of the leaves' nbytes) and of its replay
buffer, and the save seconds (checkpoint_seconds: here one save, mostly its background write).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PPO = ("ppo", ["--env", "BalanceBall-v0", "--preset", "mlagents/3DBall"])
SAC = ("sac", ["--env", "Pendulum-v1"])
SIZE_ENVS = 100  # copies stepped in the warm-up that fills the buffer
SIZE_RUNS = {  # algo, env, steps per iteration at num_envs SIZE_ENVS (train_frequency x copies)
    "dqn": ("CartPole-v1", 10 * SIZE_ENVS),
    "sac": ("Pendulum-v1", 1 * SIZE_ENVS),
}


@dataclasses.dataclass(frozen=True)
class Run:
    """One finished `rlkit train` run: its folder, summary.json and the checkpoints it saved."""

    folder: Path
    summary: dict[str, Any]
    saved: tuple[int, ...]  # iterations of every checkpoint it saved, in order
    wall: float  # the subprocess's wall time, start-up and compile included
    load: float  # 1-minute load average when it finished

    @property
    def train_seconds(self) -> float:
        return float(self.summary["train_seconds"])

    @property
    def checkpoint_seconds(self) -> float:
        return float(self.summary["checkpoint_seconds"])

    @property
    def fraction(self) -> float:
        return self.checkpoint_seconds / self.train_seconds

    def final_bytes(self) -> tuple[int, int]:
        """(file bytes, allocated bytes) of the final checkpoint's folder."""
        from rlkit.training.checkpoints import checkpoint_bytes

        directory = self.folder / "checkpoints"
        step = int(self.summary["checkpoint"])
        return checkpoint_bytes(directory, step), _allocated_bytes(directory / str(step))


class Trainer:
    """Runs `rlkit train` in fresh subprocesses, each in its own folder under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {**os.environ, "RLKIT_CACHE_DIR": str(root / "xla-cache")}
        self.count = 0

    def train(self, algo: str, options: list[str], every: int | None) -> Run:
        """One run; `every`: --checkpoint-every (None: the default interval)."""
        self.count += 1
        name = f"{self.count:02d}-{algo}-{'default' if every is None else every}"
        argv = [algo, *options, "--runs-dir", str(self.root / "runs"), "--name", name]
        argv += ["--no-progress"] + ([] if every is None else ["--checkpoint-every", str(every)])
        command = [sys.executable, "-m", "rlkit.cli", "train", *argv]
        start = time.perf_counter()
        done = subprocess.run(command, env=self.env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-15:])
            sys.exit(f"`rlkit train {' '.join(argv)}` failed ({done.returncode}):\n{tail}")
        folder = self.root / "runs" / name
        summary = json.loads((folder / "summary.json").read_text())
        return Run(folder, summary, _saved_iterations(folder, every), wall, os.getloadavg()[0])


def _saved_iterations(folder: Path, every: int | None) -> tuple[int, ...]:
    """The iterations at which the run in `folder` saved a checkpoint, by `rlkit train`'s rule
    (rlkit.cli.run.Run.saver) on its chunks (rlkit.cli.train.chunk_length); the checkpoints
    kept on disk must be the last of them."""
    from rlkit.cli import spec as specs
    from rlkit.cli.train import CHUNKS_PER_CHECKPOINT, chunk_length
    from rlkit.report.metrics import log_interval
    from rlkit.training.checkpoints import Checkpoints

    spec = specs.resolve(None, config_file=str(folder / "config.yaml"))
    algo = spec.module.make(spec.config, spec.env, spec.env_params)
    last = algo.num_iterations
    chunk = max(
        1, min(chunk_length(last, log_interval(algo.steps_per_iteration, spec.log_every)), last)
    )
    interval = CHUNKS_PER_CHECKPOINT * chunk if every is None else every
    saved: list[int] = []
    iteration = 0
    while iteration < last:
        iteration = min(iteration + chunk, last)
        previous = saved[-1] if saved else 0
        if (interval > 0 and iteration // interval > previous // interval) or iteration >= last:
            saved.append(iteration)
    kept = Checkpoints(folder / "checkpoints").steps()
    if kept != saved[-len(kept) :]:
        print(f"warning: {folder.name} keeps checkpoints {kept}, expected the last of {saved}")
    return tuple(saved)


def _allocated_bytes(root: Path) -> int:
    """Disk blocks allocated to the files under `root`, in bytes (what `du` counts)."""
    total = 0
    for folder, _, files in os.walk(root):
        total += sum(os.stat(os.path.join(folder, f)).st_blocks * 512 for f in files)
    return total


def _mib(n: float) -> str:
    return f"{n / 2**20:,.2f} MiB"


# -- cost ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Cost:
    title: str
    default: list[Run]
    final_only: list[Run]


def measure_cost(trainer: Trainer, title: str, algo: str, options: list[str], pairs: int) -> Cost:
    print(f"\n{title}: warm-up run (fills the compilation cache)", flush=True)
    warm = trainer.train(algo, options, None)
    print(
        f"  warm-up: compile {warm.summary['compile_seconds']:.1f} s, "
        f"train {warm.train_seconds:.2f} s, wall {warm.wall:.1f} s",
        flush=True,
    )
    cost = Cost(title, [], [])
    for pair in range(pairs):
        order = [None, 0] if pair % 2 == 0 else [0, None]
        for every in order:
            run = trainer.train(algo, options, every)
            (cost.default if every is None else cost.final_only).append(run)
            print(
                f"  pair {pair + 1} {'default   ' if every is None else 'final-only'}: "
                f"train {run.train_seconds:7.2f} s, checkpoint {run.checkpoint_seconds:6.3f} s "
                f"({len(run.saved)} saved), compile {run.summary['compile_seconds']:.1f} s, "
                f"wall {run.wall:.1f} s, load {run.load:.1f}",
                flush=True,
            )
    return cost


def print_costs(costs: list[Cost]) -> None:
    print(
        "\nCheckpoint cost (medians over the pairs; train s: summary train_seconds; ckpt s: "
        "checkpoint_seconds)"
    )
    head = (
        f"{'config':<34} {'pairs':>5} {'default s':>9} {'final s':>8} {'diff s':>7} "
        f"{'diff %':>6} {'ckpt/train':>10} {'ckpt s':>7} {'final ckpt s':>12} "
        f"{'saves':>5} {'one checkpoint':>15}"
    )
    print(head)
    print("-" * len(head))
    for c in costs:
        d = statistics.median(r.train_seconds for r in c.default)
        f = statistics.median(r.train_seconds for r in c.final_only)
        frac = statistics.median(r.fraction for r in c.default)
        ck = statistics.median(r.checkpoint_seconds for r in c.default)
        ck_final = statistics.median(r.checkpoint_seconds for r in c.final_only)
        saves = f"{len(c.default[0].saved)}/{len(c.final_only[0].saved)}"
        size = c.default[0].final_bytes()[0]
        print(
            f"{c.title:<34} {len(c.default):>5} {d:>9.2f} {f:>8.2f} {d - f:>+7.2f} "
            f"{100 * (d - f) / f:>+5.1f}% {100 * frac:>9.2f}% {ck:>7.3f} {ck_final:>12.3f} "
            f"{saves:>5} {_mib(size):>15}"
        )
    print(
        "default s / final s: median train_seconds with the default checkpoints / with "
        "--checkpoint-every 0; diff: default - final (the intermediate checkpoints: both arms "
        "save the final one); ckpt/train: median checkpoint_seconds / train_seconds of the "
        "default arm; ckpt s, final ckpt s: median checkpoint_seconds of each arm; saves: "
        "checkpoints written, default/final-only; one checkpoint: file bytes of the final one."
    )
    print("Per-pair spread (train s, default - final, in pair order):")
    for c in costs:
        diffs = [
            a.train_seconds - b.train_seconds for a, b in zip(c.default, c.final_only, strict=True)
        ]
        d = [r.train_seconds for r in c.default]
        f = [r.train_seconds for r in c.final_only]
        print(
            f"  {c.title}: diffs {', '.join(f'{x:+.2f}' for x in diffs)}; default "
            f"{min(d):.2f}..{max(d):.2f}, final-only {min(f):.2f}..{max(f):.2f}"
        )


# -- size ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Size:
    title: str
    run: Run
    transitions: int
    state_bytes: int
    replay_bytes: int
    leaves: list[str]


def measure_size(trainer: Trainer, algo: str, transitions: int) -> Size:
    import jax
    import numpy as np

    import rlkit

    env, per_iteration = SIZE_RUNS[algo]
    sets = [f"buffer_size={transitions}", f"learning_starts={transitions}"]
    sets.append(f"num_envs={SIZE_ENVS}")
    options = ["--env", env, "--steps", str(transitions + per_iteration)]
    options += [arg for s in sets for arg in ("--set", s)]
    title = f"{algo} {env}, {transitions:,} transitions"
    print(f"\n{title}: rlkit train {algo} {' '.join(options)} --checkpoint-every 0", flush=True)
    run = trainer.train(algo, options, 0)
    print(
        f"  compile {run.summary['compile_seconds']:.1f} s, train {run.train_seconds:.2f} s, "
        f"checkpoint {run.checkpoint_seconds:.3f} s, wall {run.wall:.1f} s",
        flush=True,
    )
    state = rlkit.load_run(run.folder).state
    replay = state.replay
    held = int(np.asarray(replay.num_rows).reshape(-1)[0])
    lanes = jax.tree.leaves(replay.storage)[0].shape[2]  # [seeds, rows, copies, ...]
    leaves = [
        f"{jax.tree_util.keystr(path)} {leaf.dtype}{list(leaf.shape)} {_mib(leaf.nbytes)}"
        for path, leaf in jax.tree_util.tree_flatten_with_path(replay.storage)[0]
    ]
    return Size(
        title,
        run,
        held * lanes,
        sum(int(x.nbytes) for x in jax.tree.leaves(state)),
        sum(int(x.nbytes) for x in jax.tree.leaves(replay)),
        leaves,
    )


def print_sizes(sizes: list[Size]) -> None:
    print("\nCheckpoint size with a full replay buffer (--checkpoint-every 0: one save)")
    head = (
        f"{'config':<36} {'held':>9} {'on disk':>12} {'du':>12} {'state raw':>12} "
        f"{'replay raw':>12} {'disk/raw':>8} {'ckpt s':>7} {'train s':>7}"
    )
    print(head)
    print("-" * len(head))
    for s in sizes:
        disk, allocated = s.run.final_bytes()
        print(
            f"{s.title:<36} {s.transitions:>9,} {_mib(disk):>12} {_mib(allocated):>12} "
            f"{_mib(s.state_bytes):>12} {_mib(s.replay_bytes):>12} "
            f"{disk / s.state_bytes:>8.2f} {s.run.checkpoint_seconds:>7.2f} "
            f"{s.run.train_seconds:>7.2f}"
        )
    print(
        "held: transitions in the restored buffer (rows x copies); on disk: the final "
        "checkpoint's file bytes (checkpoint_bytes); du: blocks allocated; state raw / replay "
        "raw: sum of nbytes of the restored state's leaves / of its replay buffer's; ckpt s: "
        "checkpoint_seconds (the save call and the wait for its write)."
    )
    for s in sizes:
        print(f"  {s.title} buffer leaves: " + "; ".join(s.leaves))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=3, help="default/final-only run pairs")
    p.add_argument("--only", choices=("ppo", "sac", "size"), help="one part only")
    p.add_argument("--steps", type=int, help="PPO steps (default: the preset's 500k)")
    p.add_argument("--sac-steps", type=int, help="SAC cost steps (default: its 20k)")
    p.add_argument(
        "--transitions", type=int, default=1_000_000, help="replay buffer size of the size runs"
    )
    p.add_argument("--workdir", help="keep the runs here (default: a temporary directory)")
    args = p.parse_args()
    for name in ("pairs", "steps", "sac_steps", "transitions"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.transitions % SIZE_ENVS:
        p.error(f"--transitions must be a multiple of {SIZE_ENVS}")

    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="rlkit-checkpoint-cost-") as tmp:
        root = Path(args.workdir) if args.workdir else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        trainer = Trainer(root)
        costs, sizes = [], []
        if args.only in (None, "ppo"):
            options = PPO[1] + ([] if args.steps is None else ["--steps", str(args.steps)])
            title = f"ppo 3DBall BalanceBall-v0 {args.steps or 500_000:,}"
            costs.append(measure_cost(trainer, title, PPO[0], options, args.pairs))
        if args.only in (None, "sac"):
            options = SAC[1] + ([] if args.sac_steps is None else ["--steps", str(args.sac_steps)])
            title = f"sac Pendulum-v1 {args.sac_steps or 20_000:,}"
            costs.append(measure_cost(trainer, title, SAC[0], options, args.pairs))
        if args.only in (None, "size"):
            sizes = [measure_size(trainer, algo, args.transitions) for algo in SIZE_RUNS]
        if costs:
            print_costs(costs)
        if sizes:
            print_sizes(sizes)
        print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
