"""The actor-critic policy shared by the on-policy agents (REINFORCE, A2C, PPO).

Separate actor and critic MLPs (one of "The 37 implementation details of PPO"): the actor
outputs categorical logits for a Discrete action space or a Gaussian mean with a
state-independent log-std for a Box; the critic a scalar value. Observations are optionally
normalised by running statistics that travel with the parameters (as ML-Agents does), so
evaluation and export see the same inputs as training.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from rlkit.core.spaces import Box, Discrete, Space
from rlkit.nets.layers import (
    MLP,
    CategoricalHead,
    GaussianHead,
    PolicyParams,
    ValueHead,
    normalized_input,
)
from rlkit.ops.distributions import Categorical, DiagGaussian

__all__ = ["ActorCritic", "PolicyEval", "action_distribution", "evaluate", "make_act"]


class ActorCritic(nn.Module):
    """obs [B, ...] -> (actor outputs, value [B]).

    Actor outputs: logits [B, n] (discrete) or (mean [B, d], log_std [B, d]) (continuous).
    """

    action_space: Space
    hidden: Sequence[int] = (64, 64)
    activation: str = "tanh"
    use_critic: bool = True

    def setup(self) -> None:
        self.actor_torso = MLP(self.hidden, self.activation)
        if isinstance(self.action_space, Discrete):
            self.actor_head = CategoricalHead(int(self.action_space.n))
        elif isinstance(self.action_space, Box):
            self.actor_head = GaussianHead(math.prod(self.action_space.shape))
        else:
            raise TypeError(f"unsupported action space {type(self.action_space).__name__}")
        if self.use_critic:
            self.critic_torso = MLP(self.hidden, self.activation)
            self.critic_head = ValueHead()

    def __call__(self, x: jax.Array) -> tuple[Any, jax.Array]:
        return self.actor(x), self.value(x)

    def actor(self, x: jax.Array) -> Any:
        return self.actor_head(self.actor_torso(x))

    def value(self, x: jax.Array) -> jax.Array:
        if not self.use_critic:
            return jnp.zeros(x.shape[:-1], x.dtype)
        return self.critic_head(self.critic_torso(x))


def action_distribution(
    action_space: Space, actor_out: Any, mask: jax.Array | None = None
) -> Categorical | DiagGaussian:
    """The action distribution of actor outputs (and an action mask, True = allowed)."""
    if isinstance(action_space, Discrete):
        return Categorical(logits=actor_out, mask=mask)
    mean, log_std = actor_out
    return DiagGaussian(mean=mean, log_std=log_std)


class PolicyEval(NamedTuple):
    """What the actor-critic says about a batch of B states: what an on-policy loss is a function
    of (beside the batch's constants).

    dist: the action distribution pi(.|s) (Categorical over [B, n], or DiagGaussian [B, d]).
    values: V(s) [B] (zeros for a network without a critic).
    """

    dist: Categorical | DiagGaussian
    values: jax.Array


def evaluate(
    network: ActorCritic, params: Any, x: jax.Array, mask: jax.Array | None = None
) -> PolicyEval:
    """The network on inputs x [B, F] (already normalised), with action masks [B, n] or None."""
    actor_out, values = network.apply(params, x)
    return PolicyEval(action_distribution(network.action_space, actor_out, mask), values)


def make_act(network: ActorCritic) -> Callable[..., jax.Array]:
    """The Algorithm's `act` for an actor-critic network.

    act(policy, obs [B, ...], key, deterministic=False, action_mask=None) -> actions [B, ...]:
    a sample of the actor's distribution, or its mode when `deterministic`.
    """

    def act(
        policy: PolicyParams,
        obs: Any,
        key: jax.Array,
        deterministic: bool = False,
        action_mask: jax.Array | None = None,
    ) -> jax.Array:
        x = normalized_input(policy, obs)
        actor_out = network.apply(policy.params, x, method="actor")
        dist = action_distribution(network.action_space, actor_out, action_mask)
        return dist.mode() if deterministic else dist.sample(key)

    return act
