"""What the off-policy agents (DQN, SAC) share: the schedule of a run, warm-up, collecting into
a replay buffer, sampling batches, target-network updates.

Schedule (one rule for every off-policy agent). `init` steps every copy
`ceil(learning_starts / num_envs)` times with uniform random actions and adds the steps to the
buffer (SB3's learning_starts, ML-Agents' buffer_init_steps); these steps count towards
`total_steps`. Each iteration then steps every copy `train_frequency` times with the agent's
behaviour policy, adds the steps, and takes `gradient_steps` gradient steps (or, with ML-Agents'
`steps_per_update` > 0, num_envs * train_frequency / steps_per_update of them). Every iteration
is the same static program: no step is computed and thrown away and no `cond` turns into both
branches under `vmap`. Warm-up is lengthened where needed so that the first iteration can sample
a whole window (n-step replay needs n rows per copy).

Replay items ([T, N, ...] from a rollout; one item per step and copy):
    obs, next_obs   flat float observations s_t and s'_t (s'_t pre-reset where the episode ended)
    action          int32 [] for Discrete; float [d] in [-1, 1] for a Box (scaled affinely)
    reward, terminated, truncated
    mask, next_mask allowed actions at s_t and s'_t (only for environments with action masks)

Observation statistics (`normalize_obs`) are updated with every added batch of observations and
applied when batches are drawn and when acting, so the stored observations stay raw.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from rlkit.core.algorithm import Algorithm
from rlkit.core.config import ConfigError, hparams_of
from rlkit.core.spaces import Box, Discrete, Space
from rlkit.core.wrappers import as_vector_env, episode_metrics
from rlkit.data.replay import PrioritisedReplay, UniformReplay
from rlkit.data.rollout import EnvCarry, Transition, reset_envs, rollout
from rlkit.nets.layers import flatten_obs
from rlkit.ops.distributions import Categorical
from rlkit.ops.running_stats import RunningStats

__all__ = [
    "OffPolicy",
    "OffPolicyState",
    "Schedule",
    "build",
    "replay_items",
    "schedule",
    "update_target",
]

Behaviour = Callable[[Any, jax.Array | None, jax.Array], jax.Array]


@struct.dataclass
class OffPolicyState:
    """Everything an off-policy agent carries between iterations (leaves gain a seed axis under
    vmap). `learner` is the agent's own: weights, target weights, optimiser states."""

    learner: Any
    replay: Any  # ReplayState or PrioritisedReplayState
    obs_stats: RunningStats
    env: EnvCarry
    key: jax.Array
    env_steps: jax.Array  # environment steps so far, warm-up included, summed over copies
    hparams: dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class Schedule:
    """The static shape of an off-policy run (see the module docstring)."""

    num_envs: int
    train_frequency: int
    gradient_steps: int
    warmup_steps: int  # per copy, in init
    rows_per_copy: int  # buffer rows per copy: buffer_size // num_envs
    num_iterations: int

    @property
    def steps_per_iteration(self) -> int:
        return self.num_envs * self.train_frequency


