"""Tests for rlkit.ops.returns: hand-computed rollouts, identities between estimators, and rlax.

The hand-computed rollout has T = 5 steps and two environments (columns):

    t             0    1    2    3    4
    rewards       1    2    3    4    5
    values        2    4    6    8   10
    next_values  10   20   30   40   50
    column A:         trunc               term   (time-limit cut mid-rollout, termination last step)
    column B:              term                  (termination mid-rollout, rollout cut at t = 4)

gamma = lambda = 0.5, so every expected number below is exact in binary floating point.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rlax

from rlkit.ops.returns import discounted_returns, gae, n_step_targets, td_lambda

GAMMA = 0.5
LAMBDA = 0.5
REWARDS = np.array([1.0, 2.0, 3.0, 4.0, 5.0], np.float32)
VALUES = np.array([2.0, 4.0, 6.0, 8.0, 10.0], np.float32)
NEXT_VALUES = np.array([10.0, 20.0, 30.0, 40.0, 50.0], np.float32)
TERMINATED = {"A": np.array([0, 0, 0, 0, 1], bool), "B": np.array([0, 0, 1, 0, 0], bool)}
TRUNCATED = {"A": np.array([0, 1, 0, 0, 0], bool), "B": np.array([0, 0, 0, 0, 0], bool)}

# G_t = r_t + g (1 - term_t) [cut_t ? nv_t : G_{t+1}]
# A: G4 = 5 (term); G3 = 4 + .5*5 = 6.5; G2 = 3 + .5*6.5 = 6.25; G1 = 2 + .5*20 = 12 (trunc);
#    G0 = 1 + .5*12 = 7
# B: G4 = 5 + .5*50 = 30 (end of rollout); G3 = 4 + .5*30 = 19; G2 = 3 (term);
#    G1 = 2 + .5*3 = 3.5; G0 = 1 + .5*3.5 = 2.75
DISCOUNTED = {"A": [7.0, 12.0, 6.25, 6.5, 5.0], "B": [2.75, 3.5, 3.0, 19.0, 30.0]}

# delta_t = r_t + g (1 - term_t) nv_t - v_t; A_t = delta_t + g l (1 - done_t) A_{t+1}, g l = .25
# A: deltas = [1+5-2, 2+10-4, 3+15-6, 4+20-8, 5+0-10] = [4, 8, 12, 16, -5]
#    A4 = -5 (term); A3 = 16 + .25*-5 = 14.75; A2 = 12 + .25*14.75 = 15.6875;
#    A1 = 8 (trunc); A0 = 4 + .25*8 = 6
# B: deltas = [4, 8, 3+0-6, 16, 5+25-10] = [4, 8, -3, 16, 20]
#    A4 = 20 (A_T = 0); A3 = 16 + .25*20 = 21; A2 = -3 (term); A1 = 8 + .25*-3 = 7.25;
#    A0 = 4 + .25*7.25 = 5.8125
ADVANTAGES = {"A": [6.0, 8.0, 15.6875, 14.75, -5.0], "B": [5.8125, 7.25, -3.0, 21.0, 20.0]}
GAE_TARGETS = {k: list(np.add(v, VALUES)) for k, v in ADVANTAGES.items()}

# G_t = r_t + g (1 - term_t) [cut_t ? nv_t : (1 - l) nv_t + l G_{t+1}]
# A: G4 = 5 (term); G3 = 4 + .5*(.5*40 + .5*5) = 15.25; G2 = 3 + .5*(.5*30 + .5*15.25) = 14.3125;
#    G1 = 2 + .5*20 = 12 (trunc); G0 = 1 + .5*(.5*10 + .5*12) = 6.5
# B: G4 = 5 + .5*50 = 30; G3 = 4 + .5*(.5*40 + .5*30) = 21.5; G2 = 3 (term);
#    G1 = 2 + .5*(.5*20 + .5*3) = 7.75; G0 = 1 + .5*(.5*10 + .5*7.75) = 5.4375
TD_LAMBDA = {"A": [6.5, 12.0, 14.3125, 15.25, 5.0], "B": [5.4375, 7.75, 3.0, 21.5, 30.0]}

# n = 2: sum_{k<m} g^k r_{t+k} + g^m (1 - term_{t+m-1}) nv_{t+m-1}, m stops at a done or the end
# A: t0: 1 + .5*2 + .25*20 = 7 (stops at trunc t1); t1: 2 + .5*20 = 12 (trunc, m = 1);
#    t2: 3 + .5*4 + .25*40 = 15; t3: 4 + .5*5 + .25*0 = 6.5 (term t4); t4: 5 (term, m = 1)
# B: t0: 1 + .5*2 + .25*20 = 7; t1: 2 + .5*3 + 0 = 3.5 (term t2); t2: 3 (term);
#    t3: 4 + .5*5 + .25*50 = 19; t4: 5 + .5*50 = 30 (end of array, m = 1)
N_STEP_2 = {"A": [7.0, 12.0, 15.0, 6.5, 5.0], "B": [7.0, 3.5, 3.0, 19.0, 30.0]}


def _call(fn, jit: bool, *args, **static):
    if jit:
        return jax.jit(lambda *a: fn(*a, **static))(*args)
    return fn(*args, **static)


def _inputs(columns: str):
    """Per-step arrays for one column ([T]) or both side by side ([T, 2])."""
    if len(columns) == 1:
        c = columns
        return REWARDS, VALUES, NEXT_VALUES, TERMINATED[c], TRUNCATED[c]
    stack = lambda x: np.stack([x, x], axis=1)  # noqa: E731
    term = np.stack([TERMINATED[c] for c in columns], axis=1)
    trunc = np.stack([TRUNCATED[c] for c in columns], axis=1)
    return stack(REWARDS), stack(VALUES), stack(NEXT_VALUES), term, trunc


def _expected(table, columns: str):
    if len(columns) == 1:
        return np.array(table[columns])
    return np.stack([table[c] for c in columns], axis=1)


CASES = pytest.mark.parametrize("columns", ["A", "B", "AB"])
JIT = pytest.mark.parametrize("jit", [False, True])


@CASES
@JIT
def test_discounted_returns_hand_computed(columns, jit):
    r, _, nv, term, trunc = _inputs(columns)
    out = _call(discounted_returns, jit, r, nv, term, trunc, GAMMA)
    np.testing.assert_allclose(out, _expected(DISCOUNTED, columns), rtol=1e-6)


@CASES
@JIT
def test_gae_hand_computed(columns, jit):
    r, v, nv, term, trunc = _inputs(columns)
    advantages, targets = _call(gae, jit, r, v, nv, term, trunc, GAMMA, LAMBDA)
    np.testing.assert_allclose(advantages, _expected(ADVANTAGES, columns), rtol=1e-6)
    np.testing.assert_allclose(targets, _expected(GAE_TARGETS, columns), rtol=1e-6)


@CASES
@JIT
def test_td_lambda_hand_computed(columns, jit):
    r, _, nv, term, trunc = _inputs(columns)
    out = _call(td_lambda, jit, r, nv, term, trunc, GAMMA, LAMBDA)
    np.testing.assert_allclose(out, _expected(TD_LAMBDA, columns), rtol=1e-6)


@CASES
@JIT
def test_n_step_targets_hand_computed(columns, jit):
    r, _, nv, term, trunc = _inputs(columns)
    out = _call(n_step_targets, jit, r, nv, term, trunc, GAMMA, n=2)
    np.testing.assert_allclose(out, _expected(N_STEP_2, columns), rtol=1e-6)


def test_float_flags_are_accepted():
    """terminated/truncated given as 0./1. floats give the same as bools."""
    r, v, nv, term, trunc = _inputs("AB")
    out = gae(r, v, nv, term.astype(np.float32), trunc.astype(np.float32), GAMMA, LAMBDA)[0]
    np.testing.assert_allclose(out, _expected(ADVANTAGES, "AB"), rtol=1e-6)


# ---------------------------------------------------------------- random rollouts

T, B = 23, 4
# Random rollouts are float32 sums of up to T terms of order 1, computed in different orders by
# different (or differently fused) programs: rounding leaves differences of order 1e-6 absolute.
TOL = {"rtol": 1e-5, "atol": 1e-5}


def _random_rollout(seed: int, p_term: float, p_trunc: float):
    """Random rollout [T, B] with next_values consistent with values where episodes continue:
    next_values[t] = values[t+1] unless step t ended an episode (then it is the value of the
    pre-reset observation, drawn independently) or t = T-1 (the bootstrap value)."""
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=(T, B)).astype(np.float32)
    values = rng.normal(size=(T, B)).astype(np.float32)
    terminated = rng.random((T, B)) < p_term
    truncated = (rng.random((T, B)) < p_trunc) & ~terminated
    done = terminated | truncated
    pre_reset_values = rng.normal(size=(T, B)).astype(np.float32)
    following = np.concatenate([values[1:], rng.normal(size=(1, B)).astype(np.float32)])
    next_values = np.where(done, pre_reset_values, following)
    return rewards, values, next_values, terminated, truncated


def _rlax_per_column(fn, *args):
    """rlax works on one sequence [T]; map it over the batch axis 1."""
    in_axes = tuple(1 if np.ndim(a) == 2 else None for a in args)
    return jax.vmap(fn, in_axes=in_axes, out_axes=1)(*args)


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_rlax_without_truncation(seed):
    """rlax has no truncation: a termination is discount 0, and v_t is the next-state value."""
    r, v, nv, term, trunc = _random_rollout(seed, p_term=0.15, p_trunc=0.0)
    assert term.any() and not trunc.any()
    gamma, lambda_ = 0.97, 0.9
    discount = gamma * (1.0 - term.astype(np.float32))
    values_with_bootstrap = np.concatenate([v, nv[-1:]])

    np.testing.assert_allclose(
        discounted_returns(r, nv, term, trunc, gamma),
        _rlax_per_column(rlax.discounted_returns, r, discount, nv),
        **TOL,
    )
    np.testing.assert_allclose(
        td_lambda(r, nv, term, trunc, gamma, lambda_),
        _rlax_per_column(lambda *a: rlax.lambda_returns(*a, lambda_=lambda_), r, discount, nv),
        **TOL,
    )
    advantages, _ = gae(r, v, nv, term, trunc, gamma, lambda_)
    np.testing.assert_allclose(
        advantages,
        _rlax_per_column(
            lambda r_, d_, v_: rlax.truncated_generalized_advantage_estimation(r_, d_, lambda_, v_),
            r,
            discount,
            values_with_bootstrap,
        ),
        **TOL,
    )
    for n in (1, 3, 5):
        np.testing.assert_allclose(
            n_step_targets(r, nv, term, trunc, gamma, n),
            _rlax_per_column(
                lambda *a, n=n: rlax.n_step_bootstrapped_returns(*a, n=n), r, discount, nv
            ),
            **TOL,
        )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gae_targets_equal_td_lambda(seed):
    """With consistent next_values, A_t + V(s_t) is the lambda-return, truncations included."""
    r, v, nv, term, trunc = _random_rollout(seed, p_term=0.1, p_trunc=0.1)
    assert term.any() and trunc.any()
    _, targets = gae(r, v, nv, term, trunc, 0.95, 0.8)
    np.testing.assert_allclose(targets, td_lambda(r, nv, term, trunc, 0.95, 0.8), **TOL)


def test_td_lambda_endpoints():
    """lambda = 1 gives discounted returns; lambda = 0 gives one-step targets."""
    r, _, nv, term, trunc = _random_rollout(3, p_term=0.1, p_trunc=0.1)
    one_step = r + 0.9 * (1.0 - term) * nv
    np.testing.assert_allclose(
        td_lambda(r, nv, term, trunc, 0.9, 1.0),
        discounted_returns(r, nv, term, trunc, 0.9),
        **TOL,
    )
    np.testing.assert_allclose(td_lambda(r, nv, term, trunc, 0.9, 0.0), one_step, **TOL)


def test_n_step_endpoints():
    """n = 1 gives one-step targets; n >= T gives discounted returns (truncations included)."""
    r, _, nv, term, trunc = _random_rollout(4, p_term=0.1, p_trunc=0.1)
    one_step = r + 0.9 * (1.0 - term) * nv
    np.testing.assert_allclose(n_step_targets(r, nv, term, trunc, 0.9, 1), one_step, **TOL)
    returns = discounted_returns(r, nv, term, trunc, 0.9)
    for n in (T, T + 3):
        np.testing.assert_allclose(n_step_targets(r, nv, term, trunc, 0.9, n), returns, **TOL)


def test_n_step_against_direct_sum():
    """Each target equals the windowed sum written out in Python, per start step and column."""
    r, _, nv, term, trunc = _random_rollout(5, p_term=0.15, p_trunc=0.15)
    gamma, n = 0.9, 4
    done = term | trunc
    expected = np.zeros_like(r)
    for b in range(B):
        for t in range(T):
            total, k = 0.0, 0
            while True:
                total += gamma**k * r[t + k, b]
                if done[t + k, b] or k == n - 1 or t + k == T - 1:
                    break
                k += 1
            expected[t, b] = total + gamma ** (k + 1) * (1.0 - term[t + k, b]) * nv[t + k, b]
    np.testing.assert_allclose(n_step_targets(r, nv, term, trunc, gamma, n), expected, **TOL)


def test_vmap_over_gamma_and_lambda():
    """gamma and lambda_ may be traced: a vmapped sweep equals separate calls."""
    r, v, nv, term, trunc = _random_rollout(6, p_term=0.1, p_trunc=0.1)
    gammas = jnp.array([0.9, 0.99])
    lambdas = jnp.array([0.5, 0.95])

    def all_estimators(gamma, lambda_):
        return (
            discounted_returns(r, nv, term, trunc, gamma),
            gae(r, v, nv, term, trunc, gamma, lambda_),
            td_lambda(r, nv, term, trunc, gamma, lambda_),
            n_step_targets(r, nv, term, trunc, gamma, 3),
        )

    swept = jax.jit(jax.vmap(all_estimators))(gammas, lambdas)
    for i in range(2):
        single = all_estimators(float(gammas[i]), float(lambdas[i]))
        for swept_leaf, single_leaf in zip(
            jax.tree.leaves(swept), jax.tree.leaves(single), strict=True
        ):
            np.testing.assert_allclose(swept_leaf[i], single_leaf, **TOL)


def test_invalid_inputs_raise():
    r, _, nv, term, trunc = _inputs("AB")
    with pytest.raises(AssertionError):  # chex shape mismatch
        discounted_returns(r, nv[:-1], term, trunc, GAMMA)
    with pytest.raises(ValueError, match="gamma"):
        td_lambda(r, nv, term, trunc, np.array([0.9, 0.9]), LAMBDA)
    with pytest.raises(ValueError, match="n must be"):
        n_step_targets(r, nv, term, trunc, GAMMA, 0)
