"""One Unity process as the Unity bridge reaches it: the settings, the launch of a player (or the
wait for the Editor) with its side channels, and the one-line explanation of every failure.

`Worker` wraps one mlagents_envs UnityEnvironment (imported lazily, after
rlkit.bridges.unity_messages.install(), so `import rlkit` never needs mlagents_envs): worker id,
port, its own side channels (parameters and engine settings queued before the first reset,
statistics received), and the slots the bridge maps its agents onto. `explain` turns
mlagents_envs' exceptions into one line naming the process: "Unity (worker 1 on port 5006) did
not answer within 60 s (--unity-timeout)".
"""

from __future__ import annotations

import dataclasses
import os
import socket
import types
from typing import Any

from rlkit.bridges.host import HostFailure
from rlkit.bridges.unity_channels import (
    EngineSettings,
    Sampler,
    apply_engine_settings,
    apply_parameters,
)
from rlkit.core.config import ConfigError

__all__ = [
    "EDITOR_PORT",
    "EXECUTABLE_PORT",
    "UnitySettings",
    "Worker",
    "explain",
    "mlagents",
    "port_is_free",
    "resolve_player",
    "where",
]

EDITOR_PORT = 5004  # mlagents_envs DEFAULT_EDITOR_PORT
EXECUTABLE_PORT = 5005  # mlagents_envs BASE_ENVIRONMENT_PORT (+ worker id)


@dataclasses.dataclass(frozen=True)
class UnitySettings:
    """How to reach Unity and what to train on.

    file_name: the player (a path; `.x86_64` may be left off), or None for the Editor.
    behavior: the behaviour name (with `?team=`), or None for the only one there is.
    workers: Unity processes (executable only), worker ids 0..workers-1, ports base_port + id.
    base_port: default 5004 for the Editor, 5005 for a player.
    timeout: seconds to wait for Unity at start and at every exchange.
    no_graphics: start players with -nographics -batchmode.
    extra_args: further command-line arguments for the player.
    parameters: environment parameters (unity_channels: floats and samplers).
    engine: engine settings (time scale, resolution, quality, frame rates).
    seed: Unity's random seed (worker i gets seed + i) and the samplers' base seed.
    max_unity_steps: the bound on Unity steps per batched step (the decision rule).
    log_folder: where players write Player-<id>.log (None: a temporary folder).
    """

    file_name: str | None = None
    behavior: str | None = None
    workers: int = 1
    base_port: int | None = None
    timeout: float = 60.0
    no_graphics: bool = True
    extra_args: tuple[str, ...] = ()
    parameters: dict[str, float | Sampler] = dataclasses.field(default_factory=dict)
    engine: EngineSettings = dataclasses.field(default_factory=EngineSettings)
    seed: int = 0
    max_unity_steps: int = 1000
    log_folder: str | None = None

    @property
    def port(self) -> int:
        if self.base_port is not None:
            return self.base_port
        return EDITOR_PORT if self.file_name is None else EXECUTABLE_PORT


def mlagents() -> Any:
    """mlagents_envs' modules, imported after its messages are rebuilt for this protobuf."""
    from rlkit.bridges import unity_messages

    # gRPC's C core logs an info line when Unity hangs up; only its errors are worth a line.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    unity_messages.install()
    from mlagents_envs import base_env, environment, exception
    from mlagents_envs.side_channel import (
        engine_configuration_channel,
        environment_parameters_channel,
        stats_side_channel,
    )

    return types.SimpleNamespace(
        base_env=base_env,
        environment=environment,
        exception=exception,
        EngineChannel=engine_configuration_channel.EngineConfigurationChannel,
        ParametersChannel=environment_parameters_channel.EnvironmentParametersChannel,
        StatsChannel=stats_side_channel.StatsSideChannel,
    )


def where(settings: UnitySettings, worker_id: int) -> str:
    """Which Unity process: "the Editor on port 5004", "worker 1 on port 5006"."""
    if settings.file_name is None:
        return f"the Editor on port {settings.port}"
    return f"worker {worker_id} on port {settings.port + worker_id}"


def explain(error: BaseException, where: str, settings: UnitySettings) -> str:
    """One line naming what went wrong with Unity (`where`: which process: "the Editor on
    port 5004", "worker 1 on port 5006")."""
    text = " ".join(str(error).split()).rstrip(".")
    name = type(error).__name__
    if name == "UnityTimeOutException":
        return f"Unity ({where}) did not answer within {settings.timeout:g} s (--unity-timeout)"
    if name == "UnityWorkerInUseException":
        return f"Unity ({where}): the port is in use by another process; choose another --base-port"
    if name == "UnityCommunicatorStoppedException":
        return f"Unity ({where}) closed the connection"
    if (
        "API version" in text
        or "version is not compatible" in text
        or "communication" in text.lower()
    ):
        return f"Unity ({where}) speaks another ML-Agents protocol: {text}"
    if "shut down with return code" in text:
        return f"Unity ({where}) quit or crashed: {text}"
    if "launch" in text.lower() or "could not be found" in text.lower():
        return f"Unity ({where}) did not start: {text}"
    return f"Unity ({where}): {name}: {text}"


class Worker:
    """One UnityEnvironment with its side channels and its slots (agent id -> slot)."""

    def __init__(self, m: Any, settings: UnitySettings, worker_id: int):
        self.worker_id = worker_id
        self.where = where(settings, worker_id)
        self.parameters = m.ParametersChannel()
        self.engine = m.EngineChannel()
        self.stats = m.StatsChannel()
        apply_parameters(self.parameters, settings.parameters, settings.seed)
        apply_engine_settings(self.engine, settings.engine)
        port = settings.port + (0 if settings.file_name is None else worker_id)
        if not port_is_free(port):  # before mlagents_envs, which would leave an atexit hook
            raise HostFailure(
                f"Unity ({self.where}): the port is in use by another process; "
                "choose another --base-port"
            )
        self.env = m.environment.UnityEnvironment(
            file_name=settings.file_name,
            worker_id=worker_id,
            base_port=settings.port,
            seed=settings.seed + worker_id,
            no_graphics=settings.no_graphics,
            timeout_wait=int(settings.timeout),
            additional_args=list(settings.extra_args),
            side_channels=[self.parameters, self.engine, self.stats],
            log_folder=settings.log_folder,
        )
        self.process = getattr(self.env, "_process", None)  # mlagents_envs drops it on close
        self.slots: list[int] = []  # this worker's slots
        self.slot_of: dict[int, int] = {}  # agent id -> slot
        self.vacant: list[int] = []  # slots whose agent's episode ended, oldest first


def port_is_free(port: int) -> bool:
    """Whether this process can listen on localhost:`port` (as mlagents_envs checks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("localhost", port))
        except OSError:
            return False
    return True


def resolve_player(path: str) -> str:
    """The player for `path` as mlagents_envs finds it on Linux (`.x86_64`, `.x86`, then the
    path itself, which may also be a macOS .app or a Windows .exe); ConfigError when none
    exists."""
    for candidate in (f"{path}.x86_64", f"{path}.x86"):
        if os.path.isfile(candidate):
            return candidate
    if os.path.exists(path):
        return path
    raise ConfigError(f"no Unity player at {path} (tried {path}.x86_64, {path}.x86 and {path})")
