"""Activation patching sweeps (noising and denoising), batched.

Denoising (the default, as in ``transformer_lens.patching``): run the *corrupted* input and
patch in the *clean* activation at one cell (layer x position, layer x head, layer x neuron...),
then read the metric. Noising does the reverse. Many patches share one forward pass: the batch
is repeated ``k`` times and each copy gets a different cell patched, so a sweep costs
``ceil(cells / k)`` forward passes instead of ``cells``.

Reference: Meng et al. 2022 (ROME, causal tracing); Heimersheim & Nanda 2024, "How to use and
interpret activation patching"; the TransformerLens ``patching`` module.

>>> res = activation_patching(model, clean, corrupted, metric, site="resid_pre")   # doctest: +SKIP
>>> res.values.shape   # [n_layers, n_pos]                                       # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from interp.errors import ConfigError, DimensionError

from . import _hooks
from .metrics import evaluate
from .results import PatchingResult

__all__ = ["activation_patching", "patch_blocks", "patch_heads", "patch_neurons", "DEFAULT_BY", "run_and_record"]

DEFAULT_BY = {
    "resid_pre": ("layer", "pos"), "resid_mid": ("layer", "pos"), "resid_post": ("layer", "pos"),
    "attn_out": ("layer", "pos"), "mlp_out": ("layer", "pos"),
    "z": ("layer", "head"), "q": ("layer", "head"), "k": ("layer", "head"), "v": ("layer", "head"),
    "pattern": ("layer", "head"), "mlp_pre": ("layer", "neuron"), "mlp_post": ("layer", "neuron"),
}
_AXIS_OF_DIM = {"pos": "pos", "head": "head", "neuron": "unit", "unit": "unit"}


def run_and_record(model: nn.Module, inputs: Any, sites: Sequence[str]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One no-grad forward; returns the output and the (detached) activations at ``sites``."""
    store: dict[str, torch.Tensor] = {}

    def keeper(site: str) -> Callable[[torch.Tensor], None]:
        def keep(act: torch.Tensor) -> None:
            store[site] = act.detach().clone()
        return keep

    with torch.no_grad(), _hooks.hooks(model, [(s, keeper(s)) for s in sites]):
        out = _hooks.run(model, inputs)
    return out, store


def _sites_and_dims(model: nn.Module, site: str | Sequence[str], by: Sequence[str] | None,
                    layers: Sequence[int] | None) -> tuple[list[str], str, tuple[str, ...], list[Any]]:
    """Resolve a site kind (one hook per layer) or explicit site names."""
    if isinstance(site, str) and _hooks.is_bridge(model) and (site in _hooks.SITE_KINDS or site in _hooks.KIND_ALIASES):
        kind = _hooks.canonical_kind(site)
        chosen = list(range(_hooks.n_layers(model))) if layers is None else list(layers)
        names = [_hooks.kind_hook(model, kind, layer) for layer in chosen]
        dims = tuple(by) if by is not None else DEFAULT_BY[kind]
        if dims[0] != "layer":
            dims = ("layer",) + dims
        return names, kind, dims, chosen
    names = _hooks.resolve_sites(model, site)
    dims = ("site",) + tuple(d for d in (by or ("pos",)) if d not in {"layer", "site"})
    return names, ",".join(names) if len(names) < 4 else f"{names[0]}..", dims, names


def _axis_sizes(act: torch.Tensor, site: str) -> dict[str, tuple[int, int]]:
    """dim name -> (axis, size) for the dims a site's activation has."""
    lay = _hooks.layout(site)
    out = {}
    for dim, axis_name in _AXIS_OF_DIM.items():
        if axis_name in lay:
            axis = lay[axis_name] % act.ndim
            needed = {"unit": 2, "pos": 3, "head": 4}[axis_name]
            if act.ndim >= needed:
                out[dim] = (axis, act.shape[axis])
    return out


