"""Soft Actor-Critic: continuous (Haarnoja et al. 2018) and discrete (Christodoulou 2019).

After the warm-up of rlkit.data.offpolicy (learning_starts steps of uniform random actions: SB3's
learning_starts, ML-Agents' buffer_init_steps), one iteration steps `num_envs` copies
`train_frequency` times with the stochastic policy into a uniform replay buffer and takes
`gradient_steps` gradient steps, each on a fresh batch (s, a, r, terminated, s'):

    y          = r + gamma (1 - terminated) V_targ(s')                       (`soft_target`)
    V_targ(s') = min_k Q_targ_k(s', a') - alpha log pi(a'|s'),  a' ~ pi(.|s')  (continuous)
               = sum_a' pi(a'|s') [min_k Q_targ_k(s', a') - alpha log pi(a'|s')] (discrete)
    L_Q        = 1/2 sum_k E[(Q_k(s, a) - y)^2]
    L_pi       = E[alpha log pi(a~|s) - min_k Q_k(s, a~)],  a~ ~ pi(.|s) reparameterised
               = E[sum_a pi(a|s) (alpha log pi(a|s) - min_k Q_k(s, a))]      (`actor_loss`)
    L_alpha    = log(alpha) E[H(pi(.|s)) - H_target]      (H: -log pi(a~|s), or the exact entropy)
    theta_targ <- (1 - tau) theta_targ + tau theta

Both cases are one computation over `PolicyValues`: the actions of the policy at a batch of
states with their probabilities and the critics' values, either the one reparameterised sample
(probability 1) or every discrete action. `terminated` masks the bootstrap only on a real
terminal state: s' is the pre-reset next observation, so a time-limit cut bootstraps. The steps
follow SB3's SAC.train: alpha read before the step, critic step, actor step against the updated
critics, temperature step, Polyak averaging (every gradient step).

Continuous actions: a tanh-squashed Gaussian (rlkit.nets.actors); the critics and the buffer see
actions in [-1, 1], the environment gets them scaled affinely to the Box bounds. Target entropy
-dim(A) * continuous_target_entropy_scale (ML-Agents: 1.0). Discrete actions: a categorical
actor and Q heads over all actions; action masks are honoured (masked actions get probability 0
and drop out of every expectation). Target entropy discrete_target_entropy_scale *
log(num_actions) (ML-Agents: 0.2).

`value_network=True` is SAC v1 (Haarnoja et al. 2018a), the form ML-Agents' SAC uses: a state-value
network V and its Polyak-averaged target replace the target critics,

    y          = r + gamma (1 - terminated) V_targ(s')
    L_V        = 1/2 E[(V(s) - sum_a~ pi(a~|s) [min_k Q_k(s, a~) - alpha log pi(a~|s)])^2]
    theta_V_targ <- (1 - tau) theta_V_targ + tau theta_V    (the critics have no target)

with V's regression target taken from the actor step's PolicyValues (the updated critics, the
actor before its step); V steps after the actor.

`make(..., target=fn)` replaces the soft target: fn(batch, next, alpha, hparams, config) -> y [B]
with `next` the PolicyValues at s' (target critics); `make(..., actor_loss=fn)` the actor loss:
fn(now, alpha, hparams, config) -> scalar with `now` the PolicyValues at s (updated critics).

Differences from ML-Agents' SAC: by default the target bootstraps from the twin target critics
(SAC v2, as SB3, CleanRL and rejax); ML-Agents keeps a state-value network and its target
(`value_network=True`). ML-Agents takes one optimiser step on the sum of the critic and value
losses computed before either moves; here they step in turn, as above. ML-Agents updates
whenever `steps_per_update` agent steps have accumulated; here the ratio is met exactly once per
iteration.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

import paper_configs
from rlkit.core import fields
from rlkit.core.algorithm import Algorithm
from rlkit.core.config import ConfigError, hp, validate
from rlkit.core.spaces import Box, Discrete, Space
from rlkit.data import offpolicy
from rlkit.data.offpolicy import OffPolicyState
from rlkit.nets.actors import CategoricalActor, SquashedGaussianActor
from rlkit.nets.layers import PolicyParams
from rlkit.nets.q import ContinuousQ, QNetwork, StateValue, TwinQ
from rlkit.ops.distributions import Categorical, TanhGaussian
from rlkit.ops.losses import critic_loss, expected_actor_loss, temperature_loss
from rlkit.ops.optim import apply_gradients, make_optimiser
from rlkit.ops.targets import expected_soft_value, one_step_target

__all__ = [
    "PRESETS",
    "SAC",
    "Config",
    "Learner",
    "PolicyValues",
    "TrainState",
    "actor_loss",
    "build_networks",
    "make",
    "soft_target",
]


@dataclasses.dataclass(frozen=True)
class Config:
    """SAC hyperparameters. Defaults: SB3 rl-zoo Pendulum-v1 (PAPER-TARGETS #11)."""

    total_steps: int = fields.total_steps(20_000, "zoo: 20k")
    num_envs: int = fields.num_envs(1, "zoo: 1")
    train_frequency: int = fields.train_frequency(1, "SB3 train_freq: 1")
    gradient_steps: int = fields.gradient_steps(1, "SB3: 1")
    steps_per_update: float = fields.steps_per_update(0.0, "ML-Agents: 10; SB3: off")
    learning_starts: int = fields.learning_starts(100, "SB3: 100; ML-Agents buffer_init_steps")
    buffer_size: int = fields.buffer_size(20_000, "zoo: 1e6, i.e. all 20k steps")
    batch_size: int = fields.batch_size(256, "SB3: 256")
    learning_rate: float = fields.learning_rate(1e-3, "actor, critics, temperature; zoo: 1e-3")
    gamma: float = fields.gamma(0.99, "SB3: 0.99")
    tau: float = fields.tau(0.005, "SB3: 0.005")
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
        1.0, "continuous target entropy = -dim(A) * this (ML-Agents: 1.0)", low=0.0, traced=True
    )
    discrete_target_entropy_scale: float = hp(
        0.2,
        "discrete target entropy = this * log(num_actions) (ML-Agents: 0.2)",
        low=0.0,
        traced=True,
    )
    value_network: bool = hp(
        False,
        "SAC v1: bootstrap from a state-value network's Polyak target instead of target critics "
        "(ML-Agents' SAC; SB3, CleanRL: off)",
    )
    normalize_obs: bool = fields.normalize_obs(False, "ML-Agents `normalize`; SB3: off")
    optimiser: str = fields.optimiser("adam", "SB3: adam")
    optimiser_eps: float = fields.optimiser_eps(1e-8, "PyTorch's Adam, as SB3")
    hidden: tuple[int, ...] = fields.hidden((256, 256), "SB3: 256x256")
    activation: str = fields.activation("relu", "SB3: relu")

    def __post_init__(self) -> None:
        validate(self)
        offpolicy.schedule(self)


