"""ML-Agents behaviour specs as rlkit spaces: the observation and action rules of the Unity bridge.

Pure functions of numpy arrays and mlagents_envs' spec tuples (never imported here: any object
with their fields works), so every rule is testable without a Unity process.

Observations. rlkit's agents take one flat Box, so every observation of a behaviour (vector
observations, stacked ones, camera images, goal signals) is flattened row-major (an image HWC,
as mlagents_envs decodes it, float32 in [0, 1]) and concatenated in the order of the behaviour's
observation specs into float32[D]. `ObservationLayout` records the slice of each, so an image
encoder can cut its image back out: obs[..., s.start:s.stop].reshape(s.shape).

Actions. A behaviour with
    continuous actions only (c)        -> Box(-1, 1, (c,)), float32 (Unity clips to [-1, 1]);
    one discrete branch of n           -> Discrete(n);
    several branches n_0, ..., n_{B-1} -> Discrete(n_0 * ... * n_{B-1}), the joint action j
        enumerating the branch choices row-major (the last branch fastest):
        j = ((a_0 * n_1 + a_1) * n_2 + a_2) ...,  a_b = (j // prod(n_{b+1:})) % n_b;
    continuous and discrete (hybrid)   -> Tuple(Box(-1, 1, (c,)), Discrete(prod n_b)): an action
        is the pair (float32[N, c], int32[N] joint index). No rlkit agent has a hybrid policy
        yet; the host decodes such actions, the CLI refuses to train on them.
Masks. ML-Agents sends one bool[N, n_b] per branch with True = masked; rlkit's mask is bool[N, A]
over the joint actions with True = allowed: joint j is allowed when every branch choice a_b(j)
is allowed in its branch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rlkit.core.spaces import Box, Discrete, Space, Tuple

__all__ = [
    "ActionLayout",
    "ObservationLayout",
    "ObservationSlice",
    "action_layout",
    "action_space",
    "branches_to_joint",
    "decode_actions",
    "flatten_observations",
    "joint_mask",
    "joint_to_branches",
    "observation_layout",
    "observation_space",
]

_KINDS = {0: "vector", 1: "goal"}  # ML-Agents ObservationType DEFAULT, GOAL_SIGNAL


@dataclasses.dataclass(frozen=True)
class ObservationSlice:
    """One observation of the behaviour inside the flat vector: obs[..., start:stop] reshaped to
    `shape`. kind: "vector" (rank 1, stacked ones included), "image" (rank 3, HWC), "goal"
    (a goal signal), "other" (rank 2)."""

    name: str
    shape: tuple[int, ...]
    kind: str
    start: int
    stop: int


@dataclasses.dataclass(frozen=True)
class ObservationLayout:
    """The slices of every observation, in spec order; `size` is D."""

    slices: tuple[ObservationSlice, ...]

    @property
    def size(self) -> int:
        return self.slices[-1].stop if self.slices else 0


def observation_layout(observation_specs: Sequence[Any]) -> ObservationLayout:
    """The layout of ML-Agents ObservationSpecs (fields shape, observation_type, name)."""
    slices, start = [], 0
    for index, spec in enumerate(observation_specs):
        shape = tuple(int(d) for d in spec.shape)
        kind_value = int(getattr(spec.observation_type, "value", spec.observation_type))
        kind = _KINDS.get(kind_value, "vector")
        if kind == "vector" and len(shape) != 1:
            kind = "image" if len(shape) == 3 else "other"
        size = math.prod(shape)
        name = getattr(spec, "name", "") or f"observation_{index}"
        slices.append(ObservationSlice(name, shape, kind, start, start + size))
        start += size
    return ObservationLayout(tuple(slices))


def observation_space(layout: ObservationLayout) -> Box:
    """Box of float32[D]: [0, 1] when every observation is an image, unbounded otherwise
    (ML-Agents declares no bounds for vector observations)."""
    if layout.slices and all(s.kind == "image" for s in layout.slices):
        return Box(0.0, 1.0, (layout.size,), np.float32)
    return Box(-np.inf, np.inf, (layout.size,), np.float32)


def flatten_observations(
    observations: Sequence[np.ndarray], layout: ObservationLayout
) -> np.ndarray:
    """float32[n, D] from a DecisionSteps/TerminalSteps `obs` list (arrays [n, *shape]) in spec
    order; ValueError when a shape differs from the layout's."""
    if len(observations) != len(layout.slices):
        raise ValueError(f"expected {len(layout.slices)} observations, got {len(observations)}")
    n = observations[0].shape[0] if observations else 0
    parts = []
    for array, piece in zip(observations, layout.slices, strict=True):
        if tuple(array.shape[1:]) != piece.shape:
            raise ValueError(
                f"observation {piece.name!r} has shape {array.shape[1:]}, expected {piece.shape}"
            )
        parts.append(np.asarray(array, np.float32).reshape(n, -1))
    return np.concatenate(parts, axis=1) if parts else np.zeros((n, 0), np.float32)


