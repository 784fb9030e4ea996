"""Matches between two players of a two-player alternating game (TicTacToe-v0, ConnectFour-v0).

A game here: `env.num_players == 2`, `state.player` +1 for the side that moves first and -1
for the other, rewards to the player who moved (+1 a win, 0, -1 an illegal move, which ends the
game), every game ending within `params.max_steps_in_episode` moves.

A player acts on a batch of G games: player(key, states [G], obs [G, F], masks bool[G, A]) ->
actions int32[G]. `random_player` is uniform over the allowed actions. `play_match` measures a
player's win, draw and loss rates against an opponent, playing first and second.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from rlkit.ops.prng import fast_compiling_key

__all__ = ["Player", "play_match", "random_player", "uniform_among"]

#: player(key, states [G], obs float32[G, F], masks bool[G, A]) -> actions int32[G]
Player = Callable[[jax.Array, Any, jax.Array, jax.Array], jax.Array]


def uniform_among(key: jax.Array, allowed: jax.Array) -> jax.Array:
    """One allowed action per row of allowed bool[G, A], uniformly (any action if none)."""
    logits = jnp.where(allowed, 0.0, -jnp.inf)
    logits = jnp.where(allowed.any(-1, keepdims=True), logits, 0.0)
    return jax.random.categorical(key, logits).astype(jnp.int32)


def random_player(key: jax.Array, states: Any, obs: jax.Array, masks: jax.Array) -> jax.Array:
    """Uniform over the allowed actions: int32[G]."""
    return uniform_among(key, masks)


def play_match(
    env: Any, params: Any, player: Player, opponent: Player, key: jax.Array, num_games: int
) -> dict[str, jax.Array]:
    """`player` against `opponent` for num_games games moving first and num_games second.

    Returns the rates over all 2 num_games games, "win", "draw", "loss" (an illegal move loses),
    and per side "win_first", "draw_first", "loss_first", "win_second", ... (float32 scalars).
    Jittable. All 2 G games run in one batch, move by move (params.max_steps_in_episode plies):
    at each ply both players choose for every game and each game takes the choice of its
    player to move, so `player` appears once in the program; finished games are frozen.
    """
    key = fast_compiling_key(key)  # cheap to compile: a match is mostly sampling sites
    games = 2 * num_games
    player_first = jnp.arange(games) < num_games
    reset_key, play_key = jax.random.split(key)
    _, states = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(reset_key, games), params)
    step = jax.vmap(env.step_env, in_axes=(0, 0, 0, None))

    def ply(carry: tuple, key: jax.Array) -> tuple:
        states, done, outcome = carry  # outcome: for `player`
        obs = jax.vmap(env.observation)(states)
        masks = jax.vmap(env.action_mask, in_axes=(0, None))(states, params)
        player_key, opponent_key, step_key = jax.random.split(key, 3)
        players_turn = (states.player == 1) == player_first
        actions = jnp.where(
            players_turn,
            player(player_key, states, obs, masks),
            opponent(opponent_key, states, obs, masks),
        )
        _, stepped, reward, terminated, _ = step(
            jax.random.split(step_key, games), states, actions, params
        )
        states = jax.tree.map(
            lambda new, old: jnp.where(done.reshape((-1,) + (1,) * (new.ndim - 1)), old, new),
            stepped,
            states,
        )
        outcome = jnp.where(done, outcome, jnp.where(players_turn, reward, -reward))
        return (states, done | terminated, outcome), None

    start = (states, jnp.zeros(games, bool), jnp.zeros(games, jnp.float32))
    keys = jax.random.split(play_key, params.max_steps_in_episode)
    (_, _, outcome), _ = jax.lax.scan(ply, start, keys)
    rates = {}
    for side, part in (("first", outcome[:num_games]), ("second", outcome[num_games:])):
        rates[f"win_{side}"] = (part > 0).mean()
        rates[f"draw_{side}"] = (part == 0).mean()
        rates[f"loss_{side}"] = (part < 0).mean()
    rates.update(win=(outcome > 0).mean(), draw=(outcome == 0).mean(), loss=(outcome < 0).mean())
    return rates
