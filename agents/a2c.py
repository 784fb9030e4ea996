"""A2C: synchronous advantage actor-critic (Mnih et al. 2016), as in Stable-Baselines3.

The synchronous form of A3C that OpenAI Baselines and Stable-Baselines3 implement.

One iteration (rlkit.data.onpolicy): collect `rollout_length` steps from `num_envs` copies;
compute truncation-aware GAE advantages A and returns G = A + V (lambda = 1 gives the n-step
returns of the paper, each step bootstrapping from V at the end of the rollout); take ONE
gradient step on the whole batch of

    L = -E[log pi(a|s) A] + c_v 0.5 E[(V(s) - G)^2] - c_e E[H(pi(.|s))]      (`loss`).

Switches: normalize_advantages (off, as in SB3; in `loss`), anneal_lr, max_grad_norm (0 = off),
normalize_obs, normalize_rewards, optimiser (RMSprop or Adam). `make(..., loss=fn)` replaces the
loss: fn(new, batch, coefs, config) -> (scalar, stats), or an `rlkit.core.algorithm.Objective`
(rlkit.data.onpolicy). Defaults are the
rl-baselines3-zoo CartPole-v1 entry (SB3 A2C defaults with 8 envs and ent_coef 0;
shared/reference/PAPER-TARGETS.md #8), with two differences of form:

- the value loss carries the 1/2 of rlkit's other agents, while SB3's is the plain mean squared
  error, so SB3's vf_coef 0.5 is vf_coef 1.0 here;
- rlkit's RMSprop (rlkit.ops.optim) puts eps inside the square root, sqrt(v + eps), and starts the
  squared-gradient average v at 0; SB3's CartPole entry uses torch's RMSprop, sqrt(v) + eps
  from v = 0 (the zoo's RMSpropTFLike, for Atari, is sqrt(v + eps) from v = 1).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

import paper_configs
from rlkit.core import fields
from rlkit.core.algorithm import Algorithm, Objective
from rlkit.core.config import ConfigError, hp, validate
from rlkit.data import onpolicy
from rlkit.data.onpolicy import OnPolicyState
from rlkit.nets.actor_critic import ActorCritic, PolicyEval
from rlkit.ops.losses import policy_gradient_loss, standardize, value_loss
from rlkit.ops.optim import make_optimiser

__all__ = ["PRESETS", "Config", "TrainState", "loss", "make"]


@dataclasses.dataclass(frozen=True)
class Config:
    """A2C hyperparameters. Defaults: rl-baselines3-zoo a2c.yml CartPole-v1 on SB3's A2C."""

    total_steps: int = fields.total_steps(500_000, "zoo CartPole: 5e5")
    num_envs: int = fields.num_envs(8, "zoo CartPole n_envs: 8")
    rollout_length: int = fields.rollout_length(5, "SB3 n_steps: 5")
    learning_rate: float = fields.learning_rate(7e-4, "SB3: 7e-4")
    anneal_lr: bool = fields.anneal_lr(False, "SB3: constant")
    gamma: float = fields.gamma(0.99, "SB3: 0.99")
    gae_lambda: float = fields.gae_lambda(1.0, "SB3: 1.0")
    vf_coef: float = fields.vf_coef(1.0, "SB3: 0.5 on (V - G)^2 without the 1/2, i.e. 1.0 here")
    ent_coef: float = fields.ent_coef(0.0, "zoo CartPole: 0.0")
    normalize_advantages: bool = fields.normalize_advantages(False, "SB3: off")
    max_grad_norm: float = fields.max_grad_norm(0.5, "SB3: 0.5")
    normalize_obs: bool = fields.normalize_obs(False, "zoo CartPole: off")
    normalize_rewards: bool = fields.normalize_rewards(False, "zoo CartPole: off")
    optimiser: str = fields.optimiser("rmsprop", "SB3: RMSprop, see the module docstring")
    optimiser_eps: float = fields.optimiser_eps(1e-5, "SB3 rms_prop_eps: 1e-5")
    rmsprop_decay: float = hp(0.99, "RMSprop squared-gradient decay (SB3 alpha: 0.99)", low=0.0)
    hidden: tuple[int, ...] = fields.hidden((64, 64), "actor and critic; SB3 MlpPolicy: 64x64")
    activation: str = fields.activation("tanh", "SB3 MlpPolicy: tanh")

    def __post_init__(self) -> None:
        validate(self)
        if self.rmsprop_decay >= 1.0:
            raise ConfigError(f"rmsprop_decay must be in [0, 1), got {self.rmsprop_decay!r}")
        onpolicy.check_batch(self)


# Named settings: the paper configs for a2c (paper_configs/*.yaml, sources in each).
PRESETS = paper_configs.presets("a2c", Config)

# A2C carries what every on-policy agent carries (rlkit.data.onpolicy).
TrainState = OnPolicyState


def loss(
    new: PolicyEval, batch: dict[str, Any], coefs: dict[str, jax.Array], config: Config
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The A2C loss of a batch of B steps (the module docstring's L):

        A = standardize(advantage) if normalize_advantages else advantage       [B]
        L = -mean_b log pi(a_b|s_b) A_b + c_v 0.5 mean_b (V(s_b) - G_b)^2 - c_e mean_b H_b

    with G = batch["target"], c_v = coefs["vf_coef"], c_e = coefs["ent_coef"]. Returns (L,
    stats): policy_loss, value_loss, entropy."""
    advantages = batch["advantage"]
    if config.normalize_advantages:
        advantages = standardize(advantages)
    policy_loss = policy_gradient_loss(new.dist.log_prob(batch["action"]), advantages)
    critic_loss = value_loss(new.values, batch["target"])
    entropy = new.dist.entropy().mean()
    total = policy_loss + coefs["vf_coef"] * critic_loss - coefs["ent_coef"] * entropy
    return total, {"policy_loss": policy_loss, "value_loss": critic_loss, "entropy": entropy}


def make(
    config: Config, env: Any, env_params: Any, loss: onpolicy.Loss | Objective = loss
) -> Algorithm:
    """Build A2C for `env` (a single environment, or a vectorised one with config.num_envs);
    `loss` replaces the loss (module docstring)."""
    network = ActorCritic(env.action_space(env_params), config.hidden, config.activation)
    tx = make_optimiser(config.optimiser, eps=config.optimiser_eps, decay=config.rmsprop_decay)
    return onpolicy.build(
        config,
        env,
        env_params,
        network,
        tx,
        loss=loss,
        estimate=onpolicy.gae_advantages,
        normalize_rewards=config.normalize_rewards,
    )
