"""Noise ceilings for RSA: rsatoolbox-style lower and upper bounds (Nili et al. 2014, PLoS CB 10:e1003553).

* upper = mean over subjects s of sim(RDM_s, pool(all RDMs, including s)): no model can beat it.
* lower = mean over s of sim(RDM_s, pool(all RDMs except s)): a leave-one-subject-out estimate of
  what the true model would score.

``pool`` is the method-optimal average, as in rsatoolbox ``util/inference_util.py::pool_rdm``:
cosine / whitened cosine: divide each RDM by its RMS, then mean; Pearson / whitened Pearson: z-score,
mean, shift the minimum to 0; rank methods: mean of ranks (for τ this is a heuristic; rsatoolbox warns
"Noise ceiling for tau based on averaged ranks!").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from ..errors import DimensionError
from ..results import Result, themed
from .rdm import RDMs, as_rdm_vectors
from .rsa import canonical_method, compare_vectors, rankdata

__all__ = ["NoiseCeiling", "rsa_noise_ceiling", "pool_rdms"]


@dataclass
class NoiseCeiling(Result):
    """Lower and upper bounds of the RSA noise ceiling for comparator ``method`` (Nili et al. 2014).

    Parameters
    ----------
    lower, upper : float
        The two bounds.
    method : str
        The RDM comparator they were computed with.
    n_rdms : int
        How many per-subject RDMs.
    convention : str
        How the bounds were computed.

    >>> import torch
    >>> base = torch.rand(10, 10, dtype=torch.float64); base = base + base.T; _ = base.fill_diagonal_(0)
    >>> nc = rsa_noise_ceiling(torch.stack([base, base, base]))
    >>> round(nc.lower, 6), round(nc.upper, 6)
    (1.0, 1.0)
    """

    lower: float
    upper: float
    method: str
    n_rdms: int
    convention: str = "rsatoolbox boot_noise_ceiling: leave-one-out (lower) and all-in (upper) pooled RDM"

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"lower": self.lower, "upper": self.upper, "method": self.method,
                              "n_rdms": self.n_rdms, "convention": self.convention}])

    def summary(self) -> str:
        """The two bounds, the comparator and how many data RDMs they come from."""
        return (f"Noise ceiling ({self.method}, {self.n_rdms} data RDMs): lower {self.lower:.4f}, upper {self.upper:.4f}"
                f"\n  {self.convention}")

    def plot(self, **kwargs: Any) -> Any:
        """The ceiling as a band between the lower and upper bound (plotly)."""
        import plotly.graph_objects as go

        fig = go.Figure(go.Bar(x=[self.upper - self.lower], base=[self.lower], y=[self.method], orientation="h",
                               marker_color="gray", opacity=0.5, name="noise ceiling",
                               hovertext=f"lower {self.lower:.4f}, upper {self.upper:.4f}"))
        return themed(fig, title=kwargs.get("title", f"RSA noise ceiling ({self.n_rdms} RDMs)"), height=220,
                      xaxis_title=f"{self.method} similarity")


def pool_rdms(vectors: torch.Tensor, method: str) -> torch.Tensor:
    """The pooled ``(1, m)`` RDM vector that is optimal under comparator ``method`` (rsatoolbox ``pool_rdm``).

    Parameters
    ----------
    vectors : torch.Tensor
        ``(k, m)`` RDM vectors.
    method : str
        The comparator the pooled RDM is optimal for.
    """
    method = canonical_method(method)
    v = vectors
    if method in ("cosine", "whitened_cosine"):
        v = v / torch.sqrt((v**2).mean(1, keepdim=True))
        return v.mean(0, keepdim=True)
    if method in ("pearson", "whitened_pearson"):
        v = v - v.mean(1, keepdim=True)
        v = v / v.std(1, keepdim=True, correction=0)
        v = v.mean(0, keepdim=True)
        return v - v.min()
    return rankdata(v).to(v.dtype).mean(0, keepdim=True)


def rsa_noise_ceiling(rdms: RDMs | Any, method: str = "spearman", *, dtype: torch.dtype | str | None = None
                      ) -> NoiseCeiling:
    """Lower/upper noise-ceiling bounds from per-subject RDMs (``(k, n, n)`` or :class:`RDMs`, k >= 2).

    Agrees with rsatoolbox ``boot_noise_ceiling(rdms, method)`` (tested to 1e-6).

    Parameters
    ----------
    rdms : RDMs or array-like
        Per-subject RDMs, ``(k, n, n)`` with k >= 2.
    method : str
        The RDM comparator (see :data:`interp.similarity.rsa.COMPARATORS`).
    dtype : optional
        Compute in this dtype.
    """
    v = as_rdm_vectors(rdms, dtype=dtype)
    if v.shape[0] < 2:
        raise DimensionError(f"a noise ceiling needs RDMs from at least 2 subjects/sessions, got {v.shape[0]}")
    method = canonical_method(method)
    pooled_all = pool_rdms(v, method)
    upper = compare_vectors(v, pooled_all, method)[:, 0]
    lower = torch.empty(v.shape[0], dtype=v.dtype, device=v.device)
    for s in range(v.shape[0]):
        rest = torch.cat([v[:s], v[s + 1:]])
        lower[s] = compare_vectors(v[s:s + 1], pool_rdms(rest, method), method)[0, 0]
    return NoiseCeiling(float(lower.mean()), float(upper.mean()), method, v.shape[0])
