"""Soft Actor-Critic: continuous (Haarnoja et al. 2018) and discrete (Christodoulou 2019).

`init` fills the replay buffer with `learning_starts` environment steps of uniform random
actions (SB3's learning_starts, ML-Agents' buffer_init_steps). Then one iteration (`update`)
steps `num_envs` copies `train_freq` times with the stochastic policy, appends the steps to the
uniform replay buffer and takes `gradient_steps` gradient steps, each on a fresh batch
(s, a, r, d, s'):

    y          = r + gamma (1 - terminated) V_targ(s')                       (soft Q target)
    V_targ(s') = min_i Q_targ_i(s', a') - alpha log pi(a'|s'),  a' ~ pi(.|s')  (continuous)
               = sum_a' pi(a'|s') [min_i Q_targ_i(s', a') - alpha log pi(a'|s')] (discrete)
    L_Q        = 1/2 sum_i E[(Q_i(s, a) - y)^2]
    L_pi       = E[alpha log pi(a~|s) - min_i Q_i(s, a~)],  a~ ~ pi(.|s) reparameterised
               = E[sum_a pi(a|s) (alpha log pi(a|s) - min_i Q_i(s, a))]      (discrete)
    L_alpha    = log(alpha) E[H(pi(.|s)) - H_target]      (H: -log pi(a~|s), or the exact entropy)
    theta_targ <- (1 - tau) theta_targ + tau theta

`terminated` masks the bootstrap only on a real terminal state: s' is the pre-reset next
observation, so a time-limit cut bootstraps from the state the episode was cut in. The steps
follow SB3's SAC.train: temperature alpha read before the step, critic step, actor step against
the updated critics, temperature step, Polyak averaging (every gradient step).

Continuous actions: a tanh-squashed Gaussian whose mean and log-std are both outputs of the
actor; the log-std is hard-clipped to [-20, 2] (SB3 sac/policies.py LOG_STD_MIN/LOG_STD_MAX;
ML-Agents torch/distributions.py clamps its conditional log-sigma to the same range). The
critics and the buffer see actions in [-1, 1]; the environment gets them scaled affinely to the
Box bounds. Target entropy -dim(A) * continuous_target_entropy_scale (ML-Agents: 1.0).

Discrete actions: a categorical actor and Q heads over all actions; expectations over the
policy replace sampling. Action masks are honoured (masked actions get probability 0 and
drop out of every expectation). Target entropy discrete_target_entropy_scale * log(num_actions)
(ML-Agents: 0.2). The mask of s' is the mask of the next observation; where the episode ended at
s' its mask is not in the transition (the environment has already reset), so all actions count
as allowed there: only truncated steps bootstrap from it.

Schedule. Every iteration takes exactly `num_envs * train_freq` environment steps and
`gradient_steps` gradient steps, so it compiles to a static program (no `cond` that vmap would
turn into both branches, no gradient steps computed and thrown away): the warm-up lives in
`init`, whose ceil(learning_starts / num_envs) steps per copy count towards `total_steps`, so
`num_updates = (total_steps - warm-up steps) // (num_envs * train_freq)`. ML-Agents'
`steps_per_update` (agent steps per gradient step) maps onto this as
gradient_steps = num_envs * train_freq / steps_per_update; setting `steps_per_update` > 0
derives `gradient_steps` that way (it must come out whole).

Differences from ML-Agents' SAC: ML-Agents keeps a state-value network and its target (SAC v1);
here the target bootstraps from the twin target critics (SAC v2, as SB3, CleanRL and rejax).
ML-Agents updates whenever `steps_per_update` agent steps have accumulated; here the ratio is
met exactly once per iteration.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from rlkit.algorithm import Algorithm
from rlkit.config import hp, hparams_of, validate
from rlkit.distributions import Categorical, TanhGaussian
from rlkit.env import action_mask
from rlkit.networks import MLP, DoubleQ, QHead, flatten_obs, orthogonal
from rlkit.normalization import RunningStats
from rlkit.optim import apply_gradients, make_optimiser
from rlkit.policies import PolicyParams, normalized_input
from rlkit.replay import ReplayState, UniformReplay
from rlkit.rollout import EnvCarry, Transition, reset_envs, rollout
from rlkit.spaces import Box, Discrete
from rlkit.wrappers import as_vector_env, episode_metrics

__all__ = [
    "LOG_STD_MAX",
    "LOG_STD_MIN",
    "PRESETS",
    "Config",
    "TrainState",
    "build_networks",
    "critic_loss",
    "expected_actor_loss",
    "expected_soft_value",
    "make",
    "replay_items",
    "sampled_actor_loss",
    "sampled_soft_value",
    "soft_q_target",
    "temperature_loss",
]

# Hard clip of the actor's log-std (SB3 sac/policies.py; ML-Agents torch/distributions.py).
LOG_STD_MIN = -20.0
LOG_STD_MAX = 2.0


@dataclasses.dataclass(frozen=True)
class Config:
    """SAC hyperparameters. Defaults: SB3 rl-zoo Pendulum-v1 (PAPER-TARGETS #11)."""

    total_steps: int = hp(
        20_000, "environment steps per seed, summed over copies (zoo: 20k)", low=1
    )
    num_envs: int = hp(1, "vectorised environment copies (zoo: 1)", low=1)
    train_freq: int = hp(1, "steps per copy per iteration (SB3 train_freq: 1)", low=1)
    gradient_steps: int = hp(1, "gradient steps per iteration (SB3 gradient_steps: 1)", low=1)
    steps_per_update: float = hp(
        0.0,
        "ML-Agents steps_per_update: agent steps per gradient step; > 0 sets gradient_steps = "
        "num_envs * train_freq / steps_per_update (0 = use gradient_steps)",
        low=0.0,
    )
    learning_starts: int = hp(
        100,
        "env steps (summed over copies) of uniform random actions that fill the buffer before "
        "learning (SB3 learning_starts: 100; ML-Agents buffer_init_steps)",
        low=0,
    )
    buffer_size: int = hp(
        20_000, "replay capacity in transitions (zoo: 1e6, i.e. all 20k steps)", low=1
    )
    batch_size: int = hp(256, "transitions per gradient step (SB3: 256)", low=1)
    learning_rate: float = hp(
        1e-3,
        "Adam step size of actor, critics and temperature (zoo Pendulum: 1e-3)",
        low=0.0,
        traced=True,
    )
    gamma: float = hp(0.99, "discount (SB3: 0.99)", low=0.0, high=1.0, traced=True)
    tau: float = hp(
        0.005, "Polyak rate of the target critics (SB3: 0.005)", low=0.0, high=1.0, traced=True
    )
    autotune_alpha: bool = hp(True, "learn the temperature towards the target entropy (SB3 'auto')")
    alpha: float = hp(
        1.0,
        "initial temperature when autotuned, else the fixed one (SB3 'auto' starts at 1.0; "
        "ML-Agents init_entcoef: 1.0)",
        low=0.0,
        low_open=True,
        traced=True,
    )
    continuous_target_entropy_scale: float = hp(
        1.0,
        "continuous target entropy = -dim(A) * this (ML-Agents: 1.0, SB3: -dim(A))",
        low=0.0,
        traced=True,
    )
    discrete_target_entropy_scale: float = hp(
        0.2,
        "discrete target entropy = this * log(num_actions) (ML-Agents: 0.2)",
        low=0.0,
        traced=True,
    )
    normalize_obs: bool = hp(
        False, "normalise observations by running mean/std (ML-Agents `normalize`)"
    )
    adam_eps: float = hp(1e-8, "Adam epsilon (PyTorch default, as SB3)", low=0.0, low_open=True)
    hidden: tuple[int, ...] = hp(
        (256, 256), "hidden widths of actor and critics (SB3: 256x256)", low=1
    )
    activation: str = hp(
        "relu", "hidden activation (SB3: relu)", choices=("tanh", "relu", "gelu", "swish")
    )

    def __post_init__(self) -> None:
        validate(self)
        if self.buffer_size < self.num_envs:
            raise ValueError(f"buffer_size must be >= num_envs ({self.num_envs})")
        per_iteration = self.num_envs * self.train_freq
        if self.steps_per_update > 0:
            ratio = per_iteration / self.steps_per_update
            if ratio < 1 or abs(ratio - round(ratio)) > 1e-6:
                raise ValueError(
                    f"steps_per_update must divide num_envs * train_freq ({per_iteration}) into "
                    f"a whole number >= 1 of gradient steps, got {self.steps_per_update}"
                )
        after_warmup = self.total_steps - self.warmup_steps_per_env * self.num_envs
        if after_warmup < per_iteration:
            raise ValueError(
                f"total_steps must leave at least one iteration ({per_iteration} steps) after the "
                f"{self.total_steps - after_warmup} warm-up steps (learning_starts)"
            )

    @property
    def warmup_steps_per_env(self) -> int:
        """Random-action steps per copy in `init`: ceil(learning_starts / num_envs)."""
        return -(-self.learning_starts // self.num_envs)

    @property
    def updates_per_iteration(self) -> int:
        """Gradient steps per iteration (from steps_per_update when it is set)."""
        if self.steps_per_update > 0:
            return round(self.num_envs * self.train_freq / self.steps_per_update)
        return self.gradient_steps


def _mlagents(**overrides: Any) -> dict[str, Any]:
    """ML-Agents SAC settings shared by its configs (release_19 settings.py and config/sac)."""
    return {
        "learning_rate": 3e-4,
        "tau": 0.005,
        "gamma": 0.99,
        "steps_per_update": 10.0,
        "learning_starts": 0,
        "activation": "swish",  # ML-Agents' LinearEncoder hidden layers use Swish
        **overrides,
    }


# ML-Agents release_19 config/sac/*.yaml (shared/reference/ML-AGENTS.md §3). train_freq is chosen
# so that num_envs * train_freq / steps_per_update is whole: 3DBall 12 * 5 / 10 = 6, GridWorld
# 9 * 10 / 10 = 9 gradient steps per iteration.
PRESETS: dict[str, dict[str, Any]] = {
    # 3DBall: 12 agents, batch 64, buffer 200k, init_entcoef .5, normalize, 2x64, 200k steps.
    "mlagents/3DBall": _mlagents(
        num_envs=12,
        train_freq=5,
        batch_size=64,
        buffer_size=200_000,
        alpha=0.5,
        normalize_obs=True,
        hidden=(64, 64),
        total_steps=200_000,
    ),
    # 3DBallHard: batch 256, buffer 500k, init_entcoef 1.0, normalize, 2x128, 500k steps.
    "mlagents/3DBallHard": _mlagents(
        num_envs=12,
        train_freq=5,
        batch_size=256,
        buffer_size=500_000,
        alpha=1.0,
        normalize_obs=True,
        hidden=(128, 128),
        total_steps=500_000,
    ),
    # GridWorld: 9 agents, batch 128, buffer 50k, buffer_init_steps 1000, init_entcoef .5,
    # gamma .9, 1x128, no normalize, 500k steps.
    "mlagents/GridWorld": _mlagents(
        num_envs=9,
        train_freq=10,
        batch_size=128,
        buffer_size=50_000,
        learning_starts=1000,
        alpha=0.5,
        gamma=0.9,
        hidden=(128,),
        total_steps=500_000,
    ),
    # SB3 rl-zoo hyperparams/sac.yml Pendulum-v1 (the defaults, spelled out).
    "zoo/Pendulum": {
        "total_steps": 20_000,
        "num_envs": 1,
        "learning_rate": 1e-3,
        "buffer_size": 20_000,
        "batch_size": 256,
        "tau": 0.005,
        "gamma": 0.99,
        "learning_starts": 100,
        "train_freq": 1,
        "gradient_steps": 1,
        "hidden": (256, 256),
        "activation": "relu",
    },
    # rejax 0.1.3 configs/gymnax/pendulum.yaml (sac): 10k steps, 1 env, buffer 10k,
    # fill_buffer 256, batch 256, lr .01, polyak .98 (tau .02), swish 2x64 (rejax's default
    # widths), normalised observations. benchmarks/sac.py runs it for 50k steps.
    "rejax/Pendulum": {
        "total_steps": 10_000,
        "num_envs": 1,
        "buffer_size": 10_000,
        "learning_starts": 256,
        "batch_size": 256,
        "learning_rate": 1e-2,
        "tau": 0.02,
        "gamma": 0.99,
        "train_freq": 1,
        "gradient_steps": 1,
        "hidden": (64, 64),
        "activation": "swish",
        "normalize_obs": True,
    },
}


# ---------------------------------------------------------------------------------------------
# The losses, as pure functions of arrays (B: batch, K: critics, A: actions)
# ---------------------------------------------------------------------------------------------


def sampled_soft_value(q_min: jax.Array, log_prob: jax.Array, alpha: jax.Array) -> jax.Array:
    """V(s) = min_i Q_i(s, a) - alpha log pi(a|s) for one sampled a ~ pi: [B] -> [B]."""
    return q_min - alpha * log_prob


def expected_soft_value(
    probs: jax.Array, log_probs: jax.Array, q_min: jax.Array, alpha: jax.Array
) -> jax.Array:
    """V(s) = sum_a pi(a|s) (min_i Q_i(s, a) - alpha log pi(a|s)): [B, A] -> [B].

    Actions with probability 0 (masked) contribute 0 whatever their Q or log-probability (their
    log-probability is replaced by 0 first, so no 0 * inf appears in values or gradients).
    """
    safe_log_probs = jnp.where(probs > 0, log_probs, 0.0)
    return jnp.sum(probs * (q_min - alpha * safe_log_probs), axis=-1)


def soft_q_target(
    reward: jax.Array, terminated: jax.Array, next_value: jax.Array, gamma: jax.Array
) -> jax.Array:
    """y = r + gamma (1 - terminated) V(s'): [B]. Truncated steps bootstrap (terminated = 0)."""
    return reward + gamma * (1.0 - terminated.astype(reward.dtype)) * next_value


def critic_loss(q_values: jax.Array, target: jax.Array) -> jax.Array:
    """1/2 sum_i mean_b (Q_i(s_b, a_b) - y_b)^2 over critics [K, B] and targets [B] (SB3)."""
    return 0.5 * jnp.sum(jnp.mean((q_values - target) ** 2, axis=-1))


def sampled_actor_loss(log_prob: jax.Array, q_min: jax.Array, alpha: jax.Array) -> jax.Array:
    """mean_b [alpha log pi(a_b|s_b) - min_i Q_i(s_b, a_b)], a_b ~ pi reparameterised: [B] -> []."""
    return jnp.mean(alpha * log_prob - q_min)


def expected_actor_loss(
    probs: jax.Array, log_probs: jax.Array, q_min: jax.Array, alpha: jax.Array
) -> jax.Array:
    """mean_b sum_a pi(a|s_b) (alpha log pi(a|s_b) - min_i Q_i(s_b, a)): [B, A] -> []."""
    return -jnp.mean(expected_soft_value(probs, log_probs, q_min, alpha))


def temperature_loss(
    log_alpha: jax.Array, entropy: jax.Array, target_entropy: jax.Array
) -> jax.Array:
    """log(alpha) mean_b (H_b - H_target): [B] -> [].

    Its gradient lowers alpha while the policy's entropy is above the target and raises it
    below. The entropy is -log pi(a~|s) of a sample (continuous) or the exact entropy
    (discrete); gradients do not flow into it. This is the log-alpha form of SB3 and ML-Agents
    (-log_alpha * (log pi + H_target)); Haarnoja et al. write it with alpha itself.
    """
    return log_alpha * jnp.mean(jax.lax.stop_gradient(entropy) - target_entropy)


# ---------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------


class SquashedGaussianActor(nn.Module):
    """x [B, F] -> (mean [B, d], log_std [B, d]) of a tanh-Gaussian; log_std clipped."""

    action_dim: int
    hidden: Sequence[int]
    activation: str

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        features = MLP(self.hidden, self.activation)(x)
        out = nn.Dense(2 * self.action_dim, kernel_init=orthogonal(0.01))(features)
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


class CategoricalActor(nn.Module):
    """x [B, F] -> logits [B, num_actions]."""

    num_actions: int
    hidden: Sequence[int]
    activation: str

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        features = MLP(self.hidden, self.activation)(x)
        return nn.Dense(self.num_actions, kernel_init=orthogonal(0.01))(features)


class ContinuousQ(nn.Module):
    """(x [B, F], a [B, d]) -> Q(s, a) [B]."""

    hidden: Sequence[int]
    activation: str

    @nn.compact
    def __call__(self, x: jax.Array, action: jax.Array) -> jax.Array:
        features = MLP(self.hidden, self.activation)(jnp.concatenate([x, action], axis=-1))
        return nn.Dense(1, kernel_init=orthogonal(1.0))(features)[..., 0]


class DiscreteQ(nn.Module):
    """x [B, F] -> Q(s, .) [B, num_actions]."""

    num_actions: int
    hidden: Sequence[int]
    activation: str

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return QHead(self.num_actions)(MLP(self.hidden, self.activation)(x))


# ---------------------------------------------------------------------------------------------
# Training state and the algorithm
# ---------------------------------------------------------------------------------------------


@struct.dataclass
class Learner:
    """What a gradient step changes: weights, the temperature and their optimiser states."""

    actor: Any
    critic: Any  # twin critics, leaves [2, ...]
    target_critic: Any
    log_alpha: jax.Array
    actor_opt: Any
    critic_opt: Any
    alpha_opt: Any


@struct.dataclass
class TrainState:
    """Everything SAC carries between iterations (leaves gain a seed axis under vmap)."""

    learner: Learner
    obs_stats: RunningStats
    replay: ReplayState
    env: EnvCarry
    key: jax.Array
    step: jax.Array  # iterations done
    hparams: dict[str, jax.Array]


def build_networks(config: Config, action_space: Any) -> tuple[nn.Module, nn.Module]:
    """(actor, twin critics) for an action space.

    Box(d):      actor x -> (mean, log_std) [B, d];  critics (x, a in [-1, 1]^d) -> Q [2, B].
    Discrete(n): actor x -> logits [B, n];           critics x -> Q [2, B, n].
    """
    net = {"hidden": config.hidden, "activation": config.activation}
    if isinstance(action_space, Discrete):
        n = int(action_space.n)
        return CategoricalActor(n, **net), DoubleQ(DiscreteQ, {"num_actions": n, **net})
    if isinstance(action_space, Box):
        d = int(np.prod(action_space.shape))
        return SquashedGaussianActor(d, **net), DoubleQ(ContinuousQ, net)
    raise TypeError(f"SAC supports Discrete and Box actions, not {type(action_space).__name__}")


def make(config: Config, env: Any, env_params: Any) -> Algorithm:
    """Build SAC for `env` (a single environment, or a vectorised one with config.num_envs)."""
    venv = as_vector_env(env, config.num_envs)
    action_space = env.action_space(env_params)
    actor, critic = build_networks(config, action_space)
    discrete = isinstance(action_space, Discrete)
    if discrete:
        num_actions = int(action_space.n)
    else:
        action_shape = tuple(action_space.shape)
        action_dim = int(np.prod(action_shape))
        low = np.broadcast_to(np.asarray(action_space.low, np.float32), action_shape).ravel()
        high = np.broadcast_to(np.asarray(action_space.high, np.float32), action_shape).ravel()
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ValueError("SAC needs a Box action space with finite bounds")

    tx = make_optimiser("adam", eps=config.adam_eps)
    steps_per_iteration = config.num_envs * config.train_freq
    gradient_steps = config.updates_per_iteration
    warmup_steps = config.warmup_steps_per_env
    num_updates = (config.total_steps - warmup_steps * config.num_envs) // steps_per_iteration
    replay = UniformReplay(
        max_length=max(config.buffer_size // config.num_envs, 1),
        add_batch_size=config.num_envs,
        sample_batch_size=config.batch_size,
    )

    def to_env_action(unit_action: jax.Array) -> jax.Array:
        """[-1, 1]^d -> the Box, affinely; [B, d] -> [B, *shape]."""
        scaled = low + 0.5 * (unit_action + 1.0) * (high - low)
        return scaled.reshape((*unit_action.shape[:-1], *action_shape))

    def to_unit_action(env_action: jax.Array) -> jax.Array:
        """The inverse of `to_env_action`: [B, *shape] -> [B, d] in [-1, 1]."""
        lead = env_action.shape[: env_action.ndim - len(action_shape)]
        flat = env_action.reshape((*lead, action_dim))
        return 2.0 * (flat - low) / (high - low) - 1.0

    def policy_of(state: TrainState) -> PolicyParams:
        return PolicyParams(state.learner.actor, state.obs_stats, config.normalize_obs)

    def act(
        policy: PolicyParams,
        obs: Any,
        key: jax.Array,
        deterministic: bool = False,
        action_mask: jax.Array | None = None,
    ) -> jax.Array:
        out = actor.apply(policy.params, normalized_input(policy, obs))
        if discrete:
            dist = Categorical(out, action_mask)
            return dist.mode() if deterministic else dist.sample(key)
        dist = TanhGaussian(*out)
        return to_env_action(dist.mode() if deterministic else dist.sample(key))

    def random_action(obs: Any, mask: jax.Array | None, key: jax.Array) -> jax.Array:
        """Uniform over the allowed actions, or over the Box."""
        batch = jax.tree.leaves(obs)[0].shape[0]
        if discrete:
            logits = jnp.zeros((batch, num_actions), jnp.float32)
            return Categorical(logits, mask).sample(key)
        unit = jax.random.uniform(key, (batch, action_dim), jnp.float32, -1.0, 1.0)
        return to_env_action(unit)

    def target_entropy(h: dict[str, jax.Array]) -> jax.Array:
        if discrete:
            return h["discrete_target_entropy_scale"] * math.log(num_actions)
        return -h["continuous_target_entropy_scale"] * action_dim

    def example_item(x: jax.Array, mask: jax.Array | None) -> dict[str, jax.Array]:
        """One replay item (no batch axes), for the buffer's shapes and dtypes."""
        item = {
            "obs": x[0],
            "action": jnp.zeros((), jnp.int32) if discrete else jnp.zeros((action_dim,)),
            "reward": jnp.zeros((), jnp.float32),
            "terminated": jnp.zeros((), jnp.bool_),
            "next_obs": x[0],
        }
        if mask is not None:
            item.update(mask=mask[0], next_mask=mask[0])
        return item

    def collect(
        behave: Any,
        carry: EnvCarry,
        buffer: ReplayState,
        obs_stats: RunningStats,
        key: jax.Array,
        num_steps: int,
    ) -> tuple[EnvCarry, ReplayState, RunningStats, Transition]:
        """`num_steps` steps of every copy with `behave(obs, mask, key) -> action`, appended to
        the buffer (and to the observation statistics when normalising)."""
        policy = lambda obs, mask, key: (behave(obs, mask, key), {})  # noqa: E731
        carry, traj = rollout(venv, env_params, policy, carry, key, num_steps)
        items = replay_items(traj, None if discrete else to_unit_action)
        buffer, _ = jax.lax.scan(lambda b, row: (replay.add(b, row), None), buffer, items)
        if config.normalize_obs:
            obs_stats = obs_stats.update(items["obs"])
        return carry, buffer, obs_stats, traj

    def init(key: jax.Array, hparams: dict[str, jax.Array]) -> TrainState:
        actor_key, critic_key, env_key, key = jax.random.split(key, 4)
        carry = reset_envs(venv, env_params, env_key)
        x = flatten_obs(carry.obs)
        actor_params = actor.init(actor_key, x)
        if discrete:
            critic_params = critic.init(critic_key, x)
        else:
            critic_params = critic.init(critic_key, x, jnp.zeros((x.shape[0], action_dim)))
        log_alpha = jnp.log(hparams["alpha"]).astype(jnp.float32)
        buffer = replay.init(example_item(x, action_mask(venv, carry.env_state, env_params)))
        obs_stats = RunningStats.create(x.shape[1:])
        if warmup_steps > 0:  # uniform random actions fill the buffer before any learning
            warmup_key, key = jax.random.split(key)
            carry, buffer, obs_stats, _ = collect(
                random_action, carry, buffer, obs_stats, warmup_key, warmup_steps
            )
        learner = Learner(
            actor=actor_params,
            critic=critic_params,
            target_critic=critic_params,
            log_alpha=log_alpha,
            actor_opt=tx.init(actor_params),
            critic_opt=tx.init(critic_params),
            alpha_opt=tx.init(log_alpha),
        )
        return TrainState(
            learner=learner,
            obs_stats=obs_stats,
            replay=buffer,
            env=carry,
            key=key,
            step=jnp.zeros((), jnp.int32),
            hparams=hparams,
        )

    # -- one gradient step ----------------------------------------------------------------------

    def next_state_value(learner: Learner, batch: dict, key: jax.Array, alpha: jax.Array):
        """V_targ(s') [B] from the current actor and the target critics."""
        if discrete:
            dist = Categorical(actor.apply(learner.actor, batch["next_x"]), batch.get("next_mask"))
            q_next = critic.apply(learner.target_critic, batch["next_x"]).min(axis=0)
            return expected_soft_value(dist.probs(), dist.log_probs(), q_next, alpha)
        dist = TanhGaussian(*actor.apply(learner.actor, batch["next_x"]))
        next_action, next_log_prob = dist.sample_and_log_prob(key)
        q_next = critic.apply(learner.target_critic, batch["next_x"], next_action).min(axis=0)
        return sampled_soft_value(q_next, next_log_prob, alpha)

    def q_of_taken_action(critic_params: Any, batch: dict) -> jax.Array:
        """Q_i(s, a) [2, B] of the stored actions."""
        if discrete:
            q = critic.apply(critic_params, batch["x"])  # [2, B, A]
            return jnp.take_along_axis(q, batch["action"][None, :, None], axis=-1)[..., 0]
        return critic.apply(critic_params, batch["x"], batch["action"])

    def actor_objective(
        actor_params: Any, critic_params: Any, batch: dict, key: jax.Array, alpha: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """(actor loss, per-sample entropy estimate [B])."""
        if discrete:
            dist = Categorical(actor.apply(actor_params, batch["x"]), batch.get("mask"))
            q = critic.apply(critic_params, batch["x"]).min(axis=0)
            loss = expected_actor_loss(dist.probs(), dist.log_probs(), q, alpha)
            return loss, dist.entropy()
        dist = TanhGaussian(*actor.apply(actor_params, batch["x"]))
        action, log_prob = dist.sample_and_log_prob(key)
        q = critic.apply(critic_params, batch["x"], action).min(axis=0)
        return sampled_actor_loss(log_prob, q, alpha), -log_prob

    def gradient_step(
        learner: Learner,
        keys: jax.Array,
        replay_state: ReplayState,
        obs_stats: RunningStats,
        h: dict[str, jax.Array],
    ) -> tuple[Learner, dict[str, jax.Array]]:
        sample_key, target_key, actor_key = keys
        items = jax.tree.map(lambda v: v[:, 0], replay.sample(replay_state, sample_key).items)
        normalize = obs_stats.normalize if config.normalize_obs else (lambda v: v)
        batch = {**items, "x": normalize(items["obs"]), "next_x": normalize(items["next_obs"])}
        alpha = jnp.exp(learner.log_alpha)

        # Critics towards the soft target of the target critics.
        next_value = next_state_value(learner, batch, target_key, alpha)
        target = jax.lax.stop_gradient(
            soft_q_target(batch["reward"], batch["terminated"], next_value, h["gamma"])
        )

        def critic_objective(params: Any) -> tuple[jax.Array, jax.Array]:
            q = q_of_taken_action(params, batch)
            return critic_loss(q, target), q

        (q_loss, q), critic_grads = jax.value_and_grad(critic_objective, has_aux=True)(
            learner.critic
        )
        critic_params, critic_opt, _ = apply_gradients(
            tx, learner.critic, critic_grads, learner.critic_opt, h["learning_rate"]
        )

        # Actor against the updated critics.
        (pi_loss, entropy), actor_grads = jax.value_and_grad(actor_objective, has_aux=True)(
            learner.actor, critic_params, batch, actor_key, alpha
        )
        actor_params, actor_opt, _ = apply_gradients(
            tx, learner.actor, actor_grads, learner.actor_opt, h["learning_rate"]
        )

        # Temperature towards the target entropy.
        log_alpha, alpha_opt = learner.log_alpha, learner.alpha_opt
        alpha_loss = temperature_loss(log_alpha, entropy, target_entropy(h))
        if config.autotune_alpha:
            alpha_grad = jax.grad(temperature_loss)(log_alpha, entropy, target_entropy(h))
            log_alpha, alpha_opt, _ = apply_gradients(
                tx, log_alpha, alpha_grad, alpha_opt, h["learning_rate"]
            )

        target_critic = jax.tree.map(
            lambda t, p: t + h["tau"] * (p - t), learner.target_critic, critic_params
        )
        new = Learner(
            actor=actor_params,
            critic=critic_params,
            target_critic=target_critic,
            log_alpha=log_alpha,
            actor_opt=actor_opt,
            critic_opt=critic_opt,
            alpha_opt=alpha_opt,
        )
        metrics = {
            "critic_loss": q_loss,
            "actor_loss": pi_loss,
            "alpha_loss": alpha_loss,
            "alpha": alpha,
            "entropy": entropy.mean(),
            "q_mean": q.mean(),
        }
        return new, metrics

    # -- one iteration ----------------------------------------------------------------------------

    def update(state: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
        h = state.hparams
        # One split for the iteration: next key, rollout key, 3 keys per gradient step.
        keys = jax.random.split(state.key, 2 + 3 * gradient_steps)
        key, rollout_key = keys[0], keys[1]
        step_keys = keys[2:].reshape(gradient_steps, 3, *keys.shape[1:])
        policy = policy_of(state)

        # Collect with the stochastic policy.
        carry, replay_state, obs_stats, traj = collect(
            lambda obs, mask, key: act(policy, obs, key, False, mask),
            state.env,
            state.replay,
            state.obs_stats,
            rollout_key,
            config.train_freq,
        )

        # Learn: a fixed number of gradient steps on fresh batches.
        def learn_step(learner: Learner, step_keys: jax.Array) -> tuple:
            return gradient_step(learner, step_keys, replay_state, obs_stats, h)

        learner, stats = jax.lax.scan(learn_step, state.learner, step_keys)
        stats = jax.tree.map(jnp.mean, stats)

        metrics = {**stats, **episode_metrics(traj.episode)}
        new_state = TrainState(
            learner=learner,
            obs_stats=obs_stats,
            replay=replay_state,
            env=carry,
            key=key,
            step=state.step + 1,
            hparams=h,
        )
        return new_state, metrics

    return Algorithm(
        init=init,
        update=update,
        act=act,
        policy_params=policy_of,
        hparams=hparams_of(config),
        steps_per_update=steps_per_iteration,
        num_updates=num_updates,
        config=config,
        env=env,
        env_params=env_params,
    )


def replay_items(traj: Transition, to_unit_action: Any) -> dict[str, jax.Array]:
    """Replay items [T, N, ...] of a rollout: flat obs and next_obs, action (in [-1, 1] for a
    Box), reward, terminated; with action masks also `mask` (of s) and `next_mask` (of s', as
    the rollout gives it: pre-reset where the episode ended).
    """
    items = {
        "obs": flatten_obs(traj.obs, batch_ndim=2),
        "action": traj.action if to_unit_action is None else to_unit_action(traj.action),
        "reward": traj.reward,
        "terminated": traj.terminated,
        "next_obs": flatten_obs(traj.next_obs, batch_ndim=2),
    }
    if traj.action_mask is not None:
        items["mask"] = traj.action_mask
        items["next_mask"] = traj.next_action_mask
    return items
