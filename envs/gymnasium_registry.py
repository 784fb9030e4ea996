"""rlkit's environments registered with gymnasium, as `rlkit/<name>`.

Importing this module registers every environment of rlkit's registry (`envs.RLKIT_ENVS`:
BalanceBall-v0, BalanceBallHard-v0, ConnectFour-v0, GridWorld-v0, TicTacToe-v0) with gymnasium
under the `rlkit/` namespace (`register_gymnasium_envs`, idempotent), each made as a
rlkit.bridges.gymnasium_env.GymnasiumEnv (numpy in and out, seeded by `reset(seed=...)`):

    import gymnasium
    import envs.gymnasium_registry  # noqa: F401  (registers rlkit/BalanceBall-v0, ...)

    env = gymnasium.make("rlkit/BalanceBall-v0", gravity=4.0)  # keywords: as envs.make's
    obs, info = env.reset(seed=0)

or, without the import, `gymnasium.make("envs.gymnasium_registry:rlkit/BalanceBall-v0")`
(gymnasium imports the module named before the colon).
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium

import envs
from rlkit.bridges.gymnasium_env import GymnasiumEnv

__all__ = ["NAMESPACE", "make_registered", "register_gymnasium_envs"]

NAMESPACE = "rlkit"  # gymnasium ids of rlkit's environments: rlkit/<registry name>


def register_gymnasium_envs() -> list[str]:
    """Register every environment of rlkit's registry with gymnasium as `rlkit/<name>` and
    return the ids. Idempotent: an id already registered is left as it is. Keywords given to
    `gymnasium.make` are envs.make's overrides (EnvParams fields or constructor arguments)."""
    ids = []
    for name in envs.RLKIT_ENVS:
        env_id = f"{NAMESPACE}/{name}"
        if env_id not in gymnasium.registry:
            gymnasium.register(
                env_id,
                entry_point=f"{__name__}:make_registered",
                kwargs={"rlkit_env": name},
                max_episode_steps=None,  # the JAX env truncates itself (module docstring)
            )
        ids.append(env_id)
    return ids


def make_registered(
    rlkit_env: str, render_mode: str | None = None, **overrides: Any
) -> GymnasiumEnv:
    """gymnasium's entry point of `rlkit/<rlkit_env>`: envs.make(rlkit_env, **overrides) as a
    GymnasiumEnv. The same overrides give the same environment object, so the copies of a
    gymnasium vector env share one compiled reset and step."""
    try:
        env, params = _made(rlkit_env, tuple(sorted(overrides.items())))
    except TypeError:  # an unhashable override: built afresh
        env, params = envs.make(rlkit_env, **overrides)
    return GymnasiumEnv(env, params, render_mode)


@functools.lru_cache(maxsize=64)
def _made(name: str, overrides: tuple[tuple[str, Any], ...]) -> tuple[Any, Any]:
    return envs.make(name, **dict(overrides))


register_gymnasium_envs()  # the import-time hook: `import envs.gymnasium_registry`
