"""Neuron paths: the result type and its layered diagram."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from interp.results import Result, themed

from .runner import PassCounter

__all__ = ["NeuronPaths", "path_diagram"]


@dataclass
class NeuronPaths(Result):
    """Neuron paths, one per sample: ``indices[b, li, k]`` is the k-th neuron of layer ``sites[li]``.

    Parameters
    ----------
    indices : torch.Tensor
        ``(n_samples, n_layers, K)`` neuron indices.
    sites : list of str
        The path sites, one per layer, in layer order.
    method : str
        The search method (``"jas"``, ``"activation"``, ``"mean_gradient"``, ``"influence"``, ``"random"``).
    targets : torch.Tensor
        ``(n_samples,)`` the target class of each sample.
    jas : torch.Tensor, optional
        ``(n_samples,)`` each path's Joint Attribution Score (Wang et al. 2025), when computed.
    steps : int
        m, the number of Riemann steps used.
    passes : PassCounter
        The forward/backward passes the search cost.
    seconds : float
        The time spent.
    labels : list of str, optional
        A label per sample (a column of the table).
    """

    indices: torch.Tensor
    sites: list[str]
    method: str
    targets: torch.Tensor
    jas: torch.Tensor | None = None
    steps: int = 20
    passes: PassCounter = field(default_factory=PassCounter)
    seconds: float = 0.0
    labels: list[str] | None = None

    @property
    def n_samples(self) -> int:
        return int(self.indices.shape[0])

    @property
    def top_k(self) -> int:
        return int(self.indices.shape[2])

    def layer(self, li: int) -> torch.Tensor:
        """(n_samples, K) neuron indices of layer ``li``.

        Parameters
        ----------
        li : int
            The layer's index among ``sites``.
        """
        return self.indices[:, li, :]

    def to_frame(self) -> pd.DataFrame:
        """One row per (sample, layer, rank): site, neuron index and (repeated) JAS and target."""
        b, n_layers, k = self.indices.shape
        idx = self.indices.cpu().numpy()
        sample, layer, rank = np.meshgrid(np.arange(b), np.arange(n_layers), np.arange(k), indexing="ij")
        frame = pd.DataFrame(
            {
                "sample": sample.ravel(),
                "layer": layer.ravel(),
                "site": np.asarray(self.sites, dtype=object)[layer.ravel()],
                "rank": rank.ravel(),
                "neuron": idx.ravel(),
                "target": self.targets.cpu().numpy()[sample.ravel()],
                "method": self.method,
            }
        )
        if self.jas is not None:
            frame["jas"] = self.jas.cpu().numpy()[sample.ravel()]
        if self.labels is not None:
            frame["label"] = np.asarray(self.labels, dtype=object)[sample.ravel()]
        return frame

    def frequency(self, samples: Sequence[int] | None = None) -> list[pd.Series]:
        """Per layer, how many of the (selected) samples' paths use each neuron (descending).

        Parameters
        ----------
        samples : Sequence[int], optional
            Sample indices to count (default all).
        """
        idx = self.indices if samples is None else self.indices[list(samples)]
        return [pd.Series(idx[:, li, :].reshape(-1).cpu().numpy()).value_counts() for li in range(idx.shape[1])]

    def plot(self, max_per_layer: int = 8, title: str | None = None) -> Any:
        """Layered path diagram (plotly), see :func:`path_diagram`.

        Parameters
        ----------
        max_per_layer : int
            The most-used neurons shown per layer.
        title : str, optional
            The figure title.
        """
        return path_diagram(self, max_per_layer=max_per_layer, title=title)

    def summary(self) -> str:
        """How many paths, of which method, and the most used neuron of each layer."""
        lines = [f"{self.n_samples} {self.method} path(s) over {len(self.sites)} sites (top-{self.top_k} per layer), "
                 f"{self.passes.forward} forward / {self.passes.backward} backward passes, {self.seconds:.1f} s"]
        if self.jas is not None:
            lines.append(f"  JAS: mean {float(self.jas.float().mean()):.4g}")
        for site, freq in zip(self.sites, self.frequency()):
            if len(freq):
                lines.append(f"  {site}: neuron {freq.index[0]} on {int(freq.iloc[0])} path(s)")
        return "\n".join(lines)



def path_diagram(paths: NeuronPaths, samples: Sequence[int] | None = None, max_per_layer: int = 8,
                 title: str | None = None):
    """Layered graph of paths (plotly): one column per layer, nodes = neurons used by the paths (size =
    how many paths use it), edges = consecutive-layer neuron pairs (width = how many paths take them).

    Works in the HTML report (``Report(title).add_section("paths", fig)``).

    Parameters
    ----------
    paths : NeuronPaths
        The paths.
    samples : Sequence[int], optional
        Sample indices to draw (default all).
    max_per_layer : int
        The most-used neurons shown per layer (edges to other neurons are left out).
    title : str, optional
        The figure title.
    """
    import plotly.graph_objects as go

    idx = paths.indices if samples is None else paths.indices[list(samples)]
    n, n_layers, k = idx.shape
    a = idx.cpu().numpy()
    freq = [pd.Series(a[:, li, :].ravel()).value_counts() for li in range(n_layers)]
    shown = [list(f.index[:max_per_layer]) for f in freq]
    ypos = [{neuron: r for r, neuron in enumerate(s)} for s in shown]
    edges: dict[tuple[int, int, int], int] = {}
    for b in range(n):
        for li in range(n_layers - 1):
            for u in a[b, li]:
                for v in a[b, li + 1]:
                    if u in ypos[li] and v in ypos[li + 1]:
                        edges[(li, int(u), int(v))] = edges.get((li, int(u), int(v)), 0) + 1
    fig = go.Figure()
    top = max(edges.values()) if edges else 1
    for (li, u, v), c in sorted(edges.items(), key=lambda e: e[1]):
        fig.add_trace(go.Scatter(x=[li, li + 1], y=[-ypos[li][u], -ypos[li + 1][v]], mode="lines",
                                 line=dict(width=1 + 7 * c / top, color=f"rgba(55,90,160,{0.25 + 0.6 * c / top:.2f})"),
                                 hoverinfo="text", text=f"{c} path(s): L{li}.N{u} -> L{li + 1}.N{v}", showlegend=False))
    xs, ys, sizes, texts, labels = [], [], [], [], []
    for li in range(n_layers):
        for neuron in shown[li]:
            c = int(freq[li][neuron])
            xs.append(li)
            ys.append(-ypos[li][neuron])
            sizes.append(10 + 30 * c / max(1, n))
            texts.append(f"{paths.sites[li]}<br>neuron {neuron}<br>{c}/{n} paths")
            labels.append(str(neuron))
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers+text", text=labels, textposition="middle right",
                             hovertext=texts, hoverinfo="text", marker=dict(size=sizes, color="#d9534f",
                                                                            line=dict(width=1, color="#333")),
                             showlegend=False))
    ticks = [s.replace(".hook_post", "").replace(".mlp.act", "") for s in paths.sites]
    fig.update_layout(
        title=title or f"Neuron paths ({paths.method}, {n} sample(s), top-{k} per layer)",
        xaxis=dict(tickmode="array", tickvals=list(range(n_layers)), ticktext=ticks, title="layer"),
        yaxis=dict(showticklabels=False, title="neurons (most used on top)"),
        height=max(300, 60 * min(max_per_layer, max(len(s) for s in shown)) + 120),
    )
    return themed(fig)


