"""What a run is, resolved from the command line and a config file and checked whole before
anything is written: the algorithm, its Config, the environment and its parameters, the seeds.

Precedence: the algorithm's defaults < --preset < the config file's `config` < --steps < --set;
environment parameters: the file's `env_overrides` < --env-set. A run's config.yaml holds
exactly these keys (plus `versions` and `command`, which are recorded, not read), so
`--config runs/<name>/config.yaml` reruns a run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from rlkit.cli.errors import UsageError
from rlkit.report.metrics import DEFAULT_LOG_EVERY

__all__ = ["MAX_EVAL_EPISODES", "MAX_SEEDS", "RunSpec", "read_config_file", "resolve"]

MAX_SEEDS = 10_000
MAX_EVAL_EPISODES = 100_000
INT32_MAX = 2**31 - 1
SEED_LIMIT = 2**32  # PRNGKey takes a 32-bit seed (a larger one would only wrap around)

# Keys of a config file and the check of each value; versions and command are recorded only.
_FILE_KEYS = ("algo", "env", "env_overrides", "seeds", "seed", "preset", "log_every", "config")
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


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A config file's mapping, each key type-checked; UsageError naming the key otherwise."""
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
    unknown = sorted(set(map(str, data)) - set(_FILE_KEYS) - set(_RECORDED_ONLY))
    if unknown:
        raise UsageError(f"config file {path} has unknown keys: {', '.join(unknown)}")
    for key in ("algo", "env", "preset"):
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
) -> RunSpec:
    """Merge and check everything that defines a run (see the module docstring); builds the
    Config and the environment, so every ConfigError is raised here, before anything is
    written."""
    import agents
    import envs
    from rlkit.core.config import config_from_dict, parse_assignment

    file = read_config_file(config_file) if config_file else {}
    algo = algo or file.get("algo")
    if algo is None:
        raise UsageError("name the algorithm (see `rlkit algos`)")
    if file.get("algo") not in (None, algo):
        raise UsageError(f"config file is for {file['algo']}, not {algo}")
    module = agents.load(algo)
    env_name = env or file.get("env")
    if env_name is None:
        raise UsageError("--env is required (see `rlkit envs`)")
    preset = preset or file.get("preset")
    overrides: dict[str, Any] = {}
    if preset is not None:
        if preset not in module.PRESETS:
            choices = ", ".join(module.PRESETS) or "none"
            raise UsageError(f"unknown preset {preset!r} for {algo}; presets: {choices}")
        overrides.update(module.PRESETS[preset])
    overrides.update(file.get("config") or {})
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
    )
