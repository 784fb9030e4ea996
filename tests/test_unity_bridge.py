"""The Unity ML-Agents bridge (rlkit.bridges.unity, rlkit.cli.unity_env) against the Unity double
(tests/unity_double) over real gRPC: mlagents_envs' UnityEnvironment is the server, the double
the Unity client, exactly as with a Unity player or the Editor.

The doubles serve rlkit's own JAX environments with documented keys (episode e starts from
fold_in(PRNGKey(seed), e)), so what arrives through the bridge can be checked against the JAX
environment itself. Doubles are shared per module and runs are short: the file stays near a
minute and a half.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

import envs
from rlkit.bridges.host import HostFailure, HostVectorEnv
from rlkit.bridges.unity import UnityHost, UnitySettings
from rlkit.bridges.unity_channels import (
    EngineSettings,
    Sampler,
    apply_parameters,
    parse_parameter,
)
from rlkit.bridges.unity_specs import (
    ActionLayout,
    branches_to_joint,
    decode_actions,
    joint_mask,
    joint_to_branches,
)
from rlkit.cli import main
from rlkit.core.spaces import Box, Discrete, to_gymnasium

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / "tests" / "unity_double" / "bin"


@pytest.fixture(scope="module", autouse=True)
def _double_python():
    """The double's launchers run this interpreter (the bridge's default does the same)."""
    previous = os.environ.get("RLKIT_UNITY_DOUBLE_PYTHON")
    os.environ["RLKIT_UNITY_DOUBLE_PYTHON"] = sys.executable
    yield
    if previous is None:
        os.environ.pop("RLKIT_UNITY_DOUBLE_PYTHON", None)
    else:
        os.environ["RLKIT_UNITY_DOUBLE_PYTHON"] = previous


def free_ports(count: int = 1) -> int:
    """A base port with `count` consecutive free ports after it."""
    for _ in range(100):
        base = int(np.random.default_rng().integers(20_000, 40_000))
        try:
            for port in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("localhost", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free ports")


def start_double(scene: str, port: int, *args: str) -> subprocess.Popen:
    """The double as the Editor would be: a Unity process that connects to `port` by itself."""
    command = [sys.executable, "-m", "tests.unity_double", "--scene", scene]
    command += ["--mlagents-port", str(port), *args]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def editor_host(scene: str, *args: str, **settings) -> tuple[UnityHost, subprocess.Popen]:
    port = free_ports()
    process = start_double(scene, port, *args)
    return UnityHost(UnitySettings(None, base_port=port, timeout=30, **settings)), process


def close(host: UnityHost, process: subprocess.Popen | None = None) -> None:
    host.close()
    if process is not None:
        process.wait(timeout=30)


# -- rules without Unity -----------------------------------------------------------------------


def test_joint_actions_enumerate_branches_row_major_and_masks_invert_ml_agents() -> None:
    branches = (3, 2)
    # j = a0 * 2 + a1: the last branch fastest, every pair exactly once.
    choices = joint_to_branches(np.arange(6), branches)
    assert choices.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1], [2, 0], [2, 1]]
    assert branches_to_joint(choices, branches).tolist() == list(range(6))
    # ML-Agents: True = masked. Branch 0 masks choice 1, branch 1 masks choice 0: the allowed
    # joint actions are (0,1) = 1 and (2,1) = 5.
    masks = [np.array([[False, True, False]]), np.array([[True, False]])]
    assert joint_mask(masks, branches, 1).tolist() == [[False, True, False, False, False, True]]
    assert joint_mask(None, branches, 2).all()


def test_hybrid_actions_decode_into_continuous_values_and_branch_choices() -> None:
    layout = ActionLayout(continuous=2, branches=(3, 2))
    continuous, discrete = decode_actions(
        (np.array([[0.5, -1.0], [0.25, 1.0]]), np.array([5, 2])), layout
    )
    assert continuous.tolist() == [[0.5, -1.0], [0.25, 1.0]]
    assert discrete.tolist() == [[2, 1], [1, 0]]
    continuous, discrete = decode_actions(np.array([4]), ActionLayout(0, (5,)))
    assert continuous.shape == (1, 0) and discrete.tolist() == [[4]]


def test_sampler_syntax_is_parsed_and_sent_as_ml_agents_samplers() -> None:
    from rlkit.bridges import unity_messages

    unity_messages.install()
    from mlagents_envs.side_channel.environment_parameters_channel import (
        EnvironmentParametersChannel,
    )
    from mlagents_envs.side_channel.side_channel_manager import SideChannelManager

    from tests.unity_double.protocol import decode_environment_parameter, split_side_channels

    assert parse_parameter("mass", 2) == 2.0
    assert parse_parameter("scale", "uniform:0.75,1.25") == Sampler("uniform", (0.75, 1.25))
    assert parse_parameter("g", "multirange:1,2,4,5") == Sampler("multirange", (1, 2, 4, 5))
    for typo in ("uniform:1", "uniform:2,1", "gaussian:0,-1", "unifrom:0,1", "multirange:1,2,3"):
        with pytest.raises(ValueError, match="expected"):
            parse_parameter("k", typo)
    channel = EnvironmentParametersChannel()
    parameters = {
        "mass": 2.0,
        "scale": parse_parameter("scale", "uniform:0.75,1.25"),
        "gravity": parse_parameter("gravity", "gaussian:9.8,0.5"),
        "size": parse_parameter("size", "multirange:1,2,4,5"),
    }
    apply_parameters(channel, parameters, seed=7)
    data = SideChannelManager([channel]).generate_side_channel_messages()  # the wire bytes
    decoded = dict(decode_environment_parameter(p) for _, p in split_side_channels(data))
    assert decoded["mass"] == 2.0
    # kind 0 uniform, 1 gaussian, 2 multirange; seeds: run seed + position among the parameters
    shown = {k: (v.kind, v.seed, v.values) for k, v in decoded.items() if k != "mass"}
    assert shown == {
        "scale": (0, 8, (0.75, 1.25)),
        "gravity": (1, 9, pytest.approx((9.8, 0.5))),
        "size": (2, 10, (1.0, 2.0, 4.0, 5.0)),
    }


class _MaskedHost:
    """A host with masks: slot i allows action i % 3 only, and the step's final mask differs."""

    num_envs, action_mask_size = 2, 3

    def reset(self, seed: int):
        return np.zeros((2, 1)), np.eye(3, dtype=bool)[[0, 1]]

    def step(self, actions):
        obs = np.asarray(actions, np.float32).reshape(2, 1)
        mask = np.eye(3, dtype=bool)[[1, 2]]
        return obs, np.ones(2), np.zeros(2, bool), np.ones(2, bool), obs, mask, ~mask


