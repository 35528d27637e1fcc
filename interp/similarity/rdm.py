"""Representational dissimilarity matrices (RDMs).

Conventions follow rsatoolbox (Schütt et al. 2023, eLife 12:e82566) so that numbers agree with it:

* ``"euclidean"``: **squared** Euclidean distance divided by the number of features (rsatoolbox's
  ``'euclidean'``, which it labels "squared euclidean").
* ``"correlation"``: 1 - Pearson r between patterns (each pattern's mean over features removed).
* ``"cosine"``: 1 - cosine similarity between the raw patterns (scipy ``pdist(..., 'cosine')``).
* ``"crossnobis"``: cross-validated squared Mahalanobis distance / n_features (Walther et al. 2016),
  leave-one-fold-out over ``folds``; unbiased, so it can be negative (never take its sqrt).

>>> import torch
>>> from interp.similarity import rdm
>>> D = rdm(torch.randn(10, 50), method="correlation")
>>> D.shape
torch.Size([10, 10])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..checks import check_varied
from ..errors import ConfigError, DimensionError, InputTypeError, MismatchError, NaNError
from ..results import Result, themed
from ..tensor import Activations
from ._backend import as_matrix, resolve_dtype

__all__ = ["rdm", "rdm_vector", "crossnobis", "RDMs", "upper_tri", "square", "check_rdm", "as_rdm_vectors",
           "RDM_METHODS"]

RDM_METHODS = ("euclidean", "correlation", "cosine", "crossnobis")


def rdm(x: Any, method: str = "correlation", *, conditions: Sequence[Any] | None = None,
        folds: Sequence[Any] | None = None, noise: Any = None, dtype: torch.dtype | str | None = None,
        device: str | torch.device | None = None, nan_policy: str = "raise") -> torch.Tensor:
    """The ``(n, n)`` RDM of the rows of ``x`` (samples x features).

    Parameters
    ----------
    x: Activations, tensor or array of shape ``(n_samples, n_features)``.
    method: ``"euclidean"`` (squared / n_features), ``"correlation"``, ``"cosine"`` or ``"crossnobis"``.
    conditions: optional condition label per row. Rows of the same condition are averaged first
        (rsatoolbox's ``descriptor``); required for ``"crossnobis"``. The RDM's rows are the sorted
        unique conditions.
    folds: cross-validation fold per row (crossnobis only; rsatoolbox's ``cv_descriptor``).
    noise: noise precision matrix ``(n_features, n_features)`` for crossnobis (identity if None).
    """
    if method not in RDM_METHODS:
        raise ConfigError(f"unknown RDM method {method!r}; use one of {RDM_METHODS}")
    X = as_matrix(x, dtype=dtype, device=device, nan_policy=nan_policy)
    if method == "crossnobis":
        if conditions is None or folds is None:
            raise ConfigError("crossnobis needs conditions=... (one label per row) and folds=... (one fold per row)")
        return crossnobis(X, conditions, folds, noise=noise)
    if conditions is not None:
        X, _ = _average_by(X, conditions)
    if method in ("correlation", "cosine"):
        check_varied(X, "patterns for an RDM", rows="stimuli (rows)", centre=method == "correlation",
                     why=f"their {method} distance to every other stimulus is undefined (0/0)",
                     fix="drop those stimuli, or use method='euclidean'")
    if method == "euclidean":
        sq = (X * X).sum(1, keepdim=True)
        D = (sq + sq.T - 2 * X @ X.T) / X.shape[1]
    elif method == "correlation":
        Xc = X - X.mean(1, keepdim=True)
        Xc = Xc / torch.linalg.vector_norm(Xc, dim=1, keepdim=True)
        D = 1 - Xc @ Xc.T
    else:  # cosine
        Xn = X / torch.linalg.vector_norm(X, dim=1, keepdim=True)
        D = 1 - Xn @ Xn.T
    D = (D + D.T) / 2
    D.fill_diagonal_(0)
    return D


def rdm_vector(X: torch.Tensor, method: str = "correlation", block: int = 512) -> torch.Tensor:
    """The strict upper triangle of ``rdm(X, method)`` (row-major, as :func:`upper_tri`) without the n x n RDM.

    Row blocks of the pattern product on and above the diagonal only: about half the multiply-adds of the
    full ``(n, n)`` product, and one ``block x n`` temporary instead of the RDM (400 MB at n = 10k, float32)
    plus its index vectors; each row's part above the diagonal is copied out whole. Equal to
    ``upper_tri(rdm(X, method))`` to float rounding (the full RDM averages ``D`` and ``D.T``, which differ in
    the last bit).

    Parameters
    ----------
    X : torch.Tensor
        ``(n, p)`` finite patterns (see :func:`rdm`).
    method : {"correlation", "cosine", "euclidean"}
        The dissimilarity.
    block : int
        Rows per block.
    """
    if method not in ("correlation", "cosine", "euclidean"):
        raise ConfigError(f"rdm_vector supports 'correlation', 'cosine' and 'euclidean', got {method!r}")
    n, p = X.shape
    if method in ("correlation", "cosine"):
        check_varied(X, "patterns for an RDM", rows="stimuli (rows)", centre=method == "correlation",
                     why=f"their {method} distance to every other stimulus is undefined (0/0)",
                     fix="drop those stimuli, or use method='euclidean'")
        Z = X - X.mean(1, keepdim=True) if method == "correlation" else X
        Z = Z / torch.linalg.vector_norm(Z, dim=1, keepdim=True)
    else:
        Z = X
        sq = (X * X).sum(1)
    out = torch.empty(n * (n - 1) // 2, dtype=X.dtype, device=X.device)
    pos = 0
    for s in range(0, n - 1, block):
        e = min(s + block, n)
        G = Z[s:e] @ Z[s:].T  # rows s..e against every column from s on
        if method == "euclidean":
            D = G.mul_(-2).add_(sq[s:e, None]).add_(sq[None, s:]).div_(p)
        else:
            D = G.neg_().add_(1)
        for i in range(e - s):  # row copies: a boolean mask over the block costs more than the product saves
            k = n - s - i - 1
            out[pos:pos + k] = D[i, i + 1:]
            pos += k
    return out


def _average_by(X: torch.Tensor, labels: Sequence[Any]) -> tuple[torch.Tensor, np.ndarray]:
    labels = np.asarray(labels)
    if labels.shape[0] != X.shape[0]:
        raise DimensionError(f"got {labels.shape[0]} condition labels for {X.shape[0]} rows")
    uniq, inv = np.unique(labels, return_inverse=True)
    idx = torch.as_tensor(inv, device=X.device)
    sums = torch.zeros(len(uniq), X.shape[1], dtype=X.dtype, device=X.device).index_add_(0, idx, X)
    counts = torch.bincount(idx, minlength=len(uniq)).to(X.dtype)
    return sums / counts[:, None], uniq


def crossnobis(x: Any, conditions: Sequence[Any], folds: Sequence[Any], *, noise: Any = None,
               dtype: torch.dtype | str | None = None) -> torch.Tensor:
    """Crossnobis RDM, leave-one-fold-out (rsatoolbox ``calc_rdm_crossnobis`` with one noise matrix).

    For each fold f: A = condition means over the other folds, B = condition means in fold f,
    k = A Σ⁻¹ Bᵀ and d_ij(f) = (k_ii + k_jj - k_ij - k_ji) / P. The RDM is the mean over folds
    (Walther et al. 2016, NeuroImage 137:188). Every condition must occur in every fold.

    Parameters
    ----------
    x : array-like
        ``(samples, channels)`` measurements.
    conditions : Sequence
        The condition of each sample.
    folds : Sequence
        The fold (run, session) of each sample; every condition must occur in every fold.
    noise : array-like, optional
        The ``(channels, channels)`` noise precision (default: identity).
    dtype : optional
        Compute in this dtype.
    """
    X = as_matrix(x, dtype=dtype)
    conditions = np.asarray(conditions)
    folds = np.asarray(folds)
    if len(conditions) != X.shape[0] or len(folds) != X.shape[0]:
        raise DimensionError(f"conditions ({len(conditions)}) and folds ({len(folds)}) need one entry per row "
                             f"({X.shape[0]})")
    fold_ids = np.unique(folds)
    if len(fold_ids) < 2:
        raise ConfigError(f"crossnobis needs at least 2 folds, got {len(fold_ids)}")
    conds = np.unique(conditions)
    for f in fold_ids:
        missing = np.setdiff1d(conds, conditions[folds == f])
        if len(missing):
            raise MismatchError(f"fold {f!r} lacks conditions {missing[:10].tolist()}; every condition must be "
                                "measured in every fold")
    P = X.shape[1]
    prec = None if noise is None else torch.as_tensor(np.asarray(noise), dtype=X.dtype, device=X.device)
    if prec is not None and prec.shape != (P, P):
        raise DimensionError(f"noise precision must be ({P}, {P}), got {tuple(prec.shape)}")
    total = torch.zeros(len(conds), len(conds), dtype=X.dtype, device=X.device)
    for f in fold_ids:
        test = folds == f
        A, _ = _average_by(X[torch.as_tensor(~test, device=X.device)], conditions[~test])
        B, _ = _average_by(X[torch.as_tensor(test, device=X.device)], conditions[test])
        k = A @ (B.T if prec is None else prec @ B.T)
        dk = torch.diagonal(k)
        total += (dk[None, :] + dk[:, None] - k - k.T) / P
    D = total / len(fold_ids)
    D.fill_diagonal_(0)
    return D


def check_rdm(D: Any, name: str = "RDM") -> torch.Tensor:
    """Validate one square RDM (or a stack ``(k, n, n)``); returns it as a tensor.

    Raises :class:`DimensionError` if it is not square and :class:`NaNError` if it holds NaN.

    Parameters
    ----------
    D : array-like
        A square RDM or a stack ``(k, n, n)``.
    name : str
        What to call it in error messages.
    """
    t = D if isinstance(D, torch.Tensor) else torch.as_tensor(np.asarray(D, dtype=float))
    if t.ndim not in (2, 3) or t.shape[-1] != t.shape[-2]:
        raise DimensionError(f"{name} must be a square (n, n) matrix or a stack (k, n, n), got shape {tuple(t.shape)}")
    if t.shape[-1] < 3:
        raise DimensionError(f"{name} needs at least 3 conditions, got {t.shape[-1]}")
    if not torch.isfinite(t).all():
        raise NaNError(f"{name} holds {int((~torch.isfinite(t)).sum())} NaN/inf entries")
    tol = 1e-6 * float(t.abs().max()) + 1e-12
    if float((t - t.transpose(-1, -2)).abs().max()) > tol:
        raise DimensionError(f"{name} is not symmetric; an RDM must equal its transpose")
    return t


def upper_tri(D: torch.Tensor) -> torch.Tensor:
    """The strict upper triangle of an RDM (or each RDM of a stack), row-major like scipy's ``squareform``.

    Parameters
    ----------
    D : torch.Tensor
        An ``(n, n)`` RDM or a ``(k, n, n)`` stack.
    """
    n = D.shape[-1]
    i, j = torch.triu_indices(n, n, offset=1, device=D.device)
    return D[..., i, j]


def square(v: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`upper_tri` for one vector.

    Parameters
    ----------
    v : torch.Tensor
        One upper-triangle vector of length ``n(n-1)/2``.
    """
    m = v.shape[-1]
    n = int(round((1 + np.sqrt(1 + 8 * m)) / 2))
    if n * (n - 1) // 2 != m:
        raise DimensionError(f"a vector of length {m} is not the upper triangle of a square RDM")
    D = torch.zeros(*v.shape[:-1], n, n, dtype=v.dtype, device=v.device)
    i, j = torch.triu_indices(n, n, offset=1, device=v.device)
    D[..., i, j] = v
    D[..., j, i] = v
    return D


@dataclass
class RDMs(Result):
    """A stack of RDMs over the same stimuli: ``data`` is ``(n_rdms, n_stimuli, n_stimuli)``.

    ``stimuli`` names the rows/columns; ``descriptors`` has one row per RDM (e.g. ``subject``,
    ``session``, ``name``); ``method`` is the dissimilarity used.

    Parameters
    ----------
    data : torch.Tensor
        ``(n_rdms, n_stimuli, n_stimuli)`` dissimilarities.
    stimuli : list
        Names of the rows/columns.
    descriptors : pandas.DataFrame
        One row per RDM (``subject``, ``session``, ``name`` ...).
    method : str
        The dissimilarity used.

    >>> import torch
    >>> r = RDMs.from_activations(torch.randn(6, 20, dtype=torch.float64))
    >>> len(r), r.n_stimuli, len(r.to_frame())
    (1, 6, 15)
    """

    data: torch.Tensor
    stimuli: list = field(default_factory=list)
    descriptors: pd.DataFrame = field(default_factory=pd.DataFrame)
    method: str = "unknown"

    def __post_init__(self) -> None:
        t = check_rdm(self.data if isinstance(self.data, torch.Tensor) else torch.as_tensor(np.asarray(self.data)))
        if t.ndim == 2:
            t = t[None]
        self.data = t.to(resolve_dtype(t.dtype if t.is_floating_point() else None))
        n = t.shape[-1]
        self.stimuli = list(range(n)) if not len(self.stimuli) else list(self.stimuli)
        if len(self.stimuli) != n:
            raise DimensionError(f"{len(self.stimuli)} stimulus names for RDMs of size {n}")
        if len(self.descriptors) and len(self.descriptors) != t.shape[0]:
            raise DimensionError(f"{len(self.descriptors)} descriptor rows for {t.shape[0]} RDMs")
        if not len(self.descriptors):
            self.descriptors = pd.DataFrame(index=pd.RangeIndex(t.shape[0]))
        self.descriptors = self.descriptors.reset_index(drop=True)

    def __len__(self) -> int:
        return self.data.shape[0]

    @property
    def n_stimuli(self) -> int:
        return self.data.shape[-1]

    def vectors(self) -> torch.Tensor:
        """``(n_rdms, n(n-1)/2)`` upper triangles."""
        return upper_tri(self.data)

    def mean(self) -> RDMs:
        """The plain mean RDM."""
        return RDMs(self.data.mean(0, keepdim=True), self.stimuli, pd.DataFrame(index=[0]), self.method)

    def sel(self, **where: Any) -> RDMs:
        """RDMs whose descriptors match, e.g. ``rdms.sel(subject="BE")`` or a list of values."""
        mask = np.ones(len(self), dtype=bool)
        for key, want in where.items():
            if key not in self.descriptors.columns:
                raise DimensionError(f"no RDM descriptor {key!r}; descriptors are {list(self.descriptors.columns)}")
            vals = self.descriptors[key].to_numpy()
            mask &= np.isin(vals, want if isinstance(want, (list, tuple, np.ndarray)) else [want])
        if not mask.any():
            raise DimensionError(f"no RDM matches {where}")
        idx = np.flatnonzero(mask)
        return RDMs(self.data[idx], self.stimuli, self.descriptors.iloc[idx], self.method)

    def subset_stimuli(self, stimuli: Sequence[Any]) -> RDMs:
        """Reorder/subset rows and columns to ``stimuli`` (raises :class:`MismatchError` listing unknown ids).

        Parameters
        ----------
        stimuli : Sequence
            Stimulus ids, in the order wanted.
        """
        pos = {s: i for i, s in enumerate(self.stimuli)}
        missing = [s for s in stimuli if s not in pos]
        if missing:
            raise MismatchError(f"{len(missing)} stimuli are not in these RDMs: {missing[:10]}")
        idx = torch.as_tensor([pos[s] for s in stimuli], device=self.data.device)
        return RDMs(self.data[:, idx][:, :, idx], list(stimuli), self.descriptors, self.method)

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> RDMs:
        """The RDMs on another device or dtype.

        Parameters
        ----------
        device : str or torch.device, optional
            The device.
        dtype : torch.dtype, optional
            The dtype.
        """
        return RDMs(self.data.to(device=device, dtype=dtype), self.stimuli, self.descriptors, self.method)

    def to_frame(self) -> pd.DataFrame:
        """One row per RDM and stimulus pair (upper triangle): ``rdm``, the descriptors, ``stimulus_a``,
        ``stimulus_b``, ``dissimilarity``."""
        n = self.n_stimuli
        i, j = np.triu_indices(n, k=1)
        stim = np.asarray(self.stimuli, dtype=object)
        vec = self.vectors().detach().cpu().numpy()
        frames = []
        for r in range(len(self)):
            frame = pd.DataFrame({"rdm": r, "stimulus_a": stim[i], "stimulus_b": stim[j], "dissimilarity": vec[r]})
            for col in self.descriptors.columns:
                frame.insert(1, str(col), self.descriptors[col].iloc[r])
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def summary(self) -> str:
        """How many RDMs over how many stimuli, the dissimilarity, and the descriptors."""
        vec = self.vectors()
        lines = [f"RDMs: {len(self)} RDM(s) over {self.n_stimuli} stimuli ({self.method} dissimilarity)",
                 f"  dissimilarities: mean {float(vec.mean()):.4g}, min {float(vec.min()):.4g}, "
                 f"max {float(vec.max()):.4g}"]
        if len(self.descriptors.columns):
            lines.append("  descriptors: " + ", ".join(map(str, self.descriptors.columns)))
        return "\n".join(lines)

    def plot(self, rdm: int | None = None, **kwargs: Any) -> Any:
        """Heatmap of RDM number ``rdm`` (default: the mean of the stack).

        Parameters
        ----------
        rdm : int, optional
            Which RDM of the stack (default: the mean).
        **kwargs
            ``title=``.
        """
        import plotly.graph_objects as go

        D = self.data.mean(0) if rdm is None else self.data[rdm]
        names = [str(s) for s in self.stimuli]
        which = f"mean of {len(self)}" if rdm is None and len(self) > 1 else f"RDM {rdm or 0}"
        fig = go.Figure(go.Heatmap(z=D.detach().cpu().numpy(), x=names, y=names, colorscale="Viridis",
                                   colorbar=dict(title="dissimilarity")))
        fig.update_yaxes(autorange="reversed")
        return themed(fig, title=kwargs.get("title", f"{self.method} RDM ({which}, {self.n_stimuli} stimuli)"),
                      height=kwargs.get("height", 520))

    def report_section(self) -> list[Any]:
        """Summary, heatmap and the descriptors (one row per RDM; the pair table is too long for a page)."""
        table = self.descriptors.copy()
        table.insert(0, "rdm", range(len(self)))
        return [self._summary_html(), self.plot(), table]

    @classmethod
    def from_activations(cls, acts: Activations | Any, method: str = "correlation", **kwargs: Any) -> RDMs:
        """One RDM from patterns; stimulus names come from the ``stimulus`` (or ``id``) sample coord."""
        stimuli: list = []
        if isinstance(acts, Activations):
            frame = acts.coords.get("sample", pd.DataFrame())
            for key in ("stimulus", "id"):
                if key in frame.columns:
                    stimuli = frame[key].tolist()
                    break
        D = rdm(acts, method=method, **kwargs)
        return cls(D[None], stimuli, pd.DataFrame(index=[0]), method)


def as_rdm_vectors(x: Any, *, dtype: torch.dtype | str | None = None,
                   device: str | torch.device | None = None) -> torch.Tensor:
    """``(k, m)`` RDM vectors from :class:`RDMs`, a square RDM ``(n, n)``, a stack ``(k, n, n)`` or one
    upper-triangle vector ``(m,)``. A 2-D input must be a square, symmetric RDM.

    Parameters
    ----------
    x : RDMs or array-like
        RDMs, a square RDM, a stack or one upper-triangle vector.
    dtype, device : optional
        Compute in this dtype and on this device (default: from the inputs).
    """
    if isinstance(x, RDMs):
        v = x.vectors()
    else:
        if isinstance(x, Activations):
            x = x.data
        if isinstance(x, torch.Tensor):
            t = x.detach()
        else:
            arr = np.asarray(x)
            if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
                raise InputTypeError(f"RDMs must be numeric, got an array of dtype {arr.dtype}")
            t = torch.from_numpy(np.ascontiguousarray(arr))
        if t.ndim == 1:
            v = t[None]
        elif t.ndim in (2, 3):
            v = upper_tri(check_rdm(t))
            v = v[None] if t.ndim == 2 else v
        else:
            raise DimensionError(f"RDMs must be (n, n), (k, n, n) or an upper-triangle vector (m,); got shape "
                                 f"{tuple(t.shape)}")
    dev = device if device is not None else v.device
    v = v.to(device=dev, dtype=resolve_dtype(dtype))
    if not torch.isfinite(v).all():
        raise NaNError("RDM vectors hold NaN/inf entries")
    check_varied(v, "RDMs to compare", rows="RDMs", why="every dissimilarity in them is equal, so a correlation with them "
                 "is undefined (0/0)", fix="check how they were computed (all-equal or all-zero patterns?)")
    return v
