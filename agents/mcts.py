"""Monte Carlo tree search with the environment's own step as the model: planning, no learning.

Every decision runs a search from the current state of each environment copy
(rlkit.planning.mcts): Gumbel MuZero (Danihelka et al. 2022) or PUCT (MuZero, Schrittwieser et
al. 2020) over `num_simulations` simulations, each expanding one node by one true `step_env`.
The prior is uniform over the allowed actions; a leaf's value is the mean discounted return of
`leaf_rollouts` uniformly random rollouts of `leaf_rollout_steps` steps (0 steps: value 0).

Why random rollouts rather than 0: with a zero leaf value the search only knows rewards inside
its tree, so on GridWorld (the goal up to 8 steps away, 4-5 actions) it wanders until a goal
falls within the tree's depth, and on CartPole (reward 1 every step) every unfinished leaf looks
the same. A short random rollout is the classic cheap estimate (Kocsis and Szepesvari 2006): in
GridWorld the chance of reaching each goal, in CartPole how long a random policy keeps the pole
up from the leaf (short near a fall). Its cost is leaf_rollouts * leaf_rollout_steps env steps
per simulation, vectorised.

Nothing is learned: `update` runs `rollout_length` planned steps of `num_envs` copies (actions
sampled by the search: visit counts^(1/temperature) for PUCT, Gumbel's sequential-halving choice
with root noise), so the runner logs the returns of the episodes that ended. `act` plans too,
deterministically, from the environment state that evaluation passes it (`env_state`, see
rlkit.core.env_state). Any JAX environment with `step_env` (rlkit's and gymnax's) works;
host environments do not (their state is not a JAX value to search from).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

import paper_configs
from rlkit.core import fields
from rlkit.core.algorithm import Algorithm
from rlkit.core.config import ConfigError, hp, hparams_of, validate
from rlkit.core.env_state import WithEnvState
from rlkit.core.wrappers import as_vector_env, episode_metrics
from rlkit.data.rollout import EnvCarry, reset_envs, rollout
from rlkit.planning import mcts
from rlkit.planning.mcts import Search, SearchParams

__all__ = ["PRESETS", "Config", "TrainState", "make"]


@dataclasses.dataclass(frozen=True)
class Config:
    """MCTS planning settings. No learning; defaults chosen here, measured on GridWorld-v0 and
    CartPole-v1 (tests/test_mcts.py)."""

    total_steps: int = fields.total_steps(2_000, "chosen here: enough finished episodes to log")
    num_envs: int = fields.num_envs(8, "chosen here")
    rollout_length: int = fields.rollout_length(25, "chosen here")
    search: str = mcts.search_method("gumbel", "chosen here")
    num_simulations: int = mcts.num_simulations(32, "chosen here")
    max_depth: int = mcts.max_depth(0, "chosen here")
    max_num_considered_actions: int = mcts.max_num_considered_actions(16, "Gumbel paper: 16")
    q_scaling: str = mcts.q_scaling("bounds", "chosen here: node misses wins below the root")
    gamma: float = fields.gamma(0.99, "chosen here")
    leaf_rollouts: int = hp(
        32,
        "random rollouts averaged for a leaf's value (chosen here: 8 left GridWorld at 0.92)",
        low=1,
    )
    leaf_rollout_steps: int = hp(
        16, "steps of each random leaf rollout, 0 = leaf value 0 (chosen here)", low=0
    )
    pb_c_init: float = mcts.pb_c_init(1.25, "MuZero: 1.25")
    pb_c_base: float = mcts.pb_c_base(19652.0, "MuZero: 19652")
    dirichlet_fraction: float = mcts.dirichlet_fraction(0.0, "no learning, no noise: chosen here")
    dirichlet_alpha: float = mcts.dirichlet_alpha(0.3, "AlphaZero chess: 0.3")
    temperature: float = mcts.temperature(1.0, "MuZero: 1.0")
    gumbel_scale: float = mcts.gumbel_scale(1.0, "Gumbel paper: 1.0")

    def __post_init__(self) -> None:
        validate(self)
        if self.total_steps < self.num_envs * self.rollout_length:
            raise ConfigError(
                f"total_steps must be >= num_envs * rollout_length "
                f"({self.num_envs * self.rollout_length})"
            )


# Named settings: the paper configs for mcts (paper_configs/*.yaml, sources in each).
PRESETS = paper_configs.presets("mcts", Config)


@struct.dataclass
class TrainState:
    """The planner's state (leaves gain a seed axis under vmap): the vectorised environment,
    the PRNG key, iterations done and the traced hyperparameters."""

    env: EnvCarry
    key: jax.Array
    step: jax.Array
    hparams: dict[str, jax.Array]


def make(config: Config, env: Any, env_params: Any) -> Algorithm:
    """Build the planner for `env`, a single JAX environment with a Discrete action space."""
    if hasattr(env, "num_envs"):
        raise ConfigError("mcts plans on a single JAX environment, not a vectorised one")
    search = Search(
        env=env,
        env_params=env_params,
        evaluator=mcts.rollout_evaluator(
            env, env_params, config.leaf_rollouts, config.leaf_rollout_steps
        ),
        method=config.search,
        num_simulations=config.num_simulations,
        max_depth=config.max_depth or None,
        max_num_considered_actions=config.max_num_considered_actions,
        value_bounds=mcts.value_bounds_of(env, config.q_scaling),
    )
    venv = WithEnvState(as_vector_env(env, config.num_envs), env)
    batch = config.num_envs * config.rollout_length

    def plan(
        hparams: dict[str, jax.Array], key: jax.Array, states: Any, obs: Any, deterministic: bool
    ) -> Any:
        params = SearchParams(gamma=hparams["gamma"])
        coefs = mcts.search_coefficients(hparams, deterministic)
        return search.run(params, key, states, obs, coefs, deterministic)

    def init(key: jax.Array, hparams: dict[str, jax.Array]) -> TrainState:
        env_key, key = jax.random.split(key)
        carry = reset_envs(venv, env_params, env_key)
        return TrainState(carry, key, jnp.zeros((), jnp.int32), hparams)

    def update(state: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
        key, rollout_key = jax.random.split(state.key)

        def behave(obs: Any, mask: jax.Array | None, key: jax.Array) -> tuple:
            out = plan(state.hparams, key, obs["env_state"], obs["obs"], False)
            return out.action, {"search_value": out.search_tree.summary().value}

        carry, traj = rollout(
            venv, env_params, behave, state.env, rollout_key, config.rollout_length
        )
        metrics = {
            **episode_metrics(traj.episode),
            "search_value": traj.extras["search_value"].mean(),
        }
        return state.replace(env=carry, key=key, step=state.step + 1), metrics

    def act(
        params: dict[str, jax.Array],
        obs: Any,
        key: jax.Array,
        deterministic: bool = True,
        action_mask: jax.Array | None = None,
        env_state: Any = None,
    ) -> jax.Array:
        """Actions int[B] planned from env_state (the environment's state [B, ...], required:
        the search steps the environment itself; obs [B, ...] are its observations)."""
        if env_state is None:
            raise ValueError("mcts plans from the environment's state: pass env_state=")
        return plan(params, key, env_state, obs, deterministic).action

    return Algorithm(
        init=init,
        update=update,
        act=act,
        policy_params=lambda state: state.hparams,
        hparams=hparams_of(config),
        steps_per_iteration=batch,
        num_iterations=config.total_steps // batch,
        config=config,
        env=env,
        env_params=env_params,
    )
