"""The environment contract: registry, gymnax interoperability, vectorisation and wrappers."""

from __future__ import annotations

import gymnasium
import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

import envs
from rlkit.core import spaces
from rlkit.core.env import Environment, VectorEnv, action_mask
from rlkit.core.wrappers import (
    ClipAction,
    EpisodeStatistics,
    NormalizeObservation,
    ScaleReward,
    as_vector_env,
    episode_metrics,
)

# Representatives of every family make() serves: rlkit's own, classic control, MinAtar, bsuite.
BIG_BATCH_ENVS = [
    ("BalanceBall-v0", {}),
    ("BalanceBallHard-v0", {}),
    ("GridWorld-v0", {}),
    ("GridWorld-v0", {"obs_mode": "image"}),
    ("CartPole-v1", {}),
    ("Pendulum-v1", {}),
    ("Breakout-MinAtar", {}),
    ("Catch-bsuite", {}),
]


def _random_actions(space: spaces.Space, key: jax.Array, n: int) -> jax.Array:
    return jax.vmap(space.sample)(jax.random.split(key, n))


@pytest.mark.parametrize(("name", "overrides"), BIG_BATCH_ENVS)
def test_reset_and_step_under_jit_and_vmap_4096_copies(name: str, overrides: dict) -> None:
    env, params = envs.make(name, **overrides)
    venv = VectorEnv(env, 4096)
    space = env.action_space(params)

    @jax.jit
    def run(key: jax.Array) -> tuple:
        obs, state = venv.reset(key, params)

        def step(state: object, key: jax.Array) -> tuple:
            action = _random_actions(space, key, 4096)
            _obs, state, reward, terminated, truncated, _info = venv.step(
                key, state, action, params
            )
            return state, (reward, terminated, truncated)

        state, (rewards, terminated, truncated) = jax.lax.scan(
            step, state, jax.random.split(key, 3)
        )
        return obs, rewards, terminated, truncated

    obs, rewards, terminated, truncated = run(jax.random.PRNGKey(0))
    for leaf in jax.tree.leaves(obs):
        assert leaf.shape[0] == 4096
        assert bool(jnp.isfinite(leaf).all())
    assert rewards.shape == terminated.shape == truncated.shape == (3, 4096)
    assert terminated.dtype == jnp.bool_ and truncated.dtype == jnp.bool_
    assert bool(jnp.isfinite(rewards).all())


@pytest.mark.parametrize("name", list(envs.RLKIT_ENVS))
def test_rlkit_envs_load_through_gymnax_make(name: str) -> None:
    env, params = gymnax.make(name)
    assert isinstance(env, Environment) and isinstance(
        env, gymnax.environments.environment.Environment
    )
    _obs, state = env.reset(jax.random.PRNGKey(0), params)
    action = env.action_space(params).sample(jax.random.PRNGKey(1))
    out = env.step(jax.random.PRNGKey(2), state, action, params)
    assert len(out) == 6, "gymnax 1.0 step returns six values"
    assert "final_observation" in out[5]


def test_make_overrides_params_and_constructor_and_rejects_unknown_keys() -> None:
    _, params = envs.make("BalanceBall-v0", gravity=4.0)
    assert params.gravity == 4.0
    env, _ = envs.make("GridWorld-v0", obs_mode="image")
    assert isinstance(env.observation_space(env.default_params), spaces.Dict)
    with pytest.raises(ValueError, match="no parameter 'gravityy'"):
        envs.make("BalanceBall-v0", gravityy=4.0)
    with pytest.raises(ValueError, match="did you mean CartPole-v1"):
        envs.make("CartPole-v2")


@struct.dataclass
class ScriptState:
    time: jax.Array


@struct.dataclass
class ScriptParams:
    max_steps_in_episode: int = 2


class Scripted(Environment):
    """Deterministic two-step episodes: step 1 pays 1, step 2 pays 20 and terminates."""

    @property
    def default_params(self) -> ScriptParams:
        return ScriptParams(max_steps_in_episode=3)

    def reset_env(self, key: jax.Array, params: ScriptParams) -> tuple:
        del key
        return jnp.zeros((1,)), ScriptState(time=jnp.int32(0))

    def step_env(self, key, state, action, params):
        time = state.time + 1
        reward = time.astype(jnp.float32) * 10.0 ** (time % 2 == 0)
        terminated = time == 2
        obs = jnp.full((1,), time, jnp.float32)
        return obs, ScriptState(time), reward, terminated, {}

    def observation_space(self, params):
        return spaces.Box(0.0, 10.0, (1,))

    def action_space(self, params):
        return spaces.Discrete(1)