def _shift(sel: tuple[Any, ...], offset: int) -> tuple[Any, ...]:
    """Move the position index of a selector by ``-offset`` (positions are axis 1 in prefix mode)."""
    if not offset or not isinstance(sel[1], int):
        return sel
    return (sel[0], sel[1] - offset) + tuple(sel[2:])


def _agrees(shortcut: torch.Tensor, full: torch.Tensor) -> bool:
    """Whether a shortcut's output equals the full forward pass's (to 1e-4 of the output's scale)."""
    full = full.detach()
    scale = max(float(full.abs().max()), 1.0)
    return shortcut.shape == full.shape and float((shortcut - full).abs().max()) <= 1e-4 * scale


class _SharedPrefix:
    """KV cache of the token prefix shared by clean and corrupted inputs (causal bridges only)."""

    def __init__(self, model: nn.Module, cache: Any, length: int, prefix_logits: torch.Tensor) -> None:
        self.model, self.cache, self.length, self.prefix_logits = model, cache, length, prefix_logits

    @classmethod
    def build(cls, model: nn.Module, base: torch.Tensor, clean: torch.Tensor, corrupted: torch.Tensor,
              names: Sequence[str], dims: Sequence[str], sizes: dict, base_out: torch.Tensor) -> _SharedPrefix | None:
        if not _hooks.is_bridge(model) or base.ndim != 2 or not hasattr(model, "adapter"):
            return None
        if any(_hooks.layout(name).get("pos") != 1 for name in names) or ("pos" in dims and sizes["pos"][0] != 1):
            return None
        differs = (clean != corrupted).any(0).nonzero()
        length = int(differs[0]) if len(differs) else 0
        if length < 2 or getattr(model.cfg, "is_encoder_decoder", False):
            return None
        try:
            with torch.no_grad():
                _, cache = model(base[:, :length], return_type="logits_and_cache")
                probe = cls(model, cache, length, base_out[:, :length])
                check = probe.run(base, 1)
        except Exception:  # noqa: BLE001 - any failure means: no KV-cache path for this model
            return None
        return probe if _agrees(check, base_out) else None

    def run(self, inputs: torch.Tensor, n: int) -> torch.Tensor:
        """Forward the suffix of ``inputs`` (example-major, ``n`` copies per example) on the cached prefix."""
        import copy as _copy

        cache = _copy.deepcopy(self.cache)
        if n > 1:
            cache.batch_repeat_interleave(n)
        suffix = self.model(inputs[:, self.length:], past_key_values=cache)
        return torch.cat([self.prefix_logits.repeat_interleave(n, 0).to(suffix.dtype), suffix], dim=1)


