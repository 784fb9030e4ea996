"""What TicTacToe-v0 and ConnectFour-v0 share: a two-player game of marks on a board of cells,
won by a full line of the mover's marks.

- State (`BoardState`): `board` int32[num_cells] (0 empty, +1 the first player's marks, -1 the
  second's), `player` int32 (+1 or -1 to move), `terminal` (the game ended at the last move),
  `time` (moves made).
- A move marks one cell (`place`; each game's `step_env` says which cell and whether the move is
  legal). Reward, to the player who moved: +1 when the mark completes one of `lines` (a win),
  0 otherwise; a full board without a line is a draw. An illegal move ends the game as a loss
  for the mover: reward -1, the board unchanged. Every ending is a termination.
- Observation, from the view of the player to move: float32[3 num_cells], the planes of the
  mover's marks, the opponent's marks and the empty cells, in cell order.
- `num_players = 2` (rlkit.planning.mcts negates values between the players) and
  `value_bounds = (-1, 1)`: every value, a game's outcome to the player to move, lies in it.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment

from rlkit.core.env import Environment
from rlkit.core.spaces import Box

__all__ = ["BoardGame", "BoardState"]


@struct.dataclass
class BoardState(environment.EnvState):
    """board: int32[num_cells] (0 empty, +1 / -1 the players' marks); player: int32 (+1 or -1
    to move); terminal: bool (the game ended at the last move); time: int32, moves made."""

    board: jax.Array
    player: jax.Array
    terminal: jax.Array
    time: jax.Array


class BoardGame(Environment):
    """The shared rules (module docstring). Subclasses set `num_cells` and `lines` (int32[L, k],
    the cells of each winning line) and implement `name`, `num_actions`, `default_params`,
    `action_mask`, `action_space` and `step_env` (through `place`)."""

    num_players = 2
    value_bounds = (-1.0, 1.0)
    num_cells: int
    lines: np.ndarray

    def reset_env(self, key: jax.Array, params: Any) -> tuple[jax.Array, BoardState]:
        state = BoardState(
            board=jnp.zeros(self.num_cells, jnp.int32),
            player=jnp.array(1, jnp.int32),
            terminal=jnp.array(False),
            time=jnp.array(0, jnp.int32),
        )
        return self.observation(state), state

    def place(
        self, state: BoardState, cell: jax.Array, legal: jax.Array
    ) -> tuple[jax.Array, BoardState, jax.Array, jax.Array, dict[str, Any]]:
        """The step of the player to move marking `cell` (int32), or, where not `legal`, the
        loss of an illegal move: step_env's (obs, state, reward, terminated, info)."""
        board = jnp.where(legal, state.board.at[cell].set(state.player), state.board)
        won = jnp.any(jnp.all(board[jnp.asarray(self.lines)] == state.player, axis=-1))
        full = jnp.all(board != 0)
        reward = jnp.where(legal, jnp.where(won, 1.0, 0.0), -1.0).astype(jnp.float32)
        terminated = ~legal | won | full
        state = state.replace(
            board=board, player=-state.player, terminal=terminated, time=state.time + 1
        )
        return self.observation(state), state, reward, terminated, {}

    def is_truncated(self, state: BoardState, params: Any) -> jax.Array:
        return (state.time >= params.max_steps_in_episode) & ~state.terminal

    def observation(self, state: BoardState) -> jax.Array:
        """float32[3 num_cells]: the planes (mine, theirs, empty) of the player to move."""
        mine = state.board == state.player
        theirs = state.board == -state.player
        return jnp.concatenate([mine, theirs, state.board == 0]).astype(jnp.float32)

    def observation_space(self, params: Any = None) -> Box:
        return Box(0.0, 1.0, (3 * self.num_cells,), jnp.float32)
