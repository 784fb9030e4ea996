"""Tabular methods: GridWorld-v0's state numbering and exact model, value and policy iteration
(rlkit.ops.dynamic_programming), and tabular Q-learning (agents/qlearning.py) on the runner.

References, independent of the code under test:
- GridWorld-v0's optimal return from every start board is 1 - 0.01 (D - 1), D the shortest path
  to the current goal around the wrong one (tests/test_gridworld.py `shortest_path_length`,
  itself checked against episodes of the environment); its mean over the 25 * 24 * 23 placements
  (both goal kinds alike) is 0.97638, the optimum value iteration must reach with gamma = 1.
- a 3-state MDP whose V* and Q* are solved by hand below.

Q-learning trains on GridWorld's 3 x 3 board (grid_size=3, 1 + 1 goals: 1008 start states), where
60k steps learn a table whose greedy action is optimal in every state it acted in; the default
5 x 5 board needs about 1M steps (paper_configs/qlearning_gridworld_rlkit.yaml), more than this
file's budget.

Cost (a loaded 2-core CPU): compiling GridWorld's programs dominates, so the models and the
Q-learning runs are module-scoped fixtures shared by the tests that read them, and one Runner's
compiled programs train both learning-rate schedules (the decay_lr switch is traced).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_gridworld import shortest_path_length

import envs
from agents import qlearning
from rlkit.core.config import ConfigError
from rlkit.core.tabular import deterministic_model
from rlkit.ops import dynamic_programming as dp
from rlkit.training.runner import Runner

OPTIMUM = 0.97638  # tests/test_gridworld.py: the exact mean optimal return over start boards
PLUS, EX = 0, 1
# Q-learning on the 3 x 3 board: alpha = 1 (exact on deterministic transitions); q_init = 1 is
# optimistic (no return exceeds +1), so Q >= Q* throughout and the greedy action of a state is
# tried until its entry comes down to its true value; 60k steps (measured: the greedy action was
# optimal in all 1008 states for each of 8 runs, and the mean greedy return 0.9893 to 0.9897 of
# the optimum 0.98952).
SMALL_BOARD = {"grid_size": 3}
QLEARNING = qlearning.Config(
    total_steps=60_000,
    num_envs=16,
    rollout_length=50,
    learning_rate=1.0,
    end_learning_rate=0.1,
    exploration_fraction=0.2,
    q_init=1.0,
)


@pytest.fixture(scope="module")
def gridworld():
    env, params = envs.make("GridWorld-v0")
    return env, params, deterministic_model(env, params)


@pytest.fixture(scope="module")
def optimal(gridworld):
    """Value iteration on GridWorld-v0 with gamma = 1 (the undiscounted return)."""
    _, _, model = gridworld
    return jax.jit(dp.value_iteration)(model, 1.0, 1e-6, 100)


@pytest.fixture(scope="module")
def small_board():
    env, params = envs.make("GridWorld-v0", **SMALL_BOARD)
    return env, params, deterministic_model(env, params)


@pytest.fixture(scope="module")
def trained(small_board):
    """QLEARNING on the 3 x 3 board through the runner, one seed, with the constant step size and
    with decay_lr: one Runner, so the second schedule (a traced switch) compiles nothing."""
    env, params, _ = small_board
    algo = qlearning.make(QLEARNING, env, params)
    runner = Runner(algo)
    constant = runner.train(num_seeds=1, eval_episodes=500)
    decay = {**algo.hparams, "decay_lr": jnp.float32(1.0)}
    decayed = runner.train(num_seeds=1, eval_episodes=500, hparams=decay)
    return constant, decayed


def optimal_return(grid_size: int) -> float:
    """The mean optimal return over a grid's start boards, from shortest paths alone."""
    cells = [(x, z) for x in range(grid_size) for z in range(grid_size)]
    lengths = [shortest_path_length(a, t, w) for t, w, a in itertools.permutations(cells, 3)]
    return float(np.mean(1.0 - 0.01 * (np.array(lengths) - 1)))


def board_indices(env, params, boards) -> np.ndarray:
    """State indices, through `state_index`, of hand-placed boards: a list of (agent, plus cell,
    ex cell, goal kind), cells (x, z)."""
    template = jax.tree.map(lambda x: x[0], env.enumerate_states(params))

    def index(agent, plus, ex, goal):
        board = template.replace(agent=agent, plus_goals=plus[None], ex_goals=ex[None], goal=goal)
        return env.state_index(board, params)

    columns = (jnp.array(np.array(column), jnp.int32) for column in zip(*boards, strict=True))
    return np.asarray(jax.jit(jax.vmap(index))(*columns))


# --- GridWorld's state numbering --------------------------------------------------------------