def test_a_host_with_masks_reports_them_in_the_state_and_info() -> None:
    venv = HostVectorEnv(_MaskedHost(), Box(-1, 1, (1,)), Discrete(3))
    obs, state = jax.jit(venv.reset)(jax.random.PRNGKey(0))
    assert venv.action_mask(state, None).tolist() == [[1, 0, 0], [0, 1, 0]]
    _, state, _, _, _, info = jax.jit(venv.step)(jax.random.PRNGKey(1), state, jnp.array([0, 1]))
    assert venv.action_mask(state, None).tolist() == info["action_mask"].tolist()
    assert info["action_mask"].tolist() == [[0, 1, 0], [0, 0, 1]]
    assert info["final_action_mask"].tolist() == [[1, 0, 1], [1, 1, 0]]


# -- BalanceBall in Editor mode ----------------------------------------------------------------


@pytest.fixture(scope="module")
def doubles():
    """The BalanceBall and GridWorld doubles, started together (each compiles its JAX scene
    before connecting), as the Editor would be: (port, process) by scene."""
    ports = {"balanceball": free_ports(), "gridworld": free_ports()}
    args = {"balanceball": ("--shuffle-agents", "--max-steps", "35"), "gridworld": ()}
    started = {s: (port, start_double(s, port, *args[s])) for s, port in ports.items()}
    yield started
    for _, process in started.values():
        process.wait(timeout=30)


def connect(doubles, scene: str, **settings) -> UnityHost:
    port, _ = doubles[scene]
    return UnityHost(UnitySettings(None, base_port=port, timeout=60, **settings))


