"""Results of edge attribution: every edge's score, and circuits (the top edges as a pruned graph).

>>> res = patching.edge_attribution(model, clean, corrupted, metric, method="eap-ig")   # doctest: +SKIP
>>> res.to_frame()                           # edge, source, target, effect                # doctest: +SKIP
>>> circuit = res.circuit(fraction=0.05)     # top 5% of edges by |effect|, pruned        # doctest: +SKIP
>>> circuit.to_json("circuit.json")          # EAP-IG / MIB graph file                     # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from interp.results import Result

from ._draw import draw
from .graph import EdgeGraph
from .select import choose, prune, select_edges

__all__ = ["EdgeAttributionResult", "Circuit", "select_edges", "prune"]


def _frame(graph: EdgeGraph, effect: torch.Tensor, positions: list[int] | None,
           mask: torch.Tensor | None = None) -> pd.DataFrame:
    names, sources, targets = graph.edge_names(), graph.sources(), graph.targets()
    values = effect.detach().double().cpu().numpy()
    if positions is None:
        frame = pd.DataFrame({"edge": names, "source": sources, "target": targets, "effect": values})
        return frame if mask is None else frame[mask.numpy()].reset_index(drop=True)
    n = len(positions)
    frame = pd.DataFrame({"edge": np.repeat(names, n), "source": np.repeat(sources, n),
                          "target": np.repeat(targets, n), "position": np.tile(positions, len(names)),
                          "effect": values.reshape(-1)})
    return frame if mask is None else frame[mask.reshape(-1).numpy()].reset_index(drop=True)


def _write_json(path: str | os.PathLike, graph: EdgeGraph, scores: torch.Tensor, in_graph: torch.Tensor) -> None:
    from interp.tensor import atomic_write

    nodes_in = {"input", "logits"}
    for (u, s, j), keep in zip(graph.edges, in_graph.tolist()):
        if keep:
            nodes_in.add(graph.writers[u].name)
            nodes_in.update(graph.sites[s].nodes[j])
    nodes = {w.name: {"in_graph": w.name in nodes_in} for w in graph.writers}
    nodes["logits"] = {"in_graph": True}
    edges = {name: {"score": float(score), "in_graph": bool(keep)}
             for name, score, keep in zip(graph.edge_names(), scores.tolist(), in_graph.tolist())}
    text = json.dumps({"cfg": graph.cfg(), "nodes": nodes, "edges": edges})
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)
    atomic_write(path, write)


@dataclass
class EdgeAttributionResult(Result):
    """One score per edge (``effect``: ``[edge]``, or ``[edge, pos]`` with ``positions``).

    Parameters
    ----------
    method : str
        ``"eap"``, ``"eap-ig"``, ``"eap-ig-activations"``, ``"relp"`` or ``"exact"``.
    metric : str
        The metric's name.
    clean_value, corrupted_value : float
        The metric on the unpatched clean and corrupted runs.
    direction : {"denoise", "noise"}
        ``"denoise"`` (clean values patched into the corrupted run) or ``"noise"``.
    graph : EdgeGraph
        The :class:`patching.edges.graph.EdgeGraph` (names, layout, key/value heads).
    effect : torch.Tensor
        Estimated (or, for ``exact``, measured) change of the metric when the edge is patched.
    positions : list of int, optional
        The positions of ``effect``'s second axis (None: summed over positions).
    n_forward, n_backward : int
        Forward/backward passes over the batch it cost.
    extra : dict
        ``seconds``, ``layout``, ``kv_heads`` (GQA/MQA: key/value edges go to the shared head), ``rules``.
    """

    method: str
    metric: str
    clean_value: float
    corrupted_value: float
    direction: str
    graph: EdgeGraph
    effect: torch.Tensor
    positions: list[int] | None = None
    n_forward: int = 0
    n_backward: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def edges(self) -> list[str]:
        """Edge names ``source->target`` (EAP-IG/MIB spelling), in the order of ``effect``."""
        return self.graph.edge_names()

    @property
    def scores(self) -> torch.Tensor:
        """One score per edge (positions summed)."""
        return self.effect if self.positions is None else self.effect.sum(dim=1)

    def __getitem__(self, edge: str) -> float:
        names = self.edges
        if edge not in names:
            raise KeyError(f"no edge {edge!r}; edges look like {names[:3]}")
        return float(self.scores[names.index(edge)])

    def to_frame(self) -> pd.DataFrame:
        """One row per edge (and position, when kept): ``edge``, ``source``, ``target``, ``effect``."""
        frame = _frame(self.graph, self.effect, self.positions)
        frame["method"] = self.method
        return frame

    def top(self, n_edges: int = 10, absolute: bool = True) -> pd.DataFrame:
        """The ``n_edges`` strongest edges (positions summed), strongest first.

        Parameters
        ----------
        n_edges : int
            Rows returned.
        absolute : bool
            Rank by ``|effect|`` (False: by signed effect, largest first).
        """
        frame = _frame(self.graph, self.scores, None)
        key = frame["effect"].abs() if absolute else frame["effect"]
        return frame.loc[key.sort_values(ascending=False, kind="stable").index[:n_edges]].reset_index(drop=True)

    def circuit(self, n_edges: int | None = None, fraction: float | None = None, absolute: bool = True,
                selection: str = "topn") -> Circuit:
        """The top edges (by ``|effect|`` when ``absolute``) as a graph, pruned of edges off input->logits paths.

        Parameters
        ----------
        n_edges, fraction : int or float, optional
            Exactly one: how many edges (or edge x position cells when positions are kept), or which fraction
            of them (``int(fraction * n)`` as MIB).
        absolute : bool
            Rank by ``|effect|``.
        selection : str
            ``"topn"`` (MIB's ``apply_topn``, then pruned: may keep fewer), ``"greedy"`` (EAP-IG's
            ``apply_greedy`` from the logits, then pruned) or ``"connected"`` (top edges until ``n`` survive
            pruning); see :mod:`patching.edges.select`.
        """
        kept, asked = choose(self.graph, self.effect, n_edges, fraction, absolute, selection)
        return Circuit(self.graph, kept, self.effect, self.positions, self.method, asked=asked, selection=selection)

    def to_json(self, path: str | os.PathLike, circuit: Circuit | None = None) -> None:
        """Write every edge and its score in the EAP-IG/MIB graph format (``in_graph`` from ``circuit``).

        Scores of a position-resolved result are summed over positions (the format has no positions).

        Parameters
        ----------
        path : str or os.PathLike
            The JSON file written.
        circuit : Circuit, optional
            Marks its edges ``in_graph`` (default: none).
        """
        kept = torch.zeros(self.graph.n_edges, dtype=torch.bool) if circuit is None else circuit.edge_mask
        _write_json(path, self.graph, self.scores, kept)

    def summary(self) -> str:
        top = self.top(5)
        lines = [f"{self.method} edge attribution of {self.metric} ({self.direction}): {self.graph.n_edges} edges, "
                 f"clean {self.clean_value:.4g}, corrupted {self.corrupted_value:.4g}; sum of effects "
                 f"{float(self.scores.sum()):.4g}; {self.n_forward} forward / {self.n_backward} backward passes"]
        lines += [f"  {row.edge}: {row.effect:+.4g}" for row in top.itertuples()]
        if "kv_heads" in self.extra:
            lines.append(f"  GQA/MQA: {self.extra['kv_heads']}")
        return "\n".join(lines)

    def plot(self, n_edges: int = 50, title: str | None = None) -> Any:
        """The strongest ``n_edges`` edges drawn on the model's graph (layers as rows, width = |effect|).

        Parameters
        ----------
        n_edges : int
            Edges drawn (by ``|effect|``, positions summed).
        title : str, optional
            The figure title.
        """
        mask = select_edges(self.scores, min(n_edges, self.graph.n_edges), None, True)
        return draw(self.graph, self.scores, mask,
                    title or f"{self.method}: top {int(mask.sum())} edges ({self.metric})")

    def report_section(self) -> list[Any]:
        """Summary, the graph of the strongest edges and a table of the 200 strongest (not every edge)."""
        return [self._summary_html(), self.plot(), self.top(200)]

    def __repr__(self) -> str:
        return (f"EdgeAttributionResult({self.method}, {self.graph.n_edges} edges, metric={self.metric}, "
                f"clean={self.clean_value:.4g}, corrupted={self.corrupted_value:.4g})")


@dataclass
class Circuit(Result):
    """A set of edges (``kept``: mask over edges, or edge x position cells) of an edge graph.

    Parameters
    ----------
    graph : EdgeGraph
        The model's edge graph.
    kept : torch.Tensor
        Boolean mask over edges (or edge x position cells).
    effect : torch.Tensor
        The attribution scores the circuit was chosen from.
    positions : list of int, optional
        The positions of ``effect``'s second axis (None: summed over positions).
    method : str
        The attribution method.
    asked : int
        Edges selected before pruning.
    selection : {"topn", "greedy", "connected"}
        How they were chosen.
    """

    graph: EdgeGraph
    kept: torch.Tensor
    effect: torch.Tensor
    positions: list[int] | None = None
    method: str = ""
    asked: int = 0
    selection: str = "topn"

    @property
    def edge_mask(self) -> torch.Tensor:
        """Edges with at least one kept cell."""
        return self.kept if self.kept.ndim == 1 else self.kept.any(dim=1)

    @property
    def edges(self) -> list[str]:
        names = self.graph.edge_names()
        return [n for n, k in zip(names, self.edge_mask.tolist()) if k]

    @property
    def n_edges(self) -> int:
        return int(self.kept.sum())

    def nodes(self) -> list[str]:
        """Writer nodes on a kept edge (plus ``logits``)."""
        out: dict[str, None] = {}
        for (u, s, j), keep in zip(self.graph.edges, self.edge_mask.tolist()):
            if keep:
                out[self.graph.writers[u].name] = None
                out.update(dict.fromkeys(self.graph.sites[s].nodes[j]))
        return list(out)

    def __contains__(self, edge: str) -> bool:
        return edge in set(self.edges)

    def to_frame(self) -> pd.DataFrame:
        """The kept edges (cells): ``edge``, ``source``, ``target``, ``effect``."""
        return _frame(self.graph, self.effect, self.positions, self.kept)

    def to_json(self, path: str | os.PathLike) -> None:
        """The EAP-IG/MIB graph file of this circuit (every edge, ``in_graph`` for the kept ones).

        Parameters
        ----------
        path : str or os.PathLike
            The JSON file written.
        """
        scores = self.effect if self.positions is None else self.effect.sum(dim=1)
        _write_json(path, self.graph, scores, self.edge_mask)

    def summary(self) -> str:
        nodes = [n for n in self.nodes() if n not in ("input", "logits")]
        return (f"circuit of {self.n_edges} of {self.kept.numel()} edges ({self.method}, {self.selection} selection; "
                f"{self.asked} asked, {self.n_edges} on input->logits paths); {len(nodes)} nodes: "
                + ", ".join(nodes[:12]) + (" ..." if len(nodes) > 12 else ""))

    def plot(self, title: str | None = None) -> Any:
        """The circuit's edges drawn on the model's graph (width = |effect|, positions summed).

        Parameters
        ----------
        title : str, optional
            The figure title.
        """
        scores = self.effect if self.positions is None else self.effect.sum(dim=1)
        return draw(self.graph, scores, self.edge_mask, title or f"circuit: {self.n_edges} edges ({self.method})")
