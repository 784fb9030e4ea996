"""Deep Q-Networks (Mnih et al. 2015) with the variants later papers ablate as switches.

One iteration: `train_frequency` epsilon-greedy steps of `num_envs` copies, each step's row of
transitions added to the replay buffer; then `gradient_steps` gradient steps on minibatches of
`batch_size` windows of `n_step` consecutive transitions, each minimising

    L = mean_i w_i loss(Q(s_i, a_i) - y_i),
    y_i = sum_{k<m} gamma^k r_{i+k} + gamma^m (1 - term_{i+m-1}) V'(s'_{i+m-1}),

where the window stops after m <= n steps at the first episode end (rlkit.returns.n_step_targets)
and V'(s') = max_{a allowed in s'} Q_target(s', a), or with `double_q` (van Hasselt et al. 2016)
Q_target(s', argmax_{a allowed} Q(s', a)). A truncated episode bootstraps from the pre-reset
observation s'; a terminated one does not. loss is 0.5 x^2 ("mse") or Huber with `huber_delta`;
w_i = 1, or with `prioritised` the importance weights of proportional prioritised replay
(Schaul et al. 2016: P(i) ~ p_i^alpha, p_i = |TD error|, beta annealed linearly to 1 over
training). The target network follows the online one every `target_update_period` gradient steps:
theta' <- tau theta + (1 - tau) theta' (tau = 1: a hard copy). `dueling` gives the dueling head
(Wang et al. 2016). Before `learning_starts` environment steps the gradient steps still run
(a static schedule, so `vmap` over seeds stays cheap) but their results are discarded.

Action masks (environments that expose `action_mask`, such as GridWorld) are honoured when acting
(greedy = masked argmax, exploration uniform over the allowed actions) and in the targets (max
over the actions allowed in s'). Each stored transition carries the mask of its next observation
as the rollout gives it (`Transition.next_action_mask`: pre-reset where the episode ended).

Defaults are CleanRL's dqn_jax.py (CartPole-v1, PAPER-TARGETS #4); PRESETS["rejax/CartPole"]
is rejax 0.1.x's configs/cartpole.yaml DQN and PRESETS["rlkit/GridWorld"] a setting tuned here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from rlkit.algorithm import Algorithm
from rlkit.config import hp, hparams_of, validate
from rlkit.distributions import Categorical
from rlkit.env import action_mask
from rlkit.networks import MLP, QHead, flatten_obs
from rlkit.optim import OPTIMISERS, apply_gradients, make_optimiser
from rlkit.replay import PrioritisedReplay, UniformReplay, beta_schedule
from rlkit.returns import n_step_targets
from rlkit.rollout import EnvCarry, reset_envs, rollout
from rlkit.spaces import Discrete
from rlkit.wrappers import as_vector_env, episode_metrics

# What a gradient step changes in a PrioritisedReplayState (the storage is only read).
PRIORITY_FIELDS = ("sum_tree", "min_tree", "max_priority")

__all__ = [
    "PRESETS",
    "Config",
    "QNetwork",
    "QPolicy",
    "TrainState",
    "bootstrap_index",
    "bootstrap_values",
    "epsilon_greedy",
    "linear_epsilon",
    "make",
    "masked_argmax",
    "masked_max",
    "td_loss",
    "window_targets",
]


@dataclasses.dataclass(frozen=True)
class Config:
    """DQN hyperparameters. Defaults: CleanRL dqn_jax.py, CartPole-v1 (PAPER-TARGETS #4)."""

    total_steps: int = hp(
        500_000, "environment steps per seed, summed over copies (CleanRL: 500k)", low=1
    )
    num_envs: int = hp(1, "vectorised environment copies (CleanRL: 1)", low=1)
    train_frequency: int = hp(
        10,
        "vectorised env steps per iteration, each adding num_envs transitions (CleanRL "
        "train_frequency: 10)",
        low=1,
    )
    gradient_steps: int = hp(
        1, "gradient steps per iteration (CleanRL: 1; rejax gradient_steps)", low=1
    )
    buffer_size: int = hp(
        10_000, "replay capacity in transitions, split evenly over the copies (CleanRL: 10k)", low=1
    )
    batch_size: int = hp(128, "windows per gradient step (CleanRL: 128)", low=1)
    learning_starts: int = hp(
        10_000, "environment steps collected before the first gradient step (CleanRL: 10k)", low=0
    )
    learning_rate: float = hp(2.5e-4, "Adam step size (CleanRL: 2.5e-4)", low=0.0, traced=True)
    gamma: float = hp(0.99, "discount (CleanRL: 0.99)", low=0.0, high=1.0, traced=True)
    target_update_period: int = hp(
        50,
        "gradient steps between target-network updates (CleanRL: every 500 env steps, i.e. 50 "
        "gradient steps at train_frequency 10)",
        low=1,
    )
    tau: float = hp(
        1.0,
        "target update theta' <- tau theta + (1 - tau) theta'; 1 = hard copy (CleanRL: 1)",
        low=0.0,
        low_open=True,
        high=1.0,
        traced=True,
    )
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
    prioritised: bool = hp(
        False, "proportional prioritised replay (Schaul et al. 2016; CleanRL: off)"
    )
    priority_alpha: float = hp(
        0.6, "priority exponent alpha (Schaul et al. 2016 proportional: 0.6)", low=0.0, traced=True
    )
    priority_beta_start: float = hp(
        0.4,
        "importance-weight exponent at step 0, annealed linearly to 1 (Schaul et al. 2016: 0.4)",
        low=0.0,
        high=1.0,
        traced=True,
    )
    priority_eps: float = hp(
        1e-6, "added to |TD error| so no window has priority 0", low=0.0, low_open=True
    )
    loss: str = hp("mse", "TD loss: 0.5 x^2 or Huber (CleanRL: mse)", choices=("mse", "huber"))
    huber_delta: float = hp(
        1.0,
        "Huber threshold (Mnih et al. 2015 error clipping: 1)",
        low=0.0,
        low_open=True,
        traced=True,
    )
    max_grad_norm: float = hp(
        0.0, "global gradient-norm clip, 0 = off (CleanRL dqn_jax: off)", low=0.0, traced=True
    )
    optimiser: str = hp("adam", "optimiser (CleanRL: adam)", choices=OPTIMISERS)
    adam_eps: float = hp(1e-8, "optimiser epsilon (optax default, CleanRL)", low=0.0, low_open=True)
    hidden: tuple[int, ...] = hp(
        (120, 84), "hidden widths of the Q network (CleanRL: 120, 84)", low=1
    )
    activation: str = hp(
        "relu", "hidden activation (CleanRL: relu)", choices=("tanh", "relu", "gelu", "swish")
    )

    def __post_init__(self) -> None:
        validate(self)
        if self.buffer_size % self.num_envs:
            raise ValueError(
                f"buffer_size ({self.buffer_size}) must be a multiple of num_envs ({self.num_envs})"
            )
        if self.buffer_size // self.num_envs < self.n_step:
            raise ValueError(
                f"buffer_size must hold at least n_step ({self.n_step}) rows per copy, i.e. be "
                f">= {self.n_step * self.num_envs}"
            )
        if self.total_steps < self.num_envs * self.train_frequency:
            raise ValueError(
                "total_steps must be >= num_envs * train_frequency "
                f"({self.num_envs * self.train_frequency})"
            )


PRESETS: dict[str, dict[str, Any]] = {
    # rejax 0.1.x configs/cartpole.yaml (dqn): 10 envs, buffer 50k, fill_buffer 5k, batch 100,
    # lr 1e-3, 5 gradient steps per vectorised env step, dueling (DuelingQNetwork), double
    # (ddqn), swish 64x64, eps 1 -> .05 over 50 %, gamma .99, 100k steps. rejax clips each
    # gradient element at max_grad_norm 10 (optax.clip); here the global norm is clipped at 10.
    # Its loss is optax.l2_loss = 0.5 x^2, as "mse" here. Target: rejax's later
    # configs/gymnax/cartpole.yaml polyak 0.98 once per iteration, i.e. tau .02 every 5
    # gradient steps.
    "rejax/CartPole": {
        "total_steps": 100_000,
        "num_envs": 10,
        "train_frequency": 1,
        "gradient_steps": 5,
        "buffer_size": 50_000,
        "batch_size": 100,
        "learning_starts": 5_000,
        "learning_rate": 1e-3,
        "max_grad_norm": 10.0,
        "target_update_period": 5,
        "tau": 0.02,
        "start_epsilon": 1.0,
        "end_epsilon": 0.05,
        "exploration_fraction": 0.5,
        "double_q": True,
        "dueling": True,
        "hidden": (64, 64),
        "activation": "swish",
    },
    # GridWorld-v0 (ML-Agents' GridWorld, planes obs): gamma .9 as ML-Agents' GridWorld.yaml;
    # the rest tuned here (ML-Agents has no DQN). Two hidden layers of 256 learn the goal-
    # conditioned task where one layer or 128 x 128 did not within 150k steps; n-step 3 and
    # prioritised replay each sped learning up. Measured (4 seeds, 200k steps): training return
    # of the last 10k steps (epsilon .05) 0.87-0.91; greedy evaluation 0.79-0.92.
    "rlkit/GridWorld": {
        "total_steps": 200_000,
        "num_envs": 10,
        "train_frequency": 1,
        "gradient_steps": 2,
        "buffer_size": 20_000,
        "batch_size": 64,
        "learning_starts": 1_000,
        "learning_rate": 3e-4,
        "gamma": 0.9,
        "target_update_period": 100,
        "exploration_fraction": 0.3,
        "double_q": True,
        "dueling": True,
        "n_step": 3,
        "prioritised": True,
        "hidden": (256, 256),
    },
}


class QNetwork(nn.Module):
    """MLP torso and Q head: observations [B, F] -> action values [B, num_actions]."""

    num_actions: int
    hidden: Sequence[int]
    activation: str = "relu"
    dueling: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return QHead(self.num_actions, self.dueling)(MLP(self.hidden, self.activation)(x))


@struct.dataclass
class QPolicy:
    """What `act` needs: Q-network weights and the exploration epsilon of a stochastic act."""

    params: Any
    epsilon: jax.Array


@struct.dataclass
class TrainState:
    """Everything DQN carries between iterations (leaves gain a seed axis under vmap)."""

    params: Any
    target_params: Any
    opt_state: Any
    buffer: Any  # rlkit.replay ReplayState or PrioritisedReplayState
    env: EnvCarry
    key: jax.Array
    env_steps: jax.Array  # environment steps so far, summed over copies
    grad_steps: jax.Array  # gradient steps applied (not counting discarded warm-up ones)
    hparams: dict[str, jax.Array]


# ---------------------------------------------------------------------------------------------
# The math, as pure functions of arrays (tested against rlax and hand-computed numbers)
# ---------------------------------------------------------------------------------------------


def _masked(q: jax.Array, mask: jax.Array | None) -> jax.Array:
    # The smallest finite float, not -inf, so that 0 * (a fully masked row) cannot make a NaN.
    return q if mask is None else jnp.where(mask, q, jnp.finfo(q.dtype).min)


def masked_argmax(q: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """argmax over allowed actions: q [..., A], mask bool [..., A] (True = allowed) -> int [...]."""
    return jnp.argmax(_masked(q, mask), axis=-1)


def masked_max(q: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """max over allowed actions: q [..., A], mask [..., A] -> [...]."""
    return jnp.max(_masked(q, mask), axis=-1)


def epsilon_greedy(
    q: jax.Array, mask: jax.Array | None, epsilon: jax.Array | float, key: jax.Array
) -> jax.Array:
    """With probability epsilon an action uniform over the allowed ones, else the masked argmax.

    q [B, A], mask [B, A] or None -> actions int32 [B].
    """
    explore_key, action_key = jax.random.split(key)
    uniform = Categorical(jnp.zeros_like(q), mask).sample(action_key)
    explore = jax.random.uniform(explore_key, q.shape[:-1]) < epsilon
    return jnp.where(explore, uniform, masked_argmax(q, mask)).astype(jnp.int32)


def linear_epsilon(
    env_steps: jax.Array, start: jax.Array, end: jax.Array, fraction: jax.Array, total_steps: int
) -> jax.Array:
    """start -> end linearly over the first `fraction * total_steps` steps, then end (CleanRL)."""
    progress = jnp.clip(env_steps / (fraction * total_steps), 0.0, 1.0)
    return start + (end - start) * progress


def bootstrap_index(terminated: jax.Array, truncated: jax.Array) -> jax.Array:
    """Where each window's target bootstraps: its first episode end, else its last step.

    terminated, truncated: bool [B, n] -> int [B] in [0, n). (At a terminal step the bootstrap
    value is multiplied by 0; the index only says which next observation to evaluate.)
    """
    ends = (terminated | truncated).at[:, -1].set(True)
    return jnp.argmax(ends, axis=1)


def bootstrap_values(
    q_next_target: jax.Array,
    q_next_online: jax.Array | None,
    next_mask: jax.Array | None,
    double_q: bool,
) -> jax.Array:
    """V'(s') [B] from Q values at the bootstrap observations [B, A].

    DQN: max_{a allowed} Q_target(s', a). Double DQN: Q_target(s', argmax_{a allowed} Q(s', a)).
    """
    if not double_q:
        return masked_max(q_next_target, next_mask)
    greedy = masked_argmax(q_next_online, next_mask)
    return jnp.take_along_axis(q_next_target, greedy[:, None], axis=1)[:, 0]


def window_targets(
    rewards: jax.Array,
    bootstrap: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: jax.Array | float,
) -> jax.Array:
    """n-step targets y [B] of windows rewards/terminated/truncated [B, n]:

        y = sum_{k<m} gamma^k r_k + gamma^m (1 - term_{m-1}) bootstrap,

    m - 1 = bootstrap_index (the first episode end, else n - 1). `bootstrap` [B] is V'(s'_{m-1}).
    """
    n = rewards.shape[1]
    next_values = jnp.broadcast_to(bootstrap[None, :], (n, bootstrap.shape[0]))
    return n_step_targets(rewards.T, next_values, terminated.T, truncated.T, gamma, n)[0]


def td_loss(
    td_errors: jax.Array, weights: jax.Array, kind: str, huber_delta: jax.Array | float = 1.0
) -> jax.Array:
    """mean_i w_i l(td_i), l(x) = 0.5 x^2 ("mse") or Huber: 0.5 x^2 if |x| <= d else
    d (|x| - d / 2) ("huber")."""
    if kind == "mse":
        per_sample = 0.5 * td_errors**2
    else:
        abs_error = jnp.abs(td_errors)
        quadratic = jnp.minimum(abs_error, huber_delta)
        per_sample = 0.5 * quadratic**2 + huber_delta * (abs_error - quadratic)
    return jnp.mean(weights * per_sample)


# ---------------------------------------------------------------------------------------------
# The agent
# ---------------------------------------------------------------------------------------------


def make(config: Config, env: Any, env_params: Any) -> Algorithm:
    """Build DQN for `env` (a single environment, or a vectorised one with config.num_envs)."""
    action_space = env.action_space(env_params)
    if not isinstance(action_space, Discrete):
        raise ValueError(f"DQN needs a Discrete action space, got {type(action_space).__name__}")
    num_actions = int(action_space.n)
    venv = as_vector_env(env, config.num_envs)
    network = QNetwork(num_actions, config.hidden, config.activation, config.dueling)
    tx = make_optimiser(config.optimiser, eps=config.adam_eps)
    steps_per_update = config.num_envs * config.train_frequency
    num_updates = config.total_steps // steps_per_update
    replay_args = dict(
        max_length=config.buffer_size // config.num_envs,
        add_batch_size=config.num_envs,
        sample_batch_size=config.batch_size,
        sequence_length=config.n_step,
    )
    if config.prioritised:
        replay = PrioritisedReplay(**replay_args, priority_eps=config.priority_eps)
    else:
        # Uniform windows for all of an iteration's gradient steps are drawn in one call.
        replay_args["sample_batch_size"] *= config.gradient_steps
        replay = UniformReplay(**replay_args)
    # Target updates fall on iteration ends when the period is a multiple of gradient_steps:
    # then they are applied once per iteration, outside the loop of gradient steps.
    sync_once_per_iteration = config.target_update_period % config.gradient_steps == 0

    def initial_mask(key: jax.Array) -> jax.Array | None:
        return action_mask(venv, reset_envs(venv, env_params, key).env_state, env_params)

    has_mask = jax.eval_shape(initial_mask, jax.random.PRNGKey(0)) is not None

    def q_values(params: Any, obs: Any) -> jax.Array:
        return network.apply(params, flatten_obs(obs))

    def act(
        policy: QPolicy,
        obs: Any,
        key: jax.Array,
        deterministic: bool = False,
        action_mask: jax.Array | None = None,
    ) -> jax.Array:
        q = q_values(policy.params, obs)
        if deterministic:
            return masked_argmax(q, action_mask).astype(jnp.int32)
        return epsilon_greedy(q, action_mask, policy.epsilon, key)

    def policy_of(state: TrainState) -> QPolicy:
        return QPolicy(state.params, state.hparams["end_epsilon"])

    def example_item(obs_features: int) -> dict[str, jax.Array]:
        item = {
            "obs": jnp.zeros((obs_features,), jnp.float32),
            "action": jnp.zeros((), jnp.int32),
            "reward": jnp.zeros((), jnp.float32),
            "terminated": jnp.zeros((), bool),
            "truncated": jnp.zeros((), bool),
            "next_obs": jnp.zeros((obs_features,), jnp.float32),
        }
        if has_mask:
            item["next_mask"] = jnp.ones((num_actions,), bool)
        return item

    def init(key: jax.Array, hparams: dict[str, jax.Array]) -> TrainState:
        net_key, env_key, key = jax.random.split(key, 3)
        carry = reset_envs(venv, env_params, env_key)
        x = flatten_obs(carry.obs)
        params = network.init(net_key, x)
        return TrainState(
            params=params,
            target_params=params,
            opt_state=tx.init(params),
            buffer=replay.init(example_item(x.shape[-1])),
            env=carry,
            key=key,
            env_steps=jnp.zeros((), jnp.int32),
            grad_steps=jnp.zeros((), jnp.int32),
            hparams=hparams,
        )

    def transitions(traj: Any) -> dict[str, jax.Array]:
        """Replay items [T, N, ...] of a rollout, with the mask of each next observation."""
        items = {
            "obs": flatten_obs(traj.obs, batch_ndim=2),
            "action": traj.action.astype(jnp.int32),
            "reward": traj.reward,
            "terminated": traj.terminated,
            "truncated": traj.truncated,
            "next_obs": flatten_obs(traj.next_obs, batch_ndim=2),
        }
        if has_mask:
            items["next_mask"] = traj.next_action_mask
        return items

    def add_row(buffer: Any, row: dict[str, jax.Array], alpha: jax.Array) -> Any:
        if config.prioritised:
            return replay.add(buffer, row, alpha)
        return replay.add(buffer, row)

    def loss_fn(params: Any, batch: dict[str, jax.Array], targets: jax.Array, weights, h):
        q = network.apply(params, batch["obs"][:, 0])
        q_taken = jnp.take_along_axis(q, batch["action"][:, :1], axis=1)[:, 0]
        td = q_taken - targets
        return td_loss(td, weights, config.loss, h["huber_delta"]), (td, q_taken)

    def sync_target(params: Any, target_params: Any, grad_steps: jax.Array, tau: jax.Array):
        """theta' <- tau theta + (1 - tau) theta' when grad_steps is a multiple of the period."""
        tau = jnp.where(grad_steps % config.target_update_period == 0, tau, 0.0)
        return jax.tree.map(lambda p, t: tau * p + (1.0 - tau) * t, params, target_params)

    def gradient_step(carry: tuple, batch: dict, weights: jax.Array, h: dict) -> tuple:
        """One gradient step on windows `batch` (leaves [B, n, ...]); returns the new
        (params, target_params, opt_state, grad_steps), the TD errors [B] and statistics."""
        params, target_params, opt_state, grad_steps = carry

        # Targets: bootstrap from the next observation of each window's first episode end.
        index = bootstrap_index(batch["terminated"], batch["truncated"])[:, None]
        at_index = lambda x: jnp.take_along_axis(  # noqa: E731
            x, index.reshape(index.shape + (1,) * (x.ndim - 2)), axis=1
        )[:, 0]
        next_obs = at_index(batch["next_obs"])
        next_mask = at_index(batch["next_mask"]) if has_mask else None
        q_next_online = network.apply(params, next_obs) if config.double_q else None
        bootstrap = bootstrap_values(
            network.apply(target_params, next_obs), q_next_online, next_mask, config.double_q
        )
        targets = window_targets(
            batch["reward"], bootstrap, batch["terminated"], batch["truncated"], h["gamma"]
        )
        targets = jax.lax.stop_gradient(targets)

        (loss, (td, q_taken)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, batch, targets, weights, h
        )
        params, opt_state, grad_norm = apply_gradients(
            tx, params, grads, opt_state, h["learning_rate"], h["max_grad_norm"]
        )
        grad_steps = grad_steps + 1
        if not sync_once_per_iteration:
            target_params = sync_target(params, target_params, grad_steps, h["tau"])
        stats = {"loss": loss, "q_mean": q_taken.mean(), "grad_norm": grad_norm}
        return (params, target_params, opt_state, grad_steps), td, stats

    def learn(buffer: Any, carry: tuple, key: jax.Array, beta: jax.Array, h: dict) -> tuple:
        """`gradient_steps` gradient steps; returns the new learner carry, buffer and stats."""
        if not config.prioritised:
            # The buffer does not change while learning: draw every step's windows at once.
            sample = replay.sample(buffer, key)
            batches = jax.tree.map(
                lambda x: x.reshape(config.gradient_steps, config.batch_size, *x.shape[1:]),
                sample.items,
            )
            weights = jnp.ones((config.batch_size,), jnp.float32)
            carry, stats = jax.lax.scan(
                lambda c, batch: gradient_step(c, batch, weights, h)[::2], carry, batches
            )
            return carry, buffer, stats

        def prioritised_step(c: tuple, step_key: jax.Array) -> tuple:
            carry, buffer = c
            sample = replay.sample(buffer, step_key, beta)
            carry, td, stats = gradient_step(carry, sample.items, sample.weights, h)
            buffer = replay.update_priorities(
                buffer, sample.time_index, sample.lane_index, jnp.abs(td), h["priority_alpha"]
            )
            return (carry, buffer), stats

        keys = jax.random.split(key, config.gradient_steps)
        (carry, buffer), stats = jax.lax.scan(prioritised_step, (carry, buffer), keys)
        return carry, buffer, stats

    def update(state: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
        h = state.hparams
        key, rollout_key, learn_key = jax.random.split(state.key, 3)
        epsilon = linear_epsilon(
            state.env_steps,
            h["start_epsilon"],
            h["end_epsilon"],
            h["exploration_fraction"],
            config.total_steps,
        )

        # Collect `train_frequency` epsilon-greedy steps and add them to the buffer row by row.
        def behave(obs: Any, mask: jax.Array | None, key: jax.Array) -> tuple:
            return epsilon_greedy(q_values(state.params, obs), mask, epsilon, key), {}

        carry, traj = rollout(
            venv, env_params, behave, state.env, rollout_key, config.train_frequency
        )
        buffer, _ = jax.lax.scan(
            lambda b, row: (add_row(b, row, h["priority_alpha"]), None),
            state.buffer,
            transitions(traj),
        )
        env_steps = state.env_steps + steps_per_update

        # Learn: a fixed number of gradient steps, discarded before learning_starts.
        learning = (env_steps >= config.learning_starts) & replay.can_sample(buffer)
        beta = beta_schedule(env_steps, h["priority_beta_start"], config.total_steps)
        before = (state.params, state.target_params, state.opt_state, state.grad_steps)
        after, learnt_buffer, stats = learn(buffer, before, learn_key, beta, h)
        if sync_once_per_iteration:
            params, target_params, opt_state, grad_steps = after
            target_params = sync_target(params, target_params, grad_steps, h["tau"])
            after = (params, target_params, opt_state, grad_steps)
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(learning, a, b), new, old)  # noqa: E731
        params, target_params, opt_state, grad_steps = keep(after, before)
        if config.prioritised:
            buffer = buffer.replace(
                **keep(
                    {k: getattr(learnt_buffer, k) for k in PRIORITY_FIELDS},
                    {k: getattr(buffer, k) for k in PRIORITY_FIELDS},
                )
            )

        nan_if_warmup = jnp.where(learning, 1.0, jnp.nan)
        metrics = {
            **{name: value.mean() * nan_if_warmup for name, value in stats.items()},
            **episode_metrics(traj.episode),
            "epsilon": epsilon,
        }
        if config.prioritised:
            metrics["beta"] = beta
        new_state = TrainState(
            params=params,
            target_params=target_params,
            opt_state=opt_state,
            buffer=buffer,
            env=carry,
            key=key,
            env_steps=env_steps,
            grad_steps=grad_steps,
            hparams=h,
        )
        return new_state, metrics

    return Algorithm(
        init=init,
        update=update,
        act=act,
        policy_params=policy_of,
        hparams=hparams_of(config),
        steps_per_update=steps_per_update,
        num_updates=num_updates,
        config=config,
        env=env,
        env_params=env_params,
    )
