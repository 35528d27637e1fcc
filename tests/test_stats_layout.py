"""The autocorrelation-corrected test reads what a recording knows about its samples' order in time
(issue 19): its own ``trial`` coordinate when ``groups`` is not given (activity restarting every trial) and
the gaps of its ``time`` coordinate (lags counted in time). Each test compares with the sample-order
estimate, which the calibration run showed too liberal on these designs."""

from __future__ import annotations

import numpy as np
import torch
from scipy.signal import lfilter

from interp import Activations
from interp.label import concept_test
from interp.stats import autocorrelated_wald, sample_layout, time_positions


def _ar1(n, cols, rng, rho=0.95):
    e = rng.normal(size=(n, cols))
    e[0] /= np.sqrt(1 - rho ** 2)
    return lfilter([1.0], [1.0, -rho], e, axis=0)


def test_time_positions_place_samples_on_the_grid_and_ignore_jitter():
    assert time_positions([0.0, 0.1, 0.2, 0.5, 0.6]).tolist() == [0, 1, 2, 5, 6]
    assert time_positions([0.0, 0.11, 0.19, 0.3]) is None  # jitter, no gap
    assert time_positions([0.0, 0.1, 0.1, 0.2]) is None  # not increasing: samples taken as consecutive
    assert time_positions(np.r_[np.arange(10), 1e6]).tolist()[-1] == 9 + 6  # a huge pause is capped
    spread = time_positions(np.repeat(np.arange(200) * 1000.0, 10) + np.tile(np.arange(10), 200))  # 200 trials
    assert spread[-1] < 4 * 2000 and (np.diff(spread) >= 1).all()  # the grid stays within 4x the samples


def test_sample_layout_reads_the_trial_coordinate_and_the_gaps_in_time():
    trial = np.repeat(np.arange(4), 5)
    time = np.concatenate([np.arange(5) + 10 * g for g in range(4)]) * 0.1
    rec = Activations(torch.zeros(20, 2), ("sample", "unit"), {"sample": {"trial": trial, "time": time}})
    segments, positions, note = sample_layout(rec, 20)
    assert segments.tolist() == trial.tolist() and positions[5] == 10 and "4 trials" in note
    no_trial = Activations(torch.zeros(20, 2), ("sample", "unit"), {"sample": {"time": time}})
    segments, _, note = sample_layout(no_trial, 20)
    assert segments.tolist() == trial.tolist() and "stretches between gaps" in note
    assert sample_layout(np.zeros((20, 2)), 20)[:2] == (None, None)
    assert sample_layout(np.zeros((20, 2)), 20, groups=trial) == (None, None, "")  # the caller gave trials


def test_a_recording_without_trials_or_times_gets_a_hac_variance_and_says_so():
    # issue 19: nothing in a bare array marks where activity restarts, and the one-series estimate is then liberal
    # (_rates below: > 6.5% at 0.05); the layout says so, and concept_test uses a HAC variance and says that
    from interp.stats import hac_moments, wald_p_value
    from interp.stats.autocorr import HAC_NOTE
    from interp.stats.design import STATIONARY_NOTE

    rng = np.random.default_rng(5)
    X = np.concatenate([_ar1(20, 3, rng) for _ in range(30)])
    speed = np.concatenate([_ar1(20, 1, rng) for _ in range(30)])[:, 0]
    assert sample_layout(X, len(X))[2] == STATIONARY_NOTE
    bare = Activations(torch.tensor(X), ("sample", "unit"), {"sample": {"speed": speed}})
    assert sample_layout(bare, len(X))[2] == STATIONARY_NOTE  # a recording without trial or time coordinates
    for res in (concept_test(X, {"speed": speed}), concept_test(bare, ["speed"])):
        assert res.null == "effective_n" and HAC_NOTE in res.reason and "groups=" in res.reason, res.reason
        np.testing.assert_allclose(res.frame["p_value"].to_numpy(), wald_p_value(*hac_moments(X, speed)[:3])[1])
    trial = np.repeat(np.arange(30), 20)
    assert "HAC" not in concept_test(X, {"speed": speed}, groups=trial, null="effective_n").reason


