"""What a run is, resolved from the command line and a config file and checked whole before
anything is written: the algorithm, its Config, the environment and its parameters, the seeds.

Precedence: the algorithm's defaults < --preset < the config file's `config` (and `steps`) <
--steps < --set; environment parameters: the file's `env_overrides` < --env-set. A run's
config.yaml holds exactly these keys (plus `versions` and `command`, which are recorded, not
read), so `--config runs/<name>/config.yaml` reruns a run.

Presets and tuned defaults come from paper_configs (its module docstring): --preset NAME takes
the hyperparameters of the paper config NAME of the algorithm. Without --preset and --config,
the paper config marked `default_for_env` for (algo, env), if any, is the preset (RL Zoo's
tuned per-environment defaults), said in one line on stderr; --preset defaults (the CLI's
--defaults) keeps the algorithm's reference defaults. The paper config used is recorded as
`paper_config`. A paper config is also a config file: its own keys (paper_configs.PAPER_KEYS)
are checked by paper_configs.check, and its `steps` is total_steps.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import yaml

import paper_configs
from rlkit.cli.errors import UsageError
from rlkit.report.metrics import DEFAULT_LOG_EVERY

__all__ = [
    "MAX_EVAL_EPISODES",
    "MAX_SEEDS",
    "REFERENCE_DEFAULTS",
    "RunSpec",
    "read_config_file",
    "resolve",
    "resolve_args",
]

MAX_SEEDS = 10_000
MAX_EVAL_EPISODES = 100_000
INT32_MAX = 2**31 - 1
SEED_LIMIT = 2**32  # PRNGKey takes a 32-bit seed (a larger one would only wrap around)

# Keys of a config file and the check of each value; versions and command are recorded only.
_FILE_KEYS = (
    "algo",
    "env",
    "env_overrides",
    "seeds",
    "seed",
    "preset",
    "paper_config",
    "log_every",
    "config",
)
REFERENCE_DEFAULTS = "defaults"  # the preset name that means the algorithm's own defaults
_RECORDED_ONLY = ("versions", "command")


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """A checked run: the algorithm's name and module, its built Config, the environment's name
    and parameter overrides, the environment and its params, the seeds."""

    algo: str
    module: Any
    config: Any
    env_name: str
    env_overrides: dict[str, Any]
    env: Any
    env_params: Any
    seeds: int
    seed: int
    preset: str | None
    log_every: int
    paper_config: str | None = None

    def record(self, command: str) -> dict[str, Any]:
        """The run's config.yaml (without versions, which the run directory adds)."""
        from rlkit.core.config import config_to_dict

        return {
            "algo": self.algo,
            "env": self.env_name,
            "env_overrides": self.env_overrides,
            "seeds": self.seeds,
            "seed": self.seed,
            "preset": self.preset,
            "paper_config": self.paper_config,
            "log_every": self.log_every,
            "config": config_to_dict(self.config),
            "command": command,
        }