def test_episode_statistics_on_a_hand_checked_sequence() -> None:
    # Scripted rewards: step 1 pays 1, step 2 pays 2 * 10 = 20 and terminates. So every episode
    # lasts 2 steps and returns 21; the running counters reset after each episode end.
    env = EpisodeStatistics(Scripted())
    params = env.default_params
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    records = []
    for t in range(5):
        _obs, state, reward, _terminated, _truncated, info = env.step(
            jax.random.PRNGKey(t), state, 0, params
        )
        records.append(
            (
                float(reward),
                bool(info["episode_done"]),
                float(info["episode_return"]),
                int(info["episode_length"]),
            )
        )
    assert records == [
        (1.0, False, 0.0, 0),
        (20.0, True, 21.0, 2),
        (1.0, False, 0.0, 0),
        (20.0, True, 21.0, 2),
        (1.0, False, 0.0, 0),
    ]
    assert float(state.episode_return) == 1.0 and int(state.episode_length) == 1


def test_episode_metrics_average_only_finished_episodes() -> None:
    # Two copies over three steps: copy 0 finishes episodes of return 5 and 7, copy 1 none.
    info = {
        "episode_done": jnp.array([[True, False], [False, False], [True, False]]),
        "episode_return": jnp.array([[5.0, 0.0], [0.0, 0.0], [7.0, 0.0]]),
        "episode_length": jnp.array([[3, 0], [0, 0], [4, 0]]),
    }
    metrics = episode_metrics(info)
    assert float(metrics["episode_return"]) == 6.0
    assert float(metrics["episode_length"]) == 3.5
    assert float(metrics["episodes"]) == 2.0
    none = episode_metrics(jax.tree.map(lambda x: x[1:2], info))
    assert np.isnan(float(none["episode_return"])) and float(none["episodes"]) == 0.0


def test_gymnax_cartpole_runs_through_rlkit_wrappers() -> None:
    # CartPole pays 1 per step, so every finished episode's return equals its length, and the
    # lengths of the episodes of one copy add up to the steps that copy took (up to the last end).
    env, params = envs.make("CartPole-v1")
    venv = ScaleReward(NormalizeObservation(as_vector_env(env, 16)), gamma=0.99)
    obs, state = venv.reset(jax.random.PRNGKey(0), params)

    @jax.jit
    def run(state: object, key: jax.Array) -> tuple:
        def step(state: object, key: jax.Array) -> tuple:
            action = _random_actions(env.action_space(params), key, 16)
            obs, state, reward, _terminated, _truncated, info = venv.step(
                key, state, action, params
            )
            return state, (obs, reward, info)

        return jax.lax.scan(step, state, jax.random.split(key, 300))

    state, (obs, scaled_reward, info) = run(state, jax.random.PRNGKey(1))
    done = np.asarray(info["episode_done"])
    returns = np.asarray(info["episode_return"])[done]
    lengths = np.asarray(info["episode_length"])[done]
    assert done.sum() > 16, "random CartPole episodes last about 20 steps"
    np.testing.assert_array_equal(returns, lengths.astype(np.float32))
    last_end = done.shape[0] - 1 - np.argmax(done[::-1], axis=0)
    for copy in range(16):
        assert lengths_sum(info, copy) == last_end[copy] + 1
    # Observations are normalised: roughly zero mean, unit variance over the run.
    flat = np.asarray(obs).reshape(-1, 4)
    assert np.all(np.abs(flat[100:].mean(axis=0)) < 0.5)
    assert np.all(np.abs(flat[100:].std(axis=0) - 1.0) < 0.5)
    # Rewards are scaled: CartPole's constant reward 1 divided by the running std of the
    # discounted return, which by the end of the run is the std of the final statistics.
    expected_last = 1.0 / np.sqrt(float(state.stats.var) + 1e-8)
    np.testing.assert_allclose(np.asarray(scaled_reward[-1]), expected_last, rtol=1e-5)
    assert expected_last < 0.5, "returns of 20-step episodes vary by more than 2"


def lengths_sum(info: dict, copy: int) -> int:
    done = np.asarray(info["episode_done"])[:, copy]
    return int(np.asarray(info["episode_length"])[:, copy][done].sum())


