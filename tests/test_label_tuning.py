"""Tuning curves and cosine direction tuning: planted ground truth, references, null rates."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats as sps
from scipy.signal import lfilter
from sklearn.linear_model import LinearRegression

from interp import Activations
from interp.errors import ConfigError, MismatchError
from interp.label import direction_tuning, tuning_curves

N_TRIALS, T = 48, 40
N_TUNED, N_UNTUNED = 20, 100
AMPLITUDE, BASELINE, NOISE_SD = 4.0, 10.0, 1.0  # depth 0.4, SNR (amplitude / AR noise sd) 4


def _reaching(seed=0):
    """Centre-out reaching: 48 trials of 40 samples toward 8 targets, bell-shaped speed, 15° direction
    jitter; 20 units cosine-tuned (random PDs) and 100 untuned, all with AR(1) noise (rho 0.9)."""
    rng = np.random.default_rng(seed)
    targets = rng.permutation(np.repeat(np.arange(8), N_TRIALS // 8))
    phi = np.repeat(np.deg2rad(targets * 45.0), T) + np.deg2rad(15) * rng.normal(size=N_TRIALS * T)
    speed = np.tile(np.sin(np.linspace(0, np.pi, T + 2)[1:-1]) ** 2, N_TRIALS)
    vx, vy = speed * np.cos(phi), speed * np.sin(phi)
    pd_true = rng.uniform(0, 360, N_TUNED)
    e = rng.normal(size=(N_TRIALS * T, N_TUNED + N_UNTUNED)) * NOISE_SD * np.sqrt(1 - 0.9 ** 2)
    noise = lfilter([1.0], [1.0, -0.9], e, axis=0)
    rate = BASELINE + noise
    rate[:, :N_TUNED] += AMPLITUDE * np.cos(phi[:, None] - np.deg2rad(pd_true)[None, :])
    rec = Activations(torch.tensor(rate), ("sample", "unit"),
                      {"sample": {"trial": np.repeat(np.arange(N_TRIALS), T), "vx": vx, "vy": vy,
                                  "target": np.repeat(targets, T)}},
                      {"source": "synthetic reaching"})
    return rec, pd_true


def _angle_error(a, b):
    return np.abs((np.asarray(a) - np.asarray(b) + 180) % 360 - 180)


def test_planted_cosine_tuning_is_recovered_and_untuned_units_are_not_flagged():
    rec, pd_true = _reaching(0)
    res = direction_tuning(rec, x="vx", y="vy", groups="trial", n_permutations=1000, seed=0)
    f = res.to_frame()
    assert res.null == "effective_n"  # AR noise runs across trials and the direction varies within them
    tuned, untuned = f.iloc[:N_TUNED], f.iloc[N_TUNED:]
    # preferred directions within 5 degrees at SNR 4 (amplitude / sd of the AR(1) noise, rho 0.9), 48 trials of 40
    assert _angle_error(tuned["preferred_direction_deg"], pd_true).max() < 5
    assert ((tuned["preferred_direction_deg"] >= 0) & (tuned["preferred_direction_deg"] < 360)).all()
    np.testing.assert_allclose(tuned["modulation_depth"], AMPLITUDE / BASELINE, atol=0.05)
    assert tuned["tuned"].all()
    assert untuned["tuned"].mean() <= 0.05
    assert (untuned["p_value"] < 0.05).mean() <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / N_UNTUNED)
    label = f.loc[0, "label"]
    assert label.startswith("cosine-tuned, PD ") and "°, depth 0.4" in label
    assert set(res.labels()) == set(range(N_TUNED))
    # the documented contrast: permuting single samples makes autocorrelated untuned units look tuned
    naive = direction_tuning(rec, x="vx", y="vy", null="permutation", n_permutations=1000, seed=0).to_frame()
    assert (naive.iloc[N_TUNED:]["p_value"] < 0.05).mean() > 0.3


def test_cosine_fit_matches_least_squares_reference():
    rng = np.random.default_rng(1)
    theta = rng.uniform(0, 2 * np.pi, 300)
    Y = rng.normal(size=(300, 3)) + np.c_[np.cos(theta), 2 * np.sin(theta), np.zeros(300)]
    res = direction_tuning(Y, angle=theta, n_permutations=99).to_frame()
    D = np.c_[np.cos(theta), np.sin(theta)]
    for u in range(3):
        lr = LinearRegression().fit(D, Y[:, u])
        assert res.loc[u, "baseline"] == pytest.approx(lr.intercept_, abs=1e-10)
        assert res.loc[u, "amplitude"] == pytest.approx(np.hypot(*lr.coef_), abs=1e-10)
        assert res.loc[u, "preferred_direction_deg"] == pytest.approx(np.rad2deg(np.arctan2(lr.coef_[1], lr.coef_[0])) % 360, abs=1e-8)
        assert res.loc[u, "r2"] == pytest.approx(lr.score(D, Y[:, u]), abs=1e-10)


def test_head_direction_cells_with_angles_in_degrees_and_circular_statistics():
    """Poisson spike counts of head-direction cells (von Mises tuning) against head direction in degrees."""
    rng = np.random.default_rng(2)
    n = 4000
    hd = np.rad2deg(np.cumsum(rng.normal(0, 0.2, n))) % 360  # a random walk of the head
    prefs = np.array([30.0, 200.0])
    lam = 0.2 + 2.0 * np.exp(3 * (np.cos(np.deg2rad(hd[:, None] - prefs[None])) - 1))
    spikes = rng.poisson(np.c_[lam, np.full(n, 1.0)])  # two HD cells and a flat cell
    rec = Activations(torch.tensor(spikes, dtype=torch.float32), ("sample", "unit"),
                      {"sample": {"hd": hd}, "unit": {"name": ["hd1", "hd2", "flat"]}}, {"dt": 0.02})
    res = direction_tuning(rec, angle="hd", degrees=True, n_permutations=500, seed=0)
    f = res.to_frame().set_index("name")
    assert res.null == "effective_n"  # an autocorrelated time series without trials
    assert list(f["tuned"]) == [True, True, False]
    assert _angle_error(f.loc[["hd1", "hd2"], "mean_direction_deg"], prefs).max() < 10
    assert _angle_error(f.loc[["hd1", "hd2"], "preferred_direction_deg"], prefs).max() < 10
    assert (f.loc[["hd1", "hd2"], "resultant_length"] > 0.3).all() and f.loc["flat", "resultant_length"] < 0.1
    z, p = res.pd_uniformity()  # Rayleigh test of the two preferred directions (30 and 200 deg: no clustering)
    assert p > 0.05 and z == pytest.approx(2 * np.hypot(*np.mean([np.cos(np.deg2rad(f.loc[["hd1", "hd2"],
                                           "preferred_direction_deg"])), np.sin(np.deg2rad(f.loc[["hd1", "hd2"],
                                           "preferred_direction_deg"]))], 1)) ** 2)
    assert "2 of 3 units cosine-tuned" in res.summary()
    fig = res.plot()
    assert fig.data[0].type == "scatterpolar" and "<table" in res._repr_html_()


def test_model_units_and_bad_input():
    rng = np.random.default_rng(3)
    theta = rng.uniform(-np.pi, np.pi, 500)
    acts = Activations(torch.tensor(np.c_[np.cos(theta - 1.0), rng.normal(size=500)] + 0.3 * rng.normal(size=(500, 2))),
                       ("sample", "unit"))
    f = direction_tuning(acts, angle=theta, n_permutations=200).to_frame()
    assert f.loc[0, "tuned"] and not f.loc[1, "tuned"]
    assert _angle_error(f.loc[0, "preferred_direction_deg"], np.rad2deg(1.0)) < 5
    assert np.isnan(f.loc[0, "modulation_depth"]) and "amplitude" in f.loc[0, "label"]  # signed activity: no depth
    assert np.isnan(f.loc[0, "resultant_length"])  # negative activity: no rate-weighted circular statistics
    with pytest.raises(ConfigError, match="either x= and y="):
        direction_tuning(acts, x=theta, y=theta, angle=theta)
    with pytest.raises(ConfigError, match="span the circle"):
        direction_tuning(acts, angle=np.zeros(500))
    ragged = np.repeat(np.arange(3), [100, 200, 200])
    with pytest.raises(MismatchError, match="different sizes"):  # the caller's null: trials cannot swap sample by sample
        direction_tuning(acts, angle=theta, groups=ragged, null="group", n_bootstraps=0)
    assert direction_tuning(acts, angle=theta, groups=ragged, n_bootstraps=0).null == "effective_n"  # auto: valid


def test_tuning_curves_match_binned_means_and_resample_trials():
    rec, _ = _reaching(4)
    tc = tuning_curves(rec, "target", groups="trial", n_bootstraps=300)
    target = rec.coord("target")
    X = rec.data.numpy()
    np.testing.assert_allclose(tc.mean[:, 3], X[target == 3].mean(0), rtol=1e-12)
    assert tc.categorical and list(tc.bins) == list(range(8)) and "48 trials" in tc.resampled
    assert (tc.low <= tc.mean).all() and (tc.mean <= tc.high).all()
    # the trial bootstrap interval matches the t-interval of the trial means of the 6 trials per target
    trial_means = X[target == 3].reshape(6, T, -1).mean(1)
    half = sps.t.ppf(0.975, 5) * trial_means.std(0, ddof=1) / np.sqrt(6)
    ratio = (tc.high[:, 3] - tc.low[:, 3]) / (2 * half)
    assert 0.5 < np.median(ratio) < 1.3
    # continuous variable: equal-width bins, as scipy's binned_statistic
    speed = np.hypot(rec.coord("vx"), rec.coord("vy"))
    tc2 = tuning_curves(rec.data.numpy(), speed, bins=5, n_bootstraps=100)
    ref = sps.binned_statistic(speed, X[:, 0], "mean", bins=5)
    np.testing.assert_allclose(tc2.mean[0], ref.statistic, rtol=1e-10)
    assert "blocks" in tc2.resampled  # autocorrelated samples without trials: block bootstrap
    assert len(tc.to_frame()) == X.shape[1] * 8 and "tuning curves" in tc.summary()
    assert tc.plot().data


def test_tuning_curve_intervals_cover_a_planted_curve_95_percent_with_autocorrelated_activity():
    # AR(1) activity (rho 0.95) running on across 40 trials, a planted curve over 4 bins of a slow AR(1)
    # speed: the intervals must hold the planted bin means in ~95% of bins (the bootstrap over runs of
    # trials held them in 92-93%)
    def ar1(n, c, rng):
        e = rng.normal(size=(n, c))
        e[0] /= np.sqrt(1 - 0.95 ** 2)
        return lfilter([1.0], [1.0, -0.95], e, axis=0)

    curve = np.array([0.0, 1.0, 2.0, 1.0])
    hits = []
    for seed in range(60):
        rng = np.random.default_rng(seed)
        speed = ar1(1200, 1, rng)[:, 0]
        edges = np.linspace(speed.min(), speed.max(), 5)
        code = np.clip(np.searchsorted(edges, speed, side="right") - 1, 0, 3)
        X = ar1(1200, 8, rng) + curve[code][:, None]
        rec = Activations(torch.tensor(X), ("sample", "unit"),
                          {"sample": {"trial": np.repeat(np.arange(40), 30), "speed": speed}})
        tc = tuning_curves(rec, "speed", bins=4, groups="trial", n_bootstraps=20, seed=seed)
        ok = np.isfinite(tc.low)
        hits.append(((tc.low <= curve) & (tc.high >= curve))[ok])
    coverage = float(np.concatenate(hits).mean())
    assert 0.935 <= coverage <= 0.965, coverage
    assert tc.resampled.startswith("autocorrelation-corrected") and "CIs: autocorrelation" in tc.summary()


def test_tuning_curve_interval_df_does_not_grow_with_unrecorded_time():
    # issue 19: with gaps between trials n_eff grows (samples across a gap are nearly independent) but the
    # autocovariance behind the variance is estimated from no more pairs; t(n_eff) missed 5.4% of bins on 300
    # gapped null data sets, t(n_eff * n / span) 5.1%. The interval's t quantile follows the latter.
    from interp.stats import sample_layout, weighted_mean_variance

    rng = np.random.default_rng(0)
    sizes, gaps = np.full(40, 30), rng.integers(10, 31, 40)
    keep = np.concatenate([np.r_[np.zeros(g, bool), np.ones(m, bool)] for g, m in zip(gaps, sizes)])
    e = rng.normal(size=(len(keep), 5))
    e[0] /= np.sqrt(1 - 0.95 ** 2)
    X = lfilter([1.0], [1.0, -0.95], e, axis=0)[keep]
    speed = lfilter([1.0], [1.0, -0.95], rng.normal(size=len(keep)))[keep]
    trial = np.repeat(np.arange(40), sizes)
    rec = Activations(torch.tensor(X), ("sample", "unit"),
                      {"sample": {"trial": trial, "speed": speed, "time": np.flatnonzero(keep) * 0.1}})
    tc = tuning_curves(rec, "speed", bins=4, groups="trial", n_bootstraps=20, seed=0)
    assert tc.resampled.startswith("autocorrelation-corrected") and "across the gaps" in tc.resampled
    edges = np.linspace(speed.min(), speed.max(), 5)
    code = np.clip(np.searchsorted(edges, speed, side="right") - 1, 0, 3)
    W = (code[:, None] == np.arange(4)) / np.bincount(code, minlength=4)
    _, positions, _ = sample_layout(rec, len(X), groups=trial)
    var, n_eff = weighted_mean_variance(X, W, trial, positions)
    span = int(positions[-1]) + 1
    assert span > 1.4 * len(X)  # the gaps make up a third of the time
    half = sps.t.ppf(0.975, n_eff * len(X) / span)[:, None] * np.sqrt(var)
    np.testing.assert_allclose(tc.high - tc.mean, half, rtol=1e-10)
    assert ((tc.high - tc.mean) > sps.t.ppf(0.975, n_eff)[:, None] * np.sqrt(var)).all()  # wider than t(n_eff)


def test_tuning_curve_interval_over_independent_trials_uses_the_effective_number_of_trials():
    # issue 19: with independent trials (activity restarting each trial) the bootstrap SE was referred to t(G - 1),
    # G the trials reaching a bin; trials that reach an edge bin with one or two samples count little, and 5.9% of
    # bins missed the true mean over 300 null data sets. t(Kish effective trials - 1), sum(n_g)^2 / sum(n_g^2): 4.8%.
    rng = np.random.default_rng(0)
    X = np.concatenate([lfilter([1.0], [1.0, -0.95], rng.normal(size=(30, 4)), axis=0) for _ in range(40)])
    speed = np.concatenate([lfilter([1.0], [1.0, -0.95], rng.normal(size=30)) for _ in range(40)])
    trial = np.repeat(np.arange(40), 30)
    rec = Activations(torch.tensor(X), ("sample", "unit"), {"sample": {"trial": trial, "speed": speed}})
    tc = tuning_curves(rec, "speed", bins=4, groups="trial", n_bootstraps=200, seed=0)
    assert tc.resampled == "40 trials"
    edges = np.linspace(speed.min(), speed.max(), 5)
    code = np.clip(np.searchsorted(edges, speed, side="right") - 1, 0, 3)
    per = [np.bincount(trial[code == k]).astype(float) for k in range(4)]
    G = np.array([(q > 0).sum() for q in per], dtype=float)
    G_eff = np.array([q.sum() ** 2 / (q ** 2).sum() for q in per])
    assert (G_eff < G - 3).all()  # some trials reach each bin with few samples
    half = sps.t.ppf(0.975, G_eff - 1) * np.nanstd(tc.samples, 0) * np.sqrt(G / (G - 1))
    np.testing.assert_allclose(tc.high - tc.mean, half, rtol=1e-10)
