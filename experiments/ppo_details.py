"""PPO implementation details switched off one at a time (Huang et al. 2022, "The 37
implementation details of PPO": the core details rlkit has a switch for), on CartPole-v1:

    no policy clip        clip_policy off: the plain policy-gradient surrogate, 4 epochs on it
    no value clip         clip_value off: 0.5 (V - G)^2
    no adv. norm.         normalize_advantages off (per-minibatch standardisation)
    no lr annealing       anneal_lr off: constant 2.5e-4
    no grad clip          max_grad_norm 0 (CleanRL: 0.5)
    Adam eps 1e-8         optimiser_eps 1e-8, PyTorch's/optax's default (CleanRL: 1e-5)

The base ("full") is PureJaxRL's CartPole config (preset purejaxrl/CartPole: 4 envs x 128,
4 epochs x 4 minibatches, lr 2.5e-4, gamma .99, lambda .95, clip .2, ent .01, vf .5) at
STEPS env steps per seed (the published 500k is 2.5x more), 10 paired seeds per arm. The
other details have no switch in rlkit (orthogonal init, separate actor and critic, GAE itself)
or are off already on CartPole (observation normalisation, reward scaling: continuous-control
details). max_grad_norm is traced, so "full" and "no grad clip" train in one program.

Published one-off ablations (Engstrom et al. 2020; Andrychowicz et al. 2021) are on MuJoCo:
the clipped surrogate matters less than the code-level details, advantage normalisation and
gradient clipping matter little, value clipping is neutral or slightly harmful. The table
gives P(arm > full) of the final return: below 0.5 where the detail helps.

    PYTHONPATH=. python experiments/ppo_details.py [--seeds 10] [--steps 1] [--quick]

Writes experiments/results/ppo_details/ (table.md, curves, profile).
"""

from __future__ import annotations

import dataclasses

import numpy as np

import rlkit

rlkit.use_cpu_cores()  # before JAX starts: the seeds spread over the CPU cores

import _study  # noqa: E402

import envs  # noqa: E402
from agents import ppo  # noqa: E402

ENV = "CartPole-v1"
STEPS = 200_000
ABLATIONS = {
    "no policy clip": {"clip_policy": False},
    "no value clip": {"clip_value": False},
    "no adv. norm.": {"normalize_advantages": False},
    "no lr annealing": {"anneal_lr": False},
    "Adam eps 1e-8": {"optimiser_eps": 1e-8},
}


def main(argv: list[str] | None = None) -> list[_study.Arm]:
    args = _study.arguments("ppo_details", __doc__, seeds=10, argv=argv)
    values = dict(ppo.PRESETS["purejaxrl/CartPole"])
    values["total_steps"] = _study.budget(args, STEPS, quick=4 * 128 * 2)
    if args.quick:
        values["hidden"] = (16,)
    full = rlkit.config_from_dict(ppo.Config, values)
    env, params = envs.make(ENV)

    # The full config, and without gradient clipping: one program, a sweep of max_grad_norm.
    algo = ppo.make(full, env, params)
    grad_norms = np.array([full.max_grad_norm, 0.0], np.float32)
    run = rlkit.Runner(algo).train(num_seeds=args.seeds, points={"max_grad_norm": grad_norms})
    arms = _study.arms(run, algo, ENV, ["full", "no grad clip"])
    for label, switch in ABLATIONS.items():
        algo = ppo.make(dataclasses.replace(full, **switch), env, params)
        arms += _study.arms(rlkit.Runner(algo).train(num_seeds=args.seeds), algo, ENV, [label])
        print(f"{label}: done", flush=True)

    setting = (
        f"PPO (preset purejaxrl/CartPole) on {ENV}, {full.total_steps:,} env steps per seed, "
        f"{args.seeds} paired seeds per arm; each arm switches one detail off (Huang et al. "
        "2022). P(arm > full) < 0.5: the detail helps here."
    )
    _study.write(arms, args.out, "PPO implementation details, one off at a time", setting, "full")
    return arms


if __name__ == "__main__":
    rlkit.enable_compilation_cache()  # a rerun loads its programs instead of compiling
    main()