# Named settings: the paper configs for sac (paper_configs/*.yaml, sources in each).
PRESETS = paper_configs.presets("sac", Config)


class PolicyValues(NamedTuple):
    """The policy's actions at B states, their probabilities and the K critics' values of them.

    Box: the one reparameterised sample a~ ~ pi(.|s): actions [B, 1, d] (in [-1, 1]), probs
    [B, 1] = 1, log_probs [B, 1] = log pi(a~|s), q [K, B, 1]. Discrete: every action: actions
    [B, A] (0 .. A-1), probs, log_probs [B, A] (masked actions probability 0), q [K, B, A].
    Expectations over actions are then sum_a probs (...) in both.
    """

    actions: jax.Array
    probs: jax.Array
    log_probs: jax.Array
    q: jax.Array

    def entropy(self) -> jax.Array:
        """[B]: -log pi(a~|s) of the sample (Box) or the exact entropy (Discrete)."""
        safe = jnp.where(self.probs > 0, self.log_probs, 0.0)
        return -jnp.sum(self.probs * safe, axis=-1)


def soft_target(
    batch: dict, next: PolicyValues, alpha: jax.Array, hparams: dict, config: Config
) -> jax.Array:
    """y = r + gamma (1 - terminated) sum_a' pi(a'|s') [min_k Q_targ_k(s', a') - alpha log pi]."""
    next_value = expected_soft_value(next.probs, next.log_probs, next.q.min(axis=0), alpha)
    return one_step_target(batch["reward"], batch["terminated"], next_value, hparams["gamma"])


