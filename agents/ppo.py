"""Proximal Policy Optimization (Schulman et al. 2017) with the switches its ablations need.

One iteration (rlkit.data.onpolicy): collect `rollout_length` steps from `num_envs` copies;
compute truncation-aware GAE advantages A and value targets G = A + V_old; run `num_epochs`
passes of `num_minibatches` shuffled minibatches over the batch, a gradient step on each of

    L = -E[min(rho A, clip(rho, 1-eps, 1+eps) A)] + c_v E[value loss] - c_e E[H(pi(.|s))],
    rho = pi(a|s) / pi_old(a|s),

where the value loss is 0.5 max((V - G)^2, (V_old + clip(V - V_old, -eps, eps) - G)^2) when
`clip_value`, else 0.5 (V - G)^2 (`loss`). Each detail of "The 37 implementation details of PPO"
(Huang et al. 2022) that an ablation turns off is one switch: clip_policy, clip_value,
normalize_advantages (in `loss`), anneal_lr, anneal_clip, anneal_entropy (in `coefficients`),
max_grad_norm (0 = off), normalize_obs, normalize_rewards (in rlkit.data.onpolicy).

`make(..., loss=fn)` replaces the loss: fn(new, batch, coefs, config) -> (scalar, stats), or an
`rlkit.core.algorithm.Objective` whose state reaches fn in `coefs` (rlkit.data.onpolicy).

Defaults are CleanRL's ppo.py (CartPole); agents/presets/ppo.yaml holds the ML-Agents presets
(config/ppo/3DBall.yaml, 3DBallHard.yaml and GridWorld.yaml, release_19) and rejax's CartPole.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

import paper_configs
from rlkit.core import fields
from rlkit.core.algorithm import Algorithm, Objective
from rlkit.core.config import hp, validate
from rlkit.data import onpolicy
from rlkit.data.onpolicy import OnPolicyState
from rlkit.nets.actor_critic import ActorCritic, PolicyEval
from rlkit.ops.losses import (
    approx_kl,
    clipped_surrogate_loss,
    standardize,
    value_loss,
)
from rlkit.ops.optim import make_optimiser
from rlkit.ops.schedules import linear, progress

__all__ = ["PRESETS", "Config", "TrainState", "coefficients", "loss", "make"]


@dataclasses.dataclass(frozen=True)
class Config:
    """PPO hyperparameters. Defaults: CleanRL ppo.py / PureJaxRL CartPole (PAPER-TARGETS #1)."""

    total_steps: int = fields.total_steps(500_000, "CleanRL: 500k")
    num_envs: int = fields.num_envs(4, "CleanRL: 4")
    rollout_length: int = fields.rollout_length(128, "CleanRL num_steps: 128")
    num_epochs: int = hp(4, "passes over each batch (CleanRL update_epochs: 4)", low=1)
    num_minibatches: int = hp(4, "minibatches per epoch (CleanRL: 4)", low=1)
    learning_rate: float = fields.learning_rate(2.5e-4, "CleanRL: 2.5e-4")
    anneal_lr: bool = fields.anneal_lr(True, "CleanRL: on")
    gamma: float = fields.gamma(0.99, "CleanRL: 0.99")
    gae_lambda: float = fields.gae_lambda(0.95, "CleanRL: 0.95")
    clip_policy: bool = hp(True, "clip the surrogate objective (off: plain policy gradient)")
    clip_eps: float = hp(0.2, "surrogate clip epsilon (CleanRL: 0.2)", low=0.0, traced=True)
    anneal_clip: bool = hp(False, "decay clip_eps linearly to clip_eps_final (ML-Agents: on)")
    clip_eps_final: float = hp(
        0.1, "final clip epsilon when annealed (ML-Agents: 0.1)", low=0.0, traced=True
    )
    clip_value: bool = hp(True, "clip the value loss around the old values (CleanRL: on)")
    vf_coef: float = fields.vf_coef(0.5, "CleanRL: 0.5")
    ent_coef: float = fields.ent_coef(0.01, "CleanRL: 0.01")
    anneal_entropy: bool = hp(False, "decay ent_coef linearly to ent_coef_final (ML-Agents: on)")
    ent_coef_final: float = hp(
        1e-5, "final entropy coefficient when annealed (ML-Agents: 1e-5)", low=0.0, traced=True
    )
    normalize_advantages: bool = fields.normalize_advantages(True, "per minibatch; CleanRL: on")
    max_grad_norm: float = fields.max_grad_norm(0.5, "CleanRL: 0.5")
    normalize_obs: bool = fields.normalize_obs(False, "ML-Agents `normalize`; CleanRL: off")
    normalize_rewards: bool = fields.normalize_rewards(False, "CleanRL ppo.py: off")
    optimiser: str = fields.optimiser("adam", "CleanRL: adam")
    optimiser_eps: float = fields.optimiser_eps(1e-5, "CleanRL: 1e-5")
    hidden: tuple[int, ...] = fields.hidden((64, 64), "actor and critic; CleanRL: 64x64")
    activation: str = fields.activation("tanh", "CleanRL: tanh")

    def __post_init__(self) -> None:
        validate(self)
        onpolicy.check_batch(self, self.num_minibatches)


# Named settings: the paper configs for ppo (paper_configs/*.yaml, sources in each).
PRESETS = paper_configs.presets("ppo", Config)

# PPO carries what every on-policy agent carries (rlkit.data.onpolicy).
TrainState = OnPolicyState


def coefficients(
    config: Config, hparams: dict[str, jax.Array], iteration: jax.Array, num_iterations: int
) -> dict[str, jax.Array]:
    """The coefficients of iteration i of num_iterations: the hparams, with p = i / num_iterations

        learning_rate_i = learning_rate (1 - p)                            when anneal_lr
        clip_eps_i      = clip_eps + (clip_eps_final - clip_eps) p         when anneal_clip
        ent_coef_i      = ent_coef + (ent_coef_final - ent_coef) p         when anneal_entropy

    (ML-Agents' linear decays of learning rate, epsilon and beta)."""
    coefs = onpolicy.coefficients(config, hparams, iteration, num_iterations)
    done = progress(iteration, num_iterations)
    if config.anneal_clip:
        coefs["clip_eps"] = linear(hparams["clip_eps"], hparams["clip_eps_final"], done)
    if config.anneal_entropy:
        coefs["ent_coef"] = linear(hparams["ent_coef"], hparams["ent_coef_final"], done)
    return coefs


def loss(
    new: PolicyEval, batch: dict[str, Any], coefs: dict[str, jax.Array], config: Config
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """PPO's loss on a minibatch of B steps (the module docstring's L):

        log rho = log pi(a|s) - log pi_old(a|s)                    [B]
        A       = standardize(advantage) if normalize_advantages   [B] (per minibatch)
        L       = clipped_surrogate_loss(log rho, A, eps, clip_policy)
                  + c_v value_loss(V, G, V_old if clip_value, eps) - c_e mean_b H(pi(.|s_b))

    with eps = coefs["clip_eps"] (for both clips), c_v = coefs["vf_coef"], c_e =
    coefs["ent_coef"]. Returns (L, stats): policy_loss, value_loss, entropy, approx_kl and
    clip_fraction (the fraction of steps with |rho - 1| > eps)."""
    log_ratio = new.dist.log_prob(batch["action"]) - batch["log_prob"]
    advantages = batch["advantage"]
    if config.normalize_advantages:
        advantages = standardize(advantages)
    eps = coefs["clip_eps"]
    policy_loss = clipped_surrogate_loss(log_ratio, advantages, eps, config.clip_policy)
    old_values = batch["value"] if config.clip_value else None
    critic_loss = value_loss(new.values, batch["target"], old_values, eps)
    entropy = new.dist.entropy().mean()
    total = policy_loss + coefs["vf_coef"] * critic_loss - coefs["ent_coef"] * entropy
    return total, {
        "policy_loss": policy_loss,
        "value_loss": critic_loss,
        "entropy": entropy,
        "approx_kl": approx_kl(log_ratio),
        "clip_fraction": (jnp.abs(jnp.exp(log_ratio) - 1.0) > eps).mean(),
    }


def make(
    config: Config, env: Any, env_params: Any, loss: onpolicy.Loss | Objective = loss
) -> Algorithm:
    """Build PPO for `env` (a single environment, or a vectorised one with config.num_envs);
    `loss` replaces the loss (module docstring)."""
    network = ActorCritic(env.action_space(env_params), config.hidden, config.activation)
    tx = make_optimiser(config.optimiser, eps=config.optimiser_eps)
    return onpolicy.build(
        config,
        env,
        env_params,
        network,
        tx,
        loss=loss,
        estimate=onpolicy.gae_advantages,
        coefficients=coefficients,
        num_epochs=config.num_epochs,
        num_minibatches=config.num_minibatches,
        normalize_rewards=config.normalize_rewards,
    )