@dataclasses.dataclass(frozen=True)
class ActionLayout:
    """continuous: the number of continuous actions; branches: the discrete branch sizes."""

    continuous: int
    branches: tuple[int, ...]

    @property
    def kind(self) -> str:
        """ "continuous", "discrete" or "hybrid"."""
        if self.branches and self.continuous:
            return "hybrid"
        return "discrete" if self.branches else "continuous"

    @property
    def joint_size(self) -> int:
        """The number of joint discrete actions (prod of the branch sizes; 0 without branches)."""
        return math.prod(self.branches) if self.branches else 0


def action_layout(action_spec: Any) -> ActionLayout:
    """The layout of an ML-Agents ActionSpec (continuous_size, discrete_branches)."""
    return ActionLayout(
        int(action_spec.continuous_size), tuple(int(b) for b in action_spec.discrete_branches)
    )


def action_space(layout: ActionLayout) -> Space:
    """The rlkit action space of the module docstring's rules."""
    box = Box(-1.0, 1.0, (layout.continuous,), np.float32)
    if layout.kind == "continuous":
        return box
    discrete = Discrete(layout.joint_size)
    return Tuple([box, discrete]) if layout.kind == "hybrid" else discrete


def joint_to_branches(joint: np.ndarray, branches: Sequence[int]) -> np.ndarray:
    """int32[n, B] branch choices of joint actions int[n] (row-major, the last branch fastest)."""
    joint = np.asarray(joint, np.int64).reshape(-1)
    if joint.size and (joint.min() < 0 or joint.max() >= math.prod(branches)):
        raise ValueError(f"joint action outside [0, {math.prod(branches)})")
    return np.stack(np.unravel_index(joint, tuple(branches)), axis=1).astype(np.int32)


def branches_to_joint(choices: np.ndarray, branches: Sequence[int]) -> np.ndarray:
    """int32[n] joint actions of branch choices int[n, B] (the inverse of joint_to_branches)."""
    choices = np.asarray(choices, np.int64)
    return np.ravel_multi_index(tuple(choices.T), tuple(branches)).astype(np.int32)


def joint_mask(
    branch_masks: Sequence[np.ndarray] | None, branches: Sequence[int], n: int
) -> np.ndarray:
    """bool[n, prod(branches)], True = allowed, from ML-Agents' per-branch masks (bool[n, n_b],
    True = masked; None: nothing masked): joint j is allowed when every a_b(j) is."""
    size = math.prod(branches)
    if branch_masks is None:
        return np.ones((n, size), bool)
    allowed = np.ones((n, 1), bool)
    for masked, width in zip(branch_masks, branches, strict=True):
        ok = ~np.asarray(masked, bool).reshape(n, width)
        allowed = (allowed[:, :, None] & ok[:, None, :]).reshape(n, -1)  # row-major product
    return allowed


def decode_actions(actions: Any, layout: ActionLayout) -> tuple[np.ndarray, np.ndarray]:
    """(continuous float32[n, c], discrete int32[n, B]) of a batch of rlkit actions (the module
    docstring's forms: float[n, c], int[n], or the pair (float[n, c], int[n]))."""
    if layout.kind == "hybrid":
        continuous, joint = actions
    elif layout.kind == "discrete":
        continuous, joint = None, actions
    else:
        continuous, joint = actions, None
    if joint is None:
        continuous = np.asarray(continuous, np.float32)
        n = continuous.shape[0]
        discrete = np.zeros((n, 0), np.int32)
    else:
        discrete = joint_to_branches(joint, layout.branches)
        n = discrete.shape[0]
    if continuous is None:
        continuous = np.zeros((n, 0), np.float32)
    return np.asarray(continuous, np.float32).reshape(n, layout.continuous), discrete
