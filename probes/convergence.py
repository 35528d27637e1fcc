"""Brain-model convergence scores of Raugel et al. 2025: the temporal score and the spatial score.

Raugel, Szafraniec, Vo, Couprie, Labatut, Bojanowski, Wyart, King, "Disentangling the Factors of
Convergence between Brains and Computer Vision Models" (arXiv 2508.18226; ICLR 2026 "...between Brains and
DINOv3"; no code released). After per-layer encoding scores (:func:`probes.encoding_scores`,
:func:`probes.temporal_encoding`):

* **temporal score**: for each layer, the time at which its encoding time course peaks (MEG); the score is
  the Pearson correlation between layer depth and peak time (paper: R = 0.96);
* **spatial score**: for each brain region, the layer that predicts it best; the score is the correlation
  between that layer and the region's position in the cortical hierarchy (paper: R = 0.38).

Where it differs (the paper's code is not public): the correlation is Pearson's r (Spearman's rho beside
it); the p-value is ours, a permutation test from :mod:`interp.stats` (layer depths or region positions
shuffled; exact when there are few enough orders); ties of the peak take the earliest time / shallowest
layer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from interp.errors import ConfigError, DimensionError
from interp.results import Result, themed
from interp.stats import p_value, permutations

__all__ = ["ConvergenceScore", "temporal_score", "spatial_score"]


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    den = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / den) if den > 0 else float("nan")


def _rank(x: np.ndarray) -> np.ndarray:
    return pd.Series(x).rank(method="average").to_numpy()


@dataclass
class ConvergenceScore(Result):
    """A convergence score: the correlation between a position (layer depth, region order) and the best
    match on the other side (peak time, best layer), with a permutation p-value.

    Parameters
    ----------
    kind : {"temporal", "spatial"}
        Which score: layer depth vs peak time (:func:`temporal_score`) or region position vs best layer
        (:func:`spatial_score`).
    r : float
        Pearson correlation between ``position`` and ``best`` over the rows of ``table``.
    spearman_r : float
        Spearman's rank correlation of the same two columns.
    p_value : float
        Permutation p-value of ``r`` (positions permuted over the layers or regions).
    table : pandas.DataFrame
        One row per layer (temporal) or region (spatial): its name (column ``layer`` or ``region``),
        ``position`` and ``best``.
    null : numpy.ndarray
        ``(n_permutations,)`` the correlations under the permutations (identity first when exhaustive).
    """

    kind: str
    r: float
    spearman_r: float
    p_value: float
    table: pd.DataFrame
    null: np.ndarray

    def to_frame(self) -> pd.DataFrame:
        """One row per layer (temporal score) or region (spatial score)."""
        return self.table.copy()

    def summary(self) -> str:
        """The score, Spearman's rho and the permutation p-value."""
        what = ("layer depth vs peak time of its encoding" if self.kind == "temporal"
                else "region position vs its best-predicting layer")
        return (f"{self.kind} score (Raugel et al. 2025): r = {self.r:.3f} (Spearman {self.spearman_r:.3f}), "
                f"permutation p = {self.p_value:.3g}; {what}, {len(self.table)} points")

    def plot(self, **kwargs: Any) -> Any:
        """The best match against the position, one point per layer or region."""
        import plotly.express as px

        label = "layer" if self.kind == "temporal" else "region"
        fig = px.scatter(self.table, x="position", y="best", text=label)
        fig.update_traces(textposition="top center")
        fig.update_layout(xaxis_title="layer depth" if self.kind == "temporal" else "region position",
                          yaxis_title="peak time" if self.kind == "temporal" else "best layer")
        return themed(fig, title=kwargs.get("title", f"{self.kind} score r = {self.r:.2f}"))


def _score(kind: str, names: list, position: np.ndarray, best: np.ndarray, n_permutations: int, seed: int,
           label: str) -> ConvergenceScore:
    if len(position) < 3:
        raise DimensionError(f"the {kind} score correlates over at least 3 {label}s, got {len(position)}")
    r = _pearson(position, best)
    orders = permutations(len(position), n_permutations, seed, exact=True)
    exact = len(position) <= 12 and math.factorial(len(position)) <= n_permutations  # every order, identity first
    null = np.array([_pearson(position[o], best) for o in orders])
    p = float(p_value(r, null, exact=bool(exact)))
    table = pd.DataFrame({label: names, "position": position, "best": best})
    return ConvergenceScore(kind, r, _pearson(_rank(position), _rank(best)), p, table, null)


