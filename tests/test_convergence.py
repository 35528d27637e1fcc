"""Raugel et al. 2025 convergence scores: temporal (layer depth vs peak latency) and spatial (region order vs
best layer). Ground truth: planted time courses / score matrices; references: scipy.stats.pearsonr and
spearmanr, and scipy.stats.permutation_test for the exact permutation p-value."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from interp import ConfigError, DimensionError
from probes import spatial_score, temporal_score


def test_temporal_score_on_planted_latencies():
    times = np.linspace(0, 0.5, 51)
    peaks = np.array([0.08, 0.11, 0.15, 0.14, 0.22, 0.30])   # layer 3 peaks slightly early
    courses = np.exp(-((times[None] - peaks[:, None]) / 0.03) ** 2)
    res = temporal_score(courses, times=times)
    np.testing.assert_allclose(res.table.best, peaks)
    r = scipy.stats.pearsonr(np.arange(6), peaks).statistic
    assert res.r == pytest.approx(r) and res.spearman_r == pytest.approx(scipy.stats.spearmanr(np.arange(6), peaks).statistic)
    ref = scipy.stats.permutation_test((np.arange(6.0),), lambda d: scipy.stats.pearsonr(d, peaks).statistic,
                                       permutation_type="pairings", alternative="greater", n_resamples=np.inf)
    assert res.p_value == pytest.approx(ref.pvalue)          # 6! = 720 orders: exact
    assert len(res.null) == 720 and "temporal score" in res.summary() and len(res.plot().data) == 1
    flat = temporal_score(courses[::-1], times=times)        # deeper layers earlier: negative score
    assert flat.r < -0.9 and flat.p_value > 0.9
    with pytest.raises(ConfigError, match="times"):
        temporal_score(courses)
    with pytest.raises(DimensionError, match="at least 3"):
        temporal_score(courses[:2], times=times)


def test_temporal_score_reads_a_time_course_of_temporal_encoding():
    from probes import temporal_encoding

    rng = np.random.default_rng(0)
    n, T = 150, 12
    X = {f"L{i}": rng.normal(size=(n, 4)) for i in range(4)}
    Y = rng.normal(size=(n, T, 3)) * 0.5
    for i, F in enumerate(X.values()):       # layer i drives the channels at time 2 + 2i
        Y[:, 2 + 2 * i] += F @ rng.normal(size=(4, 3))
    tc = temporal_encoding(X, Y, alphas=[1.0, 10.0], cv=3, inner_cv=3)
    res = temporal_score(tc)
    assert res.table.best.tolist() == [2, 4, 6, 8] and res.r == pytest.approx(1.0)
    assert res.table.layer.tolist() == ["L0", "L1", "L2", "L3"]


def test_spatial_score_on_planted_best_layers():
    regions = ["V1", "V2", "V4", "IT", "MT"]
    best = {"V1": 1, "V2": 2, "V4": 4, "IT": 7, "MT": 3}
    scores = np.full((8, 5), 0.1)
    for j, r in enumerate(regions):
        scores[best[r], j] = 0.5
    order = {"V1": 0, "V2": 1, "V4": 2, "MT": 2.5, "IT": 3}
    import pandas as pd

    res = spatial_score(pd.DataFrame(scores, columns=regions), order)
    assert res.table.set_index("region").best.to_dict() == best
    pos = np.array([order[r] for r in regions])
    bl = np.array([best[r] for r in regions], dtype=float)
    assert res.r == pytest.approx(scipy.stats.pearsonr(pos, bl).statistic)
    assert res.p_value == pytest.approx(scipy.stats.permutation_test(
        (pos,), lambda d: scipy.stats.pearsonr(d, bl).statistic, permutation_type="pairings",
        alternative="greater", n_resamples=np.inf).pvalue)
    same = spatial_score({r: scores[:, j] for j, r in enumerate(regions)}, [order[r] for r in regions])
    assert same.r == pytest.approx(res.r)
    with pytest.raises(ConfigError, match="no position"):
        spatial_score(pd.DataFrame(scores, columns=regions), {"V1": 0})
