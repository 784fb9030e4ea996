"""What the on-policy agents (REINFORCE, A2C, PPO) share, written once: their TrainState, the
rollout with V(s_t) and V(s'_t) at every step, the learning batch, the iteration's coefficients
and the update itself. An agent supplies its Config, network, optimiser, loss and estimator:

    coefs    = coefficients(config, hparams, i, num_iterations), then the loss state's entries
    collect    rollout_length steps of num_envs copies with the current policy      (T x N)
    estimate   estimate(traj, next_values, coefs) -> per-step [T, N] arrays for the batch
               (advantages and value targets, or returns) and metrics of them
    learn      num_epochs passes over the T*N steps, each in num_minibatches shuffled
               minibatches (one: the whole batch in order), a gradient step on each of
               loss(new, minibatch, coefs, config) with learning_rate and max_grad_norm of coefs
    adapt      loss_state = adapt(loss_state, the loss's stats of the last epoch, averaged)
    normalise  observation statistics += the rollout's observations (normalize_obs)

The loss (a plain function or an `rlkit.core.algorithm.Objective`):

    loss(new, batch, coefs, config) -> (scalar, stats)
      new     rlkit.nets.actor_critic.PolicyEval of the network on the minibatch:
              new.dist = pi(.|s) and new.values = V(s) [B]; the only part with gradients
      batch   dict of [B] arrays: x (network input), action, mask (allowed actions or None),
              log_prob and value (log pi_old(a|s) and V_old(s) of the acting policy), and the
              estimator's keys (advantage and target, or returns)
      coefs   traced scalars: every hparam after annealing (learning_rate, clip_eps, ent_coef,
              vf_coef, gamma, ...) and the Objective's state by name
      config  the agent's Config: its static switches
      stats   dict of scalars; averaged over every minibatch of the iteration into the metrics

Everything is traced into the one compiled `update`: no host calls.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from rlkit.core.algorithm import Algorithm, Objective, as_objective
from rlkit.core.config import ConfigError, hparams_of
from rlkit.core.wrappers import as_vector_env, episode_metrics
from rlkit.data.rollout import EnvCarry, Transition, reset_envs, rollout
from rlkit.nets.actor_critic import ActorCritic, action_distribution, evaluate, make_act
from rlkit.nets.layers import PolicyParams, flatten_obs, normalized_input
from rlkit.ops.optim import apply_gradients
from rlkit.ops.permutation import permutation
from rlkit.ops.returns import gae
from rlkit.ops.running_stats import RunningStats
from rlkit.ops.schedules import linear, progress

__all__ = [
    "Estimate",
    "Loss",
    "OnPolicy",
    "OnPolicyState",
    "build",
    "check_batch",
    "coefficients",
    "collect",
    "explained_variance",
    "flatten_batch",
    "gae_advantages",
    "init_state",
    "merge_time_env",
]

Loss = Callable[..., tuple[jax.Array, dict[str, jax.Array]]]
Estimate = Callable[
    [Transition, jax.Array, dict[str, jax.Array]],
    tuple[dict[str, jax.Array], dict[str, jax.Array]],
]


@struct.dataclass
class OnPolicyState:
    """Everything an on-policy agent carries between iterations (leaves gain a seed axis under
    vmap): actor-critic weights, optimiser state, running observation statistics (read only when
    the policy normalises), the vectorised environment, the PRNG key, the number of iterations
    done, the traced hyperparameters and the loss's own state (an Objective's; {} for a plain
    loss)."""

    params: Any
    opt_state: Any
    obs_stats: RunningStats
    env: EnvCarry
    key: jax.Array
    step: jax.Array  # iterations done
    hparams: dict[str, jax.Array]
    loss_state: dict[str, jax.Array]


def check_batch(config: Any, num_minibatches: int = 1) -> None:
    """ConfigError unless the budget holds one batch of num_envs * rollout_length steps and
    `num_minibatches` divides it (call from a Config's __post_init__)."""
    batch = config.num_envs * config.rollout_length
    if batch % num_minibatches:
        raise ConfigError(
            f"num_minibatches ({num_minibatches}) must divide num_envs * rollout_length ({batch})"
        )
    if config.total_steps < batch:
        raise ConfigError(f"total_steps must be >= num_envs * rollout_length ({batch})")


def coefficients(
    config: Any, hparams: dict[str, jax.Array], iteration: jax.Array, num_iterations: int
) -> dict[str, jax.Array]:
    """The coefficients of iteration i (0-based) of num_iterations: the traced hparams, with

        learning_rate_i = learning_rate (1 - i / num_iterations)     when config.anneal_lr

    (rlkit.ops.schedules.linear from the configured rate to 0, so the last iteration still
    learns). An agent that anneals more (PPO) extends this."""
    coefs = dict(hparams)
    if config.anneal_lr:
        done = progress(iteration, num_iterations)
        coefs["learning_rate"] = linear(hparams["learning_rate"], 0.0, done)
    return coefs


def init_state(
    key: jax.Array,
    hparams: dict[str, jax.Array],
    venv: Any,
    env_params: Any,
    network: ActorCritic,
    tx: optax.GradientTransformation,
    loss_state: dict[str, jax.Array] | None = None,
) -> OnPolicyState:
    """Fresh weights (initialised on the first observations [N, F]), optimiser state, identity
    observation statistics and reset environments; the key is split (network, env, carried)."""
    net_key, env_key, key = jax.random.split(key, 3)
    carry = reset_envs(venv, env_params, env_key)
    x = flatten_obs(carry.obs)
    params = network.init(net_key, x)
    return OnPolicyState(
        params=params,
        opt_state=tx.init(params),
        obs_stats=RunningStats.create(x.shape[1:]),
        env=carry,
        key=key,
        step=jnp.zeros((), jnp.int32),
        hparams=hparams,
        loss_state={} if loss_state is None else loss_state,
    )


def merge_time_env(v: jax.Array) -> jax.Array:
    """[T, N, ...] -> [T*N, ...]."""
    return v.reshape((-1, *v.shape[2:]))


def collect(
    venv: Any,
    env_params: Any,
    network: ActorCritic,
    policy: PolicyParams,
    carry: EnvCarry,
    key: jax.Array,
    num_steps: int,
) -> tuple[EnvCarry, Transition, jax.Array]:
    """Sample actions from the policy for `num_steps` steps of the vectorised env.

    Returns (carry, trajectory [T, N], next_values [T, N]). The trajectory's extras hold
    `log_prob` and `value` = V(s_t) of the acting policy; next_values[t] = V(s'_t), the value of
    the true next state (the pre-reset observation where an episode ended at t), so returns
    bootstrap a truncation correctly. Only the actor runs inside the step loop: the weights do
    not change during a rollout, so V(s_t) and V(s'_t) come from one batched critic pass over
    the [2 T N] observations afterwards (the same numbers, with far fewer small kernels).
    """
    action_space = network.action_space

    def behave(obs: Any, mask: jax.Array | None, key: jax.Array) -> tuple:
        actor_out = network.apply(policy.params, normalized_input(policy, obs), method="actor")
        dist = action_distribution(action_space, actor_out, mask)
        action = dist.sample(key)
        return action, {"log_prob": dist.log_prob(action)}

    carry, traj = rollout(venv, env_params, behave, carry, key, num_steps)
    both = jax.tree.map(
        lambda o, n: jnp.concatenate([merge_time_env(o), merge_time_env(n)]),
        traj.obs,
        traj.next_obs,
    )
    values = network.apply(policy.params, normalized_input(policy, both), method="value")
    values = values.reshape((2, *traj.reward.shape))  # [V(s_t); V(s'_t)]
    traj = traj._replace(extras={**traj.extras, "value": values[0]})
    return carry, traj, values[1]


def flatten_batch(traj: Transition, policy: PolicyParams, **per_step: jax.Array) -> dict[str, Any]:
    """A [T, N] trajectory as a [T*N] learning batch.

    Keys: x (network input, normalised with the acting policy's statistics), action, mask (or
    None), log_prob, value, and every extra [T, N] array given by keyword (advantages, targets,
    ...).
    """
    return {
        "x": normalized_input(policy, jax.tree.map(merge_time_env, traj.obs)),
        "action": merge_time_env(traj.action),
        "mask": None if traj.action_mask is None else merge_time_env(traj.action_mask),
        "log_prob": merge_time_env(traj.extras["log_prob"]),
        "value": merge_time_env(traj.extras["value"]),
        **{name: merge_time_env(jnp.asarray(v)) for name, v in per_step.items()},
    }


def explained_variance(values: jax.Array, targets: jax.Array) -> jax.Array:
    """1 - Var[G - V] / Var[G] over all elements (1: perfect critic, <= 0: no better than a
    constant); NaN when the targets do not vary."""
    var_targets = targets.var()
    return jnp.where(var_targets > 0, 1.0 - (targets - values).var() / var_targets, jnp.nan)


def gae_advantages(
    traj: Transition, next_values: jax.Array, coefs: dict[str, jax.Array]
) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
    """The estimator of A2C and PPO: truncation-aware GAE (rlkit.ops.returns.gae) with the
    iteration's gamma and gae_lambda, bootstrapped from V(s'_t) at every step.

    Returns ({"advantage": A_t, "target": A_t + V(s_t)}, both [T, N];
    {"explained_variance": of the acting critic's V(s_t) for the targets})."""
    values = traj.extras["value"]
    advantages, targets = gae(
        traj.reward,
        values,
        next_values,
        traj.terminated,
        traj.truncated,
        coefs["gamma"],
        coefs["gae_lambda"],
    )
    metrics = {"explained_variance": explained_variance(values, targets)}
    return {"advantage": advantages, "target": targets}, metrics


@dataclasses.dataclass(frozen=True, eq=False)
class OnPolicy:
    """One configured on-policy agent (see `build`): its static pieces, and the Algorithm's
    functions as methods."""

    config: Any
    venv: Any
    env_params: Any
    network: ActorCritic
    tx: optax.GradientTransformation
    objective: Objective
    estimate: Estimate
    coefficients: Callable[..., dict[str, jax.Array]]
    num_epochs: int
    num_minibatches: int

    @property
    def batch_size(self) -> int:
        return self.config.num_envs * self.config.rollout_length

    @property
    def num_iterations(self) -> int:
        return self.config.total_steps // self.batch_size

    def policy_params(self, state: OnPolicyState) -> PolicyParams:
        return PolicyParams(state.params, state.obs_stats, self.config.normalize_obs)

    def init(self, key: jax.Array, hparams: dict[str, jax.Array]) -> OnPolicyState:
        loss_state = self.objective.initial_state(hparams)
        return init_state(
            key, hparams, self.venv, self.env_params, self.network, self.tx, loss_state
        )

    def gradient_step(self, carry: tuple, minibatch: dict, coefs: dict) -> tuple:
        params, opt_state = carry

        def minibatch_loss(params: Any) -> tuple[jax.Array, dict[str, jax.Array]]:
            new = evaluate(self.network, params, minibatch["x"], minibatch["mask"])
            return self.objective.loss(new, minibatch, coefs, self.config)

        grads, stats = jax.grad(minibatch_loss, has_aux=True)(params)
        params, opt_state, grad_norm = apply_gradients(
            self.tx, params, grads, opt_state, coefs["learning_rate"], coefs["max_grad_norm"]
        )
        return (params, opt_state), (stats, grad_norm)

    def learn(self, carry: tuple, batch: dict, coefs: dict, key: jax.Array | None) -> tuple:
        """num_epochs passes of num_minibatches steps -> (carry, (stats, grad norms) [E, M])."""
        step = lambda carry, minibatch: self.gradient_step(carry, minibatch, coefs)  # noqa: E731
        if self.num_minibatches == 1:
            whole = jax.tree.map(lambda v: v[None], batch)
            passes = lambda carry, _: jax.lax.scan(step, carry, whole)  # noqa: E731
            return jax.lax.scan(passes, carry, None, self.num_epochs)
        size = self.batch_size // self.num_minibatches

        def epoch(carry: tuple, epoch_key: jax.Array) -> tuple:
            order = permutation(epoch_key, self.batch_size)
            minibatches = jax.tree.map(
                lambda v: v[order].reshape((self.num_minibatches, size, *v.shape[1:])), batch
            )
            return jax.lax.scan(step, carry, minibatches)

        return jax.lax.scan(epoch, carry, jax.random.split(key, self.num_epochs))

    def update(self, state: OnPolicyState) -> tuple[OnPolicyState, dict[str, jax.Array]]:
        config = self.config
        coefs = self.coefficients(config, state.hparams, state.step, self.num_iterations)
        coefs = {**coefs, **state.loss_state}
        policy = self.policy_params(state)
        if self.num_minibatches > 1:
            key, rollout_key, shuffle_key = jax.random.split(state.key, 3)
        else:
            (key, rollout_key), shuffle_key = jax.random.split(state.key), None

        # Collect, then the agent's estimates, bootstrapped from V(true next state).
        carry, traj, next_values = collect(
            self.venv,
            self.env_params,
            self.network,
            policy,
            state.env,
            rollout_key,
            config.rollout_length,
        )
        per_step, estimate_metrics = self.estimate(traj, next_values, coefs)

        # Learn, then adapt the loss's state to what the last epoch saw.
        batch = flatten_batch(traj, policy, **per_step)
        (params, opt_state), (stats, grad_norm) = self.learn(
            (state.params, state.opt_state), batch, coefs, shuffle_key
        )
        last_epoch = jax.tree.map(lambda s: s[-1].mean(), stats)
        loss_state = self.objective.adapt(state.loss_state, last_epoch)
        loss_state = {k: jnp.asarray(v, jnp.float32) for k, v in loss_state.items()}

        obs_stats = state.obs_stats
        if config.normalize_obs:
            obs_stats = obs_stats.update(flatten_obs(traj.obs, batch_ndim=2))
        metrics = {
            **jax.tree.map(jnp.mean, stats),
            **estimate_metrics,
            **episode_metrics(traj.episode),
            "grad_norm": grad_norm.mean(),
            "learning_rate": coefs["learning_rate"],
            **state.loss_state,  # the state this iteration learned with
        }
        new_state = state.replace(
            params=params,
            opt_state=opt_state,
            obs_stats=obs_stats,
            env=carry,
            key=key,
            step=state.step + 1,
            loss_state=loss_state,
        )
        return new_state, metrics


def build(
    config: Any,
    env: Any,
    env_params: Any,
    network: ActorCritic,
    tx: optax.GradientTransformation,
    *,
    loss: Loss | Objective,
    estimate: Estimate,
    coefficients: Callable[..., dict[str, jax.Array]] = coefficients,
    num_epochs: int = 1,
    num_minibatches: int = 1,
    normalize_rewards: bool = False,
) -> Algorithm:
    """The Algorithm of an on-policy agent (see the module docstring).

    config: the agent's Config, with at least total_steps, num_envs, rollout_length, gamma,
        anneal_lr, normalize_obs and the traced learning_rate and max_grad_norm.
    env: a single environment, or a vectorised one with config.num_envs copies.
    network, tx: the actor-critic and the optimiser's update direction (rlkit.ops.optim).
    loss: the agent's loss, or an Objective carrying state of its own.
    estimate(traj, next_values, coefs) -> (per-step [T, N] arrays for the batch, metrics).
    coefficients(config, hparams, iteration, num_iterations) -> the iteration's coefs.
    num_epochs, num_minibatches: passes over the batch and gradient steps per pass. With one
        minibatch the batch is not shuffled (a mean loss does not depend on the order) and no
        key is spent on it.
    normalize_rewards: divide rewards by the running std of the discounted return
        (rlkit.core.wrappers.ScaleReward with config.gamma).
    """
    scale_rewards = config.gamma if normalize_rewards else None
    venv = as_vector_env(env, config.num_envs, scale_rewards_gamma=scale_rewards)
    agent = OnPolicy(
        config,
        venv,
        env_params,
        network,
        tx,
        as_objective(loss),
        estimate,
        coefficients,
        num_epochs,
        num_minibatches,
    )
    return Algorithm(
        init=agent.init,
        update=agent.update,
        act=make_act(network),
        policy_params=agent.policy_params,
        hparams=hparams_of(config),
        steps_per_iteration=agent.batch_size,
        num_iterations=agent.num_iterations,
        config=config,
        env=env,
        env_params=env_params,
    )
