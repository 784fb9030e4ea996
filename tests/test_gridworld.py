"""Tests for envs.gridworld: GridWorld-v0 against ML-Agents' GridWorld rules.

The facts checked (ML-AGENTS.md section 2): 5 actions (NoAction, Up +z, Down -z, Left -x,
Right +x), walls block moves, the action mask forbids moves into walls, -0.01 per step, exactly
+1 / -1 on the right / wrong goal (terminated), truncation (not termination) after 100 steps,
distinct uniform reset cells and a uniform goal kind, and the 84 x 64 top-down camera with
12.8 px per cell and the grid filling the central 64 columns.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import envs
from envs.gridworld import BACKGROUND_COLOUR, EnvState, GridWorld

NO_ACTION, UP, DOWN, LEFT, RIGHT = 0, 1, 2, 3, 4
PLUS, EX = 0, 1
PIXELS_PER_CELL = 12.8  # 64 px / 5 rows (orthographicSize = gridSize / 2)
GRID_LEFT_COLUMN = 10  # (84 - 64) / 2 columns of wall on each side

ENV = GridWorld()
PARAMS = ENV.default_params
IMAGE_ENV, _ = envs.make("GridWorld-v0", obs_mode="image")


def grid_state(agent, plus=((4, 4),), ex=((0, 4),), goal=PLUS, time=0) -> EnvState:
    """A hand-placed state; agent and goal cells are (x, z)."""
    return EnvState(
        agent=jnp.array(agent, jnp.int32),
        plus_goals=jnp.array(plus, jnp.int32).reshape(-1, 2),
        ex_goals=jnp.array(ex, jnp.int32).reshape(-1, 2),
        goal=jnp.array(goal, jnp.int32),
        terminal=jnp.array(False),
        time=jnp.array(time, jnp.int32),
    )


def expected_mask(x: int, z: int, grid_size: int = 5) -> list[bool]:
    """The mask rule of GridAgent.WriteDiscreteActionMask, as True = allowed."""
    last = grid_size - 1
    return [True, z != last, z != 0, x != 0, x != last]


# --- action masks -------------------------------------------------------------------------------


def test_mask_at_all_25_cells_matches_the_wall_rule_and_the_moves():
    """All 25 cells x 5 actions: the mask equals the wall rule, and an action is allowed exactly
    when taking it moves the agent (so masked actions are exactly the wall bumps)."""
    cells = [(x, z) for x in range(5) for z in range(5)]
    states = jax.vmap(grid_state)(jnp.array(cells))
    masks = np.asarray(jax.vmap(ENV.action_mask, in_axes=(0, None))(states, PARAMS))
    np.testing.assert_array_equal(masks, [expected_mask(x, z) for x, z in cells])

    def moved(state, action):
        _, next_state, _, _, _ = ENV.step_env(jax.random.key(0), state, action, PARAMS)
        return jnp.any(next_state.agent != state.agent)

    moves = jax.vmap(jax.vmap(moved, in_axes=(None, 0)), in_axes=(0, None))
    has_moved = np.asarray(moves(states, jnp.arange(5)))  # [25 cells, 5 actions]
    np.testing.assert_array_equal(has_moved[:, 1:], masks[:, 1:])
    assert masks[:, NO_ACTION].all() and not has_moved[:, NO_ACTION].any()
    # 5x5 board: 16 wall-adjacent cells; 4 corners forbid 2 moves, 12 edge cells forbid 1.
    assert (~masks).sum() == 4 * 2 + 12 * 1


def test_mask_actions_false_allows_everything():
    params = PARAMS.replace(mask_actions=False)
    for cell in [(0, 0), (4, 4), (2, 0), (2, 2)]:
        assert np.asarray(ENV.action_mask(grid_state(cell), params)).all()


def test_info_action_mask_is_the_mask_of_the_returned_state():
    # An ordinary step: (0, 1) --Down--> (0, 0), a corner that forbids Down and Left.
    _, state, _, _, _, info = ENV.step(jax.random.key(0), grid_state((0, 1)), DOWN, PARAMS)
    np.testing.assert_array_equal(info["action_mask"], [True, True, False, False, True])
    np.testing.assert_array_equal(info["action_mask"], ENV.action_mask(state, PARAMS))

    # A terminal step from (1, 0) onto the plus goal at (0, 0): the episode auto-resets, and the
    # mask must be the reset state's, not that of the corner (0, 0) where the episode ended.
    def reach_goal(key):
        start = grid_state((1, 0), plus=((0, 0),), ex=((4, 4),), goal=PLUS)
        _, state, _, terminated, _, info = ENV.step(key, start, LEFT, PARAMS)
        return info["action_mask"], ENV.action_mask(state, PARAMS), terminated

    info_masks, state_masks, terminated = jax.vmap(reach_goal)(
        jax.random.split(jax.random.key(1), 64)
    )
    assert np.asarray(terminated).all()
    np.testing.assert_array_equal(info_masks, state_masks)
    corner_mask = np.array([True, True, False, False, True])
    differs_from_corner = (np.asarray(info_masks) != corner_mask).any(axis=1)
    assert differs_from_corner.sum() > 32  # only cell (0, 0) has that mask: ~62 of 64 differ


def test_final_action_mask_is_the_mask_where_the_episode_was_cut():
    """A truncation in the corner (0, 0): the returned observation is a reset one, but
    info["final_action_mask"] is the corner's mask (the cell of info["final_observation"])."""
    corner_mask = [True, True, False, False, True]
    last_step = grid_state((0, 0), time=PARAMS.max_steps_in_episode - 1)
    _, state, _, terminated, truncated, info = ENV.step(
        jax.random.key(2), last_step, NO_ACTION, PARAMS
    )
    assert bool(truncated) and not bool(terminated)
    np.testing.assert_array_equal(info["final_action_mask"], corner_mask)
    np.testing.assert_array_equal(info["action_mask"], ENV.action_mask(state, PARAMS))
    # An ordinary step: both masks are the new cell's.
    _, state, _, _, _, info = ENV.step(jax.random.key(3), grid_state((0, 1)), DOWN, PARAMS)
    np.testing.assert_array_equal(info["final_action_mask"], corner_mask)
    np.testing.assert_array_equal(info["action_mask"], corner_mask)


