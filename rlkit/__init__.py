"""rlkit: a JAX reinforcement-learning toolkit.

The shared core: the environment contract, wrappers, spaces, rollout, returns, distributions,
networks, replay, the Algorithm contract and the runner. Agents live in `agents/`, environments
in `envs/`; `rlkit.cli` is the only module here that imports them.
"""

__version__ = "0.1.0"