def test_normalize_observation_matches_numpy_statistics() -> None:
    env, params = envs.make("CartPole-v1")
    venv = NormalizeObservation(as_vector_env(env, 8))
    obs, state = venv.reset(jax.random.PRNGKey(0), params)
    raw = []
    inner = venv._env
    key = jax.random.PRNGKey(3)
    # Re-run the inner env in lockstep to collect the raw observations the wrapper saw.
    raw_obs, inner_state = inner.reset(jax.random.PRNGKey(0), params)
    raw.append(np.asarray(raw_obs))
    for _ in range(20):
        key, k_act, k_step = jax.random.split(key, 3)
        action = _random_actions(env.action_space(params), k_act, 8)
        obs, state, *_ = venv.step(k_step, state, action, params)
        raw_obs, inner_state, *_ = inner.step(k_step, inner_state, action, params)
        raw.append(np.asarray(raw_obs))
    raw = np.concatenate(raw)
    stats = state.stats
    # The wrapper's statistics start from a prior count of 1e-4 at mean 0, var 1: negligible.
    np.testing.assert_allclose(stats.mean, raw.mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats.var, raw.var(axis=0), rtol=1e-3, atol=1e-5)
    expected = np.clip((raw[-8:] - raw.mean(axis=0)) / np.sqrt(raw.var(axis=0) + 1e-8), -10, 10)
    np.testing.assert_allclose(obs, expected, rtol=1e-3, atol=1e-3)


def test_scale_reward_divides_by_the_std_of_discounted_returns() -> None:
    # TwoStepDiscount pays 0 then 1 per two-step episode: with gamma 0.5 the running discounted
    # return goes 0, 1, 0, 1, ...; each reward is divided by sqrt of the variance of the returns
    # seen so far (the statistics include a prior count of 1e-4 at mean 0 and variance 1).
    from envs.probes import TwoStepDiscount

    gamma = 0.5
    venv = ScaleReward(as_vector_env(TwoStepDiscount(), 1), gamma=gamma)
    params = TwoStepDiscount().default_params
    obs, state = venv.reset(jax.random.PRNGKey(0), params)
    returns = []
    running = 0.0
    for t in range(6):
        _obs, state, reward, _terminated, _truncated, _info = venv.step(
            jax.random.PRNGKey(t), state, jnp.zeros((1,), jnp.int32), params
        )
        raw = 1.0 if t % 2 == 1 else 0.0
        running = running * gamma + raw
        returns.append(running)
        if t % 2 == 1:
            running = 0.0
        count = 1e-4 + len(returns)
        mean = np.sum(returns) / count
        var = (1e-4 * 1.0 + np.sum((np.array(returns) - mean) ** 2) + 1e-4 * mean**2) / count
        np.testing.assert_allclose(float(reward[0]), raw / np.sqrt(var + 1e-8), rtol=1e-3)


def test_clip_action_clips_to_the_box() -> None:
    env, params = envs.make("Pendulum-v1")
    clipped = ClipAction(env)
    _obs, state = env.reset(jax.random.PRNGKey(0), params)
    out_big = clipped.step(jax.random.PRNGKey(1), state, jnp.array([100.0]), params)
    out_max = env.step(jax.random.PRNGKey(1), state, jnp.array([2.0]), params)
    np.testing.assert_allclose(out_big[0], out_max[0])
    np.testing.assert_allclose(out_big[2], out_max[2])


def test_action_mask_travels_through_wrappers_and_vectorisation() -> None:
    env, params = envs.make("GridWorld-v0")
    venv = NormalizeObservation(as_vector_env(env, 5))
    _obs, state = venv.reset(jax.random.PRNGKey(0), params)
    mask = action_mask(venv, state, params)
    assert mask.shape == (5, 5) and mask.dtype == jnp.bool_
    assert bool(mask[:, 0].all()), "NoAction is always allowed"
    cartpole, cartpole_params = envs.make("CartPole-v1")
    cartpole_vec = as_vector_env(cartpole, 3)
    _, cartpole_state = cartpole_vec.reset(jax.random.PRNGKey(0), cartpole_params)
    assert action_mask(cartpole_vec, cartpole_state, cartpole_params) is None


def test_spaces_convert_to_and_from_gymnasium() -> None:
    box = spaces.Box(-1.0, 2.0, (3,), jnp.float32)
    g_box = spaces.to_gymnasium(box)
    assert isinstance(g_box, gymnasium.spaces.Box) and g_box.shape == (3,)
    np.testing.assert_array_equal(g_box.low, [-1, -1, -1])
    back = spaces.from_gymnasium(g_box)
    assert isinstance(back, spaces.Box) and tuple(back.shape) == (3,)
    np.testing.assert_array_equal(np.asarray(back.high), [2, 2, 2])
    disc = spaces.from_gymnasium(spaces.to_gymnasium(spaces.Discrete(5)))
    assert isinstance(disc, spaces.Discrete) and disc.n == 5
    nested = spaces.Dict({"image": spaces.Box(0.0, 1.0, (2, 2, 3)), "goal": spaces.Box(0, 1, (2,))})
    g_nested = spaces.to_gymnasium(nested)
    assert set(g_nested.spaces) == {"image", "goal"}
    assert isinstance(spaces.from_gymnasium(g_nested), spaces.Dict)
    with pytest.raises(ValueError, match="start at 0"):
        spaces.from_gymnasium(gymnasium.spaces.Discrete(3, start=1))