def test_rollout_records_the_mask_of_every_next_observation():
    """traj.next_action_mask[t] is the mask of s'_t: the next step's mask where the episode goes
    on, the pre-reset cell's mask where it ended (checked against the cell in next_obs)."""
    from rlkit.core.wrappers import as_vector_env
    from rlkit.data.rollout import reset_envs, rollout

    env, params = envs.make("GridWorld-v0", max_steps_in_episode=7)
    venv = as_vector_env(env, 8)

    def uniform(obs, mask, key):
        logits = jnp.where(mask, 0.0, -jnp.inf)
        return jax.random.categorical(key, logits), {}

    carry = reset_envs(venv, params, jax.random.key(4))
    _, traj = jax.jit(lambda c, k: rollout(venv, params, uniform, c, k, 40))(
        carry, jax.random.key(5)
    )
    ended = np.asarray(traj.terminated | traj.truncated)
    assert ended.sum() > 10
    next_masks, masks = np.asarray(traj.next_action_mask), np.asarray(traj.action_mask)
    going_on = ~ended[:-1]
    np.testing.assert_array_equal(next_masks[:-1][going_on], masks[1:][going_on])
    # The agent's cell in the (pre-reset) next observation decides the mask: walls only.
    agent_plane = np.asarray(traj.next_obs)[..., :75].reshape(40, 8, 5, 5, 3)[..., 0]  # [x, z]
    for t, n in zip(*np.nonzero(ended), strict=True):
        cells = np.argwhere(agent_plane[t, n] > 0)
        assert len(cells) == 1
        expected = ENV.action_mask(grid_state(tuple(cells[0])), PARAMS)
        np.testing.assert_array_equal(next_masks[t, n], expected)


