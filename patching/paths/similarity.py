"""Are paths of the same class more alike than paths of different classes? (Wang et al. 2025, Sec. 5.3)"""

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

__all__ = ["PathSimilarity", "path_similarity"]


@dataclass
class PathSimilarity(Result):
    """Pairwise path overlap (mean over layers of the Jaccard index of the neuron sets).

    ``within`` / ``across``: mean overlap of pairs from the same / different classes; ``p_value``: label
    permutation test of ``within - across``; ``class_matrix``: mean overlap per pair of classes.
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
    """Are paths of the same class more alike than paths of different classes? (Wang et al. 2025, Sec. 5.3)"""
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


