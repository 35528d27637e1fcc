"""Similarity measures vs rsatoolbox, the reference values of PAPERS.md 3.6, and property tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp import Activations
from interp.errors import ConfigError, DimensionError, MismatchError, NaNError
from interp.similarity import (
    RDMs,
    bootstrap_ci,
    cca,
    cka,
    cka_details,
    compare_rdms,
    crossnobis,
    permutation_test,
    procrustes,
    pwcca,
    rdm,
    rdm_bootstrap,
    rsa,
    rsa_noise_ceiling,
    svcca,
    upper_tri,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # small torch ops: one thread is faster on 2 cores

rsatoolbox = pytest.importorskip("rsatoolbox")
K92 = "/work/shared/data/kriegeskorte92"


@pytest.fixture(scope="module")
def xy():
    """PAPERS.md 3.6 A: np.random.seed(0); X then Y uniform (30, 25)."""
    np.random.seed(0)
    X = np.random.uniform(size=(30, 25))
    Y = np.random.uniform(size=(30, 25))
    return X, Y


# ----------------------------------------------------------------------------- reference values (3.6 A)
def test_reference_values_cka(xy):
    X, Y = xy
    assert cka(X, Y) == pytest.approx(0.4893427, abs=1e-7)
    assert cka(X, Y, estimator="song") == pytest.approx(0.0235987, abs=1e-7)
    assert cka(X, Y, estimator="lange") == pytest.approx(0.0533364, abs=1e-7)
    assert cka(X, Y, kernel="rbf", sigma=1.0) == pytest.approx(0.8940268, abs=1e-7)
    assert cka(X, Y, kernel="rbf", sigma=1.0, estimator="song") == pytest.approx(0.0676394, abs=1e-7)
    res = cka_details(X, Y, kernel="rbf", sigma=1.0)
    assert res.value == cka(X, Y, kernel="rbf", sigma=1.0) and res.estimator == "biased"
    assert res.sigma_x == res.sigma_y == 1.0 and res.sigma_rule == "absolute sigma"
    assert res.value == pytest.approx(res.hsic_xy / np.sqrt(res.hsic_xx * res.hsic_yy), rel=1e-12)


def test_reference_values_cca_procrustes(xy):
    X, Y = xy
    res = procrustes(X, Y)
    assert res.angular == pytest.approx(0.7629816, abs=1e-7)
    assert res.euclidean == pytest.approx(5.851126, abs=1e-6)
    assert res.nbs == pytest.approx(0.7227787, abs=1e-7)
    assert cca(X, Y) == pytest.approx(0.8901050, abs=1e-7)
    assert cca(X, Y, summary="mean_sq") == pytest.approx(0.8583, abs=1e-4)
    assert svcca(X, Y, keep=0.99) == pytest.approx(0.78318, abs=1e-5)


def test_reference_values_rsa(xy):
    X, Y = xy
    assert rsa(X, Y, method="spearman") == pytest.approx(-0.0040928, abs=1e-7)
    assert rsa(X, Y, method="pearson") == pytest.approx(0.00351, abs=1e-5)
    assert rsa(X, Y, method="tau-a") == pytest.approx(-0.0020, abs=1e-4)
    assert rsa(X, Y, rdm_method="euclidean", method="spearman") == pytest.approx(0.02665, abs=1e-5)
    # rsatoolbox cosine_cov on squared-Euclidean RDMs == linear CKA (3.1, 3.6 A)
    w = compare_rdms(rdm(X, "euclidean"), rdm(Y, "euclidean"), "whitened_cosine")
    assert w == pytest.approx(cka(X, Y), abs=1e-10)


# ----------------------------------------------------------------------------- rsatoolbox agreement
def _dataset(X, **obs):
    from rsatoolbox.data import Dataset

    return Dataset(X, obs_descriptors=obs or None)


@pytest.mark.parametrize("method", ["euclidean", "correlation"])
def test_rdm_matches_rsatoolbox(method):
    from rsatoolbox.rdm import calc_rdm

    X = np.random.default_rng(1).normal(size=(12, 40))
    ref = calc_rdm(_dataset(X), method=method).get_matrices()[0]
    np.testing.assert_allclose(rdm(X, method).numpy(), ref, atol=1e-10)


def test_cosine_rdm_matches_scipy():
    from scipy.spatial.distance import pdist, squareform

    X = np.random.default_rng(2).normal(size=(10, 7))
    np.testing.assert_allclose(rdm(X, "cosine").numpy(), squareform(pdist(X, "cosine")), atol=1e-12)


@pytest.mark.parametrize("with_noise", [False, True])
def test_crossnobis_matches_rsatoolbox(with_noise):
    from rsatoolbox.rdm import calc_rdm

    rng = np.random.default_rng(3)
    n_cond, n_runs, p = 5, 4, 20
    conds = np.tile(np.arange(n_cond), n_runs)
    runs = np.repeat(np.arange(n_runs), n_cond)
    X = rng.normal(size=(n_cond * n_runs, p)) + rng.normal(size=(n_cond, p))[conds]
    noise = None
    if with_noise:
        A = rng.normal(size=(p, p))
        noise = np.linalg.inv(A @ A.T / p + np.eye(p))
    ds = _dataset(X, conds=conds, runs=runs)
    ref = calc_rdm(ds, method="crossnobis", descriptor="conds", cv_descriptor="runs", noise=noise).get_matrices()[0]
    ours = rdm(X, "crossnobis", conditions=conds, folds=runs, noise=noise)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-10)


def test_crossnobis_is_unbiased_under_noise():
    """3.6 G: pure noise gives crossnobis mean ~0; squared Euclidean is biased by 2 sigma^2 / n_runs."""
    rng = np.random.default_rng(0)
    n_cond, n_runs, p = 4, 6, 50
    conds = np.tile(np.arange(n_cond), n_runs)
    runs = np.repeat(np.arange(n_runs), n_cond)
    cn, eu = [], []
    for _ in range(60):
        X = rng.normal(size=(n_cond * n_runs, p))
        cn.append(upper_tri(crossnobis(X, conds, runs)).mean().item())
        eu.append(upper_tri(rdm(X, "euclidean", conditions=conds)).mean().item())
    assert abs(np.mean(cn)) < 0.02
    assert np.mean(eu) == pytest.approx(2 / n_runs, rel=0.1)
    assert min(cn) < 0  # unbiased estimates go negative


def _rsa_rdms(vectors):
    from rsatoolbox.rdm import RDMs as RsaRDMs

    return RsaRDMs(np.atleast_2d(vectors))


RSATOOLBOX_METHODS = {"pearson": "corr", "spearman": "spearman", "rho-a": "rho-a", "tau-a": "tau-a", "tau-b": "tau-b",
                      "cosine": "cosine", "whitened_cosine": "cosine_cov", "whitened_pearson": "corr_cov"}


@pytest.mark.parametrize("ours,theirs", sorted(RSATOOLBOX_METHODS.items()))
def test_comparators_match_rsatoolbox(ours, theirs):
    from rsatoolbox.rdm import compare

    rng = np.random.default_rng(4)
    a = np.abs(rng.normal(size=(3, 45)))  # 10 conditions
    b = np.abs(rng.normal(size=(2, 45)))
    b[0, :10] = b[0, 0]  # ties
    ref = compare(_rsa_rdms(a), _rsa_rdms(b), method=theirs)
    np.testing.assert_allclose(_all_pairs(a, b, ours), ref, atol=1e-10)
    assert compare_rdms(a[0], b[1], ours) == pytest.approx(ref[0, 1], abs=1e-10)


def _all_pairs(a, b, method):
    from interp.similarity.rsa import compare_vectors

    return compare_vectors(torch.as_tensor(a), torch.as_tensor(b), method).numpy()


def test_tied_categorical_rdm_values():
    """3.6 C: categorical RDM of ['a','a','a','b','b','b']; tau-a and rho-a of x with itself are < 1."""
    from rsatoolbox.rdm import get_categorical_rdm

    m = get_categorical_rdm(["a", "a", "a", "b", "b", "b"]).get_vectors()[0]
    d = np.random.default_rng(0).random(15)
    expected = {"pearson": -0.1039, "cosine": 0.6140, "spearman": -0.1575, "rho-a": -0.1339, "tau-a": -0.0952,
                "tau-b": -0.1328, "whitened_cosine": 0.1715, "whitened_pearson": -0.1154}
    for method, value in expected.items():
        assert compare_rdms(m, d, method) == pytest.approx(value, abs=1e-4), method
    assert compare_rdms(m, m, "tau-a") == pytest.approx(0.5143, abs=1e-4)
    assert compare_rdms(m, m, "rho-a") == pytest.approx(0.7232, abs=1e-4)
    for method in ("pearson", "spearman", "tau-b", "cosine", "whitened_cosine"):
        assert compare_rdms(m, m, method) == pytest.approx(1.0, abs=1e-12)


@pytest.fixture(scope="module")
def human_it():
    from scipy.io import loadmat

    brain = loadmat(f"{K92}/92_brainRDMs.mat")["RDMs"]
    return np.stack([brain[0, s, t]["RDM"] for s in range(4) for t in range(2)])


@pytest.mark.parametrize("ours,theirs", [("pearson", "corr"), ("cosine", "cosine"), ("spearman", "spearman"),
                                         ("rho-a", "rho-a"), ("whitened_cosine", "cosine_cov"),
                                         ("whitened_pearson", "corr_cov")])
def test_noise_ceiling_matches_rsatoolbox(human_it, ours, theirs):
    from rsatoolbox.inference import boot_noise_ceiling
    from rsatoolbox.rdm import RDMs as RsaRDMs

    lower, upper = boot_noise_ceiling(RsaRDMs(human_it), method=theirs)
    nc = rsa_noise_ceiling(human_it, ours)
    assert nc.lower == pytest.approx(lower, abs=1e-6)
    assert nc.upper == pytest.approx(upper, abs=1e-6)


def test_noise_ceiling_table_values(human_it):
    """PAPERS.md 3.6 B (rsatoolbox 0.3.2 on its 92-image demo): lower/upper per method, incl. tau-a."""
    table = {"pearson": (0.3462, 0.5398), "cosine": (0.9810, 0.9855), "spearman": (0.3280, 0.5250),
             "tau-a": (0.2230, 0.3655), "whitened_cosine": (0.5878, 0.6995)}
    for method, (lo, up) in table.items():
        nc = rsa_noise_ceiling(human_it, method)
        assert (nc.lower, nc.upper) == pytest.approx((lo, up), abs=1e-4), method


def test_monkey_vs_human_it_spearman():
    """Kriegeskorte et al. 2008: monkey IT vs human IT RDMs, Spearman about 0.44."""
    from scipy.io import loadmat

    fig1 = loadmat(f"{K92}/Kriegeskorte_Neuron2008_supplementalData.mat")["RDMs_mIT_hIT_fig1"]
    monkey, human = (np.asarray(fig1[0, i]["RDM"], float).ravel() for i in range(2))
    assert compare_rdms(monkey, human, "spearman") == pytest.approx(0.4389, abs=1e-4)


# ----------------------------------------------------------------------------- property tests (3.1, 3.6 F)
def test_cka_invariances():
    rng = np.random.default_rng(5)
    X = torch.as_tensor(rng.normal(size=(60, 10)))
    Y = X @ torch.as_tensor(rng.normal(size=(10, 8))) + torch.as_tensor(rng.normal(size=(60, 8)))
    Q = torch.linalg.qr(torch.as_tensor(rng.normal(size=(10, 10))))[0]
    base = cka(X, Y)
    for estimator in ("biased", "song", "lange"):
        ref = cka(X, Y, estimator=estimator)
        assert cka(3.7 * X @ Q + torch.as_tensor(rng.normal(size=10)), Y, estimator=estimator) == pytest.approx(
            ref, abs=1e-10)
    W = torch.as_tensor(rng.normal(size=(10, 10)))
    assert abs(cka(X @ W, Y) - base) > 1e-3  # not invariant to a general linear map
    assert cka(X, X) == pytest.approx(1.0, abs=1e-12)
    assert cka(X, X, kernel="rbf") == pytest.approx(1.0, abs=1e-12)
    assert cka(X, X, estimator="song") == pytest.approx(1.0, abs=1e-12)


def test_cka_feature_and_gram_forms_agree():
    from interp.similarity.cka import hsic, linear_hsic_terms

    rng = np.random.default_rng(6)
    X, Y = torch.as_tensor(rng.normal(size=(20, 50))), torch.as_tensor(rng.normal(size=(20, 3)))
    for est in ("song", "lange"):
        Xc, Yc = X - X.mean(0), Y - Y.mean(0)
        K, L = Xc @ Xc.T, Yc @ Yc.T
        xy, xx, yy = linear_hsic_terms(X, Y, est)  # p=50 > n=20 -> Gram; Y: feature space in the fallback below
        assert float(xy) == pytest.approx(float(hsic(K, L, est)), rel=1e-10)
        from interp.similarity.cka import _linear_feature_space

        fxy, fxx, fyy = _linear_feature_space(Xc, Yc, est)
        assert float(fxy) == pytest.approx(float(hsic(K, L, est)), rel=1e-10)
        assert float(fxx) == pytest.approx(float(xx), rel=1e-10)


@pytest.mark.parametrize("estimator", ["biased", "song", "lange"])
def test_cka_of_constant_input_raises(estimator):
    from interp.errors import NaNError

    X = torch.zeros(10, 3, dtype=torch.float64)
    X[:, 0] = 1.0  # constant after centring -> HSIC(X, X) = 0: CKA is 0/0, not a number to report
    with pytest.raises(NaNError, match="constant across samples"):
        cka(X, torch.randn(10, 3, dtype=torch.float64), estimator=estimator)


def test_procrustes_and_cca_properties():
    rng = np.random.default_rng(7)
    X = torch.as_tensor(rng.normal(size=(200, 6)))
    Q = torch.linalg.qr(torch.as_tensor(rng.normal(size=(6, 6))))[0]
    res = procrustes(X, 2.0 * X @ Q + 1.0)
    assert res.angular == pytest.approx(0.0, abs=1e-6)
    assert cca(X, X @ torch.as_tensor(rng.normal(size=(6, 6)))) == pytest.approx(1.0, abs=1e-10)
    # vectorised Procrustes equals the explicit rotation fit
    Y = torch.as_tensor(rng.normal(size=(200, 6)))
    r = procrustes(X, Y)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    assert torch.linalg.norm(Xc - Yc @ r.rotation).item() == pytest.approx(r.euclidean, rel=1e-10)
    # many features (p > n): the n x n route gives the same distance as the full X^T Y route
    Xw, Yw = torch.as_tensor(rng.normal(size=(15, 40))), torch.as_tensor(rng.normal(size=(15, 50)))
    assert procrustes(Xw, Yw, return_rotation=False).angular == pytest.approx(
        procrustes(Xw, Yw, return_rotation=True).angular, abs=1e-12)
    # triangle inequality for the angular distance
    Z = torch.as_tensor(rng.normal(size=(200, 6)))
    d = lambda a, b: procrustes(a, b).angular  # noqa: E731
    assert d(X, Z) <= d(X, Y) + d(Y, Z) + 1e-12


def test_pwcca_matches_covariance_implementation():
    """Morcos et al. 2018 weights from the covariance form (Google's cca_core style), well-posed n >> p."""
    rng = np.random.default_rng(8)
    X = rng.normal(size=(500, 5))
    Y = X @ rng.normal(size=(5, 4)) + rng.normal(size=(500, 4))
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    n = len(X)
    Sxx, Syy, Sxy = Xc.T @ Xc / (n - 1), Yc.T @ Yc / (n - 1), Xc.T @ Yc / (n - 1)

    def isqrt(S):
        w, V = np.linalg.eigh(S)
        return V @ np.diag(w**-0.5) @ V.T

    u, s, _ = np.linalg.svd(isqrt(Sxx) @ Sxy @ isqrt(Syy))
    Z = Xc @ isqrt(Sxx) @ u[:, :4]
    Z /= np.linalg.norm(Z, axis=0)
    w = np.abs(Z.T @ Xc).sum(1)
    assert pwcca(X, Y) == pytest.approx((w * s).sum() / w.sum(), abs=1e-8)


# ----------------------------------------------------------------------------- statistics (3.6 G)
def test_permutation_test_null_and_signal():
    rng = np.random.default_rng(9)
    X = rng.normal(size=(30, 20))
    Y = X + 0.5 * rng.normal(size=(30, 20))
    res = permutation_test(rdm(X), rdm(Y), "spearman", n_permutations=200)
    assert res.p_value == pytest.approx(1 / 201)
    assert abs(res.null.mean()) < 0.02  # permuting stimulus labels gives RSA ~ 0
    unrelated = permutation_test(X, rng.normal(size=(30, 20)), "cka", n_permutations=99)
    assert unrelated.p_value > 0.05
    assert res.to_frame().loc[0, "n_permutations"] == 200


def test_bootstrap_cis():
    rng = np.random.default_rng(10)
    X = rng.normal(size=(40, 10))
    Y = X + rng.normal(size=(40, 10))
    b = bootstrap_ci(X, Y, "cka", n_bootstraps=100)
    assert b.low < b.estimate < b.high
    subj = np.stack([rdm(X + rng.normal(size=X.shape)).numpy() for _ in range(4)])
    models = np.stack([rdm(X).numpy(), rdm(rng.normal(size=X.shape)).numpy()])
    rb = rdm_bootstrap(models, subj, "spearman", over=("stimuli", "subjects"), n_bootstraps=100)
    assert rb.samples.shape == (100, 2)
    assert rb.low[0] > rb.high[1]  # the true model beats the random one


# ----------------------------------------------------------------------------- inputs and errors
def test_inputs_activations_and_alignment():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(20, 5))
    a = Activations(torch.as_tensor(X), ("sample", "unit"), coords={"sample": {"stimulus": list("abcdefghijklmnopqrst")}})
    order = rng.permutation(20)
    b = a.isel(sample=order)
    assert cka(a, b) == pytest.approx(1.0, abs=1e-12)  # aligned by stimulus before comparing
    c = a.isel(sample=list(range(19)))
    with pytest.raises(MismatchError, match="t"):
        cka(a, c)


