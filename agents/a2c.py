"""A2C: synchronous advantage actor-critic (Mnih et al. 2016), as in Stable-Baselines3.

The synchronous form of A3C that OpenAI Baselines and Stable-Baselines3 implement.

One iteration: collect `rollout_length` steps from `num_envs` copies; compute truncation-aware
GAE advantages A and returns G = A + V (lambda = 1 gives the n-step returns of the paper, each
step bootstrapping from V at the end of the rollout); take ONE gradient step on the whole batch
of

    L = -E[log pi(a|s) A] + c_v 0.5 E[(V(s) - G)^2] - c_e E[H(pi(.|s))].

Switches: normalize_advantages (off, as in SB3), anneal_lr, max_grad_norm (0 = off),
normalize_obs, normalize_rewards, optimiser (RMSprop or Adam). Defaults are the
rl-baselines3-zoo CartPole-v1 entry (SB3 A2C defaults with 8 envs and ent_coef 0;
shared/reference/PAPER-TARGETS.md #8), with two differences of form:

- the value loss carries the 1/2 of rlkit's other agents, while SB3's is the plain mean squared
  error, so SB3's vf_coef 0.5 is vf_coef 1.0 here;
- rlkit's RMSprop (rlkit.optim) puts eps inside the square root, sqrt(v + eps), and starts the
  squared-gradient average v at 0; SB3's CartPole entry uses torch's RMSprop, sqrt(v) + eps
  from v = 0 (the zoo's RMSpropTFLike, for Atari, is sqrt(v + eps) from v = 1).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from rlkit.algorithm import Algorithm
from rlkit.config import hp, hparams_of, validate
from rlkit.onpolicy import OnPolicyState, collect, flatten_batch, init_state, policy_params
from rlkit.optim import OPTIMISERS, apply_gradients, make_optimiser
from rlkit.policies import ActorCritic, PolicyParams, action_distribution, make_act
from rlkit.returns import gae
from rlkit.wrappers import as_vector_env, episode_metrics

__all__ = ["PRESETS", "Config", "TrainState", "make"]


@dataclasses.dataclass(frozen=True)
class Config:
    """A2C hyperparameters. Defaults: rl-baselines3-zoo a2c.yml CartPole-v1 on SB3's A2C."""

    total_steps: int = hp(500_000, "environment steps per seed (zoo CartPole: 5e5)", low=1)
    num_envs: int = hp(8, "vectorised environment copies (zoo CartPole n_envs: 8)", low=1)
    rollout_length: int = hp(5, "steps per copy per iteration (SB3 n_steps: 5)", low=1)
    learning_rate: float = hp(7e-4, "step size (SB3: 7e-4)", low=0.0, traced=True)
    anneal_lr: bool = hp(False, "decay the learning rate linearly to 0 (SB3: constant)")
    gamma: float = hp(0.99, "discount (SB3: 0.99)", low=0.0, high=1.0, traced=True)
    gae_lambda: float = hp(
        1.0, "GAE lambda; 1 = n-step returns (SB3: 1.0)", low=0.0, high=1.0, traced=True
    )
    vf_coef: float = hp(
        1.0,
        "coefficient of 0.5 (V - G)^2 (SB3: 0.5 on (V - G)^2 without the 1/2, i.e. 1.0 here)",
        low=0.0,
        traced=True,
    )
    ent_coef: float = hp(0.0, "entropy bonus coefficient (zoo CartPole: 0.0)", low=0.0, traced=True)
    normalize_advantages: bool = hp(False, "standardise advantages per batch (SB3: off)")
    max_grad_norm: float = hp(
        0.5, "global gradient-norm clip, 0 = off (SB3: 0.5)", low=0.0, traced=True
    )
    normalize_obs: bool = hp(False, "normalise observations by running mean/std (zoo: off)")
    normalize_rewards: bool = hp(False, "scale rewards by the running std of the return")
    optimiser: str = hp(
        "rmsprop", "optimiser (SB3: RMSprop, see the module docstring)", choices=OPTIMISERS
    )
    optimiser_eps: float = hp(
        1e-5, "optimiser epsilon (SB3 rms_prop_eps: 1e-5)", low=0.0, low_open=True
    )
    rmsprop_decay: float = hp(0.99, "RMSprop squared-gradient decay (SB3 alpha: 0.99)", low=0.0)
    hidden: tuple[int, ...] = hp(
        (64, 64), "hidden widths of actor and critic (SB3 MlpPolicy: 64x64)", low=1
    )
    activation: str = hp(
        "tanh", "hidden activation (SB3 MlpPolicy: tanh)", choices=("tanh", "relu", "gelu", "swish")
    )

    def __post_init__(self) -> None:
        validate(self)
        if self.rmsprop_decay >= 1.0:
            raise ValueError(f"rmsprop_decay must be in [0, 1), got {self.rmsprop_decay!r}")
        batch = self.num_envs * self.rollout_length
        if self.total_steps < batch:
            raise ValueError(f"total_steps must be >= num_envs * rollout_length ({batch})")


