"""REINFORCE (Williams 1992) with an optional learned baseline.

One iteration: collect `rollout_length` steps from `num_envs` copies (long enough to hold whole
episodes: CartPole-v1's are at most 500 steps); compute Monte-Carlo returns

    G_t = r_t + gamma (1 - term_t) [ cut_t ? b(s'_t) : G_{t+1} ],

where a cut is a time-limit truncation or the end of the rollout. An episode that crosses the
end of the rollout (or is truncated) bootstraps from the baseline's value of the state it
stopped in, V(s'_t), with a baseline, and from 0 without one (then G is the plain, truncated
Monte-Carlo return). The episode goes on in the next rollout, whose first steps get the returns
of the rest of it. Then one Adam step on

    L = -E[log pi(a|s) w] + c_v 0.5 E[(V(s) - G)^2] - c_e E[H(pi(.|s))],    w = G - b(s),

with b(s) = V(s) of the acting critic (`use_baseline`), or b = 0 and no critic parameters at all.
`normalize_returns` standardises w over the batch (without a baseline these are the
standardised returns of PyTorch's examples/reinforce.py); the critic always fits the raw G.
As in most implementations, the gamma^t factor of the episodic policy-gradient theorem is left
out (every step's term has weight 1).

There is no canonical REINFORCE configuration for CartPole (shared/reference/PAPER-TARGETS.md):
the defaults were chosen here, see Config.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from rlkit.algorithm import Algorithm
from rlkit.config import hp, hparams_of, validate
from rlkit.onpolicy import OnPolicyState, collect, flatten_batch, init_state, policy_params
from rlkit.optim import OPTIMISERS, apply_gradients, make_optimiser
from rlkit.policies import ActorCritic, PolicyParams, action_distribution, make_act
from rlkit.returns import discounted_returns
from rlkit.wrappers import as_vector_env, episode_metrics

__all__ = ["PRESETS", "Config", "TrainState", "make"]


@dataclasses.dataclass(frozen=True)
class Config:
    """REINFORCE hyperparameters. No canonical reference exists: the defaults learn CartPole-v1
    (mean greedy return >= 400 over 4 seeds in 1M steps, tests/test_reinforce.py); where a value
    follows common practice the help says whose."""

    total_steps: int = hp(1_000_000, "environment steps per seed (summed over copies)", low=1)
    num_envs: int = hp(4, "vectorised environment copies", low=1)
    rollout_length: int = hp(
        500, "steps per copy per iteration: whole episodes (CartPole-v1's time limit: 500)", low=1
    )
    learning_rate: float = hp(
        3e-3,
        "Adam step size (chosen here: best of 3e-4, 1e-3, 2e-3, 3e-3 on CartPole-v1 with a "
        "baseline; without one 1e-3 is steadier)",
        low=0.0,
        traced=True,
    )
    anneal_lr: bool = hp(False, "decay the learning rate linearly to 0")
    gamma: float = hp(
        0.99, "discount (PyTorch examples/reinforce.py: 0.99)", low=0.0, high=1.0, traced=True
    )
    use_baseline: bool = hp(True, "subtract a learned state-value baseline (separate critic)")
    vf_coef: float = hp(
        0.5, "coefficient of the baseline's loss 0.5 (V - G)^2", low=0.0, traced=True
    )
    ent_coef: float = hp(0.0, "entropy bonus coefficient", low=0.0, traced=True)
    normalize_returns: bool = hp(
        False, "standardise the policy-gradient weights G - b per batch (PyTorch example: on)"
    )
    max_grad_norm: float = hp(0.0, "global gradient-norm clip, 0 = off", low=0.0, traced=True)
    normalize_obs: bool = hp(False, "normalise observations by running mean/std")
    optimiser: str = hp("adam", "optimiser", choices=OPTIMISERS)
    optimiser_eps: float = hp(1e-8, "optimiser epsilon (Adam's: 1e-8)", low=0.0, low_open=True)
    hidden: tuple[int, ...] = hp((64, 64), "hidden widths of actor and critic", low=1)
    activation: str = hp("tanh", "hidden activation", choices=("tanh", "relu", "gelu", "swish"))

    def __post_init__(self) -> None:
        validate(self)
        batch = self.num_envs * self.rollout_length
        if self.total_steps < batch:
            raise ValueError(f"total_steps must be >= num_envs * rollout_length ({batch})")


# No published configurations to reproduce (shared/reference/PAPER-TARGETS.md).
PRESETS: dict[str, dict[str, Any]] = {}

# REINFORCE carries what every on-policy agent carries (rlkit.onpolicy); without a baseline
# the params hold no critic.
TrainState = OnPolicyState


def make(config: Config, env: Any, env_params: Any) -> Algorithm:
    """Build REINFORCE for `env` (a single environment, or a vectorised one)."""
    venv = as_vector_env(env, config.num_envs)
    action_space = env.action_space(env_params)
    # Without a baseline the network has no critic and its values are 0, so the returns below
    # bootstrap from 0 and w = G.
    network = ActorCritic(
        action_space, config.hidden, config.activation, use_critic=config.use_baseline
    )
    tx = make_optimiser(config.optimiser, eps=config.optimiser_eps)
    batch_size = config.num_envs * config.rollout_length
    num_updates = config.total_steps // batch_size

    def policy_of(state: TrainState) -> PolicyParams:
        return policy_params(state, config.normalize_obs)

    def init(key: jax.Array, hparams: dict[str, jax.Array]) -> TrainState:
        return init_state(key, hparams, venv, env_params, network, tx)

    def loss_fn(params: Any, batch: dict[str, Any], h: dict[str, jax.Array]) -> tuple:
        """The REINFORCE loss of a batch [B] (returns and baseline values are constants)."""
        actor_out, values = network.apply(params, batch["x"])
        dist = action_distribution(action_space, actor_out, batch["mask"])
        weights = batch["returns"] - batch["value"]
        if config.normalize_returns:
            weights = (weights - weights.mean()) / (weights.std() + 1e-8)
        policy_loss = -(dist.log_prob(batch["action"]) * weights).mean()
        entropy = dist.entropy().mean()
        loss = policy_loss - h["ent_coef"] * entropy
        stats = {"policy_loss": policy_loss, "entropy": entropy}
        if config.use_baseline:
            value_loss = 0.5 * ((values - batch["returns"]) ** 2).mean()
            loss = loss + h["vf_coef"] * value_loss
            stats["value_loss"] = value_loss
        return loss, stats

    def update(state: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
        h = state.hparams
        policy = policy_of(state)
        key, rollout_key = jax.random.split(state.key)

        # Collect, then Monte-Carlo returns (bootstrapped from b(s') where an episode is cut).
        carry, traj, next_values = collect(
            venv, env_params, network, policy, state.env, rollout_key, config.rollout_length
        )
        returns = discounted_returns(
            traj.reward, next_values, traj.terminated, traj.truncated, h["gamma"]
        )

        # Learn: one gradient step on the whole batch.
        lr = h["learning_rate"] * ((1.0 - state.step / num_updates) if config.anneal_lr else 1.0)
        batch = flatten_batch(traj, policy, returns=returns)
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
            "mean_return": returns.mean(),
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
