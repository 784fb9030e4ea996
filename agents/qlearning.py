"""Tabular Q-learning (Watkins 1989; Watkins & Dayan 1992) on environments with finite states.

For environments whose states are numbered (rlkit.core.tabular.FiniteStates, such as
GridWorld-v0), the agent keeps a table Q [S, A] over the environment's state indices, read from
observations (`obs_index`), so it acts on what the rollout core and the evaluation hand it. One
iteration takes `rollout_length` steps of `num_envs` copies; after every step the N copies'
transitions (s_i, a_i, r_i, s'_i) update the table at once:

    y_i = r_i + gamma (1 - term_i) max_{a allowed in s'_i} Q(s'_i, a)                (`td_target`)
    Q(s, a) <- Q(s, a) + alpha_t mean_{i: (s_i, a_i) = (s, a)} (y_i - Q(s, a))     (`table_update`)

so each entry moves once per step, by alpha_t times the mean TD error of the transitions that hit
it (one transition, or the copies that took the same action in the same state). s'_i is the
pre-reset observation where the episode ended: a time-limit truncation bootstraps from it, a
termination does not. The action mask (GridWorld's walls) is honoured when acting (greedy =
masked argmax, exploration uniform over the allowed actions) and in the max of the target.

Schedules, per environment step t (summed over copies) of total_steps:
    epsilon_t = linear from start_epsilon to end_epsilon over exploration_fraction of the run
    alpha_t   = learning_rate, or with decay_lr linear from learning_rate to end_learning_rate
                over the run
Every entry starts at q_init (a start at or above every return is optimistic: on deterministic
transitions Q >= Q* then holds throughout, for any alpha in [0, 1], and the greedy policy tries
what it overrates). All of these are traced, the decay_lr switch included (it changes no
shape): one compiled program trains, and sweeps with vmap, every schedule.

`make(..., target=fn)` replaces the TD target: fn(q, batch, hparams) -> y [N], with q the table
[S, A] and batch a dict of [N] arrays: state, action, reward, terminated, truncated, next_state,
and next_mask [N, A] (allowed actions at s'; all True without masks).

There is no canonical configuration of tabular Q-learning for these environments: the defaults
were chosen here on GridWorld-v0 (see Config); PRESETS["rlkit/GridWorld"] states them with the
target, GridWorld-v0's exact optimum 0.97638 (value iteration, rlkit.ops.dynamic_programming)
less 0.02.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

import paper_configs
from rlkit.core import fields
from rlkit.core.algorithm import Algorithm
from rlkit.core.config import ConfigError, hp, hparams_of, validate
from rlkit.core.tabular import FiniteStates, finite_states
from rlkit.core.wrappers import as_vector_env, episode_metrics
from rlkit.data.rollout import EnvCarry, reset_envs, rollout
from rlkit.ops.exploration import epsilon_greedy
from rlkit.ops.schedules import linear, progress
from rlkit.ops.targets import masked_argmax, masked_max

__all__ = [
    "PRESETS",
    "Config",
    "QLearning",
    "QTable",
    "TrainState",
    "make",
    "table_update",
    "td_target",
]


@dataclasses.dataclass(frozen=True)
class Config:
    """Tabular Q-learning hyperparameters. No canonical reference exists: the defaults were
    chosen here on GridWorld-v0 (1M steps: mean greedy return 0.974 of the exact optimum 0.976
    over 2 seeds; 600k: 0.95 to 0.97; 400k: 0.84), each with its reason."""

    total_steps: int = fields.total_steps(
        1_000_000, "chosen here: GridWorld-v0's 27,600 start states, see the class docstring"
    )
    num_envs: int = fields.num_envs(64, "chosen here: more copies per step run faster")
    rollout_length: int = fields.rollout_length(
        100, "chosen here: GridWorld-v0's time limit, so every iteration sees episodes end"
    )
    learning_rate: float = fields.learning_rate(
        1.0,
        "the step size alpha; chosen here: 1 is exact on deterministic transitions "
        "(GridWorld's); a stochastic environment needs less",
    )
    decay_lr: bool = hp(
        False,
        "decay the step size linearly from learning_rate to end_learning_rate over training; "
        "traced, so one program sweeps both schedules (chosen here: off)",
        traced=True,
    )
    end_learning_rate: float = hp(
        0.1,
        "the step size at the end of training with decay_lr (chosen here)",
        low=0.0,
        traced=True,
    )
    gamma: float = fields.gamma(
        0.99, "chosen here; on GridWorld any gamma in (0, 1] has the same optimal actions"
    )
    start_epsilon: float = hp(
        1.0,
        "exploration epsilon at step 0 (as DQN's, CleanRL: 1)",
        low=0.0,
        high=1.0,
        traced=True,
    )
    end_epsilon: float = hp(
        0.05,
        "epsilon after the decay, also `act`'s when not deterministic (as DQN's, CleanRL: 0.05)",
        low=0.0,
        high=1.0,
        traced=True,
    )
    exploration_fraction: float = hp(
        0.2,
        "fraction of total_steps over which epsilon decays linearly (chosen here; CleanRL "
        "DQN's 0.5 did no better on GridWorld-v0)",
        low=0.0,
        low_open=True,
        high=1.0,
        traced=True,
    )
    q_init: float = hp(
        0.0,
        "initial value of every table entry; at least the largest return (GridWorld: 1) is "
        "optimistic, so every action gets tried (chosen here: 0, optimism explores GridWorld-v0's "
        "138k entries too slowly)",
        traced=True,
    )

    def __post_init__(self) -> None:
        validate(self)
        per_iteration = self.num_envs * self.rollout_length
        if self.total_steps < per_iteration:
            raise ConfigError(f"total_steps must be >= num_envs * rollout_length ({per_iteration})")


# Named settings: the paper configs for qlearning (paper_configs/*.yaml, sources in each).
PRESETS = paper_configs.presets("qlearning", Config)


@struct.dataclass
class TrainState:
    """Everything tabular Q-learning carries between iterations (leaves gain a seed axis under
    vmap)."""

    q: jax.Array  # float32[S, A], the table
    visits: jax.Array  # int32[S, A], transitions that updated each entry so far
    env: EnvCarry
    key: jax.Array
    env_steps: jax.Array  # environment steps so far, summed over copies
    hparams: dict[str, jax.Array]


@struct.dataclass
class QTable:
    """What `act` needs: the table and the epsilon of a stochastic act."""

    q: jax.Array  # float32[S, A]
    epsilon: jax.Array


Target = Callable[[jax.Array, dict[str, jax.Array], dict[str, jax.Array]], jax.Array]


def td_target(
    q: jax.Array, batch: dict[str, jax.Array], hparams: dict[str, jax.Array]
) -> jax.Array:
    """The Q-learning target y [N] (module docstring),

        y_i = r_i + gamma (1 - term_i) max_{a allowed in s'_i} Q(s'_i, a),

    of the table q [S, A] and batch's [N] arrays (next_mask [N, A])."""
    bootstrap = masked_max(q[batch["next_state"]], batch["next_mask"])
    not_terminal = 1.0 - batch["terminated"].astype(jnp.float32)
    return batch["reward"] + hparams["gamma"] * not_terminal * bootstrap


