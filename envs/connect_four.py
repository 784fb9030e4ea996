"""ConnectFour-v0: Connect Four on the standard 6 x 7 board as a two-player JAX environment,
with a random and a depth-limited minimax reference opponent.

Cells are numbered 7 r + c, row r = 0 at the bottom, column c = 0..6 from the left. The first
player's marks are +1, the second's -1; the first player moves first.

- State: `board` int32[42] (0 empty, +1 first player, -1 second), `player` int32 (+1 or -1 to
  move), `terminal`, `time` (moves made).
- Actions (Discrete(7)): the column the player to move drops a mark into; it lands on the
  lowest empty cell of that column.
- Action mask (True = allowed): the columns that are not full.
- Reward, to the player who moved: +1 when the move makes four of their marks in a row,
  column or diagonal (a win; the game ends), 0 otherwise (a full board without four is a draw
  and ends the game). A move into a full column ends the game as a loss for the mover: reward
  -1, the board unchanged. Every ending is a termination (42 moves fill the board).
- Observation, from the view of the player to move: float32[126], three planes of the board in
  cell order: the mover's marks, the opponent's marks, the empty cells.
- `num_players = 2`, like TicTacToe-v0 (rlkit.planning.mcts negates values between players).

The game is a first-player win under perfect play (Allis 1988), so the reference opponent is
not perfect: `minimax_player(depth)` searches every line of `depth` plies (7^depth leaves) and
scores a position only by wins within them (a win k plies ahead is worth 0.99^k, so it takes
the quickest win and puts off a loss it cannot avoid; a position without a win in sight is 0),
uniform among its best moves. It never misses a win within its horizon, and it allows a loss it
can see only when every move allows one. `random_player` is uniform over the open columns.
Matches: envs.match.
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
    "COLUMNS",
    "LINES",
    "ROWS",
    "ConnectFour",
    "EnvParams",
    "EnvState",
    "minimax_player",
    "negamax_scores",
    "play_match",
    "random_player",
]

ROWS, COLUMNS = 6, 7
NUM_CELLS = ROWS * COLUMNS
#: The score of a win found k plies ahead is DECAY^k (k = 0: the move itself wins).
DECAY = 0.99


def _lines() -> np.ndarray:
    """int32[69, 4]: the cells of every four in a row (24 across, 21 up, 12 + 12 diagonal)."""
    lines = []
    for r in range(ROWS):
        for c in range(COLUMNS):
            for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
                cells = [(r + k * dr, c + k * dc) for k in range(4)]
                if all(0 <= rr < ROWS and 0 <= cc < COLUMNS for rr, cc in cells):
                    lines.append([COLUMNS * rr + cc for rr, cc in cells])
    return np.array(lines, np.int32)


#: The 69 lines of four cells.
LINES = _lines()


#: The state of a game (envs.board_game).
EnvState = BoardState


@struct.dataclass
class EnvParams(environment.EnvParams):
    """max_steps_in_episode: 42, the most moves a game has (never reached without an ending)."""

    max_steps_in_episode: int = NUM_CELLS


class ConnectFour(BoardGame):
    """Connect Four (module docstring)."""

    num_cells = NUM_CELLS
    lines = LINES

    @property
    def name(self) -> str:
        return "ConnectFour-v0"

    @property
    def num_actions(self) -> int:
        return COLUMNS

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def step_env(
        self, key: jax.Array, state: EnvState, action: int | jax.Array, params: EnvParams
    ) -> tuple[jax.Array, EnvState, jax.Array, jax.Array, dict[str, Any]]:
        column = jnp.asarray(action, jnp.int32)
        height = jnp.sum(state.board.reshape(ROWS, COLUMNS)[:, column] != 0)
        legal = height < ROWS
        cell = COLUMNS * jnp.minimum(height, ROWS - 1) + column
        return self.place(state, cell, legal)

    def action_mask(self, state: EnvState, params: EnvParams) -> jax.Array:
        """bool[7]: the columns whose top cell is empty."""
        return state.board[NUM_CELLS - COLUMNS :] == 0

    def action_space(self, params: EnvParams | None = None) -> Discrete:
        return Discrete(COLUMNS)


# -- the reference opponent ----------------------------------------------------------------------


def negamax_scores(env: ConnectFour, params: EnvParams, state: EnvState, depth: int) -> jax.Array:
    """float32[7]: the depth-limited negamax score of each move for the player to move in
    `state` (one unfinished game), -inf for a full column.

    score(move) = +1 if the move wins, 0 if it fills the board, otherwise 0 at the horizon
    (depth 1) or -DECAY max_a' score'(a') over the opponent's replies a' in the position after
    it, searched to depth - 1 plies. Every line of `depth` plies is searched (7^depth leaves).
    """

    def scores(state: EnvState, depth: int) -> jax.Array:
        def move(column: jax.Array) -> jax.Array:
            _, child, reward, terminated, _ = env.step_env(key, state, column, params)
            if depth == 1:
                return reward
            reply = jnp.max(scores(child, depth - 1))
            return jnp.where(terminated, reward, -DECAY * reply)

        legal = env.action_mask(state, params)
        return jnp.where(legal, jax.vmap(move)(jnp.arange(COLUMNS)), -jnp.inf)

    key = jax.random.PRNGKey(0)  # step_env does not use its key
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    return scores(state, depth)


@functools.cache
def minimax_player(depth: int = 4) -> Player:
    """The depth-limited minimax player (module docstring): uniform over the moves of the best
    `negamax_scores` to `depth` plies. Returns player(key, states [G], obs, masks) -> int32[G]."""
    env, params = ConnectFour(), EnvParams()

    def player(key: jax.Array, states: EnvState, obs: jax.Array, masks: jax.Array) -> jax.Array:
        scores = jax.vmap(lambda s: negamax_scores(env, params, s, depth))(states)
        best = scores >= scores.max(-1, keepdims=True) - 1e-6
        return uniform_among(key, best & masks)

    player.__name__ = f"minimax_player_depth{depth}"
    return player
