"""The Unity side of ML-Agents' communicator (API 1.5.0): the gRPC client loop and side channels.

mlagents_envs' UnityEnvironment is the gRPC server; a Unity player is the client and calls
`UnityToExternalProto.Exchange` over and over, each call carrying Unity's output and each reply
Python's next input (/work/shared/reference/ML-AGENTS.md section 5):

1. Exchange(status 200, rl_initialization_output{name "AcademySingleton", communication_version,
   package_version, capabilities}) -> rl_initialization_input{seed, num_areas, ...}. The seed
   goes to `Scene.seed`.
2. Exchange(status 200, empty) -> the first command (RESET from `env.reset()`).
3. Loop: apply the reply's side channels, execute its command (RESET: `Scene.reset`; STEP:
   `Scene.step` with the actions of the scene's behaviour, one per AgentInfo the scene sent
   for a deciding agent, in the order sent; QUIT: exit 0), then Exchange(status 200,
   rl_output{agentInfos[behaviour], side_channel: stats}) with the scene's
   BrainParametersProto in rl_initialization_output the first time the behaviour has
   AgentInfos. A reply whose header status is not 200 is Python's `close()`: exit 0.

`close()` sends status 400 and at once stops its server with no grace, which aborts pending
calls ("Cancelling all calls", UNAVAILABLE): now and then that abort overtakes the 400 reply
(seen under load), so it counts as a close too. Any other failed call means the server went
away (its process died: the connection is reset).

Side channels travel as `[16-byte channel UUID (uuid.bytes_le)][int32 LE length][payload]`,
repeated. Received: EnvironmentParameters (floats and samplers, handed to
`Scene.set_parameter`), EngineConfiguration (recorded), training analytics (ignored). Sent with
every message after a command, StatsSideChannel `(string key, float32 value, int32
aggregation)`: `Double/TimeScale` (MOST_RECENT, the time scale last received, 1.0 before any),
`Double/ScreenWidth`, `Double/ScreenHeight`, `Double/QualityLevel`, `Double/TargetFrameRate`,
`Double/CaptureFrameRate` (MOST_RECENT, once received), `Double/Param/<key>` (MOST_RECENT, for
every environment parameter received as a float), then the scene's own stats. (`send_stats`
False sends none: mlagents_envs logs a warning per message for a channel nobody registered.)

Exit codes: 0 closed by Python (status 400, or its server shut down) or QUIT; 1 no server
within the connect timeout, or the server went away (a line on stderr); 2 a malformed message
(ProtocolError); 3 the injected crash; 4 the injected hang ended (the parent process died, or
`hang_seconds` passed).
"""

from __future__ import annotations

import dataclasses
import enum
import os
import struct
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import IO, Protocol

import grpc
import numpy as np

from rlkit.bridges import unity_messages

# mlagents_envs' generated message modules do not import on protobuf >= 4: the rebuilt modules
# must be in sys.modules before the first import below.
unity_messages.install()

from mlagents_envs.communicator_objects import (  # noqa: E402
    agent_action_pb2,
    agent_info_pb2,
    brain_parameters_pb2,
    capabilities_pb2,
    command_pb2,
    observation_pb2,
    unity_message_pb2,
)
from mlagents_envs.communicator_objects.unity_to_external_pb2_grpc import (  # noqa: E402
    UnityToExternalProtoStub,
)

AgentActionProto = agent_action_pb2.AgentActionProto
AgentInfoProto = agent_info_pb2.AgentInfoProto
ActionSpecProto = brain_parameters_pb2.ActionSpecProto
BrainParametersProto = brain_parameters_pb2.BrainParametersProto
ObservationProto = observation_pb2.ObservationProto
UnityMessageProto = unity_message_pb2.UnityMessageProto
PNG, NONE = observation_pb2.PNG, observation_pb2.NONE
DEFAULT, GOAL_SIGNAL = observation_pb2.DEFAULT, observation_pb2.GOAL_SIGNAL

