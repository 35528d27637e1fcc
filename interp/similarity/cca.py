"""Canonical correlation analysis and its derivatives for comparing representations.

* :func:`cca`: canonical correlations ρ of column-centred X and Y from the singular values of Q_xᵀQ_y
  (QR of each; Björck & Golub 1973). Summaries: mean ρ (``"mean"``) or mean ρ² (``"mean_sq"``, Yanai's
  R²). Needs n > p + q for a meaningful answer (otherwise many ρ are 1 by construction).
* :func:`svcca`: keep the top singular directions of each side that explain ``keep`` of the variance
  (sum of s², Raghu et al. 2017, NeurIPS), then mean CCA ρ.
* :func:`pwcca`: projection-weighted mean ρ (Morcos et al. 2018, NeurIPS): weights α_i = Σ_j |⟨h_i, x_j⟩|
  with h_i the unit-norm canonical variates on X's side and x_j the centred columns of X.

Reference values (PAPERS.md 3.6 A): mean ρ 0.8901050, mean ρ² 0.8583, SVCCA(0.99) 0.78318.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError, DimensionError
from ._backend import as_pair

__all__ = ["canonical_correlations", "cca", "svcca", "pwcca"]


def _orthonormal_basis(X: torch.Tensor, tol: float = 1e-10) -> torch.Tensor:
    """Orthonormal basis of the column space of X (rank-revealing via SVD so collinear columns are fine)."""
    U, s, _ = torch.linalg.svd(X, full_matrices=False)
    keep = s > tol * s.max()
    return U[:, keep]


def canonical_correlations(x: Any, y: Any, *, dtype: torch.dtype | str | None = None,
                           device: str | torch.device | None = None) -> torch.Tensor:
    """Canonical correlations (descending) of column-centred ``x`` and ``y``.

    Parameters
    ----------
    x, y : array-like
        ``(samples, features)`` patterns with the same samples in the same order (arrays, tensors or
        Activations).
    dtype, device : optional
        Compute in this dtype and on this device (default: from the inputs).
    """
    return _canonical(x, y, dtype=dtype, device=device)[0]


def _canonical(x: Any, y: Any, *, dtype: torch.dtype | str | None = None, device: str | torch.device | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Canonical correlations, the unit-norm canonical variates on X's side (n x k) and centred X."""
    X, Y = as_pair(x, y, dtype=dtype, device=device)
    X = X - X.mean(0, keepdim=True)
    Y = Y - Y.mean(0, keepdim=True)
    Qx, Qy = _orthonormal_basis(X), _orthonormal_basis(Y)
    if Qx.shape[1] == 0 or Qy.shape[1] == 0:
        raise DimensionError("X or Y has no variance after centring; CCA is undefined")
    U, rho, _ = torch.linalg.svd(Qx.T @ Qy, full_matrices=False)
    rho = rho.clamp(0.0, 1.0)
    return rho, Qx @ U[:, : rho.shape[0]], X


def cca(x: Any, y: Any, *, summary: str = "mean", dtype: torch.dtype | str | None = None,
        device: str | torch.device | None = None) -> float:
    """Mean canonical correlation (``summary="mean"``) or mean squared (``"mean_sq"``).

    Parameters
    ----------
    x, y : array-like
        ``(samples, features)`` patterns with the same samples in the same order (arrays, tensors or
        Activations).
    summary : {"mean", "mean_sq"}
        Mean of the canonical correlations, or of their squares.
    dtype, device : optional
        Compute in this dtype and on this device (default: from the inputs).
    """
    rho = canonical_correlations(x, y, dtype=dtype, device=device)
    if summary == "mean":
        return float(rho.mean())
    if summary == "mean_sq":
        return float(rho.square().mean())
    raise ConfigError(f"unknown CCA summary {summary!r}; use 'mean' or 'mean_sq'")


def _top_directions(X: torch.Tensor, keep: float | int) -> torch.Tensor:
    X = X - X.mean(0, keepdim=True)
    U, s, _ = torch.linalg.svd(X, full_matrices=False)
    if isinstance(keep, int) and not isinstance(keep, bool):
        k = keep
    else:
        if not 0 < keep <= 1:
            raise ConfigError(f"keep must be a variance fraction in (0, 1] or a number of directions, got {keep}")
        frac = torch.cumsum(s**2, 0) / (s**2).sum()
        k = int(torch.searchsorted(frac, torch.as_tensor(keep, dtype=frac.dtype, device=frac.device) - 1e-12)) + 1
    k = max(1, min(k, s.shape[0]))
    return U[:, :k] * s[:k]


def svcca(x: Any, y: Any, *, keep: float | int = 0.99, dtype: torch.dtype | str | None = None,
          device: str | torch.device | None = None) -> float:
    """SVCCA: CCA on the top singular directions explaining ``keep`` of each side's variance (or ``keep`` dims).

    Parameters
    ----------
    x, y : array-like
        ``(samples, features)`` patterns with the same samples in the same order (arrays, tensors or
        Activations).
    keep : float or int
        Fraction of variance (< 1) or number of singular directions (>= 1) kept on each side.
    dtype, device : optional
        Compute in this dtype and on this device (default: from the inputs).
    """
    X, Y = as_pair(x, y, dtype=dtype, device=device)
    return float(canonical_correlations(_top_directions(X, keep), _top_directions(Y, keep)).mean())


def pwcca(x: Any, y: Any, *, dtype: torch.dtype | str | None = None, device: str | torch.device | None = None) -> float:
    """Projection-weighted CCA (Morcos et al. 2018), weighted by how much of X each canonical variate accounts for.

    Parameters
    ----------
    x, y : array-like
        ``(samples, features)`` patterns with the same samples in the same order (arrays, tensors or
        Activations).
    dtype, device : optional
        Compute in this dtype and on this device (default: from the inputs).
    """
    rho, H, Xc = _canonical(x, y, dtype=dtype, device=device)
    alpha = (H.T @ Xc).abs().sum(1)
    return float((alpha * rho).sum() / alpha.sum())
