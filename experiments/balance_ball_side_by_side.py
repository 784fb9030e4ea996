"""REINFORCE vs A2C vs PPO vs SAC on BalanceBall-v0 (rlkit's JAX model of ML-Agents' 3DBall:
+0.1 per decision, -1 and the end on a drop, 1000 decisions at most, so 100 is the best
return), the same STEPS env steps per seed for each, 10 paired seeds, learning curves on one
plot.

    PPO        ML-Agents config/ppo/3DBall.yaml (preset mlagents/3DBall, paper_configs/
               ppo_3dball_mlagents.yaml): 12 agents x 1000-step buffer, 3 epochs of 200
               minibatches, lr 3e-4 and clip .2 -> .1 and beta 1e-3 -> 1e-5 annealed,
               lambda .99, observation normalisation, 128x128 Swish
    SAC        ML-Agents config/sac/3DBall.yaml (preset mlagents/3DBall, paper_configs/
               sac_3dball_mlagents.yaml): 12 agents, a gradient step per 10 agent steps,
               batch 64, tau .005, initial alpha .5, observation normalisation, 64x64 Swish
    A2C        no ML-Agents config: rl-baselines3-zoo's A2C for the PyBullet locomotion tasks
               as recalled (8 steps per copy, lambda .9, lr 9.6e-4 annealed, ent 0, grad clip
               .5, normalised observations), on the scene's 12 agents; vf_coef 0.8 is SB3's
               0.4 on rlkit's 0.5-scaled value loss; otherwise agents/a2c.py's defaults
               (RMSprop, 64x64 tanh)
    REINFORCE  no published config: agents/reinforce.py's defaults (Adam 3e-3, learned
               baseline, 64x64 tanh) with normalised observations, 12 copies x 200 steps per
               update (episodes crossing the rollout's end bootstrap from the baseline)

The budget is short of the presets' (PPO 500k, SAC 200k; ML-Agents' benchmark mean reward is
100): a CPU budget, said in the table's header. The training curves and the AUC are of the
stochastic training policy and weight episodes by count, so short failed episodes dominate
them; the final column is the deterministic policy's.

    PYTHONPATH=. python experiments/balance_ball_side_by_side.py [--seeds 10] [--steps 1]

Writes experiments/results/balance_ball_side_by_side/ (table.md, curves, profile).
"""

from __future__ import annotations

import time

import rlkit

rlkit.use_cpu_cores()  # before JAX starts: the seeds spread over the CPU cores

import _study  # noqa: E402

import envs  # noqa: E402
from agents import a2c, ppo, reinforce, sac  # noqa: E402

ENV = "BalanceBall-v0"
STEPS = 120_000  # a multiple of PPO's 12 x 1000 buffer, SAC's 12 x 5 and A2C's 12 x 8
# Bins of 12k steps per seed, 1000 per copy: a balancing copy is truncated once in each, so no
# bin of the curve is empty once the ball stays up (with 100 bins most would be).
CURVE_POINTS = 10
SETTINGS = {
    "REINFORCE": (reinforce, {"num_envs": 12, "rollout_length": 200, "normalize_obs": True}),
    "A2C": (
        a2c,
        {
            "num_envs": 12,
            "rollout_length": 8,
            "gae_lambda": 0.9,
            "learning_rate": 9.6e-4,
            "anneal_lr": True,
            "vf_coef": 0.8,
            "normalize_obs": True,
        },
    ),
    "PPO": (ppo, ppo.PRESETS["mlagents/3DBall"]),
    "SAC": (sac, sac.PRESETS["mlagents/3DBall"]),
}


def main(argv: list[str] | None = None) -> list[_study.Arm]:
    args = _study.arguments("balance_ball_side_by_side", __doc__, seeds=10, argv=argv)
    steps = _study.budget(args, STEPS, quick=12_000)
    env, params = envs.make(ENV)
    arms = []
    for label, (agent, values) in SETTINGS.items():
        start = time.perf_counter()
        config = rlkit.config_from_dict(agent.Config, {**values, "total_steps": steps})
        algo = agent.make(config, env, params)
        run = rlkit.Runner(algo).train(num_seeds=args.seeds)
        arms += _study.arms(run, algo, ENV, [label], curve_points=CURVE_POINTS)
        print(f"{label}: {time.perf_counter() - start:.0f} s", flush=True)
    setting = (
        f"{ENV}, {steps:,} env steps per seed for every agent (a CPU budget: the presets "
        f"train PPO 500k, SAC 200k), {args.seeds} paired seeds. PPO and SAC: ML-Agents' "
        "3DBall configs (presets mlagents/3DBall); A2C and REINFORCE: settings chosen here "
        "(experiments/balance_ball_side_by_side.py). The best return is 100 (1000 decisions)."
    )
    _study.write(arms, args.out, "REINFORCE vs A2C vs PPO vs SAC on BalanceBall-v0", setting)
    return arms


if __name__ == "__main__":
    rlkit.enable_compilation_cache()  # a rerun loads its programs instead of compiling
    main()