COMMUNICATION_VERSION = "1.5.0"
PACKAGE_VERSION = "2.2.1-exp.1"  # com.unity.ml-agents of release_19

ENVIRONMENT_PARAMETERS = uuid.UUID("534c891e-810f-11ea-a9d0-822485860400")
ENGINE_CONFIGURATION = uuid.UUID("e951342c-4f7e-11ea-b238-784f4387d1f7")
STATS = uuid.UUID("a1d8f7b7-cec8-50f9-b78b-d3e165a78520")
TRAINING_ANALYTICS = uuid.UUID("b664a4a9-d86f-5a5f-95cb-e8353a7e8356")

EXIT_CLOSED, EXIT_SERVER_GONE, EXIT_PROTOCOL, EXIT_CRASH, EXIT_HANG = 0, 1, 2, 3, 4


class Aggregation(enum.IntEnum):
    """StatsSideChannel's aggregation methods (int32 on the wire)."""

    AVERAGE = 0
    MOST_RECENT = 1
    SUM = 2
    HISTOGRAM = 3


Stat = tuple[str, float, Aggregation]


class ProtocolError(Exception):
    """Python sent something a Unity player could not act on (wrong action count or size...)."""


# -- side channels -----------------------------------------------------------------------------


def split_side_channels(data: bytes) -> list[tuple[uuid.UUID, bytes]]:
    """`[uuid (16, bytes_le)][int32 LE length][payload]...` -> [(channel id, payload), ...]."""
    messages, offset = [], 0
    while offset < len(data):
        if offset + 20 > len(data):
            raise ProtocolError(f"side channel data truncated at byte {offset} of {len(data)}")
        channel = uuid.UUID(bytes_le=bytes(data[offset : offset + 16]))
        (length,) = struct.unpack_from("<i", data, offset + 16)
        offset += 20
        if length < 0 or offset + length > len(data):
            raise ProtocolError(f"side channel message of {length} bytes overruns the data")
        messages.append((channel, bytes(data[offset : offset + length])))
        offset += length
    return messages


def join_side_channels(messages: Iterable[tuple[uuid.UUID, bytes]]) -> bytes:
    """The inverse of `split_side_channels`."""
    return b"".join(c.bytes_le + struct.pack("<i", len(p)) + p for c, p in messages)


class Reader:
    """Reads the little-endian fields of one side-channel payload, in order."""

    def __init__(self, payload: bytes):
        self._data, self._offset = payload, 0

    def unpack(self, fmt: str) -> tuple:
        """`struct.unpack` of the next bytes (ProtocolError if too few)."""
        try:
            values = struct.unpack_from(fmt, self._data, self._offset)
        except struct.error as error:
            raise ProtocolError(f"side channel payload too short: {error}") from None
        self._offset += struct.calcsize(fmt)
        return values

    def int32(self) -> int:
        return self.unpack("<i")[0]

    def float32(self) -> float:
        return self.unpack("<f")[0]

    def string(self) -> str:
        length = self.int32()
        return bytes(self.unpack(f"<{length}s")[0]).decode("ascii")

    def float32_list(self) -> list[float]:
        return list(self.unpack(f"<{self.int32()}f"))


def encode_string(text: str) -> bytes:
    """int32 length + ASCII bytes, as mlagents_envs' OutgoingMessage.write_string."""
    raw = text.encode("ascii")
    return struct.pack("<i", len(raw)) + raw


def encode_stat(key: str, value: float, aggregation: Aggregation) -> bytes:
    """One StatsSideChannel payload: string key, float32 value, int32 aggregation."""
    return encode_string(key) + struct.pack("<fi", value, int(aggregation))


