"""Connect Four (envs/connect_four.py): the rules against a plain-Python reference, hand-checked
positions, and the depth-limited minimax opponent."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs import connect_four as c4
from envs import match
from rlkit.planning import mcts
from rlkit.planning.mcts import SearchParams

ROWS, COLUMNS = c4.ROWS, c4.COLUMNS


@pytest.fixture(scope="module")
def game() -> tuple[Any, Any, Any]:
    env, params = envs.make("ConnectFour-v0")
    step = jax.jit(lambda s, a: env.step_env(jax.random.PRNGKey(0), s, a, params))
    return env, params, step


def play(game: tuple, moves: list[int]) -> list[tuple]:
    """(obs, state, reward, terminated) after each move, from the empty board."""
    env, params, step = game
    _, state = env.reset(jax.random.PRNGKey(0), params)
    out = []
    for move in moves:
        obs, state, reward, terminated, _ = step(state, move)
        out.append((obs, state, float(reward), bool(terminated)))
    return out


def reference_step(grid: np.ndarray, player: int, column: int) -> tuple[float, bool]:
    """The rules written plainly: grid int[6, 7] (row 0 at the bottom), changed in place.
    Returns (reward to the mover, game over)."""
    rows = np.flatnonzero(grid[:, column] == 0)
    if rows.size == 0:
        return -1.0, True
    row = rows[0]
    grid[row, column] = player
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        run = 1
        for sign in (1, -1):
            r, c = row + sign * dr, column + sign * dc
            while 0 <= r < ROWS and 0 <= c < COLUMNS and grid[r, c] == player:
                run, r, c = run + 1, r + sign * dr, c + sign * dc
        if run >= 4:
            return 1.0, True
    return 0.0, bool((grid != 0).all())


def test_the_board_has_69_lines_of_four():
    assert c4.LINES.shape == (69, 4)
    assert len({tuple(sorted(line)) for line in c4.LINES.tolist()}) == 69


def test_random_games_follow_the_reference_rules(game):
    env, params, _ = game
    rng = np.random.default_rng(0)
    batch = 256
    step = jax.jit(jax.vmap(lambda s, a: env.step_env(jax.random.PRNGKey(0), s, a, params)))
    _, states = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(jax.random.PRNGKey(0), batch), params
    )
    grids = np.zeros((batch, ROWS, COLUMNS), int)
    over = np.zeros(batch, bool)
    endings = {1.0: 0, 0.0: 0, -1.0: 0}
    for ply in range(c4.NUM_CELLS):
        # Mostly open columns, now and then a full one (an illegal move).
        actions = rng.integers(0, COLUMNS, batch)
        player = 1 if ply % 2 == 0 else -1
        _, states, reward, terminated, _ = step(states, actions)
        for g in np.flatnonzero(~over):
            want_reward, want_over = reference_step(grids[g], player, int(actions[g]))
            assert float(reward[g]) == want_reward, (g, ply)
            assert bool(terminated[g]) == want_over, (g, ply)
            np.testing.assert_array_equal(
                np.asarray(states.board[g]).reshape(ROWS, COLUMNS), grids[g]
            )
            if want_over:
                endings[want_reward] += 1
                over[g] = True
    assert over.all()
    assert min(endings[1.0], endings[-1.0]) > 10  # wins and illegal moves both seen


@pytest.mark.parametrize(
    ("moves", "winning_line"),
    [
        ([0, 0, 1, 1, 2, 2, 3], [0, 1, 2, 3]),  # across the bottom row
        ([3, 4, 3, 4, 3, 4, 3], [3, 10, 17, 24]),  # up column 3
        ([0, 1, 1, 2, 2, 3, 2, 3, 3, 6, 3], [0, 8, 16, 24]),  # the rising diagonal
        ([6, 5, 5, 4, 4, 3, 4, 3, 3, 0, 3], [6, 12, 18, 24]),  # the falling diagonal
    ],
)
def test_four_in_a_row_wins_for_the_mover(game, moves, winning_line):
    steps = play(game, moves)
    assert [s[2] for s in steps] == [0.0] * (len(moves) - 1) + [1.0]
    assert [s[3] for s in steps] == [False] * (len(moves) - 1) + [True]
    board = np.asarray(steps[-1][1].board)
    assert (board[winning_line] == 1).all()


def test_a_full_column_is_masked_and_dropping_into_it_loses(game):
    env, params, _ = game
    steps = play(game, [2] * 6)
    state = steps[-1][1]
    np.testing.assert_array_equal(
        np.asarray(env.action_mask(state, params)), [True, True, False, True, True, True, True]
    )
    _, after, reward, terminated = play(game, [2] * 7)[-1]
    assert reward == -1.0 and terminated
    np.testing.assert_array_equal(after.board, state.board)


def test_a_full_board_without_four_is_a_draw(game):
    # Columns filled in pairs (0-1, 2-3, 4-5) in the order a b a b ..., then column 6: every
    # column alternates marks and neighbouring columns are shifted, so no four forms.
    moves = []
    for a, b in ((0, 1), (2, 3), (4, 5)):
        moves += [a, b] * 3 + [b, a] * 3
    moves += [6] * 6
    grid = np.zeros((ROWS, COLUMNS), int)
    for ply, column in enumerate(moves[:-1]):
        assert reference_step(grid, 1 if ply % 2 == 0 else -1, column) == (0.0, False)
    steps = play(game, moves)
    assert [s[2] for s in steps] == [0.0] * 42
    assert [s[3] for s in steps] == [False] * 41 + [True]


def test_the_observation_is_the_movers_view(game):
    obs, state, _, _ = play(game, [3, 3, 4])[-1]  # the second player to move
    planes = np.asarray(obs).reshape(3, c4.NUM_CELLS)
    np.testing.assert_array_equal(np.flatnonzero(planes[0]), [10])  # mine: the second's
    np.testing.assert_array_equal(np.flatnonzero(planes[1]), [3, 4])  # theirs
    assert int(planes[2].sum()) == 39 and int(state.player) == -1


# -- the depth-limited minimax opponent -----------------------------------------------------------


def scores_after(game: tuple, moves: list[int], depth: int) -> np.ndarray:
    env, params, _ = game
    state = play(game, moves)[-1][1]
    return np.asarray(jax.jit(lambda s: c4.negamax_scores(env, params, s, depth))(state))


def test_negamax_scores_a_win_a_forced_block_and_a_lost_position():
    env, params = envs.make("ConnectFour-v0")
    g = (env, params, jax.jit(lambda s, a: env.step_env(jax.random.PRNGKey(0), s, a, params)))
    # The first player has 0, 1, 2 on the bottom row and moves: column 3 wins now.
    scores = scores_after(g, [0, 0, 1, 1, 2, 5], depth=1)
    np.testing.assert_array_equal(scores, [0, 0, 0, 1, 0, 0, 0])
    # The second player to move faces 0, 1, 2: blocking at 3 holds (a 2-ply horizon sees no
    # more); any other move lets the first player win next: -0.99.
    scores = scores_after(g, [0, 6, 1, 6, 2], depth=2)
    np.testing.assert_allclose(scores, [-0.99] * 3 + [0.0] + [-0.99] * 3)
    # Two open ends (1, 2, 3 with 0 and 4 empty): the second player cannot block both; at
    # depth 2 every move loses in one, at depth 4 too (block one end, the other wins).
    scores = scores_after(g, [1, 1, 2, 2, 3], depth=2)
    np.testing.assert_allclose(scores, [-0.99] * 7)
    scores = scores_after(g, [1, 1, 2, 2, 3], depth=4)
    assert (scores <= -(0.99**3) + 1e-6).all()
    # A full column scores -inf.
    assert np.isneginf(scores_after(g, [5] * 6, depth=2)[5])


def test_the_minimax_player_wins_when_it_can_and_beats_random():
    env, params = envs.make("ConnectFour-v0")
    key = jax.random.PRNGKey(0)

    def matches(key: jax.Array) -> tuple[dict, dict]:
        a, b = jax.random.split(key)
        return (
            match.play_match(env, params, c4.minimax_player(2), match.random_player, a, 100),
            match.play_match(env, params, c4.minimax_player(2), c4.minimax_player(4), b, 100),
        )

    against_random, against_deeper = jax.jit(matches)(key)
    # Measured: 96% wins against random; 16.5% wins and 75% losses for depth 2 against 4.
    assert float(against_random["win"]) >= 0.9
    assert float(against_deeper["loss"]) > float(against_deeper["win"]) + 0.3


# -- tree search on the true model: how Q is scaled ----------------------------------------------


def faintly_noisy_evaluator(params: Any, key, states, obs, masks) -> tuple:
    """A uniform prior and values of +-0.01 that depend on the board (a stand-in for an
    untrained value network: small, arbitrary differences)."""
    weights = jnp.sin(jnp.arange(c4.NUM_CELLS) * 1.7)
    values = 0.01 * jnp.sin(states.board.astype(jnp.float32) @ weights * 3.1)
    return jnp.zeros((values.shape[0], COLUMNS)), values


@pytest.mark.parametrize("method", ["gumbel", "puct"])
def test_fixed_value_bounds_let_the_search_see_the_threat_that_node_scaling_misses(game, method):
    # The first player has 0, 1, 2 on the bottom row; the second must block at column 3 (every
    # other move loses next move). With 128 simulations, mctx's default (Q min-max scaled per
    # node) stretches the evaluator's +-0.01 to the whole range, so a node keeps going down the
    # first move it tried and the opponent's winning reply goes unseen: Gumbel plays 2, PUCT 5
    # (measured). Scaled by the game's fixed [-1, 1], the noise stays small, the replies are
    # tried, and both block. (With 64 simulations neither blocks either way: 7 moves times 7
    # replies is most of the budget; with 256 both block either way.)
    env, params, _ = game
    state = play(game, [0, 6, 1, 6, 2])[-1][1]
    states = jax.tree.map(lambda x: x[None], state)
    obs = env.observation(state)[None]
    coefs = {"pb_c_init": 1.25, "pb_c_base": 19652.0, "gumbel_scale": 0.0}

    def choice(bounds: tuple | None) -> int:
        search = mcts.Search(env, params, faintly_noisy_evaluator, method, 128, value_bounds=bounds)
        run = jax.jit(lambda k: search.run(SearchParams(1.0), k, states, obs, coefs, True).action)
        return int(run(jax.random.PRNGKey(0))[0])

    assert choice(env.value_bounds) == 3
    assert choice(None) != 3


def test_q_scaling_takes_the_bounds_a_game_declares_and_nothing_elsewhere(game):
    env, _, _ = game
    gridworld, _ = envs.make("GridWorld-v0")
    assert mcts.value_bounds_of(env, "bounds") == (-1.0, 1.0)
    assert mcts.value_bounds_of(env, "node") is None
    assert mcts.value_bounds_of(gridworld, "bounds") is None
    with pytest.raises(ValueError, match="q_scaling"):
        mcts.value_bounds_of(env, "tree")
