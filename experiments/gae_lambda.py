"""GAE lambda sweep (Schulman et al. 2016, section 6.3.1; PAPER-TARGETS #9): PPO on CartPole-v1
with lambda in {0, .5, .8, .9, .95, .99, 1.0}, the rest PureJaxRL's CartPole config (preset
purejaxrl/CartPole: 4 envs x 128 steps, 4 epochs x 4 minibatches, lr 2.5e-4 annealed, gamma
.99, clip .2, advantage normalisation), 200k env steps per seed, 8 seeds per lambda, paired.

All 7 x 8 members train in ONE compiled program: gae_lambda is a traced hyperparameter, swept
with `Runner.train(points={"gae_lambda": ...})`. The target metric is the AUC, the mean return
of every training episode; expected (PAPER-TARGETS #9): the AUC's IQM CIs for lambda 0 and .5
entirely below every lambda in [.9, .99], the best lambda in [.9, .99], lambda 1 within 10% of
the best. Writes experiments/results/gae_lambda/ (table.md, curves, sweep):

    PYTHONPATH=. python experiments/gae_lambda.py [--seeds 8] [--steps 1] [--quick]
"""

from __future__ import annotations

import numpy as np

import rlkit

rlkit.use_cpu_cores()  # before JAX starts: the members spread over the CPU cores

import _study  # noqa: E402

import envs  # noqa: E402
from agents import ppo  # noqa: E402

LAMBDAS = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99, 1.0)
ENV = "CartPole-v1"


def main(argv: list[str] | None = None) -> list[_study.Arm]:
    args = _study.arguments("gae_lambda", __doc__, seeds=8, argv=argv)
    steps = _study.budget(args, 200_000, quick=2 * 16 * 2)
    values = dict(ppo.PRESETS["purejaxrl/CartPole"], total_steps=steps)
    if args.quick:  # the smallest program: a smoke test of the study, not a result
        values.update(num_envs=2, rollout_length=16, num_epochs=1, num_minibatches=1, hidden=(8,))
    config = rlkit.config_from_dict(ppo.Config, values)
    env, params = envs.make(ENV)
    algo = ppo.make(config, env, params)
    run = rlkit.Runner(algo).train(
        num_seeds=args.seeds, points={"gae_lambda": np.array(LAMBDAS, np.float32)}
    )
    labels = [f"lambda={lam:g}" for lam in LAMBDAS]
    arms = _study.arms(run, algo, ENV, labels, [{"gae_lambda": lam} for lam in LAMBDAS])
    setting = (
        f"PPO (preset purejaxrl/CartPole) on {ENV}, {steps:,} env steps per seed, "
        f"{args.seeds} paired seeds per lambda, all {len(LAMBDAS) * args.seeds} members in one "
        f"compiled program ({run.timing['train_seconds']:.0f} s training, "
        f"{run.timing['compile_seconds']:.0f} s compiling). Target (PAPER-TARGETS #9): AUC "
        "IQM CIs of lambda 0 and 0.5 entirely below every lambda in [0.9, 0.99]; best lambda "
        "in [0.9, 0.99]; lambda 1 within 10% of the best."
    )
    _study.write(
        arms, args.out, "GAE lambda sweep: PPO on CartPole-v1", setting, sweep_key="gae_lambda"
    )
    return arms


if __name__ == "__main__":
    rlkit.enable_compilation_cache()  # a rerun loads its programs instead of compiling
    main()