def test_rollout_stands_in_for_next_masks_an_environment_does_not_report():
    """For an environment without info["final_action_mask"] (a Unity or gymnasium one, say) the
    rollout still gives every step a next mask: exact where the episode goes on (the next step's
    mask, the final state's after the last step), s_t's own mask where it ended."""
    from rlkit.core.env import Wrapper
    from rlkit.core.wrappers import as_vector_env
    from rlkit.data.rollout import reset_envs, rollout

    class Unreported(Wrapper):
        def step(self, key, state, action, params=None):
            *out, info = self._env.step(key, state, action, params)
            return (*out, {k: v for k, v in info.items() if k != "final_action_mask"})

    env, params = envs.make("GridWorld-v0", max_steps_in_episode=7)
    venv = Unreported(as_vector_env(env, 8))

    def uniform(obs, mask, key):
        return jax.random.categorical(key, jnp.where(mask, 0.0, -jnp.inf)), {}

    carry = reset_envs(venv, params, jax.random.key(4))
    final, traj = jax.jit(lambda c, k: rollout(venv, params, uniform, c, k, 40))(
        carry, jax.random.key(5)
    )
    next_masks, masks = np.asarray(traj.next_action_mask), np.asarray(traj.action_mask)
    ended = np.asarray(traj.terminated | traj.truncated)
    assert ended[:-1].sum() > 10 and (~ended[-1]).any()
    last = np.asarray(venv.action_mask(final.env_state, params))
    following = np.concatenate([masks[1:], last[None]])
    np.testing.assert_array_equal(next_masks[~ended], following[~ended])
    np.testing.assert_array_equal(next_masks[ended], masks[ended])


# --- rewards, termination, truncation, walls ---------------------------------------------------


def test_ordinary_step_costs_exactly_the_step_penalty():
    _, state, reward, terminated, truncated, _ = ENV.step(
        jax.random.key(0), grid_state((2, 2)), UP, PARAMS
    )
    np.testing.assert_array_equal(state.agent, [2, 3])
    assert float(reward) == pytest.approx(-0.01, abs=1e-9)
    assert not terminated and not truncated


@pytest.mark.parametrize(
    ("goal", "action", "expected_reward"),
    [
        (PLUS, RIGHT, 1.0),  # onto the plus goal while the goal signal says plus
        (PLUS, LEFT, -1.0),  # onto the ex goal while it says plus
        (EX, LEFT, 1.0),
        (EX, RIGHT, -1.0),
    ],
)
def test_goals_overwrite_the_reward_with_exactly_plus_or_minus_one(goal, action, expected_reward):
    start = grid_state((2, 2), plus=((3, 2),), ex=((1, 2),), goal=goal)
    _, _, reward, terminated, truncated, info = ENV.step(jax.random.key(0), start, action, PARAMS)
    assert float(reward) == expected_reward  # exact: SetReward overwrites the -0.01
    assert terminated and not truncated
    # The final observation shows the agent on the goal cell it reached.
    target = (3, 2) if action == RIGHT else (1, 2)
    planes = np.asarray(info["final_observation"][:75]).reshape(5, 5, 3)
    assert planes[target[0], target[1], 0] == 1.0


def test_walls_block_moves():
    """A move into each of the four walls leaves the agent in place, costs -0.01, no end."""
    for cell, action in [((0, 2), LEFT), ((4, 2), RIGHT), ((2, 0), DOWN), ((2, 4), UP)]:
        _, state, reward, terminated, truncated, _ = ENV.step(
            jax.random.key(0), grid_state(cell), action, PARAMS
        )
        np.testing.assert_array_equal(state.agent, cell)
        assert float(reward) == pytest.approx(-0.01, abs=1e-9)
        assert not terminated and not truncated


def test_truncated_not_terminated_at_step_100():
    """100 NoActions (ML-Agents MaxStep: 100): steps 1..99 go on, step 100 is truncated."""

    def no_action(state, key):
        _, state, reward, terminated, truncated, _ = ENV.step(key, state, NO_ACTION, PARAMS)
        return state, (reward, terminated, truncated, state.time)

    _, state = ENV.reset(jax.random.key(0), PARAMS)
    keys = jax.random.split(jax.random.key(1), 101)
    _, (rewards, terminated, truncated, times) = jax.lax.scan(no_action, state, keys)
    assert not np.asarray(terminated).any()
    np.testing.assert_array_equal(np.flatnonzero(truncated), [99])  # the 100th step only
    np.testing.assert_allclose(rewards, -0.01)
    np.testing.assert_array_equal(times[:99], np.arange(1, 100))
    assert times[99] == 0 and times[100] == 1  # auto-reset after the cut


