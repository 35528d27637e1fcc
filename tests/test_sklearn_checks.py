"""scikit-learn's estimator checks (``parametrize_with_checks``) on the probes and the decompositions.

Every check runs; the few that cannot pass for a stated reason are listed per estimator in
``EXPECTED_FAILED`` (scikit-learn's ``expected_failed_checks``: they run and must fail, as xfail).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

from interp.decompose import NMF, SNMF, BatchTopKSAE, JumpReLUSAE, ReLUSAE, TopKSAE
from interp.errors import DimensionError, InputTypeError, NaNError
from probes import LinearProbe, LogisticProbe, RidgeCV

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny torch ops: one thread is faster on 2 cores

ESTIMATORS = [
    RidgeCV(alphas=[0.1, 1.0, 10.0], cv=3),
    LinearProbe(alphas=[0.1, 1.0, 10.0], cv=3),
    LogisticProbe(),
    # k=1: several checks set n_components=1, and k must be <= n_components
    TopKSAE(n_components=8, k=1, batch_size=16, progress=False),
    BatchTopKSAE(n_components=8, k=1, batch_size=16, progress=False),
    ReLUSAE(n_components=8, batch_size=16, progress=False),
    JumpReLUSAE(n_components=8, batch_size=16, progress=False),
    NMF(n_components=2, max_iter=50),
    SNMF(n_components=2, max_iter=50, sparsity=None),
]

_DTYPE = ("the dtype parameter defaults to a torch.dtype (torch.float32/float64), not one of the types scikit-learn "
          "allows as a default")
_CODES = ("fit_transform returns the coefficients of the fit's last iterate, transform re-solves them with the "
          "components fixed; they agree only at full convergence, which these tiny checks do not run to")

#: check name -> why it cannot pass, per estimator class.
EXPECTED_FAILED: dict[str, dict[str, str]] = {
    **{name: {"check_parameters_default_constructible": _DTYPE}
       for name in ("TopKSAE", "BatchTopKSAE", "ReLUSAE", "JumpReLUSAE")},
    **{name: {"check_parameters_default_constructible": _DTYPE, "check_transformer_general": _CODES,
              "check_transformer_data_not_an_array": _CODES} for name in ("NMF", "SNMF")},
}


def expected_failed(estimator: object) -> dict[str, str]:
    """The checks ``estimator`` is expected to fail, with the reason of each."""
    return EXPECTED_FAILED.get(type(estimator).__name__, {})


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed)
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)


def test_probe_errors_are_named_and_in_sklearn_wording():
    """Bad NumPy input: scikit-learn's messages, raised as interp's named errors."""
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    ridge = RidgeCV(alphas=[1.0], cv=3).fit(X, y)
    with pytest.raises(DimensionError, match="X has 2 features, but RidgeCV is expecting 3 features"):
        ridge.predict(X[:, :2])
    with pytest.raises(DimensionError, match="Reshape your data"):
        LogisticProbe().fit(X[:, 0], y > 0)
    with pytest.raises(InputTypeError, match="dense data is required"):
        LinearProbe(cv=3).fit(sp.csr_matrix(X), y)
    with pytest.raises(NaNError, match="Input X contains NaN"):
        RidgeCV(cv=3).fit(np.where(X > 1, np.nan, X), y)
    with pytest.raises(ValueError, match="Complex data not supported"):
        RidgeCV(cv=3).fit(X + 1j, y)


def test_ridge_predict_follows_the_input_type():
    """NumPy in, NumPy out (scikit-learn's convention); tensor in, tensor out on the fitted device."""
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(30, 4)), rng.normal(size=(30, 2))
    ridge = RidgeCV(alphas=[1.0], cv=3).fit(X, Y)
    out_np, out_t = ridge.predict(X), ridge.predict(torch.from_numpy(X))
    assert isinstance(out_np, np.ndarray) and isinstance(out_t, torch.Tensor)
    np.testing.assert_allclose(out_np, out_t.numpy())
    assert RidgeCV(alphas=[1.0], cv=3).fit(X, Y[:, 0]).predict(X).shape == (30,)


def test_decompose_errors_are_named_and_in_sklearn_wording():
    """Decompositions: scikit-learn's messages for array-likes, as named errors; tensors still accepted."""
    import scipy.sparse as sp

    rng = np.random.default_rng(2)
    X = rng.normal(size=(32, 4)).astype(np.float32)
    sae = TopKSAE(n_components=8, k=2, batch_size=16, progress=False).fit(X)
    assert isinstance(sae.transform(torch.from_numpy(X)), torch.Tensor)
    with pytest.raises(DimensionError, match="X has 3 features, but TopKSAE is expecting 4 features"):
        sae.transform(X[:, :3])
    with pytest.raises(DimensionError, match="X has 3 features, but TopKSAE is expecting 4 features"):
        sae.partial_fit(X[:, :3])
    with pytest.raises(InputTypeError, match="dense data is required"):
        TopKSAE(n_components=8, k=2, progress=False).fit(sp.csr_matrix(X))
    with pytest.raises(DimensionError, match="Reshape your data"):
        sae.transform(X[0])
    with pytest.raises(ValueError, match="Negative values in data passed to NMF"):
        NMF(n_components=2).fit(X)
    sae.partial_fit(X)  # a fitted SAE trains on
    assert sae.n_steps_ > 0
