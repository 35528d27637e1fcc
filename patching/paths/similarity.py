"""Are paths of the same class more alike than paths of different classes? (Wang et al. 2025, Sec. 5.3)

Two measures: :func:`frequency_similarity`, the authors' (NeuronPath commit 5f93d0b,
``experiments/similarity/pair-sim.py``: the cosine between classes' neuron-frequency vectors, how often
each (layer, neuron) is on a path of the class), and :func:`path_similarity`, ours (the Jaccard overlap of
single paths within vs across classes, with a label-permutation test).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from interp.errors import DimensionError
from interp.results import Result, themed
from interp.stats import p_value, permutations

from .results import NeuronPaths

__all__ = ["PathSimilarity", "path_similarity", "FrequencySimilarity", "frequency_similarity"]


@dataclass
class PathSimilarity(Result):
    """Pairwise path overlap (mean over layers of the Jaccard index of the neuron sets).

    Parameters
    ----------
    pairwise : numpy.ndarray
        ``(n, n)`` overlap of every pair of paths.
    classes : list
        The classes, in order of first appearance.
    class_matrix : pandas.DataFrame
        Mean overlap per pair of classes.
    within, across : float
        Mean overlap of pairs from the same / different classes.
    p_value : float
        Label-permutation p-value of ``within - across``.
    """

    pairwise: np.ndarray
    classes: list[Any]
    class_matrix: pd.DataFrame
    within: float
    across: float
    p_value: float

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"within": self.within, "across": self.across, "difference": self.within - self.across,
                              "p_value": self.p_value}])

    def plot(self):
        import plotly.graph_objects as go

        m = self.class_matrix
        fig = go.Figure(go.Heatmap(z=m.to_numpy(), x=[str(c) for c in m.columns], y=[str(c) for c in m.index],
                                   colorscale="Viridis", colorbar=dict(title="overlap")))
        fig.update_layout(title=f"Path overlap within ({self.within:.3f}) vs across ({self.across:.3f}) classes",
                          xaxis_title="class", yaxis_title="class")
        return themed(fig)

    def summary(self) -> str:
        """Within- and across-class overlap and the permutation p-value."""
        return (f"Path overlap within classes {self.within:.4g} vs across {self.across:.4g} "
                f"(difference {self.within - self.across:+.4g}, permutation p = {self.p_value:.3g})")


def path_similarity(paths: NeuronPaths | torch.Tensor, labels: Sequence[Any], n_permutations: int = 1000,
                    seed: int = 0) -> PathSimilarity:
    """Are paths of the same class more alike than paths of different classes? (Wang et al. 2025, Sec. 5.3)

    Source: Wang et al., "Discovering Influential Neuron Path in Vision Transformers", ICLR 2025 (arXiv
    2503.09046); code ``foundation-model-research/NeuronPath`` at commit 5f93d0b. Differences: mean Jaccard
    overlap within vs across classes is ours; the authors' measure is :func:`frequency_similarity`.

    The overlap of two paths is the mean over layers of the Jaccard index of their neuron sets.

    Parameters
    ----------
    paths : NeuronPaths or torch.Tensor
        A :class:`NeuronPaths` or an ``(n, n_layers[, K])`` index tensor.
    labels : Sequence
        The class of each path.
    n_permutations : int
        Label shuffles for the p-value of ``within - across``.
    seed : int
        Seed of the shuffles.
    """
    idx = paths.indices if isinstance(paths, NeuronPaths) else torch.as_tensor(paths)
    if idx.ndim == 2:
        idx = idx[:, :, None]
    labels = np.asarray(list(labels))
    n, n_layers, k = idx.shape
    if len(labels) != n:
        raise DimensionError(f"{len(labels)} labels for {n} paths")
    a = idx.cpu().numpy()
    # Jaccard per layer: |A & B| / |A | B| with |A| = |B| = k
    inter = np.zeros((n, n))
    for li in range(n_layers):
        eq = (a[:, None, li, :, None] == a[None, :, li, None, :]).any(-1).sum(-1)
        inter += eq / (2 * k - eq)
    pair = inter / n_layers
    iu = np.triu_indices(n, 1)
    vals = pair[iu]

    def split(lab):
        same = lab[iu[0]] == lab[iu[1]]
        return vals[same].mean() if same.any() else np.nan, vals[~same].mean() if (~same).any() else np.nan

    within, across = split(labels)
    null = np.array([np.subtract(*split(labels[order])) for order in permutations(n, n_permutations, seed)])
    p = float(p_value(within - across, null))
    classes = list(pd.unique(labels))
    mat = pd.DataFrame(index=classes, columns=classes, dtype=float)
    for ci in classes:
        for cj in classes:
            block = pair[np.ix_(labels == ci, labels == cj)]
            if ci == cj:
                m = block.shape[0]
                mat.loc[ci, cj] = block[np.triu_indices(m, 1)].mean() if m > 1 else np.nan
            else:
                mat.loc[ci, cj] = block.mean()
    return PathSimilarity(pairwise=pair, classes=classes, class_matrix=mat, within=float(within),
                          across=float(across), p_value=p)




@dataclass
class FrequencySimilarity(Result):
    """Cosine similarity of the classes' path-neuron frequency vectors (the authors' measure).

    Parameters
    ----------
    classes : list
        The classes, in order of first appearance.
    frequencies : numpy.ndarray
        ``(n_classes, n_layers, n_units)`` counts of each neuron on the paths of each class.
    class_matrix : pandas.DataFrame
        Cosine between the classes' flattened frequency vectors (``pair-sim.py``).
    within, across : float
        Split-half version: each class's paths split in two halves; the cosine of a class's two halves vs
        the cosine of halves of different classes.
    p_value : float
        Label-permutation p-value of ``within - across`` (our addition: the authors list each class's most
        and least similar classes).
    """

    classes: list[Any]
    frequencies: np.ndarray
    class_matrix: pd.DataFrame
    within: float
    across: float
    p_value: float

    def to_frame(self) -> pd.DataFrame:
        """Split-half within- and across-class cosine, their difference and the permutation p-value."""
        return pd.DataFrame([{"within": self.within, "across": self.across, "difference": self.within - self.across,
                              "p_value": self.p_value}])

    def most_similar(self, n: int = 5) -> pd.DataFrame:
        """Each class's ``n`` most similar other classes (the authors' top-50 lists).

        Parameters
        ----------
        n : int
            Other classes listed per class.
        """
        rows = []
        m = self.class_matrix
        for c in m.index:
            others = m.loc[c].drop(c).sort_values(ascending=False)[:n]
            rows += [{"class": c, "rank": r, "other": o, "cosine": float(v)} for r, (o, v) in enumerate(others.items())]
        return pd.DataFrame(rows)

    def plot(self):
        """Heat map of the class x class cosine."""
        import plotly.graph_objects as go

        m = self.class_matrix
        fig = go.Figure(go.Heatmap(z=m.to_numpy(), x=[str(c) for c in m.columns], y=[str(c) for c in m.index],
                                   colorscale="Viridis", colorbar=dict(title="cosine")))
        fig.update_layout(title="Cosine of path-neuron frequency vectors between classes", xaxis_title="class",
                          yaxis_title="class")
        return themed(fig)

    def summary(self) -> str:
        """Split-half within- vs across-class cosine and the permutation p-value."""
        return (f"Path-neuron frequency cosine (split halves): within classes {self.within:.4g} vs across "
                f"{self.across:.4g} (permutation p = {self.p_value:.3g}); {len(self.classes)} classes")


def _frequencies(a: np.ndarray, labels: np.ndarray, classes: list[Any], n_units: int) -> np.ndarray:
    n, n_layers, k = a.shape
    out = np.zeros((len(classes), n_layers, n_units))
    for ci, c in enumerate(classes):
        members = a[labels == c]
        for li in range(n_layers):
            out[ci, li] = np.bincount(members[:, li, :].ravel(), minlength=n_units)[:n_units]
    return out


def _cosine(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
    y = y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-30)
    return x @ y.T


def frequency_similarity(paths: NeuronPaths | torch.Tensor, labels: Sequence[Any], n_units: int | None = None,
                         n_permutations: int = 1000, seed: int = 0) -> FrequencySimilarity:
    """Cosine of class x (layer, neuron) path-frequency vectors, as the authors compare classes' paths.

    Source: Wang et al., "Discovering Influential Neuron Path in Vision Transformers", ICLR 2025 (arXiv
    2503.09046); code ``foundation-model-research/NeuronPath`` at commit 5f93d0b. Differences: the split-half
    within/across contrast and its permutation test are ours.

    ``experiments/similarity/pair-sim.py`` (NeuronPath commit 5f93d0b): ``cosine_similarity`` of the
    frequency matrix reshaped to ``(n_classes, -1)``. ``n_units``: neurons per layer (default: the largest
    index on any path + 1; the cosine does not depend on it). The split-half within/across contrast and its
    permutation test are ours (``n_permutations`` label shuffles from :mod:`interp.stats`).

    Parameters
    ----------
    paths : NeuronPaths or torch.Tensor
        A :class:`NeuronPaths` or an ``(n, n_layers[, K])`` index tensor.
    labels : Sequence
        The class of each path.
    n_units : int, optional
        Neurons per layer (default the largest index on any path + 1; the cosine does not depend on it).
    n_permutations : int
        Label shuffles for the p-value.
    seed : int
        Seed of the shuffles.
    """
    idx = paths.indices if isinstance(paths, NeuronPaths) else torch.as_tensor(paths)
    if idx.ndim == 2:
        idx = idx[:, :, None]
    a = idx.cpu().numpy().astype(np.int64)
    labels = np.asarray(list(labels))
    if len(labels) != a.shape[0]:
        raise DimensionError(f"{len(labels)} labels for {a.shape[0]} paths")
    units = int(a.max()) + 1 if n_units is None else int(n_units)
    if a.max() >= units:
        raise DimensionError(f"a path holds neuron {int(a.max())} but n_units={units}")
    classes = list(pd.unique(labels))
    flat = _frequencies(a, labels, classes, units).reshape(len(classes), -1)
    mat = pd.DataFrame(_cosine(flat, flat), index=classes, columns=classes)
    half = np.zeros(len(labels), dtype=bool)
    for c in classes:
        where = np.flatnonzero(labels == c)
        half[where[: len(where) // 2]] = True

    def split(lab: np.ndarray) -> float:
        cl = list(pd.unique(lab))
        fa = _frequencies(a[half], lab[half], cl, units).reshape(len(cl), -1)
        fb = _frequencies(a[~half], lab[~half], cl, units).reshape(len(cl), -1)
        cos = _cosine(fa, fb)
        diag = np.eye(len(cl), dtype=bool)
        return float(cos[diag].mean()), float(cos[~diag].mean()) if len(cl) > 1 else np.nan

    within, across = split(labels)
    null = []
    for order in permutations(len(labels), n_permutations, seed):
        w, x = split(labels[order])
        null.append(w - x)
    return FrequencySimilarity(classes=classes, frequencies=_frequencies(a, labels, classes, units), class_matrix=mat,
                               within=within, across=across, p_value=float(p_value(within - across, np.array(null))))