@pytest.fixture(scope="module")
def ball(doubles):
    host = connect(doubles, "balanceball", parameters={"mass": 2.0}, seed=3,
                   engine=EngineSettings(time_scale=7.5))  # fmt: skip
    host.reset(0)
    yield host
    host.close()


def _native_episode_lengths(count: int, seed: int, max_steps: int, mass: float) -> np.ndarray:
    """Lengths of BalanceBall episodes 0..count-1 under zero actions, with the double's keys."""
    env, params = envs.make("BalanceBall-v0")
    params = params.replace(max_steps_in_episode=max_steps, mass=mass)
    root = jax.random.PRNGKey(seed)

    def length(e: jax.Array) -> jax.Array:
        key = jax.random.fold_in(root, e)
        _, state = env.reset(key, params)

        def body(carry):
            k, state, _ = carry
            _, state, _, terminated, _ = env.step_env(
                jax.random.fold_in(key, k), state, jnp.zeros(2), params
            )
            done = terminated | env.is_truncated(state, params)
            return k + 1, state, done

        k, _, _ = jax.lax.while_loop(lambda c: ~c[2], body, (1, state, False))
        return k - 1

    return np.asarray(jax.jit(jax.vmap(length))(jnp.arange(count)))


def test_balanceball_through_grpc_steps_with_side_channels_both_ways(ball) -> None:
    assert ball.behavior == "3DBall?team=0" and ball.num_envs == 12
    assert ball.observation_space.shape == (8,) and isinstance(ball.action_space, Box)
    ball.drain_stats()
    obs, reward, terminated, truncated, final_obs = ball.step(np.zeros((12, 2), np.float32))
    assert obs.shape == final_obs.shape == (12, 8) and reward.shape == (12,)
    stats = ball.drain_stats()
    # Python -> Unity: the engine's time scale and a float parameter; Unity -> Python: stats.
    assert stats["unity/Double/TimeScale"] == 7.5
    assert stats["unity/Double/Param/mass"] == 2.0
    assert "unity/Double/EpisodesEnded" in stats


def test_a_fixed_policy_has_the_native_mean_episode_length_and_rewards(ball) -> None:
    # Zero actions with shuffled AgentInfos: every episode through the bridge is one of the JAX
    # environment's episodes, so the mean length matches (within 5%: the episodes still running
    # at the end are the longer ones), terminal steps pay -1, truncated ones 0.1 (3DBall's).
    ball.reset(0)
    steps = np.zeros(12, int)
    lengths, rewards = [], {"terminated": [], "truncated": []}
    for _ in range(120):
        obs, reward, terminated, truncated, final_obs = ball.step(np.zeros((12, 2), np.float32))
        steps += 1
        ended = terminated | truncated
        lengths += steps[ended].tolist()
        rewards["terminated"] += reward[terminated].tolist()
        rewards["truncated"] += reward[truncated].tolist()
        assert all(not np.allclose(final_obs[i], obs[i]) for i in np.flatnonzero(ended))
        assert np.array_equal(final_obs[~ended], obs[~ended])
        steps[ended] = 0
    assert len(rewards["terminated"]) > 10 and len(rewards["truncated"]) > 3
    assert np.allclose(rewards["terminated"], -1.0) and np.allclose(rewards["truncated"], 0.1)
    native = _native_episode_lengths(len(lengths) + 12, seed=3, max_steps=35, mass=2.0)
    assert max(lengths) == 35  # truncated at --max-steps 35
    assert abs(np.mean(lengths) - native.mean()) <= 0.05 * native.mean()


def test_an_agent_deciding_less_often_makes_the_batched_step_wait_for_it() -> None:
    # Specs: slot k's episodes last 2 + k steps; the step that brings an episode to step t
    # pays t + i / 4 (i its id). Slot 0 decides every 2nd step, slots 1 and 2 every step:
    # the batched step lasts 2 Unity steps, until slot 0 (whose episode ends at t = 2,
    # truncated: k even) has a successor asking. Every slot earned (1 + i/4) + (2 + i/4).
    host, process = editor_host("specs", "--decision-period", "2", "--slow-agents", "1")
    try:
        obs, _ = host.reset(0)
        vector = host.layout.slices[-1]
        ids = obs[:, vector.start]
        obs, reward, terminated, truncated, final_obs, _, _ = host.step(
            (np.zeros((3, 2)), np.zeros(3, int))
        )
        assert np.allclose(reward, 3 + ids / 2)
        assert truncated.tolist() == [True, False, False] and not terminated.any()
        t = obs[:, vector.start + 1]  # Vector = [i, t, i + t / 4]: the latest request's
        assert t.tolist() == [0, 2, 2] and final_obs[0, vector.start + 1] == 2
    finally:
        close(host, process)


