"""rlkit.report.stats: point estimates against hand arithmetic, intervals against scipy's
bootstrap and against an explicit loop, and the stratification that keeps tasks apart."""

import numpy as np
import pytest
import scipy.stats

from rlkit.report import stats


def test_iqm_of_eight_values_drops_the_two_lowest_and_two_highest():
    # sorted: -50 1 | 3 4 5 7 | 10 100; floor(0.25 * 8) = 2 dropped per end; (3+4+5+7)/4 = 4.75
    x = np.array([10.0, 1.0, 7.0, 3.0, 100.0, 5.0, -50.0, 4.0])
    assert stats.iqm(x) == pytest.approx(4.75)
    assert stats.iqm(x) == pytest.approx(scipy.stats.trim_mean(x, 0.25))


def test_iqm_of_ten_values_drops_floor_of_a_quarter_and_ignores_an_outlier():
    # 0..9 with 9 replaced by 1000: floor(2.5) = 2 per end, mean of 2..7 = 27/6 = 4.5
    x = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 1000.0])
    assert stats.iqm(x) == pytest.approx(4.5)
    assert stats.iqm(x) == pytest.approx(scipy.stats.trim_mean(x, 0.25))


def test_iqm_pools_every_task_of_a_runs_by_tasks_array():
    # [3 runs, 2 tasks] = 6 values 1..6; floor(1.5) = 1 per end: mean(2, 3, 4, 5) = 3.5
    x = np.array([[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]])
    assert stats.iqm(x) == pytest.approx(3.5)
    assert stats.iqm([x[:, 0], x[:, 1]]) == pytest.approx(3.5)


def test_optimality_gap_counts_only_the_shortfall_below_the_threshold():
    # gaps max(1 - x, 0): 0.8, 0.1, 0, 0 -> mean 0.9 / 4 = 0.225
    x = np.array([0.2, 0.9, 1.0, 1.5])
    assert stats.optimality_gap(x) == pytest.approx(0.225)
    # threshold 2: 1.8 + 1.1 + 1.0 + 0.5 = 4.4 -> 1.1
    assert stats.optimality_gap(x, threshold=2.0) == pytest.approx(1.1)


def test_aggregates_are_over_all_values():
    x = np.array([[0.2, 1.5], [0.9, 1.0]])
    out = stats.aggregates(x)
    assert out == pytest.approx(
        {"mean": 0.9, "median": 0.95, "iqm": (0.9 + 1.0) / 2, "optimality_gap": 0.225}
    )


def _scipy_percentile_ci(x, statistic, reps):
    def vectorised(sample, axis=-1):
        return statistic(sample, axis)

    result = scipy.stats.bootstrap(
        (x,), vectorised, n_resamples=reps, method="percentile", rng=np.random.default_rng(1)
    )
    return result.confidence_interval.low, result.confidence_interval.high


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda x: float(np.mean(x)), lambda x, axis: np.mean(x, axis=axis)),
        (stats.iqm, lambda x, axis: scipy.stats.trim_mean(x, 0.25, axis=axis)),
    ],
    ids=["mean", "iqm"],
)
def test_one_task_interval_agrees_with_scipy_percentile_bootstrap(ours, theirs):
    # one task of 10 runs: the stratified bootstrap is the ordinary bootstrap; with 20k
    # resamples each, the two Monte Carlo percentiles agree to well within 2%
    x = np.random.default_rng(0).normal(100.0, 15.0, size=10)
    lo, hi = stats.stratified_bootstrap_ci(x, ours, reps=20_000, seed=0)
    ref_lo, ref_hi = _scipy_percentile_ci(x, theirs, 20_000)
    assert lo == pytest.approx(ref_lo, rel=0.02)
    assert hi == pytest.approx(ref_hi, rel=0.02)
    assert lo < ours(x) < hi


