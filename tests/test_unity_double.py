"""tests/unity_double, the stand-in Unity player, against mlagents_envs' own Python side.

UnityEnvironment is the gRPC server; the double runs as a subprocess, started by the test
(`file_name=None`, "Editor" mode) or by mlagents_envs through a launcher in
tests/unity_double/bin (executable mode). The JAX scenes are checked against a replay of the
rules documented in tests/unity_double/scenes.py on the JAX environments themselves (`Replay`):
same key chain, same actions, same episode bookkeeping. Each JAX double (about 10 s of CPU to
start) serves a single test, so that xdist's load scheduling cannot start it on both workers;
the specs scene needs no JAX and starts in a second.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rlkit.bridges import unity_messages

unity_messages.install()  # before anything imports mlagents_envs' message modules

from mlagents_envs.base_env import ActionTuple  # noqa: E402
from mlagents_envs.environment import UnityEnvironment  # noqa: E402
from mlagents_envs.exception import (  # noqa: E402
    UnityEnvironmentException,
    UnityTimeOutException,
)
from mlagents_envs.side_channel.engine_configuration_channel import (  # noqa: E402
    EngineConfigurationChannel,
)
from mlagents_envs.side_channel.environment_parameters_channel import (  # noqa: E402
    EnvironmentParametersChannel,
)
from mlagents_envs.side_channel.incoming_message import IncomingMessage  # noqa: E402
from mlagents_envs.side_channel.side_channel_manager import SideChannelManager  # noqa: E402
from mlagents_envs.side_channel.stats_side_channel import StatsSideChannel  # noqa: E402

from tests.unity_double import protocol  # noqa: E402
from tests.unity_double.__main__ import split_unity_args  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / "tests" / "unity_double" / "bin"
_ports: set[int] = set()


def free_port() -> int:
    """A port nothing listens on (and not handed out before in this process)."""
    while True:
        with socket.socket() as s:
            s.bind(("localhost", 0))
            port = s.getsockname()[1]
        if port not in _ports:
            _ports.add(port)
            return port


def start_double(scene: str, port: int, *args: str, stderr: Any = subprocess.DEVNULL):
    command = [sys.executable, "-m", "tests.unity_double", "--scene", scene]
    command += ["--mlagents-port", str(port), *args]
    return subprocess.Popen(command, cwd=ROOT, stderr=stderr, text=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)


def editor_env(port: int, **kwargs: Any) -> UnityEnvironment:
    return UnityEnvironment(file_name=None, base_port=port, timeout_wait=60, **kwargs)


# -- a replay of the scenes' rules on the JAX environments -------------------------------------


@dataclasses.dataclass
class Agent:
    slot: int
    state: Any
    params: Any
    t: int = 0
    pending: float = 0.0
    action: Any = None


class Replay:
    """The double's documented bookkeeping (scenes.py) on the JAX environment, agent by agent.

    Episode e resets with `env.reset(fold_in(PRNGKey(seed), e))`, its k-th step uses key
    `fold_in(fold_in(PRNGKey(seed), e), k)`; ids are episode numbers, new episodes numbered
    in increasing slot order; float parameters apply at episode start (IMMEDIATE ones at
    once), samplers are drawn per episode start in slot order. After `reset`/`step`,
    `deciding` maps id -> (obs, reward) and `terminal` id -> (obs, reward, interrupted).
    """

    def __init__(self, env, params, seed: int, agents: int, periods=None, immediate=()):
        import jax

        # Leaves of fixed dtypes, so that parameter values set later do not recompile.
        self.jax, self.env, self.base = jax, env, jax.tree.map(_fixed_dtype, params)
        self.root = jax.random.PRNGKey(seed)
        self.num_agents, self.periods = agents, periods or [1] * agents
        self.immediate = immediate
        self.floats: dict[str, float] = {}
        self.samplers: dict[str, tuple[np.random.Generator, float, float]] = {}
        self.agents: dict[int, Agent] = {}
        self.next_episode = 0
        self._reset = jax.jit(env.reset)
        self._step = jax.jit(env.step_env)
        self._truncated = jax.jit(env.is_truncated)
        self.deciding: dict[int, tuple] = {}
        self.terminal: dict[int, tuple] = {}

    def warm(self, action: Any) -> Replay:
        """Compile the environment's functions now (while a double starts)."""
        obs, state = self._reset(self.root, self.base)
        self._truncated(self._step(self.root, state, action, self.base)[1], self.base)
        return self

    def set_float(self, key: str, value: float) -> None:
        self.floats[key] = value
        if key in self.immediate:
            for agent in self.agents.values():
                agent.params = agent.params.replace(**{key: np.float32(value)})

    def set_uniform(self, key: str, low: float, high: float, seed: int) -> None:
        self.samplers[key] = (np.random.default_rng(seed), low, high)

    def _start(self, slots) -> None:
        for slot in slots:
            values = {k: np.float32(v) for k, v in self.floats.items()}
            for key in ("mass", "scale", "gravity"):  # BalanceBall's PARAMETERS order
                if key in self.samplers:
                    rng, low, high = self.samplers[key]
                    values[key] = np.float32(rng.uniform(low, high))
            params = self.base.replace(**values)
            key = self.jax.random.fold_in(self.root, self.next_episode)
            obs, state = self._reset(key, params)
            self.agents[self.next_episode] = Agent(slot, state, params)
            self.deciding[self.next_episode] = (obs, 0.0)
            self.next_episode += 1

    def reset(self) -> None:
        self.agents, self.deciding, self.terminal = {}, {}, {}
        self._start(range(self.num_agents))

    def step(self, actions: dict[int, Any]) -> None:
        for agent_id, action in actions.items():
            self.agents[agent_id].action = action
        self.deciding, self.terminal, ended = {}, {}, []
        for agent_id, agent in list(self.agents.items()):
            agent.t += 1
            key = self.jax.random.fold_in(self.jax.random.fold_in(self.root, agent_id), agent.t)
            obs, agent.state, reward, terminated, _ = self._step(
                key, agent.state, agent.action, agent.params
            )
            agent.pending += float(reward)
            truncated = bool(self._truncated(agent.state, agent.params)) and not terminated
            if terminated or truncated:
                self.terminal[agent_id] = (obs, agent.pending, truncated)
                ended.append(agent.slot)
                del self.agents[agent_id]
            elif agent.t % self.periods[agent.slot] == 0:
                self.deciding[agent_id] = (obs, agent.pending)
        for agent_id in self.deciding:
            self.agents[agent_id].pending = 0.0
        self._start(sorted(ended))


