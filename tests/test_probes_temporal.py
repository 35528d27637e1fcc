"""probes: grouped cross-validation, time-resolved encoding, lagged (FIR) and HRF encoding with planted answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch
from sklearn.model_selection import GroupKFold, KFold

from interp import Activations
from interp.errors import ConfigError, DimensionError, MismatchError
from probes import (
    RidgeCV,
    canonical_hrf,
    encoding_scores,
    hrf_features,
    lag_features,
    lagged_encoding,
    temporal_encoding,
    temporal_generalization_encoding,
)
from probes._cv import make_splits

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------------- groups
def test_grouped_cv_prevents_leakage():
    """Each of 20 subjects has its own random features and target offsets, repeated over 10 trials: nothing
    generalises to a new subject. Trial-level KFold leaks (r ~ 0.9); GroupKFold over subjects does not."""
    rng = np.random.default_rng(0)
    subj = np.repeat(np.arange(20), 10)
    X = rng.normal(size=(20, 15))[subj] + 0.1 * rng.normal(size=(200, 15))
    Y = rng.normal(size=(20, 3))[subj] + 0.1 * rng.normal(size=(200, 3))
    leaky = encoding_scores(X, Y, alphas=[0.1, 1, 10], cv=KFold(5, shuffle=True, random_state=0),
                            inner_cv=KFold(5, shuffle=True, random_state=0)).scores
    acts = Activations(torch.from_numpy(X), ("sample", "unit"), {"sample": {"subject": subj}})
    grouped = encoding_scores(acts, Y, alphas=[0.1, 1, 10], groups="subject").scores
    assert leaky.mean() > 0.8 and abs(grouped.mean()) < 0.3
    for tr, te in make_splits(200, 5, subj):
        assert not set(subj[tr]) & set(subj[te])
    a = RidgeCV(alphas=[0.1, 1, 10]).fit(acts, Y, groups="subject")
    b = RidgeCV(alphas=[0.1, 1, 10], cv=GroupKFold(5)).fit(X, Y, groups=subj)
    np.testing.assert_array_equal(a.best_alphas_.numpy(), b.best_alphas_.numpy())


def test_groups_errors():
    X, Y = np.random.randn(40, 3), np.random.randn(40, 2)
    with pytest.raises(ConfigError, match="ignores them"):
        RidgeCV(cv=KFold(4)).fit(X, Y, groups=np.repeat(np.arange(8), 5))
    with pytest.raises(ConfigError, match="needs an Activations"):
        RidgeCV().fit(X, Y, groups="subject")
    acts = Activations(torch.from_numpy(X), ("sample", "unit"), {"sample": {"run": np.repeat([1, 2], 20)}})
    with pytest.raises(ConfigError, match=r"coordinates are \['run'\]"):
        encoding_scores(acts, Y, groups="subject")
    with pytest.raises(MismatchError, match="30 labels but there are 40 samples"):
        RidgeCV().fit(X, Y, groups=np.arange(30))


# --------------------------------------------------------------------------------- time-resolved encoding
def _eeg(rng, n_trials=120, n_times=30, n_ch=10, start=10, stop=20, runs=3):
    X = rng.normal(size=(n_trials, 4))
    data = rng.normal(size=(n_trials, n_times, n_ch))
    data[:, start:stop] += (X @ rng.normal(size=(4, n_ch)))[:, None] * 0.7
    sample = pd.DataFrame({"run": np.repeat(np.arange(runs), n_trials // runs)})
    rec = Activations(torch.from_numpy(data), ("sample", "time", "unit"),
                      {"sample": sample, "time": {"time": np.arange(n_times) * 0.01 - 0.05}})
    return X, rec


def test_temporal_encoding_finds_the_window_and_generalisation_diagonal():
    X, rec = _eeg(np.random.default_rng(1))
    tc = temporal_encoding({"features": X, "noise": np.random.default_rng(2).normal(size=X.shape)}, rec,
                           window=5, step=5, groups="run", cv=3, inner_cv=2, alphas=[0.1, 1, 10, 100])
    assert tc.scores.shape == (2, 6) and tc.attrs["grouped"]
    feat, noise = tc.scores
    assert (feat[2:4] > 0.5).all() and (np.abs(feat[[0, 1, 4, 5]]) < 0.25).all() and (np.abs(noise) < 0.25).all()
    np.testing.assert_allclose(tc.times, [-0.03, 0.02, 0.07, 0.12, 0.17, 0.22])
    assert tc.attrs["per_target"].shape == (2, 6, 10)
    tg = temporal_generalization_encoding(X, rec, window=5, step=5, groups="run", cv=3, inner_cv=2,
                                          alphas=[0.1, 1, 10, 100])
    # the diagonal is the time-resolved encoding score (same folds, same models)
    np.testing.assert_allclose(tg.diagonal(), feat, atol=1e-10)
    # one code from 10 to 19: the model fitted at 10-14 predicts 15-19 as well as itself; not the other windows
    assert tg.scores[2, 3] > 0.5 and tg.scores[3, 2] > 0.5 and abs(tg.scores[2, 0]) < 0.25
    assert tg.dims == ("train_time", "test_time") and len(tg.to_frame()) == 36


def test_temporal_encoding_per_condition_features():
    rng = np.random.default_rng(3)
    stim = rng.normal(size=(12, 4))
    cond = np.tile(np.arange(12), 8)  # 8 trials per stimulus
    data = rng.normal(size=(96, 20, 6))
    data[:, 5:15] += (stim @ rng.normal(size=(4, 6)))[cond][:, None]
    tc = temporal_encoding(stim, data, conditions=cond, window=5, step=5, alphas=[1, 10],
                           cv=KFold(4, shuffle=True, random_state=0), inner_cv=3)
    assert tc.scores[0, 1] > 0.5 and tc.scores[0, 2] > 0.5 and tc.scores[0, 0] < 0.3
    with pytest.raises(DimensionError, match="pass conditions"):
        temporal_encoding(stim, data)


# ------------------------------------------------------------------------------------------ lags and HRF
def test_lag_features_respect_runs():
    X = np.arange(1, 7.0)[:, None]
    out = lag_features(X, [0, 1, -1], groups=[0, 0, 0, 1, 1, 1])
    assert out.tolist() == [[1, 0, 2], [2, 1, 3], [3, 2, 0], [4, 0, 5], [5, 4, 6], [6, 5, 0]]
    with pytest.raises(ConfigError, match="contiguous"):
        lag_features(X, [1], groups=[0, 1, 0, 1, 0, 1])


def test_planted_lags_recovered_across_runs():
    rng = np.random.default_rng(4)
    runs = np.repeat(np.arange(3), 200)
    X = rng.normal(size=(600, 3))
    W = rng.normal(size=(3, 2))
    Y = np.zeros((600, 2))
    for r in range(3):  # target 0 follows the features after 2 samples, target 1 after 5, within each run
        idx = np.flatnonzero(runs == r)
        Y[idx, 0] = lag_features(X[idx], [2]) @ W[:, 0]
        Y[idx, 1] = lag_features(X[idx], [5]) @ W[:, 1]
    Y += 0.5 * rng.normal(size=Y.shape)
    res = lagged_encoding(X, Y, lags=range(0, 10), dt=0.5, groups=runs, cv=3, inner_cv=2, alphas=np.logspace(-2, 3, 6))
    assert res.peak_lags.tolist() == [2, 5] and (res.scores > 0.7).all()
    np.testing.assert_allclose(res.kernel[2, :, 0], W[:, 0], atol=0.1)
    frame = res.to_frame()
    assert frame["peak_lag_s"].tolist() == [1.0, 2.5] and "peak lag" in res.summary() and res.plot().data


def test_planted_hrf_recovered_by_fir():
    rng = np.random.default_rng(5)
    dt = 1.0
    events = (rng.random(size=(800, 2)) < 0.1).astype(float) * rng.uniform(0.5, 1.5, size=(800, 2))
    w = np.array([1.0, -0.7])
    Y = hrf_features(events, dt) @ w[:, None] + 0.02 * rng.normal(size=(800, 1))
    lags = np.arange(0, 25)
    res = lagged_encoding(events, Y, lags=lags, dt=dt, alphas=np.logspace(-3, 2, 6))
    hrf = canonical_hrf(dt)[:25]
    for j in range(2):
        kernel = res.kernel[:, j, 0] / w[j]
        assert scipy.stats.pearsonr(kernel, hrf)[0] > 0.95
    assert res.peak_lags[0] == 5 and res.scores[0] > 0.9
    # the HRF-convolved features predict the response better than the same features without delay
    conv = encoding_scores(hrf_features(events, dt), Y, alphas=np.logspace(-3, 2, 6)).scores[0]
    raw = encoding_scores(events, Y, alphas=np.logspace(-3, 2, 6)).scores[0]
    assert conv > 0.95 > 0.5 > raw


def test_canonical_hrf_is_spm_double_gamma():
    h = canonical_hrf(0.1)
    t = np.arange(0, 32, 0.1)
    ref = scipy.stats.gamma.pdf(t, 6) - scipy.stats.gamma.pdf(t, 16) / 6
    np.testing.assert_allclose(h, ref / ref.sum(), rtol=1e-12)
    assert abs(t[np.argmax(h)] - 5.0) < 0.11 and 14 < t[np.argmin(h)] < 17 and h.min() < 0
    with pytest.raises(ConfigError):
        canonical_hrf(0.0)
