"""BalanceBall-v0 / BalanceBallHard-v0: the physics and rules of ML-Agents' 3DBall.

Reference numbers (ML-AGENTS.md §1): a decision is 5 physics steps of 0.02 s (0.1 s); the platform
top face is at 2.5 above its centre and spans [-2.5, 2.5]^2; the ball radius is 0.5 * scale; a
rolling solid sphere accelerates at (5/7) g sin(theta) down a slope of angle theta; reward 0.1 per
decision, -1 on failure; 1000 decisions per episode. Independent references: scipy's rotations
for quaternions, closed-form kinematics for motion.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import envs
from envs.balance_ball import BalanceBall, BalanceBallHard, EnvState, HardEnvState
from rlkit.core.env import VectorEnv

ENV = BalanceBall()
HARD = BalanceBallHard()
PARAMS = ENV.default_params
DECISION = 5 * PARAMS.dt  # seconds per decision
KEY = jax.random.PRNGKey(0)


@functools.partial(jax.jit, static_argnums=0)
def rollout(env, state, actions, params, key=KEY):
    """env.step (with auto-reset) over actions [T, 2]; returns (last state, per-step outputs)."""

    def step(state, inputs):
        action, step_key = inputs
        obs, state, reward, terminated, truncated, info = env.step(step_key, state, action, params)
        return state, (obs, reward, terminated, truncated, info["final_observation"])

    keys = jax.random.split(key, actions.shape[0])
    return jax.lax.scan(step, state, (actions, keys))


def zeros(steps: int) -> jax.Array:
    return jnp.zeros((steps, 2), jnp.float32)


def platform_state(rotation: Rotation, position, velocity=(0.0, 0.0, 0.0)) -> EnvState:
    x, y, z, w = rotation.as_quat()  # scipy orders (x, y, z, w)
    return EnvState(
        quaternion=jnp.array([w, x, y, z], jnp.float32),
        ball_position=jnp.array(position, jnp.float32),
        ball_velocity=jnp.array(velocity, jnp.float32),
        time=jnp.int32(0),
    )


def resting_on(rotation: Rotation, scale: float = 1.0) -> EnvState:
    """Ball at rest on the face above the platform centre: centre at (2.5 + r) along the normal."""
    return platform_state(rotation, rotation.apply([0.0, 2.5 + 0.5 * scale, 0.0]))


LEVEL = Rotation.identity()


def test_level_platform_ball_at_rest_returns_100_then_truncates() -> None:
    # 1000 decisions x 0.1 = 100 (ML-Agents' maximum return); the 1000th is a time-limit cut.
    state = resting_on(LEVEL)
    _, (obs, rewards, terminated, truncated, final_obs) = rollout(ENV, state, zeros(1000), PARAMS)
    rewards = np.asarray(rewards)
    assert np.all(rewards == np.float32(0.1))
    assert rewards.astype(np.float64).sum() == pytest.approx(100.0, rel=1e-6)
    assert not np.asarray(terminated).any()
    assert np.flatnonzero(np.asarray(truncated)).tolist() == [999]
    # The ball never moved: dy = 2.5 + 0.5, no velocity, right up to the cut.
    np.testing.assert_allclose(np.asarray(final_obs)[999, 2:], [0, 3.0, 0, 0, 0, 0], atol=1e-6)


@pytest.mark.parametrize(
    ("axis", "degrees", "gravity"),
    [("z", 10.0, 9.81), ("x", 10.0, 9.81), ("z", 20.0, 4.0), ("x", 5.0, 30.0)],
)
def test_ball_rolls_downhill_at_five_sevenths_g_sin_theta(
    axis: str, degrees: float, gravity: float
) -> None:
    # A solid sphere rolling without slipping: a = g sin(theta) / (1 + 2/5) = (5/7) g sin(theta),
    # so also proportional to gravity. Measured from speeds at decisions 1 and 4 (0.3 s apart).
    tilt = Rotation.from_euler(axis, degrees, degrees=True)
    params = PARAMS.replace(gravity=gravity)
    _, (obs, _, terminated, _, _) = rollout(ENV, resting_on(tilt), zeros(20), params)
    assert not np.asarray(terminated)[:4].any()
    velocity = np.asarray(obs)[:, 5:8]
    speed = np.linalg.norm(velocity, axis=1)
    acceleration = (speed[3] - speed[0]) / (3 * DECISION)
    expected = 5.0 / 7.0 * gravity * math.sin(math.radians(degrees))
    assert acceleration == pytest.approx(expected, rel=0.02)
    # ... and straight down the slope: along world-down minus its part along the normal.
    normal = tilt.apply([0.0, 1.0, 0.0])
    downhill = np.array([0.0, -1.0, 0.0]) + normal[1] * normal
    downhill /= np.linalg.norm(downhill)
    assert velocity[3] @ downhill / speed[3] > 0.9999


@pytest.mark.parametrize("scale", [0.5, 1.0, 2.0])
def test_resting_height_is_half_extent_plus_radius(scale: float) -> None:
    # Dropped from the spawn height onto a level platform, the ball comes to rest (no bounce)
    # with its centre at 2.5 + 0.5 * scale.
    params = PARAMS.replace(scale=scale)
    state = platform_state(LEVEL, (0.3, 4.0, -0.2))
    _, (obs, _, terminated, _, _) = rollout(ENV, state, zeros(20), params)
    assert not np.asarray(terminated).any()
    np.testing.assert_allclose(
        np.asarray(obs)[-1, 2:], [0.3, 2.5 + 0.5 * scale, -0.2, 0, 0, 0], atol=1e-5
    )


@pytest.mark.parametrize(("gravity", "scale"), [(4.0, 1.0), (9.81, 0.5), (9.81, 2.0), (30.0, 1.0)])
def test_fall_from_spawn_height_takes_sqrt_2h_over_g(gravity: float, scale: float) -> None:
    # Free fall from dy = 4 to the resting height 2.5 + r: h = 1.5 - r, t = sqrt(2h/g). While
    # airborne vy = -g t exactly (semi-implicit Euler); the landing time is extrapolated from the
    # last airborne decision with the closed form. Semi-implicit Euler falls g t dt / 2 ahead of
    # the exact parabola, so allow one physics step (0.02 s).
    params = PARAMS.replace(gravity=gravity, scale=scale)
    rest = 2.5 + 0.5 * scale
    _, (obs, _, _, _, _) = rollout(ENV, platform_state(LEVEL, (0.0, 4.0, 0.0)), zeros(20), params)
    obs = np.asarray(obs, np.float64)
    times = DECISION * np.arange(1, 21)
    airborne = obs[:, 3] > rest + 1e-3
    last = np.flatnonzero(airborne).max()
    assert airborne[: last + 1].all() and not airborne[last + 1 :].any()
    np.testing.assert_allclose(obs[airborne, 6], -gravity * times[airborne], rtol=1e-5)
    speed, gap = -obs[last, 6], obs[last, 3] - rest
    landing = times[last] + (math.sqrt(speed**2 + 2 * gravity * gap) - speed) / gravity
    assert landing == pytest.approx(math.sqrt(2 * (4.0 - rest) / gravity), abs=PARAMS.dt)


def test_mass_does_not_change_the_dynamics() -> None:
    # Gravity and a static platform are the only forces: m cancels out of every equation.
    state = platform_state(Rotation.from_euler("zx", [8.0, -5.0], degrees=True), (1.0, 4.0, 0.5))
    actions = jnp.tile(jnp.array([[0.7, -0.4]]), (20, 1))
    light = rollout(ENV, state, actions, PARAMS.replace(mass=0.1))[1][0]
    heavy = rollout(ENV, state, actions, PARAMS.replace(mass=20.0))[1][0]
    np.testing.assert_array_equal(np.asarray(light), np.asarray(heavy))


def test_actions_turn_about_local_z_then_local_x_two_degrees_per_physics_step() -> None:
    # One decision = 5 x (turn 2 deg * a0 about local Z, then 2 deg * a1 about local X); Space.Self
    # turns compose on the right. Actions are clamped to [-1, 1] first (1.7 -> 1).
    start = Rotation.from_euler("xz", [3.0, -4.0], degrees=True)
    state = platform_state(start, (0.0, 4.0, 0.0))
    actions = zeros(20).at[0].set(jnp.array([0.5, -1.7]))  # then 19 decisions without turns
    never_fail = PARAMS.replace(fail_below=-1e9, fail_distance=1e9)
    final, _ = rollout(ENV, state, actions, never_fail)
    expected = start
    for _ in range(5):
        expected = expected * Rotation.from_euler("z", 1.0, degrees=True)
        expected = expected * Rotation.from_euler("x", -2.0, degrees=True)
    x, y, z, w = expected.as_quat()
    np.testing.assert_allclose(np.asarray(final.quaternion), [w, x, y, z], atol=1e-6)


@pytest.mark.parametrize(
    ("position", "velocity"),
    [((2.9, 3.0, 0.0), (2.0, 0.0, 0.0)), ((0.0, 3.0, -2.9), (0.0, 0.0, -2.0))],
)
def test_ball_past_the_edge_fails_with_reward_minus_one(position, velocity) -> None:
    # Moving 2 m/s from 2.9 the ball crosses |d| = 3 on the 3rd physics step of the decision.
    state = platform_state(LEVEL, position, velocity)
    _, (obs, reward, terminated, truncated, final_obs) = rollout(ENV, state, zeros(20), PARAMS)
    assert float(reward[0]) == -1.0
    assert bool(terminated[0]) and not bool(truncated[0])
    crossing = np.asarray(final_obs)[0, 2:5]
    assert np.abs(crossing).max() == pytest.approx(3.02, abs=1e-5)  # 2.9 + 3 x 2 x 0.02
    assert float(obs[0, 3]) == 4.0  # auto-reset: a new ball at the spawn height


def test_ball_below_the_platform_fails_and_freezes_where_it_failed() -> None:
    # Beside the platform (dx = 2.9, no contact) at dy = -1.99, at rest: after n physics steps
    # dy = -1.99 - g dt^2 n(n+1)/2, below -2 first at n = 2: dy = -1.99 - 3 g dt^2 = -2.001772.
    # The platform turns once per physics step before the ball moves, so it turned 2 x 2 degrees
    # about Z before the failure, and then nothing more moves in that decision.
    state = platform_state(LEVEL, (2.9, -1.99, 0.0))
    actions = zeros(20).at[0, 0].set(1.0)
    _, (_, reward, terminated, _, final_obs) = rollout(ENV, state, actions, PARAMS)
    assert float(reward[0]) == -1.0 and bool(terminated[0])
    final = np.asarray(final_obs)[0]
    g, dt = PARAMS.gravity, PARAMS.dt
    assert final[3] == pytest.approx(-1.99 - 3 * g * dt**2, abs=1e-6)
    assert final[6] == pytest.approx(-2 * g * dt, abs=1e-6)
    assert final[0] == pytest.approx(math.sin(math.radians(2.0)), abs=1e-6)


def test_quaternion_clamp_stops_the_tilt_near_29_degrees() -> None:
    # Holding full actions for 20 decisions (200 degrees per axis unclamped): no turn starts once
    # |q.z| or |q.x| >= 0.25, so each stays within 0.25 + one 2-degree turn (sin 1 deg ~ 0.0175)
    # and the tilt per axis within 2 asin(0.25) + 2 = 30.96 degrees. Failure is switched off so
    # the platform is never reset.
    never_fail = PARAMS.replace(fail_below=-1e9, fail_distance=1e9)
    for sign in (1.0, -1.0):
        actions = jnp.full((20, 2), sign, jnp.float32)
        _, (obs, _, terminated, _, _) = rollout(ENV, resting_on(LEVEL), actions, never_fail)
        assert not np.asarray(terminated).any()
        q = np.abs(np.asarray(obs)[:, :2])
        assert q.max() <= 0.25 + math.sin(math.radians(1.0)) + 1e-6
        assert q[-1].min() >= 0.25  # it did reach the clamp on both axes
        assert np.degrees(2 * np.arcsin(q.max())) < 31.0


def pd_controller(obs: jax.Array) -> jax.Array:
    """Aim the tilt at 0.2 * offset + 0.3 * velocity (radians) and turn towards it.

    A positive turn about Z raises the +x side (pushes the ball to -x); a positive turn about X
    lowers the +z side. The tilt per axis is about 2 q.
    """
    qz, qx, dx, _, dz, vx, _, vz = obs
    target_z = 0.2 * dx + 0.3 * vx
    target_x = -(0.2 * dz + 0.3 * vz)
    return jnp.clip(2.0 * jnp.stack([target_z - 2 * qz, target_x - 2 * qx]), -1.0, 1.0)


def test_pd_controller_balances_the_ball_for_whole_episodes() -> None:
    # 256 episodes from random resets under a hand-written PD controller: mean return >= 99
    # (100 is the maximum; one early failure costs at least 1.1).
    venv = VectorEnv(ENV, 256)

    @jax.jit
    def first_episode_returns(key: jax.Array) -> jax.Array:
        obs, state = venv.reset(key, PARAMS)

        def step(carry, step_key):
            obs, state, running, returns = carry
            action = jax.vmap(pd_controller)(obs)
            obs, state, reward, terminated, truncated, _ = venv.step(
                step_key, state, action, PARAMS
            )
            returns = returns + jnp.where(running, reward, 0.0)
            return (obs, state, running & ~(terminated | truncated), returns), None

        init = (obs, state, jnp.ones(256, bool), jnp.zeros(256))
        (_, _, running, returns), _ = jax.lax.scan(step, init, jax.random.split(key, 1000))
        return returns

    returns = np.asarray(first_episode_returns(jax.random.PRNGKey(1)))
    assert returns.mean() >= 99.0


def test_reset_and_step_4096_copies_under_jit_and_vmap() -> None:
    # Reset: tilt = intrinsic X then Z rotations, each in U(-10, 10) degrees; ball at dy = 4,
    # dx, dz in U(-1.5, 1.5), at rest. Then 3 random steps: finite, rewards 0.1 or -1.
    env, params = envs.make("BalanceBall-v0")
    venv = VectorEnv(env, 4096)
    space = env.action_space(params)

    @jax.jit
    def run(key):
        obs, state = venv.reset(key, params)

        def step(state, step_key):
            actions = jax.vmap(space.sample)(jax.random.split(step_key, 4096))
            next_obs, state, reward, *_ = venv.step(step_key, state, actions, params)
            return state, (next_obs, reward)

        return obs, state, jax.lax.scan(step, state, jax.random.split(key, 3))[1]

    obs, state, (next_obs, rewards) = run(KEY)
    assert obs.shape == (4096, 8) and next_obs.shape == (3, 4096, 8)
    assert bool(jnp.isfinite(next_obs).all())
    assert set(np.unique(np.asarray(rewards)).tolist()) <= {np.float32(0.1), np.float32(-1.0)}

    w, x, y, z = np.asarray(state.quaternion, np.float64).T
    angles = Rotation.from_quat(np.stack([x, y, z, w], 1)).as_euler("XZY", degrees=True)
    assert np.abs(angles[:, 2]).max() < 1e-3  # no Y component: exactly X then Z
    assert np.abs(angles[:, :2]).max() <= 10.0 + 1e-3
    assert angles[:, :2].min() < -9.9 and angles[:, :2].max() > 9.9
    position = np.asarray(state.ball_position)
    assert np.all(position[:, 1] == 4.0)
    assert np.abs(position[:, [0, 2]]).max() <= 1.5
    assert np.abs(position[:, [0, 2]]).min() < 0.01 and np.abs(position).max() > 1.49
    assert np.all(np.asarray(state.ball_velocity) == 0.0)


def test_hard_observation_stacks_nine_frames_of_position_and_rotation() -> None:
    # Hard and plain envs from the same key and actions follow the same dynamics. Hard's
    # observation: PositionDelta stack (27,) then Rotation stack (18,), oldest frame first,
    # zero-filled at reset with the reset frame last; one frame is pushed per decision.
    plain_obs, plain_state = ENV.reset(KEY, PARAMS)
    hard_obs, hard_state = HARD.reset(KEY, PARAMS)
    assert hard_obs.shape == (45,) == HARD.observation_space(PARAMS).shape
    np.testing.assert_array_equal(hard_obs[:24], 0.0)
    np.testing.assert_array_equal(hard_obs[27:43], 0.0)
    np.testing.assert_array_equal(hard_obs[24:27], plain_obs[2:5])
    np.testing.assert_array_equal(hard_obs[43:45], plain_obs[0:2])

    actions = jax.random.uniform(jax.random.PRNGKey(3), (20, 2), minval=-0.3, maxval=0.3)
    _, (plain, _, plain_term, plain_trunc, _) = rollout(ENV, plain_state, actions, PARAMS)
    _, (hard, _, _, _, _) = rollout(HARD, hard_state, actions, PARAMS)
    assert not np.asarray(plain_term | plain_trunc).any()
    stacks = np.concatenate([hard_obs[None], np.asarray(hard)])  # reset frame + 20 decisions
    positions = stacks[:, :27].reshape(21, 9, 3)
    rotations = stacks[:, 27:].reshape(21, 9, 2)
    np.testing.assert_allclose(positions[1:, -1], np.asarray(plain)[:, 2:5], atol=1e-6)
    np.testing.assert_allclose(rotations[1:, -1], np.asarray(plain)[:, 0:2], atol=1e-6)
    np.testing.assert_array_equal(positions[1:, :-1], positions[:-1, 1:])  # shift by one
    np.testing.assert_array_equal(rotations[1:, :-1], rotations[:-1, 1:])
    assert np.all(positions[9] != 0.0)  # after 9 decisions no zero frame is left


def test_hard_final_observation_is_the_pre_reset_stack() -> None:
    _, reset_state = HARD.reset(KEY, PARAMS)
    state = reset_state.replace(
        quaternion=jnp.array([1.0, 0.0, 0.0, 0.0]),
        ball_position=jnp.array([2.9, 3.0, 0.0]),
        ball_velocity=jnp.array([2.0, 0.0, 0.0]),
    )
    assert isinstance(state, HardEnvState)
    before = np.asarray(HARD.observe(KEY, state, None, PARAMS))
    _, (obs, reward, terminated, _, final_obs) = rollout(HARD, state, zeros(20), PARAMS)
    assert float(reward[0]) == -1.0 and bool(terminated[0])
    final = np.asarray(final_obs)[0]
    np.testing.assert_array_equal(final[:24], before[3:27])  # the old frames, shifted
    assert final[24] == pytest.approx(3.02, abs=1e-5)  # the frame where the ball failed
    np.testing.assert_array_equal(np.asarray(obs)[0, :24], 0.0)  # a fresh, zero-filled stack