class _SkipBlocks:
    """Replay the recorded outputs of the blocks below the lowest patched one instead of computing them.

    A patch at block ``L`` cannot change blocks ``0..L-1`` (they run before it), so their output
    is the base run's, repeated once per patch. Checked against a full forward pass first.
    """

    def __init__(self, blocks: nn.ModuleList, outputs: list[Any], batch: int) -> None:
        self.blocks, self.outputs, self.batch = blocks, outputs, batch
        self.owner = {id(m): i for i, block in enumerate(blocks) for m in block.modules()}

    @classmethod
    def build(cls, model: nn.Module, runner: Callable[[torch.Tensor, int], torch.Tensor], base: torch.Tensor,
              base_out: torch.Tensor) -> _SkipBlocks | None:
        blocks = getattr(model, "blocks", None)
        if not isinstance(blocks, nn.ModuleList) or len(blocks) < 2:
            return None
        outputs: list[Any] = [None] * len(blocks)
        order: list[int] = []

        def keeper(i: int) -> Callable:
            def keep(module: nn.Module, args: Any, out: Any) -> None:
                order.append(i)
                outputs[i] = _map_tensors(out, lambda t: t.detach())
            return keep

        handles = [block.register_forward_hook(keeper(i)) for i, block in enumerate(blocks)]
        try:
            with torch.no_grad():
                runner(base, 1)
        finally:
            for handle in handles:
                handle.remove()
        if order != list(range(len(blocks))):  # a block run twice or out of order could see the patch
            return None
        skipper = cls(blocks, outputs, int(base.shape[0]))
        try:
            with torch.no_grad(), skipper.skip(len(blocks) - 1, 1):
                check = runner(base, 1)
        except Exception:  # noqa: BLE001 - any failure means: no block replay for this model
            return None
        return skipper if _agrees(check, base_out) else None

    def first_block(self, model: nn.Module, site: str) -> int:
        """Index of the block whose forward fires ``site`` (0 when it fires outside every block)."""
        point = model.hook_dict.get(site) if _hooks.is_bridge(model) else dict(model.named_modules()).get(site)
        return self.owner.get(id(point), 0)

    @contextlib.contextmanager
    def skip(self, upto: int, n: int) -> Iterator[None]:
        """Within the block, blocks ``0..upto-1`` return their recorded output, repeated ``n`` times."""
        for i in range(upto):
            replay = _map_tensors(self.outputs[i], lambda t: t.repeat_interleave(n, 0) if t.ndim and t.shape[0] ==
                                  self.batch else t)
            # object.__setattr__: bridge components forward attribute writes to the wrapped module
            object.__setattr__(self.blocks[i], "forward", lambda *args, replay=replay, **kwargs: replay)
        try:
            yield
        finally:
            for i in range(upto):
                self.blocks[i].__dict__.pop("forward", None)


def _map_tensors(obj: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_map_tensors(o, fn) for o in obj)
    return obj


