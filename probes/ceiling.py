"""Noise ceilings and ceiling-normalised scores.

* :func:`spearman_brown`: r_full = n r / (1 + (n - 1) r) (n = 2 for split halves; r_half 0.5 -> 0.667).
* :func:`split_half_ceiling`: repeated random splits of the repetitions into halves, Pearson r per
  target between the half means, Spearman-Brown corrected, averaged over splits (Brain-Score vision's
  internal consistency, which takes the median over targets as the summary).
* :func:`rsa_noise_ceiling` (re-exported from :mod:`interp.similarity.ceiling`): rsatoolbox lower/upper bounds.
* :func:`normalise`: a score divided by a ceiling under a **named convention**, because the field uses
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

from interp.errors import ConfigError, DimensionError
from interp.similarity.ceiling import NoiseCeiling, rsa_noise_ceiling

from .encoding import pearson_per_target

__all__ = ["spearman_brown", "split_half_ceiling", "rsa_noise_ceiling", "NoiseCeiling", "normalise",
           "NormalisedScore", "CONVENTIONS"]

CONVENTIONS = ("r/c", "(r/c)^2", "r^2/c", "r^2/c^2")


def spearman_brown(r: Any, n: float = 2.0) -> Any:
    """Spearman-Brown prophecy: reliability of data ``n`` times as long as the data that gave ``r``."""
    r = np.asarray(r, dtype=float) if not isinstance(r, torch.Tensor) else r
    return n * r / (1 + (n - 1) * r)


@dataclass
class SplitHalfCeiling:
    per_target: np.ndarray
    median: float
    n_splits: int
    convention: str = "split-half Pearson r of repetition means, Spearman-Brown corrected (n=2), mean over splits"

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"target": np.arange(len(self.per_target)), "ceiling": self.per_target})


def split_half_ceiling(responses: Any, *, n_splits: int = 10, seed: int = 0) -> SplitHalfCeiling:
    """Split-half reliability of ``responses`` shaped ``(n_repetitions, n_samples, n_targets)``."""
    R = torch.as_tensor(np.asarray(responses.cpu() if isinstance(responses, torch.Tensor) else responses,
                                   dtype=np.float64))
    if R.ndim == 2:
        R = R[..., None]
    if R.ndim != 3:
        raise DimensionError(f"responses must be (repetitions, samples, targets), got shape {tuple(R.shape)}")
    if R.shape[0] < 2:
        raise DimensionError(f"split-half needs at least 2 repetitions, got {R.shape[0]}")
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_splits):
        perm = rng.permutation(R.shape[0])
        half = R.shape[0] // 2
        a, b = R[perm[:half]].mean(0), R[perm[half:2 * half]].mean(0)
        vals.append(spearman_brown(pearson_per_target(a, b), 2.0).numpy())
    per = np.mean(vals, axis=0)
    return SplitHalfCeiling(per, float(np.median(per)), n_splits)


@dataclass
class NormalisedScore:
    values: np.ndarray
    convention: str
    clipped: bool

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"normalised": np.atleast_1d(self.values), "convention": self.convention})


def normalise(score: Any, ceiling: Any, convention: str = "r/c", *, clip: bool = False) -> NormalisedScore:
    """Ceiling-normalise ``score`` (r) by ``ceiling`` (c) under a named convention (see module docstring)."""
    if convention not in CONVENTIONS:
        raise ConfigError(f"unknown convention {convention!r}; use one of {CONVENTIONS}")
    r = np.asarray(score, dtype=float)
    c = np.asarray(ceiling.upper if isinstance(ceiling, NoiseCeiling) else ceiling, dtype=float)
    if np.any(c <= 0):
        raise ConfigError("ceilings must be positive to normalise by them")
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
    return NormalisedScore(v, convention, clip)
