"""Tests for rlkit.data.replay: storage layout, valid windows, sampling distributions, importance
weights, vmap over seeds, donation and sampling cost."""

import functools

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from rlkit.data.replay import (
    PrioritisedReplay,
    UniformReplay,
    _tree_find,
    beta_schedule,
    nbytes,
)


@functools.cache
def jitted(buffer, method: str):
    """One compiled ``buffer.method`` per buffer configuration, shared by the tests."""
    return jax.jit(getattr(buffer, method))


def counter_items(t: int, lanes: int, obs_dim: int = 2) -> dict:
    """Items of row t: every field encodes (t, lane) so a sample says exactly where it came from."""
    ids = np.asarray([t * lanes + lane for lane in range(lanes)], np.int32)
    return dict(
        id=ids,
        obs=np.repeat(ids[:, None], obs_dim, axis=1).astype(np.float32),
    )


def fill(buffer, state, num_rows: int, *extra):
    add = jitted(buffer, "add")
    for t in range(num_rows):
        state = add(state, counter_items(t, buffer.add_batch_size), *extra)
    return state


def example_item(obs_dim: int = 2) -> dict:
    return dict(id=np.zeros((), np.int32), obs=np.zeros((obs_dim,), np.float32))


def valid_starts(num_adds: int, max_length: int, length: int) -> set[int]:
    """Reference: storage rows s such that rows s..s+L-1 hold consecutive written times.

    Brute force over the write history, independent of the buffer's own offset arithmetic.
    """
    time_in_row = {t % max_length: t for t in range(num_adds)}  # last write wins
    starts = set()
    for s, t in time_in_row.items():
        rows = [(s + k) % max_length for k in range(length)]
        if all(time_in_row.get(r) == t + k for k, r in enumerate(rows)):
            starts.add(s)
    return starts


# --------------------------------------------------------------------------------------------
# Storage
# --------------------------------------------------------------------------------------------


def test_add_wraps_around_overwriting_oldest_rows_in_order():
    buffer = UniformReplay(max_length=5, add_batch_size=3, sample_batch_size=4)
    state = jitted(buffer, "init")(example_item())
    state = fill(buffer, state, 12)
    # Times 0..11 into 5 rows: row r holds the newest t with t % 5 == r -> [10, 11, 7, 8, 9].
    expected_time = np.array([10, 11, 7, 8, 9])
    expected_ids = expected_time[:, None] * 3 + np.arange(3)[None, :]
    np.testing.assert_array_equal(state.storage["id"], expected_ids)
    np.testing.assert_array_equal(state.storage["obs"], np.repeat(expected_ids[..., None], 2, -1))
    assert int(state.head) == 12 % 5 and int(state.num_rows) == 5


def test_constructor_rejects_bad_settings():
    with pytest.raises(ValueError, match="sequence_length"):
        UniformReplay(max_length=4, add_batch_size=1, sample_batch_size=1, sequence_length=5)
    with pytest.raises(ValueError, match="add_batch_size"):
        PrioritisedReplay(max_length=4, add_batch_size=0, sample_batch_size=1)
    with pytest.raises(ValueError, match="priority_eps"):
        PrioritisedReplay(max_length=4, add_batch_size=1, sample_batch_size=1, priority_eps=0.0)
    buffer = UniformReplay(max_length=4, add_batch_size=3, sample_batch_size=1)
    with pytest.raises(ValueError, match="add_batch_size"):
        buffer.add(buffer.init(example_item()), counter_items(0, lanes=2))


# --------------------------------------------------------------------------------------------
# Uniform sampling
# --------------------------------------------------------------------------------------------


