"""GridWorld-v0: ML-Agents' GridWorld example (release_19) as a pure JAX environment.

An agent on a `grid_size` x `grid_size` board of cells (x, z), x to the right and z upwards,
must reach the goal named by its goal signal: one of the green "plus" goals or one of the red
"ex" goals. The state is symbolic and exact; the only randomness is the reset.

- Reset: `num_plus_goals + num_ex_goals + 1` distinct cells are drawn uniformly (plus goals
  first, then ex goals, the agent last; cell n is x = n // grid_size, z = n % grid_size), and the
  current goal is plus or ex with probability 1/2 each.
- Actions (Discrete(5)): 0 NoAction, 1 Up (+z), 2 Down (-z), 3 Left (-x), 4 Right (+x). A move
  into the surrounding wall leaves the agent where it is.
- Action mask (True = allowed): Left is forbidden at x = 0, Right at x = grid_size - 1, Down at
  z = 0, Up at z = grid_size - 1; NoAction always allowed; everything allowed when
  `mask_actions` is False. The environment does not enforce the mask (a masked move is a wall
  bump).
- Reward: -step_penalty every step; a step onto a goal cell instead gets exactly +1 if the goal
  is the current goal's kind and exactly -1 otherwise, and terminates the episode (ML-Agents
  `SetReward` overwrites the step penalty). The episode is truncated, not terminated, after
  `max_steps_in_episode` steps without reaching a goal.
- Observations, `obs_mode="planes"` (default): float32[grid_size**2 * 3 + 2], one-hot planes
  float32[x, z, channel] (channels: agent, plus goals, ex goals) flattened in C order, then the
  goal signal [1, 0] = plus, [0, 1] = ex. `obs_mode="image"`: {"image": float32[64, 84, 3] in
  [0, 1], "goal": float32[2]}, a synthetic top-down render of ML-Agents' 84 x 64 orthographic
  camera (see `render_image`).
- Finite states (`rlkit.core.tabular.FiniteStates`): apart from the step counter, a state is a
  board (the set P of plus cells, the set E of ex cells), the agent's cell c and the goal kind k,
  and the planes observation shows all four. Index (mixed radix, n = grid_size**2 cells,
  p = num_plus_goals, e = num_ex_goals):

      index = ((k C(n, p) + rank(P)) C(n - p, e) + rank(E among the cells outside P)) n + c,

  rank the combinatorial number system, rank({c_1 < ... < c_m}) = sum_j C(c_j, j) (j from 1),
  so there are 2 C(n, p) C(n - p, e) n states: 30000 on the default board. The agent may stand on
  a goal: such states are the final observations of terminated steps (never acted in, never
  bootstrapped from), indexed so that every planes observation has an index. The step counter is
  not part of the index: the time limit is a truncation (a cut that bootstraps), not a state of
  the task, so the tabular model is the task without it.

Source: Unity ML-Agents release_19, Examples/GridWorld (GridAgent.cs, GridArea.cs, Area.prefab);
facts in /work/shared/reference/ML-AGENTS.md section 2.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment

from rlkit.core.config import INT_MAX, ConfigError
from rlkit.core.env import Environment
from rlkit.core.spaces import Box, Dict, Discrete

__all__ = [
    "ACTION_DELTAS",
    "BACKGROUND_COLOUR",
    "IMAGE_HEIGHT",
    "IMAGE_WIDTH",
    "EnvParams",
    "EnvState",
    "GridWorld",
    "render_image",
    "render_planes",
]

# (dx, dz) of actions NoAction, Up, Down, Left, Right.
ACTION_DELTAS = np.array([[0, 0], [0, 1], [0, -1], [-1, 0], [1, 0]], np.int32)
NUM_ACTIONS = 5
PLUS, EX = 0, 1  # values of `EnvState.goal`; also the index of the goal signal's hot entry

# ML-Agents' GridWorld CameraSensor: 84 wide x 64 high, orthographic, orthographicSize =
# grid_size / 2, so the grid's rows fill the 64 px height and 10 px strips show at each side.
IMAGE_HEIGHT, IMAGE_WIDTH = 64, 84
BACKGROUND_COLOUR = np.array([0.192, 0.302, 0.475], np.float32)  # the camera's clear colour
# The remaining colours are rlkit's choice (distinct from each other and the background).
FLOOR_COLOUR = np.array([0.85, 0.85, 0.85], np.float32)
WALL_COLOUR = np.array([0.35, 0.35, 0.35], np.float32)
AGENT_COLOUR = np.array([0.15, 0.45, 1.0], np.float32)
PLUS_COLOUR = np.array([0.1, 0.8, 0.1], np.float32)
EX_COLOUR = np.array([0.9, 0.1, 0.1], np.float32)


@struct.dataclass
class EnvState(environment.EnvState):
    """One GridWorld episode.

    agent: int32[2], the agent's cell (x, z).
    plus_goals: int32[num_plus_goals, 2], cells of the plus goals.
    ex_goals: int32[num_ex_goals, 2], cells of the ex goals.
    goal: int32[], the current goal's kind (0 = plus, 1 = ex).
    terminal: bool[], a goal was reached at the last step (so that step is not a truncation).
    time: int32[], steps taken in this episode.
    """

    agent: jax.Array
    plus_goals: jax.Array
    ex_goals: jax.Array
    goal: jax.Array
    terminal: jax.Array
    time: jax.Array


@struct.dataclass
class EnvParams(environment.EnvParams):
    """GridWorld parameters; defaults are those of ML-Agents' GridWorld scene.

    grid_size: cells per side (ML-Agents env parameter `gridSize`, default 5). Static.
    num_plus_goals: green plus goals on the board (`numPlusGoals`, default 1). Static.
    num_ex_goals: red ex goals on the board (`numExGoals`, default 1). Static.
    max_steps_in_episode: truncation length (Agent `MaxStep: 100`).
    step_penalty: subtracted from the reward every step (`AddReward(-0.01)`).
    mask_actions: whether `action_mask` forbids moves into the wall (`maskActions: 1`).
    """

    grid_size: int = struct.field(pytree_node=False, default=5)
    num_plus_goals: int = struct.field(pytree_node=False, default=1)
    num_ex_goals: int = struct.field(pytree_node=False, default=1)
    max_steps_in_episode: int = 100
    step_penalty: float = 0.01
    mask_actions: bool = True


class GridWorld(Environment):
    """ML-Agents' GridWorld (see the module docstring for the full specification).

    Args:
        obs_mode: "planes" (flat one-hot planes + goal signal) or "image" (a dict of the
            rendered 64 x 84 RGB camera image and the goal signal).
    """

    def __init__(self, obs_mode: str = "planes"):
        super().__init__()
        if obs_mode not in ("planes", "image"):
            raise ValueError(f"obs_mode must be 'planes' or 'image', got {obs_mode!r}")
        self.obs_mode = obs_mode

    @property
    def name(self) -> str:
        return "GridWorld-v0"

    @property
    def num_actions(self) -> int:
        return NUM_ACTIONS

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def check_params(self, params: EnvParams) -> None:
        """ConfigError for parameters that cannot make a board (envs.make calls it)."""
        _check_params(params)

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[Any, EnvState]:
        _check_params(params)
        g = params.grid_size
        key_cells, key_goal = jax.random.split(key)
        num_goals = params.num_plus_goals + params.num_ex_goals
        # ML-Agents fills a HashSet with uniform draws until it has enough distinct cells.
        cells = distinct_integers(key_cells, g * g, num_goals + 1)
        xz = jnp.stack([cells // g, cells % g], axis=-1)
        state = EnvState(
            agent=xz[num_goals],
            plus_goals=xz[: params.num_plus_goals],
            ex_goals=xz[params.num_plus_goals : num_goals],
            goal=jax.random.randint(key_goal, (), 0, 2, jnp.int32),
            terminal=jnp.array(False),
            time=jnp.array(0, jnp.int32),
        )
        return self._observe(state, params), state

    def step_env(
        self, key: jax.Array, state: EnvState, action: int | jax.Array, params: EnvParams
    ) -> tuple[Any, EnvState, jax.Array, jax.Array, dict[str, Any]]:
        target = state.agent + jnp.asarray(ACTION_DELTAS)[jnp.asarray(action, jnp.int32)]
        inside = jnp.all((target >= 0) & (target < params.grid_size))
        agent = jnp.where(inside, target, state.agent)
        on_plus = jnp.any(jnp.all(state.plus_goals == agent, axis=-1))
        on_ex = jnp.any(jnp.all(state.ex_goals == agent, axis=-1))
        reached = on_plus | on_ex
        right_goal = jnp.where(state.goal == PLUS, on_plus, on_ex)
        reward = jnp.where(
            reached, jnp.where(right_goal, 1.0, -1.0), -jnp.asarray(params.step_penalty)
        ).astype(jnp.float32)
        state = state.replace(agent=agent, terminal=reached, time=state.time + 1)
        return self._observe(state, params), state, reward, reached, {}

    def is_truncated(self, state: EnvState, params: EnvParams) -> jax.Array:
        """The time limit ended the episode and no goal was reached at that last step.

        ML-Agents' EndEpisode on a goal resets the step counter before the MaxStep check, so
        reaching a goal on the last allowed step is a termination only.
        """
        return (state.time >= params.max_steps_in_episode) & ~state.terminal

    def action_mask(self, state: EnvState, params: EnvParams) -> jax.Array:
        """bool[5], True = allowed: moves that would leave the board are forbidden."""
        x, z = state.agent[0], state.agent[1]
        last = params.grid_size - 1
        mask = jnp.stack([jnp.array(True), z < last, z > 0, x > 0, x < last])
        return mask | ~jnp.asarray(params.mask_actions, bool)

    def action_space(self, params: EnvParams | None = None) -> Discrete:
        return Discrete(NUM_ACTIONS)

    def observation_space(self, params: EnvParams | None = None) -> Box | Dict:
        params = self.default_params if params is None else params
        goal = Box(0.0, 1.0, (2,), jnp.float32)
        if self.obs_mode == "image":
            image = Box(0.0, 1.0, (IMAGE_HEIGHT, IMAGE_WIDTH, 3), jnp.float32)
            return Dict({"image": image, "goal": goal})
        return Box(0.0, 1.0, (params.grid_size**2 * 3 + 2,), jnp.float32)

    # -- finite states (rlkit.core.tabular.FiniteStates; module docstring) -----------------------

    def num_states(self, params: EnvParams) -> int:
        """2 C(n, p) C(n - p, e) n: every (goal kind, board, agent cell), n = grid_size**2."""
        _check_params(params)
        n, p, e = params.grid_size**2, params.num_plus_goals, params.num_ex_goals
        count = 2 * math.comb(n, p) * math.comb(n - p, e) * n
        if count > INT_MAX:
            raise ConfigError(f"GridWorld's {count} states do not fit an int32 index")
        return count

    def state_index(self, state: EnvState, params: EnvParams) -> jax.Array:
        """int32[] index of `state` (module docstring); the step counter is ignored."""
        n, g = params.grid_size**2, params.grid_size

        def members(cells: jax.Array) -> jax.Array:  # [m, 2] (x, z) -> bool[n]
            return jnp.zeros(n, bool).at[cells[:, 0] * g + cells[:, 1]].set(True)

        agent = state.agent[0] * g + state.agent[1]
        plus, ex = members(state.plus_goals), members(state.ex_goals)
        return _board_index(agent, plus, ex, state.goal, params)

    def obs_index(self, obs: jax.Array, params: EnvParams) -> jax.Array:
        """int32[] index of the state a planes observation float32[3 n + 2] shows (module
        docstring): the agent plane's hot cell, the goal planes' sets, the goal signal's kind."""
        if self.obs_mode != "planes":
            raise ConfigError("GridWorld's obs_index reads planes observations (obs_mode='planes')")
        n = params.grid_size**2
        cells = obs[: 3 * n].reshape(n, 3) > 0.5  # cell x * grid_size + z, channels as planes
        agent = jnp.argmax(cells[:, 0]).astype(jnp.int32)
        goal = jnp.argmax(obs[3 * n : 3 * n + 2]).astype(jnp.int32)
        return _board_index(agent, cells[:, 1], cells[:, 2], goal, params)

    def enumerate_states(self, params: EnvParams) -> EnvState:
        """Every state in index order: an EnvState whose leaves have a leading axis [S], row i the
        state of index i (time 0, not terminal; goal cells in increasing cell order)."""
        kinds, plus, ex, agent = _enumeration(
            params.grid_size, params.num_plus_goals, params.num_ex_goals
        )
        g, count = params.grid_size, len(kinds)

        def xz(cells: np.ndarray) -> jax.Array:
            return jnp.asarray(np.stack([cells // g, cells % g], axis=-1), jnp.int32)

        return EnvState(
            agent=xz(agent),
            plus_goals=xz(plus),
            ex_goals=xz(ex),
            goal=jnp.asarray(kinds, jnp.int32),
            terminal=jnp.zeros(count, bool),
            time=jnp.zeros(count, jnp.int32),
        )

    def initial_distribution(self, params: EnvParams) -> jax.Array:
        """float32[S], the probability of each state after `reset`: uniform over the states whose
        agent stands on no goal (the reset draws distinct cells and a fair goal kind)."""
        _, plus, ex, agent = _enumeration(
            params.grid_size, params.num_plus_goals, params.num_ex_goals
        )
        on_goal = np.concatenate([plus, ex], axis=1) == agent[:, None]
        start = ~on_goal.any(axis=1)
        return jnp.asarray(start / start.sum(), jnp.float32)

    def _observe(self, state: EnvState, params: EnvParams) -> Any:
        goal = jax.nn.one_hot(state.goal, 2, dtype=jnp.float32)
        planes = render_planes(state, params)
        if self.obs_mode == "image":
            return {"image": render_image(planes), "goal": goal}
        return jnp.concatenate([planes.reshape(-1), goal])


def _check_params(params: EnvParams) -> None:
    """Raise ConfigError for static parameters that cannot make a board (checked at trace time)."""
    if params.grid_size < 1:
        raise ConfigError(f"grid_size must be >= 1, got {params.grid_size}")
    if params.num_plus_goals < 0 or params.num_ex_goals < 0:
        raise ConfigError("num_plus_goals and num_ex_goals must be >= 0")
    needed = params.num_plus_goals + params.num_ex_goals + 1
    if needed > params.grid_size**2:
        raise ConfigError(
            f"{needed} distinct cells (goals + agent) do not fit on a "
            f"{params.grid_size}x{params.grid_size} grid"
        )


@functools.cache
def _binomials(n: int, m: int) -> np.ndarray:
    """int32[n + 1, m + 1], entry [c, j] = C(c, j) (0 where j > c)."""
    return np.array([[math.comb(c, j) for j in range(m + 1)] for c in range(n + 1)], np.int32)


def subset_rank(members: jax.Array, size: int) -> jax.Array:
    """Rank of a `size`-subset of range(n) in the combinatorial number system (colex order).

    members: bool[n] with exactly `size` True entries at c_1 < ... < c_size -> int32[]
    sum_j C(c_j, j), j from 1; the ranks of all C(n, size) subsets are 0 .. C(n, size) - 1.
    """
    table = jnp.asarray(_binomials(members.shape[0], size))
    position = jnp.clip(jnp.cumsum(members), 0, size)  # j of each member
    terms = table[jnp.arange(members.shape[0]), position]
    return jnp.sum(jnp.where(members, terms, 0)).astype(jnp.int32)


def _board_index(
    agent: jax.Array, plus: jax.Array, ex: jax.Array, goal: jax.Array, params: EnvParams
) -> jax.Array:
    """The module docstring's index of agent cell int[], plus and ex cell sets bool[n] and goal
    kind int[]: ex cells are ranked by their position among the cells outside P."""
    n, p, e = params.grid_size**2, params.num_plus_goals, params.num_ex_goals
    outside = jnp.arange(n) - jnp.cumsum(plus)  # position of each cell among those outside P
    ex_outside = jnp.zeros(n - p, bool).at[jnp.where(ex, outside, n - p)].set(True, mode="drop")
    board = goal * math.comb(n, p) + subset_rank(plus, p)
    board = board * math.comb(n - p, e) + subset_rank(ex_outside, e)
    return (board * n + agent).astype(jnp.int32)


def _subsets(n: int, size: int) -> np.ndarray:
    """All `size`-subsets of range(n) in rank order (`subset_rank`): int64[C(n, size), size]."""
    subsets = np.array(list(itertools.combinations(range(n), size)), np.int64)
    subsets = subsets.reshape(math.comb(n, size), size)
    ranks = sum(_binomials(n, size)[subsets[:, j], j + 1] for j in range(size))
    return subsets[np.argsort(ranks)]


@functools.cache
def _enumeration(grid_size: int, num_plus: int, num_ex: int) -> tuple[np.ndarray, ...]:
    """Every state's goal kind [S], plus cells [S, p], ex cells [S, e] and agent cell [S] (cells
    numbered x * grid_size + z), in index order (module docstring): kind slowest, agent fastest."""
    n = grid_size**2
    plus_sets, ex_sets = _subsets(n, num_plus), _subsets(n - num_plus, num_ex)
    boards_plus, boards_ex = [], []
    for plus in plus_sets:
        outside = np.setdiff1d(np.arange(n), plus)  # sorted: position -> cell
        boards_plus.append(np.broadcast_to(plus, (len(ex_sets), num_plus)))
        boards_ex.append(outside[ex_sets])
    plus = np.tile(np.repeat(np.concatenate(boards_plus), n, axis=0), (2, 1))
    ex = np.tile(np.repeat(np.concatenate(boards_ex), n, axis=0), (2, 1))
    per_kind = len(plus_sets) * len(ex_sets) * n
    kinds = np.repeat(np.arange(2), per_kind)
    agent = np.tile(np.arange(n), 2 * len(plus_sets) * len(ex_sets))
    return kinds, plus, ex, agent


def distinct_integers(key: jax.Array, n: int, k: int) -> jax.Array:
    """k distinct integers drawn uniformly without replacement from [0, n): int32[k].

    Draw i is uniform over the n - i values not yet taken: a uniform r in [0, n - i) is mapped
    to the r-th untaken value by stepping past the taken ones in increasing order. Cheaper than
    a permutation of all n values (a sort) when k is small, as it is here (3 of 25).
    """
    draws = jax.random.randint(key, (k,), 0, n - jnp.arange(k), dtype=jnp.int32)
    taken: list[jax.Array] = []
    for i in range(k):
        value = draws[i]
        for t in jnp.sort(jnp.stack(taken)) if taken else ():
            value = value + (value >= t)
        taken.append(value)
    return jnp.stack(taken)


def render_planes(state: EnvState, params: EnvParams) -> jax.Array:
    """One-hot planes float32[grid_size, grid_size, 3], indexed [x, z, channel].

    Channel 0 is the agent, 1 the plus goals, 2 the ex goals. The agent's cell may also hold a
    goal (in the final observation of an episode that reached it).
    """
    g = params.grid_size
    planes = jnp.zeros((g, g, 3), jnp.float32)
    planes = planes.at[state.agent[0], state.agent[1], 0].set(1.0)
    planes = planes.at[state.plus_goals[:, 0], state.plus_goals[:, 1], 1].set(1.0)
    return planes.at[state.ex_goals[:, 0], state.ex_goals[:, 1], 2].set(1.0)


@functools.cache
def _pixel_geometry(grid_size: int) -> tuple[np.ndarray, ...]:
    """Which cell each camera pixel sees, and where inside that cell.

    The camera looks straight down on the board's centre ((g-1)/2, (g-1)/2) with 64/g pixels
    per unit; cell (x, z) spans [x - 1/2, x + 1/2] x [z - 1/2, z + 1/2] and z grows upwards, so
    it covers rows 64 - 64/g (z+1) .. 64 - 64/g z and columns 10 + 64/g x .. 10 + 64/g (x+1).

    Returns, each of shape [64, 84]: `cell_x`, `cell_z` (int, -1 and g are the walls), and
    `u`, `v` (the pixel centre's position inside its cell, in [0, 1), v upwards).
    """
    pixels_per_unit = IMAGE_HEIGHT / grid_size
    centre = (grid_size - 1) / 2
    cols = np.arange(IMAGE_WIDTH) + 0.5
    rows = np.arange(IMAGE_HEIGHT) + 0.5
    world_x = centre + (cols - IMAGE_WIDTH / 2) / pixels_per_unit
    world_z = centre - (rows - IMAGE_HEIGHT / 2) / pixels_per_unit
    world_x, world_z = np.meshgrid(world_x, world_z)  # [64, 84] each
    cell_x = np.floor(world_x + 0.5)
    cell_z = np.floor(world_z + 0.5)
    u = world_x + 0.5 - cell_x
    v = world_z + 0.5 - cell_z
    return cell_x.astype(np.int32), cell_z.astype(np.int32), u, v


@functools.cache
def _static_layers(grid_size: int) -> tuple[np.ndarray, ...]:
    """Per-pixel constants of the render for one grid size.

    Returns `base` float32[64, 84, 3] (background, walls and floor); `row_cell` float32[64, g]
    and `col_cell` float32[84, g], one-hot rows naming the board row z (column x) each image
    row (column) sees, all zero over walls and background; and `shapes` bool[64, 84, 3], the
    pixels of the agent, plus and ex symbols inside their cells.
    """
    g = grid_size
    cell_x, cell_z, u, v = _pixel_geometry(g)
    on_board = (cell_x >= 0) & (cell_x < g) & (cell_z >= 0) & (cell_z < g)
    on_ring = (cell_x >= -1) & (cell_x <= g) & (cell_z >= -1) & (cell_z <= g) & ~on_board
    base = np.where(on_ring[..., None], WALL_COLOUR, BACKGROUND_COLOUR)
    base = np.where(on_board[..., None], FLOOR_COLOUR, base).astype(np.float32)
    # The camera is axis-aligned: a pixel's cell x depends on its column only, z on its row.
    row_cell = (cell_z[:, 0, None] == np.arange(g)).astype(np.float32)
    col_cell = (cell_x[0, :, None] == np.arange(g)).astype(np.float32)
    du, dv = np.abs(u - 0.5), np.abs(v - 0.5)
    agent = (du < 0.35) & (dv < 0.35)  # a cube seen from above
    within = (du < 0.42) & (dv < 0.42)
    plus = within & ((du < 0.1) | (dv < 0.1))
    ex = within & ((np.abs(u - v) < 0.14) | (np.abs(u + v - 1.0) < 0.14))
    shapes = np.stack([agent, plus, ex], axis=-1)
    return base, row_cell, col_cell, shapes


def render_image(planes: jax.Array) -> jax.Array:
    """Top-down camera image float32[64, 84, 3] in [0, 1] of one-hot planes [g, g, 3].

    Background (ML-Agents' clear colour) outside the walls, grey walls around the board, a
    light floor, a red "x" on each ex goal, a green "+" on each plus goal and a blue square for
    the agent (drawn in that order, so the agent stays visible on a goal). The planes are
    upsampled to pixels by two one-hot contractions, occupied[r, c, k] = sum_{x,z}
    row_cell[r, z] planes[x, z, k] col_cell[c, x], then the symbols are selected per pixel:
    jittable and vmappable, no gathers.
    """
    base, row_cell, col_cell, shapes = _static_layers(planes.shape[0])
    occupied = jnp.einsum("rz,xzk,cx->rck", row_cell, planes, col_cell) > 0.5  # [64, 84, 3]
    drawn = occupied & shapes
    image = jnp.asarray(base)
    for channel, colour in ((2, EX_COLOUR), (1, PLUS_COLOUR), (0, AGENT_COLOUR)):
        image = jnp.where(drawn[..., channel, None], colour, image)
    return image
