"""Neural assemblies: planted ground truth recovered one-to-one, a calibrated null, references for every piece.

References: planted assemblies in synthetic calcium-like data (interp.decompose.planted_assemblies);
numpy's eigenvalues of np.corrcoef; sklearn.metrics.roc_auc_score; brute force over all one-to-one
assignments for the Hungarian matching.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from interp import ConfigError, InputTypeError
from interp.decompose import (
    Assemblies,
    NegativeValueError,
    find_assemblies,
    marchenko_pastur_bound,
    match_assemblies,
    planted_assemblies,
)

PLANTED = dict(n_units=60, n_samples=3000, n_assemblies=4, size=8, event_rate=0.015, p_member=0.7, background=0.02,
               noise=0.3)


@pytest.fixture(scope="module")
def planted():
    return planted_assemblies(seed=3, **PLANTED)


@pytest.mark.parametrize("method", ["nmf", "ica"])
def test_planted_assemblies_are_recovered_one_to_one(planted, method):
    found = find_assemblies(planted.recording, method=method, n_permutations=99, seed=0)
    assert isinstance(found, Assemblies) and found.n_assemblies == 4  # chosen by the circular-shift bound
    match = match_assemblies(found, planted.members)
    frame = match.to_frame()
    assert (frame["found"] >= 0).all() and frame["found"].is_unique
    assert frame["auc"].min() >= 0.95, frame
    assert frame["jaccard"].min() >= 0.8, frame
    table = found.to_frame()
    assert table["significant"].all() and (table["p_value"] <= 0.01 + 1e-12).all()
    assert (table["spatial_p"] < 0.05).all() and (table["spatial_ratio"] < 0.8).all()  # planted groups are compact
    assert found.activations.dims == ("sample", "unit") and found.activations.shape == (3000, 4)
    np.testing.assert_array_equal(found.activations.coord("time"), planted.recording.coord("time"))
    # an assembly's activation time course peaks at its planted events
    for ref, j in match.pairs:
        course = found.activations.numpy()[:, j]
        events = planted.events[:, ref]
        assert course[events].mean() > 3 * course[~events].mean()
    assert "4 extracted, chosen by circular-shift" in found.summary()
    assert found.plot().data and "members" in found._repr_html_()


def test_marchenko_pastur_bound_and_eigenvalues_match_numpy(planted):
    x = planted.recording.numpy().astype(np.float64)
    found = find_assemblies(planted.recording, n_assemblies="marchenko-pastur", n_permutations=19)
    reference = np.sort(np.linalg.eigvalsh(np.corrcoef(x.T)))[::-1]
    np.testing.assert_allclose(found.eigenvalues, reference, atol=1e-9)
    bound = marchenko_pastur_bound(60, 3000)
    assert bound == pytest.approx((1 + np.sqrt(60 / 3000)) ** 2)
    assert found.n_assemblies == int((reference > bound).sum())
    assert find_assemblies(planted.recording, n_assemblies=2, n_permutations=19).n_assemblies == 2


def test_null_recordings_are_not_flagged_beyond_alpha():
    # independent calcium-like units (autocorrelated, no assemblies): the circular-shift count and the
    # per-assembly p-value must be calibrated; the Marchenko-Pastur count is not (it ignores autocorrelation)
    alpha, runs = 0.05, 20
    counted, flagged, mp_counted = 0, 0, 0
    for seed in range(runs):
        null = planted_assemblies(n_units=20, n_samples=600, n_assemblies=0, seed=500 + seed).recording
        found = find_assemblies(null, n_assemblies=1, method="ica", n_permutations=49, seed=seed, alpha=alpha)
        counted += int((found.eigenvalues > found.bounds["circular-shift"]).sum() > 0)
        mp_counted += int((found.eigenvalues > found.bounds["marchenko-pastur"]).sum() > 0)
        flagged += int(found.p_value[0] < alpha)
    assert counted / runs <= alpha + 0.15 and flagged / runs <= alpha + 0.15
    assert mp_counted / runs > 0.5  # why the default is the circular-shift bound


def test_no_assemblies_gives_an_empty_result():
    null = planted_assemblies(n_units=20, n_samples=600, n_assemblies=0, seed=1).recording
    found = find_assemblies(null, n_assemblies=0, n_permutations=9)
    assert found.n_assemblies == 0 and found.loadings.shape == (0, 20) and len(found.to_frame()) == 0
    assert "0 extracted" in found.summary()


def test_match_is_the_best_one_to_one_assignment():
    rng = np.random.default_rng(0)
    loadings = rng.random((4, 30))
    reference = [sorted(rng.choice(30, 6, replace=False).tolist()) for _ in range(3)]
    fake = Assemblies(members=[list(np.flatnonzero(w > 0.7)) for w in loadings], loadings=loadings)
    match = match_assemblies(fake, reference)
    from sklearn.metrics import roc_auc_score

    for i, r in enumerate(reference):
        label = np.isin(np.arange(30), r)
        for j in range(4):
            assert match.auc[i, j] == pytest.approx(roc_auc_score(label, loadings[j]))
            f = set(fake.members[j])
            assert match.jaccard[i, j] == pytest.approx(len(f & set(r)) / len(f | set(r)))
    best = max(itertools.permutations(range(4), 3), key=lambda cols: sum(match.auc[i, c] for i, c in enumerate(cols)))
    assert [j for _, j in sorted(match.pairs)] == list(best)
    # two references that both prefer the same component still get different ones
    twin = match_assemblies(fake, [reference[0], reference[0]])
    assert len({j for _, j in twin.pairs}) == 2
    jac = match_assemblies([[0, 1, 2], [5, 6]], [[5, 6, 7], [0, 1]], by="jaccard")
    assert sorted(jac.pairs) == [(0, 1), (1, 0)] and jac.to_frame()["jaccard"].tolist() == [2 / 3, 2 / 3]
    assert "2 of 2 reference assemblies matched" in jac.summary()
    with pytest.raises(ConfigError, match="needs the found assemblies' loadings"):
        match_assemblies([[0, 1]], [[0, 1]])
    with pytest.raises(InputTypeError):
        match_assemblies(fake, 5)


def test_negative_dff_handling_and_bad_input(planted):
    rec = planted.recording
    assert float(rec.data.min()) < 0  # noise makes dF/F negative
    with pytest.raises(NegativeValueError, match="negative='clip'"):
        find_assemblies(rec, negative="raise", n_permutations=9)
    shifted = find_assemblies(rec, negative="shift", n_permutations=19)
    assert shifted.options["negative"] == "shift" and shifted.n_assemblies == 4
    assert match_assemblies(shifted, planted.members).to_frame()["auc"].min() > 0.9
    z = find_assemblies(rec, members=2.0, n_permutations=19)  # mean + 2 SD rule
    assert all(len(m) >= 1 for m in z.members)
    for bad in (dict(method="pca"), dict(negative="abs"), dict(n_assemblies="mp"), dict(n_permutations=0),
                dict(alpha=1.5), dict(members="kmeans"), dict(n_assemblies=-1)):
        with pytest.raises(ConfigError):
            find_assemblies(rec, **bad)
    with pytest.raises(InputTypeError):
        find_assemblies([[1, 2], [3, 4]])


@pytest.mark.parametrize("negative", ["clip", "shift"])
def test_nmf_finds_a_planted_assembly_in_noisy_dff_not_its_complement(negative):
    # dF/F below baseline half the time, one assembly of units 2, 5, 7: NMF on the shifted or clipped traces
    # scaled by their SD returned the other nine units (its first component was the baselines)
    for seed in range(3):
        rng = np.random.default_rng(seed)
        X = rng.normal(0, 0.3, (1500, 12))
        X[np.ix_(rng.random(1500) < 0.05, [2, 5, 7])] += 3.0
        found = find_assemblies(X, method="nmf", negative=negative, n_permutations=19, seed=seed)
        assert found.members == [[2, 5, 7]], (seed, found.members)