def test_uniform_sample_returns_only_written_items():
    buffer = UniformReplay(max_length=1000, add_batch_size=4, sample_batch_size=20_000)
    state = jitted(buffer, "init")(example_item())
    for t in (1, 2, 3):  # ids 4..15: none is 0, the id of every unwritten (zeroed) slot
        state = jitted(buffer, "add")(state, counter_items(t, 4))
    sample = jitted(buffer, "sample")(state, jax.random.key(0))
    assert set(np.asarray(sample.items["id"]).ravel().tolist()) == set(range(4, 16))
    assert set(np.asarray(sample.time_index).tolist()) == {0, 1, 2}
    assert sample.items["id"].shape == (20_000, 1)
    assert sample.items["obs"].shape == (20_000, 1, 2)
    np.testing.assert_array_equal(sample.weights, 1.0)


@pytest.mark.parametrize("num_adds", [6, 10, 23])  # partly full, exactly full, wrapped
def test_uniform_windows_are_consecutive_in_one_lane_and_cover_all_valid_starts(num_adds):
    max_length, lanes, length = 10, 3, 4
    buffer = UniformReplay(max_length, lanes, sample_batch_size=6000, sequence_length=length)
    state = fill(buffer, jitted(buffer, "init")(example_item()), num_adds)
    assert bool(buffer.can_sample(state))
    sample = jitted(buffer, "sample")(state, jax.random.key(1))
    ids = np.asarray(sample.items["id"])  # [B, L], id = t * lanes + lane
    times, id_lanes = ids // lanes, ids % lanes
    # One lane per window, and that lane is the reported one.
    assert (id_lanes == np.asarray(sample.lane_index)[:, None]).all()
    # Consecutive write times: never across the head (newest row then oldest row).
    np.testing.assert_array_equal(np.diff(times, axis=1), 1)
    np.testing.assert_array_equal(times[:, 0] % max_length, sample.time_index)
    # Every valid start is drawn (not over-restrictive), uniformly (chi-square on starts x lanes).
    reference = valid_starts(num_adds, max_length, length)
    drawn = np.asarray(sample.time_index) * lanes + np.asarray(sample.lane_index)
    cells = sorted(s * lanes + lane for s in reference for lane in range(lanes))
    counts = np.array([(drawn == c).sum() for c in cells])
    assert counts.sum() == len(drawn)
    assert stats.chisquare(counts).pvalue > 1e-3


def test_can_sample_needs_one_full_window():
    buffer = UniformReplay(max_length=10, add_batch_size=2, sample_batch_size=1, sequence_length=3)
    state = jitted(buffer, "init")(example_item())
    answers = []
    for t in range(4):
        answers.append(bool(buffer.can_sample(state)))
        state = jitted(buffer, "add")(state, counter_items(t, 2))
    assert answers == [False, False, False, True]


# --------------------------------------------------------------------------------------------
# Prioritised: tree bookkeeping
# --------------------------------------------------------------------------------------------


def tree_leaves(buffer, state) -> np.ndarray:
    """Window priorities p^alpha as [max_length, add_batch_size]."""
    num_leaves = state.sum_tree.shape[0] // 2
    leaves = np.asarray(state.sum_tree)[num_leaves : num_leaves + buffer.capacity]
    return leaves.reshape(buffer.max_length, buffer.add_batch_size)


@pytest.mark.parametrize("length", [1, 3])
def test_prioritised_add_gives_exactly_the_valid_windows_max_priority(length):
    max_length, lanes = 6, 2
    buffer = PrioritisedReplay(max_length, lanes, sample_batch_size=4, sequence_length=length)
    state = jitted(buffer, "init")(example_item())
    add = jitted(buffer, "add")
    for t in range(15):
        state = add(state, counter_items(t, lanes), 0.5)
        reference = valid_starts(t + 1, max_length, length)
        expected = np.array([[1.0 if s in reference else 0.0] * lanes for s in range(max_length)])
        np.testing.assert_array_equal(tree_leaves(buffer, state), expected)
        # Root = sum of leaves; min root = 1 while any window is valid.
        assert np.asarray(state.sum_tree)[1] == expected.sum()
        assert np.asarray(state.min_tree)[1] == (1.0 if expected.any() else np.inf)


