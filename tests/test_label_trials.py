"""Trial-aware label statistics: untuned AR(1) data in trials must not be labeled (issue 13 acceptance).

The contrast the tests also document: a plain sample permutation, the old default of
``category_selectivity``, flags most untuned units of the same data.

BH-FDR can only reject when the smallest possible p-value, ``1 / (1 + n_permutations)``, times the
number of tests is below alpha, so the tests use ``n_permutations >= n_tests / alpha`` (here 24 units x
8 targets = 192 tests, 4,000 permutations); otherwise "no unit flagged" would hold whatever the null.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import lfilter

from interp import Activations
from interp.errors import ConfigError, MismatchError
from interp.label import category_selectivity, concept_test, label_recordings

N_TRIALS, T, UNITS, ALPHA = 48, 30, 24, 0.05
P = 4000


def _ar1(n, cols, rho, rng):
    e = rng.normal(size=(n, cols))
    e[0] /= np.sqrt(1 - rho ** 2)
    return lfilter([1.0], [1.0, -rho], e, axis=0)


def _untuned(seed=0, rho=0.95):
    """One continuous AR(1) recording (rho 0.95) cut into 48 trials of 30 samples; 8 reach targets
    (6 trials each, random order), an AR(1) hand speed and a per-trial reward flag, all independent of
    the units."""
    rng = np.random.default_rng(seed)
    n = N_TRIALS * T
    X = _ar1(n, UNITS, rho, rng)
    trial = np.repeat(np.arange(N_TRIALS), T)
    target = np.repeat(rng.permutation(np.repeat(np.arange(8), N_TRIALS // 8)), T)
    speed = _ar1(n, 1, rho, rng)[:, 0]
    reward = np.repeat(rng.random(N_TRIALS) < 0.5, T)
    return Activations(torch.tensor(X), ("sample", "unit"),
                       {"sample": {"trial": trial, "target": target, "speed": speed, "reward": reward},
                        "unit": {"name": [f"u{i}" for i in range(UNITS)]}}, {"source": "synthetic"})


def _flagged(tests):
    """Fraction of units with at least one test at q < alpha."""
    return tests.frame.groupby("unit")["significant"].any().mean()


def test_category_selectivity_with_trials_keeps_false_positives_at_alpha():
    rec = _untuned(0)
    grouped = category_selectivity(rec, "target", groups="trial", n_permutations=P, seed=1)
    assert grouped.null == "group"
    assert _flagged(grouped) <= ALPHA + 0.05
    # per-test p-values are calibrated too (192 tests, not independent)
    assert (grouped.frame["p_value"] < ALPHA).mean() <= ALPHA + 0.05
    # the documented contrast: single-sample permutation (the old default) flags most untuned units
    naive = category_selectivity(rec, "target", null="permutation", n_permutations=1000, seed=1)
    assert _flagged(naive) > 0.5, _flagged(naive)
    # without groups the default on autocorrelated samples is not a sample permutation either
    auto = category_selectivity(rec.data.numpy(), rec.coord("target"), n_permutations=200, seed=1)
    assert auto.null == "effective_n" and "autocorrelated" in auto.reason  # the corrected test, not a shift


def test_concept_tests_with_trials_keep_false_positives_at_alpha():
    rec = _untuned(1)
    tests = concept_test(rec, ["speed", "reward", "target"], groups="trial", n_permutations=2000, seed=2)  # 72 tests
    # trial-constant reward and target: the trials' values are permuted; speed runs on across trials with the
    # activity, so no permutation is exact: the autocorrelation-corrected test
    assert tests.frame.groupby("concept")["null"].first().to_dict() == {"speed": "effective_n", "reward": "group",
                                                                        "target": "group"}
    assert set(tests.frame["kind"]) == {"correlation", "auroc", "mi"}
    for concept in ("speed", "reward", "target"):
        sub = tests.frame[tests.frame["concept"] == concept]
        assert sub["significant"].mean() <= ALPHA + 0.05, concept
        assert (sub["p_value"] < ALPHA).mean() <= ALPHA + 0.1, concept  # 24 tests per concept
    naive = concept_test(rec, ["speed", "reward", "target"], null="permutation", n_permutations=2000, seed=2)
    assert _flagged(naive) > 0.5


def test_planted_selectivity_is_still_found_with_trials():
    rec = _untuned(2)
    target = rec.coord("target")
    X = rec.data.clone()
    X[:, 3] += torch.tensor(6.0 * (target == 5))  # unit 3 fires for target 5 (AR sd 3.2)
    tuned = rec.replace(data=X)
    t = category_selectivity(tuned, "target", groups="trial", n_permutations=P, seed=0)
    sig = t.significant(direction="+")
    assert set(zip(sig["unit"], sig["concept"])) == {(3, "5")}


def test_ragged_trials_and_time_locked_annotations():
    rng = np.random.default_rng(0)
    sizes = rng.integers(30, 50, size=30)
    trial = np.repeat(np.arange(30), sizes)
    X = _ar1(len(trial), 10, 0.95, rng)
    target = np.repeat(rng.integers(0, 4, 30), sizes)
    t = category_selectivity(X, target, groups=trial, n_permutations=200)  # constant within trials: any sizes
    assert t.null == "group" and _flagged(t) <= 0.2
    speed = _ar1(len(trial), 1, 0.95, rng)[:, 0]
    with pytest.raises(MismatchError, match="different sizes"):  # the caller's null cannot swap ragged trials
        concept_test(X, {"speed": speed}, groups=trial, null="group", n_permutations=50)
    assert concept_test(X, {"speed": speed}, groups=trial, n_permutations=50).null == "effective_n"
    circ = concept_test(X, {"speed": speed}, groups=trial, null="circular", n_permutations=200)
    assert circ.null == "circular"
    locked = np.tile(np.arange(40) >= 20, 30)  # the same in every trial: swapping trials cannot test it
    with pytest.raises(ConfigError, match="time-locked"):
        concept_test(_ar1(1200, 5, 0.9, rng), {"go": locked}, groups=np.repeat(np.arange(30), 40), null="group",
                     n_permutations=50)
    # auto: the activity runs on across trials, so the time-locked flag gets the autocorrelation-corrected test
    auto = concept_test(_ar1(1200, 5, 0.9, rng), {"go": locked}, groups=np.repeat(np.arange(30), 40))
    assert auto.null == "effective_n" and not auto.frame["significant"].any()


def test_label_recordings_with_trials_splits_by_trial_and_scores_categories_by_decoding(tmp_path):
    rec = _untuned(3)
    target = rec.coord("target")
    X = rec.data.clone()
    X[:, 0] += torch.tensor(np.array([0.0, 0, 8, 0, 0, 0, -8, 0])[target])  # unit 0 tuned to targets 2 and 6
    res = label_recordings(rec.replace(data=X), ["target", "speed"], groups="trial", n_permutations=2000,
                           fit_fraction=0.75, seed=0)
    frame = res.to_frame().set_index("name")
    assert "target-selective" in frame.loc["u0", "label"] and "↑" not in frame.loc["u0", "label"]
    assert frame.loc["u0", "score_kind"] == "held-out balanced decoding accuracy"
    assert frame.loc["u0", "chance"] == 1 / 8 and frame.loc["u0", "score"] > 1 / 8 + 0.1
    labeled = (frame["label"] != "no significant behaviour tuning").mean()
    assert labeled <= ALPHA + 0.05
    assert "trials" in res.notes[0] and "group" in res.notes[0] and "effective_n" in res.notes[0]
    # report cards are titled from the recording's own attributes, categorical labels carry no arrow
    from interp.label import build_label_report, recording_title

    html = build_label_report(res, tmp_path / "labels.html").read_text()
    assert "Trace (synthetic, first 400 samples)" in html and "Trace (," not in html
    assert recording_title(rec.replace(attrs={})) == "recording"
    assert recording_title(rec.replace(attrs={"source": "mc_maze", "subject": "Jenkins"})) == "mc_maze, subject Jenkins"