def activation_patching(
    model: nn.Module,
    clean: Any,
    corrupted: Any,
    metric: Callable[[torch.Tensor], torch.Tensor],
    site: str | Sequence[str] = "resid_pre",
    *,
    by: Sequence[str] | None = None,
    layers: Sequence[int] | None = None,
    index: dict[str, Sequence[int]] | None = None,
    direction: str = "denoise",
    batch_size: int | None = None,
    max_rows: int = 512,
    skip_identical: bool = True,
    reuse_prefix: bool = True,
    replay_blocks: bool = True,
    progress: bool = False,
) -> PatchingResult:
    """Patch activations cell by cell and record the metric.

    Args:
        model: a ``TransformerBridge`` (site kinds or hook names) or any ``nn.Module`` (module paths).
        clean, corrupted: inputs of equal shape (token tensors ``[batch, pos]`` or texts of equal
            token length).
        metric: ``metric(logits) -> scalar`` (see :mod:`patching.metrics`).
        site: a site kind (``"resid_pre"``, ``"resid_mid"``, ``"resid_post"``, ``"attn_out"``,
            ``"mlp_out"``, ``"z"``/``"heads"``, ``"q"``, ``"k"``, ``"v"``, ``"pattern"``,
            ``"mlp_post"``/``"neurons"``), or hook names / module paths.
        by: the swept axes after ``layer``: ``("pos",)``, ``("head",)``, ``("pos", "head")``,
            ``("neuron",)``, ``("pos", "neuron")``; ``("layer",)`` patches whole layers.
        layers: layers to sweep (default all).
        index: restrict an axis to some indices, e.g. ``{"neuron": [3, 17], "pos": [-1]}``.
        direction: ``"denoise"`` (clean into corrupted) or ``"noise"`` (corrupted into clean).
        batch_size: patches per forward pass (default: as many as fit in ``max_rows`` rows).
        max_rows: cap on ``patches x batch`` rows per forward pass.
        skip_identical: skip patches whose source equals the activation already there (they cannot
            change anything; their value is the unpatched metric).
        reuse_prefix: when clean and corrupted tokens agree on a prefix and the bridge wraps a causal
            Hugging Face model with a KV cache, compute that prefix once and run only the rest of the
            sequence for each patch (checked against a full forward pass first; exact up to float
            rounding). Patches inside the prefix are no-ops and are skipped.
        replay_blocks: patches are grouped by the first block they touch; the blocks before it are
            not computed, their recorded output from the base run is replayed (checked against a
            full forward pass first).

    Returns:
        :class:`PatchingResult` with ``values[layer, ...]`` = metric after the patch.
    """
    if direction not in {"denoise", "noise"}:
        raise ConfigError(f"direction must be 'denoise' or 'noise', got {direction!r}")
    clean = _hooks.to_tokens(model, clean) if _hooks.is_bridge(model) else clean
    corrupted = _hooks.to_tokens(model, corrupted) if _hooks.is_bridge(model) else corrupted
    _hooks.check_pair(clean, corrupted)
    names, label, dims, first_coords = _sites_and_dims(model, site, by, layers)

    # one forward pass records both runs
    both_out, both_acts = run_and_record(model, torch.cat([clean, corrupted]), names)
    rows = int(clean.shape[0])
    clean_out, corrupted_out = both_out[:rows], both_out[rows:]
    clean_acts = {name: act[:rows] for name, act in both_acts.items()}
    corrupted_acts = {name: act[rows:] for name, act in both_acts.items()}
    clean_value = float(evaluate(metric, clean_out))
    corrupted_value = float(evaluate(metric, corrupted_out))
    base, source = (corrupted, clean_acts) if direction == "denoise" else (clean, corrupted_acts)
    base_acts = corrupted_acts if direction == "denoise" else clean_acts
    base_value = corrupted_value if direction == "denoise" else clean_value

    sizes = _axis_sizes(source[names[0]], names[0])
    coords: dict[str, list[Any]] = {dims[0]: list(first_coords)}
    for d in dims[1:]:
        if d not in sizes:
            raise DimensionError(f"site {names[0]!r} (shape {tuple(source[names[0]].shape)}) has no {d!r} axis; "
                                 f"valid axes: {sorted(sizes)}")
        n = sizes[d][1]
        chosen = (index or {}).get(d)
        coords[d] = list(range(n)) if chosen is None else [int(i) % n for i in chosen]
    for d in index or {}:
        if d not in dims:
            raise ConfigError(f"index names axis {d!r}, which is not swept (dims {dims})")

    def selector(cell: tuple[int, ...]) -> tuple[Any, ...]:
        act = source[names[cell[0]]]
        sel: list[Any] = [slice(None)] * act.ndim
        for d, i in zip(dims[1:], cell[1:]):
            sel[sizes[d][0]] = coords[d][i]
        return tuple(sel)

    all_cells = list(itertools.product(*[range(len(coords[d])) for d in dims]))
    values = torch.full([len(coords[d]) for d in dims], base_value, dtype=torch.float64)
    # a patch that writes the value already there is a no-op: skip it (e.g. positions before the first
    # token where clean and corrupted differ, in a causal model)
    cells = [c for c in all_cells if not (skip_identical and torch.equal(source[names[c[0]]][selector(c)],
                                                                          base_acts[names[c[0]]][selector(c)]))]
    batch = int(base.shape[0])
    k = batch_size or max(1, min(max(len(cells), 1), max_rows // max(batch, 1)))

    prefix = _SharedPrefix.build(model, base, clean, corrupted, names, dims, sizes, base_out=clean_out
                                 if direction == "noise" else corrupted_out) if reuse_prefix else None
    offset = prefix.length if prefix is not None else 0
    if offset and "pos" in dims:  # patches inside the shared prefix are no-ops
        pos_at = dims.index("pos")
        cells = [c for c in cells if coords["pos"][c[pos_at]] >= offset]

    def runner(inputs: torch.Tensor, n: int) -> torch.Tensor:
        return prefix.run(inputs, n) if prefix is not None else _hooks.run(model, inputs)

    base_out = clean_out if direction == "noise" else corrupted_out
    skipper = _SkipBlocks.build(model, runner, base, base_out) if replay_blocks and cells else None
    first_block = {i: skipper.first_block(model, name) if skipper else 0 for i, name in enumerate(names)}
    groups: dict[int, list[tuple[int, ...]]] = defaultdict(list)
    for cell in cells:
        groups[first_block[cell[0]]].append(cell)
    chunks = [(upto, group[start:start + k]) for upto, group in sorted(groups.items())
              for start in range(0, len(group), k)]
    for upto, chunk in tqdm(chunks, disable=not progress, desc=f"patching {label}"):
        n = len(chunk)
        per_site: dict[int, list[tuple[int, tuple[Any, ...]]]] = defaultdict(list)
        for copy, cell in enumerate(chunk):
            per_site[cell[0]].append((copy, _shift(selector(cell), offset)))

        def patcher(site_index: int, per_site: dict = per_site, n: int = n) -> Callable[[torch.Tensor], torch.Tensor]:
            src = source[names[site_index]][:, offset:]
            todo = per_site[site_index]

            def hook(act: torch.Tensor) -> torch.Tensor:
                act = act.clone()
                for copy, sel in todo:
                    act[copy::n][sel] = src[sel]  # rows are example-major: row = example * n + copy
                return act
            return hook

        inputs = base.repeat_interleave(n, 0)
        replay = skipper.skip(upto, n) if skipper is not None else contextlib.nullcontext()
        with torch.no_grad(), replay, _hooks.hooks(model, [(names[i], patcher(i)) for i in per_site]):
            out = runner(inputs, n)
        for copy, cell in enumerate(chunk):
            values[cell] = float(evaluate(metric, out[copy::n]))

    return PatchingResult(values=values, dims=dims, coords=coords, site=label, method="activation",
                          metric=getattr(metric, "name", getattr(metric, "__name__", "metric")),
                          clean_value=clean_value, corrupted_value=corrupted_value, direction=direction,
                          n_forward=2 + len(cells), n_backward=0,
                          extra={"forward_calls": 1 + len(chunks) + 2 * (skipper is not None), "patches_per_call": k,
                                 "blocks_replayed": sum(upto * len(chunk) for upto, chunk in chunks),
                                 "cells": len(all_cells), "skipped": len(all_cells) - len(cells),
                                 "shared_prefix": offset})


def patch_blocks(model: nn.Module, clean: Any, corrupted: Any, metric: Callable, **kwargs: Any) -> dict[str, PatchingResult]:
    """Layer x position sweeps of ``resid_pre``, ``attn_out`` and ``mlp_out`` (like TL's ``get_act_patch_block_every``)."""
    kinds = ["resid_pre", "attn_out"] + ([] if getattr(model.cfg, "attn_only", False) else ["mlp_out"])
    return {kind: activation_patching(model, clean, corrupted, metric, kind, **kwargs) for kind in kinds}


def patch_heads(model: nn.Module, clean: Any, corrupted: Any, metric: Callable, *, by_pos: bool = False,
                **kwargs: Any) -> PatchingResult:
    """Per-head sweep of ``hook_z`` (layer x head, or layer x pos x head)."""
    return activation_patching(model, clean, corrupted, metric, "z", by=("pos", "head") if by_pos else ("head",), **kwargs)


def patch_neurons(model: nn.Module, clean: Any, corrupted: Any, metric: Callable, *, neurons: Sequence[int] | None = None,
                  positions: Sequence[int] | None = None, **kwargs: Any) -> PatchingResult:
    """Per-neuron sweep of ``mlp.hook_post`` (all positions at once, or per position)."""
    by = ("pos", "neuron") if positions is not None else ("neuron",)
    index = {k: v for k, v in (("neuron", neurons), ("pos", positions)) if v is not None}
    return activation_patching(model, clean, corrupted, metric, "mlp_post", by=by, index=index, **kwargs)
