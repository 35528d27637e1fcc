"""Activation patching sweeps (noising and denoising), batched.

Denoising (the default, as in ``transformer_lens.patching``): run the *corrupted* input and patch in
the *clean* activation at one cell (layer x position, layer x head, layer x neuron ...), then read the
metric. Noising does the reverse. Many patches share one forward pass: the batch is repeated ``k``
times and each copy gets a different cell patched, so a sweep costs ``ceil(cells / k)`` forward passes.
Three exact shortcuts (each checked against a full forward pass first, each can be switched off): no-op
patches are skipped, a token prefix shared by both inputs is computed once (KV cache), and the blocks
below the patched one are replayed from the base run.

References: Meng et al. 2022 (ROME, causal tracing); Heimersheim & Nanda 2024, "How to use and
interpret activation patching"; the TransformerLens ``patching`` module.

>>> res = activation_patching(model, clean, corrupted, metric, sites="resid_pre")   # doctest: +SKIP
>>> res.effect.shape   # (layer, pos): change of the metric per patch             # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import itertools
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from interp import engine
from interp._progress import tqdm
from interp.engine import BlockReplay, Hook, SharedPrefix

from ._distributed import merge_shares, over_prompts
from ._plan import (
    SitePlan,
    axis_sizes,
    cell_coords,
    check_direction,
    check_editable,
    metric_name,
    metric_of,
    narrow_vocab,
    plan_sites,
    prepare_pair,
    reading,
)
from .contract import attribution_method
from .results import AttributionResult, SiteGrid

__all__ = ["activation_patching"]


@attribution_method("activation")
def activation_patching(
    model: nn.Module,
    clean: Any,
    corrupted: Any,
    metric: Callable[[torch.Tensor], torch.Tensor],
    sites: str | Sequence[str] | None = None,
    *,
    by: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    layers: Sequence[int] | None = None,
    index: Mapping[str, Sequence[int]] | None = None,
    direction: str = "denoise",
    batch_size: int | None = None,
    patches_per_pass: int | None = None,
    max_rows: int = 512,
    skip_identical: bool = True,
    reuse_prefix: bool = True,
    replay_blocks: bool = True,
    read_positions: bool = True,
    progress: bool = False,
) -> AttributionResult:
    """Patch activations cell by cell and measure the change of the metric.

    Parameters
    ----------
    {shared_parameters}
    patches_per_pass : int, optional
        Patches per forward pass (default: as many as fit in ``max_rows`` rows). With one prompt batch
        under ``torchrun`` the patches are shared out among the ranks.
    max_rows : int
        Cap on ``patches x batch`` rows per forward pass.
    skip_identical : bool
        Skip patches whose source equals the activation already there.
    reuse_prefix : bool
        Compute a token prefix shared by clean and corrupted once (KV cache; causal HF-backed bridges;
        checked against a full forward pass).
    replay_blocks : bool
        Replay the recorded outputs of the blocks below the patched one (checked).
    read_positions : bool
        Unembed only the position each example's metric reads, when the metric says which (the metrics
        of :mod:`patching.metrics` that read one position do; a plain callable reads every position).
    progress : bool
        Show a progress bar.

    Returns
    -------
    AttributionResult
        ``method="activation"``: ``effect`` = measured change of the metric, ``values`` = the metric after
        each patch (as ``transformer_lens.patching`` returns it).
    """
    check_direction(direction)
    clean, corrupted = prepare_pair(model, clean, corrupted)
    plans = plan_sites(model, sites, by=by, layers=layers, index=index)
    check_editable(model, plans, clean)
    options = dict(max_rows=max_rows, patches_per_pass=patches_per_pass, skip_identical=skip_identical,
                   reuse_prefix=reuse_prefix, replay_blocks=replay_blocks, progress=progress)
    return over_prompts(lambda c, r, m, share: _patch(model, c, r, m, plans, index, direction, share, options,
                                                      read_positions),
                        clean, corrupted, metric, batch_size)


def _patch(model: nn.Module, clean: torch.Tensor, corrupted: torch.Tensor, metric: Callable, plans: list[SitePlan],
           index: Mapping[str, Sequence[int]] | None, direction: str, share: tuple[int, int],
           options: dict[str, Any], read_positions: bool = True) -> AttributionResult:
    """Activation patching of one prompt batch (``share``: this rank's part of the patches)."""
    names = list(dict.fromkeys(n for p in plans for n in p.names))
    read, metric = reading(model, metric, names, read_positions)  # the logits the metric reads, and nothing else
    cut = [read.hook(copy_major=True)] if read is not None else []
    both = engine.record(model, torch.cat([clean, corrupted]), names, clone=True, hooks=cut)
    rows = int(clean.shape[0])
    clean_out, corrupted_out = both.output[:rows], both.output[rows:]
    clean_acts = {n: a[:rows] for n, a in both.acts.items()}
    corrupted_acts = {n: a[rows:] for n, a in both.acts.items()}
    clean_value, corrupted_value = metric_of(metric, clean_out), metric_of(metric, corrupted_out)
    denoise = direction == "denoise"
    base = corrupted if denoise else clean
    swaps, narrow_metric, base_out = narrow_vocab(model, read, metric, base, corrupted_out if denoise else clean_out)
    sweep = _Sweep(model, base=base, base_out=base_out, source=clean_acts if denoise else corrupted_acts,
                   base_acts=corrupted_acts if denoise else clean_acts, pair=(clean, corrupted), metric=narrow_metric,
                   base_value=corrupted_value if denoise else clean_value, share=share, read=read, **options)
    grids, extra = {}, {}
    with engine.overridden(swaps):  # the patched runs unembed only the tokens the metric reads
        for plan in plans:
            grids[plan.label], extra[plan.label] = sweep.run(plan, index)
            extra[plan.label]["unembedded_tokens"] = int(base_out.shape[-1]) if swaps else None
    n_patched = sum(e["cells"] - e["skipped"] for e in extra.values())
    return AttributionResult(method="activation", metric=metric_name(metric), clean_value=clean_value,
                             corrupted_value=corrupted_value, direction=direction, grids=grids,
                             n_forward=2 + n_patched, n_backward=0, extra=extra)


class _Sweep:
    """One batched sweep per site plan, on a shared base run."""

    def __init__(self, model: nn.Module, *, base: torch.Tensor, base_out: torch.Tensor, source: dict,
                 base_acts: dict, pair: tuple, metric: Callable, base_value: float, max_rows: int,
                 patches_per_pass: int | None, skip_identical: bool, reuse_prefix: bool, replay_blocks: bool,
                 progress: bool, share: tuple[int, int] = (0, 1), read: Any = None) -> None:
        self.model, self.base, self.base_out, self.source, self.base_acts = model, base, base_out, source, base_acts
        self.pair, self.metric, self.base_value, self.share = pair, metric, base_value, share
        self.max_rows, self.patches_per_pass, self.skip_identical = max_rows, patches_per_pass, skip_identical
        self.reuse_prefix, self.replay_blocks, self.progress = reuse_prefix, replay_blocks, progress
        self.bridge, self.read = engine.is_bridge(model), read

    def run(self, plan: SitePlan, index: Mapping[str, Sequence[int]] | None) -> tuple[SiteGrid, dict]:
        names, source = plan.names, self.source
        first = source[names[0]]
        dims = plan.dims(first, self.bridge)
        sizes = axis_sizes(first, names[0], self.bridge)
        coords = cell_coords(plan, dims, sizes, first.shape, index)

        def selector(cell: tuple[int, ...]) -> tuple[Any, ...]:
            sel: list[Any] = [slice(None)] * source[names[cell[0]]].ndim
            for d, i in zip(dims[1:], cell[1:]):
                sel[sizes[d][0]] = coords[d][i]
            return tuple(sel)

        all_cells = list(itertools.product(*[range(len(coords[d])) for d in dims]))
        values = torch.full([len(coords[d]) for d in dims], self.base_value, dtype=torch.float64)
        cells = [c for c in all_cells if not (self.skip_identical and torch.equal(
            source[names[c[0]]][selector(c)], self.base_acts[names[c[0]]][selector(c)]))]
        prefix = self._prefix(names, dims, sizes) if cells else None
        offset = prefix.length if prefix is not None else 0
        if offset and "pos" in dims:  # patches inside the shared prefix are no-ops
            cells = [c for c in cells if coords["pos"][c[dims.index("pos")]] >= offset]

        def runner(inputs: torch.Tensor, n: int) -> torch.Tensor:
            if prefix is not None:
                return prefix.run(inputs, n)
            with engine.hooked(self.model, [self.read.hook()] if self.read is not None else []):
                return engine.forward(self.model, inputs)

        replay = BlockReplay.build(self.model, runner, self.base, self.base_out) if self.replay_blocks and cells \
            else None
        groups: dict[int, list[tuple[int, ...]]] = defaultdict(list)
        for cell in cells:
            groups[replay.first_block(self.model, names[cell[0]]) if replay else 0].append(cell)
        batch = int(self.base.shape[0])
        k = self.patches_per_pass or max(1, min(max(len(cells), 1), self.max_rows // max(batch, 1)))
        chunks = [(upto, group[s:s + k]) for upto, group in sorted(groups.items()) for s in range(0, len(group), k)]
        rank, world = self.share
        chunks = chunks[rank::world]
        done = torch.zeros(values.shape, dtype=torch.bool)
        for upto, chunk in tqdm(chunks, disable=not self.progress, desc=f"patching {plan.label}"):
            n = len(chunk)
            per_site: dict[int, list[tuple[int, tuple[Any, ...]]]] = defaultdict(list)
            for copy, cell in enumerate(chunk):
                per_site[cell[0]].append((copy, _shift(selector(cell), offset)))
            hooks = [Hook(names[i], _patcher(source[names[i]][:, offset:], todo, n)) for i, todo in per_site.items()]
            skip = replay.skip(upto, n) if replay is not None else contextlib.nullcontext()
            with torch.no_grad(), skip, engine.hooked(self.model, hooks):
                out = runner(self.base.repeat_interleave(n, 0), n)
            for copy, cell in enumerate(chunk):
                values[cell] = metric_of(self.metric, out[copy::n])
                done[cell] = True
        if world > 1:
            values = merge_shares(values - self.base_value, done) + self.base_value
        extra = {"forward_calls": 1 + len(chunks) + 2 * (replay is not None), "patches_per_call": k,
                 "blocks_replayed": sum(upto * len(chunk) for upto, chunk in chunks), "cells": len(all_cells),
                 "skipped": len(all_cells) - len(cells), "shared_prefix": offset}
        return SiteGrid(plan.label, dims, coords, values - self.base_value), extra

    def _prefix(self, names: list[str], dims: tuple[str, ...], sizes: dict) -> SharedPrefix | None:
        if not self.reuse_prefix or not self.bridge or self.base.ndim != 2:
            return None
        positions_first = all(axis_sizes(self.source[n], n, True).get("pos", (None,))[0] == 1 for n in names)
        if not positions_first or ("pos" in dims and sizes["pos"][0] != 1):
            return None
        return SharedPrefix.build(self.model, self.base, self.pair[0], self.pair[1], self.base_out, self.read)


def _shift(sel: tuple[Any, ...], offset: int) -> tuple[Any, ...]:
    """Move the position index of a selector by ``-offset`` (positions are axis 1 in prefix mode)."""
    if not offset or not isinstance(sel[1], int):
        return sel
    return (sel[0], sel[1] - offset) + tuple(sel[2:])


def _patcher(src: torch.Tensor, todo: list[tuple[int, tuple[Any, ...]]], n: int) -> Callable:
    def patch(act: torch.Tensor) -> torch.Tensor:
        act = act.clone()
        for copy, sel in todo:
            act[copy::n][sel] = src[sel]  # rows are example-major: row = example * n + copy
        return act
    return patch