def test_new_windows_get_max_priority_seen_so_far_to_the_alpha():
    buffer = PrioritisedReplay(max_length=4, add_batch_size=1, sample_batch_size=1)
    state = fill(buffer, jitted(buffer, "init")(example_item()), 2, 0.5)
    state = jitted(buffer, "update_priorities")(
        state, np.array([0]), np.array([0]), np.array([9.0]), 0.5
    )
    state = jitted(buffer, "add")(state, counter_items(2, 1), 0.5)
    # Raw max is 9 + eps, so the new window gets sqrt(9) = 3; window 1 keeps its initial 1^0.5.
    np.testing.assert_allclose(tree_leaves(buffer, state)[:, 0], [3.0, 1.0, 3.0, 0.0], rtol=1e-6)


def test_update_priorities_handles_duplicates_and_ignores_stale_windows():
    buffer = PrioritisedReplay(
        max_length=4, add_batch_size=2, sample_batch_size=1, sequence_length=2
    )
    state = fill(buffer, jitted(buffer, "init")(example_item()), 5, 1.0)  # valid starts 1, 2, 3
    time_index = np.array([2, 2, 0, 3])  # row 0 is the window that crosses the head: stale
    lane_index = np.array([1, 1, 0, 0])
    state = jitted(buffer, "update_priorities")(
        state, time_index, lane_index, np.array([5.0, 5.0, 7, 2]), 1.0
    )
    leaves = tree_leaves(buffer, state)
    np.testing.assert_allclose(leaves[2, 1], 5.0, rtol=1e-6)
    np.testing.assert_allclose(leaves[3, 0], 2.0, rtol=1e-6)
    assert leaves[0, 0] == 0.0  # the stale update did not revive an invalid window
    np.testing.assert_allclose(np.asarray(state.sum_tree)[1], leaves.sum(), rtol=1e-6)
    np.testing.assert_allclose(float(state.max_priority), 5.0, rtol=1e-6)  # 7 was not applied


# --------------------------------------------------------------------------------------------
# Prioritised: sampling distribution and weights
# --------------------------------------------------------------------------------------------


@functools.cache
def vmapped_sample(buffer):
    return jax.jit(jax.vmap(buffer.sample, in_axes=(None, 0, None)))


def draw_many(buffer, state, num_keys: int, beta=0.4, seed=0):
    """``num_keys`` independent batches: leaves ``[num_keys, sample_batch_size, ...]``."""
    keys = jax.random.split(jax.random.key(seed), num_keys)
    return vmapped_sample(buffer)(state, keys, beta)


def test_prioritised_frequencies_match_priorities_chi_square():
    max_length, lanes, length, alpha = 8, 2, 2, 0.6
    buffer = PrioritisedReplay(max_length, lanes, sample_batch_size=64, sequence_length=length)
    num_adds = 11
    state = fill(buffer, jitted(buffer, "init")(example_item()), num_adds, alpha)
    starts = sorted(valid_starts(num_adds, max_length, length))  # 7 per lane
    time_index = np.array([s for s in starts for _ in range(lanes)])
    lane_index = np.array([lane for _ in starts for lane in range(lanes)])
    priorities = np.random.default_rng(0).uniform(0.1, 5.0, size=len(time_index))
    state = jitted(buffer, "update_priorities")(state, time_index, lane_index, priorities, alpha)

    sample = draw_many(buffer, state, num_keys=3125)  # 3125 x 64 = 200k draws
    drawn = (np.asarray(sample.time_index) * lanes + np.asarray(sample.lane_index)).ravel()
    cells = np.asarray(time_index) * lanes + np.asarray(lane_index)
    counts = np.array([(drawn == c).sum() for c in cells])
    assert counts.sum() == drawn.size  # nothing outside the valid windows

    def expected_counts(exponent):
        mass = (priorities + buffer.priority_eps) ** exponent
        return drawn.size * mass / mass.sum()

    # Stratified draws vary less than multinomial ones, which only makes the test conservative
    # in accepting; the wrong distribution (alpha ignored) must still be rejected.
    assert stats.chisquare(counts, expected_counts(alpha)).pvalue > 1e-3
    assert stats.chisquare(counts, expected_counts(1.0)).pvalue < 1e-3


