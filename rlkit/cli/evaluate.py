"""A saved run, back in Python (`load_run`) and evaluated again (`rlkit eval RUN`).

    run = rlkit.load_run("runs/ppo-CartPole-v1-20261201-120000")
    run.config.learning_rate, run.iteration          # its Config and how far it trained
    action = run.act(obs, jax.random.PRNGKey(0))     # seed 0's policy; deterministic by default

The run is rebuilt from its config.yaml (algorithm, environment, hyperparameters) and its
newest readable checkpoint (or the one named), restored onto this process's devices.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from rlkit.cli import spec as specs
from rlkit.cli.errors import RunFailure, UsageError

__all__ = ["LoadedRun", "load_run", "run_eval"]


@dataclasses.dataclass(frozen=True)
class LoadedRun:
    """A run restored from disk.

    folder: the run directory. spec: rlkit.cli.spec.RunSpec (algo, config, env, env_params,
    seeds, seed). algo: the rebuilt Algorithm. state: the TrainState of every seed (leaves
    [seeds, ...]). iteration: training iterations done when the checkpoint was saved.
    """

    folder: Path
    spec: Any
    algo: Any
    state: Any
    iteration: int

    @property
    def config(self) -> Any:
        """The run's Config (its hyperparameters)."""
        return self.spec.config

    def policy_params(self, seed: int = 0) -> Any:
        """What `act` needs of seed `seed`: weights and normaliser statistics."""
        import jax

        if not 0 <= seed < self.spec.seeds:
            raise IndexError(f"seed {seed} is not one of the run's {self.spec.seeds} seed(s)")
        return self.algo.policy_params(jax.tree.map(lambda x: x[seed], self.state))

    def act(
        self,
        obs: Any,
        key: Any = None,
        deterministic: bool = True,
        seed: int = 0,
        action_mask: Any = None,
    ) -> Any:
        """Seed `seed`'s actions for a batch of observations [B, ...] (key: needed to sample)."""
        import jax

        key = jax.random.PRNGKey(0) if key is None else key
        return self.algo.act(self.policy_params(seed), obs, key, deterministic, action_mask)


def load_run(folder: str | Path) -> LoadedRun:
    """The run in `folder` with its newest readable checkpoint (a warning on stderr names any
    unreadable newer one). UsageError when `folder` is not a run directory;
    rlkit.training.checkpoints.CheckpointError when it has no usable checkpoint."""
    from rlkit.training.checkpoints import Checkpoints
    from rlkit.training.runner import Runner

    folder = Path(folder)
    config_file = folder / "config.yaml"
    if not config_file.is_file():
        raise UsageError(f"{folder} is not a run directory (it has no config.yaml)")
    spec = specs.resolve(None, config_file=str(config_file))
    algo = spec.module.make(spec.config, spec.env, spec.env_params)
    like = Runner(algo).abstract_state(spec.seeds)
    checkpoints = Checkpoints(folder / "checkpoints")
    try:
        expect = {"algo": spec.algo, "env": spec.env_name, "seeds": spec.seeds}
        iteration, state, warnings = checkpoints.restore_latest(like, expect)
    finally:
        checkpoints.close()
    for warning in warnings:
        print(f"rlkit: warning: {warning}", file=sys.stderr)
    return LoadedRun(folder, spec, algo, state, iteration)


def run_eval(args: Any) -> int:
    """`rlkit eval RUN`: every seed's saved policy for --episodes episodes; prints the returns.

    The episodes start from the keys of the run's own final evaluation (unless --seed says
    otherwise), so `rlkit eval RUN --episodes E` with the run's --eval-episodes repeats the
    numbers in its summary.json."""
    import numpy as np

    from rlkit.training.checkpoints import CheckpointError
    from rlkit.training.runner import Runner

    specs.check_int("--episodes", args.episodes, 1, specs.MAX_EVAL_EPISODES)
    if args.seed is not None:
        specs.check_int("--seed", args.seed, 0, specs.SEED_LIMIT - 1)
    try:
        run = load_run(args.run)
    except CheckpointError as error:
        raise RunFailure(str(error)) from error
    seed = run.spec.seed if args.seed is None else args.seed
    deterministic = not args.stochastic
    result = Runner(run.algo).final_evaluation(
        run.state, seed, run.spec.seeds, args.episodes, deterministic
    )
    returns = np.asarray(result["returns"], np.float64)
    kind = "deterministic" if deterministic else "stochastic"
    print(
        f"rlkit: {run.folder} at iteration {run.iteration} of {run.algo.num_iterations}: "
        f"{returns.shape[1]} {kind} episode(s) per seed"
    )
    for index, per_seed in enumerate(returns):
        print(f"  seed {index}: mean return {per_seed.mean():.3f} (std {per_seed.std():.3f})")
    print(f"  all seeds: mean return {returns.mean():.3f}")
    return 0