def _fixed_dtype(leaf: Any) -> np.ndarray:
    value = np.asarray(leaf)
    return value.astype(np.float32) if value.dtype.kind == "f" else value


def assert_matches(replay: Replay, decision, terminal, split, atol: float) -> None:
    """DecisionSteps / TerminalSteps equal the replay's, mapped by agent id."""
    assert sorted(decision.agent_id) == sorted(replay.deciding)
    assert sorted(terminal.agent_id) == sorted(replay.terminal)
    for row, agent_id in enumerate(decision.agent_id):
        obs, reward = replay.deciding[int(agent_id)]
        for got, want in zip(decision.obs, split(obs), strict=True):
            np.testing.assert_allclose(got[row], want, atol=atol, rtol=0)
        assert decision.reward[row] == pytest.approx(reward, abs=1e-6)
    for row, agent_id in enumerate(terminal.agent_id):
        obs, reward, interrupted = replay.terminal[int(agent_id)]
        for got, want in zip(terminal.obs, split(obs), strict=True):
            np.testing.assert_allclose(got[row], want, atol=atol, rtol=0)
        assert terminal.reward[row] == pytest.approx(reward, abs=1e-6)
        assert bool(terminal.interrupted[row]) == interrupted


# -- BalanceBall, through the executable launcher ----------------------------------------------

BALL = "3DBall?team=0"
BALL_SEED = 11
BALL_ARGS = ["--double-agents", "6", "--double-shuffle-agents", "--double-max-steps", "14"]
BALL_ARGS += ["--double-decision-period", "3", "--double-slow-agents", "2", "-screen-width", "84"]