def test_importance_weights_hand_computed():
    # Four windows with p = 1, 2, 3, 4, alpha = 1, beta = 0.5: P = p / 10, N = 4,
    # (N P)^-beta = (0.4, 0.8, 1.2, 1.6)^-0.5, normalised by the largest (p = 1):
    # w = (1, 1/sqrt(2), 1/sqrt(3), 1/2) = (1, 0.70711, 0.57735, 0.5).
    buffer = PrioritisedReplay(max_length=4, add_batch_size=1, sample_batch_size=4)
    state = fill(buffer, jitted(buffer, "init")(example_item()), 4, 1.0)
    rows = np.arange(4)
    state = jitted(buffer, "update_priorities")(
        state, rows, 0 * rows, np.array([1.0, 2.0, 3.0, 4.0]), 1.0
    )
    sample = draw_many(buffer, state, num_keys=200, beta=0.5)
    hand = np.array([1.0, 0.70711, 0.57735, 0.5])
    np.testing.assert_allclose(sample.weights, hand[np.asarray(sample.time_index)], rtol=1e-4)


def test_importance_weights_normalise_over_whole_buffer_not_batch():
    # L = 2 on a wrapped buffer: invalid windows (priority 0) must not enter N or the max.
    max_length, lanes, length, alpha, beta = 4, 2, 2, 0.5, 0.4
    buffer = PrioritisedReplay(max_length, lanes, sample_batch_size=2, sequence_length=length)
    state = fill(buffer, jitted(buffer, "init")(example_item()), 5, alpha)
    starts = sorted(valid_starts(5, max_length, length))
    time_index = np.array([s for s in starts for _ in range(lanes)])
    lane_index = np.array([lane for _ in starts for lane in range(lanes)])
    priorities = np.array([1.0, 4.0, 9.0, 16.0, 25.0, 36.0])
    state = jitted(buffer, "update_priorities")(state, time_index, lane_index, priorities, alpha)

    # Reference from the paper's formula over the N = 6 valid windows.
    mass = (priorities + buffer.priority_eps) ** alpha
    prob = mass / mass.sum()
    reference = (6 * prob) ** -beta / ((6 * prob) ** -beta).max()
    lookup = {(t, lane): w for t, lane, w in zip(time_index, lane_index, reference, strict=True)}

    sample = draw_many(buffer, state, num_keys=300, beta=beta)
    got = np.asarray(sample.weights).ravel()
    drawn = zip(
        np.asarray(sample.time_index).ravel(), np.asarray(sample.lane_index).ravel(), strict=True
    )
    want = np.array([lookup[(t, lane)] for t, lane in drawn])
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # With 2 draws per batch the batch rarely holds the smallest-priority window, so a batch-max
    # normaliser would give every batch a weight of 1; the whole-buffer one does not.
    assert (np.asarray(sample.weights).max(axis=1) < 0.99).mean() > 0.5


def test_update_priorities_changes_what_is_drawn():
    buffer = PrioritisedReplay(max_length=8, add_batch_size=2, sample_batch_size=100)
    state = fill(buffer, jitted(buffer, "init")(example_item()), 8, 1.0)  # 16 windows at priority 1

    muted = jitted(buffer, "update_priorities")(
        state, np.array([3]), np.array([1]), np.array([0.0]), 1.0
    )
    sample = draw_many(buffer, muted, num_keys=200)
    hits = (np.asarray(sample.time_index) == 3) & (np.asarray(sample.lane_index) == 1)
    assert hits.sum() == 0  # probability (1e-6) / 15 per draw, 20k draws
    before = draw_many(buffer, state, num_keys=200)
    before_hits = (np.asarray(before.time_index) == 3) & (np.asarray(before.lane_index) == 1)
    assert before_hits.mean() == pytest.approx(1 / 16, abs=0.01)  # it was drawn before

    loud = jitted(buffer, "update_priorities")(
        state, np.array([5]), np.array([0]), np.array([1e6]), 1.0
    )
    sample = draw_many(buffer, loud, num_keys=200)
    hits = (np.asarray(sample.time_index) == 5) & (np.asarray(sample.lane_index) == 0)
    assert hits.mean() > 0.999  # 1e6 / (1e6 + 15)


