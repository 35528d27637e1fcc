"""The passes behind edge attribution: writer values, reader terms, one gradient pass for every edge at once.

Every edge score has the form ``delta_u . g_v`` (a writer's change times the gradient at a reader's input).
Instead of keeping the gradient at every reader, each reader site gets a zero-valued term
``sum_u S[u, h] * delta_u`` added to its input, so ``d metric / d S[u, h] = delta_u . g_{v=(site, h)}``: one
backward pass yields every edge score and the reader gradients are never stored (their memory is streamed
through autograd layer by layer). The same terms, with 0/1 coefficients, patch single edges (``exact``) and
ablate the edges outside a circuit (:mod:`patching.edges.faithfulness`).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from interp import engine
from interp.engine import Hook, Phase
from interp.errors import ConfigError, SiteError

from .._plan import reading
from ..metrics import evaluate
from .graph import EdgeGraph, ReaderSite

__all__ = ["context", "record", "read_cut", "writer_values", "term", "check_sums", "edge_gradients", "ABS_TOL"]

#: relative tolerance of the check that every reader input is the sum of its upstream writers
ABS_TOL = 2e-3
_CHECKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def context(graph: EdgeGraph, model: nn.Module) -> contextlib.AbstractContextManager:
    """The model state the graph's hook sites need (per-head inputs switched on in the split layout)."""
    return engine.split_inputs(model) if graph.layout == "split" else contextlib.nullcontext()


def record(model: nn.Module, graph: EdgeGraph, tokens: torch.Tensor, readers: bool = False,
           extra: Sequence[str] = (), hooks: Sequence[Hook] = ()) -> engine.Recording:
    """One forward pass keeping every writer site (and every reader site when ``readers``, and ``extra``);
    ``hooks``: the read cut (:func:`read_cut`), if any."""
    sites = graph.writer_sites() + ([s.site for s in graph.sites] if readers else []) + list(extra)
    with context(graph, model), (contextlib.nullcontext() if readers else _writers_only(graph, model)):
        return engine.record(model, tokens, list(dict.fromkeys(sites)), clone=True, hooks=hooks)


def read_cut(model: nn.Module, metric: Any) -> tuple[list[Hook], Any]:
    """The hooks that unembed only the positions ``metric`` reads (one per example; none when it does not say
    which), and the metric on those logits (:func:`patching._plan.reading`). Every edge pass repeats its
    batch with :func:`engine.repeat` (whole copies one after another), so the cut is copy-major."""
    read, metric = reading(model, metric)  # the graph's last reader is the final residual, never the unembedding
    return ([read.hook(copy_major=True)] if read is not None else []), metric


@contextlib.contextmanager
def _writers_only(graph: EdgeGraph, model: nn.Module) -> Any:
    """Per-head q/k/v inputs switched off for a pass that reads writers only (they cost a third of a forward
    pass; the per-head results stay on)."""
    cfg = getattr(model, "cfg", None)
    split = graph.layout == "split" and bool(getattr(cfg, "use_split_qkv_input", False))
    if split:
        model.set_use_split_qkv_input(False)
    try:
        yield
    finally:
        if split:
            model.set_use_split_qkv_input(True)


def writer_values(graph: EdgeGraph, model: nn.Module, acts: dict[str, torch.Tensor],
                  which: Sequence[int] | None = None) -> torch.Tensor:
    """Every writer's residual write, stacked: ``[writer, batch, pos, d_model]`` (float32)."""
    rows = []
    for i in range(len(graph.writers)) if which is None else which:
        w = graph.writers[i]
        value = acts[w.site]
        if w.head is not None:
            value = value[:, :, w.head]
            if graph.layout == "projected":
                value = value @ model.blocks[w.layer].attn.W_O[w.head].detach().to(value.dtype)
        rows.append(value.float())
    return torch.stack(rows)


