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
cost n(p² + q² + pq) vs n²(p + q). The symmetric products (``XᵀX`` or ``XXᵀ``) are formed from their
column (row) blocks on and above the diagonal only: up to ~45% fewer multiply-adds than the plain
formula, and one block as the largest temporary. No explicit centring matrix H is ever built.
The unbiased values can be <= 0; if HSIC(K, K) or HSIC(L, L) <= 0 the ratio is undefined and
:class:`~interp.errors.NaNError` is raised (a constant input gives HSIC = 0 with every estimator).

RBF kernel: k(x, y) = exp(-‖x-y‖² / (2σ²)). ``sigma`` is absolute (thingsvision's default is 1) or
``"median"``: σ = sigma_scale · sqrt(median of the non-zero squared distances) (Brain-Score's ``rbf``
convention with ``sigma_scale=1``; Kornblith uses a fraction of the median distance).

Two functions, one return type each: :func:`cka` returns the number (what permutation tests, bootstraps
and :func:`~interp.similarity.compare` use); :func:`cka_details` returns a :class:`CKAResult` that also
names the kernel, the estimator, the σ used on each side and the three HSIC terms.

>>> import torch
>>> from interp.similarity import cka
>>> X = torch.randn(50, 10, dtype=torch.float64)
>>> round(cka(X, X), 6)
1.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..errors import ConfigError, NaNError
from ..results import Result, themed
from ._backend import as_pair

__all__ = ["cka", "cka_details", "CKAResult", "hsic", "linear_hsic_terms", "rbf_kernel", "gram_sq_norm",
           "cross_sq_norm", "CKA_ESTIMATORS"]

CKA_ESTIMATORS = ("biased", "song", "lange")


@dataclass
class CKAResult(Result):
    """CKA of two representations with everything needed to reproduce it (Kornblith et al. 2019).

    ``value`` is HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with the named ``kernel`` and ``estimator``;
    ``sigma_x``/``sigma_y`` are the RBF bandwidths used (None for the linear kernel) and
    ``sigma_rule`` says how they were chosen; ``hsic_xy``, ``hsic_xx``, ``hsic_yy`` are the three terms
    (for ``"biased"`` without the common 1/(n-1)² factor, which cancels).

    Parameters
    ----------
    value : float
        The CKA.
    kernel, estimator : str
        The kernel and the HSIC estimator.
    n_samples : int
        Samples compared.
    hsic_xy, hsic_xx, hsic_yy : float
        The three HSIC terms.
    sigma_x, sigma_y : float, optional
        RBF bandwidths used (None for the linear kernel).
    sigma_rule : str, optional
        How the bandwidths were chosen.

    >>> import torch
    >>> X = torch.randn(50, 10, dtype=torch.float64)
    >>> round(cka_details(X, X).value, 6)
    1.0
    """

    value: float
    kernel: str
    estimator: str
    n_samples: int
    hsic_xy: float
    hsic_xx: float
    hsic_yy: float
    sigma_x: float | None = None
    sigma_y: float | None = None
    sigma_rule: str | None = None

    def to_frame(self) -> pd.DataFrame:
        """One row: the value, the kernel, the estimator, σ on each side and the HSIC terms."""
        return pd.DataFrame([{"cka": self.value, "kernel": self.kernel, "estimator": self.estimator,
                              "n_samples": self.n_samples, "hsic_xy": self.hsic_xy, "hsic_xx": self.hsic_xx,
                              "hsic_yy": self.hsic_yy, "sigma_x": self.sigma_x, "sigma_y": self.sigma_y,
                              "sigma_rule": self.sigma_rule}])

    def summary(self) -> str:
        """The value and how it was computed."""
        lines = [f"CKA {self.value:.4f} ({self.kernel} kernel, {self.estimator} HSIC, {self.n_samples} samples)"]
        if self.sigma_x is not None:
            lines.append(f"  sigma {self.sigma_x:.4g} (x), {self.sigma_y:.4g} (y): {self.sigma_rule}")
        lines.append(f"  HSIC(x,y) {self.hsic_xy:.4g}, HSIC(x,x) {self.hsic_xx:.4g}, HSIC(y,y) {self.hsic_yy:.4g}")
        return "\n".join(lines)

    def plot(self, **kwargs: Any) -> Any:
        """The value as a bar on the [0, 1] scale of CKA (plotly)."""
        import plotly.graph_objects as go

        fig = go.Figure(go.Bar(x=[self.value], y=[f"{self.kernel} CKA ({self.estimator})"], orientation="h",
                               text=[f"{self.value:.3f}"], textposition="auto"))
        return themed(fig, title=kwargs.get("title", "Centered kernel alignment"), height=200,
                      xaxis=dict(range=[min(0.0, self.value if self.value == self.value else 0.0), 1], title="CKA"))


def _check_estimator(estimator: str) -> str:
    if estimator not in CKA_ESTIMATORS:
        raise ConfigError(f"unknown CKA estimator {estimator!r}; use one of {CKA_ESTIMATORS} "
                          "('song' is the unbiased HSIC of Song et al. 2012)")
    return estimator


_CROSS_MAX = 1 << 26  # entries of Y^T X formed in one GEMM (268 MB in float32)
_MIN_BLOCK, _MAX_BLOCKS = 512, 8  # narrower blocks lose more GEMM speed than symmetry saves (measured, 1 thread)


def _dot64(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``<a, b>`` of two equal-shape blocks, accurate to ~1e-8: BLAS dots over 65,536-entry chunks summed in
    float64 (one float32 dot over the 16M entries of a 4096-wide product drifts by ~1e-4 relative; a
    float64 reduction is ~10x slower). On a GPU: one float64 reduction."""
    if a.dim() == 2 and not a.is_contiguous() and a.T.is_contiguous() and b.T.is_contiguous():
        a, b = a.T, b.T  # a column-major block (syrk's Fortran output): flatten its transpose, no copy
    fa, fb = a.reshape(-1), b.reshape(-1)
    if fa.device.type != "cpu":
        return torch.dot(fa.double(), fb.double())
    total = sum(float(torch.dot(x, y)) for x, y in zip(fa.split(1 << 16), fb.split(1 << 16)))
    return torch.tensor(total, dtype=torch.float64)


def _sq(t: torch.Tensor) -> torch.Tensor:
    """``||t||_F^2`` (:func:`_dot64`)."""
    return _dot64(t, t)


def _blocks(p: int) -> list[slice]:
    n_blocks = max(1, min(_MAX_BLOCKS, p // _MIN_BLOCK))
    edges = [round(i * p / n_blocks) for i in range(n_blocks + 1)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


def gram_sq_norm(X: torch.Tensor) -> torch.Tensor:
    """``||X^T X||_F^2`` from the blocks on and above the diagonal of ``X^T X`` (off-diagonal blocks twice).

    On the CPU: BLAS ``?syrk`` (:func:`_syrk_sq_norm`, the upper triangle only). Elsewhere (GPU): symmetry
    saves ``b(b+1)/2`` of ``b^2`` column-block GEMMs against the plain ``(X.T @ X).square().sum()``, and the
    largest temporary is one block, not the ``p x p`` product.

    Parameters
    ----------
    X : torch.Tensor
        An ``(n, p)`` matrix.
    """
    if X.device.type == "cpu" and X.dtype in (torch.float32, torch.float64) and not X.requires_grad:
        return _syrk_sq_norm(X)
    parts = _blocks(X.shape[1])
    total = X.new_zeros((), dtype=torch.float64)
    for i, a in enumerate(parts):
        Xa = X[:, a]
        total += _sq(Xa.T @ Xa)
        for b in parts[i + 1:]:
            total += 2 * _sq(Xa.T @ X[:, b])
    return total


def _syrk_sq_norm(X: torch.Tensor) -> torch.Tensor:
    """``||X^T X||_F^2`` on the CPU with BLAS ``?syrk`` (the upper triangle only: half the multiply-adds of a
    GEMM, as numpy's ``a.T @ a``): ``2 * sum(upper^2) - sum(diagonal^2)``. No copy of ``X``: its transpose is
    the Fortran-ordered ``(p, n)`` operand."""
    from scipy.linalg import blas

    a = X.contiguous().numpy()
    syrk = blas.ssyrk if a.dtype == np.float32 else blas.dsyrk
    upper = torch.from_numpy(syrk(1.0, a.T, trans=0, lower=0))  # the strict lower triangle stays 0
    return 2 * _sq(upper) - _sq(torch.diagonal(upper).contiguous())


def cross_sq_norm(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """``||Y^T X||_F^2``: one GEMM (the plain formula's ``q x p`` temporary) up to 2**26 entries, column blocks of
    ``X`` beyond (a ``q x block`` temporary).

    Parameters
    ----------
    X, Y : torch.Tensor
        ``(n, p)`` and ``(n, q)`` matrices.
    """
    if X.shape[1] * Y.shape[1] <= _CROSS_MAX:
        return _sq(X.T @ Y)
    total = X.new_zeros((), dtype=torch.float64)
    for a in _blocks(X.shape[1]):
        total += _sq(X[:, a].T @ Y)
    return total


def _linear_feature_space(X: torch.Tensor, Y: torch.Tensor, estimator: str) -> tuple[torch.Tensor, ...]:
    """HSIC(K,L), HSIC(K,K), HSIC(L,L) for linear kernels of centred X, Y without n x n matrices."""
    n = X.shape[0]
    xy = cross_sq_norm(X, Y)
    xx = gram_sq_norm(X)
    yy = gram_sq_norm(Y)
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
    """HSIC of two ``(n, n)`` kernel matrices with the named estimator (K, L are not modified).

    Parameters
    ----------
    K, L : torch.Tensor
        ``(n, n)`` kernel matrices.
    estimator : {"biased", "song", "lange"}
        The HSIC estimator.
    """
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
    """RBF kernel exp(-d²/(2σ²)) and the σ used (see module docstring for ``"median"``).

    Parameters
    ----------
    X : torch.Tensor
        ``(n, p)`` patterns.
    sigma : float or "median"
        The bandwidth, or the median rule.
    sigma_scale : float
        A factor on the bandwidth.
    """
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


def _gram_space_biased(X: torch.Tensor, Y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``(<K, L>, ||K||^2, ||L||^2)`` of ``K = X X^T``, ``L = Y Y^T`` from row blocks on and above the diagonal."""
    parts = _blocks(X.shape[0])
    kl, kk, ll = (X.new_zeros((), dtype=torch.float64) for _ in range(3))
    for i, a in enumerate(parts):
        for b in parts[i:]:
            w = 1 if a == b else 2
            K, L = X[a] @ X[b].T, Y[a] @ Y[b].T
            kl += w * _dot64(K, L)
            kk += w * _sq(K)
            ll += w * _sq(L)
    return kl, kk, ll


def linear_hsic_terms(X: torch.Tensor, Y: torch.Tensor, estimator: str = "biased") -> tuple[torch.Tensor, ...]:
    """(HSIC(X,Y), HSIC(X,X), HSIC(Y,Y)) for linear kernels, in feature or Gram space, whichever is cheaper.

    For ``"biased"`` the 1/(n-1)² factor is omitted (it cancels in CKA).

    Parameters
    ----------
    X, Y : torch.Tensor
        Centred ``(n, p)`` and ``(n, q)`` matrices.
    estimator : {"biased", "song", "lange"}
        The HSIC estimator.
    """
    X = X - X.mean(0, keepdim=True)
    Y = Y - Y.mean(0, keepdim=True)
    n, p = X.shape
    q = Y.shape[1]
    # multiply-adds: feature space n(p^2 + q^2 + pq), Gram space n^2 (p + q); symmetry saves alike on both sides
    if n * (p * p + q * q + p * q) <= n * n * (p + q):
        return _linear_feature_space(X, Y, estimator)
    if estimator == "biased":  # centred data: K and L are already double-centred; row blocks on/above the diagonal
        return _gram_space_biased(X, Y)
    K, L = X @ X.T, Y @ Y.T
    return hsic(K, L, estimator), hsic(K, K, estimator), hsic(L, L, estimator)


def cka_details(x: Any, y: Any, *, kernel: str = "linear", estimator: str = "biased",
                sigma: float | str = "median", sigma_scale: float = 1.0, dtype: torch.dtype | str | None = None,
                device: str | torch.device | None = None, nan_policy: str = "raise") -> CKAResult:
    """Centered kernel alignment of ``x`` and ``y`` as a :class:`CKAResult` (value, σ used, HSIC terms).

    Same arguments as :func:`cka`, which returns only the number.

    Parameters
    ----------
    x, y : array-like
        ``(samples, features)`` patterns with the same samples in the same order (arrays, tensors or
        Activations).
    kernel : {"linear", "rbf"}
        The kernel.
    estimator : {"biased", "song", "lange"}
        The HSIC estimator.
    sigma, sigma_scale : float or "median", float
        RBF bandwidth and a factor on it.
    dtype, device : optional
        Compute in this dtype and on this device (default: from the inputs).
    nan_policy : {"raise", "drop"}
        Raise on NaN, or drop features holding NaN.

    >>> import torch
    >>> X = torch.randn(40, 8, dtype=torch.float64)
    >>> cka_details(X, 2 * X, kernel="rbf").sigma_rule
    'sigma = sigma_scale * sqrt(median squared distance), sigma_scale=1'
    """
    _check_estimator(estimator)
    X, Y = as_pair(x, y, dtype=dtype, device=device, nan_policy=nan_policy)
    if estimator != "biased" and X.shape[0] < 4:
        raise ConfigError(f"the {estimator!r} estimator needs n >= 4 samples, got {X.shape[0]}")
    sx = sy = rule = None
    if kernel == "linear":
        xy, xx, yy = linear_hsic_terms(X, Y, estimator)
    elif kernel == "rbf":
        K, sx = rbf_kernel(X, sigma, sigma_scale)
        L, sy = rbf_kernel(Y, sigma, sigma_scale)
        rule = (f"sigma = sigma_scale * sqrt(median squared distance), sigma_scale={sigma_scale:g}"
                if isinstance(sigma, str) else "absolute sigma")
        xy, xx, yy = hsic(K, L, estimator), hsic(K, K, estimator), hsic(L, L, estimator)
    else:
        raise ConfigError(f"unknown CKA kernel {kernel!r}; use 'linear' or 'rbf'")
    if float(xx) <= 0 or float(yy) <= 0:
        which = " and ".join(n for n, h in (("X", xx), ("Y", yy)) if float(h) <= 0)
        raise NaNError(f"CKA is undefined: HSIC({which},{which}) <= 0 (HSIC(X,X)={float(xx):.3g}, HSIC(Y,Y)="
                       f"{float(yy):.3g} with the {estimator!r} estimator), so the normalised score is 0/0; {which} "
                       "is constant across samples (or too small a sample for an unbiased estimator): drop constant "
                       "features/sites, or use more samples")
    value = float(xy / torch.sqrt(xx * yy))
    return CKAResult(value, kernel, estimator, int(X.shape[0]), float(xy), float(xx), float(yy), sx, sy, rule)


def cka(x: Any, y: Any, *, kernel: str = "linear", estimator: str = "biased", sigma: float | str = "median",
        sigma_scale: float = 1.0, dtype: torch.dtype | str | None = None, device: str | torch.device | None = None,
        nan_policy: str = "raise") -> float:
    """Centered kernel alignment between ``x`` and ``y`` (samples x features; same samples): a float.

    :func:`cka_details` returns the same value with the σ used and the HSIC terms.

    Parameters
    ----------
    x, y : array-like
        ``(samples, features)`` matrices with the same samples (arrays, tensors or Activations).
    kernel : {"linear", "rbf"}
        The kernel.
    estimator : {"biased", "song", "lange"}
        ``"biased"`` (Gretton), ``"song"`` (unbiased, Song et al. 2012) or ``"lange"``.
    sigma, sigma_scale : float or "median", float
        RBF bandwidth (absolute number or ``"median"``) and a factor on it.
    dtype, device : optional
        Compute in this dtype / on this device.
    nan_policy : {"raise", "drop"}
        Raise on NaN, or drop features holding NaN (e.g. dead voxels).

    Notes
    -----
    Reference values (PAPERS.md 3.6 A, ``np.random.seed(0)``, X, Y uniform 30 x 25): linear biased
    0.4893427, linear Song 0.0235987, linear Lange 0.0533364, RBF σ=1 biased 0.8940268, RBF σ=1 Song
    0.0676394.

    >>> import torch
    >>> X = torch.randn(30, 5, dtype=torch.float64)
    >>> round(cka(X, X @ torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64))[0]), 6)  # rotation-invariant
    1.0
    """
    return cka_details(x, y, kernel=kernel, estimator=estimator, sigma=sigma, sigma_scale=sigma_scale, dtype=dtype,
                       device=device, nan_policy=nan_policy).value