def test_bad_inputs():
    with pytest.raises(DimensionError, match="square"):
        compare_rdms(np.zeros((4, 5)), np.zeros((4, 5)))
    with pytest.raises(DimensionError, match="symmetric"):
        compare_rdms(np.arange(16.0).reshape(4, 4), np.arange(16.0).reshape(4, 4))
    with pytest.raises(ConfigError, match="comparator"):
        compare_rdms(np.ones(6), np.ones(6), "nope")
    X = np.random.default_rng(0).normal(size=(10, 4))
    Xn = X.copy()
    Xn[2, 1] = np.nan
    with pytest.raises(NaNError, match="1 of 4 features"):
        cka(Xn, X)
    assert cka(Xn, X, nan_policy="drop") == pytest.approx(cka(X[:, [0, 2, 3]], X))
    with pytest.raises(DimensionError, match="same number of samples"):
        cka(X, X[:5])
    with pytest.raises(ConfigError, match="estimator"):
        cka(X, X, estimator="debiased")
    with pytest.raises(MismatchError, match="lacks conditions"):
        crossnobis(X, [0, 1, 0, 1, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    with pytest.raises(DimensionError):
        RDMs(np.zeros((3, 4, 5)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_gpu_matches_cpu(xy):
    X, Y = xy
    Xg, Yg = torch.as_tensor(X, device="cuda"), torch.as_tensor(Y, device="cuda")
    assert cka(Xg, Yg) == pytest.approx(cka(X, Y), abs=1e-10)
    assert rsa(Xg, Yg) == pytest.approx(rsa(X, Y), abs=1e-10)
    assert cka(Xg, Yg, dtype="float32") == pytest.approx(cka(X, Y), abs=1e-3)
