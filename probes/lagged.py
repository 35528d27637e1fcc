"""Lagged (FIR) and HRF-convolved features for encoding models of slow or delayed responses (fMRI, calcium,
any time series that follows its stimulus with a delay).

* :func:`lag_features`: the features at ``lags`` samples in the past, side by side (a finite impulse response
  model: the ridge weights over lags *are* the response kernel; Kay et al. 2008, Huth et al. 2016). Lags never
  reach across ``groups`` (runs, sessions): the first samples of a run get zeros, not the end of the last run.
* :func:`canonical_hrf`: SPM's canonical double-gamma haemodynamic response (peak 6 s, undershoot 16 s,
  undershoot ratio 1/6, 32 s long, unit sum; Friston et al. 1998, ``spm_hrf``).
* :func:`hrf_features`: the features convolved with an HRF (per run).
* :func:`lagged_encoding`: a cross-validated ridge encoding model on lagged features; returns the held-out r,
  the kernel (weights over lags, refit on all data) and each target's peak lag.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(400, 2))
>>> Y = np.roll(X, 3, axis=0) @ [[1.0], [-0.5]] + 0.3 * rng.normal(size=(400, 1))   # responds 3 samples later
>>> lagged_encoding(X, Y, lags=range(8), alphas=[0.1, 1, 10]).peak_lags.tolist()
[3]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats
import torch

from interp.errors import ConfigError, DimensionError
from interp.results import Result, themed

from ._cv import as_array2d, group_labels
from .encoding import encoding_scores
from .ridge import DEFAULT_ALPHAS, RidgeCV, _as_targets

__all__ = ["lag_features", "canonical_hrf", "hrf_features", "lagged_encoding", "LaggedEncoding"]


def _runs(groups: np.ndarray | None, n: int) -> list[np.ndarray]:
    """Row indices of each run, in order of appearance (runs must be contiguous)."""
    if groups is None:
        return [np.arange(n)]
    change = np.flatnonzero(groups[1:] != groups[:-1]) + 1
    bounds = np.r_[0, change, n]
    runs = [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
    labels = [groups[r[0]] for r in runs]
    if len(set(labels)) != len(labels):
        raise ConfigError("groups (runs) must be contiguous in time: each run's samples one after another")
    return runs


def lag_features(X: Any, lags: Sequence[int] = range(0, 10), *, groups: Any = None) -> np.ndarray:
    """``(n, len(lags) * f)``: column block ``k`` holds ``X`` delayed by ``lags[k]`` samples (row t gets
    ``X[t - lag]``; negative lags look ahead), zero where the lag leaves the run.

    Parameters
    ----------
    X : array-like, torch.Tensor or Activations
        Features ``(n_time, n_features)`` (1-D: one feature).
    lags : sequence of int, optional
        Delays in samples (default ``range(0, 10)``); at least one. Negative lags look ahead.
    groups : array-like or str, optional
        Run label per sample (or a sample-coordinate name of an Activations ``X``); runs must be contiguous.
        None: one run.

    >>> lag_features(np.arange(1, 5.0)[:, None], [0, 1, 2]).tolist()
    [[1.0, 0.0, 0.0], [2.0, 1.0, 0.0], [3.0, 2.0, 1.0], [4.0, 3.0, 2.0]]
    """
    Xn = as_array2d(X, "X", dtype=torch.float64).cpu().numpy()
    lags = [int(v) for v in lags]
    if not lags:
        raise ConfigError("lags must hold at least one lag")
    grp = group_labels(groups, len(Xn), X)
    out = np.zeros((len(Xn), len(lags) * Xn.shape[1]))
    f = Xn.shape[1]
    for run in _runs(grp, len(Xn)):
        block = Xn[run]
        m = len(run)
        for k, lag in enumerate(lags):
            cols = slice(k * f, (k + 1) * f)
            if lag >= 0 and lag < m:
                out[run[lag:], cols] = block[: m - lag]
            elif lag < 0 and -lag < m:
                out[run[: m + lag], cols] = block[-lag:]
    return out


def canonical_hrf(dt: float, duration: float = 32.0, *, peak: float = 6.0, undershoot: float = 16.0,
                  ratio: float = 1 / 6, dispersion: float = 1.0) -> np.ndarray:
    """SPM's canonical double-gamma HRF sampled every ``dt`` seconds from 0 to ``duration``, unit sum:
    ``gamma.pdf(t, peak/dispersion, scale=dispersion) - ratio * gamma.pdf(t, undershoot/dispersion, scale=dispersion)``.

    Parameters
    ----------
    dt : float
        Sampling interval in seconds (must be positive and below ``duration``).
    duration : float, optional
        Length of the kernel in seconds (default 32).
    peak, undershoot : float, optional
        Times (s) of the response peak and of the undershoot (defaults 6 and 16).
    ratio : float, optional
        Amplitude of the undershoot relative to the peak (default 1/6).
    dispersion : float, optional
        Scale of both gamma densities (default 1).

    >>> h = canonical_hrf(0.1)
    >>> round(float(np.argmax(h) * 0.1), 1), round(float(h.sum()), 6)
    (5.0, 1.0)
    """
    if dt <= 0 or duration <= dt:
        raise ConfigError(f"need 0 < dt < duration, got dt={dt}, duration={duration}")
    t = np.arange(0.0, duration, dt)
    h = scipy.stats.gamma.pdf(t, peak / dispersion, scale=dispersion) - \
        ratio * scipy.stats.gamma.pdf(t, undershoot / dispersion, scale=dispersion)
    return h / h.sum()


def hrf_features(X: Any, dt: float, *, groups: Any = None, hrf: Any = None) -> np.ndarray:
    """``X`` (time x features, sampled every ``dt`` s) convolved causally with ``hrf`` (default
    :func:`canonical_hrf`), run by run.

    Parameters
    ----------
    X : array-like, torch.Tensor or Activations
        Features ``(n_time, n_features)`` (1-D: one feature).
    dt : float
        Sampling interval in seconds (used for the default HRF only).
    groups : array-like or str, optional
        Run label per sample (or a sample-coordinate name); runs are convolved separately and must be
        contiguous. None: one run.
    hrf : array-like, optional
        The kernel, sampled every ``dt``; None: :func:`canonical_hrf` ``(dt)``.
    """
    Xn = as_array2d(X, "X", dtype=torch.float64).cpu().numpy()
    kernel = canonical_hrf(dt) if hrf is None else np.asarray(hrf, dtype=float).ravel()
    grp = group_labels(groups, len(Xn), X)
    out = np.zeros_like(Xn)
    for run in _runs(grp, len(Xn)):
        for j in range(Xn.shape[1]):
            out[run, j] = np.convolve(Xn[run, j], kernel)[: len(run)]
    return out


@dataclass
class LaggedEncoding(Result):
    """Held-out r per target (``scores``), the FIR kernel ``(n_lags, n_features, n_targets)`` refit on all
    samples, the lags (samples) and the sampling interval ``dt`` (seconds).

    Parameters
    ----------
    scores : numpy.ndarray
        Held-out Pearson r per target.
    kernel : numpy.ndarray
        FIR weights ``(n_lags, n_features, n_targets)`` refit on all samples.
    lags : numpy.ndarray
        The lags, in samples.
    dt : float, optional
        Sampling interval in seconds (default 1), used to express lags in seconds.
    target_names : list, optional
        Target names (empty: indices).
    alphas : numpy.ndarray, optional
        α chosen per target by the refit.
    """

    scores: np.ndarray
    kernel: np.ndarray = field(repr=False)
    lags: np.ndarray
    dt: float = 1.0
    target_names: list = field(default_factory=list)
    alphas: np.ndarray = field(default=None, repr=False)

    @property
    def energy(self) -> np.ndarray:
        """``(n_lags, n_targets)``: the kernel's norm over features at each lag."""
        return np.sqrt((self.kernel**2).sum(1))

    @property
    def peak_lags(self) -> np.ndarray:
        """The lag (samples) with the largest kernel norm, per target."""
        return self.lags[np.argmax(self.energy, axis=0)]

    def to_frame(self) -> pd.DataFrame:
        """One row per target: ``r`` (held out), ``peak_lag`` (samples) and ``peak_lag_s`` (seconds)."""
        names = self.target_names or list(range(len(self.scores)))
        return pd.DataFrame({"target": names, "r": self.scores, "peak_lag": self.peak_lags,
                             "peak_lag_s": self.peak_lags * self.dt})

    def summary(self) -> str:
        return (f"LaggedEncoding: {len(self.scores)} targets, lags {self.lags.min()}..{self.lags.max()} samples "
                f"(dt {self.dt:g} s); median held-out r {np.nanmedian(self.scores):.3f}; median peak lag "
                f"{np.median(self.peak_lags) * self.dt:.3g} s")

    def plot(self, **kwargs: Any) -> Any:
        """The kernel's norm over features at each lag, for the best-predicted targets (up to 8)."""
        import plotly.graph_objects as go

        fig = go.Figure()
        names = self.target_names or list(range(len(self.scores)))
        for i in np.argsort(-np.nan_to_num(self.scores, nan=-np.inf))[:8]:
            fig.add_trace(go.Scatter(x=self.lags * self.dt, y=self.energy[:, i], mode="lines+markers",
                                     name=f"{names[i]} (r={self.scores[i]:.2f})"))
        fig.update_layout(xaxis_title="lag (s)", yaxis_title="kernel norm over features")
        return themed(fig, title=kwargs.get("title", "FIR encoding kernels"))