def test_goal_reached_on_the_last_step_is_terminated_not_truncated():
    start = grid_state((2, 2), plus=((3, 2),), ex=((1, 2),), goal=PLUS, time=99)
    _, _, reward, terminated, truncated, _ = ENV.step(jax.random.key(0), start, RIGHT, PARAMS)
    assert float(reward) == 1.0 and terminated and not truncated


# --- reset -------------------------------------------------------------------------------------


def test_reset_draws_distinct_uniform_cells_and_both_goal_kinds_equally():
    """20000 resets: the three cells always differ; each role's cell is uniform over the 25
    cells (chi-square, 24 dof, p > 0.001 at this fixed seed); the goal kind is plus with
    probability 1/2 (standard error 0.0035, so 4 SE = 0.014)."""
    n = 20000
    _, states = jax.vmap(ENV.reset, in_axes=(0, None))(
        jax.random.split(jax.random.key(7), n), PARAMS
    )
    agent, plus, ex = (
        np.asarray(c) for c in (states.agent, states.plus_goals[:, 0], states.ex_goals[:, 0])
    )
    flat = [c[:, 0] * 5 + c[:, 1] for c in (agent, plus, ex)]
    assert np.all((flat[0] != flat[1]) & (flat[0] != flat[2]) & (flat[1] != flat[2]))
    for cells in flat:
        counts = np.bincount(cells, minlength=25)
        assert stats.chisquare(counts).pvalue > 1e-3
    plus_fraction = np.mean(np.asarray(states.goal) == PLUS)
    assert abs(plus_fraction - 0.5) < 0.014
    assert set(np.unique(states.goal)) == {PLUS, EX}
    assert (np.asarray(states.time) == 0).all() and not np.asarray(states.terminal).any()


def test_planes_observation_layout():
    """obs = planes[x, z, (agent, plus, ex)] flattened in C order, then the goal one-hot."""
    state = grid_state((1, 3), plus=((4, 0),), ex=((2, 2),), goal=EX)
    obs = np.asarray(ENV._observe(state, PARAMS))
    expected = np.zeros(77, np.float32)
    for (x, z), channel in [((1, 3), 0), ((4, 0), 1), ((2, 2), 2)]:
        expected[(x * 5 + z) * 3 + channel] = 1.0
    expected[75:] = [0.0, 1.0]  # ex
    np.testing.assert_array_equal(obs, expected)
    assert ENV.observation_space(PARAMS).shape == (77,)


# --- a shortest-path policy --------------------------------------------------------------------


def shortest_path_length(agent, target, wrong):
    """Steps from agent to target on an open grid when the wrong goal's cell is forbidden.

    Off a shared row/column, the two L-shaped paths share no cell besides their ends, so one
    forbidden cell never blocks both: the Manhattan distance. On a shared line with the wrong
    goal strictly between, a sidestep around it costs exactly 2 more steps.
    """
    (ax, az), (tx, tz), (wx, wz) = agent, target, wrong
    distance = abs(ax - tx) + abs(az - tz)
    between_z = ax == tx == wx and min(az, tz) < wz < max(az, tz)
    between_x = az == tz == wz and min(ax, tx) < wx < max(ax, tx)
    return distance + 2 * (between_z or between_x)


