"""probes: ridge vs himalaya and scikit-learn, banded ridge vs himalaya, probes, encoding, ceilings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.errors import ConfigError, NaNError
from probes import (
    BandedRidgeCV,
    RidgeCV,
    encoding_scores,
    normalize,
    probe_selectivity,
    rsa_noise_ceiling,
    spearman_brown,
    split_half_ceiling,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # small torch ops: one thread is faster on 2 cores

himalaya = pytest.importorskip("himalaya")


def test_himalaya_readme_alphas():
    """PAPERS.md 3.6 D: seed 0, X 10x5, Y 10x4, alphas [1, 10, 100] -> [10, 100, 10, 100] (5-fold KFold)."""
    from himalaya.ridge import RidgeCV as HRidgeCV

    rng = np.random.RandomState(0)
    X, Y = rng.randn(10, 5), rng.randn(10, 4)
    for solver in ("primal", "dual"):
        ours = RidgeCV(alphas=[1, 10, 100], cv=5, fit_intercept=False, solver=solver).fit(X, Y)
        np.testing.assert_array_equal(ours.best_alphas_.numpy(), [10, 100, 10, 100])
    ref = HRidgeCV(alphas=[1, 10, 100]).fit(X, Y)
    np.testing.assert_allclose(ours.predict(X), ref.predict(X), atol=1e-10)


@pytest.mark.parametrize("n,p", [(80, 30), (40, 120)])  # primal and dual (n < p)
def test_ridge_matches_himalaya_and_sklearn(n, p):
    from himalaya.kernel_ridge import KernelRidgeCV
    from himalaya.ridge import RidgeCV as HRidgeCV
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV, KFold

    rng = np.random.RandomState(1)
    X = rng.randn(n, p) + 2.0
    Y = X @ rng.randn(p, 12) * 0.2 + rng.randn(n, 12) * rng.uniform(0.5, 5, size=12) + 3.0
    alphas = np.logspace(-2, 4, 13)
    ours = RidgeCV(alphas=alphas, cv=5).fit(X, Y)
    assert ours.solver_ == ("primal" if n * 4 // 5 >= p else "dual")
    if ours.solver_ == "primal":
        ref = HRidgeCV(alphas=alphas, fit_intercept=True, solver_params=dict(warn=False)).fit(X, Y)
    else:
        ref = KernelRidgeCV(alphas=alphas, kernel="linear", fit_intercept=True).fit(X, Y)
    np.testing.assert_allclose(ours.best_alphas_.numpy(), ref.best_alphas_, rtol=1e-12)
    np.testing.assert_allclose(ours.predict(X), ref.predict(X), atol=1e-8)
    # scikit-learn: one GridSearchCV(Ridge) per target under the same (unshuffled) folds
    sk_alphas, sk_pred = [], []
    for t in range(Y.shape[1]):
        gs = GridSearchCV(Ridge(), {"alpha": alphas[::-1]}, cv=KFold(5), scoring="neg_mean_squared_error").fit(X, Y[:, t])
        sk_alphas.append(gs.best_params_["alpha"])  # reversed grid: ties go to the larger alpha, as in himalaya
        sk_pred.append(gs.predict(X))
    np.testing.assert_allclose(ours.best_alphas_.numpy(), sk_alphas, rtol=1e-12)
    np.testing.assert_allclose(ours.predict(X), np.stack(sk_pred, 1), atol=1e-8)


def test_primal_and_dual_agree_and_groups():
    from sklearn.model_selection import GroupKFold

    rng = np.random.RandomState(2)
    X, Y = rng.randn(60, 20), rng.randn(60, 5)
    groups = np.repeat(np.arange(12), 5)
    a = RidgeCV(alphas=[0.1, 1, 10, 100], cv=4, solver="primal").fit(X, Y, groups=groups)
    b = RidgeCV(alphas=[0.1, 1, 10, 100], cv=4, solver="dual").fit(X, Y, groups=groups)
    np.testing.assert_allclose(a.predict(X), b.predict(X), atol=1e-9)
    c = RidgeCV(alphas=[0.1, 1, 10, 100], cv=GroupKFold(4)).fit(X, Y, groups=groups)
    np.testing.assert_array_equal(a.best_alphas_.numpy(), c.best_alphas_.numpy())
    shared = RidgeCV(alphas=[0.1, 1, 10, 100], alpha_per_target=False).fit(X, Y)
    assert len(set(shared.best_alphas_.tolist())) == 1


def test_banded_ridge_matches_himalaya():
    from himalaya.ridge import solve_group_ridge_random_search

    rng = np.random.RandomState(3)
    X1, X2 = rng.randn(50, 6), rng.randn(50, 4)
    Y = X1 @ rng.randn(6, 5) + 0.1 * X2 @ rng.randn(4, 5) + rng.randn(50, 5)
    gammas = np.array([[0.5, 0.5], [0.9, 0.1], [0.1, 0.9], [0.99, 0.01]])
    alphas = np.logspace(-2, 3, 11)
    ours = BandedRidgeCV(bands=[6, 4], gammas=gammas, alphas=alphas, cv=5, fit_intercept=False).fit(np.hstack([X1, X2]), Y)
    deltas, coefs, _ = solve_group_ridge_random_search([X1, X2], Y, n_iter=gammas, alphas=alphas, cv=5,
                                                       progress_bar=False, return_weights=True)
    np.testing.assert_allclose(ours.deltas_.numpy(), deltas, rtol=1e-10)
    np.testing.assert_allclose(ours.coef_.T.numpy(), coefs, atol=1e-10)


def test_ridge_bad_inputs():
    X = np.random.randn(4, 3)
    with pytest.raises(ConfigError, match=r"fewer samples \(4\) than folds \(5\)"):
        RidgeCV(cv=5).fit(X, np.random.randn(4, 2))
    with pytest.raises(ConfigError, match="fewer groups"):
        RidgeCV(cv=3).fit(np.random.randn(10, 3), np.random.randn(10), groups=[0] * 5 + [1] * 5)
    X, Y = np.random.randn(30, 3), np.random.randn(30, 4)
    Y[3, 2] = np.nan
    with pytest.raises(NaNError, match="1 of 4 targets"):
        RidgeCV().fit(X, Y)
    m = RidgeCV(nan_policy="drop").fit(X, Y)
    assert m.coef_.shape == (3, 3) and m.targets_kept_.tolist() == [True, True, False, True]
    with pytest.raises(ConfigError):
        RidgeCV(alphas=[-1.0]).fit(X, Y[:, :2])


def test_encoding_scores_recover_signal():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 10))
    W = rng.normal(size=(10, 6))
    noise_sd = np.array([0.1, 1, 3, 10, 30, 100])
    Y = X @ W + rng.normal(size=(300, 6)) * noise_sd
    res = encoding_scores(X, Y, alphas=np.logspace(-2, 4, 7))
    signal_sd = np.linalg.norm(W, axis=0)
    expected = signal_sd / np.sqrt(signal_sd**2 + noise_sd**2)
    np.testing.assert_allclose(res.scores[:3], expected[:3], atol=0.05)
    assert np.all(np.diff(res.scores[:4]) < 0)  # noisier targets score lower
    assert np.all(np.abs(res.scores[3:]) < 0.2)  # noise-dominated targets: r ~ 0
    assert res.to_frame().shape[0] == 6


def test_split_half_ceiling_and_spearman_brown():
    assert spearman_brown(0.5) == pytest.approx(2 / 3)
    rng = np.random.default_rng(5)
    signal = rng.normal(size=(400, 3))
    reps = np.stack([signal + rng.normal(size=signal.shape) * 2.0 for _ in range(8)])
    ceiling = split_half_ceiling(reps, n_splits=20)
    # true reliability of the 8-repetition mean: var_s / (var_s + 4/8)
    np.testing.assert_allclose(ceiling.per_target, 1 / (1 + 4 / 8), atol=0.05)


def test_normalise_conventions():
    assert normalize(0.3, 0.6, "r/c").values == pytest.approx(0.5)
    assert normalize(0.3, 0.6, "(r/c)^2").values == pytest.approx(0.25)
    assert normalize(-0.3, 0.6, "r^2/c").values == pytest.approx(0.0)
    assert normalize(0.3, 0.6, "r^2/c^2").values == pytest.approx(0.25)
    assert normalize(0.9, 0.6, "r/c", clip=True).values == pytest.approx(1.0)
    with pytest.raises(ConfigError):
        normalize(0.3, 0.6, "r/c^3")


def test_probe_selectivity():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(240, 8))
    y = (X[:, 0] + 0.3 * rng.normal(size=240) > 0).astype(int)
    res = probe_selectivity(X, y, probe="logistic")
    assert res.task_score > 0.85 and res.control_score < 0.65 and res.selectivity > 0.25
    yc = X[:, 1] * 2 + 0.1 * rng.normal(size=240)
    lin = probe_selectivity(X, yc, probe="linear", cv=4)
    assert lin.metric == "R2" and lin.task_score > 0.9 and lin.control_score < 0.1


def test_rsa_ceiling_reexport_matches_rsatoolbox():
    rsatoolbox = pytest.importorskip("rsatoolbox")
    from rsatoolbox.inference import boot_noise_ceiling

    rng = np.random.default_rng(7)
    from interp.similarity import square

    v = np.abs(rng.normal(size=(5, 28)) + rng.normal(size=28))
    lo, up = boot_noise_ceiling(rsatoolbox.rdm.RDMs(v), method="spearman")
    nc = rsa_noise_ceiling(square(torch.as_tensor(v)), "spearman")
    assert (nc.lower, nc.upper) == pytest.approx((lo, up), abs=1e-10)