def test_out_of_step_agents_are_waited_for_until_they_ask_after_their_action() -> None:
    # Specs with every agent deciding every 2nd step of its episode and episodes of 2..7
    # steps: successors decide at once, so the agents fall out of step. Batched step b sends
    # c0 = b. An agent in step with the batched step's start gets b there and asks again 2
    # steps later; one out of step first asks 1 step in (and gets b then) and must ask once
    # more, 4 steps after its previous decision: the decision it returns is one taken after b
    # arrived. So a continuing agent's step t advances by 2 or 4, and 4 does happen.
    host, process = editor_host(
        "specs", "--agents", "6", "--decision-period", "2", "--slow-agents", "6"
    )
    try:
        obs, _ = host.reset(0)
        vector = host.layout.slices[-1]
        t = obs[:, vector.start + 1]
        advances = []
        for b in range(1, 25):
            host.drain_stats()
            continuous = np.tile(np.float32([b, 0]), (6, 1))
            obs, _, terminated, truncated, *_ = host.step((continuous, np.zeros(6, int)))
            stats = host.drain_stats()
            went_on = ~(terminated | truncated)
            for i in obs[went_on, vector.start].astype(int):
                assert stats.get(f"unity/Double/Action/{i}/c0") == b
            advances += (obs[went_on, vector.start + 1] - t[went_on]).tolist()
            t = obs[:, vector.start + 1]
        assert set(advances) == {2.0, 4.0}
    finally:
        close(host, process)


def test_an_agent_that_keeps_its_id_across_episodes_keeps_its_slot() -> None:
    # release_19's C# Agent takes its id once (LazyInitialize): an agent whose episode ends is
    # terminal and deciding under one id in the same message. Specs with kept ids: the agent of
    # the double's slot i has id i, its episodes last 2 + i steps, terminated for odd i and
    # truncated for even i; obs Vector = [i, t, i + t / 4]. Shuffled, so the bridge's slot order
    # is the order of the first decisions, not i.
    host, process = editor_host("specs", "--keep-agent-ids", "--shuffle-agents")
    try:
        obs, _ = host.reset(0)
        vector = host.layout.slices[-1]
        ids = obs[:, vector.start].astype(int)
        assert sorted(ids) == [0, 1, 2]
        ends = {i: [] for i in range(3)}
        for b in range(1, 13):
            no_op = (np.zeros((3, 2), np.float32), np.zeros(3, int))
            obs, _, terminated, truncated, final_obs, *_ = host.step(no_op)
            np.testing.assert_array_equal(obs[:, vector.start], ids)  # each slot its one id
            for k in np.flatnonzero(terminated | truncated):
                ends[ids[k]].append(b)
                assert final_obs[k, vector.start + 1] == 2 + ids[k]  # its episode's last step
                assert obs[k, vector.start + 1] == 0  # and the next episode's first
            np.testing.assert_array_equal(terminated, (ids % 2 == 1) & (terminated | truncated))
        assert ends == {i: list(range(2 + i, 13, 2 + i)) for i in range(3)}
    finally:
        close(host, process)


# -- GridWorld: images, goal signals, masks ---------------------------------------------------


@pytest.fixture(scope="module")
def grid(doubles):
    host = connect(doubles, "gridworld")
    yield host
    host.close()


