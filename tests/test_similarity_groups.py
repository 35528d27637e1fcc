"""Trial-aware similarity statistics: groups= in permutation tests and bootstraps of interp.similarity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import lfilter

from interp import Activations
from interp.similarity import bootstrap_ci, permutation_test, rdm, rdm_bootstrap
from interp.similarity.rsa import compare_rdms


def _ar_patterns(n_trials, T, channels, rho, rng):
    """Independent AR(1) channels restarted in every trial: (n_trials * T, channels)."""
    e = rng.normal(size=(n_trials, T, channels))
    e[:, 0] /= np.sqrt(1 - rho ** 2)
    return lfilter([1.0], [1.0, -rho], e, axis=1).reshape(n_trials * T, channels)


def test_grouped_permutation_test_is_calibrated_where_sample_permutation_is_not():
    """CKA between two independent sets of autocorrelated channels, in trials: swapping whole trials gives
    p < 0.05 in about 5% of data sets; permuting single samples in far more."""
    rng = np.random.default_rng(0)
    n_trials, T = 12, 25
    trial = np.repeat(np.arange(n_trials), T)
    grouped, naive = [], []
    for d in range(60):
        X = _ar_patterns(n_trials, T, 4, 0.95, rng)
        Y = _ar_patterns(n_trials, T, 4, 0.95, rng)
        grouped.append(permutation_test(X, Y, "cka", n_permutations=49, groups=trial, seed=d).p_value)
        naive.append(permutation_test(X, Y, "cka", n_permutations=49, seed=d).p_value)
    rate = np.mean(np.array(grouped) < 0.05)
    assert rate <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 60), rate
    assert np.mean(np.array(naive) < 0.05) > 0.3


def test_time_series_activations_default_to_circular_shifts_and_group_coordinate_names():
    rng = np.random.default_rng(1)
    X = _ar_patterns(1, 400, 3, 0.9, rng)
    ts = Activations(torch.tensor(X), ("sample", "unit"), {"sample": {"trial": np.repeat(np.arange(8), 50)}},
                     {"dt": 0.01})
    res = permutation_test(ts, X + rng.normal(size=X.shape), "cka", n_permutations=50)
    assert res.method == "circular" and res.p_value < 0.05
    res = permutation_test(ts, X + rng.normal(size=X.shape), "cka", n_permutations=50, groups="trial")
    assert res.method == "group"


def test_grouped_bootstrap_ci_covers_and_is_wider_than_sample_bootstrap():
    rng = np.random.default_rng(2)
    trial = np.repeat(np.arange(10), 20)
    shared = rng.normal(size=(10, 6))[trial]  # a trial effect shared by both sides
    X = shared + 0.3 * rng.normal(size=(200, 6))
    Y = shared @ rng.normal(size=(6, 6)) + 0.3 * rng.normal(size=(200, 6))
    plain = bootstrap_ci(X, Y, "cka", n_bootstraps=200)
    grouped = bootstrap_ci(X, Y, "cka", n_bootstraps=200, groups=trial)
    assert grouped.over == "groups" and plain.over == "stimuli"
    assert grouped.high - grouped.low > plain.high - plain.low
    assert grouped.low <= grouped.estimate <= grouped.high


def test_rdm_tests_with_stimulus_groups():
    rng = np.random.default_rng(3)
    Xs = rng.normal(size=(24, 10))
    model = rdm(torch.tensor(Xs))
    data = torch.stack([rdm(torch.tensor(Xs + rng.normal(size=Xs.shape))) for _ in range(3)])
    groups = np.repeat(np.arange(6), 4)  # 6 blocks of 4 stimuli
    res = permutation_test(model, data[0], "spearman", n_permutations=200, groups=groups)
    assert res.method == "group" and res.p_value < 0.05
    assert res.observed == pytest.approx(float(compare_rdms(model, data[0], "spearman")))
    boot = rdm_bootstrap(model, data, "spearman", n_bootstraps=50, groups=groups)
    assert boot.low <= boot.estimate <= boot.high
