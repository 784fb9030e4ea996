"""REINFORCE (Williams 1992) with an optional learned baseline.

One iteration: collect `rollout_length` steps from `num_envs` copies (long enough to hold whole
episodes: CartPole-v1's are at most 500 steps); compute Monte-Carlo returns

    G_t = r_t + gamma (1 - term_t) [ cut_t ? b(s'_t) : G_{t+1} ],

where a cut is a time-limit truncation or the end of the rollout. An episode that crosses the
end of the rollout (or is truncated) bootstraps from the baseline's value of the state it
stopped in, V(s'_t), with a baseline, and from 0 without one (then G is the plain, truncated
Monte-Carlo return). The episode goes on in the next rollout, whose first steps get the returns
of the rest of it (`monte_carlo_returns`). Then one Adam step on

    L = -E[log pi(a|s) w] + c_v 0.5 E[(V(s) - G)^2] - c_e E[H(pi(.|s))],    w = G - b(s),

with b(s) = V(s) of the acting critic (`use_baseline`), or b = 0 and no critic parameters at all.
`normalize_returns` standardises w over the batch (without a baseline these are the
standardised returns of PyTorch's examples/reinforce.py); the critic always fits the raw G
(`loss`; `make(..., loss=fn)` replaces it, as in rlkit.data.onpolicy).
As in most implementations, the gamma^t factor of the episodic policy-gradient theorem is left
out (every step's term has weight 1).

There is no canonical REINFORCE configuration for CartPole (shared/reference/PAPER-TARGETS.md):
the defaults were chosen here, see Config.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

import paper_configs
from rlkit.core import fields
from rlkit.core.algorithm import Algorithm, Objective
from rlkit.core.config import hp, validate
from rlkit.data import onpolicy
from rlkit.data.onpolicy import OnPolicyState
from rlkit.data.rollout import Transition
from rlkit.nets.actor_critic import ActorCritic, PolicyEval
from rlkit.ops.losses import policy_gradient_loss, standardize, value_loss
from rlkit.ops.optim import make_optimiser
from rlkit.ops.returns import discounted_returns

__all__ = ["PRESETS", "Config", "TrainState", "loss", "make", "monte_carlo_returns"]


@dataclasses.dataclass(frozen=True)
class Config:
    """REINFORCE hyperparameters. No canonical reference exists: the defaults learn CartPole-v1
    (mean greedy return >= 400 over 4 seeds in 1M steps, tests/test_reinforce.py); where a value
    follows common practice the help says whose."""

    total_steps: int = fields.total_steps(1_000_000, "chosen here")
    num_envs: int = fields.num_envs(4, "chosen here")
    rollout_length: int = fields.rollout_length(
        500, "whole episodes: CartPole-v1's time limit is 500"
    )
    learning_rate: float = fields.learning_rate(
        3e-3,
        "Adam; chosen here: best of 3e-4, 1e-3, 2e-3, 3e-3 on CartPole-v1 with a baseline; "
        "without one 1e-3 is steadier",
    )
    anneal_lr: bool = fields.anneal_lr(False, "chosen here")
    gamma: float = fields.gamma(0.99, "PyTorch examples/reinforce.py: 0.99")
    use_baseline: bool = hp(True, "subtract a learned state-value baseline (separate critic)")
    vf_coef: float = fields.vf_coef(0.5, "of the baseline; chosen here")
    ent_coef: float = fields.ent_coef(0.0, "chosen here")
    normalize_returns: bool = hp(
        False, "standardise the policy-gradient weights G - b per batch (PyTorch example: on)"
    )
    max_grad_norm: float = fields.max_grad_norm(0.0, "chosen here")
    normalize_obs: bool = fields.normalize_obs(False, "chosen here")
    optimiser: str = fields.optimiser("adam", "chosen here")
    optimiser_eps: float = fields.optimiser_eps(1e-8, "Adam's: 1e-8")
    hidden: tuple[int, ...] = fields.hidden((64, 64), "actor and critic; chosen here")
    activation: str = fields.activation("tanh", "chosen here")

    def __post_init__(self) -> None:
        validate(self)
        onpolicy.check_batch(self)


# Named settings: the paper configs for reinforce (paper_configs/*.yaml, sources in each).
PRESETS = paper_configs.presets("reinforce", Config)

# REINFORCE carries what every on-policy agent carries (rlkit.data.onpolicy); without a baseline
# the params hold no critic.
TrainState = OnPolicyState


def monte_carlo_returns(
    traj: Transition, next_values: jax.Array, coefs: dict[str, jax.Array]
) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
    """G_t of the module docstring, [T, N] (rlkit.ops.returns.discounted_returns with
    coefs["gamma"]), bootstrapped from next_values = b(s'_t) where an episode is cut (0 without a
    baseline). Returns ({"returns": G}, {"mean_return": mean G})."""
    returns = discounted_returns(
        traj.reward, next_values, traj.terminated, traj.truncated, coefs["gamma"]
    )
    return {"returns": returns}, {"mean_return": returns.mean()}


def loss(
    new: PolicyEval, batch: dict[str, Any], coefs: dict[str, jax.Array], config: Config
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The REINFORCE loss of a batch of B steps (the module docstring's L):

        w = G - b(s), standardised if normalize_returns                           [B]
        L = -mean_b log pi(a_b|s_b) w_b - c_e mean_b H_b
            (+ c_v 0.5 mean_b (V(s_b) - G_b)^2 with a baseline)

    with G = batch["returns"], b(s) = batch["value"] (V of the acting critic; 0 without one), c_v =
    coefs["vf_coef"], c_e = coefs["ent_coef"]. Returns (L, stats): policy_loss, entropy and, with
    a baseline, value_loss."""
    weights = batch["returns"] - batch["value"]
    if config.normalize_returns:
        weights = standardize(weights)
    policy_loss = policy_gradient_loss(new.dist.log_prob(batch["action"]), weights)
    entropy = new.dist.entropy().mean()
    total = policy_loss - coefs["ent_coef"] * entropy
    stats = {"policy_loss": policy_loss, "entropy": entropy}
    if config.use_baseline:
        stats["value_loss"] = value_loss(new.values, batch["returns"])
        total = total + coefs["vf_coef"] * stats["value_loss"]
    return total, stats


def make(
    config: Config, env: Any, env_params: Any, loss: onpolicy.Loss | Objective = loss
) -> Algorithm:
    """Build REINFORCE for `env` (a single environment, or a vectorised one); `loss` replaces the
    loss (module docstring)."""
    # Without a baseline the network has no critic and its values are 0, so the returns
    # bootstrap from 0 and w = G.
    network = ActorCritic(
        env.action_space(env_params), config.hidden, config.activation, config.use_baseline
    )
    tx = make_optimiser(config.optimiser, eps=config.optimiser_eps)
    return onpolicy.build(
        config, env, env_params, network, tx, loss=loss, estimate=monte_carlo_returns
    )