def temporal_score(time_course: Any, times: Sequence[float] | None = None, depth: Sequence[float] | None = None,
                   names: Sequence[Any] | None = None, n_permutations: int = 1000, seed: int = 0) -> ConvergenceScore:
    """Correlation between layer depth and the time at which each layer's encoding of the brain peaks.

    Source: Raugel et al. 2025, "Disentangling the Factors of Convergence between Brains and Computer Vision
    Models" (arXiv 2508.18226); no code released. Differences: the permutation p-value and Spearman rho are
    ours; ties of the peak take the earliest time.

    The p-value permutes the depths over the layers (every order when there are few layers).

    Parameters
    ----------
    time_course : TimeCourse or array_like
        A :class:`interp.similarity.TimeCourse` from :func:`probes.temporal_encoding` with one feature
        space per layer (``{layer: features}``, in depth order), or an array ``(n_layers, n_times)`` of
        encoding scores.
    times : Sequence[float], optional
        The time of each column of an array ``time_course`` (required then); ignored for a ``TimeCourse``,
        which carries its own.
    depth : Sequence[float], optional
        Each layer's depth, one per row (default 0, 1, 2, ... in the given order).
    names : Sequence, optional
        A name per layer for the table (default the ``TimeCourse``'s names, else 0, 1, 2, ...).
    n_permutations : int
        Permutations of the depths for the p-value (at least 3 layers are needed).
    seed : int
        Seed of the permutations.

    Returns
    -------
    ConvergenceScore
        ``kind="temporal"``; ``best`` is each layer's peak time.
    """
    if hasattr(time_course, "scores") and hasattr(time_course, "times"):
        scores, t = np.asarray(time_course.scores, dtype=float), np.asarray(time_course.times, dtype=float)
        names = list(time_course.names) if names is None else list(names)
    else:
        scores = np.asarray(time_course, dtype=float)
        if times is None:
            raise ConfigError("give times= with an array of time courses (or pass a TimeCourse)")
        t = np.asarray(times, dtype=float)
    if scores.ndim != 2 or scores.shape[1] != len(t):
        raise DimensionError(f"time courses must be (n_layers, n_times) with {len(t)} times; got {scores.shape}")
    if np.isnan(scores).all(axis=1).any():
        raise DimensionError("a layer's time course is all NaN: it has no peak")
    names = list(range(len(scores))) if names is None else list(names)
    position = np.arange(len(scores), dtype=float) if depth is None else np.asarray(depth, dtype=float)
    if len(position) != len(scores) or len(names) != len(scores):
        raise DimensionError(f"{len(scores)} time courses but {len(position)} depths / {len(names)} names")
    best = t[np.nanargmax(scores, axis=1)]
    return _score("temporal", names, position, best, n_permutations, seed, "layer")


def spatial_score(scores: Any, region_order: Mapping[Any, float] | Sequence[float] | None = None,
                  layers: Sequence[float] | None = None, n_permutations: int = 1000, seed: int = 0) -> ConvergenceScore:
    """Correlation between each region's position in the hierarchy and the layer that predicts it best.

    Source: Raugel et al. 2025, "Disentangling the Factors of Convergence between Brains and Computer Vision
    Models" (arXiv 2508.18226); no code released. Differences: the permutation p-value and Spearman rho are
    ours; ties take the shallowest layer.

    The p-value permutes the positions over the regions.

    Parameters
    ----------
    scores : array_like, pandas.DataFrame or Mapping
        Encoding scores ``(n_layers, n_regions)`` as an array, or a DataFrame (index: layers in depth
        order, columns: regions), or ``{region: per-layer scores}``. NaN scores are skipped.
    region_order : Mapping or Sequence[float], optional
        Each region's hierarchical position: ``{region: position}`` or one number per region (default
        0, 1, 2, ... in the given order).
    layers : Sequence[float], optional
        Each layer's depth, one per row of ``scores`` (default 0, 1, 2, ...).
    n_permutations : int
        Permutations of the positions for the p-value (at least 3 regions are needed).
    seed : int
        Seed of the permutations.

    Returns
    -------
    ConvergenceScore
        ``kind="spatial"``; ``best`` is the depth of each region's best-predicting layer.
    """
    if isinstance(scores, Mapping):
        regions = list(scores)
        mat = np.stack([np.asarray(scores[r], dtype=float) for r in regions], axis=1)
    elif isinstance(scores, pd.DataFrame):
        regions, mat = list(scores.columns), scores.to_numpy(dtype=float)
    else:
        mat = np.asarray(scores, dtype=float)
        if mat.ndim != 2:
            raise DimensionError(f"scores must be (n_layers, n_regions); got shape {mat.shape}")
        regions = list(range(mat.shape[1]))
    if isinstance(region_order, Mapping):
        missing = [r for r in regions if r not in region_order]
        if missing:
            raise ConfigError(f"region_order has no position for regions {missing}")
        position = np.array([float(region_order[r]) for r in regions])
    else:
        position = np.arange(len(regions), dtype=float) if region_order is None else np.asarray(region_order, float)
    if len(position) != len(regions):
        raise DimensionError(f"{len(regions)} regions but {len(position)} positions in region_order")
    depth = np.arange(mat.shape[0], dtype=float) if layers is None else np.asarray(layers, dtype=float)
    if len(depth) != mat.shape[0]:
        raise DimensionError(f"{mat.shape[0]} layers of scores but {len(depth)} layer depths")
    if np.isnan(mat).all(axis=0).any():
        raise DimensionError("a region has no finite score at any layer")
    best = depth[np.nanargmax(mat, axis=0)]
    return _score("spatial", regions, position, best, n_permutations, seed, "region")
