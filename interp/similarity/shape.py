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

import torch

from ..errors import ConfigError
from ._backend import as_pair

__all__ = ["procrustes", "shape_distance", "ProcrustesResult"]


@dataclass
class ProcrustesResult:
    """``rotation`` (q x p, zero-padded) maps centred Y onto centred X: X̃ ≈ Ỹ @ rotation."""

    angular: float
    euclidean: float
    nbs: float
    rotation: torch.Tensor = field(repr=False)


def _centre_and_nuclear(x: Any, y: Any, dtype, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple]:
    X, Y = as_pair(x, y, dtype=dtype, device=device)
    X = X - X.mean(0, keepdim=True)
    Y = Y - Y.mean(0, keepdim=True)
    U, s, Vh = torch.linalg.svd(Y.T @ X, full_matrices=False)
    return X, Y, s.sum(), (U, Vh)


def procrustes(x: Any, y: Any, *, dtype: torch.dtype | str | None = None,
               device: str | torch.device | None = None) -> ProcrustesResult:
    """Orthogonal Procrustes alignment of ``y`` onto ``x`` with angular and Euclidean shape distances."""
    X, Y, nuc, (U, Vh) = _centre_and_nuclear(x, y, dtype, device)
    nx, ny = torch.linalg.norm(X), torch.linalg.norm(Y)
    cos = (nuc / (nx * ny)).clamp(-1.0, 1.0)
    eucl = torch.sqrt((nx**2 + ny**2 - 2 * nuc).clamp_min(0))
    return ProcrustesResult(float(torch.arccos(cos)), float(eucl), float(cos), U @ Vh)


def shape_distance(x: Any, y: Any, kind: str = "angular", *, dtype: torch.dtype | str | None = None,
                   device: str | torch.device | None = None) -> float:
    """Shape distance between ``x`` and ``y``: ``kind="angular"`` (radians), ``"euclidean"`` or ``"nbs"``."""
    if kind not in ("angular", "euclidean", "nbs"):
        raise ConfigError(f"unknown shape distance {kind!r}; use 'angular', 'euclidean' or 'nbs'")
    res = procrustes(x, y, dtype=dtype, device=device)
    return getattr(res, kind)