class Sampler:
    """A sampler environment parameter: its own numpy stream, seeded by the message's seed
    (`numpy.random.default_rng(seed mod 2**32)`), one draw per `draw()` call.

    kind 0 uniform (min, max), 1 gaussian (mean, std), 2 multirange uniform (min1, max1, min2,
    max2, ...: an interval is chosen with probability proportional to its length, then a
    uniform draw inside it, as ML-Agents' MultiRangeUniformSampler does).
    """

    KINDS = ("uniform", "gaussian", "multirange")

    def __init__(self, kind: int, seed: int, values: Sequence[float]):
        if not 0 <= kind < len(self.KINDS):
            raise ProtocolError(f"unknown sampler type {kind}")
        if len(values) < 2 or (kind == 2 and len(values) % 2):
            raise ProtocolError(f"{self.KINDS[kind]} sampler with parameters {list(values)}")
        self.kind, self.seed, self.values = kind, seed, tuple(values)
        self._rng = np.random.default_rng(seed % 2**32)

    def draw(self) -> float:
        if self.kind == 0:
            return float(self._rng.uniform(self.values[0], self.values[1]))
        if self.kind == 1:
            return float(self._rng.normal(self.values[0], self.values[1]))
        lows, highs = np.array(self.values[0::2]), np.array(self.values[1::2])
        widths = highs - lows
        interval = self._rng.choice(len(widths), p=widths / widths.sum())
        return float(self._rng.uniform(lows[interval], highs[interval]))

    def __repr__(self) -> str:
        return f"Sampler({self.KINDS[self.kind]}, seed={self.seed}, {list(self.values)})"


def decode_environment_parameter(payload: bytes) -> tuple[str, float | Sampler]:
    """EnvironmentParametersChannel: string key, int32 type (0 FLOAT: float32 value; 1 SAMPLER:
    int32 seed, int32 sampler kind, its float32 parameters (multirange: an int32-counted list))."""
    reader = Reader(payload)
    key, kind = reader.string(), reader.int32()
    if kind == 0:
        return key, reader.float32()
    if kind != 1:
        raise ProtocolError(f"environment parameter {key!r} of unknown type {kind}")
    seed, sampler = reader.int32(), reader.int32()
    values = reader.float32_list() if sampler == 2 else [reader.float32(), reader.float32()]
    return key, Sampler(sampler, seed, values)


ENGINE_FIELDS = {
    0: ("screen_resolution", "<ii"),
    1: ("quality_level", "<i"),
    2: ("time_scale", "<f"),
    3: ("target_frame_rate", "<i"),
    4: ("capture_frame_rate", "<i"),
}


def decode_engine_configuration(payload: bytes) -> tuple[str, tuple]:
    """EngineConfigurationChannel: int32 type, then its values -> (field name, values)."""
    reader = Reader(payload)
    kind = reader.int32()
    if kind not in ENGINE_FIELDS:
        raise ProtocolError(f"engine configuration of unknown type {kind}")
    name, fmt = ENGINE_FIELDS[kind]
    return name, reader.unpack(fmt)


# -- the scene interface -----------------------------------------------------------------------


class Scene(Protocol):
    """What the client loop needs of a scene (see scenes.py)."""

    behavior_name: str

    def brain_parameters(self) -> BrainParametersProto: ...

    def seed(self, seed: int) -> None: ...

    def reset(self) -> list[AgentInfoProto]: ...

    def step(self, actions: Sequence[AgentActionProto]) -> list[AgentInfoProto]: ...

    def set_parameter(self, key: str, value: float | Sampler) -> None: ...

    def stats(self) -> list[Stat]: ...


def capabilities() -> capabilities_pb2.UnityRLCapabilitiesProto:
    """All seven capabilities of com.unity.ml-agents 2.2.1 on."""
    names = [f.name for f in capabilities_pb2.UnityRLCapabilitiesProto.DESCRIPTOR.fields]
    return capabilities_pb2.UnityRLCapabilitiesProto(**dict.fromkeys(names, True))


# -- the client loop ---------------------------------------------------------------------------


