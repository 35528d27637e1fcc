"""Comparing RDMs: the second step of representational similarity analysis (Kriegeskorte et al. 2008,
Front. Syst. Neurosci. 2:4).

Comparators (names as in rsatoolbox's ``compare``, aliases in brackets):

* ``"pearson"`` (``"corr"``): Pearson r of the upper triangles.
* ``"spearman"``: Spearman ρ with average ranks for ties.
* ``"rho-a"``: expected Spearman ρ under random tie-breaking, 12 Σ r̃x r̃y / (m³ - m) on mean-centred
  average ranks (Schütt et al. 2023). The measure rsatoolbox recommends.
* ``"tau-a"``: Kendall τa = (n_concordant - n_discordant) / (m(m-1)/2). Ties count as neither and the
  denominator does not shrink, so **τa(x, x) < 1 whenever x has ties** (e.g. a categorical model RDM:
  τa = 0.5143 for ``['a','a','a','b','b','b']``, PAPERS.md 3.6 C). Computed from scipy's public
  ``kendalltau`` (τb) by undoing its tie correction, O(m log m).
* ``"tau-b"`` (``"kendall"``): scipy's τb.
* ``"cosine"``: cosine of the raw upper triangles.
* ``"whitened_cosine"`` (``"cosine_cov"``): cosine after whitening by the RDM-entry covariance under
  i.i.d. pattern noise (Diedrichsen et al. 2021). This equals the Frobenius cosine of the double-centred
  second-moment matrices G = -½ H D H, so on squared-Euclidean RDMs it **equals linear CKA**.
* ``"whitened_pearson"`` (``"corr_cov"``): the same after removing each RDM vector's mean.

Inputs are :class:`~interp.similarity.rdm.RDMs`, square ``(n, n)`` matrices, stacks ``(k, n, n)`` or
upper-triangle vectors. Computation is torch (any device) except τ, which uses scipy on the CPU.

>>> import numpy as np
>>> from interp.similarity import compare_rdms
>>> a = np.random.default_rng(0).random((6, 6)); a = a + a.T; np.fill_diagonal(a, 0)
>>> round(compare_rdms(a, a, method="spearman"), 6)
1.0
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.stats
import torch

from ..errors import ConfigError, DimensionError
from ._ranking import ranks, spearman_pair
from .rdm import RDMs, as_rdm_vectors, rdm, rdm_vector, square, upper_tri

__all__ = ["compare_rdms", "compare_vectors", "rsa", "COMPARATORS", "rankdata", "canonical_method"]

_ALIASES = {
    "pearson": "pearson", "corr": "pearson", "correlation": "pearson",
    "spearman": "spearman",
    "rho-a": "rho-a", "rho_a": "rho-a",
    "tau-a": "tau-a", "tau_a": "tau-a", "kendall_tau_a": "tau-a",
    "tau-b": "tau-b", "tau_b": "tau-b", "kendall": "tau-b",
    "cosine": "cosine",
    "whitened_cosine": "whitened_cosine", "cosine_cov": "whitened_cosine",
    "whitened_pearson": "whitened_pearson", "corr_cov": "whitened_pearson",
}
COMPARATORS = ("pearson", "spearman", "rho-a", "tau-a", "tau-b", "cosine", "whitened_cosine", "whitened_pearson")

# rsatoolbox's names, for pooling / reporting
RSATOOLBOX_NAMES = {"pearson": "corr", "spearman": "spearman", "rho-a": "rho-a", "tau-a": "tau-a",
                    "tau-b": "tau-b", "cosine": "cosine", "whitened_cosine": "cosine_cov",
                    "whitened_pearson": "corr_cov"}


def canonical_method(method: str) -> str:
    """The canonical comparator name for ``method`` (raises :class:`ConfigError` for unknown names).

    Parameters
    ----------
    method : str
        A comparator name or alias.
    """
    key = method.lower()
    if key not in _ALIASES:
        raise ConfigError(f"unknown RDM comparator {method!r}; use one of {COMPARATORS}")
    return _ALIASES[key]


def rankdata(v: torch.Tensor) -> torch.Tensor:
    """Average ranks (1-based, ties get their mean rank) along the last axis, like ``scipy.stats.rankdata``.

    One sort per row (:func:`interp.similarity._ranking.ranks`). Ranks are float64 when the input is float64 or a row is longer
    than 2**24 (float32 cannot hold larger integers exactly).

    Parameters
    ----------
    v : torch.Tensor
        Values, ranked along the last axis.
    """
    m = v.shape[-1]
    dtype = torch.float64 if (v.dtype == torch.float64 or m > 2**24) else torch.float32
    flat = v.reshape(-1, m)
    out = torch.empty(flat.shape, dtype=dtype, device=v.device)
    for r in range(flat.shape[0]):
        out[r] = ranks(flat[r], dtype)[0]
    return out.reshape(v.shape)


def _cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    na = torch.linalg.vector_norm(a, dim=1, keepdim=True)
    nb = torch.linalg.vector_norm(b, dim=1, keepdim=True)
    cos = (a @ b.T) / (na * nb.T)
    return torch.nan_to_num(cos, nan=0.0)  # rsatoolbox returns 0 for zero-length vectors


def _centre(v: torch.Tensor) -> torch.Tensor:
    return v - v.mean(1, keepdim=True)


def _second_moments(v: torch.Tensor) -> torch.Tensor:
    """Double-centred G = -½ H D H for each RDM vector (flattened), off-diagonals weighted once each side."""
    D = square(v)
    G = -0.5 * D
    G = G - G.mean(-1, keepdim=True) - G.mean(-2, keepdim=True) + G.mean((-1, -2), keepdim=True)
    return G.reshape(G.shape[0], -1)


def _tau_a(x: np.ndarray, y: np.ndarray) -> float:
    m = len(x)
    n0 = m * (m - 1) / 2
    ties_x = _tie_pairs(x)
    ties_y = _tie_pairs(y)
    denom = (n0 - ties_x) * (n0 - ties_y)
    if denom <= 0:
        return 0.0
    tau_b = scipy.stats.kendalltau(x, y).statistic
    return float(np.clip(tau_b * np.sqrt(denom) / n0, -1.0, 1.0))


def _tie_pairs(x: np.ndarray) -> float:
    _, counts = np.unique(x, return_counts=True)
    return float((counts * (counts - 1) // 2).sum())


def compare_vectors(v1: torch.Tensor, v2: torch.Tensor, method: str = "spearman") -> torch.Tensor:
    """All pairwise comparisons of RDM vectors ``v1 (k1, m)`` and ``v2 (k2, m)``: a ``(k1, k2)`` tensor.

    Parameters
    ----------
    v1, v2 : torch.Tensor
        ``(k1, m)`` and ``(k2, m)`` RDM vectors.
    method : str
        The comparator.
    """
    method = canonical_method(method)
    if v1.shape[-1] != v2.shape[-1]:
        raise DimensionError(f"RDMs of different sizes: {v1.shape[-1]} vs {v2.shape[-1]} entries "
                             "(do they cover the same stimuli?)")
    v2 = v2.to(device=v1.device, dtype=v1.dtype)
    if method == "pearson":
        return _cosine_matrix(_centre(v1), _centre(v2))
    if method == "cosine":
        return _cosine_matrix(v1, v2)
    if method == "spearman" and v1.shape[0] == v2.shape[0] == 1 and v1.shape[-1] > 2:
        return torch.tensor([[spearman_pair(v1[0], v2[0])]], dtype=v1.dtype, device=v1.device)
    if method in ("spearman", "rho-a"):
        r1 = _centre(rankdata(v1).to(torch.float64))
        r2 = _centre(rankdata(v2).to(torch.float64))
        if method == "spearman":
            return _cosine_matrix(r1, r2).to(v1.dtype)
        m = v1.shape[-1]
        return (r1 @ r2.T * (12.0 / (m**3 - m))).to(v1.dtype)
    if method == "whitened_cosine":
        return _cosine_matrix(_second_moments(v1), _second_moments(v2))
    if method == "whitened_pearson":
        return _cosine_matrix(_second_moments(_centre(v1)), _second_moments(_centre(v2)))
    a, b = v1.detach().cpu().double().numpy(), v2.detach().cpu().double().numpy()
    out = np.empty((len(a), len(b)))
    for i in range(len(a)):
        for j in range(len(b)):
            if method == "tau-a":
                out[i, j] = _tau_a(a[i], b[j])
            else:
                out[i, j] = scipy.stats.kendalltau(a[i], b[j]).statistic
    return torch.as_tensor(out, dtype=v1.dtype, device=v1.device)


def compare_rdms(a: Any, b: Any, method: str = "spearman", *, dtype: torch.dtype | str | None = None,
                 device: str | torch.device | None = None) -> float | torch.Tensor:
    """Compare RDMs ``a`` and ``b`` with a comparator from :data:`COMPARATORS`.

    Returns a float when both sides hold one RDM, else a ``(k_a, k_b)`` tensor of all pairs.

    Parameters
    ----------
    a, b : RDMs or array-like
        RDMs over the same stimuli (one, a stack, or RDM vectors).
    method : str
        The comparator (:data:`COMPARATORS`).
    dtype, device : optional
        Compute in this dtype and on this device (default: from the inputs).

    >>> import torch
    >>> from interp.similarity import rdm, compare_rdms
    >>> X = torch.randn(20, 30, dtype=torch.float64)
    >>> round(compare_rdms(rdm(X), rdm(X), "pearson"), 6)
    1.0
    """
    method = canonical_method(method)  # an unknown comparator is reported before anything about the data
    if isinstance(a, RDMs) and isinstance(b, RDMs) and a.stimuli != b.stimuli:
        b = b.subset_stimuli(a.stimuli)
    v1 = as_rdm_vectors(a, dtype=dtype, device=device)
    v2 = as_rdm_vectors(b, dtype=dtype, device=v1.device)
    out = compare_vectors(v1, v2, method)
    return float(out[0, 0]) if out.shape == (1, 1) else out


def rsa(x: Any, y: Any, *, rdm_method: str = "correlation", method: str = "spearman",
        dtype: torch.dtype | str | None = None, device: str | torch.device | None = None,
        nan_policy: str = "raise") -> float:
    """RSA between two sets of patterns (samples x features, same samples in the same order).

    ``Activations`` with a ``stimulus`` coordinate are aligned first.

    Parameters
    ----------
    x, y : array-like
        ``(samples, features)`` patterns with the same samples in the same order (arrays, tensors or
        Activations).
    rdm_method : str
        The dissimilarity of each side's RDM (``"correlation"``, ``"euclidean"`` ...).
    method : str
        The RDM comparator (``"spearman"``, ``"pearson"``, ``"kendall_tau_a"`` ...).
    dtype, device : optional
        Compute in this dtype and on this device (default: from the inputs).
    nan_policy : {"raise", "drop"}
        Raise on NaN, or drop features holding NaN.

    >>> import torch
    >>> from interp.similarity import rsa
    >>> X = torch.randn(30, 8, dtype=torch.float64)
    >>> round(rsa(X, X @ torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64))[0]), 6)
    1.0
    """
    from ._backend import as_pair

    X, Y = as_pair(x, y, dtype=dtype, device=device, nan_policy=nan_policy)
    if rdm_method in ("correlation", "cosine", "euclidean"):  # upper triangles only, no n x n RDM
        vx = rdm_vector(X, rdm_method)[None]
        del X
        vy = rdm_vector(Y, rdm_method)[None]
    else:
        vx = upper_tri(rdm(X, rdm_method))[None]
        del X
        vy = upper_tri(rdm(Y, rdm_method))[None]
    del Y
    return float(compare_vectors(vx, vy, method)[0, 0])