def _loop_stratified_ci(tasks, statistic, reps, confidence, seed):
    """The definition, one resample at a time: per task, draw its own number of runs with
    replacement; concatenate; apply the statistic; take percentiles."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(reps):
        resample = []
        for task in tasks:
            for _ in range(len(task)):
                resample.append(task[rng.integers(len(task))])
        values.append(statistic(np.array(resample)))
    alpha = 100 * (1 - confidence) / 2
    return np.percentile(values, [alpha, 100 - alpha])


def test_stratified_interval_on_unequal_tasks_matches_an_explicit_loop():
    tasks = [np.array([1.0, 2.0, 4.0, 8.0, 3.0, 5.0]), np.array([10.0, 14.0, 11.0])]
    ours = stats.stratified_bootstrap_ci(tasks, stats.iqm, reps=10_000, confidence=0.9, seed=3)
    loop = _loop_stratified_ci(tasks, stats.iqm, reps=10_000, confidence=0.9, seed=4)
    # different random streams: Monte Carlo agreement, not identity
    np.testing.assert_allclose(ours, loop, rtol=0.03)


def test_stratification_keeps_each_task_s_share_of_runs():
    # task A near 0, task B near 1000, 4 runs each. Stratified: every resample holds 4 runs of
    # each, so the mean stays 500 +- the within-task spread (the CI is a few units wide).
    # Pooling the 8 runs would let a resample hold 0..8 runs of B: the mean would range over
    # hundreds, and the interval would be about 2 * 1.96 * 500 / sqrt(8) ~ 700 wide.
    a = np.array([0.0, 1.0, 2.0, 3.0])
    b = np.array([1000.0, 1001.0, 1002.0, 1003.0])
    lo, hi = stats.stratified_bootstrap_ci([a, b], lambda x: float(x.mean()), reps=2000)
    assert 500.0 < lo < 501.5 < hi < 503.0
    assert hi - lo < 3.0


def test_the_same_seed_gives_the_same_interval_and_another_seed_another():
    x = np.random.default_rng(0).normal(size=(7, 2))
    first = stats.stratified_bootstrap_ci(x, stats.iqm, seed=5)
    assert stats.stratified_bootstrap_ci(x, stats.iqm, seed=5) == first
    assert stats.stratified_bootstrap_ci(x, stats.iqm, seed=6) != first


def test_probability_of_improvement_counts_wins_and_half_ties_per_task():
    # task 1: x = 1 3 4, y = 2 3. Pairs (x, y): (1,2) 0, (1,3) 0, (3,2) 1, (3,3) 1/2, (4,2) 1,
    #         (4,3) 1 -> 3.5 / 6 = 7/12.
    # task 2: x = 5, y = 1 9: (5,1) 1, (5,9) 0 -> 1/2.   Average over tasks: (7/12 + 6/12) / 2.
    x = [np.array([1.0, 3.0, 4.0]), np.array([5.0])]
    y = [np.array([2.0, 3.0]), np.array([1.0, 9.0])]
    out = stats.probability_of_improvement(x, y, reps=500)
    assert out["point"] == pytest.approx(13 / 24)
    lo, hi = out["ci"]
    assert 0.0 <= lo <= out["point"] <= hi <= 1.0
    # Mann-Whitney U / (n m) is the same count for one task
    u = scipy.stats.mannwhitneyu(x[0], y[0]).statistic
    assert u / 6 == pytest.approx(7 / 12)


def test_probability_of_improvement_of_clearly_better_runs_is_one():
    out = stats.probability_of_improvement(np.arange(10.0) + 100, np.arange(10.0), reps=200)
    assert out["point"] == 1.0 and out["ci"] == (1.0, 1.0)


def test_performance_profile_is_the_fraction_strictly_above_tau():
    # 4 runs 1 2 3 4: above 0 -> 4/4; above 2 -> 3, 4 = 2/4; above 4 -> none
    x = np.array([[1.0, 3.0], [2.0, 4.0]])
    np.testing.assert_allclose(stats.performance_profile(x, np.array([0.0, 2.0, 4.0])), [1, 0.5, 0])
    lo, hi = stats.performance_profile_ci(x, np.array([0.0, 2.0, 4.0]), reps=500)
    assert np.all(lo <= [1, 0.5, 0]) and np.all(hi >= [1, 0.5, 0])
    assert lo[0] == hi[0] == 1.0 and lo[2] == hi[2] == 0.0


def test_min_max_normalise_maps_low_to_zero_and_high_to_one():
    np.testing.assert_allclose(
        stats.min_max_normalise(np.array([0, 250, 500.0]), 0, 500), [0, 0.5, 1]
    )
    with pytest.raises(ValueError):
        stats.min_max_normalise(np.array([1.0]), 3.0, 3.0)


def test_summary_of_one_seed_collapses_the_interval_to_the_point():
    out = stats.summary(np.array([7.0]))
    assert out["n"] == 1 and out["non_finite"] == 0
    assert out["mean"] == out["median"] == out["iqm"] == 7.0
    assert out["ci95"] == {"mean": [7.0, 7.0], "iqm": [7.0, 7.0]}


def test_summary_drops_non_finite_seeds_and_counts_them():
    out = stats.summary(np.array([1.0, np.nan, 3.0, np.inf, 2.0]))
    assert out["n"] == 3 and out["non_finite"] == 2
    assert out["mean"] == pytest.approx(2.0) and out["median"] == 2.0
    lo, hi = out["ci95"]["mean"]
    assert 1.0 <= lo <= 2.0 <= hi <= 3.0


def test_summary_of_only_non_finite_seeds_is_nan():
    out = stats.summary(np.array([np.nan, np.nan]))
    assert out["n"] == 0 and out["non_finite"] == 2 and np.isnan(out["mean"])


def test_bootstrap_band_per_step_uses_only_that_step_s_finite_seeds():
    curve = np.array([[1.0, np.nan, 5.0], [3.0, np.nan, 5.0], [2.0, 4.0, 5.0]])
    point, lo, hi = stats.bootstrap_band(curve, "mean", reps=500)
    np.testing.assert_allclose(point, [2.0, 4.0, 5.0])
    assert lo[0] < 2.0 < hi[0]
    assert lo[1] == hi[1] == 4.0 and lo[2] == hi[2] == 5.0  # one seed / equal seeds: no spread
    empty = stats.bootstrap_band(np.full((2, 1), np.nan))
    assert all(np.isnan(v[0]) for v in empty)


def test_bootstrap_band_iqm_matches_iqm_at_each_step():
    curve = np.random.default_rng(0).normal(size=(8, 5))
    point, _, _ = stats.bootstrap_band(curve, "iqm", reps=10)
    np.testing.assert_allclose(point, [stats.iqm(curve[:, t]) for t in range(5)])
