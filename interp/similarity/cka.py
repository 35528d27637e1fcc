"""Centered kernel alignment (Kornblith et al. 2019, ICML; Cortes et al. 2012).

CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with three HSIC estimators, named explicitly
because "debiased CKA" is ambiguous (PAPERS.md 3.1):

* ``"biased"``: Gretton et al. 2005, tr(K H L H) / (n-1)².
* ``"song"``: the unbiased estimator of Song et al. 2012 (JMLR 13:1393), equal to the inner product of
  U-centred kernels (Székely & Rizzo 2014):
  [tr(K̃L̃) + 1ᵀK̃1·1ᵀL̃1/((n-1)(n-2)) - 2/(n-2)·1ᵀK̃L̃1] / (n(n-3)), K̃ = K with zero diagonal.
* ``"lange"``: double-centre, zero the diagonal, then sum / (n(n-3)) (the variant netrep / rsatoolbox
  derivations use; a different number).

The linear kernel is computed in feature space (``‖YᵀX‖²_F`` etc., never n x n) when that is cheaper:
cost n(p² + q² + pq) vs n²(p + q). No explicit centring matrix H is ever built.
The unbiased values can be <= 0; if HSIC(K, K) or HSIC(L, L) <= 0 the ratio is undefined and ``nan``
is returned with a warning.

RBF kernel: k(x, y) = exp(-‖x-y‖² / (2σ²)). ``sigma`` is absolute (thingsvision's default is 1) or
``"median"``: σ = sigma_scale · sqrt(median of the non-zero squared distances) (Brain-Score's ``rbf``
convention with ``sigma_scale=1``; Kornblith uses a fraction of the median distance). The convention
used is recorded in :class:`CKAResult`.

>>> import torch
>>> from interp.similarity import cka
>>> X = torch.randn(50, 10, dtype=torch.float64)
>>> round(cka(X, X), 6)
1.0
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ConfigError
from ._backend import as_pair

__all__ = ["cka", "hsic", "linear_hsic_terms", "rbf_kernel", "CKA_ESTIMATORS"]

CKA_ESTIMATORS = ("biased", "song", "lange")


@dataclass
class CKAResult:
    value: float
    kernel: str
    estimator: str
    sigma: str | None = None


def _check_estimator(estimator: str) -> str:
    if estimator not in CKA_ESTIMATORS:
        raise ConfigError(f"unknown CKA estimator {estimator!r}; use one of {CKA_ESTIMATORS} "
                          "('song' is the unbiased HSIC of Song et al. 2012)")
    return estimator


def _linear_feature_space(X: torch.Tensor, Y: torch.Tensor, estimator: str) -> tuple[torch.Tensor, ...]:
    """HSIC(K,L), HSIC(K,K), HSIC(L,L) for linear kernels of centred X, Y without n x n matrices."""
    n = X.shape[0]
    xy = (Y.T @ X).square().sum()
    xx = (X.T @ X).square().sum()
    yy = (Y.T @ Y).square().sum()
    if estimator == "biased":
        return xy, xx, yy
    k = X.square().sum(1)  # diagonal of K (centred X: K 1 = 0)
    m = Y.square().sum(1)

    def unbiased(kl: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # tr(K̃L̃) = <K,L> - Σ a b ; 1ᵀK̃1 = -Σa ; 1ᵀK̃L̃1 = (K̃1)·(L̃1) = a·b  (rows of K sum to 0)
        off = kl - a @ b
        if estimator == "lange":
            return off / (n * (n - 3))
        return (off + a.sum() * b.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (a @ b)) / (n * (n - 3))

    return unbiased(xy, k, m), unbiased(xx, k, k), unbiased(yy, m, m)


def hsic(K: torch.Tensor, L: torch.Tensor, estimator: str = "biased") -> torch.Tensor:
    """HSIC of two ``(n, n)`` kernel matrices with the named estimator (K, L are not modified)."""
    _check_estimator(estimator)
    n = K.shape[0]
    if estimator == "biased":
        Kc = K - K.mean(0, keepdim=True) - K.mean(1, keepdim=True) + K.mean()
        return (Kc * L).sum() / (n - 1) ** 2  # tr(HKHL) = <HKH, L>
    if n < 4:
        raise ConfigError(f"unbiased HSIC needs n >= 4 samples, got {n}")
    Kt = K - torch.diag_embed(torch.diagonal(K))
    Lt = L - torch.diag_embed(torch.diagonal(L))
    if estimator == "lange":
        Kc = K - K.mean(0, keepdim=True) - K.mean(1, keepdim=True) + K.mean()
        Lc = L - L.mean(0, keepdim=True) - L.mean(1, keepdim=True) + L.mean()
        Kc = Kc - torch.diag_embed(torch.diagonal(Kc))
        Lc = Lc - torch.diag_embed(torch.diagonal(Lc))
        return (Kc * Lc).sum() / (n * (n - 3))
    k1, l1 = Kt.sum(1), Lt.sum(1)
    return ((Kt * Lt).sum() + k1.sum() * l1.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (k1 @ l1)) / (n * (n - 3))


def rbf_kernel(X: torch.Tensor, sigma: float | str = "median", sigma_scale: float = 1.0) -> tuple[torch.Tensor, float]:
    """RBF kernel exp(-d²/(2σ²)) and the σ used (see module docstring for ``"median"``)."""
    sq = X.square().sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2 * X @ X.T).clamp_min(0)
    d2.fill_diagonal_(0)
    if isinstance(sigma, str):
        if sigma != "median":
            raise ConfigError(f"sigma must be a positive number or 'median', got {sigma!r}")
        iu = torch.triu_indices(*d2.shape, offset=1, device=d2.device)
        vals = d2[iu[0], iu[1]]
        vals = vals[vals > 0]
        s = float(sigma_scale * torch.sqrt(vals.median())) if vals.numel() else 1.0
    else:
        if sigma <= 0:
            raise ConfigError(f"sigma must be positive, got {sigma}")
        s = float(sigma)
    return torch.exp(-d2 / (2 * s * s)), s


def linear_hsic_terms(X: torch.Tensor, Y: torch.Tensor, estimator: str = "biased") -> tuple[torch.Tensor, ...]:
    """(HSIC(X,Y), HSIC(X,X), HSIC(Y,Y)) for linear kernels, in feature or Gram space, whichever is cheaper.

    For ``"biased"`` the 1/(n-1)² factor is omitted (it cancels in CKA)."""
    X = X - X.mean(0, keepdim=True)
    Y = Y - Y.mean(0, keepdim=True)
    n, p = X.shape
    q = Y.shape[1]
    if n * (p * p + q * q + p * q) <= n * n * (p + q):
        return _linear_feature_space(X, Y, estimator)
    K, L = X @ X.T, Y @ Y.T
    if estimator == "biased":  # centred data: K and L are already double-centred
        return (K * L).sum(), K.square().sum(), L.square().sum()
    return hsic(K, L, estimator), hsic(K, K, estimator), hsic(L, L, estimator)


def cka(x: Any, y: Any, *, kernel: str = "linear", estimator: str = "biased", sigma: float | str = "median",
        sigma_scale: float = 1.0, dtype: torch.dtype | str | None = None, device: str | torch.device | None = None,
        return_result: bool = False, nan_policy: str = "raise") -> float | CKAResult:
    """Centered kernel alignment between ``x`` and ``y`` (samples x features; same samples).

    Parameters
    ----------
    kernel: ``"linear"`` or ``"rbf"``.
    estimator: ``"biased"`` (Gretton), ``"song"`` (unbiased, Song et al. 2012) or ``"lange"``.
    sigma, sigma_scale: RBF bandwidth (absolute number or ``"median"``).
    return_result: return a :class:`CKAResult` naming kernel, estimator and σ convention.
    nan_policy: ``"raise"`` or ``"drop"`` (drop features holding NaN, e.g. dead voxels).

    Reference values (PAPERS.md 3.6 A, ``np.random.seed(0)``, X, Y uniform 30 x 25): linear biased
    0.4893427, linear Song 0.0235987, linear Lange 0.0533364, RBF σ=1 biased 0.8940268, RBF σ=1 Song
    0.0676394.
    """
    _check_estimator(estimator)
    X, Y = as_pair(x, y, dtype=dtype, device=device, nan_policy=nan_policy)
    if estimator != "biased" and X.shape[0] < 4:
        raise ConfigError(f"the {estimator!r} estimator needs n >= 4 samples, got {X.shape[0]}")
    sigma_note = None
    if kernel == "linear":
        xy, xx, yy = linear_hsic_terms(X, Y, estimator)
    elif kernel == "rbf":
        K, sx = rbf_kernel(X, sigma, sigma_scale)
        L, sy = rbf_kernel(Y, sigma, sigma_scale)
        sigma_note = (f"sigma=sigma_scale*sqrt(median d^2): {sx:.6g} (X), {sy:.6g} (Y)" if isinstance(sigma, str)
                      else f"absolute sigma={sx:g}")
        xy, xx, yy = hsic(K, L, estimator), hsic(K, K, estimator), hsic(L, L, estimator)
    else:
        raise ConfigError(f"unknown CKA kernel {kernel!r}; use 'linear' or 'rbf'")
    if float(xx) <= 0 or float(yy) <= 0:
        warnings.warn(f"CKA undefined: HSIC(X,X)={float(xx):.3g}, HSIC(Y,Y)={float(yy):.3g} (<= 0 with the "
                      f"{estimator!r} estimator); returning nan", RuntimeWarning, stacklevel=2)
        value = float("nan")
    else:
        value = float(xy / torch.sqrt(xx * yy))
    if return_result:
        return CKAResult(value, kernel, estimator, sigma_note)
    return value
