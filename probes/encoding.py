"""Encoding models: predict each recorded target (voxel, neuron, sensor) from model features with
ridge regression, and score it by the held-out Pearson r.

Convention: outer K-fold; inside each outer training set :class:`~probes.ridge.RidgeCV` chooses α per
target by inner CV; the score of a target is the Pearson r between its out-of-fold predictions,
concatenated over the outer folds, and the measured values (as in Raugel et al. 2025's per-voxel R).

>>> import numpy as np
>>> from probes import encoding_scores
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(120, 8)); Y = X @ rng.normal(size=(8, 4)) + rng.normal(size=(120, 4))
>>> encoding_scores(X, Y, alphas=[0.1, 1, 10]).scores.shape
(4,)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from interp.errors import ConfigError, DimensionError, NaNError
from interp.results import Result, themed

from ._cv import as_array2d, check_nan_policy, group_labels, make_splits
from .ridge import DEFAULT_ALPHAS, RidgeCV, _as_targets

__all__ = ["encoding_scores", "EncodingResult", "pearson_per_target"]


def pearson_per_target(Y: Any, P: Any, *, constant: str = "raise") -> torch.Tensor:
    """Pearson r between the columns of ``Y`` and ``P`` (``n x t`` each, tensors or arrays; 1-D is one column).

    r is undefined for a constant column: ``constant="raise"`` (the default) raises :class:`NaNError` naming
    it, ``"nan"`` returns NaN there (for callers that filter such targets themselves). Fewer than two rows,
    other shapes, or NaN values raise :class:`DimensionError` / :class:`NaNError`.

    Parameters
    ----------
    Y, P : array-like or torch.Tensor
        Measured and predicted values, the same shape ``(n_samples, n_targets)`` (1-D: one target), at least 2 rows.
    constant : str, optional
        What a constant column gives: ``"raise"`` (default: :class:`NaNError`) or ``"nan"``.
    """
    if constant not in ("raise", "nan"):
        raise ConfigError(f"constant must be 'raise' or 'nan', got {constant!r}")
    Y, P = as_array2d(Y, "Y"), as_array2d(P, "P")
    if Y.shape != P.shape:
        raise DimensionError(f"Y and P must have the same shape (samples x targets), got {tuple(Y.shape)} and {tuple(P.shape)}")
    if Y.shape[0] < 2:
        raise DimensionError(f"a correlation needs at least 2 samples, got {Y.shape[0]}")
    P = P.to(Y.dtype)
    Yc = Y - Y.mean(0, keepdim=True)
    Pc = P - P.mean(0, keepdim=True)
    scale = torch.linalg.vector_norm(Yc, dim=0) * torch.linalg.vector_norm(Pc, dim=0)
    if constant == "raise" and bool((scale == 0).any()):
        cols = torch.nonzero(scale == 0).flatten()[:5].tolist()
        raise NaNError(f"r is undefined for constant columns (targets {cols}...): Y or P does not vary there. Drop "
                       "them, or pass constant='nan' to get NaN for them.")
    return (Yc * Pc).sum(0) / scale


@dataclass
class EncodingResult(Result):
    """Per-target held-out Pearson r (``scores``), out-of-fold ``predictions`` and the α chosen per fold.

    Parameters
    ----------
    scores : numpy.ndarray
        Held-out Pearson r of each kept target.
    predictions : numpy.ndarray
        Out-of-fold predictions ``(n_samples, n_kept_targets)``.
    alphas : numpy.ndarray
        α chosen per outer fold and target, ``(n_outer_folds, n_kept_targets)``.
    targets_kept : numpy.ndarray
        Boolean mask over the targets of ``Y``: False for those dropped for NaN/inf.
    target_names : list, optional
        Names of the kept targets (from an Activations ``Y`` with a ``unit`` ``name`` column); empty: indices.
    convention : str, optional
        How the scores were computed, in words (shown by :meth:`summary`).

    >>> enc = encoding_scores(X, Y, alphas=np.logspace(-1, 5, 7))   # doctest: +SKIP
    >>> print(enc.summary()); enc.plot()                             # doctest: +SKIP
    """

    scores: np.ndarray
    predictions: np.ndarray
    alphas: np.ndarray  # (n_outer_folds, n_targets)
    targets_kept: np.ndarray
    target_names: list = field(default_factory=list)
    convention: str = "Pearson r of out-of-fold ridge predictions (outer K-fold, alpha per target by inner CV)"

    def to_frame(self) -> pd.DataFrame:
        """One row per target: held-out r and the median α chosen over the outer folds."""
        names = self.target_names or list(range(len(self.scores)))
        return pd.DataFrame({"target": names, "r": self.scores,
                             "median_alpha": np.median(self.alphas, axis=0)})

    def summary(self) -> str:
        """Median and best held-out r over targets, and how they were computed."""
        names = self.target_names or list(range(len(self.scores)))
        best = int(np.nanargmax(self.scores)) if np.isfinite(self.scores).any() else 0
        return (f"Encoding model of {len(self.scores)} target(s): held-out r median {np.nanmedian(self.scores):.4f}, "
                f"best {self.scores[best]:.4f} (target {names[best]})\n  {self.convention}")

    def plot(self, **kwargs: Any) -> Any:
        """Histogram of held-out r over targets (plotly)."""
        import plotly.graph_objects as go

        fig = go.Figure(go.Histogram(x=self.scores))
        return themed(fig, title=kwargs.get("title", f"Encoding: held-out r per target (median "
                                                     f"{np.nanmedian(self.scores):.3f})"),
                      xaxis_title="Pearson r", yaxis_title="targets")


def encoding_scores(X: Any, Y: Any, *, alphas: Any = DEFAULT_ALPHAS, cv: Any = 5, inner_cv: Any = 5,
                    groups: Any = None, fit_intercept: bool = True, nan_policy: str = "raise",
                    dtype: str | None = None) -> EncodingResult:
    """Held-out Pearson r of a ridge encoding model for every target of ``Y`` (samples x targets).

    ``groups`` keeps groups (e.g. stimuli repeated across trials, runs) within one fold, outer and inner: one
    label per sample, or a sample-coordinate name of an Activations ``X`` or ``Y`` (e.g. ``"trial"``).
    An int ``cv`` means unshuffled ``KFold`` (scikit-learn's and himalaya's default): if the samples are
    sorted (e.g. by category) pass a shuffled splitter, ``KFold(5, shuffle=True, random_state=0)``.
    ``nan_policy="drop"`` drops targets (voxels) that hold NaN; ``targets_kept`` records which.

    Parameters
    ----------
    X : array-like, torch.Tensor or Activations
        Model features, ``(n_samples, n_features)``.
    Y : array-like, torch.Tensor or Activations
        Recorded targets, ``(n_samples, n_targets)`` (1-D: one target).
    alphas : sequence of float, optional
        Candidate ridge penalties for the inner CV (default ``logspace(-3, 7, 11)``).
    cv, inner_cv : int, splitter or list of (train, test) pairs, optional
        Outer and inner cross-validation (default 5 folds each; an int is unshuffled ``KFold``, or
        ``GroupKFold`` with ``groups``).
    groups : array-like or str, optional
        One group label per sample, or a sample-coordinate name of an Activations ``X``/``Y``; None: no groups.
    fit_intercept : bool, optional
        Centre X and Y on the training means (default True).
    nan_policy : str, optional
        ``"raise"`` (default: NaN/inf in ``Y`` raises :class:`NaNError`) or ``"drop"`` (drop those targets).
    dtype : str, optional
        Torch dtype name for ``X`` (``"float32"``, ``"float64"``); None keeps the input's float dtype.
    """
    check_nan_policy(nan_policy)
    Xt = as_array2d(X, "X", dtype=getattr(torch, dtype) if dtype else None)
    Yt = _as_targets(Y, Xt)
    if Xt.shape[0] != Yt.shape[0]:
        raise DimensionError(f"X has {Xt.shape[0]} samples but Y has {Yt.shape[0]}")
    bad = ~torch.isfinite(Yt).all(0)
    if bad.any():
        if nan_policy != "drop":
            from interp.errors import NaNError

            raise NaNError(f"Y has NaN/inf in {int(bad.sum())} of {Yt.shape[1]} targets; pass nan_policy='drop'")
        Yt = Yt[:, ~bad]
    groups_arr = group_labels(groups, Xt.shape[0], X, Y)
    preds = torch.empty_like(Yt)
    chosen = []
    for tr, te in make_splits(Xt.shape[0], cv, groups_arr):
        model = RidgeCV(alphas=alphas, cv=inner_cv, fit_intercept=fit_intercept)
        model.fit(Xt[torch.as_tensor(tr)], Yt[torch.as_tensor(tr)],
                  groups=None if groups_arr is None else groups_arr[tr])
        preds[torch.as_tensor(te)] = model.predict(Xt[torch.as_tensor(te)])
        chosen.append(model.best_alphas_.cpu().numpy())
    r = pearson_per_target(Yt, preds, constant="nan").cpu().numpy()
    names: list = []
    from interp.tensor import Activations

    if isinstance(Y, Activations) and "unit" in Y.coords and "name" in Y.coords["unit"].columns:
        names = list(np.asarray(Y.coords["unit"]["name"])[(~bad).cpu().numpy()])
    return EncodingResult(r, preds.cpu().numpy(), np.stack(chosen), (~bad).cpu().numpy(), names)