def shortest_path_action(obs: jax.Array) -> jax.Array:
    """Greedy on BFS distances to the current goal's cell, the wrong goal's cell an obstacle.

    Reads only the planes observation. Distances come from 16 rounds of Bellman relaxation
    d(c) = min(d(c), 1 + min over neighbours d(n)): exact up to 16 steps, and no shortest path on
    5x5 with one forbidden cell is longer than 8 + 2.
    """
    planes = obs[:75].reshape(5, 5, 3)
    wants_plus = obs[75] > 0.5
    target = jnp.where(wants_plus, planes[..., 1], planes[..., 2]) > 0.5
    obstacle = jnp.where(wants_plus, planes[..., 2], planes[..., 1]) > 0.5
    inf = jnp.float32(1e6)

    def relax(_, dist):
        padded = jnp.pad(dist, 1, constant_values=inf)
        neighbours = jnp.stack(
            [padded[1:-1, 2:], padded[1:-1, :-2], padded[:-2, 1:-1], padded[2:, 1:-1]]
        )
        dist = jnp.minimum(dist, 1.0 + neighbours.min(axis=0))
        return jnp.where(obstacle, inf, jnp.where(target, 0.0, dist))

    dist = jax.lax.fori_loop(0, 16, relax, jnp.where(target, 0.0, inf))
    x, z = jnp.unravel_index(jnp.argmax(planes[..., 0]), (5, 5))
    padded = jnp.pad(dist, 1, constant_values=inf)
    # Distances after NoAction, Up (+z), Down (-z), Left (-x), Right (+x).
    after = jnp.array(
        [inf, padded[x + 1, z + 2], padded[x + 1, z], padded[x, z + 1], padded[x + 2, z + 1]]
    )
    return jnp.argmin(after)


def test_shortest_path_policy_gets_the_optimal_return():
    """1000 episodes of the shortest-path policy (vmapped, in one jitted scan).

    The optimal expected return on 5x5 with 1+1 goals is 0.97638 (exact, enumerated below over
    all 25*24*23 placements: 1 - 0.01 (D - 1) for path length D); the return's standard
    deviation is 0.0161, so the mean of 1000 episodes has standard error 0.0005. The required
    >= 0.95 is far below any sampling noise yet fails on a wrong sign, a missing overwrite of
    the step penalty, wrong goal bookkeeping or a broken observation. Each episode's return is
    also checked exactly against its own shortest path, and the mean against the optimum.
    """
    cells = [(x, z) for x in range(5) for z in range(5)]
    lengths = np.array(
        [shortest_path_length(a, t, w) for t, w, a in itertools.permutations(cells, 3)]
    )
    optimal_returns = 1.0 - 0.01 * (lengths - 1)
    optimum, spread = optimal_returns.mean(), optimal_returns.std()
    assert optimum == pytest.approx(0.976, abs=5e-4)

    def episode(key):
        key_reset, key_steps = jax.random.split(key)
        obs, state = ENV.reset(key_reset, PARAMS)

        def step(carry, key):
            obs, state, episode_return, done, length = carry
            obs, state, reward, terminated, truncated, _ = ENV.step(
                key, state, shortest_path_action(obs), PARAMS
            )
            episode_return = episode_return + jnp.where(done, 0.0, reward)
            length = length + jnp.where(done, 0, 1)
            done = done | terminated | truncated
            return (obs, state, episode_return, done, length), None

        carry = (obs, state, jnp.float32(0.0), jnp.array(False), jnp.int32(0))
        (_, _, episode_return, done, length), _ = jax.lax.scan(
            step, carry, jax.random.split(key_steps, 12)
        )
        return state, episode_return, done, length

    keys = jax.random.split(jax.random.key(2024), 1000)
    starts, returns, done, lengths = jax.jit(jax.vmap(episode))(keys)
    assert np.asarray(done).all()

    agents, goals = np.asarray(starts.agent), np.asarray(starts.goal)
    plus_cells, ex_cells = np.asarray(starts.plus_goals[:, 0]), np.asarray(starts.ex_goals[:, 0])
    expected_lengths = [
        shortest_path_length(agent, plus, ex)
        if goal == PLUS
        else shortest_path_length(agent, ex, plus)
        for agent, goal, plus, ex in zip(agents, goals, plus_cells, ex_cells, strict=True)
    ]
    np.testing.assert_array_equal(lengths, expected_lengths)
    np.testing.assert_allclose(returns, 1.0 - 0.01 * (np.array(expected_lengths) - 1), atol=1e-5)

    mean_return = float(np.mean(returns))
    assert mean_return >= 0.95
    assert abs(mean_return - optimum) < 4 * spread / np.sqrt(1000)


# --- image observations ------------------------------------------------------------------------


def cell_centre_pixel(x: int, z: int, pixels_per_cell: float = PIXELS_PER_CELL) -> tuple[int, int]:
    """(row, column) of the pixel under the centre of cell (x, z); z grows upwards."""
    row = int(64 - pixels_per_cell * (z + 0.5))
    col = int(GRID_LEFT_COLUMN + pixels_per_cell * (x + 0.5))
    return row, col


