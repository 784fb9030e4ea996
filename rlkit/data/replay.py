"""Replay buffers as pure pytrees: uniform and prioritised (sum tree), of fixed capacity.

Layout
------
Every leaf of the stored item pytree has shape ``[max_length, add_batch_size, *item_shape]``:
time-major rows, one lane per vectorised environment. ``add`` writes ONE time row (one item per
lane) at ``head`` and advances it circularly, so after more than ``max_length`` adds the oldest
row is overwritten. ``capacity = max_length * add_batch_size`` items.

``sample`` returns sequences of ``sequence_length`` (L) consecutive rows of one lane, shaped
``[sample_batch_size, L, *item_shape]`` (L = 1 for one-step replay; the axis is kept so there is
one code path), together with the start indices ``(time_index, lane_index)`` of each window.

A window is named by its start row ``s`` and lane. With ``oldest`` the oldest written row
(``0`` until the buffer is full, then ``head``) and ``offset = (s - oldest) mod max_length``,
the window is valid iff ``offset + L <= num_rows``: all its rows are written and it does not
run from the newest row into the oldest one across the write head. Per lane there are
``max(num_rows - L + 1, 0)`` valid windows.

Prioritised replay (Schaul et al. 2016, "Prioritized Experience Replay", proportional variant)
keeps one priority per window in a sum tree (and a min tree, for the importance-weight
normaliser). Invalid windows have priority 0, so they are never drawn. Sampling descends the
tree for each draw: O(sample_batch_size * log capacity) work, never a pass over the buffer.

Memory
------
Bytes per seed: ``max_length * add_batch_size * (bytes of one item)`` for the storage, plus
``2 * P * 4 * 2`` for the two float32 trees of the prioritised buffer (``P`` the next power of
two >= capacity), plus a few scalars. Example: capacity 1e6 (125_000 x 8) of
``obs: float32[8], next_obs: float32[8], action: int32, reward: float32, terminated: bool,
truncated: bool`` (74 B) is 74 MB of storage, plus 2 * 2**20 * 4 * 2 = 16.8 MB of trees.
Under ``vmap`` over seeds every seed has its own buffer: multiply by the number of seeds.
``nbytes(state)`` returns the exact total of a (possibly vmapped) state.

Donation
--------
``add`` and ``update_priorities`` write a row (or a few tree nodes) with dynamic-update-slice
and scatter ops. When the buffer state is donated, e.g. it lives in a ``TrainState`` passed to
``jax.jit(update, donate_argnums=0)``, or it is part of a ``lax.scan``/``while`` carry, XLA
aliases output to input and writes the row in place: no copy of the buffer per step (the compiled
donated ``add`` needs no scratch memory of buffer size; see tests/test_replay.py). Without
donation a jitted ``add`` must copy the whole storage to a fresh output buffer each call.
``sample`` only reads (gathers) the rows it returns, so it needs no donation.
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

PyTree = Any


@struct.dataclass
class Sample:
    """A batch of sampled windows.

    items: leaves ``[sample_batch_size, sequence_length, *item_shape]``.
    time_index: int32 ``[sample_batch_size]``, storage row of each window's first item.
    lane_index: int32 ``[sample_batch_size]``, lane of each window.
    weights: float32 ``[sample_batch_size]``, importance weights (ones for uniform replay).
    """

    items: PyTree
    time_index: jax.Array
    lane_index: jax.Array
    weights: jax.Array


@struct.dataclass
class ReplayState:
    """Uniform replay state.

    storage: leaves ``[max_length, add_batch_size, *item_shape]``.
    head: int32 scalar, the next time row to write.
    num_rows: int32 scalar, rows written so far, saturating at ``max_length``.
    """

    storage: PyTree
    head: jax.Array
    num_rows: jax.Array


@struct.dataclass
class PrioritisedReplayState:
    """Prioritised replay state.

    storage, head, num_rows: as in ``ReplayState``.
    sum_tree: float32 ``[2 * P]``; node 1 is the root, node i has children 2i and 2i+1, leaf
        ``P + s * add_batch_size + lane`` holds ``p^alpha`` of window (s, lane) (0 if invalid).
    min_tree: float32 ``[2 * P]``, the same with ``min`` and ``+inf`` for invalid windows.
    max_priority: float32 scalar, the largest raw priority (before ``^alpha``) seen so far;
        new windows get ``max_priority^alpha``. Starts at 1.
    """

    storage: PyTree
    head: jax.Array
    num_rows: jax.Array
    sum_tree: jax.Array
    min_tree: jax.Array
    max_priority: jax.Array


def nbytes(state: PyTree) -> int:
    """Bytes of all leaves of ``state`` (arrays or ``jax.ShapeDtypeStruct``s, e.g. from
    ``jax.eval_shape``)."""
    return sum(
        int(np.prod(leaf.shape, dtype=np.int64)) * np.dtype(leaf.dtype).itemsize
        for leaf in jax.tree_util.tree_leaves(state)
    )


def beta_schedule(
    step: jax.Array | int, beta_start: jax.Array | float, total_steps: int
) -> jax.Array:
    """Importance-sampling exponent annealed linearly from ``beta_start`` at step 0 to 1.0 at
    ``total_steps`` and held there: ``beta = beta_start + (1 - beta_start) * min(step / T, 1)``."""
    fraction = jnp.clip(jnp.asarray(step, jnp.float32) / total_steps, 0.0, 1.0)
    return beta_start + (1.0 - beta_start) * fraction


# ---------------------------------------------------------------------------------------------
# Shared storage logic
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Shape:
    """The static shape both buffers share (validated on construction)."""

    max_length: int
    add_batch_size: int
    sample_batch_size: int
    sequence_length: int = 1

    def __post_init__(self):
        for name in ("max_length", "add_batch_size", "sample_batch_size", "sequence_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.sequence_length > self.max_length:
            raise ValueError(
                f"sequence_length must be in [1, max_length={self.max_length}], got "
                f"{self.sequence_length}"
            )

    @property
    def capacity(self) -> int:
        return self.max_length * self.add_batch_size


def _init_storage(example_item: PyTree, max_length: int, add_batch_size: int) -> PyTree:
    return jax.tree_util.tree_map(
        lambda x: jnp.zeros((max_length, add_batch_size, *jnp.shape(x)), jnp.asarray(x).dtype),
        example_item,
    )


def _write_row(storage: PyTree, items: PyTree, head: jax.Array) -> PyTree:
    """Writes ``items`` (leaves ``[add_batch_size, ...]``) into time row ``head``."""

    def write(store, item):
        item = jnp.asarray(item, store.dtype)
        if item.shape != store.shape[1:]:
            raise ValueError(
                f"add expects item leaves of shape [add_batch_size, *item_shape] = "
                f"{store.shape[1:]}, got {item.shape}"
            )
        return jax.lax.dynamic_update_index_in_dim(store, item, head, axis=0)

    return jax.tree_util.tree_map(write, storage, items)


def _advance(head: jax.Array, num_rows: jax.Array, max_length: int):
    return (head + 1) % max_length, jnp.minimum(num_rows + 1, max_length)


def _oldest_row(head: jax.Array, num_rows: jax.Array, max_length: int) -> jax.Array:
    # Before the buffer is full head == num_rows and this is 0; once full it is head.
    return (head - num_rows) % max_length


def _windows_per_lane(num_rows: jax.Array, sequence_length: int) -> jax.Array:
    return jnp.maximum(num_rows - sequence_length + 1, 0)


def _is_valid_start(time_index, head, num_rows, max_length: int, sequence_length: int):
    offset = (time_index - _oldest_row(head, num_rows, max_length)) % max_length
    return offset + sequence_length <= num_rows


def _gather_windows(storage: PyTree, time_index, lane_index, max_length: int, length: int):
    """Leaves ``[B, length, ...]``: rows ``time_index + 0..length-1`` (mod max_length) of each
    window's lane."""
    rows = (time_index[:, None] + jnp.arange(length)[None, :]) % max_length  # [B, L]
    lanes = lane_index[:, None]  # [B, 1], broadcast against rows
    return jax.tree_util.tree_map(lambda store: store[rows, lanes], storage)


