"""The computational graph of edge attribution: writers, readers and the edges between them.

Nodes and names follow the EAP-IG / MIB convention (Hanna, Pezzelle & Belinkov 2024, "Have Faith in
Faithfulness"; Mueller et al. 2025, "MIB: A Mechanistic Interpretability Benchmark"): writers are the
embeddings ``input``, every attention head ``a{L}.h{H}`` and every MLP block ``m{L}`` (a mixture of experts
is one node); readers are each head's query, key and value inputs ``a{L}.h{H}<q>``/``<k>``/``<v>``, each
MLP's input ``m{L}`` and the unembedding ``logits``. An edge ``u->v`` joins every writer to every reader
downstream of it (the residual stream is a sum of the writers' outputs, checked on every run).

Under grouped-query or multi-query attention (GQA/MQA) several query heads share one key/value head, so a
key or value edge goes to the shared head: ``a{L}.kv{G}<k>`` (query heads ``G*g .. G*g+g-1``, ``g`` the group
size). With as many key/value heads as query heads the names are MIB's (``a{L}.h{H}<k>``).

Two layouts of the per-head values are derived from the model and checked:

* ``"split"`` -- a bridge whose attention can split its inputs (``interp.engine.split_inputs``): readers are
  ``attn.hook_q_input``/``hook_k_input``/``hook_v_input`` and ``hook_mlp_in``, head writers ``attn.hook_result``;
* ``"projected"`` -- a bridge without normalisation before attention (e.g. ``induction-2l``): readers are
  ``attn.hook_q``/``hook_k``/``hook_v`` (a residual term enters as ``x @ W_Q[h]``), head writers
  ``attn.hook_z @ W_O[h]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from interp import engine
from interp.errors import ConfigError, InputTypeError

__all__ = ["Writer", "ReaderSite", "EdgeGraph", "build_graph", "graph_from_cfg"]


@dataclass
class Writer:
    """A node writing into the residual stream: ``site`` (and ``head`` on its head axis).

    Parameters
    ----------
    name : str
        The node's name (``"input"``, ``"a{L}.h{H}"``, ``"m{L}"``).
    site : str
        The hook whose value it writes.
    layer : int
        Its layer (-1 for the input).
    head : int, optional
        Its head on the site's head axis (None for the input and MLPs).
    """

    name: str
    site: str
    layer: int            # -1 for the input
    head: int | None = None


@dataclass
class ReaderSite:
    """All readers at one hook site: ``names[i]`` reads head ``heads[i]`` (None: no head axis).

    Parameters
    ----------
    site : str
        The hook name.
    names : list of str
        The readers' names (``"a{L}.h{H}<q>"``, ``"m{L}"``, ``"logits"``).
    nodes : list of list of str
        The graph node(s) each reader belongs to (a shared key/value head: several).
    heads : list of int, optional
        The head each reader reads on the site's head axis (None: no head axis).
    n_up : int
        The readers' upstream writers are writers ``0 .. n_up - 1`` (writers are in topological order).
    proj : torch.Tensor, optional
        ``[head, d_model, d_head]`` projection of a residual term into this site (projected layout).
    offset : int
        Index of this site's first edge (set by :class:`EdgeGraph`).
    """

    site: str
    names: list[str]
    nodes: list[list[str]]     # the graph node(s) each reader belongs to (a shared kv head: several)
    heads: list[int] | None
    n_up: int
    proj: torch.Tensor | None = None
    offset: int = 0            # index of this site's first edge


@dataclass
class EdgeGraph:
    """Writers, reader sites and the edge list ``edges[i] = (writer index, reader site index, reader slot)``.

    Parameters
    ----------
    writers : list of Writer
        The writers, in topological order.
    sites : list of ReaderSite
        The reader sites.
    layout : {"split", "projected", "names"}
        How per-head values are formed (see the module docstring; ``"names"``: a graph without a model).
    n_layers, n_heads, n_kv_heads : int
        The model's layers, query heads and key/value heads.
    parallel : bool
        Attention and MLP read the same residual stream (parallel blocks).
    d_model : int
        The residual width (0 when unknown).
    mlp : bool
        The blocks have MLPs.
    edges : list of tuple of (int, int, int)
        Rebuilt from ``sites`` on construction (any value given is replaced).
    """

    writers: list[Writer]
    sites: list[ReaderSite]
    layout: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    parallel: bool
    d_model: int
    mlp: bool
    edges: list[tuple[int, int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.edges = []
        for s, site in enumerate(self.sites):
            site.offset = len(self.edges)
            self.edges.extend((u, s, j) for j in range(len(site.names)) for u in range(site.n_up))

    @property
    def n_edges(self) -> int:
        return len(self.edges)

    def edge_names(self) -> list[str]:
        """``source->target`` names (EAP-IG/MIB spelling)."""
        return [f"{self.writers[u].name}->{self.sites[s].names[j]}" for u, s, j in self.edges]

    def sources(self) -> list[str]:
        return [self.writers[u].name for u, _, _ in self.edges]

    def targets(self) -> list[str]:
        return [self.sites[s].names[j] for _, s, j in self.edges]

    def target_nodes(self) -> list[list[str]]:
        return [self.sites[s].nodes[j] for _, s, j in self.edges]

    def edge_slice(self, s: int) -> slice:
        """Edges of reader site ``s``, ordered reader slot-major then writer.

        Parameters
        ----------
        s : int
            The reader site's index in ``sites``.
        """
        site = self.sites[s]
        return slice(site.offset, site.offset + site.n_up * len(site.names))

    def cfg(self) -> dict[str, Any]:
        """The ``cfg`` block of an EAP-IG/MIB graph file."""
        return {"n_layers": self.n_layers, "n_heads": self.n_heads, "n_key_value_heads": self.n_kv_heads,
                "parallel_attn_mlp": self.parallel, "d_model": self.d_model, "layout": self.layout}

    def writer_sites(self) -> list[str]:
        return list(dict.fromkeys(w.site for w in self.writers))


def _kv_heads(model: Any) -> int:
    cfg = model.cfg
    kv = getattr(cfg, "n_key_value_heads", None) or cfg.n_heads
    per_layer = getattr(cfg, "per_layer_num_key_value_heads", None)
    if per_layer and len(set(per_layer)) > 1:
        raise ConfigError(f"key/value heads differ between layers ({per_layer}); edge attribution needs one layout")
    if cfg.n_heads % kv:
        raise ConfigError(f"{cfg.n_heads} query heads do not split into {kv} key/value groups")
    return int(kv)


def _can_split(model: Any) -> bool:
    try:
        with engine.split_inputs(model):
            pass
    except (NotImplementedError, ValueError, AttributeError, InputTypeError):
        return False
    return True


def build_graph(model: nn.Module) -> EdgeGraph:
    """The edge graph of a TransformerBridge, its layout derived from the model (see the module docstring).

    Parameters
    ----------
    model : TransformerBridge
        The model (anything else is an :class:`InputTypeError`; a model whose per-head inputs cannot be
        formed exactly is a :class:`ConfigError`).
    """
    if not engine.is_bridge(model):
        raise InputTypeError(f"edge attribution needs a transformer (TransformerLens TransformerBridge); got a "
                             f"{type(model).__name__}. For other modules use the node-level methods "
                             "(patching.attribution_patching, sites=module paths)")
    cfg = model.cfg
    n_layers, n_heads, kv = int(cfg.n_layers), int(cfg.n_heads), _kv_heads(model)
    hooks = model.hook_dict
    mlp = not bool(getattr(cfg, "attn_only", False)) and "blocks.0.hook_mlp_out" in hooks
    parallel = bool(getattr(cfg, "parallel_attn_mlp", False))
    if _can_split(model):
        layout = "split"
    elif getattr(cfg, "normalization_type", "LN") is None and not mlp:
        layout = "projected"
    else:
        raise ConfigError("this model's attention cannot split its inputs per head (TransformerLens has no "
                          "use_split_qkv_input for its attention bridge) and it normalises before attention, so "
                          "per-head reader inputs cannot be formed exactly; edge attribution refuses it. Node-level "
                          "methods (patching.attribution_patching with sites='heads') still work")
    known = set(hooks)

    def resolve(site: str) -> str:
        return site if site in known else engine.resolve_site(model, site)  # resolve_site raises a SiteError
    graph = graph_from_cfg(n_layers, n_heads, kv, mlp=mlp, parallel_attn_mlp=parallel, d_model=int(cfg.d_model))
    graph.layout = layout
    for site in graph.sites:
        name = site.site
        if layout == "projected" and name.endswith("_input"):
            layer, kind = int(name.split(".")[1]), name[-7]
            site.site = f"blocks.{layer}.attn.hook_{kind}"
            site.proj = getattr(model.blocks[layer].attn, f"W_{kind.upper()}").detach()
        site.site = resolve(site.site)
    for w in graph.writers:
        if layout == "projected" and w.head is not None:
            w.site = f"blocks.{w.layer}.attn.hook_z"
        w.site = resolve(w.site)
    return graph


def graph_from_cfg(n_layers: int, n_heads: int, n_key_value_heads: int | None = None, *, mlp: bool = True,
                   parallel_attn_mlp: bool = False, d_model: int = 0, **_: Any) -> EdgeGraph:
    """The graph's nodes and edges from a configuration alone (no model: no projections; layout ``"names"``),
    e.g. the ``cfg`` of an EAP-IG/MIB graph file.

    Parameters
    ----------
    n_layers, n_heads : int
        Layers and query heads.
    n_key_value_heads : int, optional
        Key/value heads (default ``n_heads``: no grouped-query attention).
    mlp : bool
        The blocks have MLPs.
    parallel_attn_mlp : bool
        Attention and MLP read the same residual stream.
    d_model : int
        The residual width (0 when unknown).
    **_
        Other configuration keys, ignored.
    """
    kv = int(n_key_value_heads or n_heads)
    group = n_heads // kv
    writers = [Writer("input", "blocks.0.hook_resid_pre", -1)]
    sites: list[ReaderSite] = []
    for layer in range(n_layers):
        up = len(writers)
        for kind in "qkv":
            count = n_heads if kind == "q" else kv
            if kind == "q" or kv == n_heads:
                names = [f"a{layer}.h{h}<{kind}>" for h in range(count)]
                nodes = [[f"a{layer}.h{h}"] for h in range(count)]
            else:
                names = [f"a{layer}.kv{g}<{kind}>" for g in range(count)]
                nodes = [[f"a{layer}.h{h}" for h in range(g * group, (g + 1) * group)] for g in range(count)]
            sites.append(ReaderSite(f"blocks.{layer}.attn.hook_{kind}_input", names, nodes, list(range(count)), up))
        writers.extend(Writer(f"a{layer}.h{h}", f"blocks.{layer}.attn.hook_result", layer, h) for h in range(n_heads))
        if mlp:
            sites.append(ReaderSite(f"blocks.{layer}.hook_mlp_in", [f"m{layer}"], [[f"m{layer}"]], None,
                                    up if parallel_attn_mlp else len(writers)))
            writers.append(Writer(f"m{layer}", f"blocks.{layer}.hook_mlp_out", layer))
    sites.append(ReaderSite(f"blocks.{n_layers - 1}.hook_resid_post", ["logits"], [["logits"]], None, len(writers)))
    return EdgeGraph(writers, sites, "names", n_layers, n_heads, kv, parallel_attn_mlp, d_model, mlp)