def agent_pixels(image: np.ndarray, agent_colour: np.ndarray) -> np.ndarray:
    return np.argwhere(np.all(np.isclose(image, agent_colour), axis=-1))


def test_image_shape_range_and_space():
    obs, _ = jax.vmap(IMAGE_ENV.reset, in_axes=(0, None))(
        jax.random.split(jax.random.key(0), 8), PARAMS
    )
    image = np.asarray(obs["image"])
    assert image.shape == (8, 64, 84, 3) and image.dtype == np.float32
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert obs["goal"].shape == (8, 2)
    space = IMAGE_ENV.observation_space(PARAMS)
    assert space.spaces["image"].shape == (64, 84, 3) and space.spaces["goal"].shape == (2,)


def test_image_colours_are_distinct_and_where_the_camera_puts_them():
    state = grid_state((0, 0), plus=((2, 2),), ex=((4, 4),), goal=PLUS)
    image = np.asarray(IMAGE_ENV._observe(state, PARAMS)["image"])
    colours = {
        "agent": image[cell_centre_pixel(0, 0)],
        "plus": image[cell_centre_pixel(2, 2)],
        "ex": image[cell_centre_pixel(4, 4)],
        "floor": image[cell_centre_pixel(3, 1)],
        "wall": image[32, GRID_LEFT_COLUMN - 5],
        "background": BACKGROUND_COLOUR,
    }
    for (name_a, a), (name_b, b) in itertools.combinations(colours.items(), 2):
        assert np.abs(a - b).max() > 0.1, f"{name_a} and {name_b} look alike"
    assert np.argmax(colours["plus"]) == 1 and np.argmax(colours["ex"]) == 0  # green, red
    # The walls fill the 10 columns at each side on 5x5; the board the 64 in between.
    np.testing.assert_array_equal(
        image[:, :GRID_LEFT_COLUMN], np.broadcast_to(colours["wall"], (64, 10, 3))
    )
    np.testing.assert_array_equal(image[:, 74:], np.broadcast_to(colours["wall"], (64, 10, 3)))
    assert not np.all(np.isclose(image[:, GRID_LEFT_COLUMN], colours["wall"]), axis=-1).any()
    # On 7x7 a cell is 64/7 = 9.14 px < 10, so the background shows at the outermost columns.
    params7 = PARAMS.replace(grid_size=7)
    image7 = np.asarray(IMAGE_ENV._observe(grid_state((3, 3)), params7)["image"])
    np.testing.assert_allclose(image7[:, 0], np.broadcast_to(BACKGROUND_COLOUR, (64, 3)))
    np.testing.assert_allclose(image7[:, 5], np.broadcast_to(colours["wall"], (64, 3)))


def test_image_cell_centres_decode_to_the_state():
    """For 64 random resets, the colour at every cell centre names what is on that cell."""
    probe = np.asarray(
        IMAGE_ENV._observe(grid_state((0, 0), plus=((2, 2),), ex=((4, 4),)), PARAMS)["image"]
    )
    palette = np.stack([probe[cell_centre_pixel(*c)] for c in [(3, 1), (0, 0), (2, 2), (4, 4)]])
    obs, states = jax.vmap(IMAGE_ENV.reset, in_axes=(0, None))(
        jax.random.split(jax.random.key(3), 64), PARAMS
    )
    rows, cols = zip(*[cell_centre_pixel(x, z) for x in range(5) for z in range(5)], strict=True)
    centres = np.asarray(obs["image"])[:, rows, cols]  # [64, 25, 3]
    decoded = np.argmin(np.abs(centres[:, :, None] - palette).sum(-1), axis=-1)  # 0 floor ...
    expected = np.zeros((64, 25), int)
    for kind, cells in [
        (1, states.agent),
        (2, states.plus_goals[:, 0]),
        (3, states.ex_goals[:, 0]),
    ]:
        flat = np.asarray(cells[:, 0] * 5 + cells[:, 1])
        expected[np.arange(64), flat] = kind
    np.testing.assert_array_equal(decoded, expected)


