"""The fast similarity paths equal the plain formulas: blocked/syrk CKA terms, upper-triangle RDMs, one-sort
Spearman (ties averaged as scipy does)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import scipy.stats
import torch

import interp.similarity  # noqa: F401  (the submodules below are shadowed by functions of the same name)
from interp.similarity import cka, rdm, rsa
from interp.similarity.rdm import rdm_vector, upper_tri
from interp.similarity.rsa import compare_vectors, rankdata

C = sys.modules["interp.similarity.cka"]


@pytest.fixture(scope="module")
def xy():
    gen = torch.Generator().manual_seed(0)
    latent = torch.randn(300, 8, generator=gen)
    X = latent @ torch.randn(8, 1100, generator=gen) + torch.randn(300, 1100, generator=gen) + 3.0
    Y = latent @ torch.randn(8, 700, generator=gen) + 2 * torch.randn(300, 700, generator=gen)
    return X.double(), Y.double()


@pytest.mark.parametrize("device_path", ["syrk", "blocks"])
def test_gram_and_cross_square_norms_equal_the_plain_products(xy, device_path, monkeypatch):
    X, Y = xy
    if device_path == "blocks":  # the GPU path, forced on the CPU: column blocks on and above the diagonal
        monkeypatch.setattr(C, "_syrk_sq_norm", lambda t: (_ for _ in ()).throw(AssertionError("not the blocks")))
        X = X.requires_grad_(False).clone().requires_grad_(True)  # requires_grad routes away from syrk
        monkeypatch.setattr(C, "_CROSS_MAX", 1)  # and the cross term into column blocks
    with torch.no_grad():
        assert C._blocks(X.shape[1]).__len__() > 1
        assert float(C.gram_sq_norm(X)) == pytest.approx(float((X.T @ X).square().sum()), rel=1e-12)
        assert float(C.cross_sq_norm(X, Y)) == pytest.approx(float((Y.T @ X).square().sum()), rel=1e-12)


def test_cka_equals_the_textbook_formulas_in_both_spaces(xy):
    X, Y = xy
    for n in (300, 40):  # feature space (p < n), then Gram space (p >> n), the Gram side in row blocks
        a, b = X[:n] - X[:n].mean(0), Y[:n] - Y[:n].mean(0)
        feature = float((b.T @ a).square().sum() / ((a.T @ a).square().sum() * (b.T @ b).square().sum()).sqrt())
        K, L = a @ a.T, b @ b.T
        gram = float((K * L).sum() / ((K * K).sum() * (L * L).sum()).sqrt())
        assert feature == pytest.approx(gram, rel=1e-10)
        assert cka(X[:n], Y[:n]) == pytest.approx(feature, rel=1e-10)
        assert cka(X[:n].float(), Y[:n].float(), dtype="float32") == pytest.approx(feature, rel=1e-4)


def test_gram_space_row_blocks(xy, monkeypatch):
    X, Y = xy
    monkeypatch.setattr(C, "_MIN_BLOCK", 16)  # several row blocks at n = 100
    a, b = X[:100] - X[:100].mean(0), Y[:100] - Y[:100].mean(0)
    kl, kk, ll = C._gram_space_biased(a, b)
    K, L = a @ a.T, b @ b.T
    for ours, ref in ((kl, (K * L).sum()), (kk, (K * K).sum()), (ll, (L * L).sum())):
        assert float(ours) == pytest.approx(float(ref), rel=1e-12)


@pytest.mark.parametrize("method", ["correlation", "cosine", "euclidean"])
def test_rdm_vector_equals_the_upper_triangle_of_the_rdm(xy, method):
    X = xy[0][:61, :50]
    assert torch.allclose(rdm_vector(X, method, block=7), upper_tri(rdm(X, method)), rtol=1e-12, atol=1e-12)


def test_rankdata_matches_scipy_with_and_without_ties():
    gen = torch.Generator().manual_seed(1)
    untied = torch.randn(3, 500, generator=gen, dtype=torch.float64)
    tied = torch.randint(0, 40, (3, 500), generator=gen).double()
    for v in (untied, tied, untied.float()):
        ref = scipy.stats.rankdata(v.double().numpy(), axis=1)
        assert np.array_equal(rankdata(v).double().numpy(), ref)


def test_spearman_one_sort_matches_scipy_with_and_without_ties():
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(1, 3000, generator=gen, dtype=torch.float64)
    b = a + torch.randn(1, 3000, generator=gen, dtype=torch.float64)
    for x, y in ((a, b), (a.round(decimals=1), b), (a.float(), b.float())):  # untied, tied (average ranks), float32
        ref = scipy.stats.spearmanr(x[0].double().numpy(), y[0].double().numpy()).statistic
        assert float(compare_vectors(x, y, "spearman")[0, 0]) == pytest.approx(ref, abs=1e-6 if x.dtype == torch.float32 else 1e-12)


def test_rsa_equals_the_full_rdm_route(xy):
    X, Y = xy[0][:80, :30], xy[1][:80, :20]
    for rdm_method in ("correlation", "euclidean", "cosine"):
        full = compare_vectors(upper_tri(rdm(X, rdm_method))[None], upper_tri(rdm(Y, rdm_method))[None], "pearson")
        assert rsa(X, Y, rdm_method=rdm_method, method="pearson") == pytest.approx(float(full[0, 0]), abs=1e-12)
        ref = scipy.stats.spearmanr(upper_tri(rdm(X, rdm_method)).numpy(), upper_tri(rdm(Y, rdm_method)).numpy())
        assert rsa(X, Y, rdm_method=rdm_method) == pytest.approx(ref.statistic, abs=1e-12)