def lagged_encoding(X: Any, Y: Any, *, lags: Sequence[int] = range(0, 10), dt: float = 1.0, groups: Any = None,
                    alphas: Any = DEFAULT_ALPHAS, cv: Any = 5, inner_cv: Any = 5,
                    fit_intercept: bool = True) -> LaggedEncoding:
    """FIR encoding model: ridge from ``X`` at ``lags`` to every target of ``Y`` (time x targets).

    ``cv`` splits time into contiguous blocks (unshuffled ``KFold``) or, with ``groups`` (runs/sessions: a
    coordinate name or one label per sample), into whole runs; lags never cross a run boundary. The held-out
    score is :func:`probes.encoding_scores`' Pearson r; the kernel comes from a :class:`probes.RidgeCV` refit
    on all samples (weights of standardised-by-nothing features, in ``Y`` units per ``X`` unit).

    Parameters
    ----------
    X : array-like, torch.Tensor or Activations
        Stimulus features ``(n_time, n_features)``.
    Y : array-like, torch.Tensor or Activations
        Responses ``(n_time, n_targets)`` (1-D: one target).
    lags : sequence of int, optional
        Delays in samples (default ``range(0, 10)``).
    dt : float, optional
        Sampling interval in seconds (default 1); only stored, to report lags in seconds.
    groups : array-like or str, optional
        Run label per sample or a sample-coordinate name; None: one run.
    alphas : sequence of float, optional
        Candidate ridge penalties (default ``logspace(-3, 7, 11)``).
    cv, inner_cv : int, splitter or list of (train, test) pairs, optional
        Outer and inner cross-validation (default 5 folds each).
    fit_intercept : bool, optional
        Centre features and responses on the training means (default True).
    """
    Xt = as_array2d(X, "X", dtype=torch.float64)
    Yt = _as_targets(Y, Xt)
    if Yt.shape[0] != Xt.shape[0]:
        raise DimensionError(f"X has {Xt.shape[0]} time points but Y has {Yt.shape[0]}")
    grp = group_labels(groups, Xt.shape[0], X, Y)
    lags_arr = np.asarray([int(v) for v in lags])
    L = lag_features(Xt.numpy(), lags_arr, groups=grp)
    res = encoding_scores(L, Yt, alphas=alphas, cv=cv, inner_cv=inner_cv, groups=grp, fit_intercept=fit_intercept)
    full = RidgeCV(alphas=alphas, cv=inner_cv, fit_intercept=fit_intercept).fit(L, Yt, groups=grp)
    kernel = full.coef_.T.reshape(len(lags_arr), Xt.shape[1], Yt.shape[1]).cpu().numpy()
    return LaggedEncoding(res.scores, kernel, lags_arr, float(dt), res.target_names, full.best_alphas_.numpy())