@dataclasses.dataclass
class Settings:
    """How the double talks: port, handshake versions, timeouts and injected faults.

    crash_after_steps N: N STEP commands are answered; the (N+1)-th makes the process exit with
    code 3 at once (os._exit, no reply), as a crashing player. hang_after_steps N: likewise, but
    the (N+1)-th STEP is never answered; the process sleeps until its parent dies or
    `hang_seconds` pass, then exits with code 4.
    """

    port: int
    communication_version: str = COMMUNICATION_VERSION
    package_version: str = PACKAGE_VERSION
    connect_timeout: float = 30.0
    crash_after_steps: int | None = None
    hang_after_steps: int | None = None
    hang_seconds: float = 600.0
    send_stats: bool = True


class Log:
    """Unity's -logFile: a few lines of what happened (None: nowhere, "-": stdout)."""

    def __init__(self, path: str | None):
        self._file: IO[str] | None = None
        if path == "-":
            self._file = sys.stdout
        elif path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            # Open for the life of the process, as Unity's own log.
            self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115

    def __call__(self, line: str) -> None:
        if self._file is not None:
            self._file.write(f"[unity_double {time.strftime('%H:%M:%S')}] {line}\n")
            self._file.flush()


class ServerGone(Exception):
    """The Python side is unreachable: never came up, or went away."""


class ServerStopped(Exception):
    """Python's server shut down while a call was pending (a close whose reply was lost)."""


def connect(port: int, timeout: float) -> grpc.Channel:
    """A channel to localhost:port, ready; retried (every 0.1-0.25 s) until `timeout`, like a
    player started before Python's server is listening. ServerGone after `timeout`."""
    options = [
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 250),
        ("grpc.max_receive_message_length", -1),
        ("grpc.max_send_message_length", -1),
    ]
    channel = grpc.insecure_channel(f"localhost:{port}", options=options)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        channel.close()
        raise ServerGone(f"no ML-Agents server on localhost:{port} within {timeout:g} s") from None
    return channel


