"""Config fields that several agents have, declared once: name, meaning, range and kind here;
only the default and its source differ between agents.

    learning_rate: float = fields.learning_rate(2.5e-4, "CleanRL: 2.5e-4")

gives the same help text, range and traced flag in every agent that has a learning rate, so one
name always means one thing (`rlkit algos ALGO` lists them). A field only one agent has is an
`hp(...)` in that agent's Config.
"""

from __future__ import annotations

from typing import Any

from rlkit.core.config import hp
from rlkit.ops.optim import OPTIMISERS

__all__ = [
    "ACTIVATIONS",
    "activation",
    "anneal_lr",
    "batch_size",
    "buffer_size",
    "ent_coef",
    "gae_lambda",
    "gamma",
    "gradient_steps",
    "hidden",
    "learning_rate",
    "learning_starts",
    "max_grad_norm",
    "normalize_advantages",
    "normalize_obs",
    "normalize_rewards",
    "num_envs",
    "optimiser",
    "optimiser_eps",
    "prioritised",
    "priority_alpha",
    "priority_beta_start",
    "priority_eps",
    "rollout_length",
    "steps_per_update",
    "target_update_period",
    "tau",
    "total_steps",
    "train_frequency",
    "vf_coef",
]

#: Hidden activations the networks know (rlkit.nets.layers maps each name to its function).
ACTIVATIONS = ("tanh", "relu", "gelu", "swish")


# -- every agent ---------------------------------------------------------------------------------


def total_steps(default: int, source: str) -> Any:
    return hp(default, f"environment steps per seed, summed over copies ({source})", low=1)


def num_envs(default: int, source: str) -> Any:
    return hp(default, f"vectorised environment copies ({source})", low=1)


def learning_rate(default: float, source: str) -> Any:
    return hp(default, f"optimiser step size ({source})", low=0.0, traced=True)


def gamma(default: float, source: str) -> Any:
    return hp(default, f"discount ({source})", low=0.0, high=1.0, traced=True)


def max_grad_norm(default: float, source: str) -> Any:
    return hp(default, f"global gradient-norm clip, 0 = off ({source})", low=0.0, traced=True)


def optimiser(default: str, source: str) -> Any:
    return hp(default, f"optimiser ({source})", choices=OPTIMISERS)


def optimiser_eps(default: float, source: str) -> Any:
    return hp(default, f"optimiser epsilon ({source})", low=0.0, low_open=True)


def hidden(default: tuple[int, ...], source: str) -> Any:
    return hp(default, f"hidden layer widths of every network ({source})", low=1)


def activation(default: str, source: str) -> Any:
    return hp(default, f"hidden activation ({source})", choices=ACTIVATIONS)


def normalize_obs(default: bool, source: str) -> Any:
    return hp(
        default,
        f"normalise observations by running mean/std kept with the policy ({source})",
    )


# -- on-policy agents ----------------------------------------------------------------------------


def rollout_length(default: int, source: str) -> Any:
    return hp(default, f"steps per copy per iteration ({source})", low=1)


def anneal_lr(default: bool, source: str) -> Any:
    return hp(default, f"decay the learning rate linearly to 0 over training ({source})")


def gae_lambda(default: float, source: str) -> Any:
    return hp(default, f"GAE lambda; 1 = n-step returns ({source})", low=0.0, high=1.0, traced=True)


def vf_coef(default: float, source: str) -> Any:
    return hp(
        default, f"coefficient of the value loss 0.5 (V - G)^2 ({source})", low=0.0, traced=True
    )


def ent_coef(default: float, source: str) -> Any:
    return hp(default, f"entropy bonus coefficient ({source})", low=0.0, traced=True)


def normalize_advantages(default: bool, source: str) -> Any:
    return hp(default, f"standardise advantages per (mini)batch ({source})")


def normalize_rewards(default: bool, source: str) -> Any:
    return hp(default, f"scale rewards by the running std of the discounted return ({source})")


# -- off-policy agents ---------------------------------------------------------------------------


def train_frequency(default: int, source: str) -> Any:
    return hp(
        default,
        f"steps per copy per iteration, each adding num_envs transitions to the buffer ({source})",
        low=1,
    )


def gradient_steps(default: int, source: str) -> Any:
    return hp(default, f"gradient steps per iteration ({source})", low=1)


def steps_per_update(default: float, source: str) -> Any:
    return hp(
        default,
        "ML-Agents steps_per_update: agent steps per gradient step; > 0 sets gradient_steps = "
        f"num_envs * train_frequency / steps_per_update, 0 = use gradient_steps ({source})",
        low=0.0,
    )


def learning_starts(default: int, source: str) -> Any:
    return hp(
        default,
        "environment steps (summed over copies) of uniform random actions that fill the buffer "
        f"before the first iteration; they count towards total_steps ({source})",
        low=0,
    )


def buffer_size(default: int, source: str) -> Any:
    return hp(
        default, f"replay capacity in transitions, split evenly over the copies ({source})", low=1
    )


def batch_size(default: int, source: str) -> Any:
    return hp(default, f"transitions (or n-step windows) per gradient step ({source})", low=1)


def tau(default: float, source: str) -> Any:
    return hp(
        default,
        f"target update theta' <- tau theta + (1 - tau) theta'; 1 = hard copy ({source})",
        low=0.0,
        low_open=True,
        high=1.0,
        traced=True,
    )


def target_update_period(default: int, source: str) -> Any:
    return hp(default, f"gradient steps between target-network updates ({source})", low=1)


# Prioritised replay (Schaul et al. 2016, proportional). rlkit.data.offpolicy adds new windows
# with priority_alpha read from the hparams under this name.


def prioritised(default: bool, source: str) -> Any:
    return hp(default, f"proportional prioritised replay (Schaul et al. 2016; {source})")


def priority_alpha(default: float, source: str) -> Any:
    return hp(default, f"priority exponent alpha ({source})", low=0.0, traced=True)


def priority_beta_start(default: float, source: str) -> Any:
    return hp(
        default,
        f"importance-weight exponent at step 0, annealed linearly to 1 ({source})",
        low=0.0,
        high=1.0,
        traced=True,
    )


def priority_eps(default: float, source: str) -> Any:
    return hp(
        default,
        f"added to |TD error| so no window has priority 0 ({source})",
        low=0.0,
        low_open=True,
    )
