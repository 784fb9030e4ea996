"""TicTacToe-v0: tic-tac-toe as a two-player JAX environment, with exact reference opponents.

Cells are numbered 0..8 row by row (cell 3 r + c is row r, column c). X moves first.

- State: `board` int32[9] (0 empty, +1 X, -1 O), `player` int32 (+1: X to move, -1: O), `time`.
- Actions (Discrete(9)): the cell the player to move marks.
- Action mask (True = allowed): the empty cells.
- Reward, to the player who moved: +1 when the move completes a row, column or diagonal of
  their marks (a win; the game ends), 0 otherwise (a full board without a line is a draw and
  ends the game). An illegal move (an occupied cell) ends the game as a loss for the mover:
  reward -1, the board unchanged. Every ending is a termination; the game cannot run into the
  time limit (9 moves fill the board).
- Observation, from the view of the player to move (after the move: the opponent's):
  float32[27], three one-hot planes of the board in cell order: the mover's marks, the
  opponent's marks, the empty cells.
- `num_players = 2`: a two-player alternating zero-sum game (rlkit.planning.mcts negates values
  between the players). A self-play episode's return (the sum of both players' rewards) is 1
  when either side wins, 0 for a draw and -1 for an illegal move.

Reference opponents (players act on a batch of G games: (key, states, obs [G, 27], masks
[G, 9]) -> actions int32[G]): `random_player` (uniform over the empty cells) and
`minimax_player` (uniform over the moves that keep the game-theoretic value, from an exact
table: `solve`), and `exploiting_player`, the most wins a never-losing player can expect
against random play (`solve_against_random`: 95.56% of a match, the ceiling for any learned
player that also holds minimax). `play_match` (envs.match) measures a player's win/draw/loss
rates against an opponent, playing first and second.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment

from envs.board_game import BoardGame, BoardState
from envs.match import Player, play_match, random_player, uniform_among
from rlkit.core.spaces import Discrete

__all__ = [
    "LINES",
    "EnvParams",
    "EnvState",
    "Player",
    "TicTacToe",
    "encode",
    "exploiting_player",
    "minimax_player",
    "minimax_value",
    "play_match",
    "random_player",
    "solve",
    "solve_against_random",
]

#: The 8 lines of three cells: rows, columns, diagonals.
LINES = np.array(
    [[0, 1, 2], [3, 4, 5], [6, 7, 8], [0, 3, 6], [1, 4, 7], [2, 5, 8], [0, 4, 8], [2, 4, 6]],
    np.int32,
)
NUM_CELLS = 9


#: The state of a game (envs.board_game).
EnvState = BoardState


@struct.dataclass
class EnvParams(environment.EnvParams):
    """max_steps_in_episode: 9, the most moves a game has (never reached without an ending)."""

    max_steps_in_episode: int = 9


class TicTacToe(BoardGame):
    """Tic-tac-toe (module docstring)."""

    num_cells = NUM_CELLS
    lines = LINES

    @property
    def name(self) -> str:
        return "TicTacToe-v0"

    @property
    def num_actions(self) -> int:
        return NUM_CELLS

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def step_env(
        self, key: jax.Array, state: EnvState, action: int | jax.Array, params: EnvParams
    ) -> tuple[jax.Array, EnvState, jax.Array, jax.Array, dict[str, Any]]:
        action = jnp.asarray(action, jnp.int32)
        return self.place(state, action, state.board[action] == 0)

    def action_mask(self, state: EnvState, params: EnvParams) -> jax.Array:
        """bool[9]: the empty cells."""
        return state.board == 0

    def action_space(self, params: EnvParams | None = None) -> Discrete:
        return Discrete(NUM_CELLS)


# -- the exact solution --------------------------------------------------------------------------


def encode(board: Any) -> Any:
    """The index of a board (int[..., 9] of 0 / +1 / -1) in [0, 3^9): sum_i code_i 3^i with code
    0 empty, 1 X, 2 O. numpy in, numpy out; jax in, jax out."""
    xp = jnp if isinstance(board, jax.Array) else np
    codes = xp.where(board == -1, 2, board)
    return (codes * 3 ** xp.arange(NUM_CELLS)).sum(-1)


def _has_line(board: np.ndarray, player: int) -> bool:
    """Whether `player`'s marks fill one of the 8 lines of board int[9] (numpy)."""
    return bool((board[LINES] == player).all(axis=1).any())