def test_gridworld_numbers_each_state_once_and_reads_the_same_number_from_its_observation(
    gridworld,
):
    """2 goal kinds x 25 plus cells x 24 ex cells x 25 agent cells = 30000 states; the
    enumeration is in index order, every planes observation reads back its state's index (a
    reset's observation is one of them), and the start distribution is uniform over the 27600
    states whose agent is on no goal."""
    env, params, _ = gridworld
    assert env.num_states(params) == 2 * 25 * 24 * 25 == 30000

    @jax.jit
    def numbers(states):
        obs = jax.vmap(env._observe, in_axes=(0, None))(states, params)
        by_state = jax.vmap(env.state_index, in_axes=(0, None))(states, params)
        return by_state, jax.vmap(env.obs_index, in_axes=(0, None))(obs, params)

    of_states, of_obs = numbers(env.enumerate_states(params))
    np.testing.assert_array_equal(of_states, np.arange(30000))
    np.testing.assert_array_equal(of_obs, np.arange(30000))
    initial = np.asarray(env.initial_distribution(params))
    assert (initial > 0).sum() == 25 * 24 * 23 * 2
    np.testing.assert_allclose(initial[initial > 0], 1 / 27600, rtol=1e-6)
    # The start states are those whose agent is on no goal.
    boards = [((0, 0), (4, 4), (0, 4), PLUS), ((2, 3), (1, 1), (2, 3), EX)]
    on_no_goal, on_ex_goal = board_indices(env, params, boards)
    assert initial[on_no_goal] > 0 and initial[on_ex_goal] == 0


def test_gridworld_model_steps_a_hand_placed_board_as_the_environment_does(gridworld):
    """Board: plus goal at (4, 4), ex goal at (0, 4), goal kind plus. From (3, 4), Right reaches
    the plus goal (+1, terminated); from (1, 4), Left reaches the ex goal (-1, terminated); from
    (2, 2), Up moves to (2, 3) for -0.01; Left at (0, 0) is masked (a wall bump, no move)."""
    env, params, model = gridworld
    up, left, right = 1, 3, 4
    cells = [(3, 4), (1, 4), (2, 2), (2, 3), (0, 0)]
    boards = [(cell, (4, 4), (0, 4), PLUS) for cell in cells]
    at = dict(zip(cells, board_indices(env, params, boards), strict=True))
    next_state, reward, terminated = (
        np.asarray(x[..., 0]) for x in (model.next_state, model.reward, model.terminated)
    )
    assert terminated[at[3, 4], right] and reward[at[3, 4], right] == 1.0
    assert terminated[at[1, 4], left] and reward[at[1, 4], left] == -1.0
    assert not terminated[at[2, 2], up] and next_state[at[2, 2], up] == at[2, 3]
    assert reward[at[2, 2], up] == pytest.approx(-0.01)
    assert not model.action_mask[at[0, 0], left] and next_state[at[0, 0], left] == at[0, 0]
    np.testing.assert_array_equal(model.probability, 1.0)


# --- value and policy iteration ---------------------------------------------------------------


def test_value_iteration_reaches_the_exact_optimum_on_every_start_board(gridworld, optimal):
    """V*(start) = 1 - 0.01 (D - 1) on each of the 25 * 24 * 23 * 2 start boards (D from the
    independent shortest-path count), so the start distribution's mean is 0.97638; with
    gamma = 1 the values are exact once a sweep changes nothing (8 steps is the longest optimal
    path: 8 sweeps and one more that changes nothing)."""
    env, params, model = gridworld
    cells = [(x, z) for x in range(5) for z in range(5)]
    boards, expected = [], []
    for plus, ex, agent in itertools.permutations(cells, 3):
        for goal in (PLUS, EX):
            target, wrong = (plus, ex) if goal == PLUS else (ex, plus)
            boards.append((agent, plus, ex, goal))
            expected.append(1.0 - 0.01 * (shortest_path_length(agent, target, wrong) - 1))
    starts = board_indices(env, params, boards)
    np.testing.assert_allclose(optimal.values[starts], expected, atol=1e-5)
    assert float(dp.start_value(model, optimal.values)) == pytest.approx(OPTIMUM, abs=1e-5)
    assert np.mean(expected) == pytest.approx(OPTIMUM, abs=1e-5)
    assert int(optimal.iterations) == 9 and float(optimal.residual) == 0.0