def test_descent_ends_on_a_valid_window_at_the_float32_edges():
    # Stratified masses are float32 and can round up to the total (or past it), and float32
    # parent sums can exceed the sum of their children. A plain descent ("go right iff residual
    # >= left sum") then walks into the empty right part of the tree: onto invalid windows.
    buffer = PrioritisedReplay(
        max_length=8, add_batch_size=1, sample_batch_size=1, sequence_length=3
    )
    state = fill(buffer, jitted(buffer, "init")(example_item()), 6, 1.0)  # valid starts 0..3
    rows = np.arange(4)
    state = jitted(buffer, "update_priorities")(
        state, rows, 0 * rows, np.array([1e-3, 5.0, 1e4, 2e-3]), 1.0
    )
    total = np.asarray(state.sum_tree)[1]
    mass = np.array([0.0, total, np.nextafter(total, np.inf), 2 * total], np.float32)
    found = np.asarray(jax.jit(_tree_find)(state.sum_tree, mass))
    np.testing.assert_array_equal(found, [0, 3, 3, 3])


def test_sampling_with_priorities_over_twelve_orders_of_magnitude_stays_valid():
    buffer = PrioritisedReplay(
        max_length=1024, add_batch_size=4, sample_batch_size=4096, sequence_length=3
    )
    state = jitted(buffer, "init")(example_item())
    add = jitted(buffer, "add")
    for t in range(600):  # leaves only 598 of 1024 rows with valid windows
        state = add(state, counter_items(t, 4), 1.0)
    rng = np.random.default_rng(1)
    time_index = rng.integers(0, 598, 4000)
    lane_index = rng.integers(0, 4, 4000)
    priorities = (10.0 ** rng.uniform(-6, 6, 4000)).astype(np.float32)
    state = jitted(buffer, "update_priorities")(state, time_index, lane_index, priorities, 1.0)
    sample = draw_many(buffer, state, num_keys=8)
    assert int(np.asarray(sample.time_index).max()) <= 597
    ids = np.asarray(sample.items["id"])
    np.testing.assert_array_equal(np.diff(ids // 4, axis=-1), 1)


def test_beta_schedule_anneals_linearly_to_one():
    np.testing.assert_allclose(
        [float(beta_schedule(s, 0.4, 100)) for s in (0, 25, 100, 500)], [0.4, 0.55, 1.0, 1.0]
    )
    assert float(jax.jit(beta_schedule, static_argnums=2)(np.int32(50), 0.0, 100)) == 0.5


# --------------------------------------------------------------------------------------------
# vmap over seeds
# --------------------------------------------------------------------------------------------


def test_everything_vmaps_over_seeds_and_matches_per_seed_runs():
    buffer = PrioritisedReplay(
        max_length=16, add_batch_size=2, sample_batch_size=8, sequence_length=2
    )

    def one_seed(key, alpha, beta):
        obs_key, index_key, priority_key, sample_key = jax.random.split(key, 4)
        state = buffer.init(example_item(3))
        observations = jax.random.normal(obs_key, (20, 2, 3))  # wraps the 16 rows

        def add_row(state, t):
            items = dict(id=jnp.full((2,), t, jnp.int32), obs=observations[t])
            return buffer.add(state, items, alpha), None

        state, _ = jax.lax.scan(add_row, state, jnp.arange(20))
        time_index = jax.random.randint(index_key, (8,), 0, 16)
        lane_index = jnp.arange(8) % 2
        priorities = jax.random.uniform(priority_key, (8,), maxval=10.0)
        state = buffer.update_priorities(state, time_index, lane_index, priorities, alpha)
        return buffer.sample(state, sample_key, beta), state

    keys = jax.random.split(jax.random.key(7), 8)
    alphas = np.linspace(0.2, 0.9, 8, dtype=np.float32)  # traced hyperparameters, swept too
    betas = np.linspace(0.3, 1.0, 8, dtype=np.float32)
    batched = jax.tree_util.tree_map(np.asarray, jax.jit(jax.vmap(one_seed))(keys, alphas, betas))
    single = jax.jit(one_seed)
    for i, key in enumerate(jax.random.split(jax.random.key(7), 8)):
        expected = single(key, float(alphas[i]), float(betas[i]))
        batched_i = jax.tree_util.tree_map(lambda b: b[i], batched)  # noqa: B023
        jax.tree_util.tree_map(
            lambda b, e: np.testing.assert_allclose(b, e, rtol=1e-5, atol=1e-6), batched_i, expected
        )
    sample, state = batched
    assert len({np.asarray(t).tobytes() for t in sample.time_index}) == 8
    assert len({np.asarray(o).tobytes() for o in sample.items["obs"]}) == 8
    assert len({np.asarray(t).tobytes() for t in state.sum_tree}) == 8


# --------------------------------------------------------------------------------------------
# Memory: donation and nbytes
# --------------------------------------------------------------------------------------------


def transition_item(obs_dim: int = 8) -> dict:
    return dict(
        obs=np.zeros((obs_dim,), np.float32),
        action=np.zeros((), np.int32),
        reward=np.zeros((), np.float32),
        terminated=np.zeros((), np.bool_),
        truncated=np.zeros((), np.bool_),
        next_obs=np.zeros((obs_dim,), np.float32),
    )


def test_nbytes_matches_formula():
    # 100k rows x 8 lanes of (8 + 8 float32 obs, int32 action, float32 reward, 2 bools) = 74 B.
    item_bytes = 8 * 4 + 8 * 4 + 4 + 4 + 1 + 1
    uniform = UniformReplay(max_length=100_000, add_batch_size=8, sample_batch_size=256)
    shapes = jax.eval_shape(uniform.init, transition_item())
    assert nbytes(shapes) == 100_000 * 8 * item_bytes + 4 + 4  # + head, num_rows

    prioritised = PrioritisedReplay(max_length=100_000, add_batch_size=8, sample_batch_size=256)
    shapes = jax.eval_shape(prioritised.init, transition_item())
    tree_leaves_p = 2**20  # next power of two >= 800_000
    assert nbytes(shapes) == 100_000 * 8 * item_bytes + 2 * (2 * tree_leaves_p * 4) + 3 * 4

    small = UniformReplay(max_length=3, add_batch_size=2, sample_batch_size=1).init(
        transition_item()
    )
    assert nbytes(small) == sum(x.nbytes for x in jax.tree_util.tree_leaves(small))


def compiled_memory(fn, *args, donate: bool):
    compiled = jax.jit(fn, donate_argnums=0 if donate else ()).lower(*args).compile()
    return compiled.memory_analysis()


@pytest.mark.parametrize("kind", ["uniform", "prioritised"])
def test_donated_add_writes_in_place(kind):
    cls = UniformReplay if kind == "uniform" else PrioritisedReplay
    buffer = cls(max_length=100_000, add_batch_size=8, sample_batch_size=256, sequence_length=2)
    state = jax.eval_shape(buffer.init, transition_item())
    items = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct((8, *x.shape), x.dtype), transition_item()
    )
    extra = () if kind == "uniform" else (0.6,)
    add = buffer.add if kind == "uniform" else (lambda s, x: buffer.add(s, x, 0.6))
    buffer_bytes = nbytes(state)  # ~59 MB (uniform) / ~76 MB (prioritised)

    donated = compiled_memory(add, state, items, donate=True)
    # Outputs reuse the inputs' memory (head and num_rows may be left out: 8 bytes).
    assert donated.alias_size_in_bytes >= buffer_bytes - 16
    assert donated.temp_size_in_bytes < buffer_bytes / 1000  # no buffer-sized scratch copy
    kept = compiled_memory(add, state, items, donate=False)
    assert kept.alias_size_in_bytes == 0  # without donation the output is a fresh buffer
    assert kept.output_size_in_bytes >= buffer_bytes

    # And at run time the donated input is consumed (on a smaller buffer, to stay fast).
    small = cls(max_length=1000, add_batch_size=8, sample_batch_size=4, sequence_length=2)
    real_state = jitted(small, "init")(transition_item())
    real_items = jax.tree_util.tree_map(
        lambda x: np.ones((8, *x.shape), x.dtype), transition_item()
    )
    new_state = jax.jit(small.add, donate_argnums=0)(real_state, real_items, *extra)
    assert real_state.storage["obs"].is_deleted()
    np.testing.assert_array_equal(new_state.storage["obs"][0], 1.0)


# --------------------------------------------------------------------------------------------
# Sampling cost: no op other than indexing touches a capacity-sized array
# --------------------------------------------------------------------------------------------

INDEXING = {"gather", "slice", "dynamic_slice"}  # read only as much as they output


def capacity_sized_ops(closed_jaxpr, threshold: int) -> list[str]:
    """Primitives (recursing into control flow) that read or write an array of >= threshold
    elements, counting only the outputs of indexing ops. Control-flow ops themselves only pass
    arrays through (e.g. a fori_loop closing over the tree) and are judged by their bodies."""
    found = []

    def size(var):
        shape = getattr(var.aval, "shape", ())
        return int(np.prod(shape)) if shape else 1

    def visit(jaxpr):
        for eqn in jaxpr.eqns:
            subs = [
                p.jaxpr if hasattr(p, "jaxpr") and hasattr(p, "consts") else p
                for v in eqn.params.values()
                for p in (v if isinstance(v, (tuple, list)) else [v])
                if isinstance(p, (jax.extend.core.ClosedJaxpr, jax.extend.core.Jaxpr))
            ]
            if subs:
                for sub in subs:
                    visit(sub)
                continue
            checked = eqn.outvars if eqn.primitive.name in INDEXING else eqn.invars + eqn.outvars
            if any(size(v) >= threshold for v in checked if hasattr(v, "aval")):
                found.append(eqn.primitive.name)

    visit(closed_jaxpr.jaxpr)
    return found


def sample_jaxpr(kind: str, max_length: int):
    cls = UniformReplay if kind == "uniform" else PrioritisedReplay
    buffer = cls(max_length=max_length, add_batch_size=4, sample_batch_size=32, sequence_length=4)
    state = jax.eval_shape(buffer.init, example_item(3))
    extra = () if kind == "uniform" else (0.4,)
    return jax.make_jaxpr(buffer.sample)(state, jax.random.key(0), *extra), buffer.capacity


@pytest.mark.parametrize("kind", ["uniform", "prioritised"])
def test_sample_touches_capacity_sized_arrays_only_by_indexing(kind):
    # No op other than indexing reads or writes more elements than one sampled batch holds
    # (32 windows x 4 rows x 3 floats = 384), whether the buffer has 16k or 262k windows; the
    # indexing ops themselves output at most that much.
    batch_elements = 32 * 4 * 3
    for max_length in (4096, 65536):
        jaxpr, capacity = sample_jaxpr(kind, max_length)
        assert capacity >= 40 * batch_elements
        assert capacity_sized_ops(jaxpr, threshold=batch_elements + 1) == []


def test_cost_check_flags_a_whole_buffer_sampler():
    buffer = PrioritisedReplay(max_length=4096, add_batch_size=4, sample_batch_size=32)
    state = jax.eval_shape(buffer.init, example_item(3))

    def naive_sample(state, key):
        num_leaves = state.sum_tree.shape[0] // 2
        logits = jnp.log(state.sum_tree[num_leaves : num_leaves + buffer.capacity])
        return jax.random.categorical(key, logits, shape=(32,))

    jaxpr = jax.make_jaxpr(naive_sample)(state, jax.random.key(0))
    assert capacity_sized_ops(jaxpr, threshold=buffer.capacity) != []
