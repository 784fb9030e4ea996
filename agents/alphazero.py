"""AlphaZero (Silver et al. 2018): tree search with the true rules, guided by a policy/value
network that learns from the search.

One iteration:

    collect  rollout_length self-play steps of num_envs games; every move is a search
             (rlkit.planning.mcts over the environment's own step, Gumbel MuZero or PUCT) whose
             prior is the network's policy p(.|s) and whose leaf value is its value v(s)
    targets  per position, the search's action weights pi_t (PUCT: the root visit distribution;
             Gumbel: its improved policy) and the return
                 G_t = r_t + sign gamma (1 - term_t) [cut_t ? v(s'_t) : G_{t+1}]
             (rlkit.ops.returns.discounted_returns with discount sign * gamma). With
             value_target "outcome" (AlphaZero's z) a position whose episode goes on past the end
             of the rollout gets no value loss (w_t = 0: its G would bootstrap from the network
             itself, which early in training is noise); "bootstrap" keeps it (w_t = 1, MuZero's
             n-step target), for long episodes. A time-limit truncation bootstraps either way.
    store    the positions (observation, mask, pi_t, G_t) in a replay of the most recent
             buffer_size positions (rlkit.data.replay.UniformReplay)
    learn    gradient_steps Adam steps on minibatches of batch_size positions of

                 L = -sum_a pi(a) log p(a|s) + c_v w 0.5 (v(s) - G)^2 + c_2 ||theta||^2   (`loss`)

Two-player games (env.num_players = 2, observations and rewards from the view of the player to
move, as envs/tictactoe.py and envs/connect_four.py): every value is the value to the player to
move, and sign = -1: the next position's return is the opponent's, so it enters negated,
G_t = r_t - gamma G_{t+1}, as in the search's backup (negamax). Single-agent environments have
sign = +1 (then this is MuZero's value target with the true model, n-step to the end of the
rollout).

`act` searches with the network from the environment state that evaluation passes it
(`env_state`, rlkit.core.env_state); deterministic: no root noise, the search's choice.
Defaults follow AlphaZero where it has a value (c_puct, Dirichlet alpha for chess, L2 1e-4) and
were chosen here for tic-tac-toe otherwise (tests/test_tictactoe.py); Connect Four's settings
(bootstrapped values, a larger network and replay) are experiments/alphazero_connect_four.py's.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

import paper_configs
from rlkit.core import fields
from rlkit.core.algorithm import Algorithm
from rlkit.core.config import ConfigError, hp, hparams_of, validate
from rlkit.core.env_state import WithEnvState
from rlkit.core.wrappers import as_vector_env, episode_metrics
from rlkit.data.replay import ReplayState, UniformReplay
from rlkit.data.rollout import EnvCarry, reset_envs, rollout
from rlkit.nets.layers import MLP, CategoricalHead, ValueHead, flatten_obs
from rlkit.ops.optim import apply_gradients, make_optimiser
from rlkit.ops.returns import discounted_returns
from rlkit.planning import mcts
from rlkit.planning.mcts import Search, SearchParams

__all__ = [
    "PRESETS",
    "Config",
    "PolicyValueNet",
    "TrainState",
    "episode_ends_within",
    "loss",
    "make",
]


@dataclasses.dataclass(frozen=True)
class Config:
    """AlphaZero hyperparameters (see the module docstring for each one's role)."""

    total_steps: int = fields.total_steps(
        204_800, "chosen here: 200 iterations; 88-100% non-losses against minimax (6 seeds)"
    )
    num_envs: int = fields.num_envs(64, "self-play games at once; chosen here")
    rollout_length: int = fields.rollout_length(16, "chosen here")
    search: str = mcts.search_method("gumbel", "chosen here")
    num_simulations: int = mcts.num_simulations(64, "chosen here (AlphaZero: 800)")
    max_depth: int = mcts.max_depth(0, "AlphaZero: unlimited")
    max_num_considered_actions: int = mcts.max_num_considered_actions(16, "Gumbel paper: 16")
    q_scaling: str = mcts.q_scaling("bounds", "chosen here: node misses wins below the root")
    gamma: float = fields.gamma(1.0, "AlphaZero: undiscounted game outcome")
    value_target: str = hp(
        "outcome",
        "outcome: episode returns only (AlphaZero's z); bootstrap: also positions cut by the "
        "rollout's end, bootstrapped from the network (MuZero)",
        choices=("outcome", "bootstrap"),
    )
    pb_c_init: float = mcts.pb_c_init(1.25, "MuZero: 1.25")
    pb_c_base: float = mcts.pb_c_base(19652.0, "AlphaZero: 19652")
    dirichlet_fraction: float = mcts.dirichlet_fraction(0.25, "AlphaZero: 0.25")
    dirichlet_alpha: float = mcts.dirichlet_alpha(0.3, "AlphaZero chess: 0.3")
    temperature: float = mcts.temperature(1.0, "AlphaZero: 1 for the first moves")
    gumbel_scale: float = mcts.gumbel_scale(1.0, "Gumbel paper: 1.0")
    buffer_size: int = fields.buffer_size(8_192, "recent positions kept; chosen here")
    batch_size: int = fields.batch_size(256, "chosen here")
    gradient_steps: int = fields.gradient_steps(8, "chosen here")
    learning_rate: float = fields.learning_rate(1e-3, "chosen here")
    max_grad_norm: float = fields.max_grad_norm(1.0, "chosen here")
    vf_coef: float = fields.vf_coef(1.0, "AlphaZero: value and policy losses weigh the same")
    l2_coef: float = hp(1e-4, "L2 weight penalty c_2 (AlphaZero: 1e-4)", low=0.0, traced=True)
    optimiser_eps: float = fields.optimiser_eps(1e-8, "Adam's: 1e-8")
    hidden: tuple[int, ...] = fields.hidden((128, 128), "torso; chosen here")
    activation: str = fields.activation("relu", "chosen here")

    def __post_init__(self) -> None:
        validate(self)
        batch = self.num_envs * self.rollout_length
        if self.total_steps < batch:
            raise ConfigError(f"total_steps must be >= num_envs * rollout_length ({batch})")
        if self.buffer_size < batch:
            raise ConfigError(
                f"buffer_size must hold one iteration's positions, >= num_envs * rollout_length "
                f"({batch})"
            )


# Named settings: the paper configs for alphazero (paper_configs/*.yaml, sources in each).
PRESETS = paper_configs.presets("alphazero", Config)


class PolicyValueNet(nn.Module):
    """x [B, F] -> (policy logits [B, A], value [B]): an MLP torso with two heads."""

    num_actions: int
    hidden: tuple[int, ...]
    activation: str

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        features = MLP(self.hidden, self.activation)(x)
        return CategoricalHead(self.num_actions)(features), ValueHead()(features)


@struct.dataclass
class TrainState:
    """Network weights, optimiser state, the replay of recent positions, the self-play games,
    the PRNG key, iterations done and the traced hyperparameters (leaves gain a seed axis)."""

    params: Any
    opt_state: Any
    replay: ReplayState
    env: EnvCarry
    key: jax.Array
    step: jax.Array
    hparams: dict[str, jax.Array]


def loss(
    logits: jax.Array, values: jax.Array, batch: dict[str, jax.Array], coefs: dict[str, jax.Array]
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """AlphaZero's loss on B positions, without the L2 term (added on the weights in `make`):

        policy_loss = -mean_b sum_a pi_b(a) log p_b(a)   (p: softmax of logits over allowed a)
        value_loss  = sum_b w_b 0.5 (v_b - G_b)^2 / max(sum_b w_b, 1)
        L           = policy_loss + c_v value_loss

    logits [B, A], values [B]; batch: "policy" pi [B, A], "return" G [B], "value_weight" w [B]
    (0 or 1), "mask" bool [B, A] (or absent); coefs["vf_coef"] = c_v. Returns (L,
    {"policy_loss", "value_loss"})."""
    logits = mcts.masked_logits(logits, batch.get("mask"))
    policy_loss = -(batch["policy"] * jax.nn.log_softmax(logits)).sum(-1).mean()
    weight = batch["value_weight"]
    errors = 0.5 * (values - batch["return"]) ** 2
    critic_loss = (weight * errors).sum() / jnp.maximum(weight.sum(), 1.0)
    total = policy_loss + coefs["vf_coef"] * critic_loss
    return total, {"policy_loss": policy_loss, "value_loss": critic_loss}


def episode_ends_within(done: jax.Array) -> jax.Array:
    """bool [T, N]: the episode of step t ends at some step t' >= t of the rollout (done: bool
    [T, N], terminated or truncated at t), i.e. its return needs nothing after the rollout."""
    _, ends = jax.lax.scan(
        lambda later, d: (later | d, later | d), jnp.zeros(done.shape[1:], bool), done, reverse=True
    )
    return ends


def make(config: Config, env: Any, env_params: Any) -> Algorithm:
    """Build AlphaZero for `env`, a single JAX environment with a Discrete action space."""
    if hasattr(env, "num_envs"):
        raise ConfigError("alphazero searches a single JAX environment, not a vectorised one")
    num_actions = env.action_space(env_params).n
    network = PolicyValueNet(num_actions, config.hidden, config.activation)
    tx = make_optimiser("adam", eps=config.optimiser_eps)
    sign = -1.0 if mcts.is_two_player(env) else 1.0

    def evaluate_network(
        params: SearchParams, key: jax.Array, states: Any, obs: Any, masks: jax.Array | None
    ) -> tuple[jax.Array, jax.Array]:
        return network.apply(params.network, flatten_obs(obs))

    search = Search(
        env=env,
        env_params=env_params,
        evaluator=evaluate_network,
        method=config.search,
        num_simulations=config.num_simulations,
        max_depth=config.max_depth or None,
        max_num_considered_actions=config.max_num_considered_actions,
        value_bounds=mcts.value_bounds_of(env, config.q_scaling),
    )
    venv = WithEnvState(as_vector_env(env, config.num_envs), env)
    batch_size = config.num_envs * config.rollout_length
    replay = UniformReplay(
        max_length=config.buffer_size // config.num_envs,
        add_batch_size=config.num_envs,
        sample_batch_size=config.batch_size,
    )

    def plan(
        params: Any, hparams: dict, key: jax.Array, states: Any, obs: Any, deterministic: bool
    ) -> Any:
        search_params = SearchParams(gamma=hparams["gamma"], network=params)
        coefs = mcts.search_coefficients(hparams, deterministic)
        return search.run(search_params, key, states, obs, coefs, deterministic)

    def init(key: jax.Array, hparams: dict[str, jax.Array]) -> TrainState:
        net_key, env_key, key = jax.random.split(key, 3)
        carry = reset_envs(venv, env_params, env_key)
        x = flatten_obs(carry.obs["obs"])
        params = network.init(net_key, x)
        example = {
            "x": x[0],
            "mask": jnp.ones(num_actions, bool),
            "policy": jnp.zeros(num_actions),
            "return": jnp.zeros(()),
            "value_weight": jnp.zeros(()),
        }
        return TrainState(
            params=params,
            opt_state=tx.init(params),
            replay=replay.init(example),
            env=carry,
            key=key,
            step=jnp.zeros((), jnp.int32),
            hparams=hparams,
        )

    def update(state: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
        hparams = state.hparams
        key, rollout_key, learn_key = jax.random.split(state.key, 3)

        # -- self-play: every move a search guided by the current network ---------------------
        def behave(obs: Any, mask: jax.Array | None, key: jax.Array) -> tuple:
            out = plan(state.params, hparams, key, obs["env_state"], obs["obs"], False)
            extras = {"policy": out.action_weights, "search_value": out.search_tree.summary().value}
            return out.action, extras

        carry, traj = rollout(
            venv, env_params, behave, state.env, rollout_key, config.rollout_length
        )

        # -- targets: returns to the player to move, bootstrapped where the rollout cuts -------
        next_x = flatten_obs(traj.next_obs, batch_ndim=2)
        _, next_values = network.apply(state.params, next_x)
        returns = discounted_returns(
            traj.reward, next_values, traj.terminated, traj.truncated, sign * hparams["gamma"]
        )
        x = flatten_obs(traj.obs["obs"], batch_ndim=2)
        masks = traj.action_mask
        if masks is None:
            masks = jnp.ones((*traj.reward.shape, num_actions), bool)
        weight = jnp.ones_like(returns)
        if config.value_target == "outcome":
            weight = episode_ends_within(traj.terminated | traj.truncated).astype(jnp.float32)
        rows = {
            "x": x,
            "mask": masks,
            "policy": traj.extras["policy"],
            "return": returns,
            "value_weight": weight,
        }
        buffer, _ = jax.lax.scan(lambda b, row: (replay.add(b, row), None), state.replay, rows)

        # -- learn from the recent positions ----------------------------------------------------
        def gradient_step(carry: tuple, key: jax.Array) -> tuple:
            params, opt_state = carry
            batch = jax.tree.map(lambda v: v[:, 0], replay.sample(buffer, key).items)

            def total_loss(params: Any) -> tuple[jax.Array, dict]:
                logits, values = network.apply(params, batch["x"])
                value, stats = loss(logits, values, batch, hparams)
                l2 = sum(jnp.sum(w**2) for w in jax.tree.leaves(params))
                return value + hparams["l2_coef"] * l2, stats

            grads, stats = jax.grad(total_loss, has_aux=True)(params)
            params, opt_state, grad_norm = apply_gradients(
                tx, params, grads, opt_state, hparams["learning_rate"], hparams["max_grad_norm"]
            )
            return (params, opt_state), {**stats, "grad_norm": grad_norm}

        (params, opt_state), stats = jax.lax.scan(
            gradient_step,
            (state.params, state.opt_state),
            jax.random.split(learn_key, config.gradient_steps),
        )
        metrics = {
            **jax.tree.map(jnp.mean, stats),
            **episode_metrics(traj.episode),
            "search_value": traj.extras["search_value"].mean(),
        }
        new_state = state.replace(
            params=params,
            opt_state=opt_state,
            replay=buffer,
            env=carry,
            key=key,
            step=state.step + 1,
        )
        return new_state, metrics

    def act(
        policy: dict[str, Any],
        obs: Any,
        key: jax.Array,
        deterministic: bool = True,
        action_mask: jax.Array | None = None,
        env_state: Any = None,
    ) -> jax.Array:
        """Actions int[B] of a search guided by the network from env_state (the environment's
        state [B, ...], required; obs [B, ...] its observations)."""
        if env_state is None:
            raise ValueError("alphazero searches from the environment's state: pass env_state=")
        return plan(policy["params"], policy["hparams"], key, env_state, obs, deterministic).action

    return Algorithm(
        init=init,
        update=update,
        act=act,
        policy_params=lambda state: {"params": state.params, "hparams": state.hparams},
        hparams=hparams_of(config),
        steps_per_iteration=batch_size,
        num_iterations=config.total_steps // batch_size,
        config=config,
        env=env,
        env_params=env_params,
    )
