"""Deep Q-Networks (Mnih et al. 2015) with the variants later papers ablate as switches.

After the warm-up of rlkit.data.offpolicy (learning_starts steps of uniform random actions), one
iteration takes `train_frequency` epsilon-greedy steps of `num_envs` copies into the replay
buffer, then `gradient_steps` gradient steps on minibatches of `batch_size` windows of `n_step`
consecutive transitions, each minimising

    L = mean_i w_i loss(Q(s_i, a_i) - y_i),
    y_i = sum_{k<m} gamma^k r_{i+k} + gamma^m (1 - term_{i+m-1}) V'(s'_{i+m-1}),

where the window stops after m <= n steps at the first episode end and V'(s') =
max_{a allowed in s'} Q_target(s', a), or with `double_q` (van Hasselt et al. 2016)
Q_target(s', argmax_{a allowed} Q(s', a)) (`td_target`; rlkit.ops.targets). A truncated episode
bootstraps from the pre-reset observation s'; a terminated one does not. loss is 0.5 x^2 ("mse")
or Huber with `huber_delta`; w_i = 1, or with `prioritised` the importance weights of
proportional prioritised replay (Schaul et al. 2016: P(i) ~ p_i^alpha, p_i = |TD error|, beta
annealed linearly to 1 over training). The target network follows the online one every
`target_update_period` gradient steps: theta' <- tau theta + (1 - tau) theta' (tau = 1: a hard
copy). `dueling` gives the dueling head (Wang et al. 2016). Epsilon decays linearly from
start_epsilon to end_epsilon over the first exploration_fraction of total_steps. With
`anneal_lr` the learning rate of a gradient step is learning_rate (1 - env_steps / total_steps).

Action masks (environments that expose `action_mask`, such as GridWorld) are honoured when acting
(greedy = masked argmax, exploration uniform over the allowed actions) and in the targets (max
over the actions allowed in s').

`make(..., target=fn)` replaces the TD target: fn(batch, q_online, q_target, hparams, config)
-> y [B], with batch the windows (leaves [B, n, ...], rlkit.data.offpolicy's replay items) and
q_online / q_target mapping observations [B, F] to action values [B, A].

Defaults are CleanRL's dqn_jax.py (CartPole-v1, PAPER-TARGETS #4); PRESETS["rejax/CartPole"]
is rejax 0.1.x's configs/cartpole.yaml DQN and PRESETS["rlkit/GridWorld"] a setting tuned here.
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
from rlkit.core.config import ConfigError, hp, validate
from rlkit.core.spaces import Discrete
from rlkit.data import offpolicy
from rlkit.data.offpolicy import OffPolicyState
from rlkit.nets.q import QNetwork
from rlkit.ops.exploration import epsilon_greedy
from rlkit.ops.losses import td_loss
from rlkit.ops.optim import apply_gradients, make_optimiser
from rlkit.ops.running_stats import RunningStats
from rlkit.ops.schedules import linear, progress
from rlkit.ops.targets import bootstrap_index, masked_argmax, q_learning_value, window_targets

__all__ = ["DQN", "PRESETS", "Config", "Learner", "QPolicy", "TrainState", "make", "td_target"]


@dataclasses.dataclass(frozen=True)
class Config:
    """DQN hyperparameters. Defaults: CleanRL dqn_jax.py, CartPole-v1 (PAPER-TARGETS #4)."""

    total_steps: int = fields.total_steps(500_000, "CleanRL: 500k")
    num_envs: int = fields.num_envs(1, "CleanRL: 1")
    train_frequency: int = fields.train_frequency(10, "CleanRL: 10")
    gradient_steps: int = fields.gradient_steps(1, "CleanRL: 1")
    steps_per_update: float = fields.steps_per_update(0.0, "CleanRL: off")
    buffer_size: int = fields.buffer_size(10_000, "CleanRL: 10k")
    batch_size: int = fields.batch_size(128, "CleanRL: 128")
    learning_starts: int = fields.learning_starts(10_000, "CleanRL: 10k")
    learning_rate: float = fields.learning_rate(2.5e-4, "CleanRL: 2.5e-4")
    anneal_lr: bool = fields.anneal_lr(False, "CleanRL: constant; PureJaxRL's DQN: optional")
    gamma: float = fields.gamma(0.99, "CleanRL: 0.99")
    target_update_period: int = fields.target_update_period(
        50, "CleanRL: every 500 env steps, i.e. 50 gradient steps at train_frequency 10"
    )
    tau: float = fields.tau(1.0, "CleanRL: 1")
    start_epsilon: float = hp(
        1.0, "exploration epsilon at step 0 (CleanRL start_e: 1)", low=0.0, high=1.0, traced=True
    )
    end_epsilon: float = hp(
        0.05,
        "epsilon after the decay, also `act`'s when not deterministic (CleanRL end_e: 0.05)",
        low=0.0,
        high=1.0,
        traced=True,
    )
    exploration_fraction: float = hp(
        0.5,
        "fraction of total_steps over which epsilon decays linearly (CleanRL: 0.5)",
        low=0.0,
        low_open=True,
        high=1.0,
        traced=True,
    )
    double_q: bool = hp(False, "Double DQN targets (van Hasselt et al. 2016; CleanRL: off)")
    dueling: bool = hp(False, "dueling Q head (Wang et al. 2016; CleanRL: off)")
    n_step: int = hp(
        1, "rewards summed before bootstrapping (Hessel et al. 2018: 3; CleanRL: 1)", low=1
    )
    prioritised: bool = fields.prioritised(False, "CleanRL: off")
    priority_alpha: float = fields.priority_alpha(0.6, "Schaul et al. 2016 proportional: 0.6")
    priority_beta_start: float = fields.priority_beta_start(0.4, "Schaul et al. 2016: 0.4")
    priority_eps: float = fields.priority_eps(1e-6, "Schaul et al. 2016's epsilon")
    loss: str = hp("mse", "TD loss: 0.5 x^2 or Huber (CleanRL: mse)", choices=("mse", "huber"))
    huber_delta: float = hp(
        1.0,
        "Huber threshold (Mnih et al. 2015 error clipping: 1)",
        low=0.0,
        low_open=True,
        traced=True,
    )
    max_grad_norm: float = fields.max_grad_norm(0.0, "CleanRL dqn_jax: off")
    optimiser: str = fields.optimiser("adam", "CleanRL: adam")
    optimiser_eps: float = fields.optimiser_eps(1e-8, "optax default, CleanRL")
    hidden: tuple[int, ...] = fields.hidden((120, 84), "CleanRL: 120, 84")
    activation: str = fields.activation("relu", "CleanRL: relu")
    normalize_obs: bool = fields.normalize_obs(False, "CleanRL: off")

    def __post_init__(self) -> None:
        validate(self)
        offpolicy.schedule(self, window=self.n_step)


# Named settings: the paper configs for dqn (paper_configs/*.yaml, sources in each).
PRESETS = paper_configs.presets("dqn", Config)


@struct.dataclass
class Learner:
    """What a gradient step changes."""

    params: Any
    target_params: Any
    opt_state: Any
    grad_steps: jax.Array  # gradient steps taken


@struct.dataclass
class QPolicy:
    """What `act` needs: Q-network weights, observation statistics, and the epsilon of a
    stochastic act."""

    params: Any
    obs_stats: RunningStats
    epsilon: jax.Array


# DQN carries what every off-policy agent carries (rlkit.data.offpolicy), with a Learner.
TrainState = OffPolicyState

QFunction = Callable[[jax.Array], jax.Array]


def td_target(
    batch: dict[str, jax.Array],
    q_online: QFunction,
    q_target: QFunction,
    hparams: dict[str, jax.Array],
    config: Config,
) -> jax.Array:
    """The n-step (Double) Q-learning target y [B] of windows `batch` (see the module docstring):
    bootstrap from the next observation of each window's first episode end, over the actions
    allowed there."""
    index = bootstrap_index(batch["terminated"], batch["truncated"])
    rows = jnp.arange(index.shape[0])
    next_obs = batch["next_obs"][rows, index]
    next_mask = batch["next_mask"][rows, index] if "next_mask" in batch else None
    online = q_online(next_obs) if config.double_q else None
    bootstrap = q_learning_value(q_target(next_obs), online, next_mask)
    return window_targets(
        batch["reward"], bootstrap, batch["terminated"], batch["truncated"], hparams["gamma"]
    )


@dataclasses.dataclass(frozen=True, eq=False)
class DQN:
    """One configured DQN: its static pieces, and the Algorithm's functions as methods."""

    config: Config
    core: offpolicy.OffPolicy
    network: QNetwork
    tx: Any
    target: Callable

    def act(
        self,
        policy: QPolicy,
        obs: Any,
        key: jax.Array,
        deterministic: bool = False,
        action_mask: jax.Array | None = None,
    ) -> jax.Array:
        q = self.network.apply(policy.params, self.core.inputs(policy.obs_stats, obs))
        if deterministic:
            return masked_argmax(q, action_mask).astype(jnp.int32)
        return epsilon_greedy(q, action_mask, policy.epsilon, key)

    def policy_params(self, state: TrainState) -> QPolicy:
        return QPolicy(state.learner.params, state.obs_stats, state.hparams["end_epsilon"])

    def init(self, key: jax.Array, hparams: dict[str, jax.Array]) -> TrainState:
        def init_learner(key: jax.Array, x: jax.Array) -> Learner:
            params = self.network.init(key, x)
            return Learner(params, params, self.tx.init(params), jnp.zeros((), jnp.int32))

        return self.core.init(key, hparams, init_learner)

    @property
    def sync_per_iteration(self) -> bool:
        """When the period is a multiple of the gradient steps, target updates fall on iteration
        ends: one per iteration, outside the loop of gradient steps."""
        return self.config.target_update_period % self.core.schedule.gradient_steps == 0

    def sync(self, learner: Learner, tau: jax.Array) -> Learner:
        """The target update, due when the gradient-step count is a multiple of the period."""
        due = learner.grad_steps % self.config.target_update_period == 0
        target = offpolicy.update_target(learner.target_params, learner.params, tau, due)
        return learner.replace(target_params=target)

    def gradient_step(self, learner: Learner, batch: dict, weights: jax.Array, h: dict) -> tuple:
        """One step on windows `batch` (leaves [B, n, ...]) -> (learner, |TD errors| [B], stats)."""
        config, network = self.config, self.network
        q_of = lambda params: lambda obs: network.apply(params, obs)  # noqa: E731
        y = self.target(batch, q_of(learner.params), q_of(learner.target_params), h, config)
        y = jax.lax.stop_gradient(y)

        def objective(params: Any) -> tuple[jax.Array, tuple]:
            q = network.apply(params, batch["obs"][:, 0])
            q_taken = jnp.take_along_axis(q, batch["action"][:, :1], axis=1)[:, 0]
            td = q_taken - y
            return td_loss(td, weights, config.loss, h["huber_delta"]), (td, q_taken)

        (loss, (td, q_taken)), grads = jax.value_and_grad(objective, has_aux=True)(learner.params)
        params, opt_state, grad_norm = apply_gradients(
            self.tx,
            learner.params,
            grads,
            learner.opt_state,
            h["learning_rate"],
            h["max_grad_norm"],
        )
        learner = Learner(params, learner.target_params, opt_state, learner.grad_steps + 1)
        if not self.sync_per_iteration:
            learner = self.sync(learner, h["tau"])
        stats = {"loss": loss, "q_mean": q_taken.mean(), "grad_norm": grad_norm}
        return learner, jnp.abs(td), stats

    def learn_prioritised(self, state: TrainState, key: jax.Array, h: dict) -> tuple:
        """The iteration's gradient steps, each on a prioritised batch whose windows then get
        their |TD errors| as priorities (`h`: the iteration's hyperparameters)."""
        core = self.core
        done = progress(state.env_steps, self.config.total_steps)
        beta = linear(h["priority_beta_start"], 1.0, done)

        def step(carry: tuple, step_key: jax.Array) -> tuple:
            learner, replay = carry
            sample = core.replay.sample(replay, step_key, beta)
            batch = core.normalized(state.obs_stats, sample.items)
            learner, priorities, stats = self.gradient_step(learner, batch, sample.weights, h)
            replay = core.replay.update_priorities(
                replay, sample.time_index, sample.lane_index, priorities, h["priority_alpha"]
            )
            return (learner, replay), {**stats, "beta": beta}

        keys = jax.random.split(key, core.schedule.gradient_steps)
        (learner, replay), stats = jax.lax.scan(step, (state.learner, state.replay), keys)
        return state.replace(learner=learner, replay=replay), stats

    def learn(self, state: TrainState, key: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
        h = state.hparams
        if self.config.anneal_lr:
            done = progress(state.env_steps, self.config.total_steps)
            h = {**h, "learning_rate": h["learning_rate"] * (1.0 - done)}
        if self.config.prioritised:
            state, stats = self.learn_prioritised(state, key, h)
        else:
            weights = jnp.ones((self.config.batch_size,), jnp.float32)
            learner, stats = jax.lax.scan(
                lambda learner, batch: self.gradient_step(learner, batch, weights, h)[::2],
                state.learner,
                self.core.draw_batches(state, key),
            )
            state = state.replace(learner=learner)
        if self.sync_per_iteration:
            state = state.replace(learner=self.sync(state.learner, h["tau"]))
        return state, stats

    def update(self, state: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
        h = state.hparams
        explored = state.env_steps / (h["exploration_fraction"] * self.config.total_steps)
        epsilon = linear(h["start_epsilon"], h["end_epsilon"], explored)
        policy = QPolicy(state.learner.params, state.obs_stats, epsilon)
        behave = lambda obs, mask, key: self.act(policy, obs, key, False, mask)  # noqa: E731
        state, metrics = self.core.iteration(state, behave, self.learn)
        return state, {**metrics, "epsilon": epsilon}


def make(config: Config, env: Any, env_params: Any, target: Callable = td_target) -> Algorithm:
    """Build DQN for `env` (a single environment, or a vectorised one with config.num_envs);
    `target` replaces the TD target (see the module docstring)."""
    action_space = env.action_space(env_params)
    if not isinstance(action_space, Discrete):
        raise ConfigError(f"DQN needs a Discrete action space, got {type(action_space).__name__}")
    core = offpolicy.build(
        config,
        env,
        env_params,
        window=config.n_step,
        prioritised=config.prioritised,
        priority_eps=config.priority_eps,
    )
    network = QNetwork(int(action_space.n), config.hidden, config.activation, config.dueling)
    tx = make_optimiser(config.optimiser, eps=config.optimiser_eps)
    agent = DQN(config, core, network, tx, target)
    return core.algorithm(agent, config, env, env_params)
