"""What the on-policy agents (REINFORCE, A2C, PPO) share: their TrainState and its
initialisation, acting with the actor-critic and collecting a rollout whose every step carries
V(s_t) and V(s'_t)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from rlkit.networks import flatten_obs
from rlkit.normalization import RunningStats
from rlkit.policies import ActorCritic, PolicyParams, action_distribution, normalized_input
from rlkit.rollout import EnvCarry, Transition, reset_envs, rollout

__all__ = [
    "OnPolicyState",
    "collect",
    "flatten_batch",
    "init_state",
    "merge_time_env",
    "policy_params",
]


@struct.dataclass
class OnPolicyState:
    """Everything an on-policy agent carries between iterations (leaves gain a seed axis under
    vmap): actor-critic weights, optimiser state, running observation statistics (read only when
    the policy normalises), the vectorised environment, the PRNG key, the number of iterations
    done and the traced hyperparameters."""

    params: Any
    opt_state: Any
    obs_stats: RunningStats
    env: EnvCarry
    key: jax.Array
    step: jax.Array  # iterations done
    hparams: dict[str, jax.Array]


def init_state(
    key: jax.Array,
    hparams: dict[str, jax.Array],
    venv: Any,
    env_params: Any,
    network: ActorCritic,
    tx: optax.GradientTransformation,
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
    )


def policy_params(state: OnPolicyState, normalize_obs: bool) -> PolicyParams:
    """What `act` needs from a state: the weights and, when normalising, the statistics."""
    return PolicyParams(state.params, state.obs_stats, normalize_obs)


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

    Keys: x (network input, normalised with the acting policy's statistics), raw_x (flat
    unnormalised input, to update the statistics), action, mask (or None), log_prob, value,
    and every extra [T, N] array given by keyword (advantages, targets, ...).
    """
    raw_x = flatten_obs(jax.tree.map(merge_time_env, traj.obs))
    return {
        "x": policy.obs_stats.normalize(raw_x) if policy.normalize else raw_x,
        "raw_x": raw_x,
        "action": merge_time_env(traj.action),
        "mask": None if traj.action_mask is None else merge_time_env(traj.action_mask),
        "log_prob": merge_time_env(traj.extras["log_prob"]),
        "value": merge_time_env(traj.extras["value"]),
        **{name: merge_time_env(jnp.asarray(v)) for name, v in per_step.items()},
    }
