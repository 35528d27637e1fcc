"""Edge attribution and circuits: EAP, EAP-IG, RelP edges and exact edge patching, scored as MIB scores them.

* :func:`edge_attribution` -- a score per writer -> reader edge (:mod:`patching.edges.attribution`);
* :class:`EdgeAttributionResult` / :class:`Circuit` -- scores, circuits, EAP-IG/MIB graph files, plots;
* :func:`circuit_faithfulness` and :func:`mib_scores` -- ablate every edge outside a circuit; CPR and CMD
  (:mod:`patching.edges.faithfulness`).
"""

from __future__ import annotations

from .attribution import EDGE_METHODS, edge_attribution
from .faithfulness import MIB_FRACTIONS, CircuitCurve, circuit_faithfulness, mib_scores
from .graph import EdgeGraph, build_graph, graph_from_cfg
from .results import Circuit, EdgeAttributionResult

__all__ = ["edge_attribution", "EDGE_METHODS", "EdgeAttributionResult", "Circuit", "EdgeGraph", "build_graph",
           "graph_from_cfg", "circuit_faithfulness", "mib_scores", "CircuitCurve", "MIB_FRACTIONS"]
