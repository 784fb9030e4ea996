"""Tests for agents/sac.py.

- The loss math (pure functions of Q-values, log-probabilities and probabilities) against
  numbers computed by hand, continuous and discrete, including masked actions.
- The SAC objectives over PolicyValues: a sample's are the sampled forms, every action's the
  expected forms; replacements passed to `make` are what the compiled program learns.
- The actor: log-std clipped to [-20, 2], actions scaled affinely onto the Box bounds, action
  masks honoured; `init` fills the buffer with uniform random actions (learning_starts).
- Config: ML-Agents' steps_per_update maps onto gradient steps per iteration; presets build.
- Probe environments with known values (Q = 1 for a constant reward, best continuous action
  0.5, best discrete action 1, Q = 1 / (1 - gamma) when episodes only ever end by truncation).
- Learning (@pytest.mark.learning): BalanceBall-v0, mean over 4 seeds. (Pendulum-v1 at rejax's
  settings is `rlkit reproduce paper_configs/sac_pendulum_rejax.yaml`, 10 seeds: PASS.)
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from agents import sac
from envs.probes import ActionDependentReward, ConstantReward
from rlkit.core.config import ConfigError
from rlkit.core.spaces import Box
from rlkit.data import offpolicy
from rlkit.nets.actors import LOG_STD_MAX, LOG_STD_MIN
from rlkit.nets.q import StateValue
from rlkit.ops import losses, targets
from rlkit.ops.distributions import TanhGaussian
from rlkit.training.runner import seed_keys, train

# -------------------------------------------------------------------------------------------
# Loss math
# -------------------------------------------------------------------------------------------


def test_soft_q_target_bootstraps_unless_terminated():
    # y = r + gamma (1 - terminated) V(s'); gamma = 0.9
    reward = jnp.array([1.0, 0.5, -1.0])
    terminated = jnp.array([False, True, False])
    next_value = jnp.array([2.0, 3.0, 4.0])
    y = targets.one_step_target(reward, terminated, next_value, 0.9)
    np.testing.assert_allclose(y, [1.0 + 0.9 * 2.0, 0.5, -1.0 + 0.9 * 4.0], rtol=1e-6)


def test_sampled_soft_value_subtracts_alpha_log_prob():
    # V = min Q - alpha log pi = [1 - 0.2 * (-1), 2 - 0.2 * 0.5]
    value = targets.sampled_soft_value(jnp.array([1.0, 2.0]), jnp.array([-1.0, 0.5]), 0.2)
    np.testing.assert_allclose(value, [1.2, 1.9], rtol=1e-6)


def test_expected_soft_value_ignores_masked_actions():
    # pi = [.5, .5, 0] (third action masked, huge Q, log-prob of a masked logit)
    # V = .5 (1 - .1 log .5) + .5 (3 - .1 log .5) = 2 - .1 log .5
    probs = jnp.array([[0.5, 0.5, 0.0]])
    log_probs = jnp.array([[math.log(0.5), math.log(0.5), -1.7e38]])
    q = jnp.array([[1.0, 3.0, 100.0]])
    value = targets.expected_soft_value(probs, log_probs, q, 0.1)
    np.testing.assert_allclose(value, [2.0 - 0.1 * math.log(0.5)], rtol=1e-6)
    # A large temperature makes alpha * (masked log-prob) overflow; no NaN may reach the grads.
    grads = jax.grad(lambda lp: targets.expected_soft_value(probs, lp, q, 1e3).sum())(log_probs)
    assert np.all(np.isfinite(grads))
    np.testing.assert_allclose(grads, [[-500.0, -500.0, 0.0]])


def test_critic_loss_sums_critics_and_averages_batch():
    # Q1 = [1, 2], Q2 = [0, 4], y = [2, 2]: 0.5 * (mean(1, 0) + mean(4, 4)) = 2.25
    q = jnp.array([[1.0, 2.0], [0.0, 4.0]])
    assert float(losses.critic_loss(q, jnp.array([2.0, 2.0]))) == pytest.approx(2.25)


def test_sampled_actor_loss():
    # mean(alpha log pi - Q) = mean(.5 * -1 - 2, .5 * 1 - 0) = mean(-2.5, .5) = -1
    loss = losses.sampled_actor_loss(jnp.array([-1.0, 1.0]), jnp.array([2.0, 0.0]), 0.5)
    assert float(loss) == pytest.approx(-1.0)


def test_expected_actor_loss():
    # state 1: pi = [.25, .75], Q = [0, 1], alpha .5:
    #   .25 (.5 log .25 - 0) + .75 (.5 log .75 - 1)
    # state 2: pi = [1, 0] (second masked), Q = [2, 9]: 1 * (.5 log 1 - 2) = -2
    probs = jnp.array([[0.25, 0.75], [1.0, 0.0]])
    log_probs = jnp.array([[math.log(0.25), math.log(0.75)], [0.0, -1.7e38]])
    q = jnp.array([[0.0, 1.0], [2.0, 9.0]])
    first = 0.25 * 0.5 * math.log(0.25) + 0.75 * (0.5 * math.log(0.75) - 1.0)
    expected = (first - 2.0) / 2
    loss = losses.expected_actor_loss(probs, log_probs, q, 0.5)
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_temperature_loss_value_and_gradient():
    # log(alpha) * mean(H - H_target) with alpha = .5, H = [1, 2], H_target = -1:
    # value log(.5) * 2.5; d/dlog(alpha) = 2.5 > 0, so gradient descent lowers alpha while the
    # entropy is above the target; no gradient reaches the entropy.
    log_alpha = jnp.log(0.5)
    entropy = jnp.array([1.0, 2.0])
    value = losses.temperature_loss(log_alpha, entropy, -1.0)
    assert float(value) == pytest.approx(math.log(0.5) * 2.5, rel=1e-6)
    d_alpha, d_entropy = jax.grad(losses.temperature_loss, argnums=(0, 1))(log_alpha, entropy, -1.0)
    assert float(d_alpha) == pytest.approx(2.5)
    np.testing.assert_array_equal(d_entropy, [0.0, 0.0])
    # below the target the gradient is negative: alpha rises
    assert float(jax.grad(losses.temperature_loss)(log_alpha, entropy, 3.0)) == pytest.approx(-1.5)


def test_temperature_loss_with_the_exact_discrete_entropy():
    # pi = [.5, .25, .25]: H = 1.5 log 2; ML-Agents' target 0.2 log 3. A masked action (third
    # of [.5, .5, 0]) adds nothing: H = log 2.
    from rlkit.ops.distributions import Categorical

    logits = jnp.log(jnp.array([[0.5, 0.25, 0.25], [0.5, 0.5, 0.5]]))
    mask = jnp.array([[True, True, True], [True, True, False]])
    entropy = Categorical(logits, mask).entropy()
    np.testing.assert_allclose(entropy, [1.5 * math.log(2), math.log(2)], rtol=1e-6)
    target = 0.2 * math.log(3)
    value = losses.temperature_loss(jnp.log(2.0), entropy, target)
    expected = math.log(2.0) * ((1.5 * math.log(2) + math.log(2)) / 2 - target)
    assert float(value) == pytest.approx(expected, rel=1e-6)


def test_soft_target_and_actor_loss_of_a_sample_are_the_sampled_forms():
    # Box: one sample per state, probability 1. y = r + gamma (1 - term) (min Q - alpha log pi)
    log_prob = jnp.array([-1.0, 0.5])
    q = jnp.array([[[1.0], [4.0]], [[2.0], [3.0]]])  # [K=2, B=2, 1]: min = [1, 3]
    now = sac.PolicyValues(jnp.zeros((2, 1, 1)), jnp.ones((2, 1)), log_prob[:, None], q)
    batch = {"reward": jnp.array([1.0, 2.0]), "terminated": jnp.array([False, True])}
    h, config = {"gamma": jnp.float32(0.9)}, sac.Config()
    y = sac.soft_target(batch, now, 0.2, h, config)
    np.testing.assert_allclose(y, [1.0 + 0.9 * (1.0 + 0.2), 2.0], rtol=1e-6)
    # mean(alpha log pi - min Q) = mean(-0.2 - 1, 0.1 - 3) = -2.05
    assert float(sac.actor_loss(now, 0.2, h, config)) == pytest.approx(-2.05)
    np.testing.assert_allclose(now.entropy(), [1.0, -0.5])


def test_soft_target_and_actor_loss_over_every_discrete_action_are_the_expected_forms():
    # pi = [.25, .75] and [1, 0] (second action masked), Q = min over two critics.
    probs = jnp.array([[0.25, 0.75], [1.0, 0.0]])
    log_probs = jnp.array([[math.log(0.25), math.log(0.75)], [0.0, -1.7e38]])
    q = jnp.stack([jnp.array([[0.0, 1.0], [2.0, 9.0]]), jnp.array([[5.0, 5.0], [5.0, 5.0]])])
    now = sac.PolicyValues(jnp.array([[0, 1], [0, 1]]), probs, log_probs, q)
    h, config = {"gamma": jnp.float32(0.5)}, sac.Config()
    first = 0.25 * 0.5 * math.log(0.25) + 0.75 * (0.5 * math.log(0.75) - 1.0)
    assert float(sac.actor_loss(now, 0.5, h, config)) == pytest.approx((first - 2.0) / 2)
    batch = {"reward": jnp.array([0.0, 0.0]), "terminated": jnp.array([False, False])}
    value = -first, 2.0  # V = sum pi (Q - alpha log pi) = -(actor loss terms)
    np.testing.assert_allclose(sac.soft_target(batch, now, 0.5, h, config), np.multiply(0.5, value))


# -------------------------------------------------------------------------------------------
# Actor: log-std clip and action scaling
# -------------------------------------------------------------------------------------------


class _OffsetBoxProbe(ConstantReward):
    """ConstantReward with a 2-d Box of unequal bounds [0, 1] x [-3, 5]."""

    def __init__(self):
        super().__init__(continuous=True)

    def action_space(self, params):
        return Box(jnp.array([0.0, -3.0]), jnp.array([1.0, 5.0]), (2,), jnp.float32)


def _with_head_bias(actor_params, bias):
    """Actor params whose output layer is all bias: (mean, log_std) = bias for every input."""
    params = jax.tree.map(lambda v: v, actor_params)
    head = params["params"]["Dense_0"]
    head["kernel"] = jnp.zeros_like(head["kernel"])
    head["bias"] = jnp.asarray(bias, jnp.float32)
    return params


def test_actor_log_std_is_clipped():
    config = sac.Config(hidden=(8,))
    actor, _ = sac.build_networks(config, Box(-1.0, 1.0, (2,), jnp.float32))
    params = actor.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)))
    for raw, clipped in [(50.0, LOG_STD_MAX), (-50.0, LOG_STD_MIN), (0.5, 0.5)]:
        mean, log_std = jax.jit(actor.apply)(
            _with_head_bias(params, [0.3, 0.3, raw, raw]), jnp.ones((4, 3))
        )
        np.testing.assert_allclose(log_std, clipped)
        np.testing.assert_allclose(mean, 0.3)
    assert (LOG_STD_MIN, LOG_STD_MAX) == (-20.0, 2.0)


def test_actions_are_scaled_onto_the_box():
    env = _OffsetBoxProbe()
    config = sac.Config(hidden=(8,), total_steps=10, learning_starts=0)
    algo = sac.make(config, env, env.default_params)
    state = jax.jit(algo.init)(jax.random.PRNGKey(0), algo.hparams)
    policy = algo.policy_params(state)
    act = jax.jit(algo.act, static_argnums=3)
    obs = jnp.zeros((3, 1))
    key = jax.random.PRNGKey(1)

    def action(mean, log_std=-20.0, deterministic=True):
        bias = [mean, mean, log_std, log_std]
        p = policy.replace(params=_with_head_bias(policy.params, bias))
        return np.asarray(act(p, obs, key, deterministic))

    np.testing.assert_allclose(action(0.0), [[0.5, 1.0]] * 3, atol=1e-6)  # the midpoint
    np.testing.assert_allclose(action(20.0), [[1.0, 5.0]] * 3, atol=1e-5)  # tanh -> 1: high
    np.testing.assert_allclose(action(-20.0), [[0.0, -3.0]] * 3, atol=1e-5)  # low
    # tanh(0.5) of the way from the midpoint to the high bound
    np.testing.assert_allclose(
        action(0.5), [[0.5 + 0.5 * math.tanh(0.5), 1 + 4 * math.tanh(0.5)]] * 3, rtol=1e-5
    )
    # stochastic actions stay inside the bounds even with the widest distribution
    wide = action(0.0, log_std=2.0, deterministic=False)
    assert np.all(wide >= [0.0, -3.0]) and np.all(wide <= [1.0, 5.0])


def test_init_fills_the_buffer_with_uniform_random_actions():
    # learning_starts 64 over 4 copies: 16 random steps per copy in init; 100 - 64 = 36 steps
    # are left for 9 iterations of 4.
    env = _OffsetBoxProbe()
    config = sac.Config(hidden=(8,), num_envs=4, learning_starts=64, total_steps=100)
    algo = sac.make(config, env, env.default_params)
    assert algo.num_iterations == 9 and algo.steps_per_iteration == 4
    state = jax.jit(algo.init)(jax.random.PRNGKey(0), algo.hparams)
    assert int(state.replay.num_rows) == 16
    stored = np.asarray(state.replay.storage["action"][:16]).reshape(-1, 2)  # in [-1, 1]^2
    assert np.all(np.abs(stored) <= 1.0)
    # 64 uniform draws per dimension: mean near 0 (std 0.07), both ends of the box visited
    assert np.all(np.abs(stored.mean(axis=0)) < 0.25)
    assert np.all(stored.min(axis=0) < -0.8) and np.all(stored.max(axis=0) > 0.8)


def test_discrete_actions_honour_the_mask():
    env = ActionDependentReward()  # Discrete(2)
    config = sac.Config(hidden=(8,), total_steps=10, learning_starts=0)
    algo = sac.make(config, env, env.default_params)
    state = jax.jit(algo.init)(jax.random.PRNGKey(0), algo.hparams)
    policy = algo.policy_params(state)
    act = jax.jit(algo.act, static_argnums=3)
    policy = policy.replace(params=_with_head_bias(policy.params, [0.0, 5.0]))  # prefers 1
    obs = jnp.zeros((64, 1))
    only_first = jnp.tile(jnp.array([[True, False]]), (64, 1))
    key = jax.random.PRNGKey(1)
    np.testing.assert_array_equal(act(policy, obs, key, True), 1)
    np.testing.assert_array_equal(act(policy, obs, key, True, only_first), 0)
    np.testing.assert_array_equal(act(policy, obs, key, False, only_first), 0)


# -------------------------------------------------------------------------------------------
# Config
# -------------------------------------------------------------------------------------------


def test_steps_per_update_sets_gradient_steps_per_iteration():
    # ML-Agents 3DBall: 12 agents, steps_per_update 10. 5 steps per copy = 60 agent steps
    # per iteration -> 6 gradient steps.
    config = sac.Config(num_envs=12, train_frequency=5, steps_per_update=10.0)
    assert offpolicy.schedule(config).gradient_steps == 6
    assert offpolicy.schedule(sac.Config(gradient_steps=3)).gradient_steps == 3
    with pytest.raises(ValueError, match="steps_per_update"):
        sac.Config(num_envs=12, train_frequency=1, steps_per_update=10.0)  # 1.2 gradient steps
    with pytest.raises(ValueError, match="buffer_size"):
        sac.Config(num_envs=8, buffer_size=4)
    with pytest.raises(ValueError, match="tau"):
        sac.Config(tau=1.5)


@pytest.mark.parametrize("name", sorted(sac.PRESETS))
def test_presets_are_valid_configs(name):
    config = sac.Config(**sac.PRESETS[name])
    if name.startswith("mlagents/"):
        # every ML-Agents SAC config uses steps_per_update 10
        per_iteration = config.num_envs * config.train_frequency
        assert per_iteration / offpolicy.schedule(config).gradient_steps == pytest.approx(10.0)


# -------------------------------------------------------------------------------------------
# Probe environments
# -------------------------------------------------------------------------------------------


class _EndlessConstantReward(ConstantReward):
    """Reward 1 every step, never terminated: every episode ends by truncation at 10 steps."""

    def reward_and_end(self, state, action):
        return jnp.ones(()), jnp.bool_(False), state.obs


PROBE = dict(
    num_envs=4,
    gradient_steps=4,  # one gradient step per environment step, as SB3's default
    learning_starts=200,
    buffer_size=4_000,
    batch_size=64,
    learning_rate=3e-3,
    hidden=(32, 32),
)


def _train(config: sac.Config, env, num_seeds: int = 2):
    """(algo, final TrainState of `num_seeds` seeds)."""
    algo = sac.make(config, env, env.default_params)
    return algo, _train_algo(algo, num_seeds)


def _train_algo(algo, num_seeds: int = 2):
    """Final TrainState of `num_seeds` seeds (one compiled program: init and every update)."""

    def run(key):
        state = algo.init(key, algo.hparams)
        return jax.lax.fori_loop(0, algo.num_iterations, lambda _, s: algo.update(s)[0], state)

    return jax.jit(jax.vmap(run))(seed_keys(0, num_seeds))


def _q_values(config, env, critic_params, obs, action=None):
    """Q of both critics for every seed: [seeds, 2, B] (continuous) or [seeds, 2, B, n]."""
    _, critic = sac.build_networks(config, env.action_space(env.default_params))
    if action is None:
        return jax.vmap(lambda p: critic.apply(p, obs))(critic_params)
    return jax.vmap(lambda p: critic.apply(p, obs, action))(critic_params)


def test_probe_continuous_best_action_and_its_value():
    # reward 1 - 4 (a - 0.5)^2 in one step: best action 0.5, Q(s, 0.5) = 1.
    env = ActionDependentReward(continuous=True)
    config = sac.Config(**PROBE, total_steps=6_000)
    algo, state = _train(config, env)
    obs = jnp.zeros((1, 1))
    actions = jax.vmap(lambda s: algo.act(algo.policy_params(s), obs, None, True))(state)
    np.testing.assert_allclose(actions[:, 0, 0], 0.5, atol=0.05)
    q = _q_values(config, env, state.learner.critic, obs, jnp.full((1, 1), 0.5))
    np.testing.assert_allclose(q, 1.0, atol=0.05)


def test_probe_constant_reward_value_with_fixed_temperature():
    # reward 1 and terminal after one step: Q(s, a) = 1 for every action, whatever alpha.
    env = ConstantReward(continuous=True)
    config = sac.Config(**PROBE, total_steps=3_000, autotune_alpha=False, alpha=0.3)
    _, state = _train(config, env)
    np.testing.assert_allclose(jnp.exp(state.learner.log_alpha), 0.3, rtol=1e-6)  # fixed
    obs = jnp.zeros((3, 1))
    q = _q_values(config, env, state.learner.critic, obs, jnp.array([[-0.8], [0.0], [0.8]]))
    np.testing.assert_allclose(q, 1.0, atol=0.05)


def test_probe_truncation_bootstraps():
    # Reward 1 per step, episodes only ever truncated (10 steps), one action: gamma = 0.5 gives
    # Q = 1 / (1 - 0.5) = 2. Treating the cut as terminal would give 1 / (1 - 0.5 * 0.9) = 1.82.
    env = _EndlessConstantReward()  # Discrete(1): log pi = 0, so the soft value is the value
    config = sac.Config(**PROBE, total_steps=3_000, gamma=0.5)
    _, state = _train(config, env)
    q = _q_values(config, env, state.learner.critic, jnp.zeros((1, 1)))
    np.testing.assert_allclose(q, 2.0, atol=0.05)


def test_probe_value_network_bootstraps_through_its_target():
    # SAC v1 on the truncation probe: Q(s, a) = 1 + 0.5 V_targ(s') and V(s) = Q(s, a) (one
    # action, log pi = 0), so both reach 1 / (1 - 0.5) = 2 only through V's target (its
    # initial output is about 0, which would leave Q near 1).
    env = _EndlessConstantReward()
    config = sac.Config(**PROBE, total_steps=3_000, gamma=0.5, value_network=True)
    _, state = _train(config, env)
    assert state.learner.target_critic is None
    obs = jnp.zeros((1, 1))
    q = _q_values(config, env, state.learner.critic, obs)
    np.testing.assert_allclose(q, 2.0, atol=0.05)
    value = jax.vmap(lambda p: StateValue(config.hidden, config.activation).apply(p, obs))
    np.testing.assert_allclose(value(state.learner.value), 2.0, atol=0.05)
    np.testing.assert_allclose(value(state.learner.target_value), 2.0, atol=0.05)


def test_probe_value_network_with_the_temperature_in_its_target():
    # One step to a terminal, reward 1, a fixed temperature: Q = 1, and
    # V(s) = E_a~pi[Q(s, a) - alpha log pi(a|s)] = 1 + alpha H(pi), which the critics alone
    # never see. The actor's entropy is measured on the trained policy.
    env = ConstantReward(continuous=True)
    config = sac.Config(
        **PROBE, total_steps=3_000, autotune_alpha=False, alpha=0.3, value_network=True
    )
    _, state = _train(config, env)
    obs = jnp.zeros((4096, 1))
    q = _q_values(config, env, state.learner.critic, obs[:3], jnp.array([[-0.8], [0.0], [0.8]]))
    np.testing.assert_allclose(q, 1.0, atol=0.05)
    actor, _ = sac.build_networks(config, env.action_space(env.default_params))
    value_net = StateValue(config.hidden, config.activation)

    def expected_and_learned(learner, key):
        dist = TanhGaussian(*actor.apply(learner.actor, obs))
        entropy = -dist.sample_and_log_prob(key)[1].mean()  # Monte Carlo over 4096 samples
        return 1.0 + 0.3 * entropy, value_net.apply(learner.value, obs[:1])[0]

    keys = jax.random.split(jax.random.PRNGKey(3), 2)
    expected, value = jax.vmap(expected_and_learned)(state.learner, keys)
    np.testing.assert_allclose(value, expected, atol=0.05)
    assert float(jnp.min(expected)) > 1.1  # the temperature term is visible in V


def test_value_network_refuses_a_replacement_target():
    env = ConstantReward(continuous=True)
    config = sac.Config(**PROBE, total_steps=3_000, value_network=True)
    with pytest.raises(ConfigError, match="value_network"):
        sac.make(config, env, env.default_params, target=lambda *args: args[0]["reward"])


def test_probe_discrete_picks_the_rewarded_action():
    # reward +1 for action 1, -1 for action 0, one step: greedy action 1, Q = [-1, 1].
    env = ActionDependentReward()
    config = sac.Config(**PROBE, total_steps=3_000)
    algo, state = _train(config, env)
    obs = jnp.zeros((1, 1))
    actions = jax.vmap(lambda s: algo.act(algo.policy_params(s), obs, None, True))(state)
    np.testing.assert_array_equal(actions[:, 0], 1)
    q = _q_values(config, env, state.learner.critic, obs)
    np.testing.assert_allclose(q[..., 0, 1], 1.0, atol=0.05)
    np.testing.assert_allclose(q[..., 0, 0], -1.0, atol=0.1)


def test_replacement_target_and_actor_loss_are_what_the_compiled_program_learns():
    # Every soft target 3 (the probe's true value is 1) and an actor loss that pulls the sampled
    # action to -0.5 (the critics would prefer no action over another: reward is constant).
    env = ConstantReward(continuous=True)
    config = sac.Config(**PROBE, total_steps=3_000)

    def three(batch, next, alpha, h, config):
        return jnp.full(batch["reward"].shape, 3.0)

    def towards_minus_half(now, alpha, h, config):
        return jnp.mean((now.actions[:, 0, 0] + 0.5) ** 2)

    algo = sac.make(config, env, env.default_params, target=three, actor_loss=towards_minus_half)
    state = _train_algo(algo)
    obs = jnp.zeros((1, 1))
    actions = jax.vmap(lambda s: algo.act(algo.policy_params(s), obs, None, True))(state)
    np.testing.assert_allclose(actions[:, 0, 0], -0.5, atol=0.05)
    q = _q_values(config, env, state.learner.critic, obs, jnp.full((1, 1), -0.5))
    np.testing.assert_allclose(q, 3.0, atol=0.1)


# -------------------------------------------------------------------------------------------
# Learning
# -------------------------------------------------------------------------------------------


@pytest.mark.learning
def test_learns_balance_ball_in_200k_agent_steps():
    # ML-Agents' 3DBall settings (12 agents, steps_per_update 10, batch 64, 2x64 swish, its SAC's
    # value network), stopped at 100k of their 200k agent steps: every seed reaches the maximum
    # return, 100.
    env, params = envs.make("BalanceBall-v0")
    config = sac.Config(**{**sac.PRESETS["mlagents/3DBall"], "total_steps": 100_000})
    result = train(sac.make(config, env, params), num_seeds=4, eval_episodes=8)
    assert result.evaluation["returns"].mean() >= 95.0
