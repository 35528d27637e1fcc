"""probes.partition: variance partitioning over feature spaces against himalaya's banded ridge (same data, same
folds, same hyperparameter search), planted unique/shared variance, and the inclusion-exclusion identities."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from interp import Activations
from interp.errors import ConfigError, DimensionError
from probes import variance_partitioning
from probes._cv import make_splits
from probes.partition import partition_regions
from probes.ridge import _sample_gammas

pytestmark = pytest.mark.usefixtures("one_thread")


def _planted(rng, n=240):
    """Y = unique-to-A signal + unique-to-B signal + a signal both A and B carry (a shared latent)."""
    shared = rng.normal(size=(n, 2))
    A = np.hstack([rng.normal(size=(n, 4)), shared @ rng.normal(size=(2, 3))])
    B = np.hstack([rng.normal(size=(n, 5)), shared @ rng.normal(size=(2, 3))])
    C = rng.normal(size=(n, 3))  # irrelevant space
    Y = np.stack([A[:, :4] @ rng.normal(size=4),                   # target 0: A only
                  B[:, :5] @ rng.normal(size=5),                   # target 1: B only
                  shared @ rng.normal(size=2) * 2.0], 1)           # target 2: shared only
    Y = Y / Y.std(0) + 0.5 * rng.normal(size=Y.shape)              # R2 ceiling 0.8 for every target
    return A, B, C, Y


def test_matches_himalaya_banded_ridge():
    from himalaya.ridge import BandedRidgeCV as HBandedRidgeCV

    rng = np.random.default_rng(0)
    A, B, C, Y = _planted(rng, n=150)
    spaces = {"A": A, "B": B, "C": C}
    alphas, n_iter = np.logspace(-2, 3, 6), 6
    ours = variance_partitioning(spaces, Y, alphas=alphas, n_iter=n_iter, cv=4, inner_cv=3, seed=1)
    # reference: himalaya's BandedRidgeCV on every subset, same outer/inner KFold splits and the same gammas
    outer = make_splits(len(Y), 4)
    sst = ((Y - Y.mean(0)) ** 2).sum(0)
    for k in (1, 2, 3):
        gammas = np.ones((1, 1)) if k == 1 else _sample_gammas(n_iter, k, (0.1, 1.0), np.random.default_rng(1))
        for subset in itertools.combinations("ABC", k):
            X = np.hstack([spaces[s] for s in subset])
            labels = np.concatenate([[i] * spaces[s].shape[1] for i, s in enumerate(subset)])
            pred = np.empty_like(Y)
            for tr, te in outer:
                ref = HBandedRidgeCV(groups=labels, cv=3, fit_intercept=True,
                                     solver_params=dict(n_iter=gammas, alphas=alphas, progress_bar=False))
                pred[te] = ref.fit(X[tr], Y[tr]).predict(X[te])
            r2 = 1 - ((Y - pred) ** 2).sum(0) / sst
            np.testing.assert_allclose(ours.r2["+".join(subset)], r2, atol=1e-8)  # stated tolerance: 1e-8 in R2


def test_planted_unique_and_shared_variance():
    rng = np.random.default_rng(1)
    A, B, C, Y = _planted(rng)
    vp = variance_partitioning({"A": A, "B": B}, Y, alphas=np.logspace(-2, 3, 6), n_iter=8)
    f = vp.to_frame()
    # target 0: unique A; target 1: unique B; target 2: shared (about the 0.8 ceiling, held out)
    assert f.loc[0, "unique_A"] > 0.6 and abs(f.loc[0, "unique_B"]) < 0.05 and abs(f.loc[0, "shared_A&B"]) < 0.1
    assert f.loc[1, "unique_B"] > 0.6 and abs(f.loc[1, "unique_A"]) < 0.05 and abs(f.loc[1, "shared_A&B"]) < 0.1
    assert f.loc[2, "shared_A&B"] > 0.6 and abs(f.loc[2, "unique_A"]) < 0.1 and abs(f.loc[2, "unique_B"]) < 0.1
    regions = f[["unique_A", "unique_B", "shared_A&B"]].sum(1)
    np.testing.assert_allclose(regions, f["r2_joint"], atol=1e-12)
    three = variance_partitioning({"A": A, "B": B, "C": C}, Y, alphas=np.logspace(-2, 3, 6), n_iter=8)
    g = three.to_frame()
    with_c = ["unique_C", "shared_A&C", "shared_B&C", "shared_A&B&C"]
    assert (g[with_c].abs() < 0.05).all().all()  # the irrelevant space explains nothing, alone or shared
    assert "VariancePartition" in three.summary() and three.plot().data


def test_three_space_regions_match_the_explicit_formulas():
    rng = np.random.default_rng(2)
    r = {"+".join(s): rng.random(4) for k in (1, 2, 3) for s in itertools.combinations("ABC", k)}
    reg = partition_regions(r, ["A", "B", "C"])
    R = lambda *s: r["+".join(s)]  # noqa: E731
    np.testing.assert_allclose(reg["unique_A"], R("A", "B", "C") - R("B", "C"))
    np.testing.assert_allclose(reg["shared_A&B"], R("A", "C") + R("B", "C") - R("C") - R("A", "B", "C"))
    np.testing.assert_allclose(reg["shared_A&B&C"], R("A") + R("B") + R("C") - R("A", "B") - R("A", "C")
                               - R("B", "C") + R("A", "B", "C"))
    np.testing.assert_allclose(sum(reg.values()), R("A", "B", "C"))


def test_feature_spaces_as_activations_groups_and_errors():
    rng = np.random.default_rng(3)
    A, B, C, Y = _planted(rng, n=120)
    sessions = np.repeat(np.arange(6), 20)
    acts = Activations(torch.from_numpy(A), ("sample", "unit"), {"sample": {"session": sessions}})
    vp = variance_partitioning({"layer": acts, "latents": B}, Y, alphas=[0.1, 1, 10], n_iter=3, cv=3, inner_cv=2,
                               groups="session")
    assert vp.attrs["grouped"] and vp.spaces == ["layer", "latents"]
    with pytest.raises(ConfigError, match="2 or 3"):
        variance_partitioning({"A": A}, Y)
    with pytest.raises(DimensionError, match="samples like Y"):
        variance_partitioning({"A": A, "B": B[:50]}, Y)
