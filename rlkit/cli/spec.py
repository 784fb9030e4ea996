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

`--env gym:ENV_ID` is a gymnasium environment (rlkit.bridges.gymnasium_env), built with the
Config's num_envs copies and stepped on the host: one seed, no sweep, search or resume, and
only the agents that see observations alone (HOST_ALGOS); --env-set keywords go to gymnasium.
`--env unity:PATH` / `unity:editor` is a Unity ML-Agents behaviour (rlkit.cli.unity_env,
rlkit.bridges.unity), a host environment too: resolving it connects to Unity, and the Config's
num_envs becomes Unity's agent count (one line on stderr when the config said otherwise); the
run's Unity options are its `unity` key; --env-set values are Unity's environment parameters.
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
    "is_host_env",
    "read_config_file",
    "refuse_host_env",
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
    "unity",
)
REFERENCE_DEFAULTS = "defaults"  # the preset name that means the algorithm's own defaults
GYMNASIUM_PREFIX = "gym:"  # --env gym:ENV_ID: a gymnasium environment (rlkit.bridges)
UNITY_PREFIX = "unity:"  # --env unity:PATH or unity:editor: Unity ML-Agents (rlkit.bridges)
HOST_ALGOS = ("reinforce", "a2c", "ppo", "dqn", "sac")  # the agents that see observations only
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
    unity: dict[str, Any] | None = None

    def record(self, command: str) -> dict[str, Any]:
        """The run's config.yaml (without versions, which the run directory adds)."""
        from rlkit.core.config import config_to_dict

        unity = {} if self.unity is None else {"unity": self.unity}
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
            **unity,
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
    for key in ("config", "env_overrides", "unity"):
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
    unity: dict[str, Any] | None = None,
    refuse: str | None = None,
) -> RunSpec:
    """Merge and check everything that defines a run (see the module docstring); builds the
    Config and the environment, so every ConfigError is raised here, before anything is
    written. `sweep`: the config file may hold rlkit sweep's `grid` (not read here). `unity`:
    Unity options over the file's (rlkit.cli.unity_env). `refuse`: the command (rlkit tune)
    that cannot use a host environment, refused before one is built."""
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
    if refuse is not None:
        refuse_host_env(env_name, refuse)
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
    unity_options = None
    if env_name.startswith(UNITY_PREFIX):  # its slot count comes from Unity
        _check_host_run(algo, env_name, seeds, sweep)
        unity_options = {**(file.get("unity") or {}), **(unity or {})}
        environment, env_params, config = _unity_env(
            module, env_name, unity_options, env_overrides, seed, overrides
        )
    elif is_host_env(env_name):  # its copies are built for the Config's num_envs
        _check_host_run(algo, env_name, seeds, sweep)
        config = config_from_dict(module.Config, overrides)
        environment, env_params = _gymnasium_env(env_name, config.num_envs, env_overrides)
    else:
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
        unity_options,
    )


def is_host_env(env_name: str) -> bool:
    """Whether `env_name` names an environment stepped on the host: gymnasium (`gym:ENV_ID`)
    or Unity (`unity:PATH`, `unity:editor`)."""
    return env_name.startswith((GYMNASIUM_PREFIX, UNITY_PREFIX))


def _kind(env_name: str) -> str:
    return "a Unity environment" if env_name.startswith(UNITY_PREFIX) else "a gymnasium environment"


def close_env(env: Any) -> None:
    """Close a host environment (its Unity processes); nothing for a JAX one."""
    from rlkit.bridges.host import HostVectorEnv

    inner = getattr(env, "unwrapped", env)
    if isinstance(inner, HostVectorEnv):
        inner.close()


def refuse_host_env(env_name: str, what: str) -> None:
    """UsageError when `env_name` is a host environment, which `what` (a sweep, a search, a
    resume) cannot use: its state lives in the host process, one copy, not in the TrainState."""
    if is_host_env(env_name):
        raise UsageError(
            f"{env_name} is {_kind(env_name)} stepped on the host: {what} cannot use it "
            "(its state lives outside the training state, so it is neither vmapped nor "
            "checkpointed)"
        )


def _check_host_run(algo: str, env_name: str, seeds: int, sweep: bool) -> None:
    """UsageError unless a host environment can train this run: one seed, no sweep, an agent
    that sees only observations."""
    if sweep:
        refuse_host_env(env_name, "rlkit sweep")
    if seeds != 1:
        raise UsageError(
            f"{env_name} is {_kind(env_name)} stepped on the host: it trains 1 seed, "
            f"not {seeds} (run more seeds as separate runs with --seed)"
        )
    if algo not in HOST_ALGOS:
        raise UsageError(
            f"{algo} cannot train on {env_name} (it needs the environment's state); "
            f"{_kind(env_name)} trains with {', '.join(HOST_ALGOS)}"
        )


def _gymnasium_env(env_name: str, num_envs: int, overrides: dict[str, Any]) -> tuple[Any, Any]:
    """The vectorised host env of `gym:ENV_ID` with `num_envs` copies, and its params;
    ConfigError (one line) when gymnasium refuses the id or the keywords (--env-set)."""
    from rlkit.bridges.gymnasium_env import gymnasium_vector_env

    return gymnasium_vector_env(env_name.removeprefix(GYMNASIUM_PREFIX), num_envs, **overrides)


def _unity_env(
    module: Any,
    env_name: str,
    options: dict[str, Any],
    env_overrides: dict[str, Any],
    seed: int,
    overrides: dict[str, Any],
) -> tuple[Any, Any, Any]:
    """(venv, params, Config) of a Unity environment: the options checked, Unity connected, the
    Config built with num_envs = Unity's agent count; Unity is closed again on any error."""
    from rlkit.cli import unity_env
    from rlkit.core.config import config_from_dict
    from rlkit.core.spaces import Tuple

    settings = unity_env.settings(env_name, options, env_overrides, seed)
    environment, env_params = unity_env.connect(settings, options.get("eval_steps", 1000))
    try:
        if isinstance(environment.action_space(env_params), Tuple):
            raise UsageError(
                f"{env_name}: the behaviour has continuous and discrete actions together; no "
                "rlkit agent has a hybrid policy yet"
            )
        slots = environment.num_envs
        asked = overrides.get("num_envs", getattr(module.Config, "num_envs", slots))
        if asked != slots:
            print(
                f"rlkit: Unity has {slots} agents of the behaviour: num_envs is {slots} "
                f"(the config said {asked})",
                file=sys.stderr,
            )
        config = config_from_dict(module.Config, {**overrides, "num_envs": slots})
    except BaseException:
        close_env(environment)
        raise
    return environment, env_params, config


def resolve_args(args: Any, sweep: bool = False, refuse: str | None = None) -> RunSpec:
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
        unity=_unity_flags(args),
        refuse=refuse,
    )


def _unity_flags(args: Any) -> dict[str, Any]:
    """The Unity flags given on the command line (rlkit.cli.unity_env); UsageError when they
    are given for another environment."""
    from rlkit.cli import unity_env

    flags = unity_env.options_from_args(args, None)
    env = getattr(args, "env", None)
    if flags and env is not None and not env.startswith(UNITY_PREFIX):
        raise UsageError(f"{unity_env.given_without_unity(args)} is for --env unity:... only")
    return flags


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
