"""interp.stats: exact properties of the null generators, null tests, and agreement with scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats as sps

from interp import Activations, stats
from interp.errors import ConfigError, DimensionError, MismatchError


def _ar1(n, cols, rho=0.95, seed=0):
    """Stationary AR(1) columns: x[t] = rho x[t-1] + e[t]."""
    from scipy.signal import lfilter

    e = np.random.default_rng(seed).normal(size=(n, cols))
    e[0] /= np.sqrt(1 - rho ** 2)
    return lfilter([1.0], [1.0, -rho], e, axis=0)


def _is_bijection(idx):
    n = idx.shape[1]
    return np.array_equal(np.sort(idx, axis=1), np.broadcast_to(np.arange(n), idx.shape))


# ------------------------------------------------------------------------------ exact small-case properties
def test_permutations_exact_enumeration_and_strata():
    idx = stats.permutations(4, 100, exact=True)
    assert idx.shape == (24, 4) and len({tuple(r) for r in idx}) == 24 and _is_bijection(idx)
    assert stats.permutations(5, 50, seed=1).shape == (50, 5)
    strata = np.array([0, 1, 0, 1, 1, 2, 0])
    idx = stats.permutations(7, 300, seed=2, strata=strata)
    assert _is_bijection(idx)
    assert (strata[idx] == strata[None, :]).all()  # every sample keeps to its stratum
    assert len({tuple(r) for r in idx}) == 3 * 2 * 3 * 2  # 3! * 3! arrangements of strata 0 and 1, all reached


def test_group_permutations_move_whole_trials_in_order():
    trial = np.repeat([0, 1, 2, 3], 5)
    rng = np.random.default_rng(0)
    shuffled = rng.permutation(20)  # groups need not be contiguous
    g = trial[shuffled]
    idx = stats.group_permutations(g, 200, seed=3)
    assert _is_bijection(idx)
    rank = np.empty(20, int)
    for k in range(4):
        members = np.flatnonzero(g == k)
        rank[members] = np.arange(5)
    for row in idx:
        for k in range(4):
            members = np.flatnonzero(g == k)
            assert len(set(g[row[members]])) == 1  # one source trial per trial
            assert (rank[row[members]] == rank[members]).all()  # k-th sample takes the k-th sample
    assert len({tuple(g[r[[np.flatnonzero(g == k)[0] for k in range(4)]]]) for r in idx}) == 24  # all 4! orders
    with pytest.raises(MismatchError, match="different sizes"):
        stats.group_permutations([0, 0, 0, 1, 1], 10)
    ragged = stats.group_permutations([0, 0, 0, 1, 1, 2], 50, constant=True)
    values = np.array([5, 5, 5, 7, 7, 9])
    for row in ragged:  # a value constant within groups is permuted as a whole-group label
        assert len(set(values[row[:3]])) == 1 and len(set(values[row[3:5]])) == 1
    with pytest.raises(ConfigError, match="two groups"):
        stats.group_permutations([0, 0, 0], 10)


def test_circular_shifts_rotate_each_group_by_at_least_min_shift():
    g = np.repeat([0, 1], [20, 30])
    idx = stats.circular_shifts(50, 2000, seed=4, groups=g, min_shift=3)
    assert _is_bijection(idx)
    shift0 = (idx[:, :20] - np.arange(20)) % 20
    shift1 = (idx[:, 20:] - 20 - np.arange(30)) % 30
    assert (shift0 == shift0[:, :1]).all() and (shift1 == shift1[:, :1]).all()  # a rotation per group
    assert set(shift0[:, 0]) == set(range(3, 18)) and set(shift1[:, 0]) == set(range(3, 28))  # all admissible
    with pytest.raises(ConfigError, match="too short"):
        stats.circular_shifts(10, 5, min_shift=6)


def test_block_permutations_keep_blocks_and_group_boundaries():
    g = np.repeat([0, 1], [23, 17])
    ids = stats.blocks(40, 5, g)
    assert len(set(ids[:23]) & set(ids[23:])) == 0 and np.bincount(ids).tolist() == [5, 5, 5, 5, 3, 5, 5, 5, 2]
    idx = stats.block_permutations(40, 300, seed=5, block_size=5, groups=g)
    assert _is_bijection(idx)
    for row in idx[:20]:
        src_blocks = ids[row]
        # consecutive output samples come from one block in their original order
        runs = np.flatnonzero(np.diff(src_blocks) != 0) + 1
        for seg in np.split(row, runs):
            assert (np.diff(seg) == 1).all() and len(set(ids[seg])) == 1


def test_bootstrap_indices_and_counts():
    g = np.repeat([0, 1, 2], 4)
    idx = stats.bootstrap_indices(12, 100, seed=0, groups=g)
    assert idx.shape == (100, 12)
    for row in idx:
        blocks = row.reshape(3, 4)
        assert all(len(set(g[b])) == 1 and sorted(b) == list(b) for b in blocks)
    ragged = stats.bootstrap_indices(6, 20, seed=0, groups=[0, 0, 0, 1, 1, 2])
    assert isinstance(ragged, list) and len(ragged) == 20
    counts = stats.bootstrap_counts(12, 100, seed=0, groups=g)
    assert (counts.sum(1) == 12).all() and all(len(set(c[g == k])) == 1 for c in counts for k in range(3))
    plain = stats.bootstrap_counts(10, 50, seed=1)
    assert (plain.sum(1) == 10).all()


def test_resolve_groups_from_coordinate_and_errors():
    acts = Activations(torch.zeros(6, 2), ("sample", "unit"), {"sample": {"trial": ["a", "a", "b", "b", "c", "c"]}})
    assert stats.resolve_groups("trial", 6, acts).tolist() == [0, 0, 1, 1, 2, 2]
    with pytest.raises(MismatchError, match="5 labels but there are 6"):
        stats.resolve_groups([0, 0, 1, 1, 2], 6)
    with pytest.raises(ConfigError, match="names a coordinate"):
        stats.resolve_groups("trial", 6, None)
    with pytest.raises(ConfigError, match="missing"):
        stats.resolve_groups(np.array([1.0, np.nan]))


# ------------------------------------------------------------------------------ p-values, FDR, intervals vs scipy
@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_p_value_equals_scipy_on_scipys_null(alternative):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=25), rng.normal(size=25) + 0.3
    ref = sps.permutation_test((x, y), lambda a, b, axis: np.mean(a, axis) - np.mean(b, axis), n_resamples=999,
                               alternative=alternative, rng=np.random.default_rng(1))
    assert stats.p_value(ref.statistic, ref.null_distribution, alternative) == pytest.approx(ref.pvalue, abs=1e-15)


def test_exact_permutation_test_equals_scipy_exact():
    rng = np.random.default_rng(3)
    x = rng.normal(size=7)
    y = x + rng.normal(size=7)

    def r(a, b):
        return np.corrcoef(a, b)[0, 1]

    ours = stats.permutation_test(r, x, y, null="permutation", n_permutations=10_000, exact=True)
    ref = sps.permutation_test((y,), lambda b: np.corrcoef(x, b)[0, 1], permutation_type="pairings",
                               vectorized=False, n_resamples=10_000, alternative="greater")
    assert len(ours.null) == math.factorial(7)
    assert ours.p_value == pytest.approx(ref.pvalue, abs=1e-12)


def test_random_permutation_test_agrees_with_scipy_within_monte_carlo_error():
    rng = np.random.default_rng(5)
    x = rng.normal(size=40)
    y = 0.3 * x + rng.normal(size=40)
    ours = stats.permutation_test(lambda a, b: np.corrcoef(a, b)[0, 1], x, y, null="permutation",
                                  n_permutations=4000, seed=0, alternative="two-sided")
    ref = sps.permutation_test((y,), lambda b, axis=-1: np.corrcoef(x, b)[0, 1], permutation_type="pairings",
                               vectorized=False, n_resamples=4000, alternative="two-sided", rng=np.random.default_rng(9))
    se = np.sqrt(ref.pvalue * (1 - ref.pvalue) / 4000) * 2
    assert abs(ours.p_value - ref.pvalue) < 4 * se + 1e-3, (ours.p_value, ref.pvalue)


def test_benjamini_hochberg_equals_scipy():
    p = np.random.default_rng(0).random(200) ** 3
    np.testing.assert_allclose(stats.benjamini_hochberg(p), sps.false_discovery_control(p), rtol=1e-12)
    with_nan = np.concatenate([p[:10], [np.nan]])
    q = stats.benjamini_hochberg(with_nan)
    assert np.isnan(q[-1]) and np.allclose(q[:10], sps.false_discovery_control(p[:10]))
    assert stats.benjamini_hochberg(p.reshape(20, 10)).shape == (20, 10)


def test_bootstrap_equals_scipy_percentile_bootstrap():
    x = np.random.default_rng(2).exponential(size=60)
    ours = stats.bootstrap(np.mean, x, n_bootstraps=3000, seed=7, alpha=0.1)
    ref = sps.bootstrap((x,), np.mean, n_resamples=3000, method="percentile", confidence_level=0.9,
                        rng=np.random.default_rng(7), vectorized=False)
    assert ours.low == pytest.approx(ref.confidence_interval.low, rel=1e-12)
    assert ours.high == pytest.approx(ref.confidence_interval.high, rel=1e-12)
    assert "estimate" in ours.summary() and len(ours.to_frame()) == 1


def test_grouped_bootstrap_is_wider_on_correlated_trials():
    """Samples within a trial share a trial effect: the sample bootstrap CI of the mean is too narrow,
    the trial bootstrap CI is close to the t-interval of the trial means."""
    rng = np.random.default_rng(0)
    trial = np.repeat(np.arange(20), 25)
    x = rng.normal(size=20)[trial] + 0.2 * rng.normal(size=500)
    plain = stats.bootstrap(np.mean, x, n_bootstraps=2000)
    grouped = stats.bootstrap(np.mean, x, groups=trial, n_bootstraps=2000)
    _, lo, hi = stats.t_interval(x.reshape(20, 25).mean(1))
    assert (grouped.high - grouped.low) > 3 * (plain.high - plain.low)
    assert (grouped.high - grouped.low) == pytest.approx(hi - lo, rel=0.2)


def test_t_interval_equals_scipy():
    x = np.random.default_rng(1).normal(size=(12, 3))
    mean, lo, hi = stats.t_interval(x, alpha=0.1)
    ref = sps.t.interval(0.9, 11, loc=x.mean(0), scale=sps.sem(x, axis=0))
    np.testing.assert_allclose(lo, ref[0], rtol=1e-12)
    np.testing.assert_allclose(hi, ref[1], rtol=1e-12)
    m, lo1, hi1 = stats.t_interval([2.0])
    assert m == 2.0 and np.isnan(lo1) and np.isnan(hi1)
    with pytest.raises(ConfigError, match="alpha"):
        stats.t_interval(x, alpha=1.5)


# ------------------------------------------------------------------------------ null tests: rejection rate at alpha
def _rejection_rate(make_data, null, n_datasets=400, n=300, n_permutations=99, alpha=0.05, **kw):
    """Fraction of independent (x, y) data sets with p < alpha for the correlation of x and y."""
    hits = 0
    for d in range(n_datasets):
        x, y = make_data(d)
        idx = stats.null_indices(n, null, n_permutations=n_permutations, seed=d, **kw)
        zx = (x - x.mean()) / x.std()
        zy = (y - y.mean()) / y.std()
        obs = abs(zx @ zy / n)
        nul = np.abs(zy[idx] @ zx / n)
        hits += stats.p_value(obs, nul) < alpha
    return hits / n_datasets


def _upper(alpha, n):  # one-sided 99.9% binomial bound on the rejection rate of a valid test
    return sps.binom.ppf(0.999, n, alpha) / n


def test_null_rejection_rates_are_alpha():
    n, R = 300, 400
    trial = np.repeat(np.arange(15), 20)
    iid = lambda d: np.random.default_rng(d).normal(size=(2, n))  # noqa: E731
    # circular shifts are exact only asymptotically: the series must be much longer than its
    # autocorrelation time (rho 0.95: 8.5% at n=300, 6% at n=1000, 5.9% at n=2000; 800 data sets each)
    long = 1000
    ar = lambda d: _ar1(long, 2, 0.95, seed=10_000 + d).T  # noqa: E731

    def ar_trials(d):  # AR(1) restarted in every trial: trials are independent
        rng = np.random.default_rng(20_000 + d)
        out = np.empty((2, n))
        for k in range(15):
            out[:, trial == k] = _ar1(20, 2, 0.95, seed=int(rng.integers(1 << 30))).T
        return out

    rates = {
        "permutation on iid": _rejection_rate(iid, "permutation", R, n),
        "group on AR trials": _rejection_rate(ar_trials, "group", R, n, groups=trial),
        "circular on AR": _rejection_rate(ar, "circular", R, long),
        "block on AR": _rejection_rate(ar, "block", R, long, block_size=100),
    }
    bound = _upper(0.05, R)
    assert all(r <= bound for r in rates.values()), (rates, bound)
    assert rates["permutation on iid"] >= sps.binom.ppf(0.001, R, 0.05) / R  # exact null: not conservative
    # the documented contrast: a plain sample permutation on autocorrelated data rejects far too often
    naive = _rejection_rate(ar, "permutation", 100, long)
    assert naive > 0.4, naive


def test_choose_null_rules():
    ts = Activations(torch.zeros(50, 2), ("sample", "unit"), attrs={"dt": 0.1})
    assert stats.choose_null("auto", source=ts)[0] == "circular"
    assert stats.choose_null("auto", groups=np.zeros(50))[0] == "group"
    x = _ar1(400, 5, seed=1)
    v = _ar1(400, 1, seed=2)[:, 0]
    kind, reason = stats.choose_null("auto", activity=x, values=[v])
    assert kind == "circular" and "autocorrelated" in reason
    white = np.random.default_rng(0).normal(size=(400, 5))
    assert stats.choose_null("auto", activity=white, values=[v])[0] == "permutation"
    sorted_cats = np.repeat(["a", "b"], 200)  # sorted stimuli, white activity: still exchangeable
    assert stats.choose_null("auto", activity=white, values=[sorted_cats])[0] == "permutation"
    with pytest.raises(ConfigError, match="needs groups"):
        stats.choose_null("group")
    with pytest.raises(ConfigError, match="null must be"):
        stats.choose_null("shuffle")


def test_permutation_test_with_groups_and_result_contract():
    rng = np.random.default_rng(0)
    trial = np.repeat(np.arange(12), 10)
    x = rng.normal(size=12)[trial] + rng.normal(size=120)
    y = x + rng.normal(size=120)
    res = stats.permutation_test(lambda a, b: np.corrcoef(a, b)[0, 1], x, y, groups=trial, n_permutations=199)
    assert res.method == "group" and res.p_value == pytest.approx(0.005)
    assert set(res.to_frame().columns) >= {"observed", "p_value", "method"}
    assert "group" in res.summary() and res.plot() is not None and "<table" in res._repr_html_()
    with pytest.raises(DimensionError):
        stats.p_value(np.zeros(3), np.zeros((5, 4)))
    with pytest.raises(ConfigError, match="exact"):
        stats.permutation_test(lambda a, b: 0.0, x, y, null="permutation", exact=True)


# ------------------------------------------------------------------------------ circular statistics
def test_circular_statistics_match_scipy_and_rayleigh_is_calibrated():
    rng = np.random.default_rng(0)
    a = rng.vonmises(1.0, 2.0, size=200)
    assert stats.circular_mean(a) == pytest.approx(sps.circmean(a), abs=1e-12)
    ds = sps.directional_stats(np.c_[np.cos(a), np.sin(a)])
    assert stats.resultant_length(a) == pytest.approx(ds.mean_resultant_length, abs=1e-12)
    assert stats.circular_mean(np.rad2deg(a), degrees=True) == pytest.approx(np.rad2deg(sps.circmean(a)), abs=1e-9)
    # weights count angles that many times
    assert stats.resultant_length([0.0, 1.0], weights=[3, 1]) == pytest.approx(
        stats.resultant_length([0.0, 0.0, 0.0, 1.0]))
    z, p = stats.rayleigh_test(a)
    assert p < 1e-10 and z == pytest.approx(200 * stats.resultant_length(a) ** 2)
    # on uniform angles the rejection rate is alpha
    ps = np.array([stats.rayleigh_test(rng.uniform(0, 2 * np.pi, 30))[1] for _ in range(2000)])
    assert (ps < 0.05).mean() == pytest.approx(0.05, abs=3 * np.sqrt(0.05 * 0.95 / 2000))
    assert np.isnan(stats.circular_mean([0.0, np.pi]))