def test_gridworld_images_and_goals_arrive_decoded_in_the_layout(grid) -> None:
    host = grid
    image, goal = host.layout.slices
    assert (image.name, image.shape, image.kind) == ("CameraSensor", (64, 84, 3), "image")
    assert (goal.shape, goal.kind, goal.stop) == ((2,), "goal", 64 * 84 * 3 + 2)
    assert to_gymnasium(host.action_space) == gymnasium.spaces.Discrete(5)
    assert host.action_mask_size == 5
    obs, mask = host.reset(0)
    # Slot i holds episode 4 + i (no shuffling; episodes 0-3 began at the bridge's first reset):
    # the JAX environment's own first observations of those episodes.
    env, params = envs.make("GridWorld-v0", obs_mode="image")
    keys = jax.vmap(lambda e: jax.random.fold_in(jax.random.PRNGKey(0), e))(jnp.arange(4, 8))
    native, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
    pixels = obs[:, image.start : image.stop].reshape(4, 64, 84, 3)
    assert np.abs(pixels - np.asarray(native["image"])).max() <= 0.5 / 255 + 1e-6
    assert np.allclose(obs[:, goal.start : goal.stop], native["goal"])
    allowed = jax.vmap(env.action_mask, in_axes=(0, None))(state, params)
    assert mask.tolist() == np.asarray(allowed).tolist()


def test_masks_are_honoured_and_a_masked_choice_is_seen_by_unity(grid) -> None:
    host = grid
    rng = np.random.default_rng(0)
    obs, mask = host.reset(0)
    host.drain_stats()
    assert not mask.all(), "GridWorld masks the moves into walls"
    for _ in range(30):  # random allowed actions: Unity never receives a masked one
        action = np.array([rng.choice(np.flatnonzero(m)) for m in mask])
        *_, mask, _ = host.step(action)
    assert host.drain_stats()["unity/Double/MaskedActions"] == 0
    forbidden = np.array([np.flatnonzero(~m)[0] if (~m).any() else 0 for m in mask])
    host.step(forbidden)  # the mapping by agent id reaches the agent whose mask it was
    assert host.drain_stats()["unity/Double/MaskedActions"] == (~mask).any(axis=1).sum()


# -- the synthetic scene: hybrid actions, stacked and several observations ----------------------