# ---------------------------------------------------------------------------------------------
# Uniform replay
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class UniformReplay(_Shape):
    """Uniform replay over valid windows (see module docstring).

    max_length: time rows kept per lane (static).
    add_batch_size: lanes, one item per lane per ``add`` (the number of vectorised envs).
    sample_batch_size: windows per ``sample``.
    sequence_length: rows per window (1 for one-step replay).
    """

    def init(self, example_item: PyTree) -> ReplayState:
        """Empty buffer; ``example_item`` is ONE item (no batch dims), used for shapes/dtypes."""
        return ReplayState(
            storage=_init_storage(example_item, self.max_length, self.add_batch_size),
            head=jnp.zeros((), jnp.int32),
            num_rows=jnp.zeros((), jnp.int32),
        )

    def add(self, state: ReplayState, items: PyTree) -> ReplayState:
        """Writes one time row; ``items`` leaves are ``[add_batch_size, *item_shape]``."""
        head, num_rows = _advance(state.head, state.num_rows, self.max_length)
        return ReplayState(
            storage=_write_row(state.storage, items, state.head),
            head=head,
            num_rows=num_rows,
        )

    def can_sample(self, state: ReplayState) -> jax.Array:
        """True iff at least one valid window exists (``num_rows >= sequence_length``)."""
        return state.num_rows >= self.sequence_length

    def sample(self, state: ReplayState, key: jax.Array) -> Sample:
        """Draws ``sample_batch_size`` windows uniformly (with replacement) from the valid ones.

        The start offset from the oldest row is uniform in ``[0, num_rows - L + 1)`` and the lane
        uniform in ``[0, add_batch_size)``. Undefined if ``can_sample`` is False.
        """
        time_key, lane_key = jax.random.split(key)
        shape = (self.sample_batch_size,)
        offset = jax.random.randint(
            time_key, shape, 0, _windows_per_lane(state.num_rows, self.sequence_length)
        )
        oldest = _oldest_row(state.head, state.num_rows, self.max_length)
        time_index = ((oldest + offset) % self.max_length).astype(jnp.int32)
        lane_index = jax.random.randint(lane_key, shape, 0, self.add_batch_size, jnp.int32)
        items = _gather_windows(
            state.storage, time_index, lane_index, self.max_length, self.sequence_length
        )
        return Sample(items, time_index, lane_index, jnp.ones(shape, jnp.float32))


