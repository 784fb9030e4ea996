"""The extensions in experiments/, written against the public API only: their math against
independent numbers, and the KL objective's state inside PPO's compiled program (that a
replacement DQN target is what DQN learns is tests/test_dqn.py's). The studies themselves train
for a minute or more each: `python experiments/<name>.py`."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import envs
from agents import ppo
from rlkit.nets.actor_critic import PolicyEval
from rlkit.ops.distributions import Categorical
from rlkit.report.stats import summary
from rlkit.training.runner import train

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def kl():
    return load("ppo_kl_penalty")


@pytest.fixture(scope="module")
def munchausen():
    return load("munchausen_dqn")


@pytest.mark.parametrize(("d", "beta"), [(0.001, 0.5), (0.006, 0.5), (0.01, 1.0), (0.016, 2.0)])
def test_kl_coefficient_halves_below_d_targ_over_1_5_and_doubles_above_1_5_d_targ(kl, d, beta):
    # d_targ = 0.01: below 0.00667 halve, above 0.015 double, else keep (Schulman et al. 2017)
    state = kl.adapt_beta({"beta": jnp.float32(1.0)}, {"kl": jnp.float32(d)})
    assert float(state["beta"]) == pytest.approx(beta)


def test_kl_penalty_loss_is_the_unclipped_loss_plus_beta_times_the_sampled_kl(kl):
    logits = jnp.array([[0.0, 1.0], [2.0, -1.0], [0.5, 0.5]])
    old_log_prob = jnp.log(jnp.array([0.5, 0.6, 0.3]))
    batch = {
        "action": jnp.array([1, 0, 1]),
        "log_prob": old_log_prob,
        "advantage": jnp.array([1.0, -0.5, 2.0]),
        "value": jnp.zeros(3),
        "target": jnp.ones(3),
    }
    new = PolicyEval(Categorical(logits), jnp.array([0.1, 0.2, 0.3]))
    coefs = {"clip_eps": 0.2, "vf_coef": 0.5, "ent_coef": 0.01, "beta": 3.0}
    config = ppo.Config()
    total, stats = kl.kl_penalty_loss(new, batch, coefs, config)
    unclipped, _ = ppo.loss(new, batch, coefs, dataclasses.replace(config, clip_policy=False))
    ratio = np.exp(np.asarray(new.dist.log_prob(batch["action"])) - np.asarray(old_log_prob))
    sampled_kl = np.mean(ratio - 1.0 - np.log(ratio))
    np.testing.assert_allclose(stats["kl"], sampled_kl, rtol=1e-5)
    np.testing.assert_allclose(total, float(unclipped) + 3.0 * sampled_kl, rtol=1e-5)


def test_ppo_trains_with_the_kl_objective_and_logs_a_coefficient_that_only_halves_or_doubles(kl):
    env, params = envs.make("CartPole-v1")
    config = ppo.Config(num_envs=2, rollout_length=16, total_steps=2 * 16 * 6, hidden=(8,))
    result = train(ppo.make(config, env, params, loss=kl.KL_PENALTY), num_seeds=2)
    beta = result.metrics["beta"]
    np.testing.assert_array_equal(beta[:, 0], 1.0)  # beta_0
    steps = np.log2(beta[:, 1:] / beta[:, :-1])
    assert np.isin(steps, [-1.0, 0.0, 1.0]).all() and (steps != 0).any()


def test_munchausen_target_matches_an_independent_computation(munchausen):
    tau, alpha, l0, gamma = 0.03, 0.9, -1.0, 0.99
    q_table = np.array([[1.0, 1.02], [0.5, 0.49], [2.0, 2.05]])  # q'(s) of observation ids
    batch = {
        "obs": jnp.array([[[0.0]], [[1.0]]]),
        "action": jnp.array([[0], [1]]),
        "reward": jnp.array([[1.0], [0.5]]),
        "terminated": jnp.array([[False], [True]]),
        "next_obs": jnp.array([[[2.0]], [[0.0]]]),
    }
    q = lambda obs: jnp.asarray(q_table)[obs[:, 0].astype(jnp.int32)]  # noqa: E731
    y = munchausen.munchausen_target(batch, q, q, {"gamma": jnp.float32(gamma)}, None)

    def log_softmax(v):
        z = v / tau - np.max(v / tau)
        return z - np.log(np.exp(z).sum())

    expected = []
    for obs, action, reward, done, next_obs in [(0, 0, 1.0, 0, 2), (1, 1, 0.5, 1, 0)]:
        bonus = alpha * np.clip(tau * log_softmax(q_table[obs])[action], l0, 0.0)
        pi_next = np.exp(log_softmax(q_table[next_obs]))
        soft = np.sum(pi_next * (q_table[next_obs] - tau * log_softmax(q_table[next_obs])))
        expected.append(reward + bonus + gamma * (1 - done) * soft)
    np.testing.assert_allclose(y, expected, rtol=1e-5)


def test_a_quick_study_writes_its_table_and_plots_with_the_statistics_of_its_final_returns(
    tmp_path, monkeypatch
):
    # The GAE-lambda sweep at its smoke-test budget: 7 lambdas x 2 seeds in one program.
    monkeypatch.syspath_prepend(str(ROOT / "experiments"))  # the studies import _study
    arms = load("gae_lambda").main(["--quick", "--out", str(tmp_path)])
    for name in ("table.md", "curves.png", "curves.svg", "sweep.png", "sweep.svg"):
        assert (tmp_path / name).stat().st_size > 0, name
    table = (tmp_path / "table.md").read_text()
    assert [a.result.values["gae_lambda"] for a in arms] == [0.0, 0.5, 0.8, 0.9, 0.95, 0.99, 1.0]
    for arm in arms:
        assert arm.result.final.shape == (2,) and np.isfinite(arm.result.final).all()
        s = summary(arm.result.final)
        lo, hi = s["ci95"]["iqm"]
        row = f"| {arm.result.label} | 2 | {s['mean']:.1f} | {s['median']:.1f} "
        assert f"{row}| {s['iqm']:.1f} [{lo:.1f}, {hi:.1f}] |" in table