def actor_loss(now: PolicyValues, alpha: jax.Array, hparams: dict, config: Config) -> jax.Array:
    """mean_b sum_a pi(a|s_b) (alpha log pi(a|s_b) - min_k Q_k(s_b, a))."""
    return expected_actor_loss(now.probs, now.log_probs, now.q.min(axis=0), alpha)


@struct.dataclass
class Learner:
    """What a gradient step changes: weights, the temperature and their optimiser states.

    With `value_network` the target critics are None and value, target_value, value_opt hold
    the state-value network; without, those three are None."""

    actor: Any
    critic: Any  # twin critics, leaves [2, ...]
    target_critic: Any
    log_alpha: jax.Array
    actor_opt: Any
    critic_opt: Any
    alpha_opt: Any
    value: Any = None
    target_value: Any = None
    value_opt: Any = None


# SAC carries what every off-policy agent carries (rlkit.data.offpolicy), with a Learner.
TrainState = OffPolicyState


def build_networks(config: Config, action_space: Space) -> tuple[nn.Module, nn.Module]:
    """(actor, twin critics): Box(d): x -> (mean, log_std) [B, d], (x, a) -> Q [2, B];
    Discrete(n): x -> logits [B, n], x -> Q [2, B, n]."""
    net = {"hidden": config.hidden, "activation": config.activation}
    if isinstance(action_space, Discrete):
        n = int(action_space.n)
        return CategoricalActor(n, **net), TwinQ(QNetwork, {"num_actions": n, **net})
    if isinstance(action_space, Box):
        return SquashedGaussianActor(math.prod(action_space.shape), **net), TwinQ(ContinuousQ, net)
    raise ConfigError(f"SAC supports Discrete and Box actions, not {type(action_space).__name__}")