def test_concept_test_on_bare_arrays_of_restarting_trials_is_calibrated():
    # 2,000 tests: AR(1) units and annotation restarting every trial, handed over as bare arrays. The stationary
    # one-series variance rejected 9.6-10.6% at 0.05 (benchmarks/results/bare_arrays.md); the HAC variance ~5%
    rng = np.random.default_rng(7)
    p = []
    for _ in range(10):
        X = np.concatenate([_ar1(30, 200, rng) for _ in range(40)])
        y = np.concatenate([_ar1(30, 1, rng) for _ in range(40)])[:, 0]
        p.append(concept_test(X, {"y": y}).frame["p_value"].to_numpy())
    rate = float((np.concatenate(p) < 0.05).mean())
    assert 0.03 <= rate <= 0.065, rate


def _rates(rng, reps=10, units=200, trials=40, T=30):
    out = {"reset, trials known": [], "reset, one series": [], "gaps, in time": [], "gaps, in samples": []}
    trial = np.repeat(np.arange(trials), T)
    for _ in range(reps):
        X = np.concatenate([_ar1(T, units, rng) for _ in range(trials)])
        y = np.concatenate([_ar1(T, 1, rng) for _ in range(trials)])
        out["reset, trials known"].append(autocorrelated_wald(X, y, trial)[1])
        out["reset, one series"].append(autocorrelated_wald(X, y)[1])
        keep = np.concatenate([np.r_[np.zeros(g, bool), np.ones(T, bool)] for g in rng.integers(10, 31, trials)])
        Xg, yg = _ar1(len(keep), units, rng)[keep], _ar1(len(keep), 1, rng)[keep]
        pos = time_positions(np.flatnonzero(keep) * 0.1)
        out["gaps, in time"].append(autocorrelated_wald(Xg, yg, positions=pos)[1])
        out["gaps, in samples"].append(autocorrelated_wald(Xg, yg)[1])
    return {k: float((np.concatenate(v) < 0.05).mean()) for k, v in out.items()}


def test_segments_and_time_positions_calibrate_the_corrected_test():
    # untuned AR(1) units (rho 0.95) against an independent AR(1) annotation, 2,000 tests per design
    rates = _rates(np.random.default_rng(1))
    assert 0.035 <= rates["reset, trials known"] <= 0.065, rates
    assert 0.035 <= rates["gaps, in time"] <= 0.065, rates
    assert rates["reset, one series"] > 0.065, rates  # the stationary estimate is liberal when trials restart
    assert rates["gaps, in samples"] > rates["gaps, in time"], rates


def test_concept_test_without_groups_uses_the_recordings_trials_and_says_so():
    rng = np.random.default_rng(3)
    trial = np.repeat(np.arange(30), 20)
    X = np.concatenate([_ar1(20, 3, rng) for _ in range(30)])
    speed = np.concatenate([_ar1(20, 1, rng) for _ in range(30)])[:, 0]
    rec = Activations(torch.tensor(X), ("sample", "unit"), {"sample": {"trial": trial, "speed": speed}})
    res = concept_test(rec, ["speed"])
    assert res.null == "effective_n" and "30 trials" in res.reason
    p_rec = res.frame["p_value"].to_numpy()
    p_arr = concept_test(X, {"speed": speed}).frame["p_value"].to_numpy()  # a bare array: nothing is known
    p_seg = autocorrelated_wald(X, speed, trial)[1]
    np.testing.assert_allclose(p_rec, p_seg, rtol=1e-10)
    assert not np.allclose(p_rec, p_arr)


def test_direction_tuning_without_groups_reads_the_recording_too():
    from interp.label import direction_tuning

    rng = np.random.default_rng(4)
    trial = np.repeat(np.arange(30), 20)
    X = np.concatenate([_ar1(20, 3, rng) for _ in range(30)])
    angle = np.concatenate([np.cumsum(rng.normal(0, 0.2, 20)) for _ in range(30)])  # varies within trials
    rec = Activations(torch.tensor(X), ("sample", "unit"), {"sample": {"trial": trial, "angle": angle}})
    res = direction_tuning(rec, angle="angle", n_bootstraps=0)
    assert res.null == "effective_n" and "30 trials" in res.reason, res.reason
    D = np.c_[np.cos(angle), np.sin(angle)]
    np.testing.assert_allclose(res.frame["p_value"].to_numpy(), autocorrelated_wald(X, D, trial)[1], rtol=1e-10)
