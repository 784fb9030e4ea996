"""rlkit.ops.permutation: a permutation, uniformly distributed, for small and large n."""

import itertools

import jax
import numpy as np
import pytest
from scipy import stats

from rlkit.ops.permutation import permutation


@pytest.mark.parametrize("n", [1, 2, 5, 500, 12_000, 2**20 + 3])
def test_every_index_appears_exactly_once(n):
    perm = np.asarray(jax.jit(permutation, static_argnums=1)(jax.random.PRNGKey(n), n))
    assert perm.dtype == np.int32 and perm.shape == (n,)
    np.testing.assert_array_equal(np.sort(perm), np.arange(n))


def test_all_24_orders_of_4_elements_are_equally_likely():
    draws = np.asarray(
        jax.vmap(lambda k: permutation(k, 4))(jax.random.split(jax.random.PRNGKey(0), 48_000))
    )
    index = {p: i for i, p in enumerate(itertools.permutations(range(4)))}
    counts = np.bincount([index[tuple(row)] for row in draws], minlength=24)
    assert stats.chisquare(counts).pvalue > 1e-3


def test_positions_of_a_500_element_shuffle_are_uniform():
    """Which element lands first, and where element 0 lands: uniform over 500 (chi-square)."""
    draws = np.asarray(
        jax.vmap(lambda k: permutation(k, 500))(jax.random.split(jax.random.PRNGKey(1), 20_000))
    )
    first = np.bincount(draws[:, 0], minlength=500)
    where_zero = np.bincount(np.argmax(draws == 0, axis=1), minlength=500)
    assert stats.chisquare(first).pvalue > 1e-3
    assert stats.chisquare(where_zero).pvalue > 1e-3
    # Neighbours stay independent: element 1 follows element 0 with probability 1/500.
    follows = np.mean(np.argmax(draws == 1, axis=1) == np.argmax(draws == 0, axis=1) + 1)
    assert abs(follows - 1 / 500) < 5 * np.sqrt(1 / 500 / 20_000)