@dataclasses.dataclass(frozen=True, eq=False)
class SAC:
    """One configured SAC: its static pieces, and the Algorithm's functions as methods."""

    config: Config
    core: offpolicy.OffPolicy
    actor: nn.Module
    critic: nn.Module
    tx: Any
    target: Callable
    actor_loss: Callable
    value_net: nn.Module

    def policy_params(self, state: TrainState) -> PolicyParams:
        return PolicyParams(state.learner.actor, state.obs_stats, self.config.normalize_obs)

    def act(
        self,
        policy: PolicyParams,
        obs: Any,
        key: jax.Array,
        deterministic: bool = False,
        action_mask: jax.Array | None = None,
    ) -> jax.Array:
        out = self.actor.apply(policy.params, self.core.inputs(policy.obs_stats, obs))
        if self.core.discrete:
            dist = Categorical(out, action_mask)
            return dist.mode() if deterministic else dist.sample(key)
        dist = TanhGaussian(*out)
        return self.core.to_env_action(dist.mode() if deterministic else dist.sample(key))

    def init(self, key: jax.Array, hparams: dict[str, jax.Array]) -> TrainState:
        def init_learner(key: jax.Array, x: jax.Array) -> Learner:
            actor_key, critic_key = jax.random.split(key)
            actor_params = self.actor.init(actor_key, x)
            action = () if self.core.discrete else (jnp.zeros((x.shape[0], self.core.action_dim)),)
            critic_params = self.critic.init(critic_key, x, *action)
            log_alpha = jnp.log(hparams["alpha"]).astype(jnp.float32)
            optimisers = [self.tx.init(p) for p in (actor_params, critic_params, log_alpha)]
            learner = Learner(actor_params, critic_params, critic_params, log_alpha, *optimisers)
            if not self.config.value_network:
                return learner
            value = self.value_net.init(jax.random.fold_in(key, 1), x)
            return learner.replace(
                target_critic=None, value=value, target_value=value, value_opt=self.tx.init(value)
            )

        return self.core.init(key, hparams, init_learner)

    def policy_values(self, actor_params, critic_params, x, mask, key) -> PolicyValues:
        """PolicyValues at states x [B, F] (mask [B, A] or None) of the actor and critics."""
        if self.core.discrete:
            dist = Categorical(self.actor.apply(actor_params, x), mask)
            actions = jnp.broadcast_to(jnp.arange(self.core.action_dim), dist.probs().shape)
            q = self.critic.apply(critic_params, x)
            return PolicyValues(actions, dist.probs(), dist.log_probs(), q)
        dist = TanhGaussian(*self.actor.apply(actor_params, x))
        action, log_prob = dist.sample_and_log_prob(key)
        q = self.critic.apply(critic_params, x, action)[..., None]
        return PolicyValues(action[:, None], jnp.ones_like(log_prob)[:, None], log_prob[:, None], q)

    def q_of_stored_actions(self, critic_params: Any, batch: dict) -> jax.Array:
        """Q_k(s, a) [2, B] of the stored actions."""
        if self.core.discrete:
            q = self.critic.apply(critic_params, batch["obs"])  # [2, B, A]
            return jnp.take_along_axis(q, batch["action"][None, :, None], axis=-1)[..., 0]
        return self.critic.apply(critic_params, batch["obs"], batch["action"])

    def target_entropy(self, h: dict[str, jax.Array]) -> jax.Array:
        if self.core.discrete:
            return h["discrete_target_entropy_scale"] * math.log(self.core.action_dim)
        return -h["continuous_target_entropy_scale"] * self.core.action_dim

    def gradient_step(self, learner: Learner, inputs: tuple) -> tuple[Learner, dict]:
        """Critics, then actor, then temperature, then Polyak averaging, on one batch."""
        batch, (target_key, actor_key), h = inputs
        batch = jax.tree.map(lambda v: v[:, 0], batch)  # one-step windows
        config, alpha = self.config, jnp.exp(learner.log_alpha)
        step = lambda p, g, s: apply_gradients(self.tx, p, g, s, h["learning_rate"])[:2]  # noqa: E731

        # Critics towards the soft target of the target critics (or of V's target).
        next_obs, next_mask = batch["next_obs"], batch.get("next_mask")
        if config.value_network:
            next_value = self.value_net.apply(learner.target_value, next_obs)
            y = one_step_target(batch["reward"], batch["terminated"], next_value, h["gamma"])
        else:
            next = self.policy_values(
                learner.actor, learner.target_critic, next_obs, next_mask, target_key
            )
            y = self.target(batch, next, alpha, h, config)
        y = jax.lax.stop_gradient(y)

        def critic_objective(params: Any) -> tuple[jax.Array, jax.Array]:
            q = self.q_of_stored_actions(params, batch)
            return critic_loss(q, y), q

        (q_loss, q), grads = jax.value_and_grad(critic_objective, has_aux=True)(learner.critic)
        critic_params, critic_opt = step(learner.critic, grads, learner.critic_opt)

        # Actor against the updated critics.
        def actor_objective(params: Any) -> tuple[jax.Array, tuple]:
            now = self.policy_values(
                params, critic_params, batch["obs"], batch.get("mask"), actor_key
            )
            soft_value = None  # V's regression target, with value_network
            if config.value_network:
                q_min = now.q.min(axis=0)
                soft_value = expected_soft_value(now.probs, now.log_probs, q_min, alpha)
            return self.actor_loss(now, alpha, h, config), (now.entropy(), soft_value)

        actor_grad = jax.value_and_grad(actor_objective, has_aux=True)
        (pi_loss, (entropy, soft_value)), grads = actor_grad(learner.actor)
        actor_params, actor_opt = step(learner.actor, grads, learner.actor_opt)
        extra = {}
        if config.value_network:
            value_params, value_opt, target_value, v_loss = self.value_step(
                learner, soft_value, batch["obs"], h, step
            )
            extra["value_loss"] = v_loss

        # Temperature towards the target entropy.
        log_alpha, alpha_opt = learner.log_alpha, learner.alpha_opt
        alpha_loss, alpha_grad = jax.value_and_grad(temperature_loss)(
            log_alpha, entropy, self.target_entropy(h)
        )
        if config.autotune_alpha:
            log_alpha, alpha_opt = step(log_alpha, alpha_grad, alpha_opt)

        new = learner.replace(
            actor=actor_params,
            critic=critic_params,
            log_alpha=log_alpha,
            actor_opt=actor_opt,
            critic_opt=critic_opt,
            alpha_opt=alpha_opt,
        )
        if config.value_network:
            new = new.replace(value=value_params, target_value=target_value, value_opt=value_opt)
        else:
            target_critic = offpolicy.update_target(learner.target_critic, critic_params, h["tau"])
            new = new.replace(target_critic=target_critic)
        stats = {"critic_loss": q_loss, "actor_loss": pi_loss, "alpha_loss": alpha_loss, **extra}
        return new, {**stats, "alpha": alpha, "entropy": entropy.mean(), "q_mean": q.mean()}

    def value_step(
        self, learner: Learner, soft_value: jax.Array, obs: jax.Array, h: dict, step: Callable
    ) -> tuple[Any, Any, Any, jax.Array]:
        """One step of V(s) [B] towards soft_value [B] (1/2 mean squared error), then V's Polyak
        target: (value params, optimiser state, target params, loss)."""

        def value_objective(params: Any) -> jax.Array:
            return critic_loss(self.value_net.apply(params, obs)[None], soft_value)

        loss, grads = jax.value_and_grad(value_objective)(learner.value)
        params, opt = step(learner.value, grads, learner.value_opt)
        target = offpolicy.update_target(learner.target_value, params, h["tau"])
        return params, opt, target, loss

    def learn(self, state: TrainState, key: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
        draw_key, step_key = jax.random.split(key)
        keys = jax.random.split(step_key, (self.core.schedule.gradient_steps, 2))
        batches = self.core.draw_batches(state, draw_key)
        h = state.hparams
        learner, stats = jax.lax.scan(
            lambda learner, xs: self.gradient_step(learner, (*xs, h)),
            state.learner,
            (batches, keys),
        )
        return state.replace(learner=learner), stats

    def update(self, state: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
        policy = self.policy_params(state)
        behave = lambda obs, mask, key: self.act(policy, obs, key, False, mask)  # noqa: E731
        return self.core.iteration(state, behave, self.learn)


def make(
    config: Config,
    env: Any,
    env_params: Any,
    target: Callable = soft_target,
    actor_loss: Callable = actor_loss,
) -> Algorithm:
    """Build SAC for `env` (a single environment, or a vectorised one with config.num_envs);
    `target` and `actor_loss` replace the soft target and the actor loss (module docstring).
    A replaced target needs the target critics: not with `value_network`."""
    if config.value_network and target is not soft_target:
        raise ConfigError("a replacement target needs the target critics: not with value_network")
    core = offpolicy.build(config, env, env_params)
    actor, critic = build_networks(config, core.action_space)
    tx = make_optimiser(config.optimiser, eps=config.optimiser_eps)
    value_net = StateValue(config.hidden, config.activation)
    agent = SAC(config, core, actor, critic, tx, target, actor_loss, value_net)
    return core.algorithm(agent, config, env, env_params)
