"""Edge attribution: a score for every writer -> reader edge of a transformer, by four methods.

* ``"eap"`` -- edge attribution patching (Syed, Rager & Conmy 2023, "Attribution Patching Outperforms
  Automated Circuit Discovery"): ``(a_clean[u] - a_corrupted[u]) . d metric / d input(v)`` from one forward
  pass of the other run and one forward and backward pass of the base run (denoising by default: the gradient
  is taken on the corrupted run, as TransformerLens's ``attribution_patch``);
* ``"eap-ig"`` -- EAP with integrated gradients (Hanna, Pezzelle & Belinkov 2024, "Have Faith in
  Faithfulness: Going Beyond Circuit Overlap When Finding Model Mechanisms"): the reader gradients are
  averaged over ``steps`` points on the straight path of the input embeddings from the corrupted to the clean
  run (``k / steps``, ``k = 0 .. steps-1``, as in their code); ``"eap-ig-activations"`` interpolates one
  layer's output at a time instead (``k = 1 .. steps`` for the input, every attention layer and every MLP) --
  the two variants of MIB's circuit track (Mueller et al. 2025);
* ``"relp"`` -- EAP with RelP's LRP rules in the backward pass (Rezaei Jafari et al. 2025; the rules of
  :mod:`patching.rules`);
* ``"exact"`` -- edge activation patching: for each edge, only ``v``'s input sees ``u``'s value from the other
  run (path patching of one edge, Goldowsky-Dill et al. 2023); the ground truth the estimates approximate,
  one forward pass per edge (batched).

Every estimate is of the metric change caused by patching that edge (``direction="denoise"``: clean into
corrupted; ``"noise"``: corrupted into clean, the sign convention of Hanna et al.'s code).

>>> res = patching.edge_attribution(model, clean, corrupted, metric, method="eap-ig")     # doctest: +SKIP
>>> res.to_frame().head()                     # edge, source, target, effect                # doctest: +SKIP
>>> circuit = res.circuit(fraction=0.05)                                                   # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from interp import engine
from interp._progress import tqdm
from interp.engine import Hook, Phase
from interp.engine.distributed import gather, rank_and_world
from interp.errors import ConfigError

from .._plan import check_direction, metric_name, metric_of, prepare_pair
from ..integrated_gradients import path_points
from ..rules import Rule, compile_rules, resolve_rules
from ._compute import check_by, check_sums, context, edge_gradients, path_edits, read_cut, record, writer_values
from .graph import EdgeGraph, build_graph
from .results import EdgeAttributionResult

__all__ = ["edge_attribution", "EDGE_METHODS"]

EDGE_METHODS = ("eap", "eap-ig", "eap-ig-activations", "relp", "exact")


def edge_attribution(
    model: nn.Module,
    clean: Any,
    corrupted: Any,
    metric: Callable[[torch.Tensor], torch.Tensor],
    *,
    method: str = "eap",
    by: str | None = None,
    direction: str = "denoise",
    steps: int = 5,
    integration: str | None = None,
    rules: Sequence[str | Rule] | Mapping[str, bool] | None = None,
    batch_size: int | None = None,
    max_rows: int = 256,
    progress: bool = False,
    edges: Sequence[str] | None = None,
) -> EdgeAttributionResult:
    """Score every edge of the model's graph (see :mod:`patching.edges.graph`) with ``method``.

    Parameters
    ----------
    model : TransformerBridge
        A TransformerLens ``TransformerBridge``.
    clean, corrupted : Any
        Inputs of equal shape (texts or token ids), as for the node-level methods.
    metric : Callable[[torch.Tensor], torch.Tensor]
        Scalar metric of the output, a batch mean (:mod:`patching.metrics`).
    method : str
        ``"eap"``, ``"eap-ig"`` (input path), ``"eap-ig-activations"``, ``"relp"`` or ``"exact"``.
    by : {None, "position"}
        ``None`` sums every position into one score per edge; ``"position"`` keeps positions.
    direction : {"denoise", "noise"}
        ``"denoise"`` (clean values into the corrupted run) or ``"noise"``.
    steps : int
        Integration points of EAP-IG.
    integration : str, optional
        Quadrature of the path (:func:`patching.integrated_gradients.path_points`); default Hanna et al.'s:
        ``"riemann_left"`` for the input path, ``"riemann_right"`` for activations.
    rules : Sequence[str or Rule] or Mapping[str, bool], optional
        RelP's rules for ``method="relp"``: None (the defaults wherever they apply), rule names or
        :class:`Rule` objects (exactly those), or ``{name: on}`` switching rules on and off from the defaults.
    batch_size : int, optional
        Prompts per pass (batches run one after another and are shared out among the ranks under
        ``torchrun``; scores are averaged with batch weights, as the node-level methods).
    max_rows : int
        Rows (prompts x copies) per forward pass of ``exact`` and EAP-IG.
    progress : bool
        Progress bar over the passes of ``exact``.
    edges : Sequence[str], optional
        ``exact`` only: patch just these edges (names); the others' effect is NaN (not measured).

    Returns
    -------
    EdgeAttributionResult
        One ``effect`` per edge (``[edge]`` or ``[edge, pos]``).
    """
    if method not in EDGE_METHODS:
        raise ConfigError(f"method must be one of {EDGE_METHODS}, got {method!r}")
    check_direction(direction)
    by_pos = check_by(by)
    clean, corrupted = prepare_pair(model, clean, corrupted)
    graph = build_graph(model)
    with context(graph, model):  # switch the per-head hooks on once for every pass
        return _attribute(model, graph, clean, corrupted, metric, method, by_pos, direction, steps, integration, rules,
                          batch_size, max_rows, progress, edges)


def _attribute(model: nn.Module, graph: EdgeGraph, clean: torch.Tensor, corrupted: torch.Tensor, metric: Any,
               method: str, by_pos: bool, direction: str, steps: int, integration: str | None, rules: Any,
               batch_size: int | None, max_rows: int, progress: bool,
               edges: Sequence[str] | None) -> EdgeAttributionResult:
    check_sums(model, graph, clean[:1], corrupted[:1])
    if method.startswith("eap-ig") and steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    chosen_edges = None
    if edges is not None:
        if method != "exact":
            raise ConfigError("edges= restricts the patches of method='exact'; the estimates score every edge at once")
        index = {n: i for i, n in enumerate(graph.edge_names())}
        unknown = [e for e in edges if e not in index]
        if unknown:
            raise ConfigError(f"{len(unknown)} edges are not in this model's graph, e.g. {unknown[0]!r}")
        chosen_edges = sorted({index[e] for e in edges})
    ruleset = None
    if method == "relp":
        with context(graph, model):
            chosen, strict = resolve_rules(rules)
            ruleset = compile_rules(model, chosen, strict)
    options = dict(method=method, by_pos=by_pos, direction=direction, steps=steps, integration=integration,
                   ruleset=ruleset, max_rows=max_rows, progress=progress, edges=chosen_edges)
    start = time.perf_counter()
    parts = _over_prompts(lambda c, r, m: _one_batch(model, graph, c, r, m, options), clean, corrupted, metric,
                          batch_size)
    extra: dict[str, Any] = {"seconds": time.perf_counter() - start, "layout": graph.layout,
                             "prompt_batches": len(parts)}
    if graph.n_kv_heads != graph.n_heads:
        extra["kv_heads"] = (f"{graph.n_kv_heads} key/value heads shared by {graph.n_heads} query heads: key and "
                             "value edges go to the shared head a{L}.kv{G}")
    if method.startswith("eap-ig"):
        extra["steps"] = steps
    if ruleset is not None:
        extra["rules"] = ruleset.applied
    total = sum(w for w, _ in parts)
    pick = lambda key: sum(w * p[key] for w, p in parts) / total  # noqa: E731
    positions = list(range(int(clean.shape[1]))) if by_pos else None
    return EdgeAttributionResult(
        method=method, metric=metric_name(metric), clean_value=float(pick("clean")),
        corrupted_value=float(pick("corrupted")), direction=direction, graph=graph, effect=pick("scores").cpu(),
        positions=positions, n_forward=sum(p["n_forward"] for _, p in parts),
        n_backward=sum(p["n_backward"] for _, p in parts), extra=extra)


def _over_prompts(run: Callable, clean: torch.Tensor, corrupted: torch.Tensor, metric: Any,
                  batch_size: int | None) -> list[tuple[float, dict]]:
    """``run`` per prompt batch (this rank's share), gathered from every rank: ``[(weight, part)]``."""
    total = int(clean.shape[0])
    size = total if batch_size is None else max(1, int(batch_size))
    spans = [slice(i, min(total, i + size)) for i in range(0, total, size)]
    if len(spans) == 1:
        return [(1.0, run(clean, corrupted, metric))]
    rank, world = rank_and_world()
    mine = []
    for s in spans[rank::world]:
        if not hasattr(metric, "select"):
            raise ConfigError(f"metric {metric_name(metric)!r} cannot be restricted to a batch of prompts; build "
                              "it with patching.metrics (Metric.select) or leave batch_size=None")
        mine.append(((s.stop - s.start) / total, run(clean[s], corrupted[s], metric.select(s))))
    if world > 1:
        return [p for part in gather(mine) for p in part]
    return mine


def _one_batch(model: nn.Module, graph: EdgeGraph, clean: torch.Tensor, corrupted: torch.Tensor, metric: Any,
               options: dict[str, Any]) -> dict[str, Any]:
    method, by_pos, direction = options["method"], options["by_pos"], options["direction"]
    base, other = (corrupted, clean) if direction == "denoise" else (clean, corrupted)
    extra_sites = _groups(graph) if method == "eap-ig-activations" else []
    cut, metric = read_cut(model, metric)  # unembed (and differentiate) only the positions the metric reads
    options = {**options, "cut": cut}
    other_run = record(model, graph, other, extra=extra_sites, hooks=cut)
    other_w = writer_values(graph, model, other_run.acts)
    other_value = metric_of(metric, other_run.output)
    part: dict[str, Any] = {}
    if method in ("eap", "relp"):
        rules = (lambda: options["ruleset"].installed(model)) if method == "relp" else _null
        scores, out = edge_gradients(model, graph, base, None, metric, other=other_w, by_pos=by_pos, rules=rules,
                                     cut=cut)
        base_value = metric_of(metric, out)
        part.update(scores=scores, n_forward=2, n_backward=1)
    else:
        base_run = record(model, graph, base, extra=extra_sites, hooks=cut)
        base_value = metric_of(metric, base_run.output)
        base_w = writer_values(graph, model, base_run.acts)
        deltas = other_w - base_w
        if method == "exact":
            part.update(_exact(model, graph, base, deltas, metric, base_value, by_pos, options))
        else:
            acts = (other_run.acts, base_run.acts) if direction == "denoise" else (base_run.acts, other_run.acts)
            part.update(_integrated(model, graph, base, deltas, metric, acts, by_pos, options))
    part["clean"], part["corrupted"] = ((other_value, base_value) if direction == "denoise"
                                        else (base_value, other_value))
    return part


def _null() -> Any:
    import contextlib

    return contextlib.nullcontext()


def _groups(graph: EdgeGraph) -> list[str]:
    """Sites of the writer groups interpolated by EAP-IG-activations: the input, each attention layer, each MLP."""
    sites = ["blocks.0.hook_resid_pre"]
    for layer in range(graph.n_layers):
        sites.append(f"blocks.{layer}.hook_attn_out")
        if graph.mlp:
            sites.append(f"blocks.{layer}.hook_mlp_out")
    return sites


def _integrated(model: nn.Module, graph: EdgeGraph, base: torch.Tensor, deltas: torch.Tensor, metric: Any,
                acts: tuple[dict, dict], by_pos: bool, options: dict[str, Any]) -> dict[str, Any]:
    """EAP-IG: edge gradients averaged over path points (the input path, or one layer's output at a time)."""
    steps, rows = options["steps"], int(base.shape[0])
    activations = options["method"] == "eap-ig-activations"
    quadrature = options["integration"] or ("riemann_right" if activations else "riemann_left")
    alphas, weights = path_points(steps, quadrature)
    sites = _groups(graph) if activations else ["blocks.0.hook_resid_pre"]
    clean_acts, corrupted_acts = acts
    points = [(s, float(a), float(w) / len(sites)) for s in sites for a, w in zip(alphas, weights)]
    chunk = max(1, options["max_rows"] // max(rows, 1))
    total = None
    for start in range(0, len(points), chunk):
        batch = points[start:start + chunk]
        edits = []
        for site in dict.fromkeys(s for s, _, _ in batch):
            idx = [j for j, (s, _, _) in enumerate(batch) if s == site]
            edits.append(path_edits(site, corrupted_acts[site], clean_acts[site], [a for _, a, _ in batch], rows, idx))
        scores, _ = edge_gradients(model, graph, base, deltas, metric, by_pos=by_pos, copies=len(batch),
                                   weights=[w for _, _, w in batch], edits=edits, cut=options["cut"])
        total = scores if total is None else total + scores
    return {"scores": total, "n_forward": 2 + len(points), "n_backward": len(points)}


def _exact(model: nn.Module, graph: EdgeGraph, base: torch.Tensor, deltas: torch.Tensor, metric: Any,
           base_value: float, by_pos: bool, options: dict[str, Any]) -> dict[str, Any]:
    """Patch one edge per copy of the base batch: only the reader's input gets the writer's delta."""
    rows, pos = int(base.shape[0]), int(base.shape[1])
    chosen = range(graph.n_edges) if options["edges"] is None else options["edges"]
    cells = [(e, p) for e in chosen for p in (range(pos) if by_pos else [None])]
    chunk = max(1, options["max_rows"] // max(rows, 1))
    effect = torch.full((graph.n_edges, pos) if by_pos else (graph.n_edges,), float("nan"), dtype=torch.float64)
    for start in tqdm(range(0, len(cells), chunk), disable=not options["progress"], desc="exact edge patching"):
        batch = cells[start:start + chunk]
        hooks = _edge_patches(graph, deltas, batch, rows)
        with torch.no_grad(), context(graph, model):
            out = engine.run(model, engine.repeat(base, len(batch)), [*hooks, *options["cut"]])
        for j, (e, p) in enumerate(batch):
            value = metric_of(metric, out[j * rows:(j + 1) * rows]) - base_value
            if p is None:
                effect[e] = value
            else:
                effect[e, p] = value
    return {"scores": effect, "n_forward": 2 + len(cells), "n_backward": 0}


def _edge_patches(graph: EdgeGraph, deltas: torch.Tensor, batch: list[tuple[int, int | None]], rows: int) -> list[Hook]:
    """EDIT hooks adding, in copy ``j``, writer ``u``'s delta to reader ``(site, slot)`` (at one position or all)."""
    per_site: dict[int, list[tuple[int, int, int, int | None]]] = {}
    for j, (e, p) in enumerate(batch):
        u, s, slot = graph.edges[e]
        per_site.setdefault(s, []).append((j, u, slot, p))
    hooks = []
    for s, items in per_site.items():
        site = graph.sites[s]

        def edit(act: torch.Tensor, site=site, items=items) -> torch.Tensor:
            act = act.clone()
            for j, u, slot, p in items:
                add = deltas[u]
                if site.proj is not None:
                    add = add @ site.proj[slot].to(add.dtype)
                where = slice(None) if p is None else slice(p, p + 1)
                target = act[j * rows:(j + 1) * rows, where]
                if site.heads is not None:
                    target = target[:, :, slot]
                target += add[:, where].to(act.dtype)
            return act
        hooks.append(Hook(site.site, edit, Phase.EDIT))
    return hooks