# ---------------------------------------------------------------------------------------------
# Sum / min tree over window priorities
# ---------------------------------------------------------------------------------------------


def _tree_leaves(capacity: int) -> int:
    """P: the next power of two >= capacity (leaves of the tree)."""
    return 1 << max(capacity - 1, 0).bit_length()


def _trees_update(
    sum_tree: jax.Array, min_tree: jax.Array, leaf_index: jax.Array, values: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Sets leaves ``leaf_index`` (``[K]``, in ``[0, P)``) to ``values`` (``p^alpha``, 0 for an
    invalid window; ``+inf`` in the min tree) and recomputes their ancestors level by level as
    ``left + right`` and ``min(left, right)``: O(K log P).

    Parents are recomputed from their children rather than incremented, so duplicate indices in
    one batch are safe (every write to a node stores the same value) and float error does not
    accumulate over updates.
    """
    num_leaves = sum_tree.shape[0] // 2
    depth = num_leaves.bit_length() - 1
    node = leaf_index + num_leaves
    sum_tree = sum_tree.at[node].set(values)
    min_tree = min_tree.at[node].set(jnp.where(values > 0, values, jnp.inf))

    def recompute_parents(_, carry):
        sum_tree, min_tree, node = carry
        parent = node // 2
        left, right = 2 * parent, 2 * parent + 1
        sum_tree = sum_tree.at[parent].set(sum_tree[left] + sum_tree[right])
        min_tree = min_tree.at[parent].set(jnp.minimum(min_tree[left], min_tree[right]))
        return sum_tree, min_tree, parent

    sum_tree, min_tree, _ = jax.lax.fori_loop(
        0, depth, recompute_parents, (sum_tree, min_tree, node)
    )
    return sum_tree, min_tree


def _tree_find(sum_tree: jax.Array, mass: jax.Array) -> jax.Array:
    """Leaf index (``[B]``) whose cumulative-sum interval holds ``mass`` (``[B]``): O(B log P).

    Descends with the residual mass. float32 rounding can leave the residual a hair above the
    left child's sum when the right subtree is empty (or the reverse); the descent never enters a
    subtree whose sum is 0, so the leaf found always has positive priority, i.e. is valid.
    """
    num_leaves = sum_tree.shape[0] // 2
    depth = num_leaves.bit_length() - 1

    def descend(_, carry):
        node, residual = carry
        left_sum = sum_tree[2 * node]
        right_sum = sum_tree[2 * node + 1]
        go_right = ((residual >= left_sum) & (right_sum > 0)) | (left_sum <= 0)
        residual = jnp.where(go_right, residual - left_sum, residual)
        return 2 * node + go_right.astype(node.dtype), residual

    root = jnp.ones(mass.shape, jnp.int32)
    node, _ = jax.lax.fori_loop(0, depth, descend, (root, mass))
    return node - num_leaves


# ---------------------------------------------------------------------------------------------
# Prioritised replay
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PrioritisedReplay(_Shape):
    """Proportional prioritised replay over valid windows (Schaul et al. 2016).

    Fields as ``UniformReplay``, plus
    priority_eps: added to every priority given to ``update_priorities`` so no valid window has
        zero probability (the paper's epsilon).
    """

    priority_eps: float = 1e-6

    def __post_init__(self):
        super().__post_init__()
        if not self.priority_eps > 0:
            raise ValueError(f"priority_eps must be > 0, got {self.priority_eps!r}")

    def init(self, example_item: PyTree) -> PrioritisedReplayState:
        """Empty buffer (all windows invalid, priority 0); ``example_item`` is ONE item."""
        tree_size = 2 * _tree_leaves(self.capacity)
        return PrioritisedReplayState(
            storage=_init_storage(example_item, self.max_length, self.add_batch_size),
            head=jnp.zeros((), jnp.int32),
            num_rows=jnp.zeros((), jnp.int32),
            sum_tree=jnp.zeros((tree_size,), jnp.float32),
            min_tree=jnp.full((tree_size,), jnp.inf, jnp.float32),
            max_priority=jnp.ones((), jnp.float32),
        )

    def _set_window_priorities(self, state, flat_index, scaled_priorities):
        """Writes ``p^alpha`` values (0 = invalid) into both trees."""
        sum_tree, min_tree = _trees_update(
            state.sum_tree, state.min_tree, flat_index, scaled_priorities
        )
        return state.replace(sum_tree=sum_tree, min_tree=min_tree)

    def add(
        self, state: PrioritisedReplayState, items: PyTree, alpha: jax.Array | float
    ) -> PrioritisedReplayState:
        """Writes one time row (``items`` leaves ``[add_batch_size, ...]``) at ``head``.

        Writing row h changes the validity of two windows per lane: the one ending at h
        (start h - L + 1) becomes complete and gets ``max_priority^alpha``; the one starting at h
        now runs from the newest row into the oldest and gets 0. (The windows starting in
        h - L + 2 .. h - 1 already crossed the head before this add, so they were already 0.)
        """
        length, lanes = self.sequence_length, self.add_batch_size
        head, num_rows = _advance(state.head, state.num_rows, self.max_length)
        lane = jnp.arange(lanes, dtype=jnp.int32)
        completed_start = (state.head - (length - 1)) % self.max_length
        complete = num_rows >= length
        new_priority = jnp.where(complete, state.max_priority**alpha, 0.0).astype(jnp.float32)
        flat = completed_start * lanes + lane
        values = jnp.full((lanes,), new_priority)
        if length > 1:  # for L = 1 the completed window IS the one starting at h
            flat = jnp.concatenate([flat, state.head * lanes + lane])
            values = jnp.concatenate([values, jnp.zeros((lanes,), jnp.float32)])
        state = self._set_window_priorities(state, flat, values)
        return state.replace(
            storage=_write_row(state.storage, items, state.head),
            head=head,
            num_rows=num_rows,
        )

    def can_sample(self, state: PrioritisedReplayState) -> jax.Array:
        """True iff at least one valid window exists (``num_rows >= sequence_length``)."""
        return state.num_rows >= self.sequence_length

    def sample(
        self, state: PrioritisedReplayState, key: jax.Array, beta: jax.Array | float
    ) -> Sample:
        """Draws ``sample_batch_size`` (B) windows with ``P(i) = p_i^alpha / sum_k p_k^alpha``.

        Stratified: the total mass is split into B equal segments and one point is drawn
        uniformly in each; each point is located by a sum-tree descent (O(B log capacity)).
        Importance weights ``w_i = (N P(i))^-beta / max_j w_j`` with the max over ALL N valid
        windows of the buffer; since ``max_j w_j = (N P_min)^-beta`` this equals
        ``(p_i^alpha / min_j p_j^alpha)^-beta``, computed from the min tree's root.
        Undefined if ``can_sample`` is False.
        """
        batch = self.sample_batch_size
        total = state.sum_tree[1]
        segment = total / batch
        mass = (jnp.arange(batch) + jax.random.uniform(key, (batch,))) * segment
        flat = _tree_find(state.sum_tree, mass)
        num_leaves = state.sum_tree.shape[0] // 2
        scaled_priority = state.sum_tree[num_leaves + flat]
        weights = (scaled_priority / state.min_tree[1]) ** (-beta)
        time_index = (flat // self.add_batch_size).astype(jnp.int32)
        lane_index = (flat % self.add_batch_size).astype(jnp.int32)
        items = _gather_windows(
            state.storage, time_index, lane_index, self.max_length, self.sequence_length
        )
        return Sample(items, time_index, lane_index, weights.astype(jnp.float32))

    def update_priorities(
        self,
        state: PrioritisedReplayState,
        time_index: jax.Array,
        lane_index: jax.Array,
        priorities: jax.Array,
        alpha: jax.Array | float,
    ) -> PrioritisedReplayState:
        """Sets window ``(time_index[k], lane_index[k])`` to ``(priorities[k] + eps)^alpha``.

        All arguments ``[K]``; ``priorities >= 0`` (e.g. absolute TD errors). Windows that are no
        longer valid (overwritten by adds since they were sampled) keep priority 0. With
        duplicate windows in one batch one of their priorities is kept (which one is unspecified).
        """
        priorities = jnp.asarray(priorities, jnp.float32) + self.priority_eps
        valid = _is_valid_start(
            time_index,
            state.head,
            state.num_rows,
            self.max_length,
            self.sequence_length,
        )
        scaled = jnp.where(valid, priorities**alpha, 0.0)
        state = self._set_window_priorities(
            state, time_index * self.add_batch_size + lane_index, scaled
        )
        max_priority = jnp.maximum(state.max_priority, jnp.max(jnp.where(valid, priorities, 0.0)))
        return state.replace(max_priority=max_priority)