@dataclasses.dataclass
class BallSession:
    env: UnityEnvironment
    stats: StatsSideChannel
    parameters: EnvironmentParametersChannel
    engine: EngineConfigurationChannel
    replay: Replay
    log: Path


@pytest.fixture(scope="module")
def ball(tmp_path_factory) -> BallSession:
    import envs

    logs = tmp_path_factory.mktemp("unity_logs")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("RLKIT_UNITY_DOUBLE_PYTHON", sys.executable)
    channels = StatsSideChannel(), EnvironmentParametersChannel(), EngineConfigurationChannel()
    launch = functools.partial(
        UnityEnvironment,
        file_name=str(BIN / "BalanceBall"),
        worker_id=1,
        base_port=free_port() - 1,
        seed=BALL_SEED,
        no_graphics=True,
        timeout_wait=120,
        additional_args=BALL_ARGS,
        side_channels=list(channels),
        log_folder=str(logs),
    )
    # The constructor launches the player and blocks until it connects: meanwhile, compile.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        launched = pool.submit(launch)
        env_jax, params = envs.make("BalanceBall-v0", max_steps_in_episode=14)
        replay = Replay(env_jax, params, BALL_SEED, 6, [3, 3, 1, 1, 1, 1], ("gravity",))
        replay.warm(np.zeros(2, np.float32))
        env = launched.result()
    process = env._process
    env.reset()  # behaviour specs arrive with the first AgentInfos
    replay.reset()
    yield BallSession(env, *channels, replay, logs / "Player-1.log")
    env.close()
    monkeypatch.undo()
    assert process.wait(timeout=10) == 0  # Python's close (status 400) ends the player cleanly


def ball_actions(rng: np.random.Generator, count: int) -> np.ndarray:
    """Pushes beyond [-1, 1] in a random corner (the double clips), so balls fall often."""
    corner = rng.choice([-1.0, 1.0], size=(count, 2))
    return (corner * rng.uniform(0.8, 1.5, size=(count, 2))).astype(np.float32)


def run_ball(session: BallSession, steps: int, rng: np.random.Generator) -> list[list[int]]:
    """`steps` env.step()s checked against the replay; the DecisionSteps id orders seen."""
    env, replay = session.env, session.replay
    orders = []
    for _ in range(steps):
        decision, terminal = env.get_steps(BALL)
        assert_matches(replay, decision, terminal, lambda o: [o], atol=2e-5)
        orders.append([int(i) for i in decision.agent_id])
        actions = ball_actions(rng, len(decision))
        env.set_actions(BALL, ActionTuple(continuous=actions))
        env.step()
        replay.step(
            {int(i): np.clip(a, -1, 1) for i, a in zip(decision.agent_id, actions, strict=True)}
        )
    return orders


def test_balanceball_through_the_executable_launcher(ball: BallSession) -> None:
    """One test, so that xdist cannot hand its parts to two workers and start two doubles."""
    check_spec_and_log(ball)
    check_matches_jax_env(ball)
    check_side_channels(ball)


def check_spec_and_log(ball: BallSession) -> None:
    spec = ball.env.behavior_specs[BALL]
    assert [o.shape for o in spec.observation_specs] == [(8,)]
    assert spec.observation_specs[0].name == "VectorSensor_size8"
    assert spec.action_spec.continuous_size == 2 and spec.action_spec.discrete_branches == ()
    log = ball.log.read_text()
    assert "scene balanceball" in log and "'-screen-width', '84'" in log and "seed 11" in log


