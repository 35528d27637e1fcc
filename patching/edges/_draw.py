"""The edge graph drawn with plotly: layers as rows, heads and MLPs as nodes, edge width and colour by effect."""

from __future__ import annotations

from typing import Any

import torch

from interp.results import themed

from .graph import EdgeGraph

__all__ = ["draw"]


def _xy(graph: EdgeGraph, node: str) -> tuple[float, float]:
    if node == "input":
        return (graph.n_heads - 1) / 2, -1.0
    if node == "logits":
        return (graph.n_heads - 1) / 2, float(graph.n_layers)
    if node.startswith("m"):
        return float(graph.n_heads), int(node[1:]) + 0.5
    layer, head = node[1:].split(".h")
    return float(head), float(layer)


def draw(graph: EdgeGraph, scores: torch.Tensor, mask: torch.Tensor, title: str) -> Any:
    """Plotly figure of the masked edges: layers as rows, heads and MLPs as nodes, width and colour by effect."""
    import plotly.graph_objects as go

    values = scores.detach().double().cpu()
    chosen = torch.nonzero(mask).flatten().tolist()
    vmax = max((abs(float(values[i])) for i in chosen), default=1.0) or 1.0
    bins: dict[tuple[int, bool], list[tuple[float, float, float, float]]] = {}
    mids: list[tuple[float, float, str]] = []
    for i in chosen:
        u, s, j = graph.edges[i]
        x0, y0 = _xy(graph, graph.writers[u].name)
        v = float(values[i])
        for node in graph.sites[s].nodes[j]:
            x1, y1 = _xy(graph, node)
            bins.setdefault((min(5, int(6 * abs(v) / vmax)), v >= 0), []).append((x0, y0, x1, y1))
            mids.append(((x0 + x1) / 2, (y0 + y1) / 2, f"{graph.writers[u].name}->{graph.sites[s].names[j]}: {v:+.4g}"))
    fig = go.Figure()
    for (width, positive), segments in sorted(bins.items()):
        xs: list[float | None] = []
        ys: list[float | None] = []
        for x0, y0, x1, y1 in segments:
            xs += [x0, x1, None]
            ys += [y0, y1, None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", hoverinfo="skip", showlegend=False,
                                 line=dict(width=0.8 + 1.6 * width, color="#2f6fdf" if positive else "#e4572e"),
                                 opacity=0.75))
    if mids:
        fig.add_trace(go.Scatter(x=[m[0] for m in mids], y=[m[1] for m in mids], mode="markers", showlegend=False,
                                 marker=dict(size=5, opacity=0.01), text=[m[2] for m in mids], hoverinfo="text"))
    names = ["input", "logits"] + [w.name for w in graph.writers[1:]]
    used = {graph.writers[graph.edges[i][0]].name for i in chosen}
    for i in chosen:
        used.update(graph.sites[graph.edges[i][1]].nodes[graph.edges[i][2]])
    pts = [_xy(graph, n) for n in names]
    fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers+text", text=names,
                             textposition="top center", showlegend=False, hoverinfo="text",
                             marker=dict(size=[13 if n in used else 7 for n in names],
                                         color=["#17a398" if n in used else "#c8c8c8" for n in names])))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(title_text="layer", tickvals=list(range(-1, graph.n_layers + 1)),
                     ticktext=["input"] + [str(i) for i in range(graph.n_layers)] + ["logits"])
    height = max(360, min(1400, 70 * (graph.n_layers + 2)))
    return themed(fig, title=title, height=height, width=max(520, min(1400, 90 * (graph.n_heads + 2))))


