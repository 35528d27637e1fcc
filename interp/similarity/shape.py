"""Orthogonal Procrustes and shape distances (Williams et al. 2021, NeurIPS, "Generalized shape metrics").

With X̃, Ỹ column-centred (and implicitly zero-padded to the same width, which leaves ‖X̃ᵀỸ‖_* unchanged):

* angular distance  d_θ = arccos(‖X̃ᵀỸ‖_* / (‖X̃‖_F ‖Ỹ‖_F))  (invariant to rotation, isotropic scale, offset);
* Euclidean distance d = sqrt(‖X̃‖² + ‖Ỹ‖² - 2‖X̃ᵀỸ‖_*)  (= min over orthogonal Q of ‖X̃ - ỸQ‖_F);
* normalised Bures similarity NBS = cos(d_θ).

Reference values (PAPERS.md 3.6 A): angular 0.7629816, Euclidean 5.851126, NBS 0.7227787.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from ..errors import ConfigError
from ..results import Result, themed
from ._backend import as_pair

__all__ = ["procrustes", "shape_distance", "ProcrustesResult"]


@dataclass
class ProcrustesResult(Result):
    """Shape distances of two representations after orthogonal Procrustes alignment (Williams et al. 2021).

    ``angular`` (radians), ``euclidean`` and ``nbs`` (normalised Bures similarity, cos of the angular
    distance); ``rotation`` (q x p, zero-padded) maps centred Y onto centred X: X̃ ≈ Ỹ @ rotation
    (None if not computed).

    Parameters
    ----------
    angular : float
        Angular shape distance (radians).
    euclidean : float
        Euclidean shape distance.
    nbs : float
        Normalised Bures similarity.
    rotation : torch.Tensor, optional
        The ``(q, p)`` rotation mapping centred y onto centred x.

    >>> import torch
    >>> X = torch.randn(30, 4, dtype=torch.float64)
    >>> round(procrustes(X, X).nbs, 6)
    1.0
    """

    angular: float
    euclidean: float
    nbs: float
    rotation: torch.Tensor | None = field(default=None, repr=False)

    def to_frame(self) -> pd.DataFrame:
        """One row: angular distance (radians), Euclidean distance and NBS."""
        return pd.DataFrame([{"angular": self.angular, "euclidean": self.euclidean, "nbs": self.nbs,
                              "has_rotation": self.rotation is not None}])

    def summary(self) -> str:
        """The three numbers in one line each."""
        return (f"Procrustes shape distance: angular {self.angular:.4f} rad ({self.angular * 180 / 3.141592653589793:.1f}"
                f" deg)\n  Euclidean {self.euclidean:.4g}, normalised Bures similarity {self.nbs:.4f}")

    def plot(self, **kwargs: Any) -> Any:
        """The rotation as a heatmap when it was computed, else the angular distance and NBS as bars."""
        import plotly.graph_objects as go

        if self.rotation is not None:
            fig = go.Figure(go.Heatmap(z=self.rotation.detach().cpu().numpy(), colorscale="RdBu", zmid=0))
            return themed(fig, title=kwargs.get("title", f"Procrustes rotation (NBS {self.nbs:.3f})"),
                          xaxis_title="x feature", yaxis_title="y feature")
        fig = go.Figure(go.Bar(x=["angular (rad)", "NBS"], y=[self.angular, self.nbs]))
        return themed(fig, title=kwargs.get("title", "Procrustes shape distance"))


def _nuclear_and_rotation(X: torch.Tensor, Y: torch.Tensor, want_rotation: bool):
    """‖X̃ᵀỸ‖_* and (optionally) the rotation. With many features (p, q > n) the nuclear norm comes from
    the n x n matrix (U_x S_x)ᵀ(U_y S_y), which has the same singular values as X̃ᵀỸ."""
    n, p = X.shape
    q = Y.shape[1]
    if want_rotation or min(p, q) <= n:
        U, s, Vh = torch.linalg.svd(Y.T @ X, full_matrices=False)
        return s.sum(), (U @ Vh if want_rotation else None)
    Ux, Sx, _ = torch.linalg.svd(X, full_matrices=False)
    Uy, Sy, _ = torch.linalg.svd(Y, full_matrices=False)
    return torch.linalg.svdvals((Ux * Sx).T @ (Uy * Sy)).sum(), None


def procrustes(x: Any, y: Any, *, dtype: torch.dtype | str | None = None, device: str | torch.device | None = None,
               return_rotation: bool | None = None) -> ProcrustesResult:
    """Orthogonal Procrustes alignment of ``y`` onto ``x`` with angular and Euclidean shape distances.

    ``return_rotation``: compute the q x p rotation (default: only when q·p <= 4e6, since it is dense).

    Parameters
    ----------
    x, y : array-like
        ``(samples, features)`` patterns with the same samples in the same order (arrays, tensors or
        Activations).
    dtype, device : optional
        Compute in this dtype and on this device (default: from the inputs).
    return_rotation : bool, optional
        Compute the dense rotation (default: only when q·p <= 4e6).
    """
    X, Y = as_pair(x, y, dtype=dtype, device=device)
    X = X - X.mean(0, keepdim=True)
    Y = Y - Y.mean(0, keepdim=True)
    if return_rotation is None:
        return_rotation = X.shape[1] * Y.shape[1] <= 4_000_000
    nuc, rotation = _nuclear_and_rotation(X, Y, return_rotation)
    nx, ny = torch.linalg.norm(X), torch.linalg.norm(Y)
    cos = (nuc / (nx * ny)).clamp(-1.0, 1.0)
    eucl = torch.sqrt((nx**2 + ny**2 - 2 * nuc).clamp_min(0))
    return ProcrustesResult(float(torch.arccos(cos)), float(eucl), float(cos), rotation)


def shape_distance(x: Any, y: Any, kind: str = "angular", *, dtype: torch.dtype | str | None = None,
                   device: str | torch.device | None = None) -> float:
    """Shape distance between ``x`` and ``y``: ``kind="angular"`` (radians), ``"euclidean"`` or ``"nbs"``.

    Parameters
    ----------
    x, y : array-like
        ``(samples, features)`` patterns with the same samples in the same order (arrays, tensors or
        Activations).
    kind : {"angular", "euclidean", "nbs"}
        Which distance.
    dtype, device : optional
        Compute in this dtype and on this device (default: from the inputs).
    """
    if kind not in ("angular", "euclidean", "nbs"):
        raise ConfigError(f"unknown shape distance {kind!r}; use 'angular', 'euclidean' or 'nbs'")
    res = procrustes(x, y, dtype=dtype, device=device)
    return getattr(res, kind)