def check_matches_jax_env(ball: BallSession) -> None:
    """Observations and rewards of the JAX env under the documented keys; terminal agents with
    interrupted on truncation and a new id deciding at once; slow agents every 3 steps; ids in
    a shuffled order."""
    ball.env.reset()
    ball.replay.reset()
    ball.stats.get_and_reset_stats()
    seen_terminal = {True: 0, False: 0}
    orders = []
    rng = np.random.default_rng(0)
    for _ in range(30):
        decision, terminal = ball.env.get_steps(BALL)
        for interrupted in terminal.interrupted:
            seen_terminal[bool(interrupted)] += 1
        orders += run_ball(ball, 1, rng)
    assert seen_terminal[True] > 0 and seen_terminal[False] > 0
    assert any(order != sorted(order) for order in orders)
    assert min(len(order) for order in orders) < 6  # the slow agents skipped decisions
    ended = [v for v, _ in ball.stats.get_and_reset_stats()["Double/EpisodesEnded"]]
    assert sum(ended) == sum(seen_terminal.values()) + len(ball.env.get_steps(BALL)[1])


def check_side_channels(ball: BallSession) -> None:
    """gravity (a float, at once) and scale (a sampler, per episode) change the dynamics as in
    the JAX env; the time scale and the gravity come back as stats."""
    ball.parameters.set_uniform_sampler_parameters("scale", 0.5, 2.0, seed=5)
    ball.replay.set_uniform("scale", 0.5, 2.0, seed=5)
    ball.engine.set_configuration_parameters(time_scale=7.5)
    ball.env.reset()
    ball.replay.reset()
    rng = np.random.default_rng(1)
    run_ball(ball, 3, rng)
    ball.parameters.set_float_parameter("gravity", 20.0)
    ball.replay.set_float("gravity", 20.0)
    agent = next(iter(ball.replay.agents.values()))
    run_ball(ball, 8, rng)
    stats = ball.stats.get_and_reset_stats()
    assert stats["Double/TimeScale"][-1][0] == 7.5
    assert stats["Double/Param/gravity"][-1][0] == 20.0
    # The replay that matched used gravity 20, and gravity 20 does make a difference.
    key, action = ball.replay.root, np.zeros(2, np.float32)
    default = ball.replay._step(key, agent.state, action, agent.params.replace(gravity=9.81))
    assert not np.allclose(default[0], ball.replay._step(key, agent.state, action, agent.params)[0])


# -- GridWorld, Editor mode --------------------------------------------------------------------

GRID = "GridWorld?team=0"


@pytest.fixture(scope="module")
def gridworld():
    port = free_port()
    process = start_double("gridworld", port)
    import envs  # (slow: while the double starts)

    env_jax, params = envs.make("GridWorld-v0", obs_mode="image")
    replay = Replay(env_jax, params, -3, 4).warm(np.int32(0))
    stats = StatsSideChannel()
    env = editor_env(port, seed=-3, side_channels=[stats])
    env.reset()  # behaviour specs arrive with the first AgentInfos
    replay.reset()
    yield env, stats, replay
    env.close()
    assert process.wait(timeout=10) == 0
    stop(process)


def test_gridworld_png_masks_and_masked_actions(gridworld) -> None:
    env, stats, replay = gridworld
    spec = env.behavior_specs[GRID]
    assert [o.shape for o in spec.observation_specs] == [(64, 84, 3), (2,)]
    assert [o.observation_type.value for o in spec.observation_specs] == [0, 1]  # GOAL_SIGNAL
    assert spec.action_spec.discrete_branches == (5,)
    env.reset()
    replay.reset()
    stats.get_and_reset_stats()
    mask_of = replay.jax.jit(replay.env.action_mask)
    masked_sent = 0
    for step in range(6):
        decision, terminal = env.get_steps(GRID)
        assert_matches(replay, decision, terminal, lambda o: [o["image"], o["goal"]], 1 / 255)
        actions = np.zeros((len(decision), 1), np.int32)
        for row, agent_id in enumerate(decision.agent_id):
            allowed = np.asarray(mask_of(replay.agents[int(agent_id)].state, replay.base))
            np.testing.assert_array_equal(decision.action_mask[0][row], ~allowed)
            forbidden = np.flatnonzero(~allowed)
            masked = len(forbidden) > 0 and step % 2 == 0  # a masked action every other step
            actions[row, 0] = forbidden[0] if masked else np.flatnonzero(allowed)[-1]
            masked_sent += masked
        env.set_actions(GRID, ActionTuple(discrete=actions))
        env.step()
        replay.step({int(i): a[0] for i, a in zip(decision.agent_id, actions, strict=True)})
    counted = sum(v for v, _ in stats.get_and_reset_stats()["Double/MaskedActions"])
    assert counted == masked_sent > 0