def check_int(name: str, value: Any, low: int, high: int) -> int:
    """`value` as an int in [low, high], else UsageError naming `name` and the range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise UsageError(f"{name} must be in [{low}, {high}], got {value}")
    return value


def read_config_file(path: str | Path, sweep: bool = False) -> dict[str, Any]:
    """A config file's mapping, each key type-checked; UsageError naming the key otherwise.
    With `sweep`, a `grid` mapping (rlkit sweep's) is allowed too; its values are the sweep's
    to check."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except IsADirectoryError as error:
        raise UsageError(f"config file {path} is a directory") from error
    except OSError as error:
        raise UsageError(f"cannot read config file {path}: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise UsageError(f"config file {path} is not text") from error
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise UsageError(f"config file {path} is not valid YAML{where}") from error
    if not isinstance(data, dict):
        raise UsageError(f"config file {path} must hold a mapping, got {type(data).__name__}")
    allowed = {*_FILE_KEYS, *_RECORDED_ONLY, *paper_configs.PAPER_KEYS, *(["grid"] * sweep)}
    unknown = sorted(set(map(str, data)) - allowed)
    if unknown:
        raise UsageError(f"config file {path} has unknown keys: {', '.join(unknown)}")
    if any(key in data for key in paper_configs.PAPER_KEYS):
        paper_configs.check(data, path)
    for key in ("algo", "env", "preset", "paper_config"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise UsageError(f"config file {path}: {key} must be a string, got {data[key]!r}")
    for key in ("config", "env_overrides"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise UsageError(f"config file {path}: {key} must be a mapping, got {data[key]!r}")
    limits = (("seeds", 1, MAX_SEEDS), ("seed", 0, SEED_LIMIT - 1), ("log_every", 1, INT32_MAX))
    for key, low, high in limits:
        if data.get(key) is not None:
            check_int(f"config file {path}: {key}", data[key], low, high)
    return data


def resolve(
    algo: str | None,
    *,
    env: str | None = None,
    preset: str | None = None,
    config_file: str | None = None,
    steps: int | None = None,
    sets: list[str] = (),
    env_sets: list[str] = (),
    seeds: int | None = None,
    seed: int | None = None,
    log_every: int | None = None,
    sweep: bool = False,
) -> RunSpec:
    """Merge and check everything that defines a run (see the module docstring); builds the
    Config and the environment, so every ConfigError is raised here, before anything is
    written. `sweep`: the config file may hold rlkit sweep's `grid` (not read here)."""
    import agents
    import envs
    from rlkit.core.config import config_from_dict, parse_assignment

    file = read_config_file(config_file, sweep) if config_file else {}
    algo = algo or file.get("algo")
    if algo is None:
        raise UsageError("name the algorithm (see `rlkit algos`)")
    if file.get("algo") not in (None, algo):
        raise UsageError(f"config file is for {file['algo']}, not {algo}")
    module = agents.load(algo)
    env_name = env or file.get("env")
    if env_name is None:
        raise UsageError("--env is required (see `rlkit envs`)")
    if preset is None and config_file is None:
        preset = _tuned_default(algo, env_name)
    preset = preset or file.get("preset")
    paper_config = file.get("paper_config")
    if config_file and "name" in file:
        paper_config = paper_configs.label(Path(config_file))
    overrides: dict[str, Any] = {}
    if preset == REFERENCE_DEFAULTS:
        preset = None
    elif preset is not None:
        if preset not in module.PRESETS:
            choices = ", ".join(module.PRESETS) or "none"
            raise UsageError(f"unknown preset {preset!r} for {algo}; presets: {choices}")
        overrides.update(module.PRESETS[preset])
        found = paper_configs.preset_file(algo, preset)
        if found is not None and not (config_file and "name" in file):
            paper_config = paper_configs.label(found)
    overrides.update(paper_configs.hyperparameters(file))
    if steps is not None:
        overrides["total_steps"] = steps
    overrides.update(dict(parse_assignment(item) for item in sets))
    seeds = check_int("--seeds", seeds if seeds is not None else file.get("seeds", 1), 1, MAX_SEEDS)
    seed = check_int("--seed", seed if seed is not None else file.get("seed", 0), 0, SEED_LIMIT - 1)
    if log_every is None:
        log_every = file.get("log_every", DEFAULT_LOG_EVERY)
    log_every = check_int("--log-every", log_every, 1, INT32_MAX)
    env_overrides = {**(file.get("env_overrides") or {})}
    env_overrides.update(dict(parse_assignment(item) for item in env_sets))
    environment, env_params = envs.make(env_name, **env_overrides)
    config = config_from_dict(module.Config, overrides)
    return RunSpec(
        algo,
        module,
        config,
        env_name,
        env_overrides,
        environment,
        env_params,
        seeds,
        seed,
        preset,
        log_every,
        paper_config,
    )


def resolve_args(args: Any, sweep: bool = False) -> RunSpec:
    """`resolve` of a parsed command line's run options (algo, --env, --preset, --config,
    --steps, --set, --env-set, --seeds, --seed and, where the command has it, --log-every)."""
    return resolve(
        args.algo,
        env=args.env,
        preset=args.preset,
        config_file=args.config,
        steps=args.steps,
        sets=args.set,
        env_sets=args.env_set,
        seeds=args.seeds,
        seed=args.seed,
        log_every=getattr(args, "log_every", None),
        sweep=sweep,
    )


def _tuned_default(algo: str, env: str) -> str | None:
    """The preset name of the tuned default for (algo, env), said on stderr; None if none."""
    path = paper_configs.tuned_default(algo, env)
    if path is None:
        return None
    print(
        f"rlkit: using tuned defaults {paper_configs.label(path)} "
        f"(--defaults for {algo}'s reference defaults)",
        file=sys.stderr,
    )
    return paper_configs.load(path)["name"]
