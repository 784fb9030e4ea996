"""Munchausen DQN (Vieillard et al. 2020): rlkit's DQN with only its TD target replaced,

    y = r + alpha clip(tau log pi(a|s), l0, 0)
          + gamma (1 - terminated) sum_a' pi(a'|s') [q'(s', a') - tau log pi(a'|s')],

where pi = softmax(q' / tau) and q' is the target network; tau 0.03, alpha 0.9, l0 -1 (the
paper's). One-step windows (n_step 1), no action masks. Trains the stock and the Munchausen
target on CartPole-v1 at rejax's settings, 4 seeds each, and prints both greedy returns:

    python experiments/munchausen_dqn.py
"""

import jax
import jax.numpy as jnp

import rlkit

rlkit.use_cpu_cores()  # before JAX starts: the 4 seeds spread over the CPU cores

import envs  # noqa: E402
from agents import dqn  # noqa: E402

TAU, ALPHA, L0 = 0.03, 0.9, -1.0


def munchausen_target(batch, q_online, q_target, hparams, config):
    """y [B] of windows of one step (leaves [B, 1, ...])."""
    step = jax.tree.map(lambda x: x[:, 0], batch)
    log_pi = jax.nn.log_softmax(q_target(step["obs"]) / TAU)
    log_pi_taken = jnp.take_along_axis(log_pi, step["action"][:, None], axis=1)[:, 0]
    q_next = q_target(step["next_obs"])
    log_pi_next = jax.nn.log_softmax(q_next / TAU)
    soft_value = jnp.sum(jnp.exp(log_pi_next) * (q_next - TAU * log_pi_next), axis=-1)
    bootstrap = hparams["gamma"] * (1.0 - step["terminated"].astype(jnp.float32)) * soft_value
    return step["reward"] + ALPHA * jnp.clip(TAU * log_pi_taken, L0, 0.0) + bootstrap


def main() -> None:
    env, params = envs.make("CartPole-v1")
    config = rlkit.config_from_dict(dqn.Config, dqn.PRESETS["rejax/CartPole"])
    print(f"CartPole-v1, 4 seeds x {config.total_steps:,} steps, greedy evaluation return:")
    for name, target in (("DQN", dqn.td_target), ("Munchausen DQN", munchausen_target)):
        result = rlkit.train(dqn.make(config, env, params, target=target), num_seeds=4)
        per_seed = [round(float(r), 1) for r in result.evaluation["returns"].mean(axis=1)]
        print(f"  {name:<15} {sum(per_seed) / 4:6.1f}  (per seed {per_seed})")


if __name__ == "__main__":
    main()