# -- the specs scene ---------------------------------------------------------------------------

SPECS = "Specs?team=0"


def specs_obs(i: int, t: int) -> list[np.ndarray]:
    """The Specs docstring's observations of agent id i at episode step t."""

    def frame(s: int) -> np.ndarray:
        if s < 0:
            return np.zeros((6, 5, 3))
        h, w, c = np.indices((6, 5, 3))
        return (40 * i + 30 * (s + 1) + 10 * h + 3 * w + 70 * c) % 256

    h, w, c = np.indices((2, 3, 4))
    stacked = [[s + 1, i] if s >= 0 else [0, 0] for s in (t - 2, t - 1, t)]
    return [
        np.concatenate([frame(t - 1), frame(t)], axis=-1) / 255.0,
        1000 * i + 100 * t + 12 * h + 4 * w + c,
        np.ravel(stacked),
        np.array([i, t, i + t / 4]),
    ]


def specs_mask(i: int, t: int) -> np.ndarray:
    mask = np.zeros(5, bool)
    mask[(i + t) % 3] = True
    mask[4] = t % 2 == 1
    return mask


@pytest.fixture
def specs_double(request):
    """An Editor-mode specs double with the test's args (`@pytest.mark.parametrize` indirect)."""
    port = free_port()
    process = start_double("specs", port, *getattr(request, "param", ()), stderr=subprocess.PIPE)
    stats = StatsSideChannel()
    env = editor_env(port, seed=7, side_channels=[stats])
    yield env, stats, process
    env.close()
    stop(process)


def test_specs_every_number(specs_double) -> None:
    """Shapes, decoded values (vectors, stacked vector, float rank 3, stacked PNGs), masks,
    rewards, episode ends, and the actions as the double received them."""
    env, stats, _ = specs_double
    assert dict(env.behavior_specs) == {}  # specs come with the first AgentInfos
    env.reset()
    spec = env.behavior_specs[SPECS]
    shapes = [o.shape for o in spec.observation_specs]
    assert shapes == [(6, 5, 6), (2, 3, 4), (6,), (3,)]
    assert spec.action_spec.continuous_size == 2
    assert spec.action_spec.discrete_branches == (3, 2)
    slot_of, t_of, next_id = {0: 0, 1: 1, 2: 2}, {0: 0, 1: 0, 2: 0}, 3
    rng = np.random.default_rng(2)
    for _ in range(7):
        decision, terminal = env.get_steps(SPECS)
        for steps, done in ((decision, False), (terminal, True)):
            for row, agent_id in enumerate(steps.agent_id):
                i, t = int(agent_id), t_of[int(agent_id)]
                for got, want in zip(steps.obs, specs_obs(i, t), strict=True):
                    np.testing.assert_array_equal(got[row], np.asarray(want, np.float32))
                if done:
                    slot = slot_of[i]
                    assert t == 2 + slot and bool(steps.interrupted[row]) == (slot % 2 == 0)
                    assert steps.reward[row] == t + i / 4
                else:
                    assert steps.reward[row] == (t + i / 4 if t else 0.0)
                    mask = np.concatenate([m[row] for m in steps.action_mask])
                    np.testing.assert_array_equal(mask, specs_mask(i, t))
        continuous = rng.normal(size=(len(decision), 2)).astype(np.float32) * 3
        discrete = np.stack(
            [rng.integers(0, 3, len(decision)), rng.integers(0, 2, len(decision))], 1
        )
        env.set_actions(
            SPECS, ActionTuple(continuous=continuous, discrete=discrete.astype(np.int32))
        )
        env.step()
        got = stats.get_and_reset_stats()
        masked = 0
        for row, agent_id in enumerate(decision.agent_id):
            i = int(agent_id)
            sent = [*continuous[row], *discrete[row]]
            for name, value in zip(("c0", "c1", "d0", "d1"), sent, strict=True):
                assert got[f"Double/Action/{i}/{name}"][-1][0] == np.float32(value)
            masked += int(specs_mask(i, t_of[i])[discrete[row, 0]])
            masked += int(specs_mask(i, t_of[i])[3 + discrete[row, 1]])
        assert got["Double/MaskedActions"][-1][0] == masked
        for agent_id in t_of:
            t_of[agent_id] += 1
        _, terminal = env.get_steps(SPECS)
        for agent_id in sorted(terminal.agent_id, key=lambda a: slot_of[int(a)]):
            slot_of[next_id], t_of[next_id] = slot_of[int(agent_id)], 0
            next_id += 1
        assert got["Double/EpisodesEnded"][-1][0] == len(terminal)