def table_update(
    q: jax.Array,
    state: jax.Array,
    action: jax.Array,
    target: jax.Array,
    learning_rate: jax.Array | float,
) -> tuple[jax.Array, jax.Array]:
    """Move the entries (state_i, action_i) of q [S, A] towards targets [N], each by
    learning_rate times the mean TD error of the transitions that share it:

        Q(s, a) <- Q(s, a) + alpha mean_{i: (s_i, a_i) = (s, a)} (y_i - Q(s, a)).

    Returns (the new table [S, A], the TD errors y_i - Q(s_i, a_i) [N] before the update)."""
    td = target - q[state, action]
    entry = state * q.shape[1] + action
    same = (entry[:, None] == entry[None, :]).astype(jnp.float32)  # [N, N], copies sharing one
    mean_td = same @ td / same.sum(axis=1)
    return q.at[state, action].set(q[state, action] + learning_rate * mean_td), td


@dataclasses.dataclass(frozen=True, eq=False)
class QLearning:
    """One configured tabular Q-learner: its static pieces, and the Algorithm's functions as
    methods."""

    config: Config
    env: FiniteStates  # the innermost environment: obs_index, num_states
    venv: Any
    env_params: Any
    num_actions: int
    target: Target

    def index(self, obs: Any) -> jax.Array:
        """State indices int32[B] of observations [B, ...]."""
        return jax.vmap(self.env.obs_index, in_axes=(0, None))(obs, self.env_params)

    def act(
        self,
        policy: QTable,
        obs: Any,
        key: jax.Array,
        deterministic: bool = False,
        action_mask: jax.Array | None = None,
    ) -> jax.Array:
        q = policy.q[self.index(obs)]  # [B, A]
        if deterministic:
            return masked_argmax(q, action_mask).astype(jnp.int32)
        return epsilon_greedy(q, action_mask, policy.epsilon, key)

    def policy_params(self, state: TrainState) -> QTable:
        return QTable(state.q, state.hparams["end_epsilon"])

    def init(self, key: jax.Array, hparams: dict[str, jax.Array]) -> TrainState:
        env_key, key = jax.random.split(key)
        shape = (self.env.num_states(self.env_params), self.num_actions)
        return TrainState(
            q=jnp.full(shape, hparams["q_init"], jnp.float32),
            visits=jnp.zeros(shape, jnp.int32),
            env=reset_envs(self.venv, self.env_params, env_key),
            key=key,
            env_steps=jnp.zeros((), jnp.int32),
            hparams=hparams,
        )

    def schedules(self, h: dict[str, jax.Array], env_steps: jax.Array) -> tuple[jax.Array, ...]:
        """(epsilon_t, alpha_t) at environment step `env_steps` (module docstring)."""
        total = self.config.total_steps
        epsilon = linear(
            h["start_epsilon"], h["end_epsilon"], env_steps / (h["exploration_fraction"] * total)
        )
        # decay_lr is 0.0 or 1.0 (a traced switch): the ramp stands still at learning_rate or runs.
        ramp = h["decay_lr"] * progress(env_steps, total)
        alpha = linear(h["learning_rate"], h["end_learning_rate"], ramp)
        return epsilon, alpha

    def step(self, state: TrainState, key: jax.Array) -> tuple[TrainState, dict[str, Any]]:
        """One epsilon-greedy step of every copy, then the table update of its N transitions."""
        h = state.hparams
        epsilon, alpha = self.schedules(h, state.env_steps)
        policy = QTable(state.q, epsilon)
        behave = lambda obs, mask, key: (self.act(policy, obs, key, False, mask), {})  # noqa: E731
        carry, traj = rollout(self.venv, self.env_params, behave, state.env, key, 1)
        traj = jax.tree.map(lambda x: x[0], traj)  # [1, N, ...] -> [N, ...]
        next_mask = traj.next_action_mask
        if next_mask is None:
            next_mask = jnp.ones((traj.action.shape[0], self.num_actions), bool)
        batch = {
            "state": self.index(traj.obs),
            "action": traj.action,
            "reward": traj.reward,
            "terminated": traj.terminated,
            "truncated": traj.truncated,
            "next_state": self.index(traj.next_obs),
            "next_mask": next_mask,
        }
        y = self.target(state.q, batch, h)
        q, td = table_update(state.q, batch["state"], batch["action"], y, alpha)
        visits = state.visits.at[batch["state"], batch["action"]].add(1)
        steps = state.env_steps + self.config.num_envs
        state = state.replace(q=q, visits=visits, env=carry, env_steps=steps)
        return state, {"td": jnp.abs(td).mean(), "episode": traj.episode, "alpha": alpha}

    def update(self, state: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
        key, steps_key = jax.random.split(state.key)
        keys = jax.random.split(steps_key, self.config.rollout_length)
        state, out = jax.lax.scan(self.step, state.replace(key=key), keys)
        epsilon, _ = self.schedules(state.hparams, state.env_steps)
        metrics = {
            "td_error": out["td"].mean(),
            "learning_rate": out["alpha"][-1],
            "epsilon": epsilon,
            "visited_states": jnp.sum(state.visits.sum(axis=1) > 0).astype(jnp.float32),
            **episode_metrics(out["episode"]),
        }
        return state, metrics


def make(config: Config, env: Any, env_params: Any, target: Target = td_target) -> Algorithm:
    """Build tabular Q-learning for `env` (a FiniteStates environment with Discrete actions, or a
    vectorised copy of one with config.num_envs); `target` replaces the TD target (see the module
    docstring)."""
    inner = finite_states(env, env_params, "qlearning")
    # The table is read through obs_index: fail here, not inside the compiled update, where the
    # environment cannot index its observations (GridWorld's image mode).
    jax.eval_shape(
        lambda k: inner.obs_index(inner.reset(k, env_params)[0], env_params), jax.random.key(0)
    )
    agent = QLearning(
        config=config,
        env=inner,
        venv=as_vector_env(env, config.num_envs),
        env_params=env_params,
        num_actions=int(inner.action_space(env_params).n),
        target=target,
    )
    per_iteration = config.num_envs * config.rollout_length
    return Algorithm(
        init=agent.init,
        update=agent.update,
        act=agent.act,
        policy_params=agent.policy_params,
        hparams=hparams_of(config),
        steps_per_iteration=per_iteration,
        num_iterations=config.total_steps // per_iteration,
        config=config,
        env=env,
        env_params=env_params,
    )
