"""Host environments enter the vectorised-env contract through io_callback."""

from __future__ import annotations

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from agents import ppo
from rlkit.bridges.host import GymnasiumHost, HostVectorEnv
from rlkit.core.wrappers import EpisodeStatistics
from rlkit.data.rollout import reset_envs
from rlkit.training.runner import train


def _cartpole_host(num_envs: int) -> EpisodeStatistics:
    host = GymnasiumHost("CartPole-v1", num_envs)
    return EpisodeStatistics(HostVectorEnv(host, *host.spaces()))


def test_a_jitted_rollout_on_a_host_env_matches_gymnasium_stepped_directly() -> None:
    # Same seed, same actions: a compiled scan (io_callback inside lax.scan) sees exactly
    # the observations, rewards and flags that gymnasium produces on its own, and its
    # final_observation is gymnasium's final_obs where an episode ended.
    num_envs, steps = 3, 60
    venv = _cartpole_host(num_envs)
    actions = jax.random.bernoulli(jax.random.PRNGKey(7), 0.5, (steps, num_envs)).astype(jnp.int32)

    @jax.jit
    def run(key: jax.Array) -> tuple:
        carry = reset_envs(venv, venv.default_params, key)

        def step(carry, action):
            obs, env_state, reward, terminated, truncated, info = venv.step(
                key, carry.env_state, action, venv.default_params
            )
            record = (carry.obs, reward, terminated, truncated, info["final_observation"])
            return type(carry)(env_state=env_state, obs=obs), record

        return jax.lax.scan(step, carry, actions)

    _, (seen_obs, rewards, terminated_, truncated_, final_obs) = run(jax.random.PRNGKey(0))
    seed = int(jax.random.randint(jax.random.PRNGKey(0), (), 0, 2**31 - 1))
    reference = gymnasium.make_vec(
        "CartPole-v1",
        num_envs=num_envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP},
    )
    obs, _ = reference.reset(seed=seed)
    ends = 0
    for t in range(steps):
        np.testing.assert_allclose(seen_obs[t], obs, rtol=1e-6)
        obs, reward, terminated, truncated, info = reference.step(np.asarray(actions[t]))
        np.testing.assert_array_equal(rewards[t], reward)
        np.testing.assert_array_equal(terminated_[t], terminated)
        np.testing.assert_array_equal(truncated_[t], truncated)
        for i in np.flatnonzero(info.get("_final_obs", np.zeros(num_envs, bool))):
            np.testing.assert_allclose(final_obs[t, i], info["final_obs"][i], rtol=1e-6)
            ends += 1
    assert ends > 3, "random CartPole episodes end within 60 steps"


def test_ppo_trains_unchanged_on_a_host_env() -> None:
    venv = _cartpole_host(4)
    config = ppo.Config(num_envs=4, rollout_length=64, total_steps=4 * 64 * 30)
    algo = ppo.make(config, venv, venv.default_params)
    result = train(algo, num_seeds=1, eval_episodes=4)
    returns = result.metrics["episode_return"][0]
    assert np.isfinite(returns).all() and result.metrics["episodes"].sum() > 100
    # 7.7k steps of PPO lift CartPole well above random play (about 22 per episode).
    assert np.mean(returns[-5:]) > 1.5 * np.mean(returns[:5])