@pytest.mark.parametrize(
    "specs_double",
    [("--keep-agent-ids", "--agents", "2", "--decision-period", "2", "--slow-agents", "1")],
    indirect=True,
)
def test_specs_kept_ids_and_slow_agents(specs_double) -> None:
    """With kept ids an agent is terminal and deciding under one id in the same step; a slow
    agent decides every other step and sums its rewards in between."""
    env, _, _ = specs_double
    env.reset()
    seen = []
    for _ in range(6):
        env.step()
        decision, terminal = env.get_steps(SPECS)
        seen.append((sorted(decision.agent_id.tolist()), terminal.agent_id.tolist()))
        if 0 in terminal.agent_id:
            # Slot 0: 2 steps, deciding at t = 0 only; both rewards (t + 0/4) add up.
            assert terminal.reward[terminal.agent_id_to_index[0]] == 1 + 2
            assert decision.reward[decision.agent_id_to_index[0]] == 0.0
    # Slot 0 (id 0): episodes of 2 steps, decides at t = 0; slot 1 (id 1): 3 steps, every step.
    assert seen == [
        ([1], []),
        ([0, 1], [0]),
        ([1], [1]),
        ([0, 1], [0]),
        ([1], []),
        ([0, 1], [0, 1]),
    ]


# -- failures ----------------------------------------------------------------------------------


def test_crash_after_steps_in_executable_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLKIT_UNITY_DOUBLE_PYTHON", sys.executable)
    env = UnityEnvironment(
        file_name=str(BIN / "Specs"),
        base_port=free_port(),
        timeout_wait=10,
        additional_args=["--double-crash-after-steps", "2"],
    )
    try:
        env.reset()
        env.step()
        env.step()
        with pytest.raises(UnityEnvironmentException, match="return code 3"):
            env.step()
    finally:
        env.close()


def test_hang_after_steps() -> None:
    port = free_port()
    process = start_double("specs", port, "--hang-after-steps", "1")
    env = editor_env(port)
    try:
        env.reset()
        env.step()
        # mlagents_envs' own wait for an answer, shortened so the test does not wait a minute.
        env._communicator.timeout_wait = 1
        with pytest.raises(UnityTimeOutException):
            env.step()
        assert process.poll() is None  # still there, not answering
    finally:
        env.close()
        stop(process)


def test_communication_version_mismatch() -> None:
    port = free_port()
    process = start_double("specs", port, "--communication-version", "2.0.0")
    try:
        with pytest.raises(UnityEnvironmentException, match="not compatible"):
            editor_env(port)
        assert process.wait(timeout=10) == 0  # Python closed the connection with status 400
    finally:
        stop(process)


PYTHON_SIDE_DIES = """
import os, sys
from rlkit.bridges import unity_messages
unity_messages.install()
from mlagents_envs.environment import UnityEnvironment
UnityEnvironment(file_name=None, base_port=int(sys.argv[1]), timeout_wait=60).reset()
os._exit(9)  # with the double's next call pending
"""