def test_specs_scene_hybrid_actions_and_every_observation_kind() -> None:
    host, process = editor_host("specs", "--shuffle-agents")
    try:
        names = [(s.name, s.shape) for s in host.layout.slices]
        assert names == [
            ("CameraStack", (6, 5, 6)),
            ("FloatGrid", (2, 3, 4)),
            ("StackedVector", (6,)),
            ("Vector", (3,)),
        ]
        expected = gymnasium.spaces.Tuple(
            [gymnasium.spaces.Box(-1.0, 1.0, (2,)), gymnasium.spaces.Discrete(6)]
        )
        assert to_gymnasium(host.action_space) == expected
        obs, mask = host.reset(0)
        piece = {s.name: s for s in host.layout.slices}
        vector = obs[:, piece["Vector"].start : piece["Vector"].stop]
        ids = vector[:, 0].astype(int)  # Vector = [i, t, i + t / 4]
        camera = obs[:, piece["CameraStack"].start : piece["CameraStack"].stop]
        camera = camera.reshape(-1, 6, 5, 6)
        for row, i in enumerate(ids):  # g(0)[h, w, c] = 40 i + 30 + 10 h + 3 w + 70 c; g(-1) = 0
            h, w, c = np.meshgrid(range(6), range(5), range(3), indexing="ij")
            expected = ((40 * i + 30 + 10 * h + 3 * w + 70 * c) % 256) / 255
            assert np.allclose(camera[row, :, :, 3:], expected, atol=1e-6)
            assert not camera[row, :, :, :3].any()
            # branch 0 masks (i + 0) mod 3, branch 1 masks nothing at t = 0
            assert mask[row].tolist() == [(a // 2) != i % 3 for a in range(6)]
        grid = obs[:, piece["FloatGrid"].start : piece["FloatGrid"].stop].reshape(-1, 2, 3, 4)
        assert np.allclose(grid[:, 1, 2, 3], 1000 * ids + 12 + 8 + 3)
        # A second message lists the agents in another order than the one slots were given in:
        # the actions must follow the agents, not the rows.
        obs, *_ = host.step((np.zeros((3, 2)), np.zeros(3, int)))
        ids = obs[:, piece["Vector"].start].astype(int)
        continuous = np.stack([ids * 0.125, -ids * 0.0625], axis=1).astype(np.float32)
        joint = (ids * 5 + 1) % 6
        host.drain_stats()
        host.step((continuous, joint))
        stats = host.drain_stats()
        for i, c, j in zip(ids, continuous, joint, strict=True):
            prefix = f"unity/Double/Action/{i}/"
            assert [stats[prefix + "c0"], stats[prefix + "c1"]] == c.tolist()
            assert [stats[prefix + "d0"], stats[prefix + "d1"]] == [j // 2, j % 2]
    finally:
        close(host, process)


# -- processes, ports, failures ---------------------------------------------------------------


def test_two_players_at_once_are_one_batched_env_with_their_worker_ids(tmp_path) -> None:
    base = free_ports(2)
    settings = UnitySettings(
        str(BIN / "Specs"), workers=2, base_port=base, timeout=30, log_folder=str(tmp_path)
    )
    host = UnityHost(settings)
    try:
        assert host.num_envs == 6 and [w.slots for w in host.workers] == [[0, 1, 2], [3, 4, 5]]
        assert [w.where for w in host.workers] == [
            f"worker 0 on port {base}",
            f"worker 1 on port {base + 1}",
        ]
        obs, _ = host.reset(0)
        # Specs' numbers depend on (agent id, step) only: the two players send the same.
        assert np.array_equal(obs[:3], obs[3:])
        for _ in range(5):  # episodes of 2, 3, 4 steps end and restart in both players
            _, _, terminated, truncated, *_ = host.step((np.zeros((6, 2)), np.zeros(6, int)))
            assert np.array_equal(terminated[:3], terminated[3:])
        assert sorted(p.name for p in tmp_path.iterdir()) == ["Player-0.log", "Player-1.log"]
        processes = [w.process for w in host.workers]
    finally:
        host.close()
    assert all(p.poll() is not None for p in processes), "no Unity process is left behind"


def test_a_crashed_player_is_one_clear_line_kept_by_the_compiled_env() -> None:
    # Inside a compiled program the host's exception reaches the caller as XLA's error; the
    # HostVectorEnv keeps the original, which is what the CLI reports.
    settings = UnitySettings(
        str(BIN / "Specs"), base_port=free_ports(), timeout=5,
        extra_args=("--double-crash-after-steps", "2"),
    )  # fmt: skip
    host = UnityHost(settings)
    venv = HostVectorEnv(host, host.observation_space, host.action_space)
    step = jax.jit(venv.step)
    _, state = jax.jit(venv.reset)(jax.random.PRNGKey(0))
    action = (jnp.zeros((3, 2)), jnp.zeros(3, jnp.int32))
    start = time.perf_counter()
    with pytest.raises(Exception) as raised:
        for _ in range(3):
            jax.block_until_ready(step(jax.random.PRNGKey(1), state, action))
    assert time.perf_counter() - start < 5
    assert not isinstance(raised.value, HostFailure)
    assert isinstance(venv.failure, HostFailure)
    assert re.fullmatch(
        r"Unity \(worker 0 on port \d+\) quit or crashed: .*code 3", str(venv.failure)
    )
    process = host.workers[0].process
    venv.close()
    assert process.poll() == 3


def test_the_cli_reports_the_hosts_own_line_and_the_kept_checkpoint(tmp_path) -> None:
    from types import SimpleNamespace

    from rlkit.cli.errors import RunFailure
    from rlkit.cli.train import _failure

    venv = HostVectorEnv(_MaskedHost(), Box(-1, 1, (1,)), Discrete(3))
    line = "Unity (worker 0 on port 5005) quit or crashed"
    venv.failure = HostFailure(line)
    run = SimpleNamespace(spec=SimpleNamespace(env=venv), folder=tmp_path, kept=lambda: 2)
    reported = _failure(RuntimeError("INTERNAL: CpuCallback error ..."), run)
    assert isinstance(reported, RunFailure)
    assert str(reported) == f"{line}; checkpoint 2 is kept in {tmp_path}"


def test_a_hung_player_times_out_with_one_clear_line() -> None:
    settings = UnitySettings(
        str(BIN / "Specs"), base_port=free_ports(), timeout=2,
        extra_args=("--double-hang-after-steps", "1"),
    )  # fmt: skip
    host = UnityHost(settings)
    host.reset(0)
    host.step((np.zeros((3, 2)), np.zeros(3, int)))
    start = time.perf_counter()
    with pytest.raises(HostFailure, match="did not answer within 2 s"):
        host.step((np.zeros((3, 2)), np.zeros(3, int)))
    assert time.perf_counter() - start < 6
    process = host.workers[0].process
    host.close()
    assert process.poll() is not None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--double-communication-version", "2.0.0"), "speaks another ML-Agents protocol"),
        (("--double-no-such-option",), "quit or crashed"),  # the player exits at once
    ],
)
def test_a_player_that_cannot_serve_is_one_clear_line(extra, message) -> None:
    settings = UnitySettings(
        str(BIN / "Specs"), base_port=free_ports(), timeout=10, extra_args=extra
    )
    with pytest.raises(HostFailure, match=message):
        UnityHost(settings)


def test_a_port_in_use_is_one_clear_line() -> None:
    port = free_ports()
    with socket.socket() as taken:
        taken.bind(("localhost", port))
        taken.listen()
        with pytest.raises(HostFailure, match="port is in use"):
            UnityHost(UnitySettings(str(BIN / "Specs"), base_port=port, timeout=5))


# -- the command line --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--env", "unity:nowhere/Player"], "no Unity player at nowhere/Player"),
        (["--env", "unity:editor", "--workers", "2"], "--workers needs a Unity player"),
        (["--env", f"unity:{BIN}/Specs", "--env-set", "scale=unifrom:0,1"], "expected a number"),
        (["--env", "BalanceBall-v0", "--behavior", "x"], "--behavior is for --env unity"),
        (["--env", f"unity:{BIN}/Specs", "--seeds", "2"], "trains 1 seed, not 2"),
        (["--env", f"unity:{BIN}/Specs"], "continuous and discrete actions together"),
        (
            ["--env", f"unity:{BIN}/Specs", "--behavior", "Walker?team=0"],
            "no behaviour 'Walker?team=0'; it has: Specs?team=0",
        ),
    ],
)
def test_bad_unity_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, argv, message):
    runs = tmp_path / "runs"
    port = ["--base-port", str(free_ports())]
    assert main(["train", "ppo", *argv, *port, "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rlkit: error: ") and message in err[0]
    assert not runs.exists()


def test_sweep_refuses_a_unity_env_before_starting_it(tmp_path, capsys) -> None:
    argv = ["sweep", "ppo", "--env", f"unity:{BIN}/Specs", "--grid", "learning_rate=1e-3,1e-4"]
    assert main([*argv, "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "rlkit sweep cannot use it" in capsys.readouterr().err


def _train(tmp_path: Path, name: str, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RLKIT_UNITY_DOUBLE_PYTHON"}
    command = [sys.executable, "-m", "rlkit.cli", "train", "ppo"]
    command += ["--env", "unity:tests/unity_double/bin/BalanceBall", "--name", name]
    command += ["--base-port", str(free_ports()), "--time-scale", "5", "--steps", "1536"]
    command += ["--set", "rollout_length=64", "--log-every", "768", "--checkpoint-every", "1"]
    command += ["--runs-dir", str(tmp_path / "runs"), "--no-progress", "--eval-episodes", "12"]
    command += ["--eval-steps", "20"]
    command += ["--unity-arg=--double-max-steps", "--unity-arg=50", *extra]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)


def test_rlkit_train_ppo_on_unity_end_to_end(tmp_path) -> None:
    done = _train(tmp_path, "ok")
    assert done.returncode == 0, done.stderr
    run = tmp_path / "runs" / "ok"
    assert "Unity has 12 agents of the behaviour: num_envs is 12 (the config said 4)" in done.stderr
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["unity/Double/TimeScale"] == 5.0 for r in rows)
    ended = sum(r.get("unity/Double/EpisodesEnded", 0) for r in rows)
    assert ended == sum(r["episodes"] for r in rows) > 0
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["config"]["num_envs"] == 12 and config["unity"]["time_scale"] == 5.0
    assert (run / "unity-logs" / "Player-0.log").exists()
    assert json.loads((run / "summary.json").read_text())["evaluation"]["episodes_per_seed"] == 12