def schedule(config: Any, window: int = 1) -> Schedule:
    """The schedule of a config with the shared off-policy fields (total_steps, num_envs,
    train_frequency, gradient_steps, steps_per_update, learning_starts, buffer_size), for
    windows of `window` steps; ValueError naming the field when the budget cannot train."""
    n, freq = config.num_envs, config.train_frequency
    per_iteration = n * freq
    gradient_steps = config.gradient_steps
    if config.steps_per_update > 0:
        ratio = per_iteration / config.steps_per_update
        if ratio < 1 or abs(ratio - round(ratio)) > 1e-6:
            raise ConfigError(
                f"steps_per_update must divide num_envs * train_frequency ({per_iteration}) into "
                f"a whole number >= 1 of gradient steps, got {config.steps_per_update}"
            )
        gradient_steps = round(ratio)
    rows = config.buffer_size // n
    if rows < window:
        raise ConfigError(
            f"buffer_size must hold {window} row(s) per copy, i.e. be >= {window * n}"
        )
    warmup = max(-(-config.learning_starts // n), window - freq, 0)
    iterations = (config.total_steps - warmup * n) // per_iteration
    if iterations < 1:
        raise ConfigError(
            f"total_steps ({config.total_steps}) must leave at least one iteration "
            f"({per_iteration} steps) after the {warmup * n} warm-up steps (learning_starts)"
        )
    return Schedule(n, freq, gradient_steps, warmup, rows, iterations)


def update_target(target: Any, online: Any, tau: jax.Array | float, due: jax.Array | bool = True):
    """theta' <- tau theta + (1 - tau) theta' where `due`, else theta' unchanged. tau = 1 copies
    exactly (1 * theta + 0 * theta')."""
    tau = jnp.where(due, tau, 0.0)
    return jax.tree.map(lambda p, t: tau * p + (1.0 - tau) * t, online, target)


def replay_items(traj: Transition, to_unit_action: Callable | None = None) -> dict[str, jax.Array]:
    """Replay items [T, N, ...] of a rollout (see the module docstring); `to_unit_action` maps
    Box actions onto [-1, 1]^d."""
    items = {
        "obs": flatten_obs(traj.obs, batch_ndim=2),
        "action": traj.action if to_unit_action is None else to_unit_action(traj.action),
        "reward": traj.reward,
        "terminated": traj.terminated,
        "truncated": traj.truncated,
        "next_obs": flatten_obs(traj.next_obs, batch_ndim=2),
    }
    if traj.action_mask is not None:
        items["mask"] = traj.action_mask
        items["next_mask"] = traj.next_action_mask
    return items


@dataclasses.dataclass(frozen=True, eq=False)
class OffPolicy:
    """The shared machinery of one configured off-policy agent.

    venv: the vectorised environment; action_space: its single-copy action space (Discrete, or a
    Box with finite bounds); replay: the buffer (its `add` takes `priority_alpha` from the
    hparams when prioritised); normalize_obs: whether observations are normalised.
    """

    venv: Any
    env_params: Any
    action_space: Space
    replay: UniformReplay | PrioritisedReplay
    schedule: Schedule
    normalize_obs: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.action_space, Box):
            low, high = self._bounds()
            if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
                raise ConfigError("a Box action space needs finite bounds for off-policy replay")
        elif not isinstance(self.action_space, Discrete):
            raise ConfigError(f"unsupported action space {type(self.action_space).__name__}")

    # -- actions -------------------------------------------------------------------------------

    @property
    def discrete(self) -> bool:
        return isinstance(self.action_space, Discrete)

    @property
    def action_dim(self) -> int:
        """Discrete: the number of actions; Box: the flat dimension d."""
        if self.discrete:
            return int(self.action_space.n)
        return math.prod(self.action_space.shape)

    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        shape = tuple(self.action_space.shape)
        low = np.broadcast_to(np.asarray(self.action_space.low, np.float32), shape).ravel()
        high = np.broadcast_to(np.asarray(self.action_space.high, np.float32), shape).ravel()
        return low, high

    def to_env_action(self, unit_action: jax.Array) -> jax.Array:
        """[-1, 1]^d -> the Box, affinely: [B, d] -> [B, *shape]."""
        low, high = self._bounds()
        scaled = low + 0.5 * (unit_action + 1.0) * (high - low)
        return scaled.reshape((*unit_action.shape[:-1], *self.action_space.shape))

    def to_unit_action(self, env_action: jax.Array) -> jax.Array:
        """The inverse of `to_env_action`: [..., *shape] -> [..., d] in [-1, 1]."""
        low, high = self._bounds()
        lead = env_action.shape[: env_action.ndim - len(self.action_space.shape)]
        flat = env_action.reshape((*lead, self.action_dim))
        return 2.0 * (flat - low) / (high - low) - 1.0

    def random_action(self, obs: Any, mask: jax.Array | None, key: jax.Array) -> jax.Array:
        """Uniform over the allowed actions, or over the Box: [B, ...]."""
        batch = jax.tree.leaves(obs)[0].shape[0]
        if self.discrete:
            logits = jnp.zeros((batch, self.action_dim), jnp.float32)
            return Categorical(logits, mask).sample(key)
        unit = jax.random.uniform(key, (batch, self.action_dim), jnp.float32, -1.0, 1.0)
        return self.to_env_action(unit)

    # -- observations --------------------------------------------------------------------------

    def inputs(self, obs_stats: RunningStats, obs: Any) -> jax.Array:
        """Network inputs [B, F] of observations [B, ...]: flat, normalised when normalising."""
        x = flatten_obs(obs)
        return obs_stats.normalize(x) if self.normalize_obs else x

    # -- collecting ----------------------------------------------------------------------------

    def _collect(
        self, behave: Behaviour, state: OffPolicyState, key: jax.Array, num_steps: int
    ) -> tuple[OffPolicyState, Transition]:
        """`num_steps` steps of every copy with `behave(obs, mask, key) -> action`, each step's
        row added to the buffer (and to the observation statistics when normalising)."""
        policy = lambda obs, mask, key: (behave(obs, mask, key), {})  # noqa: E731
        carry, traj = rollout(self.venv, self.env_params, policy, state.env, key, num_steps)
        items = replay_items(traj, None if self.discrete else self.to_unit_action)
        if isinstance(self.replay, PrioritisedReplay):
            alpha = state.hparams["priority_alpha"]
            add = lambda buffer, row: self.replay.add(buffer, row, alpha)  # noqa: E731
        else:
            add = self.replay.add
        buffer, _ = jax.lax.scan(lambda b, row: (add(b, row), None), state.replay, items)
        obs_stats = state.obs_stats.update(items["obs"]) if self.normalize_obs else state.obs_stats
        steps = state.env_steps + num_steps * self.schedule.num_envs
        return state.replace(env=carry, replay=buffer, obs_stats=obs_stats, env_steps=steps), traj

    def init(
        self, key: jax.Array, hparams: dict[str, jax.Array], init_learner: Callable[..., Any]
    ) -> OffPolicyState:
        """Reset the copies, build the learner with `init_learner(key, x)` (x [N, F], the first
        network inputs) and fill the buffer with the warm-up's random steps."""
        learner_key, env_key, warmup_key, key = jax.random.split(key, 4)
        carry = reset_envs(self.venv, self.env_params, env_key)
        x = flatten_obs(carry.obs)

        def first_items(carry: EnvCarry, key: jax.Array) -> dict[str, jax.Array]:
            policy = lambda obs, mask, key: (self.random_action(obs, mask, key), {})  # noqa: E731
            traj = rollout(self.venv, self.env_params, policy, carry, key, 1)[1]
            return replay_items(traj, None if self.discrete else self.to_unit_action)

        spec = jax.eval_shape(first_items, carry, warmup_key)
        example = jax.tree.map(lambda s: jnp.zeros(s.shape[2:], s.dtype), spec)
        state = OffPolicyState(
            learner=init_learner(learner_key, x),
            replay=self.replay.init(example),
            obs_stats=RunningStats.create(x.shape[1:]),
            env=carry,
            key=key,
            env_steps=jnp.zeros((), jnp.int32),
            hparams=hparams,
        )
        if self.schedule.warmup_steps > 0:
            state, _ = self._collect(
                self.random_action, state, warmup_key, self.schedule.warmup_steps
            )
        return state

    # -- learning ------------------------------------------------------------------------------

    def draw_batches(self, state: OffPolicyState, key: jax.Array) -> dict[str, Any]:
        """The iteration's `gradient_steps` uniform batches in one draw (the buffer does not change
        while learning): leaves [gradient_steps, batch_size, window, ...], observations
        normalised when normalising. Uniform replay only."""
        items = self.replay.sample(state.replay, key).items
        count = self.schedule.gradient_steps
        items = jax.tree.map(lambda v: v.reshape(count, v.shape[0] // count, *v.shape[1:]), items)
        return self.normalized(state.obs_stats, items)

    def normalized(self, obs_stats: RunningStats, items: dict[str, Any]) -> dict[str, Any]:
        """Items with obs and next_obs normalised by `obs_stats` (when normalising)."""
        if not self.normalize_obs:
            return items
        return {
            **items,
            "obs": obs_stats.normalize(items["obs"]),
            "next_obs": obs_stats.normalize(items["next_obs"]),
        }

    def algorithm(self, agent: Any, config: Any, env: Any, env_params: Any) -> Algorithm:
        """The Algorithm of an agent object with methods init, update, act and policy_params."""
        return Algorithm(
            init=agent.init,
            update=agent.update,
            act=agent.act,
            policy_params=agent.policy_params,
            hparams=hparams_of(config),
            steps_per_iteration=self.schedule.steps_per_iteration,
            num_iterations=self.schedule.num_iterations,
            config=config,
            env=env,
            env_params=env_params,
            init_steps=self.schedule.warmup_steps * self.schedule.num_envs,
        )

    def iteration(
        self,
        state: OffPolicyState,
        behave: Behaviour,
        learn: Callable[[OffPolicyState, jax.Array], tuple[OffPolicyState, dict[str, jax.Array]]],
    ) -> tuple[OffPolicyState, dict[str, jax.Array]]:
        """One iteration: collect `train_frequency` steps per copy with `behave`, then
        `learn(state, key) -> (state, stats)` (stats [gradient_steps] arrays, averaged here)."""
        key, collect_key, learn_key = jax.random.split(state.key, 3)
        state, traj = self._collect(
            behave, state.replace(key=key), collect_key, self.schedule.train_frequency
        )
        state, stats = learn(state, learn_key)
        return state, {**jax.tree.map(jnp.mean, stats), **episode_metrics(traj.episode)}


def build(
    config: Any,
    env: Any,
    env_params: Any,
    *,
    window: int = 1,
    prioritised: bool = False,
    priority_eps: float = 1e-6,
) -> OffPolicy:
    """The off-policy machinery for a config with the shared fields (see `schedule`, plus
    batch_size and normalize_obs): the vectorised env, the schedule and a replay buffer of
    windows of `window` steps. A uniform buffer draws all of an iteration's batches at once; a
    prioritised one a batch per gradient step (priorities change between steps)."""
    plan = schedule(config, window)
    batches = 1 if prioritised else plan.gradient_steps
    replay_args = dict(
        max_length=plan.rows_per_copy,
        add_batch_size=config.num_envs,
        sample_batch_size=config.batch_size * batches,
        sequence_length=window,
    )
    if prioritised:
        replay = PrioritisedReplay(**replay_args, priority_eps=priority_eps)
    else:
        replay = UniformReplay(**replay_args)
    return OffPolicy(
        venv=as_vector_env(env, config.num_envs),
        env_params=env_params,
        action_space=env.action_space(env_params),
        replay=replay,
        schedule=plan,
        normalize_obs=config.normalize_obs,
    )
