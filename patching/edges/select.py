"""Choosing a circuit from edge scores: MIB's top-n, EAP-IG's greedy search from the logits, or connected top edges.

Three selections, each followed by pruning (edges off every ``input -> ... -> logits`` path are dropped, as
``Graph.prune`` in Hanna et al.'s ``eap`` package, which MIB's circuit track uses):

* ``"topn"`` -- the ``n`` highest-scoring edges (``Graph.apply_topn``; MIB's ``evaluate_area_under_curve``
  default), then pruned: the circuit may end up with fewer than ``n`` edges (even none, when the top edges
  are all head -> logits edges whose heads have no kept input);
* ``"greedy"`` -- ``Graph.apply_greedy``: start from the edges into ``logits``; repeatedly take the highest
  candidate edge, and when its source node is new, its own input edges become candidates; then pruned
  (edges into a node with no kept input are still dropped);
* ``"connected"`` -- edges in score order until the *pruned* circuit holds at least ``n`` edges: ``n`` edges
  that all lie on input -> logits paths (ours; it may exceed ``n`` by the few edges that complete the last path).

Hanna, Pezzelle & Belinkov 2024 ("Have Faith in Faithfulness"); Mueller et al. 2025 ("MIB").
"""

from __future__ import annotations

import heapq

import torch

from interp.errors import ConfigError

from .graph import EdgeGraph

__all__ = ["SELECTIONS", "select_edges", "prune", "greedy", "connected", "choose"]

SELECTIONS = ("topn", "greedy", "connected")


def _count(effect: torch.Tensor, n_edges: int | None, fraction: float | None) -> int:
    if (n_edges is None) == (fraction is None):
        raise ConfigError("give exactly one of n_edges and fraction")
    total = effect.numel()
    if fraction is not None:
        if not 0 <= fraction <= 1:
            raise ConfigError(f"fraction must be in [0, 1], got {fraction}")
        return int(fraction * total)  # as MIB: int(pct * n_scored_items)
    return max(0, min(int(n_edges), total))


def _key(effect: torch.Tensor, absolute: bool) -> torch.Tensor:
    flat = effect.reshape(-1).double()
    key = flat.abs() if absolute else flat
    return torch.where(torch.isnan(key), torch.full_like(key, -torch.inf), key)  # unmeasured edges (exact) last


def select_edges(effect: torch.Tensor, n_edges: int | None, fraction: float | None, absolute: bool) -> torch.Tensor:
    """Boolean mask of the top ``n_edges`` cells (or ``int(fraction * cells)``, as MIB) of ``effect``.

    Parameters
    ----------
    effect : torch.Tensor
        Scores, ``[edge]`` or ``[edge, pos]``.
    n_edges, fraction : int or float, optional
        How many cells to keep (exactly one).
    absolute : bool
        Rank by ``|effect|``.
    """
    n = _count(effect, n_edges, fraction)
    mask = torch.zeros(effect.numel(), dtype=torch.bool)
    if n:
        mask[torch.argsort(_key(effect, absolute), descending=True, stable=True)[:n]] = True
    return mask.reshape(effect.shape)


def prune(graph: EdgeGraph, kept: torch.Tensor) -> torch.Tensor:
    """Drop kept edges whose source is not reached from ``input`` or whose target does not reach ``logits``
    through kept edges (the fixed point of EAP-IG's ``Graph.prune`` on a DAG).

    Parameters
    ----------
    graph : EdgeGraph
        The edge graph.
    kept : torch.Tensor
        Boolean ``[edge]`` or ``[edge, pos]`` mask.
    """
    edge_kept = kept if kept.ndim == 1 else kept.any(dim=1)
    forward, backward = {"input"}, {"logits"}
    for s, site in enumerate(graph.sites):
        block = edge_kept[graph.edge_slice(s)].reshape(len(site.names), site.n_up)
        for j in range(len(site.names)):
            if any(graph.writers[u].name in forward for u in torch.nonzero(block[j]).flatten().tolist()):
                forward.update(site.nodes[j])
    for s in reversed(range(len(graph.sites))):
        site = graph.sites[s]
        block = edge_kept[graph.edge_slice(s)].reshape(len(site.names), site.n_up)
        for j in range(len(site.names)):
            if any(n in backward for n in site.nodes[j]):
                backward.update(graph.writers[u].name for u in torch.nonzero(block[j]).flatten().tolist())
    ok = torch.tensor([graph.writers[u].name in forward and any(n in backward for n in graph.sites[s].nodes[j])
                       for u, s, j in graph.edges], dtype=torch.bool)
    return kept & (ok if kept.ndim == 1 else ok[:, None])