class Academy:
    """One player's session: handshake, then commands until Python closes (`run`)."""

    def __init__(self, scene: Scene, settings: Settings, log: Log):
        self.scene, self.settings, self.log = scene, settings, log
        self.engine: dict[str, tuple] = {}
        self.float_parameters: dict[str, float] = {}
        self.steps = 0
        self._brain_sent = False
        self._stub: UnityToExternalProtoStub | None = None

    def run(self) -> int:
        """Connect, serve, return the exit code (injected crashes do not return)."""
        try:
            channel = connect(self.settings.port, self.settings.connect_timeout)
        except ServerGone as error:
            return self._fail(EXIT_SERVER_GONE, str(error))
        self.log(f"connected to localhost:{self.settings.port}")
        try:
            self._stub = UnityToExternalProtoStub(channel)
            return self._serve()
        except ServerGone as error:
            return self._fail(EXIT_SERVER_GONE, str(error))
        except ServerStopped as error:
            self.log(str(error))
            return EXIT_CLOSED
        except ProtocolError as error:
            return self._fail(EXIT_PROTOCOL, f"protocol error: {error}")
        finally:
            channel.close()

    def _fail(self, code: int, message: str) -> int:
        self.log(message)
        print(f"unity_double: {message}", file=sys.stderr, flush=True)
        return code

    def _exchange(self, message: UnityMessageProto) -> UnityMessageProto:
        try:
            return self._stub.Exchange(message)
        except grpc.RpcError as error:
            code, details = error.code(), error.details() or ""
            if code == grpc.StatusCode.UNAVAILABLE and "Cancelling all calls" in details:
                raise ServerStopped(f"the ML-Agents server shut down ({details})") from None
            raise ServerGone(f"the ML-Agents server went away ({code}: {details})") from None

    def _serve(self) -> int:
        hello = UnityMessageProto()
        hello.header.status = 200
        init = hello.unity_output.rl_initialization_output
        init.name = "AcademySingleton"
        init.communication_version = self.settings.communication_version
        init.package_version = self.settings.package_version
        init.capabilities.CopyFrom(capabilities())
        reply = self._exchange(hello)
        python = reply.unity_input.rl_initialization_input
        self.log(
            f"Python: communication {python.communication_version}, mlagents_envs "
            f"{python.package_version}, seed {python.seed}, num_areas {python.num_areas}"
        )
        self.scene.seed(python.seed)
        message = UnityMessageProto()
        message.header.status = 200
        while True:
            reply = self._exchange(message)
            if reply.header.status != 200:
                self.log(f"closed by Python (status {reply.header.status})")
                return EXIT_CLOSED
            message = self._execute(reply.unity_input.rl_input)
            if message is None:
                self.log("QUIT")
                return EXIT_CLOSED

    def _execute(self, rl_input) -> UnityMessageProto | None:
        """Side channels first, then the command; the next message, None on QUIT."""
        for channel, payload in split_side_channels(rl_input.side_channel):
            self._side_channel(channel, payload)
        if rl_input.command == command_pb2.QUIT:
            return None
        if rl_input.command == command_pb2.RESET:
            self.log("RESET")
            infos = self.scene.reset()
        else:
            self._maybe_fail()
            actions = rl_input.agent_actions[self.scene.behavior_name].value
            infos = self.scene.step(list(actions))
            self.steps += 1
        return self._output(infos)

    def _maybe_fail(self) -> None:
        settings = self.settings
        if settings.crash_after_steps is not None and self.steps >= settings.crash_after_steps:
            self.log(f"crashing (exit {EXIT_CRASH}) after {self.steps} steps")
            sys.stdout.flush()
            os._exit(EXIT_CRASH)
        if settings.hang_after_steps is not None and self.steps >= settings.hang_after_steps:
            self.log(f"hanging after {self.steps} steps")
            parent, deadline = os.getppid(), time.monotonic() + settings.hang_seconds
            while os.getppid() == parent and time.monotonic() < deadline:
                time.sleep(0.2)
            self.log("hang over")
            os._exit(EXIT_HANG)

    def _side_channel(self, channel: uuid.UUID, payload: bytes) -> None:
        if channel == ENVIRONMENT_PARAMETERS:
            key, value = decode_environment_parameter(payload)
            self.log(f"environment parameter {key} = {value!r}")
            if not isinstance(value, Sampler):
                self.float_parameters[key] = value
            self.scene.set_parameter(key, value)
        elif channel == ENGINE_CONFIGURATION:
            name, values = decode_engine_configuration(payload)
            self.log(f"engine configuration {name} = {values}")
            self.engine[name] = values
        elif channel == TRAINING_ANALYTICS:
            self.log("training analytics received")
        else:
            self.log(f"unknown side channel {channel} ({len(payload)} bytes) ignored")

    def stats(self) -> list[Stat]:
        """The double's own stats (module docstring), then the scene's."""
        recent = Aggregation.MOST_RECENT
        stats: list[Stat] = [("Double/TimeScale", self.engine.get("time_scale", (1.0,))[0], recent)]
        names = {
            "quality_level": ["Double/QualityLevel"],
            "screen_resolution": ["Double/ScreenWidth", "Double/ScreenHeight"],
            "target_frame_rate": ["Double/TargetFrameRate"],
            "capture_frame_rate": ["Double/CaptureFrameRate"],
        }
        for field, keys in names.items():
            for key, value in zip(keys, self.engine.get(field, ()), strict=False):
                stats.append((key, float(value), recent))
        for key, value in self.float_parameters.items():
            stats.append((f"Double/Param/{key}", value, recent))
        return stats + self.scene.stats()

    def _output(self, infos: list[AgentInfoProto]) -> UnityMessageProto:
        message = UnityMessageProto()
        message.header.status = 200
        output = message.unity_output
        # Unity lists every behaviour it knows, with or without AgentInfos this step.
        output.rl_output.agentInfos[self.scene.behavior_name].value.extend(infos)
        if infos and not self._brain_sent:
            output.rl_initialization_output.brain_parameters.append(self.scene.brain_parameters())
            self._brain_sent = True
        if self.settings.send_stats:
            output.rl_output.side_channel = join_side_channels(
                (STATS, encode_stat(*stat)) for stat in self.stats()
            )
        return message
