"""The off-policy core (rlkit/data/offpolicy.py) that DQN and SAC share: the schedule of a run
(warm-up, iterations, gradient steps), replay items, target-network updates, drawing batches,
and the warm-up's random steps in `init`."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs import probes
from rlkit.data import offpolicy
from rlkit.data.rollout import Transition
from rlkit.ops import targets


@dataclasses.dataclass(frozen=True)
class Fields:
    """The shared off-policy fields, with the values each test changes."""

    total_steps: int = 1000
    num_envs: int = 4
    train_frequency: int = 2
    gradient_steps: int = 3
    steps_per_update: float = 0.0
    learning_starts: int = 10
    buffer_size: int = 100
    batch_size: int = 5
    normalize_obs: bool = False


# -------------------------------------------------------------------------------------------
# Schedule
# -------------------------------------------------------------------------------------------


def test_schedule_warms_up_ceil_learning_starts_per_copy_and_counts_it_in_the_budget():
    plan = offpolicy.schedule(Fields())
    # ceil(10 / 4) = 3 random steps per copy (12 env steps); (1000 - 12) // 8 = 123 iterations
    assert (plan.warmup_steps, plan.steps_per_iteration, plan.num_iterations) == (3, 8, 123)
    assert (plan.gradient_steps, plan.rows_per_copy) == (3, 25)


def test_schedule_lengthens_warm_up_so_the_first_iteration_can_sample_a_window():
    # No learning_starts, windows of 5 steps, 2 rows per iteration: 3 warm-up rows first.
    plan = offpolicy.schedule(Fields(learning_starts=0), window=5)
    assert plan.warmup_steps == 3
    assert offpolicy.schedule(Fields(learning_starts=0)).warmup_steps == 0


def test_steps_per_update_sets_the_gradient_steps_as_ml_agents_counts_them():
    # 4 copies x 2 steps = 8 agent steps per iteration, one gradient step per 2 of them: 4.
    assert offpolicy.schedule(Fields(steps_per_update=2.0)).gradient_steps == 4
    with pytest.raises(ValueError, match="steps_per_update"):
        offpolicy.schedule(Fields(steps_per_update=3.0))  # 8 / 3 is not whole


@pytest.mark.parametrize(
    ("fields", "window", "named"),
    [
        (Fields(learning_starts=1000), 1, "total_steps"),  # all warm-up, no iteration
        (Fields(total_steps=19), 1, "total_steps"),  # 12 warm-up + 8 > 19
        (Fields(buffer_size=3), 1, "buffer_size"),  # not one row per copy
        (Fields(buffer_size=16), 5, "buffer_size"),  # 4 rows per copy, windows of 5
    ],
)
def test_a_budget_that_cannot_train_is_refused_naming_the_field(fields, window, named):
    with pytest.raises(ValueError, match=named):
        offpolicy.schedule(fields, window)


# -------------------------------------------------------------------------------------------
# Target updates
# -------------------------------------------------------------------------------------------


def test_target_update_is_polyak_averaging_and_tau_one_an_exact_copy():
    online = {"w": jnp.array([1.0, 3e-8, -7.0])}
    target = {"w": jnp.array([1e8, 2.0, 0.1])}
    polyak = offpolicy.update_target(target, online, 0.25)
    np.testing.assert_allclose(polyak["w"], 0.25 * online["w"] + 0.75 * target["w"], rtol=1e-6)
    # 1 * theta + 0 * theta' is theta to the last bit, even beside a target of 1e8
    np.testing.assert_array_equal(offpolicy.update_target(target, online, 1.0)["w"], online["w"])
    not_due = offpolicy.update_target(target, online, 1.0, due=jnp.bool_(False))
    np.testing.assert_array_equal(not_due["w"], target["w"])


def _two_step_trajectory() -> Transition:
    """T = 2 steps of N = 2 copies. Copy 0 is truncated at t = 0, copy 1 terminated at t = 0.

    obs[t, n] = 10 t + n; next_obs[t, n] = 100 + 10 t + n (pre-reset where an episode ended).
    """
    t, n = np.meshgrid(np.arange(2), np.arange(2), indexing="ij")
    obs = (10 * t + n).astype(np.float32)[..., None]
    mask = np.array(
        [[[True, False, True], [True, True, False]], [[False, True, True], [True, True, True]]]
    )
    return Transition(
        obs=jnp.asarray(obs),
        action=jnp.array([[0, 1], [2, 0]]),
        reward=jnp.array([[1.0, -1.0], [0.5, 2.0]]),
        terminated=jnp.array([[False, True], [False, False]]),
        truncated=jnp.array([[True, False], [False, False]]),
        next_obs=jnp.asarray(obs + 100.0),
        action_mask=jnp.asarray(mask),
        extras={},
        episode={},
    )


def test_replay_items_keep_pre_reset_next_obs_and_separate_termination():
    # s'_t's mask as the rollout gives it (pre-reset where the episode ended), stored as given
    next_masks = jnp.array(
        [[[False, True, False], [True, False, False]], [[True, True, False], [False, False, True]]]
    )
    traj = _two_step_trajectory()._replace(next_action_mask=next_masks)
    items = offpolicy.replay_items(traj, None)
    np.testing.assert_array_equal(items["next_obs"][..., 0], [[100, 101], [110, 111]])
    # only termination is stored as terminal; the truncated step (copy 0, t = 0) bootstraps
    np.testing.assert_array_equal(items["terminated"], [[False, True], [False, False]])
    y = targets.one_step_target(items["reward"], items["terminated"], jnp.full((2, 2), 5.0), 0.5)
    np.testing.assert_allclose(y, [[1.0 + 2.5, -1.0], [0.5 + 2.5, 2.0 + 2.5]])
    np.testing.assert_array_equal(items["mask"], traj.action_mask)
    np.testing.assert_array_equal(items["next_mask"], next_masks)


def test_replay_items_store_continuous_actions_in_unit_box():
    traj = _two_step_trajectory()._replace(
        action=jnp.array([[[0.0], [4.0]], [[2.0], [1.0]]]), action_mask=None
    )
    items = offpolicy.replay_items(traj, lambda a: a / 2.0 - 1.0)  # Box [0, 4] -> [-1, 1]
    np.testing.assert_allclose(items["action"][..., 0], [[-1.0, 1.0], [0.0, -0.5]])
    assert "mask" not in items and "next_mask" not in items


# -------------------------------------------------------------------------------------------
# init's warm-up and drawing batches
# -------------------------------------------------------------------------------------------


def _core(env=None, **fields):
    env = env or probes.ObsDependentReward()  # obs +-1 at random, one-step episodes
    return offpolicy.build(Fields(**fields), env, env.default_params)


def _init(core):
    return jax.jit(core.init, static_argnums=2)(
        jax.random.PRNGKey(0), {}, lambda key, x: jnp.zeros(())
    )


def test_init_takes_the_warm_up_steps_with_random_actions_into_the_buffer():
    core = _core(probes.ActionDependentReward(), learning_starts=40)  # 10 steps per copy
    state = _init(core)
    assert int(state.env_steps) == 40 and int(state.replay.num_rows) == 10
    actions = np.asarray(state.replay.storage["action"][:10])
    assert 0.3 < actions.mean() < 0.7  # Discrete(2), drawn uniformly: 40 draws
    np.testing.assert_array_equal(state.replay.storage["terminated"][:10], True)


def test_draw_batches_gives_every_gradient_step_a_batch_normalised_when_asked():
    core = _core(learning_starts=40, normalize_obs=True)
    state = _init(core)
    batches = core.draw_batches(state, jax.random.PRNGKey(1))
    assert batches["obs"].shape == (3, 5, 1, 1)  # [gradient_steps, batch, window, features]
    # The statistics saw the 40 raw observations of +-1: normalised they are about +-1 / std.
    raw = np.asarray(state.replay.storage["obs"][:10]).ravel()
    stats = state.obs_stats
    expected = (raw - float(stats.mean[0])) / np.sqrt(float(stats.var[0]) + 1e-8)
    assert np.isclose(float(stats.mean[0]), raw.mean(), atol=1e-3)
    drawn = np.asarray(batches["obs"], np.float64).ravel()
    distance = np.abs(drawn[:, None] - expected[None, :]).min(axis=1)
    np.testing.assert_allclose(distance, 0.0, atol=1e-5)  # every drawn input: a stored obs
    assert np.abs(np.abs(drawn) - 1.0).min() > 0.1  # ... normalised, not raw