def test_agent_pixels_move_one_cell_with_the_agent():
    state = grid_state((1, 1), plus=((4, 4),), ex=((0, 4),))
    agent_colour = np.asarray(IMAGE_ENV._observe(state, PARAMS)["image"])[cell_centre_pixel(1, 1)]
    before = agent_pixels(np.asarray(IMAGE_ENV._observe(state, PARAMS)["image"]), agent_colour)
    shifts = {RIGHT: (0.0, PIXELS_PER_CELL), UP: (-PIXELS_PER_CELL, 0.0)}  # (rows, columns)
    for action, (d_row, d_col) in shifts.items():
        obs, _, _, _, _, _ = IMAGE_ENV.step(jax.random.key(0), state, action, PARAMS)
        after = agent_pixels(np.asarray(obs["image"]), agent_colour)
        assert len(before) > 50 and abs(len(after) - len(before)) <= 0.2 * len(before)
        np.testing.assert_allclose(after.mean(0) - before.mean(0), [d_row, d_col], atol=1.0)


# --- parameters, jit and vmap ------------------------------------------------------------------


def test_grid_size_7_changes_observation_size_and_walls():
    """7x7: observations of 7*7*3 + 2 = 149 floats, masks at all 49 cells follow the new walls
    at x, z = 6, a move from the old 5x5 wall column x = 4 goes on, resets use the new cells."""
    env, params = envs.make("GridWorld-v0", grid_size=7)
    obs, states = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(jax.random.key(1), 2000), params
    )
    assert obs.shape == (2000, 149) and env.observation_space(params).shape == (149,)
    assert np.asarray(states.agent).max() == 6
    cells = [(x, z) for x in range(7) for z in range(7)]
    masks = jax.vmap(env.action_mask, in_axes=(0, None))(
        jax.vmap(grid_state)(jnp.array(cells)), params
    )
    np.testing.assert_array_equal(masks, [expected_mask(x, z, grid_size=7) for x, z in cells])
    _, state, _, _, _, _ = env.step(jax.random.key(0), grid_state((4, 2)), RIGHT, params)
    np.testing.assert_array_equal(state.agent, [5, 2])


def test_traced_parameters_change_penalty_and_time_limit():
    params = PARAMS.replace(step_penalty=0.05, max_steps_in_episode=10)
    _, _, reward, _, truncated, _ = ENV.step(jax.random.key(0), grid_state((2, 2)), UP, params)
    assert float(reward) == pytest.approx(-0.05) and not truncated
    _, _, _, terminated, truncated, _ = ENV.step(
        jax.random.key(0), grid_state((2, 2), time=9), UP, params
    )
    assert truncated and not terminated


def test_rejects_unknown_obs_mode_and_overfull_boards():
    with pytest.raises(ValueError, match="obs_mode"):
        GridWorld(obs_mode="pixels")
    with pytest.raises(ValueError, match="do not fit"):
        ENV.reset(jax.random.key(0), PARAMS.replace(grid_size=2, num_plus_goals=2, num_ex_goals=2))


@pytest.mark.parametrize("obs_mode", ["planes", "image"])
def test_jit_vmap_4096_copies(obs_mode):
    """reset + 3 random steps of 4096 copies in one jitted program."""
    env = GridWorld(obs_mode=obs_mode)
    n = 4096

    @jax.jit
    def run(key):
        keys = jax.random.split(key, n)
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(keys, PARAMS)

        def step(state, key):
            actions = jax.random.randint(key, (n,), 0, 5)
            _, state, reward, _, _, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(key, n), state, actions, PARAMS
            )
            return state, (reward, info["action_mask"])

        state, (rewards, masks) = jax.lax.scan(step, state, jax.random.split(key, 3))
        return obs, state, rewards, masks

    obs, state, rewards, masks = run(jax.random.key(0))
    if obs_mode == "image":
        assert obs["image"].shape == (n, 64, 84, 3) and obs["goal"].shape == (n, 2)
    else:
        assert obs.shape == (n, 77)
    assert state.agent.shape == (n, 2) and masks.shape == (3, n, 5)
    rewards = np.asarray(rewards)
    assert np.all(np.isclose(rewards, -0.01) | (rewards == 1.0) | (rewards == -1.0))
    assert np.isclose(rewards, -0.01).mean() > 0.5
