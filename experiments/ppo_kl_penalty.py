"""PPO with an adaptive KL penalty in place of clipping (Schulman et al. 2017, section 4):

    L = -E[rho A] + beta KL[pi_old, pi] + c_v L_V - c_e H,      rho = pi(a|s) / pi_old(a|s),

and after each iteration, with d the mean KL of its last epoch, beta <- beta / 2 if
d < d_targ / 1.5 and beta <- 2 beta if d > 1.5 d_targ; beta_0 = 1, d_targ = 0.01 (the
paper's). KL[pi_old, pi] is estimated on the minibatch's actions as mean((rho - 1) - log rho).
The rest is the stock PPO loss with clip_policy off. Trains both on CartPole-v1 with CleanRL's
settings, 4 seeds each, and prints both greedy returns:

    python experiments/ppo_kl_penalty.py
"""

import dataclasses

import jax.numpy as jnp

import rlkit

rlkit.use_cpu_cores()  # before JAX starts: the 4 seeds spread over the CPU cores

import envs  # noqa: E402
from agents import ppo  # noqa: E402

D_TARGET = 0.01


def kl_penalty_loss(new, batch, coefs, config):
    total, stats = ppo.loss(new, batch, coefs, dataclasses.replace(config, clip_policy=False))
    log_ratio = new.dist.log_prob(batch["action"]) - batch["log_prob"]
    kl = jnp.mean(jnp.expm1(log_ratio) - log_ratio)
    return total + coefs["beta"] * kl, {**stats, "kl": kl}


def adapt_beta(state, stats):
    beta, kl = state["beta"], stats["kl"]
    beta = jnp.where(kl < D_TARGET / 1.5, beta / 2, jnp.where(kl > 1.5 * D_TARGET, 2 * beta, beta))
    return {"beta": beta}


KL_PENALTY = rlkit.Objective(kl_penalty_loss, init=lambda hparams: {"beta": 1.0}, adapt=adapt_beta)


def main() -> None:
    env, params = envs.make("CartPole-v1")
    config = ppo.Config()
    print(f"CartPole-v1, 4 seeds x {config.total_steps:,} steps, greedy evaluation return:")
    for name, loss in (("PPO, clipped", ppo.loss), ("PPO, adaptive KL", KL_PENALTY)):
        result = rlkit.train(ppo.make(config, env, params, loss=loss), num_seeds=4)
        per_seed = [round(float(r), 1) for r in result.evaluation["returns"].mean(axis=1)]
        print(f"  {name:<17} {sum(per_seed) / 4:6.1f}  (per seed {per_seed})")


if __name__ == "__main__":
    main()