def greedy(graph: EdgeGraph, effect: torch.Tensor, n: int, absolute: bool = True) -> torch.Tensor:
    """EAP-IG's ``Graph.apply_greedy`` (before pruning): ``n`` cells grown from ``logits`` upwards.

    Parameters
    ----------
    graph : EdgeGraph
        The edge graph.
    effect : torch.Tensor
        Scores, ``[edge]`` or ``[edge, pos]`` (a cell's source and target are its edge's).
    n : int
        Cells to take.
    absolute : bool
        Rank by ``|effect|``.
    """
    key = _key(effect, absolute).tolist()
    per = 1 if effect.ndim == 1 else int(effect.shape[1])
    into: dict[str, list[int]] = {}  # node -> edges reading into it
    for e, (_, s, j) in enumerate(graph.edges):
        for node in graph.sites[s].nodes[j]:
            into.setdefault(node, []).append(e)
    heap: list[tuple[float, int]] = []
    pushed: set[int] = set()

    def push(node: str) -> None:
        for e in into.get(node, []):
            if e not in pushed:
                pushed.add(e)
                for c in range(e * per, (e + 1) * per):
                    heapq.heappush(heap, (-key[c], c))
    push("logits")
    in_graph = {"logits"}
    mask = torch.zeros(effect.numel(), dtype=torch.bool)
    for _ in range(min(n, effect.numel())):
        if not heap:
            break
        _, c = heapq.heappop(heap)
        mask[c] = True
        parent = graph.writers[graph.edges[c // per][0]].name
        if parent not in in_graph:
            in_graph.add(parent)
            push(parent)
    return mask.reshape(effect.shape)


def connected(graph: EdgeGraph, effect: torch.Tensor, n: int, absolute: bool = True) -> torch.Tensor:
    """The shortest prefix of the score-ordered cells whose pruned circuit keeps at least ``n`` cells (pruned).

    Parameters
    ----------
    graph : EdgeGraph
        The edge graph.
    effect : torch.Tensor
        Scores, ``[edge]`` or ``[edge, pos]``.
    n : int
        Cells wanted on input -> logits paths.
    absolute : bool
        Rank by ``|effect|``.
    """
    order = torch.argsort(_key(effect, absolute), descending=True, stable=True)

    def pruned(k: int) -> torch.Tensor:
        mask = torch.zeros(effect.numel(), dtype=torch.bool)
        mask[order[:k]] = True
        return prune(graph, mask.reshape(effect.shape))
    lo, hi = n, effect.numel()  # pruning only removes: the answer is at least n; the count grows with k
    if n <= 0:
        return pruned(0)
    if int(pruned(hi).sum()) < n:
        return pruned(hi)
    while lo < hi:
        mid = (lo + hi) // 2
        if int(pruned(mid).sum()) >= n:
            hi = mid
        else:
            lo = mid + 1
    return pruned(lo)


def choose(graph: EdgeGraph, effect: torch.Tensor, n_edges: int | None = None, fraction: float | None = None,
           absolute: bool = True, selection: str = "topn") -> tuple[torch.Tensor, int]:
    """A pruned circuit mask by ``selection`` (see the module docstring) and the number of cells asked for.

    Parameters
    ----------
    graph : EdgeGraph
        The edge graph.
    effect : torch.Tensor
        Scores, ``[edge]`` or ``[edge, pos]``.
    n_edges, fraction : int or float, optional
        Circuit size (exactly one; ``int(fraction * cells)`` as MIB).
    absolute : bool
        Rank by ``|effect|``.
    selection : str
        ``"topn"`` (MIB's default), ``"greedy"`` (EAP-IG's ``apply_greedy``) or ``"connected"``.
    """
    if selection not in SELECTIONS:
        raise ConfigError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    n = _count(effect, n_edges, fraction)
    if selection == "topn":
        return prune(graph, select_edges(effect, n, None, absolute)), n
    if selection == "greedy":
        return prune(graph, greedy(graph, effect, n, absolute)), n
    return connected(graph, effect, n, absolute), n