def test_policy_iteration_agrees_with_value_iteration(gridworld, optimal):
    """Policy iteration (gamma = 1, from the policy greedy on one-step rewards, which mostly
    stands still: improper) ends at V* everywhere, with a policy optimal in every state: its
    action's Q* is V* (equal-length paths tie, so the actions themselves may differ)."""
    _, _, model = gridworld
    solution = jax.jit(dp.policy_iteration)(model, 1.0, 1e-6, 100, 100)
    np.testing.assert_allclose(solution.values, optimal.values, atol=1e-5)
    rows = np.arange(model.num_states)
    np.testing.assert_allclose(optimal.q[rows, solution.policy], optimal.values, atol=1e-5)
    assert np.asarray(model.action_mask)[rows, solution.policy].all()
    assert float(dp.start_value(model, solution.values)) == pytest.approx(OPTIMUM, abs=1e-5)


def three_state_mdp() -> dp.TabularModel:
    """States 0, 1, 2; actions 0, 1; start in 0; K = 2 outcomes (unused ones have probability 0).

    s0: a0 stays in s0 for 0; a1 moves to s1 for -1.
    s1: a0 ends the episode with +2; a1 ends it with +4 w.p. 1/2, else returns to s0 for 0.
    s2: a0 stays in s2 for +1; a1 (+100, terminal) is masked out.
    """
    next_state = [[[0, 0], [1, 1]], [[1, 1], [1, 0]], [[2, 2], [2, 2]]]
    probability = [[[1, 0], [1, 0]], [[1, 0], [0.5, 0.5]], [[1, 0], [1, 0]]]
    reward = [[[0, 0], [-1, 0]], [[2, 0], [4, 0]], [[1, 0], [100, 0]]]
    terminated = [[[0, 0], [0, 0]], [[1, 1], [1, 0]], [[0, 0], [1, 1]]]
    return dp.TabularModel(
        next_state=jnp.array(next_state, jnp.int32),
        probability=jnp.array(probability, jnp.float32),
        reward=jnp.array(reward, jnp.float32),
        terminated=jnp.array(terminated, bool),
        action_mask=jnp.array([[True, True], [True, True], [True, False]]),
        initial=jnp.array([1.0, 0.0, 0.0]),
    )


def test_three_state_mdp_has_the_hand_derived_values_and_policy():
    """gamma = 0.9. s2 only loops: V(s2) = 1 + 0.9 V(s2) = 10 (the masked +100 never counts).
    Guess s0 -> a1, s1 -> a1:
        V0 = -1 + 0.9 V1,   V1 = 0.5 * 4 + 0.5 * 0.9 V0 = 2 + 0.45 V0
        => V0 = -1 + 1.8 + 0.405 V0 => V0 = 0.8 / 0.595 = 160/119, V1 = 2 + 72/119 = 310/119,
    and the guess is optimal: staying in s0 gives 0.9 V0 < V0, and in s1 a0 gives 2 < 310/119.
    Q* = [[0.9 V0, V0], [2, V1], [10, 100]] (the masked entry as computed: it ends at once)."""
    model, gamma = three_state_mdp(), 0.9
    v0, v1 = 160 / 119, 310 / 119
    for solve in (dp.value_iteration, dp.policy_iteration):
        solution = jax.jit(solve)(model, gamma, 1e-6)
        np.testing.assert_allclose(solution.values, [v0, v1, 10.0], rtol=1e-5)
        np.testing.assert_allclose(
            solution.q, [[0.9 * v0, v0], [2.0, v1], [10.0, 100.0]], rtol=1e-5
        )
        np.testing.assert_array_equal(solution.policy, [1, 1, 0])
        assert float(dp.start_value(model, solution.values)) == pytest.approx(v0, rel=1e-5)
    # One backup of V = 0 is the expected immediate reward: [[0, -1], [2, 2], [1, 100]].
    np.testing.assert_allclose(
        dp.backup(model, jnp.zeros(3), gamma), [[0, -1], [2, 2], [1, 100]], atol=1e-6
    )
    # A fixed iteration count stops value iteration early: two sweeps from 0 give V1 = 2.
    early = dp.value_iteration(model, gamma, 0.0, 2)
    assert int(early.iterations) == 2 and float(early.values[1]) == pytest.approx(2.0)


# --- tabular Q-learning -----------------------------------------------------------------------


def test_q_learning_target_bootstraps_a_truncation_but_not_a_termination_over_allowed_actions():
    """Table: Q(s'=1) = [5, 9, 2]; action 1 masked at s'. gamma = 0.5, reward 1:
    terminated -> y = 1; truncated -> y = 1 + 0.5 * max(5, 2) = 3.5 (the pre-reset s' is
    bootstrapped, the masked 9 is not); ongoing -> 3.5 as well."""
    q = jnp.array([[0.0, 0.0, 0.0], [5.0, 9.0, 2.0]])
    batch = {
        "state": jnp.array([0, 0, 0]),
        "action": jnp.array([0, 1, 2]),
        "reward": jnp.array([1.0, 1.0, 1.0]),
        "terminated": jnp.array([True, False, False]),
        "truncated": jnp.array([False, True, False]),
        "next_state": jnp.array([1, 1, 1]),
        "next_mask": jnp.array([[True, False, True]] * 3),
    }
    y = qlearning.td_target(q, batch, {"gamma": jnp.float32(0.5)})
    np.testing.assert_allclose(y, [1.0, 3.5, 3.5])


