"""DQN and the extensions Rainbow combines, each alone and all together, on CartPole-v1 and
Breakout-MinAtar: DQN, Double DQN (van Hasselt et al. 2016), proportional prioritised replay
(Schaul et al. 2016: alpha .6, beta .4 -> 1), 3-step returns, the dueling head (Wang et al.
2016), and Rainbow-lite = all four (Hessel et al. 2018 without distributional RL or noisy nets).
Every arm of an env shares one base config and the seeds (paired); only its switch differs (PER
keeps the base learning rate: Schaul et al. divided it by 4).

CartPole-v1: rlkit's tuned DQN default, paper_configs/dqn_cartpole_tuned.yaml (preset
zoo/CartPole: rl-baselines3-zoo's, 128 gradient steps after every 256 env steps, Huber,
epsilon over 16% of the budget; its learning rate and target update as the file has them, which
the table records) with the four extensions off (PLAIN) and two CPU cuts: CARTPOLE_STEPS
env steps instead of 50k and a 64x64 MLP instead of 256x256 (15x fewer FLOPs per gradient
step). Expected (PAPER-TARGETS, PER row): small or no gain from PER on CartPole; Double DQN
mostly changes the value estimates, not the return.

Breakout-MinAtar (gymnax: reduced action set, 1000-step cap, no sticky actions): the MinAtar
paper's DQN (preset youngtian/Breakout-MinAtar: 128-unit MLP on the flattened grid, RMSProp
2.5e-4, Huber, batch 32, replay start 5k, target every 1000 updates) on a CPU budget of
BREAKOUT_STEPS env steps: 8 copies stepped 4 times per iteration with 4 gradient steps (one per
8 frames; the paper: one per frame), epsilon 1 -> .1 over the first half. Far short of the
published setting: Young & Tian's DQN reaches 8-12 on Breakout at 5M frames with a gradient
step per frame, 30 seeds (PAPER-TARGETS G1): 5M gradient steps per seed and arm, about an hour
per arm of 10 seeds on one GPU, 6 arms. On a 2-core CPU every arm also compiles for about a
minute; `--envs CartPole-v1` runs CartPole alone.

    PYTHONPATH=. python experiments/dqn_variants.py [--seeds 10] [--steps 1] [--quick]

Writes experiments/results/dqn_variants/ (table.md, curves, profile).
"""

from __future__ import annotations

import dataclasses
import time

import rlkit

rlkit.use_cpu_cores()  # before JAX starts: the seeds spread over the CPU cores

import _study  # noqa: E402

import envs  # noqa: E402
from agents import dqn  # noqa: E402

ENVS = ("CartPole-v1", "Breakout-MinAtar")
ARMS = {
    "DQN": {},
    "Double": {"double_q": True},
    "PER": {"prioritised": True},
    "3-step": {"n_step": 3},
    "Dueling": {"dueling": True},
    "Rainbow-lite": {"double_q": True, "prioritised": True, "n_step": 3, "dueling": True},
}
# The base of every arm has all four extensions off, whatever the preset turns on.
PLAIN = {"double_q": False, "prioritised": False, "n_step": 1, "dueling": False}
CARTPOLE_STEPS = 20_000
CARTPOLE = {"hidden": (64, 64)}
BREAKOUT_STEPS = 50_000
BREAKOUT = {"num_envs": 8, "train_frequency": 4, "gradient_steps": 4, "exploration_fraction": 0.5}

BASES = {
    "CartPole-v1": f"preset zoo/CartPole (paper_configs/dqn_cartpole_tuned.yaml) with {CARTPOLE}: "
    "a CPU budget (the preset: 50k steps, 256x256)",
    "Breakout-MinAtar": f"preset youngtian/Breakout-MinAtar with {BREAKOUT}: a CPU budget far "
    "below the paper's 5M frames with a gradient step per frame (8-12 there: needs a GPU)",
}
SHOWN = ("learning_rate", "target_update_period", "tau", "gradient_steps", "batch_size")


def base_configs(args) -> dict[str, dqn.Config]:
    """The base config of each env, at this run's budget."""
    cartpole = dict(dqn.PRESETS["zoo/CartPole"], **CARTPOLE, **PLAIN)
    cartpole["total_steps"] = _study.budget(args, CARTPOLE_STEPS, quick=1000 + 2 * 256)
    breakout = dict(dqn.PRESETS["youngtian/Breakout-MinAtar"], **BREAKOUT, **PLAIN)
    breakout["total_steps"] = _study.budget(args, BREAKOUT_STEPS, quick=5000 + 2 * 32)
    if args.quick:
        cartpole.update(hidden=(16,), gradient_steps=2)
        breakout.update(hidden=(16,))
    return {
        "CartPole-v1": rlkit.config_from_dict(dqn.Config, cartpole),
        "Breakout-MinAtar": rlkit.config_from_dict(dqn.Config, breakout),
    }


def main(argv: list[str] | None = None) -> list[_study.Arm]:
    args = _study.arguments("dqn_variants", __doc__, seeds=10, argv=argv, envs=ENVS)
    arms, lines = [], []
    for env_name, base in base_configs(args).items():
        if env_name not in args.envs:
            continue
        env, params = envs.make(env_name)
        for label, switches in ARMS.items():
            start = time.perf_counter()
            algo = dqn.make(dataclasses.replace(base, **switches), env, params)
            run = rlkit.Runner(algo).train(num_seeds=args.seeds)
            arms += _study.arms(run, algo, env_name, [label])
            print(f"{env_name} {label}: {time.perf_counter() - start:.0f} s", flush=True)
        shown = ", ".join(f"{k} {getattr(base, k)}" for k in SHOWN)
        lines.append(f"- {env_name}, {base.total_steps:,} env steps per seed: {BASES[env_name]}")
        lines.append(f"  (base: {shown})")
    setting = "\n".join([f"{args.seeds} paired seeds per arm, one base config per env:", *lines])
    _study.write(arms, args.out, "DQN variants", setting, baseline="DQN")
    return arms


if __name__ == "__main__":
    rlkit.enable_compilation_cache()  # a rerun loads its programs instead of compiling
    main()
