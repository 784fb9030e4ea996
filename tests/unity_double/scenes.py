"""Scenes of the Unity double: how environments' agents become AgentInfoProtos and back.

Rules common to every scene (`AgentScene`):

- Agents live in slots 0..N-1. Every episode takes the next number of one counter (0, 1, 2,
  ...); episodes that start together are numbered in increasing slot order. The agent id sent
  is the episode number (ids are episode ids: unique, never reused). With `keep_agent_ids` a
  slot keeps the id of its first episode for good (what release_19's C# Agent does: it takes an
  id once, in LazyInitialize), so one id can be terminal and deciding in the same message.
- RESET: every slot starts a new episode; interrupted episodes send nothing (Unity's forced
  reset does not notify done).
- STEP: one action arrives per deciding AgentInfo of the previous message, in the order sent.
  Then every slot takes one environment step (slots that did not decide repeat their last
  action) and adds its reward to its pending reward. A slot whose episode ended sends an
  AgentInfo with done=True, its final observation and pending reward, and max_step_reached =
  truncated and not terminated; then it starts a new episode (new id, reward 0) and decides in
  the same message.
- Decisions: a slot decides when its episode step count t (steps taken in this episode; 0 at
  the start) is a multiple of its decision period: `decision_period` for the first
  `slow_agents` slots, 1 for the others. A deciding AgentInfo carries the pending reward, which
  then restarts from 0.
- Order in a message: the terminal AgentInfos (slot order), then the deciding ones (slot order);
  with `shuffle_agents` each group is permuted at random (`numpy.random.default_rng(seed mod
  2**32)`, one permutation per group and message, terminal group first).
- Discrete actions: AgentInfo.action_mask is ML-Agents' (True = masked), branches concatenated.
  A received action that the mask sent with its decision forbade counts in the stat
  `Double/MaskedActions` (SUM over the actions of this message's STEP); the environment still
  executes it (neither Unity nor the JAX environments enforce masks).
- Stats: `Double/EpisodesEnded` (SUM: episodes ended by this message's STEP).
- Environment parameters: keys in a scene's PARAMETERS set the EnvParams field of that name.
  A float takes effect at each slot's next episode start (keys in IMMEDIATE, like 3DBall's
  `gravity` callback, also at once in running episodes); a sampler is drawn at each episode
  start, slots in increasing order, keys in PARAMETERS order. Other keys are only echoed.

Scenes:

- `balanceball` (`BalanceBall`): behaviour `3DBall?team=0`, 12 agents, rlkit's BalanceBall-v0.
- `gridworld` (`GridWorld`): behaviour `GridWorld?team=0`, 4 agents, GridWorld-v0 (image).
- `specs` (`Specs`): behaviour `Specs?team=0`, 3 agents, synthetic (`Specs` docstring).

Keys of the JAX scenes (`JaxScene`): root = `jax.random.PRNGKey(seed)`, seed from Python's
rl_initialization_input. Episode e starts with `env.reset(fold_in(root, e), params_e)`; its k-th
step (k = 1, 2, ...) is `env.step_env(fold_in(fold_in(root, e), k), state, action, params_e)`
(the non-resetting step), truncated = `env.is_truncated(state', params_e)` and not terminated.
The environment is vmapped over the slots and each function jitted once, before connecting.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from tests.unity_double.protocol import (
    DEFAULT,
    GOAL_SIGNAL,
    NONE,
    PNG,
    ActionSpecProto,
    AgentActionProto,
    AgentInfoProto,
    Aggregation,
    BrainParametersProto,
    ObservationProto,
    ProtocolError,
    Sampler,
    Stat,
)

# ObservationProto.dimension_properties values (DimensionProperty: 1 NONE, 2 TRANSLATIONAL).
VECTOR_DIMENSIONS = [1]
IMAGE_DIMENSIONS = [2, 2, 1]


@dataclass
class Options:
    """Scene options from the command line (`None` agents: the scene's default)."""

    agents: int | None = None
    shuffle_agents: bool = False
    decision_period: int = 1
    slow_agents: int = 0
    keep_agent_ids: bool = False
    max_steps: int | None = None
    image_compression: str = "png"


def vector_observation(values: Any, name: str, goal: bool = False) -> ObservationProto:
    """A rank-1 float observation."""
    values = np.asarray(values, np.float32).reshape(-1)
    proto = ObservationProto(shape=[values.size], compression_type=NONE, name=name)
    proto.dimension_properties.extend(VECTOR_DIMENSIONS)
    proto.observation_type = GOAL_SIGNAL if goal else DEFAULT
    proto.float_data.data.extend(values.tolist())
    return proto


def float_image_observation(values: np.ndarray, name: str) -> ObservationProto:
    """An uncompressed rank-3 (H, W, C) observation: float_data in C order."""
    proto = ObservationProto(shape=list(values.shape), compression_type=NONE, name=name)
    proto.dimension_properties.extend(IMAGE_DIMENSIONS)
    proto.float_data.data.extend(np.asarray(values, np.float32).reshape(-1).tolist())
    return proto


def png(image: np.ndarray) -> bytes:
    """uint8 (H, W, 3) RGB -> PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, np.uint8), "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def png_observation(frames: Sequence[np.ndarray], name: str, stacked: bool) -> ObservationProto:
    """uint8 RGB frames (H, W, 3) as concatenated PNGs, shape (H, W, 3 * len(frames)).

    A stacked observation carries compressed_channel_mapping [0, 1, ..., 3n-1] (frame j's
    channel c is channel 3j + c), as ML-Agents' StackingSensor; a plain camera sends none.
    """
    height, width, _ = frames[0].shape
    proto = ObservationProto(shape=[height, width, 3 * len(frames)], compression_type=PNG)
    proto.name = name
    proto.dimension_properties.extend(IMAGE_DIMENSIONS)
    proto.compressed_data = b"".join(png(frame) for frame in frames)
    if stacked:
        proto.compressed_channel_mapping.extend(range(3 * len(frames)))
    return proto


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float [0, 1] -> uint8, rounded (so Python's decoded value / 255 is within 1/510)."""
    return np.clip(np.rint(np.asarray(image, np.float32) * 255.0), 0, 255).astype(np.uint8)


class AgentScene:
    """Slots, ids, decision schedule, ordering, masks and stats (module docstring); subclasses
    define the environment through `_start`, `_advance`, `_observations` and `_mask`."""

    behavior_name = ""
    default_agents = 1
    continuous_size = 0
    branch_sizes: tuple[int, ...] = ()
    PARAMETERS: tuple[str, ...] = ()
    IMMEDIATE: tuple[str, ...] = ()

    def __init__(self, options: Options):
        n = options.agents or self.default_agents
        if n < 1 or options.decision_period < 1 or not 0 <= options.slow_agents <= n:
            raise ValueError(f"bad agent options {options}")
        self.options, self.num_agents = options, n
        self.period = np.where(np.arange(n) < options.slow_agents, options.decision_period, 1)
        self.continuous = np.zeros((n, self.continuous_size), np.float32)
        self.discrete = np.zeros((n, len(self.branch_sizes)), np.int32)
        self.ids = np.full(n, -1, np.int64)
        self.episodes = np.zeros(n, np.int32)  # current episode number of each slot
        self.t = np.zeros(n, np.int32)  # steps taken in the current episode
        self.pending_reward = np.zeros(n, np.float32)
        self.parameters: dict[str, float | Sampler] = {}
        self._next_episode = 0
        self._deciding: list[int] = []  # slots of the last message's deciding AgentInfos, in order
        self._sent_masks: dict[int, np.ndarray] = {}
        self._episodes_ended = self._masked_actions = 0
        self._order = np.random.default_rng(0)
        self._started = False

    # -- the protocol's side -------------------------------------------------------------------

    def brain_parameters(self) -> BrainParametersProto:
        """The behaviour's BrainParametersProto (action spec; deprecated fields as Unity fills
        them for a purely continuous or purely discrete spec)."""
        spec = ActionSpecProto(
            num_continuous_actions=self.continuous_size,
            num_discrete_actions=len(self.branch_sizes),
            discrete_branch_sizes=list(self.branch_sizes),
        )
        brain = BrainParametersProto(brain_name=self.behavior_name, is_training=True)
        brain.action_spec.CopyFrom(spec)
        if not self.branch_sizes:
            brain.vector_action_size_deprecated.append(self.continuous_size)
            brain.vector_action_space_type_deprecated = 1  # CONTINUOUS
        elif not self.continuous_size:
            brain.vector_action_size_deprecated.extend(self.branch_sizes)
        return brain

    def seed(self, seed: int) -> None:
        """The seed of Python's rl_initialization_input."""
        self._order = np.random.default_rng(seed % 2**32)

    def reset(self) -> list[AgentInfoProto]:
        """RESET: every slot starts a new episode and decides."""
        self._episodes_ended = self._masked_actions = 0
        self._started = True
        self._begin(np.arange(self.num_agents))
        return self._collect([])

    def step(self, actions: Sequence[AgentActionProto]) -> list[AgentInfoProto]:
        """STEP: apply `actions` (one per deciding AgentInfo sent, in that order), advance every
        slot, and return the next message's AgentInfos."""
        if not self._started:  # mlagents_envs resets before its first step
            raise ProtocolError("STEP before the first RESET")
        self._receive(actions)
        reward, terminated, truncated = self._advance()
        self.t += 1
        self.pending_reward += reward
        ended = np.flatnonzero(terminated | truncated)
        terminal = [
            self._info(k, done=True, max_step=truncated[k] and not terminated[k]) for k in ended
        ]
        self._episodes_ended = len(ended)
        if len(ended):
            self._begin(ended)
        return self._collect(terminal)

    def set_parameter(self, key: str, value: float | Sampler) -> None:
        """An environment parameter (module docstring)."""
        self.parameters[key] = value
        if key in self.IMMEDIATE and not isinstance(value, Sampler):
            self._set_now(key, float(value))

    def stats(self) -> list[Stat]:
        stats: list[Stat] = [("Double/EpisodesEnded", float(self._episodes_ended), Aggregation.SUM)]
        if self.branch_sizes:
            stats.append(("Double/MaskedActions", float(self._masked_actions), Aggregation.SUM))
        return stats

    # -- bookkeeping ---------------------------------------------------------------------------

    def _begin(self, slots: np.ndarray) -> None:
        """New episodes in `slots` (increasing): numbers, ids, parameters, then `_start`."""
        values: dict[str, np.ndarray] = {}
        for slot in slots:
            self.episodes[slot] = self._next_episode
            if not (self.options.keep_agent_ids and self.ids[slot] >= 0):
                self.ids[slot] = self._next_episode
            self._next_episode += 1
            self.t[slot], self.pending_reward[slot] = 0, 0.0
            for key in self.PARAMETERS:
                value = self.parameters.get(key)
                if value is not None:
                    drawn = value.draw() if isinstance(value, Sampler) else float(value)
                    values.setdefault(key, np.full(self.num_agents, np.nan))[slot] = drawn
        self._start(np.asarray(slots), values)

    def _collect(self, terminal: list[AgentInfoProto]) -> list[AgentInfoProto]:
        """Terminal AgentInfos, then those of the deciding slots (shuffled if asked)."""
        deciding = [k for k in range(self.num_agents) if self.t[k] % self.period[k] == 0]
        if self.options.shuffle_agents:
            terminal = [terminal[i] for i in self._order.permutation(len(terminal))]
            deciding = [deciding[i] for i in self._order.permutation(len(deciding))]
        infos = terminal + [self._info(k, done=False, max_step=False) for k in deciding]
        self.pending_reward[deciding] = 0.0
        self._deciding = deciding
        return infos

    def _info(self, slot: int, done: bool, max_step: bool) -> AgentInfoProto:
        info = AgentInfoProto(
            reward=float(self.pending_reward[slot]),
            done=bool(done),
            max_step_reached=bool(max_step),
            id=int(self.ids[slot]),
        )
        info.observations.extend(self._observations(slot))
        if self.branch_sizes and not done:
            mask = np.asarray(self._mask(slot), bool)
            info.action_mask.extend(mask.tolist())
            self._sent_masks[slot] = mask
        return info

    def _receive(self, actions: Sequence[AgentActionProto]) -> None:
        if len(actions) != len(self._deciding):
            raise ProtocolError(
                f"{self.behavior_name}: {len(actions)} actions for {len(self._deciding)} "
                "deciding agents"
            )
        offsets = np.cumsum((0, *self.branch_sizes))[:-1]
        masked = 0
        for slot, action in zip(self._deciding, actions, strict=True):
            continuous = np.asarray(action.continuous_actions, np.float32)
            discrete = np.asarray(action.discrete_actions, np.int64)
            if continuous.size != self.continuous_size or discrete.size != len(self.branch_sizes):
                raise ProtocolError(
                    f"{self.behavior_name}: action of agent {self.ids[slot]} has "
                    f"{continuous.size} continuous and {discrete.size} discrete values, expected "
                    f"{self.continuous_size} and {len(self.branch_sizes)}"
                )
            if np.any(discrete < 0) or np.any(discrete >= np.array(self.branch_sizes, int)):
                raise ProtocolError(
                    f"discrete action {discrete.tolist()} outside {self.branch_sizes}"
                )
            self.continuous[slot], self.discrete[slot] = continuous, discrete
            if self.branch_sizes:
                masked += int(np.sum(self._sent_masks[slot][offsets + discrete]))
        self._masked_actions = masked
        self._on_actions(self._deciding)

    # -- the environment (subclasses) ----------------------------------------------------------

    def _start(self, slots: np.ndarray, values: dict[str, np.ndarray]) -> None:
        """Start episodes in `slots`; `values[key][slot]` are their parameter values."""

    def _set_now(self, key: str, value: float) -> None:
        """An IMMEDIATE parameter for every running episode."""

    def _on_actions(self, slots: list[int]) -> None:
        """Actions for `slots` have just been stored in `continuous` / `discrete`."""

    def _advance(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One step of every slot: (reward float32[N], terminated bool[N], truncated bool[N])."""
        raise NotImplementedError

    def _observations(self, slot: int) -> list[ObservationProto]:
        raise NotImplementedError

    def _mask(self, slot: int) -> np.ndarray:
        """bool[sum(branch_sizes)], True = masked."""
        raise NotImplementedError


class JaxScene(AgentScene):
    """An rlkit JAX environment vmapped over the slots (keys: module docstring)."""

    def __init__(self, options: Options, env: Any, params: Any):
        super().__init__(options)
        # JAX is imported here, not at module level, so that the specs scene starts fast.
        import jax

        self._jax, self.env = jax, env
        if options.max_steps is not None:
            params = params.replace(max_steps_in_episode=options.max_steps)
        n = self.num_agents
        self.params = jax.tree.map(lambda x: _batched(x, n), params)
        self._reset_fn = jax.jit(self._reset_all)
        self._step_fn = jax.jit(self._step_all)
        # Compile both now (before connecting): later calls have the same shapes and dtypes.
        root = np.asarray(jax.random.PRNGKey(0))
        self.obs, self.state, self.extras = jax.device_get(
            self._reset_fn(root, self.episodes, self.params)
        )
        jax.block_until_ready(
            self._step_fn(
                root, self.episodes, self.t + 1, self.state, self._env_actions(), self.params
            )
        )
        self.root = root

    def seed(self, seed: int) -> None:
        super().seed(seed)
        self.root = np.asarray(self._jax.random.PRNGKey(seed))

    def _reset_all(self, root, episodes, params):
        jax = self._jax
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(root, episodes)
        obs, state = jax.vmap(self.env.reset)(keys, params)
        return obs, state, self._extras(state, params)

    def _step_all(self, root, episodes, steps, state, actions, params):
        jax = self._jax
        fold = jax.random.fold_in
        keys = jax.vmap(lambda e, k: fold(fold(root, e), k))(episodes, steps)
        obs, state, reward, terminated, _ = jax.vmap(self.env.step_env)(
            keys, state, actions, params
        )
        truncated = jax.vmap(self.env.is_truncated)(state, params) & ~terminated
        return obs, state, reward, terminated, truncated, self._extras(state, params)

    def _extras(self, state, params):
        """Per-slot values computed with the step (e.g. action masks); None by default."""
        return None

    def _env_actions(self) -> np.ndarray:
        """The batched action the environment takes, from `continuous` / `discrete`."""
        raise NotImplementedError

    def _start(self, slots: np.ndarray, values: dict[str, np.ndarray]) -> None:
        for key, column in values.items():
            current = getattr(self.params, key)
            self.params = self.params.replace(
                **{key: np.where(np.isnan(column), current, column).astype(current.dtype)}
            )
        fresh = self._jax.device_get(self._reset_fn(self.root, self.episodes, self.params))
        chosen = np.zeros(self.num_agents, bool)
        chosen[slots] = True
        self.obs, self.state, self.extras = _select(
            chosen, fresh, (self.obs, self.state, self.extras)
        )

    def _set_now(self, key: str, value: float) -> None:
        current = getattr(self.params, key)
        self.params = self.params.replace(**{key: np.full_like(current, value)})

    def _advance(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out = self._step_fn(
            self.root, self.episodes, self.t + 1, self.state, self._env_actions(), self.params
        )
        self.obs, self.state, reward, terminated, truncated, self.extras = self._jax.device_get(out)
        return np.asarray(reward, np.float32), np.asarray(terminated), np.asarray(truncated)


def _batched(leaf: Any, n: int) -> np.ndarray:
    """An EnvParams leaf repeated over the slots; floats as float32 (what JAX computes in)."""
    value = np.asarray(leaf)
    if value.dtype.kind == "f":
        value = value.astype(np.float32)
    return np.array(np.broadcast_to(value, (n, *value.shape)))


def _select(chosen: np.ndarray, new: Any, old: Any) -> Any:
    """Per slot: the leaves of `new` where `chosen`, else those of `old` (leading axis N)."""
    import jax

    def pick(a, b):
        return np.where(chosen.reshape((-1,) + (1,) * (np.ndim(a) - 1)), a, b)

    return jax.tree.map(pick, new, old)


class BalanceBall(JaxScene):
    """3DBall: observation float[8] `VectorSensor_size8` (rlkit's BalanceBall observation),
    2 continuous actions clipped to [-1, 1]; parameters mass, scale, gravity (gravity at once)."""

    behavior_name = "3DBall?team=0"
    default_agents = 12
    continuous_size = 2
    PARAMETERS = ("mass", "scale", "gravity")
    IMMEDIATE = ("gravity",)

    def __init__(self, options: Options):
        import envs

        super().__init__(options, *envs.make("BalanceBall-v0"))

    def _env_actions(self) -> np.ndarray:
        return np.clip(self.continuous, -1.0, 1.0)

    def _observations(self, slot: int) -> list[ObservationProto]:
        return [vector_observation(self.obs[slot], "VectorSensor_size8")]


class GridWorld(JaxScene):
    """GridWorld: observations `CameraSensor` [64, 84, 3] (PNG of the rounded uint8 image, or
    float_data with image_compression "none") and `VectorSensor` float[2] GOAL_SIGNAL; one
    discrete branch of 5; the mask is rlkit's action_mask inverted (True = masked)."""

    behavior_name = "GridWorld?team=0"
    default_agents = 4
    branch_sizes = (5,)

    def __init__(self, options: Options):
        import envs

        if options.image_compression not in ("png", "none"):
            raise ValueError(f"image compression {options.image_compression!r}")
        super().__init__(options, *envs.make("GridWorld-v0", obs_mode="image"))

    def _extras(self, state, params):
        return self._jax.vmap(self.env.action_mask)(state, params)

    def _env_actions(self) -> np.ndarray:
        return self.discrete[:, 0]

    def _observations(self, slot: int) -> list[ObservationProto]:
        image = self.obs["image"][slot]
        if self.options.image_compression == "png":
            camera = png_observation([to_uint8(image)], "CameraSensor", stacked=False)
        else:
            camera = float_image_observation(image, "CameraSensor")
        return [camera, vector_observation(self.obs["goal"][slot], "VectorSensor", goal=True)]

    def _mask(self, slot: int) -> np.ndarray:
        return ~np.asarray(self.extras[slot], bool)


class Specs(AgentScene):
    """A synthetic scene whose every number is a function of (agent id i, episode step t).

    Observations, in ML-Agents' order (sorted by name):
      0. `CameraStack` PNG, shape [6, 5, 6]: frames g(t-1), g(t) (oldest first) as two
         concatenated RGB PNGs, compressed_channel_mapping [0..5]; g(s)[h, w, c] = (40 i +
         30 (s + 1) + 10 h + 3 w + 70 c) mod 256 (uint8) for s >= 0, 0 for s < 0 (a stack is
         zero-filled at episode start). Python decodes uint8 / 255.
      1. `FloatGrid` float [2, 3, 4], uncompressed: value[h, w, c] = 1000 i + 100 t + 12 h +
         4 w + c.
      2. `StackedVector` float[6]: 3 stacked frames f(t-2), f(t-1), f(t), f(s) = [s + 1, i]
         for s >= 0, [0, 0] for s < 0.
      3. `Vector` float[3] = [i, t, i + t / 4].
    Actions: 2 continuous + discrete branches [3, 2]. Mask (True = masked): branch 0 masks
    action (i + t) mod 3, branch 1 masks action 1 when t is odd.
    Reward of the step that brings an episode to step t: t + i / 4.
    Episodes of slot k last 2 + k steps and end terminated when k is odd, truncated
    (max_step_reached) when k is even.
    Stats: for every action received, `Double/Action/<i>/c0`, `.../c1` (continuous values as
    received, unclipped) and `.../d0`, `.../d1` (MOST_RECENT), i the deciding agent's id.
    """

    behavior_name = "Specs?team=0"
    default_agents = 3
    continuous_size = 2
    branch_sizes = (3, 2)
    IMAGE_SHAPE = (6, 5)

    def __init__(self, options: Options):
        super().__init__(options)
        self._actions_received: list[Stat] = []

    def _on_actions(self, slots: list[int]) -> None:
        recent = Aggregation.MOST_RECENT
        self._actions_received = []
        for slot in slots:
            prefix = f"Double/Action/{self.ids[slot]}"
            values = [*self.continuous[slot].tolist(), *self.discrete[slot].tolist()]
            for name, value in zip(("c0", "c1", "d0", "d1"), values, strict=True):
                self._actions_received.append((f"{prefix}/{name}", float(value), recent))

    def reset(self) -> list[AgentInfoProto]:
        self._actions_received = []
        return super().reset()

    def stats(self) -> list[Stat]:
        return super().stats() + self._actions_received

    def _advance(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t = self.t + 1
        reward = (t + self.ids / 4).astype(np.float32)
        slots = np.arange(self.num_agents)
        ended = t >= 2 + slots
        return reward, ended & (slots % 2 == 1), ended & (slots % 2 == 0)

    def frame(self, agent: int, s: int) -> np.ndarray:
        """g(s) of the camera stack, uint8 (6, 5, 3)."""
        if s < 0:
            return np.zeros((*self.IMAGE_SHAPE, 3), np.uint8)
        h, w, c = np.indices((*self.IMAGE_SHAPE, 3))
        return ((40 * agent + 30 * (s + 1) + 10 * h + 3 * w + 70 * c) % 256).astype(np.uint8)

    def _observations(self, slot: int) -> list[ObservationProto]:
        i, t = int(self.ids[slot]), int(self.t[slot])
        camera = png_observation([self.frame(i, t - 1), self.frame(i, t)], "CameraStack", True)
        h, w, c = np.indices((2, 3, 4))
        grid = float_image_observation(1000 * i + 100 * t + 12 * h + 4 * w + c, "FloatGrid")
        stacked = [[s + 1, i] if s >= 0 else [0, 0] for s in (t - 2, t - 1, t)]
        return [
            camera,
            grid,
            vector_observation(stacked, "StackedVector"),
            vector_observation([i, t, i + t / 4], "Vector"),
        ]

    def _mask(self, slot: int) -> np.ndarray:
        i, t = int(self.ids[slot]), int(self.t[slot])
        mask = np.zeros(5, bool)
        mask[(i + t) % 3] = True
        mask[3 + 1] = t % 2 == 1
        return mask


SCENES = {"balanceball": BalanceBall, "gridworld": GridWorld, "specs": Specs}


def make_scene(name: str, options: Options) -> AgentScene:
    """The scene called `name` (a key of SCENES)."""
    return SCENES[name](options)
