"""Concept tests, FDR, enrichment, place cells, and the recorded-data acceptance checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats as sps
from sklearn.metrics import mutual_info_score, roc_auc_score

from interp import Activations
from interp.errors import ConfigError, DimensionError, MismatchError
from interp.label.concepts import (
    concept_test,
    enrichment_test,
    neuron_class,
    pooled_concept_test,
)
from interp.label.selectivity import category_selectivity
from interp.label.spatial import place_fields, spatial_information


def _ar1(n, units, rho=0.95, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros((n, units))
    e = rng.normal(size=(n, units))
    for t in range(1, n):
        x[t] = rho * x[t - 1] + e[t]
    return x


def test_statistics_match_references():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 4))
    binary = rng.random(300) < 0.3
    X[binary, 0] += 1.0
    t = concept_test(X, {"b": binary}, null="permutation", n_permutations=50)
    np.testing.assert_allclose(t.frame["statistic"], [roc_auc_score(binary, X[:, u]) for u in range(4)], rtol=1e-10)
    cont = X[:, 1] * 0.5 + rng.normal(size=300)
    t = concept_test(X, {"c": cont}, null="permutation", n_permutations=50)
    np.testing.assert_allclose(t.frame["statistic"], [np.corrcoef(cont, X[:, u])[0, 1] for u in range(4)], rtol=1e-10)
    cats = rng.choice(["a", "b", "c"], size=300)
    t = concept_test(X, {"k": cats}, null="permutation", n_permutations=20, n_bins=4)
    ref = []
    for u in range(4):
        q = np.searchsorted(np.quantile(X[:, u], [0.25, 0.5, 0.75]), X[:, u], side="right")
        ref.append(mutual_info_score(cats, q) / np.log(2))
    np.testing.assert_allclose(t.frame["statistic"], ref, rtol=1e-8)


def test_circular_shifts_control_false_positives_on_autocorrelated_data():
    """Independent AR(1) traces vs an AR(1) 'behaviour': naive permutation finds many false positives,
    circular shifts keep them near alpha."""
    X = _ar1(600, 40, seed=2)
    behaviour = _ar1(600, 1, seed=99)[:, 0]
    naive = concept_test(X, {"b": behaviour}, null="permutation", n_permutations=200)
    circ = concept_test(X, {"b": behaviour}, null="circular", n_permutations=200)
    assert (naive.frame["p_value"] < 0.05).mean() > 0.3
    assert (circ.frame["p_value"] < 0.05).mean() <= 0.15
    # a truly coupled unit is still found with circular shifts
    X[:, 0] = behaviour + 0.5 * _ar1(600, 1, seed=5)[:, 0]
    circ = concept_test(X, {"b": behaviour}, null="circular", n_permutations=200)
    assert circ.frame.loc[0, "significant"] and circ.frame.loc[0, "direction"] == "+"


def test_bad_input_is_clear():
    X = np.random.default_rng(0).normal(size=(50, 3))
    with pytest.raises(MismatchError, match="49 values but there are 50 samples"):
        concept_test(X, {"b": np.zeros(49)})
    with pytest.raises(ConfigError, match="constant"):
        concept_test(np.ones((50, 2)), {"b": np.arange(50.0)})
    with pytest.raises(DimensionError, match=r"0 sample\(s\)"):  # the one matrix boundary's wording
        concept_test(np.zeros((0, 3)), {"b": np.zeros(0)})
    # a constant unit among others is reported as constant with NaN p-value, not an error
    Xc = X.copy()
    Xc[:, 1] = 3.0
    t = concept_test(Xc, {"b": np.arange(50.0)}, n_permutations=20)
    assert t.frame.loc[1, "constant"] and np.isnan(t.frame.loc[1, "p_value"])


def test_enrichment_matches_hypergeometric():
    pop = ["AVAL", "AVAR", "AVEL", "AVER", "RIML", "AIBL", "ASHL", "ASHR", "AWCL", "AWCR", "RMEL", "RMER"]
    sel = ["AVAL", "AVAR", "AVEL", "ASHL"]
    res = enrichment_test(sel, pop, ["AVA", "AVE", "RIM", "AIB"])
    assert (res.population, res.in_class, res.selected, res.overlap) == (12, 6, 4, 3)
    assert res.p_value == pytest.approx(sps.hypergeom.sf(2, 12, 6, 4))
    assert neuron_class("AVAL") == "AVA" and neuron_class("AVL") == "AVL"
    with pytest.raises(MismatchError):
        enrichment_test(["XYZ"], pop, ["AVA"])


def test_category_selectivity_finds_the_face_unit():
    rng = np.random.default_rng(0)
    cats = np.repeat(["face", "body", "object"], 30)
    X = rng.normal(size=(90, 5))
    X[cats == "face", 2] += 2
    t = category_selectivity(X, cats, n_permutations=200)
    sig = t.significant(direction="+")
    assert set(zip(sig["unit"], sig["concept"])) == {(2, "face")}


def test_spatial_information_and_shuffle_on_synthetic_place_cell():
    rng = np.random.default_rng(0)
    n = 6000
    pos = (np.sin(np.arange(n) / 80) + 1) * 100  # back-and-forth runs
    rate = np.stack([5 * np.exp(-((pos - 60) ** 2) / (2 * 10 ** 2)) + 0.1, np.full(n, 2.0)], 1)  # place cell, flat cell
    spikes = rng.poisson(rate * 0.1)
    rec = Activations(torch.tensor(spikes, dtype=torch.float32), ("sample", "unit"),
                      {"sample": {"linear_position": pos}, "unit": {"name": ["pc", "flat"]}}, {"dt": 0.1})
    pf = place_fields(rec, position="linear_position", speed=None, n_permutations=200, min_shift_s=20)
    assert list(pf.place_cell) == [True, False]
    assert pf.field_start[0] < 60 < pf.field_end[0]
    # Skaggs information of a uniform map is 0; of a one-bin map is log2(1/p)
    occ = np.ones(4)
    np.testing.assert_allclose(spatial_information(np.array([[1.0, 1, 1, 1], [4.0, 0, 0, 0]]), occ), [0, 2])


# --------------------------------------------------------------------------- acceptance on recorded data
def _load(name, **kw):
    import interp
    from interp.errors import DataNotFoundError

    try:
        return interp.data.load(name, **kw)
    except DataNotFoundError as exc:
        pytest.skip(f"{name} data not available: {exc}")


@pytest.mark.slow
def test_celegans_reversal_neurons_enriched_for_reversal_interneurons():
    """Pooled over the 7 worms, neurons labeled reversal-active (autocorrelation-corrected test, FDR) are enriched
    for AVA, AVE, RIM and AIB (hypergeometric p < 0.05)."""
    worms = _load("celegans")
    assert len(worms) == 7
    tests = pooled_concept_test(worms, "reversal", by="canonical", n_permutations=500, seed=0)
    assert tests.null == "effective_n"  # calcium traces and reversal states are both autocorrelated
    names = tests.frame["canonical"]
    active = tests.significant(direction="+")["canonical"]
    res = enrichment_test(active, names, ["AVA", "AVE", "RIM", "AIB"])
    assert res.p_value < 0.05, res
    assert res.overlap >= 4


@pytest.mark.slow
def test_hippocampus_place_cells():
    """Labeled place cells pass the shuffle test and most units with a clear, stable field are found."""
    rec = _load("hippocampus", environment="linear-track", bin_size=0.1)
    pf = place_fields(rec, position="linear_position", n_permutations=300, seed=0)
    frame = pf.to_frame()
    cells = frame[frame["place_cell"]]
    assert len(cells) >= 5
    assert (cells["p_value"] < 0.05).all()
    # an independent criterion of a clear field: enough spikes, >= 1 Hz peak and a rate map that is
    # stable between the two halves of the session (r >= 0.7)
    clear = frame[(frame["n_spikes"] >= 50) & (frame["peak_rate"] >= 1) & (frame["stability"] >= 0.7)]
    found = clear["place_cell"].mean()
    assert len(clear) >= 5 and found >= 0.8, (len(clear), found)
