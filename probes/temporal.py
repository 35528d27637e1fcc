"""Time-resolved encoding models for recordings shaped ``(sample, time, channel)`` (EEG, MEG): the held-out
Pearson r of a ridge model from stimulus features to the channels in every time window, and its
time-generalisation matrix (a model fitted at time t predicting the response at time t'; King & Dehaene 2014,
TICS 18:203). Results are :class:`interp.similarity.TimeCourse` and :class:`interp.similarity.TimeGeneralization`.

Every window's channels are fitted together as targets of one ridge problem (one SVD per fold serves every
window, channel and α). ``groups`` (subjects, sessions, runs) keep whole groups in one fold, outer and inner.
The features ``X`` are one row per sample, or one row per condition when ``conditions`` is given (each trial
then gets the row of its condition).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(120, 5)); eeg = rng.normal(size=(120, 30, 8))
>>> eeg[:, 10:20] += (X @ rng.normal(size=(5, 8)))[:, None]
>>> tc = temporal_encoding(X, eeg, window=5, step=5, alphas=[1, 10, 100])
>>> (tc.scores[0] > 0.5).tolist()                      # windows 10-14 and 15-19 carry the features
[False, False, True, True, False, False]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from interp._progress import tqdm
from interp.errors import DimensionError, MismatchError
from interp.similarity.temporal import TimeCourse, TimeGeneralization, recording_array, time_windows
from interp.tensor import Activations

from ._cv import as_array2d, group_labels, make_splits
from .encoding import encoding_scores, pearson_per_target
from .ridge import DEFAULT_ALPHAS, RidgeCV

__all__ = ["temporal_encoding", "temporal_generalization_encoding"]


def _windowed(recording: Any, window: int, step: int, pool: str) -> tuple[torch.Tensor, np.ndarray, int]:
    data, times, _ = recording_array(recording)
    wins = time_windows(data.shape[1], window, step)
    if pool == "mean":
        Y = torch.stack([data[:, a:b].mean(1) for a, b in wins], 1)  # (n, W, U)
    elif pool == "concat":
        Y = torch.stack([data[:, a:b].reshape(data.shape[0], -1) for a, b in wins], 1)
    else:
        from interp.errors import ConfigError

        raise ConfigError(f"pool must be 'mean' or 'concat', got {pool!r}")
    return Y, np.array([np.mean(times[a:b]) for a, b in wins]), Y.shape[2]


def _features(X: Any, recording: Any, conditions: Any, n: int) -> dict[str, torch.Tensor]:
    """Feature spaces as ``{name: (n_samples, f)}`` float64 tensors, expanded from conditions to trials."""
    spaces = X.items() if isinstance(X, Mapping) else [("features", X)]
    labels = None
    if conditions is not None:
        labels = recording_array(recording, conditions=conditions)[2]["conditions"]
        order, inv = np.unique(labels, return_inverse=True)
    out = {}
    for name, value in spaces:
        t = as_array2d(value, f"features {name!r}", dtype=torch.float64)
        if labels is not None:
            if isinstance(value, Activations):
                frame = value.coords.get("sample", pd.DataFrame())
                key = next((k for k in ("stimulus", "condition", "id") if k in frame.columns), None)
                if key is not None:
                    pos = {v: i for i, v in enumerate(frame[key].tolist())}
                    missing = [c for c in order if c not in pos]
                    if missing:
                        raise MismatchError(f"features {name!r} have no rows for conditions {list(missing)[:10]}")
                    t = t[torch.as_tensor([pos[c] for c in order])]
            if t.shape[0] != len(order):
                raise MismatchError(f"features {name!r} have {t.shape[0]} rows but there are {len(order)} conditions")
            t = t[torch.as_tensor(inv)]
        if t.shape[0] != n:
            raise DimensionError(f"features {name!r} have {t.shape[0]} rows for {n} samples; pass conditions=... "
                                 "when the features are one row per condition")
        out[str(name)] = t
    return out


def temporal_encoding(X: Any, recording: Any, *, window: int = 1, step: int = 1, pool: str = "mean",
                      conditions: Any = None, groups: Any = None, alphas: Any = DEFAULT_ALPHAS, cv: Any = 5,
                      inner_cv: Any = 5, fit_intercept: bool = True, progress: bool = False) -> TimeCourse:
    """Held-out Pearson r (mean over channels) of a ridge encoding model in every time window.

    Parameters
    ----------
    X: features ``(n, f)`` (Activations, tensor, array) or ``{name: features}`` for several feature spaces
        (one time course each).
    recording: ``Activations`` with ``sample`` and ``time`` dims, or an array ``(sample, time, channel)``.
    conditions: per-sample condition (coordinate name or array) when ``X`` has one row per condition.
    groups: subject/session/run per sample (coordinate name or array): folds hold whole groups.
    cv, inner_cv, alphas: as :func:`probes.encoding_scores` (α chosen per channel and window by inner CV).

    The per-channel scores are in ``attrs["per_target"]`` ``(n_spaces, n_windows, n_channels)``.
    """
    Y, wtimes, n_units = _windowed(recording, window, step, pool)
    n, W = Y.shape[0], Y.shape[1]
    spaces = _features(X, recording, conditions, n)
    grp = group_labels(groups, n, recording, *spaces.values())
    scores, per_target = [], []
    for F in tqdm(spaces.values(), disable=not progress, desc="feature spaces"):
        res = encoding_scores(F, Y.reshape(n, W * n_units), alphas=alphas, cv=cv, inner_cv=inner_cv, groups=grp,
                              fit_intercept=fit_intercept)
        r = res.scores.reshape(W, n_units)
        per_target.append(r)
        scores.append(np.nanmean(r, axis=1))
    attrs = {"window": window, "step": step, "pool": pool, "per_target": np.stack(per_target),
             "grouped": grp is not None}
    return TimeCourse(np.stack(scores), wtimes, list(spaces), "encoding r (mean over channels)", attrs=attrs)


def temporal_generalization_encoding(X: Any, recording: Any, *, window: int = 1, step: int = 1, pool: str = "mean",
                                     conditions: Any = None, groups: Any = None, alphas: Any = DEFAULT_ALPHAS,
                                     cv: Any = 5, inner_cv: Any = 5, fit_intercept: bool = True,
                                     progress: bool = False) -> TimeGeneralization:
    """Time generalisation of an encoding model: ``scores[t, t']`` is the Pearson r (mean over channels) between
    the out-of-fold predictions of the model fitted on window t and the measured response in window t'.

    The diagonal equals :func:`temporal_encoding` (same folds). A response that keeps the same code over time
    gives a square block; a code that changes gives a narrow diagonal.

    Parameters
    ----------
    X : array-like, torch.Tensor or Activations
        Features ``(n, f)``, one row per sample (or per condition with ``conditions``); a one-entry
        ``{name: features}`` mapping is accepted, more entries raise :class:`DimensionError`.
    recording : Activations or array-like
        ``Activations`` with ``sample`` and ``time`` dims, or an array ``(sample, time, channel)``.
    window, step : int, optional
        Window length and hop, in time samples (default 1 and 1).
    pool : str, optional
        How a window's time samples become targets: ``"mean"`` (default) or ``"concat"``.
    conditions : str or array-like, optional
        Per-sample condition (coordinate name or array) when ``X`` has one row per condition.
    groups : str or array-like, optional
        Subject/session/run per sample (coordinate name or array): folds hold whole groups.
    alphas, cv, inner_cv, fit_intercept : optional
        As in :func:`probes.encoding_scores` (α chosen per channel and window by inner CV).
    progress : bool, optional
        Show a progress bar over the folds (default False).
    """
    Y, wtimes, n_units = _windowed(recording, window, step, pool)
    n, W = Y.shape[0], Y.shape[1]
    spaces = _features(X, recording, conditions, n)
    if len(spaces) != 1:
        raise DimensionError("temporal_generalization_encoding takes one feature space; call it once per space")
    F = next(iter(spaces.values()))
    grp = group_labels(groups, n, recording, F)
    targets = Y.reshape(n, W * n_units)
    preds = torch.empty_like(targets)
    for tr, te in tqdm(make_splits(n, cv, grp), disable=not progress, desc="folds"):
        tr_t, te_t = torch.as_tensor(tr), torch.as_tensor(te)
        model = RidgeCV(alphas=alphas, cv=inner_cv, fit_intercept=fit_intercept)
        model.fit(F[tr_t], targets[tr_t], groups=None if grp is None else grp[tr])
        preds[te_t] = model.predict(F[te_t])
    P = preds.reshape(n, W, n_units)
    Pz = (P - P.mean(0)) / torch.linalg.vector_norm(P - P.mean(0), dim=0)
    Yz = (Y - Y.mean(0)) / torch.linalg.vector_norm(Y - Y.mean(0), dim=0)
    r = torch.einsum("ntu,nsu->tsu", Pz, Yz)  # (train window, test window, channel)
    scores = torch.nanmean(r, dim=2).numpy()
    diag = pearson_per_target(targets, preds, constant="nan").reshape(W, n_units)
    attrs = {"window": window, "step": step, "pool": pool, "grouped": grp is not None,
             "diagonal_per_target": diag.numpy()}
    return TimeGeneralization(scores, wtimes, wtimes, "encoding r (mean over channels)", ("train_time", "test_time"),
                              None, attrs)
