"""Monte Carlo tree search with an environment's own step as the model, on mctx.

The search (mctx 0.0.71: `gumbel_muzero_policy` or `muzero_policy`, i.e. PUCT) runs on a batch
of B roots, each the current state of one environment copy. A node's embedding is a
`SearchNode`: the environment state reached by the actions from the root (stepped with
`env.step_env`, which never auto-resets) and whether the episode already ended on the way.
Expanding action a in node (s, ended) (`env_model`):

    s', r, term  = env.step_env(key, s, a, params)
    reward       = 0                  if ended else r
    ended'       = ended or term
    discount     = 0                  if ended' else sign * gamma
    prior, value = evaluator(s', obs', mask(s')),  value = 0 if ended'

and mctx backs a simulation's leaf value up as Q(s, a) = reward + discount * V(s'). So nothing is
added past a terminated step (its value after it is 0), and a time-limit truncation is not an end
inside the tree: the search estimates the value the learners bootstrap from at a cut.

Two-player games (an environment with `num_players = 2`, whose reward goes to the player who
moved and whose observation is from the view of the player to move, as envs/tictactoe.py):
every value is from the view of the player to move in that node, and sign = -1, so the
opponent's value of the child enters negated (negamax): Q(s, a) = r - gamma V(s'). sign = +1
for single-agent environments.

Action masks (`env.action_mask`, rlkit's contract): at the root mctx never selects an invalid
action (`invalid_actions`); below it, the evaluator's prior logits of masked actions are a large
negative number, so their prior probability is 0. PUCT can still, rarely, pick a masked action
below the root once every allowed one has been tried and scores worse; the environment's own
rule for it applies (a wall bump in GridWorld, a loss in tic-tac-toe), so the search learns its
value like any other.

How Q enters the selection (`Search.value_bounds`, the agents' `q_scaling`): mctx scales each
node's Q by the range of that node's own values by default, which stretches differences of any
size, an untrained network's noise included, to the whole range; a node then keeps going down
the first move it tried and misses the opponent's winning reply. A game whose values lie in a
known range (env.value_bounds: [-1, 1] for TicTacToe-v0 and ConnectFour-v0) scales Q by that
range instead (tests/test_connect_four.py shows a threat missed one way and blocked the other).

Evaluators give a node its prior logits and value. `rollout_evaluator`: a uniform prior over the
allowed actions and, for the value, the mean discounted return of `num_rollouts` random rollouts
of `rollout_steps` steps (0 steps: value 0). AlphaZero (agents/alphazero.py) supplies a network.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import mctx
from flax import struct

from rlkit.core.config import hp
from rlkit.core.env import action_mask
from rlkit.ops.distributions import Categorical
from rlkit.ops.prng import fast_compiling_key

__all__ = [
    "SEARCH_METHODS",
    "TIE_BREAK_SCALE",
    "Evaluator",
    "Search",
    "SearchNode",
    "SearchParams",
    "batched_mask",
    "dirichlet_alpha",
    "dirichlet_fraction",
    "env_model",
    "gumbel_scale",
    "is_two_player",
    "masked_logits",
    "max_depth",
    "max_num_considered_actions",
    "num_simulations",
    "pb_c_base",
    "pb_c_init",
    "q_scaling",
    "rollout_evaluator",
    "search_coefficients",
    "search_method",
    "temperature",
    "uniform_allowed_action",
    "value_bounds_of",
]

SEARCH_METHODS = ("gumbel", "puct")


@struct.dataclass
class SearchNode:
    """The embedding of a batch of tree nodes: env states [B, ...] and ended [B] (bool: the
    episode terminated on the path from the root to this node)."""

    state: Any
    ended: jax.Array


@struct.dataclass
class SearchParams:
    """What the model and the evaluator read during a search (mctx's `params`): the discount
    gamma (a traced scalar) and the evaluator's own parameters (network weights, or None)."""

    gamma: jax.Array
    network: Any = None


#: evaluator(params, key, states [B, ...], obs [B, ...], masks bool [B, A] or None)
#:     -> (prior logits [B, A], values [B]), values from the view of the player to move.
Evaluator = Callable[[SearchParams, jax.Array, Any, Any, jax.Array | None], tuple]


def is_two_player(env: Any) -> bool:
    """Whether `env` is a two-player alternating zero-sum game (it declares num_players = 2)."""
    return getattr(env, "num_players", 1) == 2


def batched_mask(env: Any, env_params: Any, states: Any) -> jax.Array | None:
    """The action masks of a batch of states [B, ...] of `env`: bool [B, A], or None when the
    environment has none."""
    return jax.vmap(lambda s: action_mask(env, s, env_params))(states)


def masked_logits(logits: jax.Array, mask: jax.Array | None) -> jax.Array:
    """Logits [B, A] with masked actions set to a large negative finite number (their
    probability is 0; rlkit.ops.distributions.Categorical's convention)."""
    return Categorical(logits, mask).masked_logits()


def env_model(env: Any, env_params: Any, evaluator: Evaluator) -> mctx.RecurrentFn:
    """mctx's recurrent_fn with `env` (a JAX environment with `step_env`) as the model; see
    the module docstring for the reward, discount and value it returns.

    recurrent_fn(params: SearchParams, key, action int[B], node: SearchNode [B])
        -> (mctx.RecurrentFnOutput of [B] and [B, A] arrays, SearchNode [B]).
    """
    sign = -1.0 if is_two_player(env) else 1.0

    def recurrent_fn(
        params: SearchParams, key: jax.Array, action: jax.Array, node: SearchNode
    ) -> tuple[mctx.RecurrentFnOutput, SearchNode]:
        step_key, eval_key = jax.random.split(key)
        keys = jax.random.split(step_key, action.shape[0])
        step = jax.vmap(env.step_env, in_axes=(0, 0, 0, None))
        obs, state, reward, terminated, _ = step(keys, node.state, action, env_params)
        mask = batched_mask(env, env_params, state)
        logits, value = evaluator(params, eval_key, state, obs, mask)
        ended = node.ended | terminated
        reward = jnp.where(node.ended, 0.0, reward.astype(jnp.float32))
        discount = jnp.where(ended, 0.0, sign * params.gamma).astype(jnp.float32)
        output = mctx.RecurrentFnOutput(
            reward=reward,
            discount=discount,
            prior_logits=masked_logits(logits, mask),
            value=jnp.where(ended, 0.0, value).astype(jnp.float32),
        )
        return output, SearchNode(state, ended)

    return recurrent_fn


def rollout_evaluator(
    env: Any, env_params: Any, num_rollouts: int, rollout_steps: int
) -> Evaluator:
    """A uniform prior and random-rollout values.

    The value of a state s (from the view of its player to move) is the mean over
    `num_rollouts` rollouts of uniformly random allowed actions of

        v = sum_{k < rollout_steps} (sign gamma)^k r_k   (r_k = 0 once the episode terminated)

    (sign as in the module docstring); rollout_steps = 0 gives v = 0. Returns logits zeros
    [B, A] (masked) and values [B]. Costs B * num_rollouts * rollout_steps env steps per call.
    """
    sign = -1.0 if is_two_player(env) else 1.0
    num_actions = env.action_space(env_params).n

    def one_rollout(gamma: jax.Array, key: jax.Array, state: Any) -> jax.Array:
        # The random numbers are drawn before the loop (one call each), not per step: the same
        # distribution, and a loop body without the PRNG compiles several times faster on CPU.
        action_key, step_key = jax.random.split(key)
        uniforms = jax.random.uniform(action_key, (rollout_steps,))
        step_keys = jax.random.split(step_key, rollout_steps)

        def step(carry: tuple, xs: tuple) -> tuple:
            state, ended, value, scale = carry
            u, key = xs
            action = uniform_allowed_action(u, action_mask(env, state, env_params), num_actions)
            _, state, reward, terminated, _ = env.step_env(key, state, action, env_params)
            value = value + jnp.where(ended, 0.0, scale * reward)
            return (state, ended | terminated, value, scale * sign * gamma), None

        start = (state, jnp.array(False), jnp.float32(0.0), jnp.float32(1.0))
        (_, _, value, _), _ = jax.lax.scan(step, start, (uniforms, step_keys))
        return value

    def evaluate(
        params: SearchParams, key: jax.Array, states: Any, obs: Any, masks: jax.Array | None
    ) -> tuple[jax.Array, jax.Array]:
        batch = jax.tree.leaves(states)[0].shape[0]
        logits = masked_logits(jnp.zeros((batch, num_actions)), masks)
        if rollout_steps == 0:
            return logits, jnp.zeros((batch,))
        keys = jax.random.split(key, (batch, num_rollouts))
        per_state = jax.vmap(
            lambda k, s: jax.vmap(one_rollout, (None, 0, None))(params.gamma, k, s)
        )
        return logits, per_state(keys, states).mean(axis=1)

    return evaluate


def uniform_allowed_action(u: jax.Array, mask: jax.Array | None, num_actions: int) -> jax.Array:
    """The action a uniform u in [0, 1) picks uniformly among the allowed ones: the
    floor(u n)-th allowed action (n allowed actions; every action when mask is None or allows
    none)."""
    if mask is None:
        return jnp.minimum(jnp.floor(u * num_actions), num_actions - 1).astype(jnp.int32)
    mask = jnp.where(mask.any(), mask, True)
    count = mask.sum()
    rank = jnp.minimum(jnp.floor(u * count), count - 1)
    # the first action whose count of allowed actions up to and including it exceeds rank
    return jnp.argmax(mask & (jnp.cumsum(mask) > rank)).astype(jnp.int32)


# -- the search ----------------------------------------------------------------------------------


#: The Gumbel noise scale of a deterministic search: no exploration, but exact ties (all actions
#: valued the same: no reward within reach of the tree and its rollouts) are broken at random
#: rather than always to the first action (NoAction in GridWorld, which then never moves).
TIE_BREAK_SCALE = 1e-3


def search_coefficients(hparams: dict[str, jax.Array], deterministic: bool) -> dict[str, Any]:
    """The traced search coefficients of an agent's hparams; a deterministic search (evaluation)
    adds no exploration noise at the root: gumbel_scale = TIE_BREAK_SCALE (Gumbel), and
    `Search.run` leaves PUCT's Dirichlet noise out."""
    coefs = {k: hparams[k] for k in _TRACED if k in hparams}
    if deterministic:
        coefs["gumbel_scale"] = TIE_BREAK_SCALE
    return coefs


_TRACED = ("pb_c_init", "pb_c_base", "dirichlet_fraction", "dirichlet_alpha", "temperature")
_TRACED += ("gumbel_scale",)


@dataclasses.dataclass(frozen=True)
class Search:
    """One configured search over the true model of `env`: its static settings.

    method: "gumbel" (Gumbel MuZero: sequential halving at the root, Danihelka et al. 2022) or
        "puct" (MuZero's PUCT, Schrittwieser et al. 2020, Appendix B).
    num_simulations: simulations per root (one node expanded each).
    max_depth: edges from the root to a leaf at most; None: mctx's default, num_simulations.
    max_num_considered_actions: Gumbel's root actions sampled without replacement (paper: 16).
    value_bounds: (lo, hi), the range every value and Q lies in (a board game's [-1, 1]), or
        None. How Q enters the selection (`qtransform`): with bounds, Q is scaled by the fixed
        range, so values that hardly differ stay close; without, by the range of the node's
        own Q values (mctx's default), which stretches any difference, noise included, to the
        whole range.
    """

    env: Any
    env_params: Any
    evaluator: Evaluator
    method: str
    num_simulations: int
    max_depth: int | None = None
    max_num_considered_actions: int = 16
    value_bounds: tuple[float, float] | None = None

    def qtransform(self) -> Callable:
        """mctx's qtransform for this search's method and `value_bounds`.

        Gumbel: Q completed by the mixed value for unvisited actions, then
        sigma(q) = (50 + max_b N(b)) 0.1 q_hat with q_hat = (q - lo) / (hi - lo) given bounds
        (up to a constant per node, which neither the softmax nor the argmax sees), or
        q_hat = min-max of the node's completed Q without. PUCT: q_hat = (Q - lo) / (hi - lo)
        with bounds, an unvisited action at lo (0); without, mctx's min-max over the parent's
        value and its children's Q.
        """
        if self.method == "gumbel":
            if self.value_bounds is None:
                return mctx.qtransform_completed_by_mix_value
            lo, hi = self.value_bounds
            return functools.partial(
                mctx.qtransform_completed_by_mix_value,
                value_scale=0.1 / (hi - lo),
                rescale_values=False,
            )
        if self.value_bounds is None:
            return mctx.qtransform_by_parent_and_siblings
        lo, hi = self.value_bounds
        return functools.partial(mctx.qtransform_by_min_max, min_value=lo, max_value=hi)

    def root(
        self, params: SearchParams, key: jax.Array, states: Any, obs: Any
    ) -> tuple[mctx.RootFnOutput, jax.Array | None]:
        """The root of B searches at env states [B, ...] with observations [B, ...], and their
        action masks bool [B, A] (None without masks)."""
        mask = batched_mask(self.env, self.env_params, states)
        logits, value = self.evaluator(params, key, states, obs, mask)
        ended = jnp.zeros(value.shape, bool)
        root = mctx.RootFnOutput(
            prior_logits=masked_logits(logits, mask),
            value=value.astype(jnp.float32),
            embedding=SearchNode(states, ended),
        )
        return root, mask

    def run(
        self,
        params: SearchParams,
        key: jax.Array,
        states: Any,
        obs: Any,
        coefs: dict[str, Any],
        deterministic: bool,
    ) -> mctx.PolicyOutput:
        """Search from B env states and choose an action per root.

        coefs: pb_c_init, pb_c_base, dirichlet_fraction, dirichlet_alpha, temperature (PUCT),
        gumbel_scale (Gumbel); see `search_coefficients`. Returns mctx's PolicyOutput: action
        int[B] (PUCT: sampled from visit_counts^(1/temperature), or the most visited allowed
        action when `deterministic`, ties to the higher Q, then at random; Gumbel: the
        sequential-halving winner), action_weights [B, A] (the visit distribution, PUCT; the
        improved policy softmax(logits + sigma(Q)), Gumbel: the targets a policy network is
        trained on) and the search tree.
        """
        root_key, search_key = jax.random.split(fast_compiling_key(key))
        root, mask = self.root(params, root_key, states, obs)
        invalid = None if mask is None else ~mask
        recurrent_fn = env_model(self.env, self.env_params, self.evaluator)
        if self.method == "gumbel":
            return mctx.gumbel_muzero_policy(
                params,
                search_key,
                root,
                recurrent_fn,
                self.num_simulations,
                invalid_actions=invalid,
                max_depth=self.max_depth,
                max_num_considered_actions=self.max_num_considered_actions,
                gumbel_scale=coefs.get("gumbel_scale", 1.0),
                qtransform=self.qtransform(),
            )
        if self.method != "puct":
            raise ValueError(f"search method must be one of {SEARCH_METHODS}, got {self.method!r}")
        if not deterministic:
            return mctx.muzero_policy(
                params,
                search_key,
                root,
                recurrent_fn,
                self.num_simulations,
                invalid_actions=invalid,
                max_depth=self.max_depth,
                dirichlet_fraction=coefs.get("dirichlet_fraction", 0.25),
                dirichlet_alpha=coefs.get("dirichlet_alpha", 0.3),
                pb_c_init=coefs.get("pb_c_init", 1.25),
                pb_c_base=coefs.get("pb_c_base", 19652.0),
                temperature=coefs.get("temperature", 1.0),
                qtransform=self.qtransform(),
            )
        # Deterministic PUCT: muzero_policy without its root Dirichlet noise (whose gamma
        # sampler, traced even at fraction 0, is most of the program's compile time), acting on
        # the most visited allowed action.
        select = functools.partial(
            mctx.muzero_action_selection,
            pb_c_init=coefs.get("pb_c_init", 1.25),
            pb_c_base=coefs.get("pb_c_base", 19652.0),
            qtransform=self.qtransform(),
        )
        tree = mctx.search(
            params,
            search_key,
            root=root,
            recurrent_fn=recurrent_fn,
            root_action_selection_fn=functools.partial(select, depth=0),
            interior_action_selection_fn=select,
            num_simulations=self.num_simulations,
            max_depth=self.max_depth,
            invalid_actions=invalid,
        )
        summary = tree.summary()
        # The most visited action; among equally visited ones the higher Q, then at random.
        q = summary.qvalues
        q_min, q_max = q.min(-1, keepdims=True), q.max(-1, keepdims=True)
        tie_break = 0.5 * (q - q_min) / jnp.maximum(q_max - q_min, 1e-8)
        tie_break = tie_break + 0.1 * jax.random.uniform(root_key, q.shape)
        action = jnp.argmax(masked_logits(summary.visit_counts + tie_break, mask), axis=-1)
        return mctx.PolicyOutput(
            action=action.astype(jnp.int32), action_weights=summary.visit_probs, search_tree=tree
        )


# -- config fields the search agents share (declared once, as rlkit.core.fields) -----------------


def search_method(default: str, source: str) -> Any:
    return hp(
        default,
        f"tree search: gumbel (Gumbel MuZero) or puct (MuZero's PUCT) ({source})",
        choices=SEARCH_METHODS,
    )


def num_simulations(default: int, source: str) -> Any:
    return hp(default, f"search simulations per decision ({source})", low=1)


def max_depth(default: int, source: str) -> Any:
    return hp(default, f"deepest leaf below the root, 0 = num_simulations ({source})", low=0)


def max_num_considered_actions(default: int, source: str) -> Any:
    return hp(default, f"Gumbel: root actions considered ({source})", low=1)


Q_SCALINGS = ("bounds", "node")


def q_scaling(default: str, source: str) -> Any:
    return hp(
        default,
        "how Q is scaled in the selection: bounds: by the range the environment declares for "
        "its values (env.value_bounds, a board game's [-1, 1]), or as node where it declares "
        f"none; node: by the range of each node's own Q (mctx's default) ({source})",
        choices=Q_SCALINGS,
    )


def value_bounds_of(env: Any, scaling: str) -> tuple[float, float] | None:
    """The `Search.value_bounds` for a q_scaling setting: env.value_bounds under "bounds"
    (None where the environment declares none), None under "node"."""
    if scaling not in Q_SCALINGS:
        raise ValueError(f"q_scaling must be one of {Q_SCALINGS}, got {scaling!r}")
    return getattr(env, "value_bounds", None) if scaling == "bounds" else None


def pb_c_init(default: float, source: str) -> Any:
    return hp(default, f"PUCT exploration constant c1 ({source})", low=0.0, traced=True)


def pb_c_base(default: float, source: str) -> Any:
    return hp(
        default, f"PUCT exploration constant c2 ({source})", low=0.0, low_open=True, traced=True
    )


def dirichlet_fraction(default: float, source: str) -> Any:
    return hp(
        default,
        f"PUCT: weight of Dirichlet noise in the root prior while collecting ({source})",
        low=0.0,
        high=1.0,
        traced=True,
    )


def dirichlet_alpha(default: float, source: str) -> Any:
    return hp(
        default,
        f"PUCT: concentration of the root Dirichlet noise ({source})",
        low=0.0,
        low_open=True,
        traced=True,
    )


def temperature(default: float, source: str) -> Any:
    return hp(
        default,
        f"PUCT: collect with actions ~ visits^(1/temperature) ({source})",
        low=0.0,
        low_open=True,
        traced=True,
    )


def gumbel_scale(default: float, source: str) -> Any:
    return hp(
        default,
        f"Gumbel: scale of the root Gumbel noise while collecting ({source})",
        low=0.0,
        traced=True,
    )