@functools.cache
def solve() -> tuple[np.ndarray, np.ndarray]:
    """The game solved by negamax over every position reachable from the empty board.

    Returns (value int8[3^9], best bool[3^9, 9]) indexed by `encode(board)`: value is the outcome
    under perfect play for the player to move (+1 win, 0 draw, -1 loss; a finished game is -1
    when the last move won, else 0), best marks the moves that achieve it (none in a finished
    game). Unreachable boards hold 0 and no moves. About 5,500 positions: well under a second.
    """
    value = np.zeros(3**NUM_CELLS, np.int8)
    best = np.zeros((3**NUM_CELLS, NUM_CELLS), bool)
    seen: dict[int, int] = {}

    def negamax(board: np.ndarray, player: int) -> int:
        index = int(encode(board))
        if index in seen:
            return seen[index]
        if _has_line(board, -player):
            result, moves = -1, []
        elif (board != 0).all():
            result, moves = 0, []
        else:
            scores = {}
            for cell in np.flatnonzero(board == 0):
                child = board.copy()
                child[cell] = player
                scores[int(cell)] = -negamax(child, -player)
            result = max(scores.values())
            moves = [cell for cell, score in scores.items() if score == result]
        seen[index] = result
        value[index] = result
        best[index, moves] = True
        return result

    negamax(np.zeros(NUM_CELLS, np.int32), 1)
    return value, best


@functools.cache
def solve_against_random(safe: bool = True) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """The best play against `random_player`, exactly: the most wins a player can expect.

    For the player to move at a position, W(s) is the highest probability of winning against
    a uniformly random opponent (ties broken by the probability of a draw D(s)): a move that
    completes a line wins; otherwise the opponent's reply is uniform over the empty cells and
    the expectation is taken over it. With `safe`, only moves that keep the minimax value
    (`solve`) count, so the player never loses to anyone (never to minimax_player).

    Returns (win float64[3^9], best bool[3^9, 9], rates): win[encode(board)] is W for the
    player to move, best the moves achieving it, and rates the whole-game figures "win_first",
    "draw_first" (the player as X) and "win_second", "draw_second" (as O) and their means "win",
    "draw" (a match of equal games on both sides, as `play_match`). The bar any learned player
    is measured against: safe 0.99479 as X and 0.91640 as O (mean 0.95560); unrestricted 0.99479
    and 0.93862 (mean 0.96671).
    """
    value = solve()[0]
    win = np.zeros(3**NUM_CELLS)
    draw = np.zeros(3**NUM_CELLS)
    best = np.zeros((3**NUM_CELLS, NUM_CELLS), bool)
    mover_seen: set[int] = set()
    reply_memo: dict[int, tuple[float, float]] = {}

    def player_moves(board: np.ndarray, player: int) -> tuple[float, float]:
        """(W, D) for `player` to move on `board` (not finished)."""
        index = int(encode(board))
        if index not in mover_seen:
            scores = {}
            for cell in np.flatnonzero(board == 0):
                child = board.copy()
                child[cell] = player
                if safe and -value[int(encode(child))] != value[index]:
                    continue
                if _has_line(child, player):
                    scores[int(cell)] = (1.0, 0.0)
                elif (child != 0).all():
                    scores[int(cell)] = (0.0, 1.0)
                else:
                    scores[int(cell)] = random_replies(child, -player)
            top = max(scores.values())
            best[index, [cell for cell, score in scores.items() if score == top]] = True
            win[index], draw[index] = top
            mover_seen.add(index)
        return float(win[index]), float(draw[index])

    def random_replies(board: np.ndarray, opponent: int) -> tuple[float, float]:
        """(W, D) for the player after `opponent` (random) moves on `board` (not finished)."""
        index = int(encode(board))
        if index not in reply_memo:
            cells = np.flatnonzero(board == 0)
            w = d = 0.0
            for cell in cells:
                child = board.copy()
                child[cell] = opponent
                if _has_line(child, opponent):
                    continue  # the opponent won
                if (child != 0).all():
                    d += 1.0
                else:
                    cw, cd = player_moves(child, -opponent)
                    w, d = w + cw, d + cd
            reply_memo[index] = (w / len(cells), d / len(cells))
        return reply_memo[index]

    empty = np.zeros(NUM_CELLS, np.int32)
    win_first, draw_first = player_moves(empty, 1)
    win_second, draw_second = random_replies(empty, 1)
    rates = {
        "win_first": win_first,
        "draw_first": draw_first,
        "win_second": win_second,
        "draw_second": draw_second,
        "win": (win_first + win_second) / 2,
        "draw": (draw_first + draw_second) / 2,
    }
    return win, best, rates


def minimax_value(board: Any) -> int:
    """The perfect-play outcome for the player to move on `board` (int[9]; X moves when the
    counts of X and O are equal): +1, 0 or -1."""
    return int(solve()[0][int(encode(np.asarray(board)))])


# -- players and matches -------------------------------------------------------------------------


def minimax_player(key: jax.Array, states: EnvState, obs: jax.Array, masks: jax.Array) -> jax.Array:
    """A perfect player: uniform over the moves that keep the value (`solve`): int32[G]."""
    best = jnp.asarray(solve()[1])[encode(states.board)]
    return uniform_among(key, best & masks)


def exploiting_player(
    key: jax.Array, states: EnvState, obs: jax.Array, masks: jax.Array
) -> jax.Array:
    """The best safe player against random_player (`solve_against_random(safe=True)`): uniform
    over its best moves; it never loses. int32[G]."""
    best = jnp.asarray(solve_against_random(True)[1])[encode(states.board)]
    return uniform_among(key, best & masks)
