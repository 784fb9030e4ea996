"""rlkit's agents: one module per algorithm family, each with `Config`, `make` and `PRESETS`.

No agent imports another; what two share lives in rlkit/.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from rlkit.core.config import ConfigError

__all__ = ["ALGORITHMS", "load"]

#: name -> (module, one-line description)
ALGORITHMS: dict[str, tuple[str, str]] = {
    "reinforce": ("agents.reinforce", "REINFORCE: Monte-Carlo policy gradient, optional baseline"),
    "a2c": ("agents.a2c", "A2C: synchronous advantage actor-critic with n-step GAE"),
    "ppo": ("agents.ppo", "PPO: clipped surrogate, GAE, minibatch epochs"),
    "dqn": ("agents.dqn", "DQN: target net, double-Q, prioritised, n-step, dueling"),
    "sac": ("agents.sac", "SAC: twin Q, tanh-Gaussian or discrete actor, auto temperature"),
    "qlearning": ("agents.qlearning", "Q-learning: tabular, on environments with finite states"),
    "mcts": ("agents.mcts", "MCTS (mctx): Gumbel MuZero or PUCT planning with the env as model"),
    "alphazero": ("agents.alphazero", "AlphaZero: self-play MCTS with a policy/value network"),
}


def load(name: str) -> ModuleType:
    """The agent module for an algorithm name (ConfigError if unknown)."""
    if name not in ALGORITHMS:
        raise ConfigError(f"unknown algorithm {name!r}; choose from {', '.join(ALGORITHMS)}")
    return importlib.import_module(ALGORITHMS[name][0])