# rl-baselines3-zoo hyperparams/a2c.yml entries that rlkit's environments cover. The zoo's
# `normalize: true` (VecNormalize: observations and rewards) is normalize_obs +
# normalize_rewards; here the observation statistics live in the policy and are updated once
# per iteration rather than at every step.
PRESETS: dict[str, dict[str, Any]] = {
    "zoo/Acrobot-v1": {
        "num_envs": 16,
        "total_steps": 500_000,
        "normalize_obs": True,
        "normalize_rewards": True,
    },
    "zoo/MountainCar-v0": {
        "num_envs": 16,
        "total_steps": 1_000_000,
        "normalize_obs": True,
        "normalize_rewards": True,
    },
}

# A2C carries what every on-policy agent carries (rlkit.onpolicy).
TrainState = OnPolicyState


def make(config: Config, env: Any, env_params: Any) -> Algorithm:
    """Build A2C for `env` (a single environment, or a vectorised one with config.num_envs)."""
    venv = as_vector_env(
        env, config.num_envs, scale_rewards_gamma=config.gamma if config.normalize_rewards else None
    )
    action_space = env.action_space(env_params)
    network = ActorCritic(action_space, config.hidden, config.activation)
    tx = make_optimiser(config.optimiser, eps=config.optimiser_eps, decay=config.rmsprop_decay)
    batch_size = config.num_envs * config.rollout_length
    num_updates = config.total_steps // batch_size

    def policy_of(state: TrainState) -> PolicyParams:
        return policy_params(state, config.normalize_obs)

    def init(key: jax.Array, hparams: dict[str, jax.Array]) -> TrainState:
        return init_state(key, hparams, venv, env_params, network, tx)

    def loss_fn(params: Any, batch: dict[str, Any], h: dict[str, jax.Array]) -> tuple:
        """The A2C loss of a batch [B] (advantages and returns are constants)."""
        actor_out, values = network.apply(params, batch["x"])
        dist = action_distribution(action_space, actor_out, batch["mask"])
        advantages = batch["advantage"]
        if config.normalize_advantages:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        policy_loss = -(dist.log_prob(batch["action"]) * advantages).mean()
        value_loss = 0.5 * ((values - batch["target"]) ** 2).mean()
        entropy = dist.entropy().mean()
        loss = policy_loss + h["vf_coef"] * value_loss - h["ent_coef"] * entropy
        return loss, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy}

    def update(state: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
        h = state.hparams
        policy = policy_of(state)
        key, rollout_key = jax.random.split(state.key)

        # Collect, then n-step / GAE returns bootstrapped from V(true next state).
        carry, traj, next_values = collect(
            venv, env_params, network, policy, state.env, rollout_key, config.rollout_length
        )
        advantages, targets = gae(
            traj.reward,
            traj.extras["value"],
            next_values,
            traj.terminated,
            traj.truncated,
            h["gamma"],
            h["gae_lambda"],
        )

        # Learn: one gradient step on the whole batch.
        lr = h["learning_rate"] * ((1.0 - state.step / num_updates) if config.anneal_lr else 1.0)
        batch = flatten_batch(traj, policy, advantage=advantages, target=targets)
        grads, stats = jax.grad(loss_fn, has_aux=True)(state.params, batch, h)
        params, opt_state, grad_norm = apply_gradients(
            tx, state.params, grads, state.opt_state, lr, h["max_grad_norm"]
        )

        obs_stats = state.obs_stats
        if config.normalize_obs:
            obs_stats = obs_stats.update(batch["raw_x"])
        metrics = {
            **stats,
            **episode_metrics(traj.episode),
            "explained_variance": _explained_variance(batch["value"], batch["target"]),
            "grad_norm": grad_norm,
            "learning_rate": lr,
        }
        new_state = TrainState(
            params=params,
            opt_state=opt_state,
            obs_stats=obs_stats,
            env=carry,
            key=key,
            step=state.step + 1,
            hparams=h,
        )
        return new_state, metrics

    return Algorithm(
        init=init,
        update=update,
        act=make_act(network),
        policy_params=policy_of,
        hparams=hparams_of(config),
        steps_per_update=batch_size,
        num_updates=num_updates,
        config=config,
        env=env,
        env_params=env_params,
    )


def _explained_variance(values: jax.Array, targets: jax.Array) -> jax.Array:
    """1 - Var[G - V] / Var[G] over a batch [B] (1: perfect critic, <= 0: no better than a
    constant); NaN when the targets do not vary."""
    var_targets = targets.var()
    return jnp.where(var_targets > 0, 1.0 - (targets - values).var() / var_targets, jnp.nan)
