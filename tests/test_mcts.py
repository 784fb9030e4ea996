"""Monte Carlo tree search with the environment as its model (rlkit.planning.mcts, agents/mcts.py).

Compiling a search is most of these tests' cost (mctx's loops are seconds of XLA time each), so
each compiled program is built once per module and shared.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

import envs
from agents import mcts as agent
from rlkit.core.env import Environment, EnvParams
from rlkit.core.env_state import takes_env_state
from rlkit.core.spaces import Box, Discrete
from rlkit.planning import mcts
from rlkit.planning.mcts import Search, SearchParams
from rlkit.training.evaluation import evaluate
from rlkit.training.runner import Runner

# -- a hand-checked tree -------------------------------------------------------------------------


@struct.dataclass
class TreeState:
    time: jax.Array
    node: jax.Array


class TwoStepTree(Environment):
    """A deterministic two-step tree with two actions. Nodes: 0 the root, 1 and 2 its children
    (after actions 0 and 1), 3 the terminal state every second step leads to. Rewards:

        root:    a0 -> 0 (node 1),  a1 -> 0 (node 2)
        node 1:  a0 -> 4,           a1 -> 0           (then terminal)
        node 2:  a0 -> 1,           a1 -> 1           (then terminal)
        node 3:  100 for either action: a step past the end must never count
    """

    REWARDS = np.array([[0.0, 0.0], [4.0, 0.0], [1.0, 1.0], [100.0, 100.0]], np.float32)

    @property
    def default_params(self) -> Any:
        return EnvParams(max_steps_in_episode=10)

    def reset_env(self, key: jax.Array, params: Any) -> tuple[jax.Array, TreeState]:
        state = TreeState(time=jnp.int32(0), node=jnp.int32(0))
        return jnp.zeros(1), state

    def step_env(self, key: jax.Array, state: TreeState, action: Any, params: Any) -> tuple:
        reward = jnp.asarray(self.REWARDS)[state.node, action]
        node = jnp.where(state.node == 0, 1 + action, 3)
        state = TreeState(time=state.time + 1, node=node)
        return jnp.zeros(1), state, reward, (node == 3) & (reward < 100), {}

    def action_space(self, params: Any = None) -> Discrete:
        return Discrete(2)

    def observation_space(self, params: Any = None) -> Box:
        return Box(0.0, 1.0, (1,), jnp.float32)


def tilted_uniform_prior(params: SearchParams, key, states, obs, masks) -> tuple:
    """Prior (0.50025, 0.49975) (logits tilted by 1e-3 towards action 0, so that mctx's exact
    ties, otherwise broken by random 1e-7 noise, go to action 0), value 0 at every leaf."""
    batch = states.node.shape[0]
    return jnp.tile(jnp.array([1e-3, 0.0]), (batch, 1)), jnp.zeros(batch)


@pytest.fixture(scope="module")
def hand_tree() -> Any:
    env = TwoStepTree()
    search = Search(env, env.default_params, tilted_uniform_prior, "puct", num_simulations=4)
    _, state = env.reset(jax.random.PRNGKey(0))
    states = jax.tree.map(lambda x: x[None], state)
    coefs = {"pb_c_init": 1.25, "pb_c_base": 19652.0}

    def run(key: jax.Array) -> tuple:
        out = search.run(SearchParams(gamma=jnp.float32(0.5)), key, states, None, coefs, True)
        return out, out.search_tree.summary()

    return jax.jit(run)(jax.random.PRNGKey(0))


def test_puct_visits_and_values_after_four_simulations_match_the_hand_derivation(hand_tree):
    # PUCT (mctx.muzero_action_selection) maximises  Qn(a) + sqrt(N) c p(a) / (1 + n(a)),
    # c = 1.25 + ln((N + 19653) / 19652) ~ 1.2501, p ~ 1/2, Qn = Q min-max normalised over the
    # node's value and its visited children (unvisited: the minimum), gamma = 0.5, leaf value 0.
    # The root starts with N = 1 (its own evaluation, value 0).
    # sim 1: all Qn 0, priors tie -> a0 (the tilt). Node 1 expanded: r 0, value 0.
    #        root value (0 + 0) / 2 = 0.
    # sim 2: Qn all 0; a0: sqrt2 c .5 / 2 = .44, a1: sqrt2 c .5 / 1 = .88 -> a1. Node 2: r 0.
    #        root value 0, N = 3.
    # sim 3: Q(a0) = Q(a1) = 0, equal visits -> tie -> a0; in node 1 a tie -> a0: r 4, terminal
    #        (discount 0). Node 1's value (0 + 4) / 2 = 2; the root gets 0 + .5 * 4 = 2:
    #        root value (0 * 3 + 2) / 4 = .5.
    # sim 4: root Q(a0) = .5 * 2 = 1, Q(a1) = 0, normalised over {.5, 1, 0}: Qn = (1, 0);
    #        a0: 1 + 2 c .5 / 3 = 1.42 > a1: 0 + 2 c .5 / 2 = .63 -> a0. In node 1: Q(a0) = 4,
    #        a1 unvisited; Qn = (1, 0): a0 1 + .44 > a1 .88 -> a0, into the terminal node, where
    #        the expanded step pays 100 in the environment but 0 in the search (the episode
    #        ended), discount 0. Node 1 gets 4 + 0: value (2 * 2 + 4) / 3 = 8/3; the root
    #        2: value (.5 * 4 + 2) / 5 = .8.
    out, summary = hand_tree
    tree = out.search_tree
    np.testing.assert_array_equal(summary.visit_counts[0], [3, 1])
    np.testing.assert_allclose(summary.value[0], 0.8, rtol=1e-5)
    # Q(root, a) = r + gamma V(child): a0: 0 + .5 * 8/3, a1: 0 + .5 * 0.
    np.testing.assert_allclose(summary.qvalues[0], [4 / 3, 0.0], rtol=1e-5)
    np.testing.assert_allclose(out.action_weights[0], [0.75, 0.25])
    assert int(out.action[0]) == 0
    # Node 1 (the root's child by a0): visited 3 times, value 8/3, its child a0 paid 4 and ended.
    child = int(tree.children_index[0, 0, 0])
    np.testing.assert_allclose(tree.node_values[0, child], 8 / 3, rtol=1e-5)
    np.testing.assert_allclose(tree.children_rewards[0, child], [4.0, 0.0])
    assert float(tree.children_discounts[0, child, 0]) == 0.0
    # The step expanded past the end (in the terminal node) pays 0, not the environment's 100.
    ended = int(tree.children_index[0, child, 0])
    assert float(tree.children_rewards[0, ended, 0]) == 0.0
    assert float(tree.node_values[0, ended]) == 0.0


def test_two_player_search_negates_the_childs_value():
    # Expanding a1 at the root: reward 0, a next position worth 0.5 to its player to move.
    # Alternating players: that is the opponent, so Q = 0 - gamma 0.5; one player: 0 + gamma 0.5.
    class Game(TwoStepTree):
        num_players = 2

    def evaluator(params, key, states, obs, masks):
        batch = states.node.shape[0]
        return jnp.zeros((batch, 2)), jnp.full(batch, 0.5)

    def q_of_a1(env: Any) -> float:
        model = mcts.env_model(env, env.default_params, evaluator)
        _, state = env.reset(jax.random.PRNGKey(0))
        root = mcts.SearchNode(jax.tree.map(lambda x: x[None], state), jnp.zeros(1, bool))
        out, _ = model(SearchParams(jnp.float32(0.9)), jax.random.PRNGKey(1), jnp.array([1]), root)
        return float(out.reward[0] + out.discount[0] * out.value[0])

    assert q_of_a1(Game()) == pytest.approx(-0.45)
    assert q_of_a1(TwoStepTree()) == pytest.approx(0.45)


# -- planning with the true model ----------------------------------------------------------------


def planner_returns(num_simulations: int) -> np.ndarray:
    """Deterministic evaluation returns [24] of the planner on GridWorld-v0, 30 steps at most
    (a shortest path is at most 10 steps: 8 to the far corner, 2 around the other goal)."""
    env, params = envs.make("GridWorld-v0")
    algo = agent.make(agent.Config(num_simulations=num_simulations), env, params)
    run = jax.jit(lambda key: evaluate(env, params, algo.act, algo.hparams, key, 24, True, 30))
    return np.asarray(run(jax.random.PRNGKey(0))["returns"])


@pytest.fixture(scope="module")
def gridworld_32() -> np.ndarray:
    return planner_returns(32)


@pytest.fixture(scope="module")
def gridworld_2() -> np.ndarray:
    return planner_returns(2)


def test_planning_with_the_true_model_reaches_095_on_gridworld_without_training(gridworld_32):
    # The optimum is 1 - 0.01 (d - 1) for a goal d steps away: about 0.97 on average.
    assert gridworld_32.mean() >= 0.95


def test_gridworld_return_grows_with_the_number_of_simulations(gridworld_2, gridworld_32):
    # Two simulations see one step ahead (each with its random rollouts); 32 find the goal.
    # Measured: 0.82 with 2, 0.98 with 32 (30-step episodes, 24 each).
    assert gridworld_32.mean() >= gridworld_2.mean() + 0.1, (gridworld_2, gridworld_32)


def test_the_runner_trains_and_evaluates_the_planner_over_vmapped_seeds():
    # On the two-step tree the best episode is a0, a0: 0 + 4 (a1 first pays at most 1). Random
    # 2-step rollouts value node 1 at about 2 and node 2 at 1, so the planner finds it.
    env = TwoStepTree()
    config = agent.Config(
        num_envs=2,
        rollout_length=4,
        total_steps=8,
        num_simulations=8,
        leaf_rollout_steps=2,
        leaf_rollouts=4,
    )
    algo = agent.make(config, env, env.default_params)
    assert takes_env_state(algo.act)
    result = Runner(algo).train(num_seeds=2, eval_episodes=3)
    np.testing.assert_array_equal(result.evaluation["returns"], np.full((2, 3), 4.0))
    assert result.metrics["episodes"].shape == (2, 1) and (result.metrics["episodes"] > 0).all()


def test_a_non_planning_act_is_evaluated_on_observations_only():
    env = TwoStepTree()
    seen = {}

    def act(policy, obs, key, deterministic, action_mask=None):
        seen["obs"] = obs
        return jnp.zeros(obs.shape[0], jnp.int32)

    assert not takes_env_state(act)
    out = evaluate(env, env.default_params, act, None, jax.random.PRNGKey(0), 3, max_steps=2)
    assert seen["obs"].shape == (3, 1)
    np.testing.assert_array_equal(out["returns"], [4.0] * 3)  # a0, a0: 0 + 4


def test_the_planners_act_refuses_to_run_without_the_environment_state():
    env, params = envs.make("GridWorld-v0")
    algo = agent.make(agent.Config(num_simulations=2), env, params)
    with pytest.raises(ValueError, match="env_state"):
        algo.act(algo.hparams, jnp.zeros((1, 77)), jax.random.PRNGKey(0), True)


def test_planning_balances_cartpole_to_500():
    # PUCT, 16 simulations, undiscounted values of 8 random 32-step rollouts (measured: Gumbel
    # at these settings lets the cart drift out at ~150 steps; PUCT holds all 500).
    env, params = envs.make("CartPole-v1")
    config = agent.Config(
        search="puct", num_simulations=16, leaf_rollouts=8, leaf_rollout_steps=32, gamma=1.0
    )
    algo = agent.make(config, env, params)
    run = jax.jit(lambda key: evaluate(env, params, algo.act, algo.hparams, key, 4))
    out = run(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(out["returns"], [500.0] * 4)