def test_table_update_moves_a_shared_entry_once_by_the_mean_td_error():
    """Q = 0, alpha = 0.5. Copies 0 and 1 hit entry (2, 1) with targets 1 and 3: it moves once,
    by 0.5 * mean(1, 3) = 1 (not by 0.5 + 1.5 = 2); copy 2 moves (0, 0) by 0.5 * 4 = 2."""
    q, td = qlearning.table_update(
        jnp.zeros((3, 2)),
        jnp.array([2, 2, 0]),
        jnp.array([1, 1, 0]),
        jnp.array([1.0, 3.0, 4.0]),
        0.5,
    )
    np.testing.assert_allclose(q, [[2.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(td, [1.0, 3.0, 4.0])


def test_qlearning_needs_an_environment_with_numbered_states():
    cartpole, cartpole_params = envs.make("CartPole-v1")
    with pytest.raises(ConfigError, match="finite, numbered state space"):
        qlearning.make(qlearning.Config(), cartpole, cartpole_params)
    image, image_params = envs.make("GridWorld-v0", obs_mode="image")
    with pytest.raises(ConfigError, match="planes"):
        qlearning.make(qlearning.Config(), image, image_params)


def test_qlearning_through_the_runner_comes_within_0_02_of_the_exact_optimum(small_board, trained):
    """The 3 x 3 board's optimum, 0.98952, from shortest paths and from value iteration alike;
    the constant-step-size run's greedy evaluation (500 episodes) is within 0.02 of it (a start
    state where the greedy policy loops costs about 2 / 500 of the mean)."""
    _, _, model = small_board
    exact = dp.start_value(model, jax.jit(dp.value_iteration)(model, 1.0, 1e-6, 100).values)
    assert float(exact) == pytest.approx(optimal_return(3), abs=1e-5)
    assert float(exact) == pytest.approx(0.98952, abs=1e-5)
    constant, _ = trained
    mean_return = float(constant.evaluation["returns"][0].mean())
    assert mean_return >= float(exact) - 0.02
    assert constant.timing["env_steps"] == 60_000


def test_qlearning_greedy_actions_are_optimal_in_every_state_it_acted_in(small_board, trained):
    """Visited: a state whose table row was updated at least once (visits > 0), i.e. the agent
    acted there. All 1008 states with the agent off the goals are visited, and in each the
    table's greedy action is one of value iteration's optimal actions at the same gamma
    (Q*(s, a) = V*(s) up to 1e-5: equally short paths tie). Not vacuous: in most states one
    action alone is optimal."""
    _, _, model = small_board
    solution = jax.jit(dp.value_iteration)(model, QLEARNING.gamma, 1e-7, 1000)
    mask = np.asarray(model.action_mask)
    optimal = (np.asarray(solution.q) >= np.asarray(solution.values)[:, None] - 1e-5) & mask
    constant, _ = trained
    q, visits = np.asarray(constant.state.q[0]), np.asarray(constant.state.visits[0])
    visited = visits.sum(axis=1) > 0
    assert visited.sum() == 2 * 9 * 8 * 7
    greedy = np.argmax(np.where(mask, q, -np.inf), axis=1)
    wrong = np.flatnonzero(visited & ~optimal[np.arange(len(q)), greedy])
    assert wrong.size == 0, f"greedy action not optimal in states {wrong[:10]}"
    assert (optimal[visited].sum(axis=1) == 1).mean() > 0.5


def test_decay_lr_switch_anneals_the_step_size_and_changes_the_learned_table(trained):
    """The constant run keeps alpha = 1; with decay_lr it decays linearly to end_learning_rate
    0.1 over the 60k steps: the logged alpha of iteration i is that of its last step, taken
    after (800 i + 784) steps (16 copies x 50 steps per iteration), 1 - 0.9 (800 i + 784) /
    60000. The same keys, different step sizes: different tables."""
    constant, decayed = trained
    iterations = np.arange(QLEARNING.total_steps // 800)
    np.testing.assert_allclose(constant.metrics["learning_rate"][0], 1.0)
    expected = 1.0 - 0.9 * (800 * iterations + 784) / 60_000
    np.testing.assert_allclose(decayed.metrics["learning_rate"][0], expected, rtol=1e-5)
    difference = np.abs(np.asarray(constant.state.q[0]) - np.asarray(decayed.state.q[0]))
    assert difference.max() > 0.05