def _plain_term(site: ReaderSite, deltas: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    n_up = site.n_up
    d = deltas[:n_up]
    if coef.ndim == 2:
        b, p, dm = d.shape[1:]
        out = (d.reshape(n_up, -1).T @ coef.to(d.dtype)).reshape(b, p, dm, -1).permute(0, 1, 3, 2)
    else:
        out = torch.einsum("ubpd,uph->bphd", d, coef.to(d.dtype))
    if site.heads is None:
        return out[:, :, 0]
    if site.proj is not None:
        out = torch.einsum("bphd,hde->bphe", out, site.proj.to(out.dtype))
    return out


class _Term(torch.autograd.Function):
    """``_plain_term`` whose backward reads the deltas when it runs instead of saving them: the deltas buffer
    is filled while the forward pass goes on (a writer's delta is final before any reader downstream uses it),
    and no copy per reader is kept for the backward pass."""

    @staticmethod
    def forward(ctx: Any, coef: torch.Tensor, box: list, site: ReaderSite) -> torch.Tensor:  # type: ignore[override]
        ctx.box, ctx.site, ctx.ndim = box, site, coef.ndim
        if not bool(coef.any()):  # the zero coefficients of a gradient pass: the term is zero, skip the product
            d = box[0]
            shape = (d.shape[1], d.shape[2]) + ((len(site.names),) if site.heads is not None else ())
            width = site.proj.shape[-1] if site.proj is not None else d.shape[3]
            return torch.zeros(*shape, width, dtype=d.dtype, device=d.device)
        return _plain_term(site, box[0], coef.detach())

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        site = ctx.site
        first = ctx.box[1] if len(ctx.box) > 1 else 0  # positions before it: every delta is zero (see _trim)
        d = ctx.box[0][:site.n_up]
        g = grad.unsqueeze(2) if site.heads is None else grad
        pos = g.shape[1]
        g = g[:, first:]
        if site.proj is not None:
            g = torch.einsum("bphe,hde->bphd", g, site.proj.to(g.dtype))
        g = g.to(d.dtype)
        if ctx.ndim == 2:
            out = d.reshape(site.n_up, -1) @ g.permute(0, 1, 3, 2).reshape(-1, g.shape[2])
        else:
            out = torch.einsum("ubpd,bphd->uph", d, g)
            if first:
                out = torch.cat([out.new_zeros(out.shape[0], first, out.shape[2]), out], dim=1)
            assert out.shape[1] == pos
        return out, None, None


#: deltas below this fraction of the largest are float noise of two runs of identical prefixes
ZERO_TOL = 1e-6


def _trim(box: list) -> None:
    """Drop the leading positions at which every writer's delta is zero (the clean and corrupted prompts share
    their prefix up to the first differing token, and a causal model computes the same values there): the
    gradient products then run over the positions that differ only. Checked on the deltas themselves, so a
    model that is not causal keeps every position."""
    d = box[0]
    per_pos = torch.maximum(d.amax(dim=(0, 1, 3)), d.amin(dim=(0, 1, 3)).neg())  # max |delta| per position
    live = torch.nonzero(per_pos > ZERO_TOL * float(per_pos.max()) if per_pos.numel() else per_pos).flatten()
    first = int(live[0]) if live.numel() else 0
    if first:
        box[0] = d[:, :, first:].contiguous()
        box.append(first)


def term(site: ReaderSite, deltas: torch.Tensor | list, coef: torch.Tensor) -> torch.Tensor:
    """``sum_u coef[u, (pos,) h] * deltas[u]`` in the reader site's own space.

    ``coef`` is ``[n_up, H]`` (every position) or ``[n_up, pos, H]``; the result is ``[b, pos, H, d]`` at a site
    with heads (projected through ``W[h]`` in the projected layout), ``[b, pos, d]`` otherwise. ``deltas`` may
    be a one-element list holding the buffer (filled during the pass; differentiable in ``coef`` only).
    """
    if isinstance(deltas, list):
        return _Term.apply(coef, deltas, site)
    return _plain_term(site, deltas, coef)


def _add(site: ReaderSite, make: Callable[[], torch.Tensor]) -> Hook:
    def edit(act: torch.Tensor) -> torch.Tensor:
        extra = make()
        if extra.shape[0] != act.shape[0]:
            extra = extra.repeat(act.shape[0] // extra.shape[0], *([1] * (extra.ndim - 1)))
        return act + extra.to(act.dtype)
    return Hook(site.site, edit, Phase.EDIT)


def check_sums(model: nn.Module, graph: EdgeGraph, first: torch.Tensor, second: torch.Tensor) -> None:
    """Refuse a model whose reader inputs are not the sum of the upstream writers' outputs.

    Checked on one prompt of each input: ``input(v) - sum_u write(u)`` must be the same in both runs (position
    embeddings and biases cancel); post-sublayer norms, scaled residuals or a wrong head layout would differ.
    """
    key = (graph.layout, tuple(s.site for s in graph.sites))
    if _CHECKED.get(model) == key:  # a structural property of the architecture: checked once per model
        return
    if torch.equal(first, second):
        second = first.flip(-1)
    try:
        a, b = record(model, graph, first, readers=True), record(model, graph, second, readers=True)
    except SiteError as exc:
        raise ConfigError(f"a reader input of this model's edge graph is not on its forward path ({exc}); e.g. Phi's "
                          "MLP reads the attention's layer norm, so the MLP input has no hook of its own: edge "
                          "attribution refuses it (node-level methods still work)") from None
    wa, wb = writer_values(graph, model, a.acts), writer_values(graph, model, b.acts)
    for site in graph.sites:
        ones = torch.ones(site.n_up, len(site.names))
        expected = term(site, wa - wb, ones)
        got = (a.acts[site.site] - b.acts[site.site]).float()
        scale = max(float(a.acts[site.site].abs().max()), float(b.acts[site.site].abs().max()), 1e-6)
        err = float((got - expected).abs().max()) / scale
        if err > ABS_TOL:
            raise ConfigError(f"the input of {site.site} is not the sum of its upstream writers' outputs (relative "
                              f"error {err:.2g} > {ABS_TOL}): this architecture normalises or scales sublayer "
                              "outputs before the residual add (post-norms), or its head layout is not the one "
                              "assumed, so edge scores would be wrong; edge attribution refuses it")
    _CHECKED[model] = key


def _fillers(model: nn.Module, graph: EdgeGraph, other: torch.Tensor, box: list) -> list[Hook]:
    """READ hooks at the writer sites setting ``box[0][u] = other[u] - live value of u`` during the pass."""
    by_site: dict[str, list[int]] = {}
    for i, w in enumerate(graph.writers):
        by_site.setdefault(w.site, []).append(i)

    def fill(act: torch.Tensor, idx: list[int]) -> None:
        span = slice(idx[0], idx[-1] + 1)
        heads = [graph.writers[i].head for i in idx]
        if graph.layout == "split" and act.ndim == 4 and heads == list(range(act.shape[2])) \
                and idx == list(range(span.start, span.stop)):  # every head of the site, in order: one copy
            box[0][span] = other[span] - act.detach().permute(2, 0, 1, 3).float()
            return
        live = writer_values(graph, model, {graph.writers[idx[0]].site: act.detach()}, idx)
        box[0][idx] = other[idx] - live
    return [Hook(site, lambda act, idx=idx: fill(act, idx), Phase.READ) for site, idx in by_site.items()]


def edge_gradients(model: nn.Module, graph: EdgeGraph, base: torch.Tensor, deltas: torch.Tensor | None, metric: Any, *,
                   other: torch.Tensor | None = None,
                   by_pos: bool, copies: int = 1, weights: Sequence[float] = (1.0,),
                   edits: Sequence[Hook] = (), rules: Callable[[], Any] = contextlib.nullcontext,
                   cut: Sequence[Hook] = ()) -> torch.Tensor:
    """``sum_j weights[j] * delta_u . d metric_j / d input(v)`` for every edge, from one forward/backward pass.

    ``base`` runs ``copies`` times (``edits`` make the copies differ: integration path points); ``metric_j``
    is the metric on copy ``j`` (``cut``: the read cut of :func:`read_cut`, ``metric`` then the cut one). With ``deltas=None`` the deltas are ``other - base`` writer values, the base's
    taken during this very pass (``other``: the other run's writer values). Returns the edge scores
    ``[n_edges]`` (or ``[n_edges, pos]`` when ``by_pos``, float64) and the base output.
    """
    rows, pos = int(base.shape[0]), int(base.shape[1])
    box = [deltas if deltas is not None else torch.zeros_like(other)]
    fillers = _fillers(model, graph, other, box) if deltas is None else []
    coefs = []
    for site in graph.sites:
        shape = (site.n_up, pos, len(site.names)) if by_pos else (site.n_up, len(site.names))
        coefs.append(torch.zeros(shape, dtype=box[0].dtype, device=box[0].device, requires_grad=True))
    hooks = [_add(site, lambda site=site, c=c: term(site, box, c)) for site, c in zip(graph.sites, coefs)]
    tokens = engine.repeat(base, copies) if copies > 1 else base
    with torch.enable_grad(), context(graph, model), rules():
        out = engine.run(model, tokens, [*edits, *hooks, *fillers, *cut])
        value = sum(float(w) * evaluate(metric, out[j * rows:(j + 1) * rows]) for j, w in enumerate(weights))
        _trim(box)  # box[0] is replaced, a caller's deltas are left as they are
        grads = torch.autograd.grad(value, coefs, allow_unused=True)
    parts = []
    for c, g in zip(coefs, grads):
        g = torch.zeros_like(c) if g is None else g
        # [n_up, (pos,) H] -> edges ordered reader slot-major, then writer
        parts.append((g.permute(2, 0, 1) if by_pos else g.T).reshape(-1, *((pos,) if by_pos else ())))
    return torch.cat(parts).double(), out.detach()


def path_edits(site: str, start: torch.Tensor, end: torch.Tensor, alphas: Sequence[float], rows: int,
               only: Sequence[int] | None = None) -> Hook:
    """Copy ``j`` of the batch gets ``start + alphas[j] (end - start)`` at ``site`` (copies not in ``only`` pass)."""
    chosen = range(len(alphas)) if only is None else only

    def edit(act: torch.Tensor) -> torch.Tensor:
        act = act.clone()
        for j in chosen:
            a = float(alphas[j])
            act[j * rows:(j + 1) * rows] = (start + a * (end - start)).to(act.dtype)
        return act
    return Hook(site, edit, Phase.EDIT)


def check_by(by: Any) -> bool:
    """``by=None`` sums positions; ``by="position"`` keeps them."""
    if by in (None, "edge"):
        return False
    if by in ("position", "pos", ("pos",), ("position",)):
        return True
    raise ConfigError(f"by must be None (positions summed) or 'position', got {by!r}")
