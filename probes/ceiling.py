"""Noise ceilings and ceiling-normalized scores.

* :func:`spearman_brown`: r_full = n r / (1 + (n - 1) r) (n = 2 for split halves; r_half 0.5 -> 0.667).
* :func:`split_half_ceiling`: repeated random splits of the repetitions into halves, Pearson r per
  target between the half means, Spearman-Brown corrected, averaged over splits (Brain-Score vision's
  internal consistency, which takes the median over targets as the summary).
* :func:`rsa_noise_ceiling` (re-exported from :mod:`interp.similarity.ceiling`): rsatoolbox lower/upper bounds.
* :func:`normalize`: a score divided by a ceiling under a **named convention**, because the field uses
  several (PAPERS.md 3.4): ``"r/c"`` (Brain-Score language, optionally clipped to [0, 1]),
  ``"(r/c)^2"`` (Brain-Score vision), ``"r^2/c"`` (Algonauts / NSD: r² over a ceiling already in variance
  units, r < 0 set to 0) and ``"r^2/c^2"`` (Net2Brain).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from interp.checks import check_finite, check_varied
from interp.errors import ConfigError, DimensionError
from interp.results import Result, themed
from interp.similarity.ceiling import NoiseCeiling, rsa_noise_ceiling

from .encoding import pearson_per_target

__all__ = ["spearman_brown", "split_half_ceiling", "SplitHalfCeiling", "rsa_noise_ceiling", "NoiseCeiling",
           "normalize", "NormalizedScore", "CONVENTIONS"]

CONVENTIONS = ("r/c", "(r/c)^2", "r^2/c", "r^2/c^2")


def spearman_brown(r: Any, n: float = 2.0) -> Any:
    """Spearman-Brown prophecy: reliability of data ``n`` times as long as the data that gave ``r``.

    Parameters
    ----------
    r : float, array-like or torch.Tensor
        Reliability (correlation) of the measured data; a tensor stays a tensor, anything else becomes a float array.
    n : float, optional
        Length factor of the prophesied data relative to the measured data (default 2: split halves -> full data).
    """
    r = np.asarray(r, dtype=float) if not isinstance(r, torch.Tensor) else r
    return n * r / (1 + (n - 1) * r)


@dataclass
class SplitHalfCeiling(Result):
    """Split-half reliability per target (``per_target``) and its median over targets.

    Parameters
    ----------
    per_target : numpy.ndarray
        Spearman-Brown corrected split-half r of each target, averaged over the splits.
    median : float
        Median of ``per_target`` over targets.
    n_splits : int
        Number of random splits averaged.
    convention : str, optional
        How the ceiling was computed, in words (shown by :meth:`summary`).

    >>> rng = np.random.default_rng(0); signal = rng.normal(size=(1, 40, 3))
    >>> c = split_half_ceiling(signal + 0.1 * rng.normal(size=(6, 40, 3)))
    >>> bool(c.median > 0.9)
    True
    """

    per_target: np.ndarray
    median: float
    n_splits: int
    convention: str = "split-half Pearson r of repetition means, Spearman-Brown corrected (n=2), mean over splits"

    def to_frame(self) -> pd.DataFrame:
        """One row per target: its ceiling."""
        return pd.DataFrame({"target": np.arange(len(self.per_target)), "ceiling": self.per_target})

    def summary(self) -> str:
        """The median ceiling, its range over targets, and the convention."""
        return (f"Split-half ceiling of {len(self.per_target)} target(s) over {self.n_splits} splits: median "
                f"{self.median:.4f} (min {np.nanmin(self.per_target):.4f}, max {np.nanmax(self.per_target):.4f})\n"
                f"  {self.convention}")

    def plot(self, **kwargs: Any) -> Any:
        """Histogram of the per-target ceilings (plotly)."""
        import plotly.graph_objects as go

        fig = go.Figure(go.Histogram(x=self.per_target))
        return themed(fig, title=kwargs.get("title", f"Split-half ceiling per target (median {self.median:.3f})"),
                      xaxis_title="ceiling (Spearman-Brown corrected r)", yaxis_title="targets")


def split_half_ceiling(responses: Any, *, n_splits: int = 10, seed: int = 0) -> SplitHalfCeiling:
    """Split-half reliability of ``responses`` shaped ``(n_repetitions, n_samples, n_targets)``.

    Exactly 3-D: a 2-D array is ambiguous (``(samples, targets)`` of one repetition has no split halves) and
    raises :class:`DimensionError`; for one target pass ``responses[..., None]``. NaN input, or a target that is
    constant across samples in every repetition, raises :class:`~interp.errors.NaNError` (its r is 0/0).

    Parameters
    ----------
    responses : array-like or torch.Tensor
        Responses shaped ``(n_repetitions, n_samples, n_targets)``: at least 2 repetitions and 3 samples.
    n_splits : int, optional
        Number of random splits of the repetitions into two halves (default 10); with an odd number of
        repetitions one repetition is left out of each split.
    seed : int, optional
        Seed of the NumPy generator that draws the splits (default 0).

    >>> reps = np.random.default_rng(0).normal(size=(4, 30, 2)) + np.random.default_rng(1).normal(size=(1, 30, 2))
    >>> split_half_ceiling(reps).per_target.shape
    (2,)
    """
    R = torch.as_tensor(np.asarray(responses.cpu() if isinstance(responses, torch.Tensor) else responses,
                                   dtype=np.float64))
    if R.ndim != 3:
        hint = (" A 2-D array is ambiguous: for one target pass responses[..., None]; (samples, targets) of a single "
                "repetition has no split halves" if R.ndim == 2 else "")
        raise DimensionError(f"responses must be 3-D (repetitions, samples, targets), got shape {tuple(R.shape)}.{hint}")
    if R.shape[0] < 2:
        raise DimensionError(f"split-half needs at least 2 repetitions, got {R.shape[0]}")
    if R.shape[1] < 3:
        raise DimensionError(f"split-half needs at least 3 samples to correlate, got {R.shape[1]}")
    check_finite(R, "responses", "remove or impute the missing values first")
    check_varied(R.mean(0).T, "responses", rows="targets", why="their split-half correlation is undefined (0/0)",
                 fix="drop those targets")
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_splits):
        perm = rng.permutation(R.shape[0])
        half = R.shape[0] // 2
        a, b = R[perm[:half]].mean(0), R[perm[half:2 * half]].mean(0)
        vals.append(spearman_brown(pearson_per_target(a, b, constant="nan"), 2.0).numpy())
    per = np.mean(vals, axis=0)
    return SplitHalfCeiling(per, float(np.median(per)), n_splits)


@dataclass
class NormalizedScore(Result):
    """Scores divided by a ceiling under a named ``convention`` (``values``: one per target or a scalar).

    Parameters
    ----------
    values : numpy.ndarray
        The normalized score, one per target (or a 0-d array for a scalar score).
    convention : str
        The convention used, one of :data:`CONVENTIONS`.
    clipped : bool
        Whether the values were clipped to [0, 1].

    >>> float(normalize(0.3, 0.6, "r/c").values)
    0.5
    """

    values: np.ndarray
    convention: str
    clipped: bool

    def to_frame(self) -> pd.DataFrame:
        """One row per target: the normalized score and the convention."""
        return pd.DataFrame({"normalized": np.atleast_1d(self.values), "convention": self.convention})

    def summary(self) -> str:
        """The median normalized score and the convention."""
        v = np.atleast_1d(self.values)
        return (f"Ceiling-normalized score ({self.convention}{', clipped to [0, 1]' if self.clipped else ''}): "
                f"median {np.nanmedian(v):.4f} over {len(v)} target(s)")

    def plot(self, **kwargs: Any) -> Any:
        """Normalized score per target (plotly bars)."""
        import plotly.graph_objects as go

        v = np.atleast_1d(self.values)
        fig = go.Figure(go.Bar(x=list(range(len(v))), y=v))
        return themed(fig, title=kwargs.get("title", f"Ceiling-normalized score ({self.convention})"),
                      xaxis_title="target", yaxis_title="normalized score")


def normalize(score: Any, ceiling: Any, convention: str = "r/c", *, clip: bool = False) -> NormalizedScore:
    """Ceiling-normalize ``score`` (r) by ``ceiling`` (c) under a named convention (see module docstring).

    Parameters
    ----------
    score : float or array-like
        The raw score r (e.g. Pearson r per target).
    ceiling : float, array-like or NoiseCeiling
        The ceiling c, broadcastable against ``score``; for a :class:`NoiseCeiling` its ``upper`` bound is
        used. Every ceiling must be positive (else :class:`ConfigError`).
    convention : str, optional
        ``"r/c"`` (default), ``"(r/c)^2"`` and ``"r^2/c^2"`` (both keep the sign of r) or ``"r^2/c"`` (r < 0 set
        to 0); anything else raises :class:`ConfigError`.
    clip : bool, optional
        Clip the normalized values to [0, 1] (default False).
    """
    if convention not in CONVENTIONS:
        raise ConfigError(f"unknown convention {convention!r}; use one of {CONVENTIONS}")
    r = np.asarray(score, dtype=float)
    c = np.asarray(ceiling.upper if isinstance(ceiling, NoiseCeiling) else ceiling, dtype=float)
    if np.any(c <= 0):
        raise ConfigError("ceilings must be positive to normalize by them")
    if convention == "r/c":
        v = r / c
    elif convention == "(r/c)^2":
        v = np.sign(r) * (r / c) ** 2
    elif convention == "r^2/c":
        v = np.where(r > 0, r, 0.0) ** 2 / c
    else:
        v = np.sign(r) * r**2 / c**2
    if clip:
        v = np.clip(v, 0.0, 1.0)
    return NormalizedScore(v, convention, clip)
