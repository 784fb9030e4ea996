"""Exact dynamic programming on a tabular model: value iteration and policy iteration.

Shapes: S states, A actions, K outcomes per (state, action) (K = 1 for a deterministic
environment). A model (`TabularModel`) gives, for every state s and action a, K outcomes with
probabilities P_k(s, a) (summing to 1 over k), next states s'_k, rewards R_k and termination
flags T_k. Every function here computes with the Bellman backup

    Q_V(s, a) = sum_k P_k(s, a) [R_k(s, a) + gamma (1 - T_k(s, a)) V(s'_k(s, a))]     [S, A]

(`backup`): a terminal outcome contributes its reward only. Maxima and greedy actions range over
the allowed actions (`action_mask`, True = allowed; every state allows at least one):

    V*(s) = max_{a allowed} Q_{V*}(s, a)              (Bellman optimality, `value_iteration`)
    V_pi(s) = Q_{V_pi}(s, pi(s))                      (Bellman expectation, `policy_evaluation`)
    greedy(Q)(s) = argmax_{a allowed} Q(s, a)         (ties to the lowest action index)

Discounting: for gamma < 1 both iterations are gamma-contractions in the sup norm and converge
from any start. gamma = 1 is the undiscounted episodic return, well defined for stochastic
shortest-path tasks: every policy that could loop forever (an "improper" one) has a value
falling without bound (each step costs), and some policy ends every episode. Value iteration
then converges from V = 0; policy iteration's evaluation of an improper policy stops after
`max_eval_iterations` sweeps with its loops valued far below the proper alternatives, which the
next improvement takes (see `policy_iteration`).

Time limits are not part of a model: a truncation is a cut of the task, not a state of it (an
environment's model is the task without its step counter; rlkit.core.tabular).

All functions are pure and jittable (loops are `lax.while_loop`s; gamma, tolerances and
iteration counts may be traced), and vmappable over models of one shape.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from rlkit.ops.targets import masked_argmax, masked_max

__all__ = [
    "Solution",
    "TabularModel",
    "backup",
    "greedy_policy",
    "policy_evaluation",
    "policy_iteration",
    "start_value",
    "value_iteration",
]

Numeric = jax.Array | float | int


class TabularModel(NamedTuple):
    """An exact finite MDP (see the module docstring).

    next_state: int32[S, A, K], the index s'_k of each outcome.
    probability: float32[S, A, K], P_k(s, a); sums to 1 over k.
    reward: float32[S, A, K], R_k(s, a).
    terminated: bool[S, A, K], T_k(s, a): the outcome ends the episode (no bootstrap).
    action_mask: bool[S, A], True = allowed (every state allows at least one action).
    initial: float32[S], the start-state distribution (sums to 1).
    """

    next_state: jax.Array
    probability: jax.Array
    reward: jax.Array
    terminated: jax.Array
    action_mask: jax.Array
    initial: jax.Array

    @property
    def num_states(self) -> int:
        return self.next_state.shape[0]

    @property
    def num_actions(self) -> int:
        return self.next_state.shape[1]


class Solution(NamedTuple):
    """What value and policy iteration return.

    values: float32[S], V (V* for value iteration, V_pi of the returned policy for policy
        iteration).
    q: float32[S, A], Q_V = backup(model, V, gamma) (disallowed actions included, as computed).
    policy: int32[S], greedy(Q_V) (value iteration) or the final policy (policy iteration).
    iterations: int32[], sweeps of value iteration, or improvement steps of policy iteration.
    residual: float32[], the last sup-norm change of V (value iteration) or of the evaluation
        (policy iteration); below the tolerance unless the iteration count ran out.
    """

    values: jax.Array
    q: jax.Array
    policy: jax.Array
    iterations: jax.Array
    residual: jax.Array


def backup(model: TabularModel, values: jax.Array, gamma: Numeric) -> jax.Array:
    """Q_V(s, a) [S, A] of state values V [S] (the module docstring's backup)."""
    bootstrap = jnp.where(model.terminated, 0.0, values[model.next_state])  # [S, A, K]
    return jnp.sum(model.probability * (model.reward + gamma * bootstrap), axis=-1)


def greedy_policy(model: TabularModel, q: jax.Array) -> jax.Array:
    """int32[S], argmax over the allowed actions of Q [S, A] (ties to the lowest index)."""
    return masked_argmax(q, model.action_mask).astype(jnp.int32)


def start_value(model: TabularModel, values: jax.Array) -> jax.Array:
    """float32[], the expected value of the start state, sum_s initial(s) V(s)."""
    return jnp.sum(model.initial * values)


def value_iteration(
    model: TabularModel,
    gamma: Numeric,
    tol: Numeric = 1e-6,
    max_iterations: Numeric = 10_000,
    values: jax.Array | None = None,
) -> Solution:
    """V* by repeated optimality sweeps V_{i+1}(s) = max_{a allowed} Q_{V_i}(s, a), from
    `values` (float32[S], default 0), until ||V_{i+1} - V_i||_inf < tol or `max_iterations`
    sweeps. For gamma < 1 the result is within gamma tol / (1 - gamma) of V* in the sup norm; on
    a deterministic task with gamma = 1 it is exact once the values stop changing (a sweep
    beyond the longest optimal path). Returns the values, their Q, its greedy policy, the sweeps
    taken and the last change."""
    values = jnp.zeros(model.num_states, jnp.float32) if values is None else values

    def sweep(carry: tuple) -> tuple:
        values, i, _ = carry
        new = masked_max(backup(model, values, gamma), model.action_mask)
        return new, i + 1, jnp.max(jnp.abs(new - values))

    def going(carry: tuple) -> jax.Array:
        _, i, residual = carry
        return (residual >= tol) & (i < max_iterations)

    start = (values.astype(jnp.float32), jnp.int32(0), jnp.float32(jnp.inf))
    values, iterations, residual = jax.lax.while_loop(going, sweep, start)
    q = backup(model, values, gamma)
    return Solution(values, q, greedy_policy(model, q), iterations, residual)


def policy_evaluation(
    model: TabularModel,
    policy: jax.Array,
    gamma: Numeric,
    tol: Numeric = 1e-6,
    max_iterations: Numeric = 10_000,
    values: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """V_pi of a deterministic policy int32[S] by repeated expectation sweeps
    V_{i+1}(s) = Q_{V_i}(s, pi(s)) from `values` (default 0), until the sup-norm change is below
    `tol` or `max_iterations` sweeps. Returns (values [S], sweeps int32[], the last change
    float32[])."""
    values = jnp.zeros(model.num_states, jnp.float32) if values is None else values
    rows = jnp.arange(model.num_states)

    def sweep(carry: tuple) -> tuple:
        values, i, _ = carry
        new = backup(model, values, gamma)[rows, policy]
        return new, i + 1, jnp.max(jnp.abs(new - values))

    def going(carry: tuple) -> jax.Array:
        _, i, residual = carry
        return (residual >= tol) & (i < max_iterations)

    start = (values.astype(jnp.float32), jnp.int32(0), jnp.float32(jnp.inf))
    return jax.lax.while_loop(going, sweep, start)


def policy_iteration(
    model: TabularModel,
    gamma: Numeric,
    tol: Numeric = 1e-6,
    max_iterations: Numeric = 1_000,
    max_eval_iterations: Numeric = 10_000,
    policy: jax.Array | None = None,
) -> Solution:
    """Howard's policy iteration: evaluate pi_j (`policy_evaluation` to `tol`, at most
    `max_eval_iterations` sweeps, warm-started from V_{pi_{j-1}}), then improve,

        pi_{j+1}(s) = greedy(Q_{V_{pi_j}})(s), except that pi_j(s) is kept where it is within
                      tol of the best (so tied actions cannot alternate forever),

    until no state changes its action or `max_iterations` improvements. The start `policy`
    int32[S] defaults to greedy(Q_0), greedy on the one-step rewards. With gamma = 1 an improper
    policy's loops lose about max_eval_iterations x (step cost) per evaluation, so from the
    proper policies' side of a loop the improvement leaves it (module docstring). Returns the
    final policy, its values and Q, the improvements taken and the last evaluation's change."""
    zeros = jnp.zeros(model.num_states, jnp.float32)
    if policy is None:
        policy = greedy_policy(model, backup(model, zeros, gamma))
    rows = jnp.arange(model.num_states)

    def step(carry: tuple) -> tuple:
        policy, values, i, _, _ = carry
        values, _, residual = policy_evaluation(
            model, policy, gamma, tol, max_eval_iterations, values
        )
        q = backup(model, values, gamma)
        best = greedy_policy(model, q)
        keep = q[rows, policy] >= q[rows, best] - tol
        new = jnp.where(keep, policy, best)
        return new, values, i + 1, jnp.any(new != policy), residual

    def going(carry: tuple) -> jax.Array:
        _, _, i, changed, _ = carry
        return changed & (i < max_iterations)

    start = (policy.astype(jnp.int32), zeros, jnp.int32(0), jnp.array(True), jnp.float32(jnp.inf))
    policy, values, iterations, _, residual = jax.lax.while_loop(going, step, start)
    return Solution(values, backup(model, values, gamma), policy, iterations, residual)
