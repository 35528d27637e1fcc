"""Circuit faithfulness and MIB's circuit scores (CPR, CMD).

A circuit is evaluated by running the clean input with every edge *outside* the circuit ablated: the
reader's input gets the writer's ablated value (the corrupted run's, its mean over the corrupted prompts,
or zero) in place of the writer's live value, while edges inside the circuit carry live values (Hanna et al.
2024; Mueller et al. 2025, "MIB: A Mechanistic Interpretability Benchmark"). Faithfulness is the fraction of
the gap between the empty circuit and the full model that the circuit recovers::

    f(C) = (m(C) - m(empty)) / (m(full) - m(empty))

(with patching ablation ``m(empty)`` is the corrupted run's metric). MIB scores a circuit finder by the
area under ``f`` over circuit sizes -- the top 0.1%, 0.2%, 0.5%, 1%, 2%, 5%, 10%, 20%, 50%, 100% of edges --
the *circuit performance ratio* CPR (higher is better), and by the area between the curve and 1, the
*circuit-model difference* CMD (lower is better); trapezoids on a linear axis, as MIB's code.

>>> f = patching.circuit_faithfulness(model, clean, corrupted, metric, res.circuit(fraction=0.05))  # doctest: +SKIP
>>> curve = patching.mib_scores(model, clean, corrupted, metric, res)                            # doctest: +SKIP
>>> curve.cpr, curve.cmd                                                                          # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn

from interp import engine
from interp.engine import Hook, Phase
from interp.errors import ConfigError
from interp.results import Result, themed

from .._plan import metric_name, metric_of, prepare_pair
from ._compute import context, read_cut, record, term, writer_values
from .graph import EdgeGraph, build_graph
from .results import Circuit, EdgeAttributionResult
from .select import choose

__all__ = ["circuit_faithfulness", "mib_scores", "CircuitCurve", "MIB_FRACTIONS", "ABLATIONS"]

MIB_FRACTIONS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
ABLATIONS = ("patching", "mean", "zero")


def _kept_mask(graph: EdgeGraph, circuit: Circuit | Sequence[str]) -> torch.Tensor:
    if isinstance(circuit, Circuit):
        if circuit.graph.edge_names() != graph.edge_names():
            raise ConfigError("the circuit was found on another graph (its edges differ from this model's)")
        return circuit.kept
    names = graph.edge_names()
    index = {n: i for i, n in enumerate(names)}
    unknown = [e for e in circuit if e not in index]
    if unknown:
        raise ConfigError(f"{len(unknown)} circuit edges are not in this model's graph, e.g. {unknown[0]!r}; edges "
                          f"look like {names[:2]}")
    kept = torch.zeros(len(names), dtype=torch.bool)
    kept[[index[e] for e in circuit]] = True
    return kept


def _ablated_runs(model: nn.Module, graph: EdgeGraph, clean: torch.Tensor, corrupted: torch.Tensor, metric: Any,
                  masks: Sequence[torch.Tensor], ablation: str) -> tuple[float, list[float]]:
    """The clean metric, and the metric with the edges outside each mask ablated (one pass per mask)."""
    cut, metric = read_cut(model, metric)  # unembed only the positions the metric reads
    clean_run = record(model, graph, clean, hooks=cut)
    replace = writer_values(graph, model, record(model, graph, corrupted, hooks=cut).acts)
    if ablation == "mean":
        replace = replace.mean(dim=(1, 2), keepdim=True).expand_as(replace)
    elif ablation == "zero":
        replace = torch.zeros_like(replace)
    values = []
    for mask in masks:
        live = torch.zeros_like(replace)
        outside = ~mask
        hooks: list[Hook] = []
        by_site: dict[str, list[int]] = {}
        for i, w in enumerate(graph.writers):
            by_site.setdefault(w.site, []).append(i)
        for site, idx in by_site.items():
            def keep(act: torch.Tensor, idx: list[int] = idx, live: torch.Tensor = live) -> None:
                live[idx] = writer_values(graph, model, {graph.writers[idx[0]].site: act}, idx)
            hooks.append(Hook(site, keep, Phase.READ))
        for s, site in enumerate(graph.sites):
            block = outside[graph.edge_slice(s)].float()
            coef = (block.reshape(len(site.names), site.n_up).T if block.ndim == 1
                    else block.reshape(len(site.names), site.n_up, -1).permute(1, 2, 0))
            if not bool(coef.any()):
                continue

            def ablate(act: torch.Tensor, site: Any = site, coef: torch.Tensor = coef,
                       live: torch.Tensor = live) -> torch.Tensor:
                n = site.n_up
                return act + term(site, replace[:n] - live[:n], coef).to(act.dtype)
            hooks.append(Hook(site.site, ablate, Phase.EDIT))
        with torch.no_grad(), context(graph, model):
            values.append(metric_of(metric, engine.run(model, clean, [*hooks, *cut])))
    return metric_of(metric, clean_run.output), values


def _batched(model: nn.Module, graph: EdgeGraph, clean: torch.Tensor, corrupted: torch.Tensor, metric: Any,
             masks: Sequence[torch.Tensor], ablation: str, batch_size: int | None) -> tuple[float, list[float]]:
    if ablation not in ABLATIONS:
        raise ConfigError(f"ablation must be one of {ABLATIONS}, got {ablation!r}")
    total = int(clean.shape[0])
    size = total if batch_size is None else max(1, int(batch_size))
    full, values = 0.0, [0.0] * len(masks)
    for i in range(0, total, size):
        s = slice(i, min(total, i + size))
        m = metric if size >= total else metric.select(s)
        f, v = _ablated_runs(model, graph, clean[s], corrupted[s], m, masks, ablation)
        w = (s.stop - s.start) / total
        full += w * f
        values = [a + w * b for a, b in zip(values, v)]
    return full, values


def circuit_faithfulness(model: nn.Module, clean: Any, corrupted: Any, metric: Callable[[torch.Tensor], torch.Tensor],
                         circuit: Circuit | Sequence[str], *, ablation: str = "patching",
                         batch_size: int | None = None) -> float:
    """Fraction of the (empty circuit -> full model) metric gap recovered with only ``circuit``'s edges live.

    ``ablation``: ``"patching"`` (an ablated edge carries the corrupted run's value), ``"mean"`` (the mean over
    the corrupted prompts and positions) or ``"zero"``. ``circuit``: a :class:`Circuit` or edge names.

    Parameters
    ----------
    model : TransformerBridge
        The model whose edge graph the circuit lives in.
    clean, corrupted : Any
        Inputs of equal shape (texts or token ids).
    metric : Callable[[torch.Tensor], torch.Tensor]
        Scalar metric of the output, a batch mean.
    circuit : Circuit or Sequence[str]
        The edges kept live.
    ablation : {"patching", "mean", "zero"}
        What an ablated edge carries: the corrupted run's value, the mean over the corrupted prompts and
        positions, or zero.
    batch_size : int, optional
        Prompts per pass.
    """
    clean, corrupted = prepare_pair(model, clean, corrupted)
    graph = build_graph(model)
    kept = _kept_mask(graph, circuit)
    empty = torch.zeros_like(kept)
    with context(graph, model):
        full, (value, none) = _batched(model, graph, clean, corrupted, metric, [kept, empty], ablation, batch_size)
    if full == none:
        raise ConfigError("the full model and the empty circuit give the same metric; faithfulness is undefined")
    return (value - none) / (full - none)


@dataclass
class CircuitCurve(Result):
    """Faithfulness of the top-edge circuits of one attribution over circuit sizes, with MIB's CPR and CMD.

    Parameters
    ----------
    method, metric : str
        The attribution method and the metric's name.
    fractions : list of float
        The fractions of edges asked for (MIB's x axis).
    n_edges : list of int
        Edges each circuit kept after pruning.
    faithfulness : list of float
        ``(m(circuit) - m(empty)) / (m(full) - m(empty))`` per circuit.
    full_value, empty_value : float
        The metric with every edge live, and with none.
    ablation : {"patching", "mean", "zero"}
        What an ablated edge carries.
    extra : dict
        Method details.
    selection : {"topn", "greedy", "connected"}
        How the edges were chosen (:mod:`patching.edges.select`).
    asked : list of int
        Edges each circuit selected before pruning.
    """

    method: str
    metric: str
    fractions: list[float]
    n_edges: list[int]
    faithfulness: list[float]
    full_value: float
    empty_value: float
    ablation: str = "patching"
    extra: dict[str, Any] = field(default_factory=dict)
    selection: str = "topn"
    asked: list[int] = field(default_factory=list)

    @property
    def cpr(self) -> float:
        """Circuit performance ratio: area under the faithfulness curve (trapezoids, linear axis)."""
        return _area(self.fractions, self.faithfulness)

    @property
    def cmd(self) -> float:
        """Circuit-model difference: area between the faithfulness curve and 1."""
        return _area(self.fractions, [abs(1.0 - f) for f in self.faithfulness])

    def to_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame({"method": self.method, "fraction": self.fractions, "n_edges": self.n_edges,
                              "faithfulness": self.faithfulness})
        if self.asked:
            frame.insert(2, "asked", self.asked)
        return frame

    def summary(self) -> str:
        pairs = ", ".join(f"{f:g}: {v:.3f}" for f, v in zip(self.fractions, self.faithfulness))
        return (f"{self.method} circuits of {self.metric} ({self.selection} selection, {self.ablation} ablation): CPR {self.cpr:.4f} (higher is "
                f"better), CMD {self.cmd:.4f} (lower is better)\n  faithfulness by fraction of edges: {pairs}")

    def plot(self, title: str | None = None) -> Any:
        """Faithfulness against the fraction of edges kept (log x axis), with the full model's 1 dotted.

        Parameters
        ----------
        title : str, optional
            The figure title (default names the method, CPR and CMD).
        """
        import plotly.graph_objects as go

        fig = go.Figure(go.Scatter(x=self.fractions, y=self.faithfulness, mode="lines+markers", name=self.method,
                                   text=[f"{n} edges" for n in self.n_edges]))
        fig.add_hline(y=1.0, line_dash="dot", line_color="#7a7a7a")
        fig.update_xaxes(type="log", title_text="fraction of edges in the circuit")
        fig.update_yaxes(title_text="faithfulness")
        return themed(fig, title=title or f"{self.method}: CPR {self.cpr:.3f}, CMD {self.cmd:.3f}")


def _area(x: Sequence[float], y: Sequence[float]) -> float:
    return float(sum((x[i + 1] - x[i]) * (y[i] + y[i + 1]) / 2 for i in range(len(x) - 1)))


def mib_scores(model: nn.Module, clean: Any, corrupted: Any, metric: Callable[[torch.Tensor], torch.Tensor],
               result: EdgeAttributionResult, fractions: Sequence[float] = MIB_FRACTIONS, *,
               ablation: str = "patching", absolute: bool = True, batch_size: int | None = None,
               selection: str = "topn") -> CircuitCurve:
    """Faithfulness of the pruned top-``fraction`` circuits of ``result`` and MIB's CPR / CMD over them.

    As MIB's ``evaluate_area_under_curve``: circuit ``k`` takes ``int(fraction * n_edges)`` edges by ``|effect|``
    (``absolute``) -- ``selection="topn"`` as MIB's default ``apply_topn``, ``"greedy"`` as its
    ``apply_greedy`` option, ``"connected"`` ours (:mod:`patching.edges.select`) --, pruned of edges off
    input->logits paths, every other edge ablated (``ablation``). The x axis is the fraction asked, as MIB.

    Parameters
    ----------
    model, clean, corrupted, metric
        As :func:`patching.edges.edge_attribution`.
    result : EdgeAttributionResult
        The scores to rank edges by.
    fractions : sequence of float
        Circuit sizes (MIB's ten by default).
    ablation : str
        ``"patching"``, ``"mean"`` or ``"zero"``.
    absolute : bool
        Rank by ``|effect|``.
    batch_size : int, optional
        Prompts per pass.
    selection : str
        ``"topn"``, ``"greedy"`` or ``"connected"``.
    """
    clean, corrupted = prepare_pair(model, clean, corrupted)
    graph = build_graph(model)
    if graph.edge_names() != result.graph.edge_names():
        raise ConfigError("the result was computed on another graph (its edges differ from this model's)")
    scores = result.scores
    fractions = sorted(float(f) for f in fractions)
    chosen = [choose(graph, scores, None, f, absolute, selection) for f in fractions]
    masks = [m for m, _ in chosen]
    empty = torch.zeros(graph.n_edges, dtype=torch.bool)
    with context(graph, model):
        full, values = _batched(model, graph, clean, corrupted, metric, [*masks, empty], ablation, batch_size)
    none = values[-1]
    if full == none:
        raise ConfigError("the full model and the empty circuit give the same metric; faithfulness is undefined")
    faith = [(v - none) / (full - none) for v in values[:-1]]
    return CircuitCurve(result.method, metric_name(metric), fractions, [int(m.sum()) for m in masks], faith, full,
                        none, ablation, selection=selection, asked=[a for _, a in chosen])
