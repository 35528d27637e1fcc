"""interp.stats.clusters: cluster-based permutation tests (Maris & Oostenveld 2007) against MNE-Python,
a brute-force exact test, a null false-positive rate and a planted effect."""

from __future__ import annotations

import numpy as np
import pytest

from interp.errors import ConfigError, DimensionError, NaNError
from interp.stats.clusters import cluster_permutation_test, cluster_test, find_clusters


def _smooth_noise(rng, n, t, width=3):
    """Autocorrelated noise over time (moving average of white noise), like an ERP time course."""
    white = rng.normal(size=(n, t + width - 1))
    kernel = np.ones(width) / np.sqrt(width)
    return np.stack([np.convolve(w, kernel, mode="valid") for w in white])


def test_one_sample_matches_mne_and_brute_force():
    mne_stats = pytest.importorskip("mne.stats")
    rng = np.random.default_rng(0)
    n, t = 8, 40
    X = _smooth_noise(rng, n, t)
    X[:, 10:18] += 1.2
    X[:, 28:31] -= 1.0
    for alternative, tail in (("greater", 1), ("two-sided", 0)):
        ours = cluster_permutation_test(X, n_permutations=10_000, alternative=alternative)  # 2**8 - 1 < 10k: exact
        assert ours.exact and ours.n_permutations == 2**n - 1
        t_obs, clusters, pv, _ = mne_stats.permutation_cluster_1samp_test(X, n_permutations=10_000, tail=tail,
                                                                          out_type="mask", verbose=False)
        np.testing.assert_allclose(ours.statistic, t_obs, rtol=1e-12)
        clusters = [np.arange(t)[m[0]] if isinstance(m[0], slice) else np.flatnonzero(m) for m in clusters]  # 1-D: slices
        ours_masks = sorted(tuple(np.flatnonzero(c.mask)) for c in ours.clusters)
        mne_masks = sorted(tuple(m) for m in clusters)
        assert ours_masks == mne_masks
        # MNE's exact null holds the identity twice and drops the all-negated flip; p-values differ by <= 1/2**n
        by_mask = {tuple(m): p for m, p in zip(clusters, pv)}
        for c in ours.clusters:
            assert abs(c.p_value - by_mask[tuple(np.flatnonzero(c.mask))]) <= 1 / 2**n + 1e-12
        # brute force: all 2**n sign patterns (identity once), largest positive cluster mass of each
        signs = 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)[None]) & 1)
        thr = ours.threshold
        best = []
        for s in signs:
            m = (s[:, None] * X).mean(0)
            sd = np.sqrt(((s[:, None] * X - m) ** 2).sum(0) / (n - 1))
            stat = m / (sd / np.sqrt(n))
            masses = [c.mass for c in find_clusters(stat, thr, alternative)]
            best.append(max([abs(v) for v in masses] if alternative == "two-sided" else masses + [0.0]) if masses else 0.0)
        best = np.array(best)
        for c in ours.clusters:
            assert c.p_value == pytest.approx(np.mean(best >= abs(c.mass) - 1e-12))


def test_planted_effect_found_and_null_rate_within_alpha():
    rng = np.random.default_rng(1)
    X = _smooth_noise(rng, 12, 50)
    X[:, 20:30] += 1.0
    res = cluster_permutation_test(X, n_permutations=500, seed=0)
    top = res.to_frame().iloc[0]
    assert top["p_value"] < 0.05 and abs(top["time_start"] - 20) <= 2 and abs(top["time_stop"] - 29) <= 2
    assert res.mask[22:28].all() and not res.mask[:15].any()
    # null: family-wise rate of any significant cluster <= alpha + 0.04 (2.5 SE at 200 data sets)
    hits = 0
    for k in range(200):
        null_data = _smooth_noise(np.random.default_rng(100 + k), 12, 40)
        hits += bool(cluster_permutation_test(null_data, n_permutations=199, seed=k).significant)
    assert hits / 200 <= 0.05 + 0.04


def test_two_sample_null_rate_and_effect():
    hits = 0
    for k in range(150):
        rng = np.random.default_rng(500 + k)
        a, b = _smooth_noise(rng, 10, 30), _smooth_noise(rng, 12, 30)
        hits += bool(cluster_permutation_test(a, b, n_permutations=199, seed=k, alternative="two-sided").significant)
    assert hits / 150 <= 0.05 + 0.045
    rng = np.random.default_rng(9)
    a, b = _smooth_noise(rng, 15, 30), _smooth_noise(rng, 15, 30)
    a[:, 5:12] += 1.2
    res = cluster_permutation_test(a, b, n_permutations=300, alternative="two-sided")
    sig = res.significant
    assert len(sig) == 1 and sig[0].sign == 1 and sig[0].mask[6:11].all()
    # the two-sample t equals scipy's
    import scipy.stats

    np.testing.assert_allclose(res.statistic, scipy.stats.ttest_ind(a, b).statistic, rtol=1e-10)


def test_time_by_time_clusters_and_result_contract():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(10, 12, 12))
    X[:, 3:7, 4:9] += 1.5
    res = cluster_permutation_test(X, n_permutations=300, coords=[np.arange(12) * 0.1, np.arange(12) * 0.1],
                                   dims=("train_time", "test_time"))
    assert res.significant and res.mask[4:6, 5:8].all() and not res.mask[9:, :].any()
    frame = res.to_frame()
    assert {"train_time_start", "test_time_stop", "p_value", "mass"} <= set(frame.columns)
    assert res.plot().layout.title.text and "cluster" in res.summary()
    assert res._repr_html_().startswith("<div")
    one = cluster_permutation_test(rng.normal(size=(10, 20)) + 0.8, n_permutations=100)
    assert one.plot().data[0].type == "scatter"


def test_cluster_test_on_given_null_and_bad_input():
    obs = np.zeros(30)
    obs[10:15] = 0.3
    null = np.random.default_rng(3).normal(scale=0.05, size=(499, 30))
    thr = np.quantile(null, 0.95, axis=0)
    res = cluster_test(obs, null, threshold=thr)
    assert res.clusters[0].p_value == pytest.approx(1 / 500) and res.clusters[0].n_points == 5
    less = cluster_test(-obs, null, threshold=-thr, alternative="less")
    assert less.clusters[0].p_value == pytest.approx(1 / 500) and less.clusters[0].sign == -1
    with pytest.raises(DimensionError, match="null must be"):
        cluster_test(obs, null[:, :10], threshold=0.1)
    with pytest.raises(ConfigError, match="alternative"):
        cluster_test(obs, null, threshold=0.1, alternative="bigger")
    with pytest.raises(NaNError):
        cluster_permutation_test(np.full((5, 10), np.nan))
    with pytest.raises(DimensionError, match="observations"):
        cluster_permutation_test(np.zeros(10))