def test_no_server_server_gone_and_server_stopped() -> None:
    """No server within the connect timeout, or a Python process that dies: exit 1 with a
    line on stderr. A server stopped without the close reply (what close's own shutdown can
    do to its reply): exit 0."""
    started = time.monotonic()
    alone = start_double("specs", free_port(), "--connect-timeout", "0.5", stderr=subprocess.PIPE)
    port, stopped_port = free_port(), free_port()
    orphan = start_double("specs", port, stderr=subprocess.PIPE)
    python_side = subprocess.Popen([sys.executable, "-c", PYTHON_SIDE_DIES, str(port)], cwd=ROOT)
    stopped = start_double("specs", stopped_port)
    env = editor_env(stopped_port)
    try:
        env.reset()
        communicator = env._communicator
        communicator.server.stop(None)
        # Else the handler of the cancelled call blocks in Pipe.recv and this interpreter
        # cannot exit.
        communicator.unity_to_external.parent_conn.close()
        communicator.is_open = False
        assert stopped.wait(timeout=10) == 0
        assert python_side.wait(timeout=30) == 9
        assert orphan.wait(timeout=10) == 1
        assert "went away" in orphan.stderr.read()
        assert alone.wait(timeout=30) == 1
        assert "no ML-Agents server" in alone.stderr.read()
        assert time.monotonic() - started < 30
    finally:
        for process in (alone, orphan, python_side, stopped):
            stop(process)


# -- command line and side-channel codec (in process) ------------------------------------------


def test_unity_player_args_are_accepted() -> None:
    argv = ["-nographics", "-batchmode", "--mlagents-port", "5005", "-logFile", "/tmp/p.log"]
    argv += ["-screen-width", "84", "-force-vulkan", "--double-agents", "3", "--shuffle-agents"]
    own, log_file, ignored = split_unity_args(argv)
    assert own == ["--mlagents-port", "5005", "--agents", "3", "--shuffle-agents"]
    assert log_file == "/tmp/p.log"
    assert ignored == ["-nographics", "-batchmode", "-screen-width", "84", "-force-vulkan"]
    bad = [sys.executable, "-m", "tests.unity_double", "--scene", "specs", "--mlagents-port", "1"]
    result = subprocess.run([*bad, "--bogus"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "--bogus" in result.stderr


def test_side_channel_codec_reads_mlagents_messages() -> None:
    parameters, engine = EnvironmentParametersChannel(), EngineConfigurationChannel()
    parameters.set_float_parameter("gravity", 4.5)
    parameters.set_gaussian_sampler_parameters("mass", 1.0, 0.25, seed=-9)
    parameters.set_multirangeuniform_sampler_parameters("scale", [(0.5, 1.0), (2.0, 4.0)], seed=3)
    engine.set_configuration_parameters(width=84, height=64, time_scale=20.0)
    blob = bytes(SideChannelManager([parameters, engine]).generate_side_channel_messages())
    decoded = protocol.split_side_channels(blob)
    assert [c for c, _ in decoded] == [protocol.ENVIRONMENT_PARAMETERS] * 3 + [
        protocol.ENGINE_CONFIGURATION
    ] * 2
    gravity, mass, scale = (protocol.decode_environment_parameter(p) for _, p in decoded[:3])
    assert gravity == ("gravity", 4.5)
    assert (mass[0], mass[1].kind, mass[1].seed, mass[1].values) == ("mass", 1, -9, (1.0, 0.25))
    assert scale[1].values == (0.5, 1.0, 2.0, 4.0)
    draws = [scale[1].draw() for _ in range(200)]
    assert all(0.5 <= d <= 1.0 or 2.0 <= d <= 4.0 for d in draws)
    assert sum(d >= 2.0 for d in draws) > 100  # intervals weighted by their length (4:1)
    configs = [protocol.decode_engine_configuration(p) for _, p in decoded[3:]]
    assert configs == [("screen_resolution", (84, 64)), ("time_scale", (20.0,))]
    stats = StatsSideChannel()
    payload = protocol.encode_stat("Double/X", 1.5, protocol.Aggregation.SUM)
    stats.on_message_received(IncomingMessage(payload))
    assert [(v, a.value) for v, a in stats.get_and_reset_stats()["Double/X"]] == [(1.5, 2)]


def test_launchers_are_executable() -> None:
    for name in ("BalanceBall", "GridWorld", "Specs"):
        launcher = BIN / f"{name}.x86_64"
        assert os.access(launcher, os.X_OK), launcher
