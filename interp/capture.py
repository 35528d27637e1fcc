"""Hook-based capture of activations (and optionally gradients) from any model.

``capture(model, inputs, sites)`` runs ``model`` over ``inputs`` in batches and returns what the
named sites computed as :class:`~interp.Activations`.

* On a ``TransformerBridge`` the sites are TransformerLens hook names, with globs
  (``"blocks.*.mlp.hook_post"``).
* On any other ``nn.Module`` the sites are module paths from ``named_modules()``, with globs; a
  site captures the module's output, or its input with the suffix ``":input"``.

Example
-------
>>> model, tok = interp.models.load("induction-2l")                           # doctest: +SKIP
>>> acts = capture(model, tokens, "blocks.0.attn.hook_z", positions="last")   # doctest: +SKIP
>>> acts.dims
('sample', 'head', 'unit')
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import engine
from .checks import check_length
from .engine import Batch
from .errors import ConfigError, DimensionError, InputTypeError
from .tensor import Activations

__all__ = ["capture", "Captured", "grad_name"]

GRAD = ":grad"


def grad_name(site: str) -> str:
    """The store array that holds the gradients at ``site`` (``capture(..., grads=metric, store=...)``).

    Parameters
    ----------
    site : str
        The site whose gradients are stored.
    """
    return site + GRAD

Positions = str | int | Sequence[int] | torch.Tensor
MetricFn = Callable[[Any, Batch], torch.Tensor]


# ----------------------------------------------------------------------- layouts
def _layout(site: str, value: torch.Tensor, bridge: bool) -> tuple[torch.Tensor, list[str]]:
    """Put the batch first and the query position second (if any); name the dims."""
    leaf = site.rsplit(".", 1)[-1]
    if bridge and leaf in {"hook_pattern", "hook_attn_scores"} and value.ndim == 4:
        return value.permute(0, 2, 1, 3), ["sample", "pos", "head", "key_pos"]
    if value.ndim == 2:
        return value, ["sample", "unit"]
    if value.ndim == 3:
        return value, ["sample", "pos", "unit"]
    if bridge and value.ndim == 4:
        return value, ["sample", "pos", "head", "unit"]
    if value.ndim == 4:  # conv feature maps (N, C, H, W)
        return value, ["sample", "unit", "height", "width"]
    return value, ["sample"] + [f"dim{i}" for i in range(1, value.ndim)]


def _reduce_positions(value: torch.Tensor, dims: list[str], positions: Positions, batch: Batch) -> tuple[torch.Tensor, list[str]]:
    if "pos" not in dims or positions == "all":
        return value, dims
    lengths = batch.lengths
    n, t = value.shape[0], value.shape[1]
    if lengths is None:
        lengths = torch.full((n,), t, dtype=torch.long)
    lengths = lengths.to(value.device)
    rest = [d for d in dims if d != "pos"]
    if positions == "last":
        return value[torch.arange(n, device=value.device), lengths - 1], rest
    if positions == "first":
        return value[:, 0], rest
    if positions == "mean":
        mask = (torch.arange(t, device=value.device)[None, :] < lengths[:, None]).to(value.dtype)
        shape = (n, t) + (1,) * (value.ndim - 2)
        return (value * mask.view(shape)).sum(1) / lengths.view((n,) + (1,) * (value.ndim - 2)).to(value.dtype), rest
    if isinstance(positions, (int, np.integer)):
        if not -t <= int(positions) < t:
            raise DimensionError(f"positions={int(positions)} is out of range for inputs of {t} positions; "
                                 f"use an index in {-t}..{t - 1} (or 'last' for each input's last real token)")
        return value[:, int(positions)], rest
    index = torch.as_tensor(positions, device=value.device).long()
    if index.ndim == 1 and index.shape[0] >= batch.start + n:
        index = index[batch.start : batch.start + n]
        bad = (index >= lengths) | (index < -t)
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise DimensionError(f"positions[{batch.start + i}] = {int(index[i])} is out of range for input "
                                 f"{batch.start + i}, which has {int(lengths[i])} real positions; give each input an "
                                 "index below its length")
        return value[torch.arange(n, device=value.device), index], rest
    if index.ndim == 1:
        raise DimensionError(f"positions has {index.shape[0]} indices but there are at least {batch.start + n} inputs; "
                             "give one index per input (or an int, 'last', 'first', 'mean', 'tokens', 'all')")
    raise ConfigError(f"positions must be 'all', 'tokens', 'last', 'first', 'mean', an int, or one index per sample; got {positions!r}")


def _token_rows(value: torch.Tensor, dims: list[str], batch: Batch) -> tuple[torch.Tensor, list[str], torch.Tensor]:
    """Flatten (sample, pos, ...) into one row per real token; returns rows, dims and (sample, pos) pairs."""
    n, t = value.shape[0], value.shape[1]
    mask = batch.mask.bool() if batch.mask is not None else torch.ones((n, t), dtype=torch.bool)
    where = mask.nonzero().to(value.device)
    rows = value[where[:, 0], where[:, 1]]
    return rows, ["sample"] + [d for d in dims[2:]], where.cpu()


def _spatial(value: torch.Tensor, dims: list[str], spatial: str) -> tuple[torch.Tensor, list[str]]:
    if spatial == "all" or "height" not in dims:
        return value, dims
    if spatial == "mean":
        return value.mean(dim=(2, 3)), dims[:2]
    if spatial == "max":
        return value.amax(dim=(2, 3)), dims[:2]
    raise ConfigError(f"spatial must be 'all', 'mean' or 'max', got {spatial!r}")


# ------------------------------------------------------------------------ result
class Captured(dict):
    """``{site: Activations}`` from :func:`capture`; ``.grads`` holds gradients when requested,
    ``.outputs`` the model outputs when ``keep_outputs=True``."""

    grads: dict[str, Activations]
    outputs: torch.Tensor | None

    def stack(self, dim: str = "unit") -> Activations:
        """Concatenate every site along ``dim`` (a ``site`` coordinate tells them apart).

        Parameters
        ----------
        dim : str
            The dim the sites are concatenated along (every site must have it).
        """
        from .tensor import concat

        return concat(list(self.values()), dim=dim)


def _unit_coords(site: str, dims: list[str], shape: Sequence[int]) -> dict[str, Any]:
    coords: dict[str, Any] = {}
    for d, n in zip(dims, shape):
        if d == "unit":
            coords["unit"] = {"site": [site] * n, "index": list(range(n)), "name": [f"{site}[{i}]" for i in range(n)]}
        elif d == "head":
            coords["head"] = {"head": list(range(n))}
        elif d == "pos":
            coords["pos"] = {"pos": list(range(n))}
    return coords


@functools.lru_cache(maxsize=1024)
def _unit_frames(site: str, dims: tuple[str, ...], shape: tuple[int, ...]) -> dict[str, pd.DataFrame]:
    """:func:`_unit_coords` as DataFrames, built once per (site, dims, shape): every capture of the site reuses
    them (:class:`Activations` copies a frame it is given, so the cached ones are never changed)."""
    return {d: pd.DataFrame(c) for d, c in _unit_coords(site, list(dims), shape).items()}


def _sample_coords(batch: Batch, n_rows: int, token_pairs: torch.Tensor | None, tokens: torch.Tensor | None,
                   sample_ids: Sequence[Any] | None) -> pd.DataFrame:
    if token_pairs is not None:
        idx = token_pairs[:, 0].numpy() + batch.start
        frame = pd.DataFrame({"sample_index": idx, "pos": token_pairs[:, 1].numpy()})
        if tokens is not None:
            frame["token"] = tokens[token_pairs[:, 0], token_pairs[:, 1]].numpy()
    else:
        idx = np.arange(batch.start, batch.start + n_rows)
        frame = pd.DataFrame({"sample_index": idx})
        if batch.lengths is not None:
            frame["length"] = batch.lengths.cpu().numpy()
    if sample_ids is not None:
        frame["id"] = [sample_ids[i] for i in idx]
    return frame


# ------------------------------------------------------------------------ capture
def capture(
    model: nn.Module,
    inputs: Any,
    sites: str | Sequence[str],
    *,
    batch_size: int = 16,
    positions: Positions = "all",
    spatial: str = "all",
    store: str | Path | Any | None = None,
    grads: MetricFn | None = None,
    attention_mask: torch.Tensor | None = None,
    preprocess: Callable | None = None,
    sample_ids: Sequence[Any] | None = None,
    dtype: torch.dtype | None = torch.float32,
    out_device: str | torch.device = "cpu",
    keep_outputs: bool = False,
    progress: bool = True,
    overwrite: bool = False,
    truncate: bool = False,
) -> Activations | Captured | Any:
    """Run ``model`` over ``inputs`` and capture the activations at ``sites``.

    Parameters
    ----------
    model:
        A ``TransformerBridge`` (sites are hook names) or any ``nn.Module`` (sites are module paths;
        ``"path:input"`` captures the module's input instead of its output).
    inputs:
        Texts (bridges only), a token tensor ``(batch, pos)``, images ``(batch, C, H, W)``, a NumPy
        array, a torch ``Dataset`` or ``DataLoader`` (items ``x``, ``(x, y)`` or ``{"input_ids": ...}``).
    sites:
        One name, a glob (``"blocks.*.mlp.hook_post"``) or a list of them.
    batch_size:
        Inputs per forward pass.
    positions:
        For sites with a position axis: ``"all"`` (keep ``pos``), ``"tokens"`` (one row per real
        token: the right unit of data for SAEs and unit statistics), ``"last"`` (last real token),
        ``"first"``, ``"mean"`` (over real tokens), an int, or one index per sample.
    spatial:
        For conv feature maps ``(N, C, H, W)``: ``"all"``, ``"mean"`` or ``"max"`` over space.
    store:
        A path or :class:`~interp.store.ActivationStore`: stream every batch to disk instead of
        keeping it in memory, and resume from the store's progress if it already holds part of
        the job. Returns the store.
    grads:
        ``metric(output, batch) -> scalar``: also capture d metric / d site (in ``result.grads``; with
        ``store``, as the array ``"<site>:grad"`` beside each site's activations).
    attention_mask:
        Padding mask for token-tensor inputs (texts get one automatically).
    preprocess:
        Applied to raw inputs (e.g. the image transform returned by :func:`interp.models.load`).
    sample_ids:
        One id per input, recorded as the ``id`` sample coordinate.
    dtype, out_device:
        Dtype and device of the returned data (``dtype=None`` keeps the model's).
    keep_outputs:
        Also keep the model outputs (``result.outputs``). Without it (and without ``grads``) the
        forward pass stops as soon as the last site has been computed, skipping later layers.
    truncate:
        Texts longer than the model's context are an error (:class:`DimensionError`); ``True`` cuts
        them to the context with a warning saying how many were cut.

    Returns
    -------
    :class:`Activations` when ``sites`` is a single name without globs and ``grads`` is None, else
    :class:`Captured`
    (``{site: Activations}``), or the :class:`~interp.store.ActivationStore` when streaming.
    """
    if not isinstance(model, nn.Module):
        raise InputTypeError(f"model must be a torch nn.Module or TransformerBridge, got {type(model).__name__}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    if isinstance(positions, str) and positions not in {"all", "tokens", "last", "first", "mean"}:
        raise ConfigError(f"unknown positions {positions!r}; use 'all', 'tokens', 'last', 'first', 'mean', an int or indices")
    if store is not None and positions == "all":
        positions = "tokens"
    bridge = engine.is_bridge(model)
    resolved = engine.resolve_sites(model, sites)
    single = isinstance(sites, str) and not any(c in engine.split_site(sites)[0] for c in "*?[")

    if store is not None:
        return _capture_to_store(model, inputs, resolved, store, bridge=bridge, batch_size=batch_size,
                                 positions=positions, spatial=spatial, grads=grads, attention_mask=attention_mask,
                                 preprocess=preprocess, sample_ids=sample_ids, dtype=dtype, out_device=out_device,
                                 keep_outputs=keep_outputs, progress=progress, overwrite=overwrite, truncate=truncate)
    batches, total = engine.batches(model, inputs, batch_size, attention_mask=attention_mask, preprocess=preprocess,
                                    truncate=truncate)
    check_length(sample_ids, total, "sample_ids", "one id per input")
    per_input = positions != "tokens"  # one row per input: buffers for every input can be made up front
    chunks = {s: _Rows(total if per_input else None) for s in resolved}
    grad_chunks = {s: _Rows(total if per_input else None) for s in resolved}
    outputs = _Rows(total)
    coord_chunks: list[pd.DataFrame] = []
    dims_of: dict[str, list[str]] = {}
    loop = _shaped_batches(model, batches, resolved, bridge=bridge, positions=positions, spatial=spatial, grads=grads,
                           keep_outputs=keep_outputs, dtype=dtype, out_device=out_device, sample_ids=sample_ids)
    with _bar(total, 0, progress) as bar:
        for batch, out, shaped, coords in loop:
            if out is not None:
                outputs.add(out)
            for site, (value, grad, dims) in shaped.items():
                dims_of[site] = dims
                chunks[site].add(value)
                if grad is not None:
                    grad_chunks[site].add(grad)
            coord_chunks.append(coords)
            bar.update(batch.size)

    if not coord_chunks:
        raise InputTypeError("inputs produced no batches (empty dataset?)")
    sample = coord_chunks[0] if len(coord_chunks) == 1 else pd.concat(coord_chunks, ignore_index=True)
    result = Captured()
    result.grads = {}
    seen: set[int] = set()  # one batch is kept without a copy: sites that share a tensor get their own
    result.outputs = _own(outputs.result(None), seen) if keep_outputs else None
    attrs = _attrs(model, positions)
    for site in resolved:
        data = _own(chunks[site].result(dims_of[site]), seen)
        sizes = tuple(0 if d == "sample" else n for d, n in zip(dims_of[site], data.shape))  # any number of samples
        coords: dict[str, Any] = dict(_unit_frames(site, tuple(dims_of[site]), sizes))
        coords["sample"] = sample
        result[site] = Activations(data, dims_of[site], coords, {**attrs, "site": site})
        if grads is not None:
            result.grads[site] = Activations(_own(grad_chunks[site].result(dims_of[site]), seen), dims_of[site], coords,
                                             {**attrs, "site": site, "grad_of": "metric"})
    if single and grads is None:
        return result[resolved[0]]
    return result


def _own(data: torch.Tensor, seen: set[int]) -> torch.Tensor:
    """``data``, contiguous and sharing its memory with no tensor returned before (else a copy)."""
    key = data.untyped_storage().data_ptr()
    if key in seen or not data.is_contiguous():
        data = data.contiguous() if key not in seen else data.clone(memory_format=torch.contiguous_format)
    seen.add(data.untyped_storage().data_ptr())
    return data


def _capture_to_store(model: nn.Module, inputs: Any, resolved: list[str], store: str | Path | Any, *, bridge: bool,
                      batch_size: int, positions: Positions, spatial: str, grads: MetricFn | None,
                      attention_mask: torch.Tensor | None, preprocess: Callable | None,
                      sample_ids: Sequence[Any] | None, dtype: torch.dtype | None, out_device: str | torch.device,
                      keep_outputs: bool, progress: bool, overwrite: bool, truncate: bool) -> Any:
    """The streaming path of :func:`capture`: every batch is appended to the store (resumed where it stopped)."""
    from .store import ActivationStore, fingerprint

    # the writer lock is taken before anything runs; a store made from other inputs/sites/... is refused
    fp = fingerprint(model, inputs, resolved, positions=positions, spatial=spatial, dtype=dtype,
                     attention_mask=attention_mask, sample_ids=sample_ids, preprocess=preprocess, grads=grads)
    store_obj = (store.check_fingerprint(fp) if isinstance(store, ActivationStore)
                 else ActivationStore.create(store, fingerprint=fp, overwrite=overwrite))
    skip = store_obj.inputs_done
    if store_obj.complete:
        return store_obj
    block = None
    if store_obj.world_size > 1:  # torchrun: each rank captures its block of inputs
        block = _rank_block(inputs, store_obj.rank, store_obj.world_size)
        skip += block.start
    try:
        batches, total = engine.batches(model, inputs, batch_size, attention_mask=attention_mask,
                                        preprocess=preprocess, skip=skip, stop=None if block is None else block.stop,
                                        truncate=truncate)
        check_length(sample_ids, total, "sample_ids", "one id per input")
        loop = _shaped_batches(model, batches, resolved, bridge=bridge, positions=positions, spatial=spatial,
                               grads=grads, keep_outputs=False, dtype=dtype, out_device=out_device,
                               sample_ids=sample_ids)
        with _bar(total, skip, progress) as bar:
            for batch, _, shaped, coords in loop:
                rows: dict[str, torch.Tensor] = {}
                dims_of: dict[str, list[str]] = {}
                for site, (value, grad, dims) in shaped.items():
                    rows[site], dims_of[site] = value, dims
                    if grad is not None:  # gradients are stored beside the activations, as "<site>:grad"
                        rows[grad_name(site)], dims_of[grad_name(site)] = grad, dims
                if not store_obj.arrays or batch.start == skip:  # the schema: set, or checked, once
                    store_obj.define(
                        {s: tuple(r.shape[1:]) for s, r in rows.items()},
                        dims={s: dims_of[s] for s in rows},
                        dtype=str(dtype or torch.float32).replace("torch.", ""),
                        unit_coords={s: _unit_coords(s.removesuffix(GRAD), dims_of[s], rows[s].shape).get("unit", {})
                                     for s in rows if "unit" in dims_of[s]},
                        attrs=_attrs(model, positions),
                    )
                store_obj.append(rows, coords, inputs_done=batch.start + batch.size - (block.start if block else 0))
                bar.update(batch.size)
    except BaseException:
        store_obj.close()  # wait for the last commit and release the writer lock at once
        raise
    store_obj.finish()
    return store_obj


def _bar(total: int, initial: int, progress: bool) -> Any:
    from interp._progress import tqdm

    return tqdm(total=total, initial=initial, desc="capture", unit="input", disable=not progress, leave=False)


def _shaped_batches(model: nn.Module, batches: Any, resolved: list[str], *, bridge: bool, positions: Positions,
                    spatial: str, grads: MetricFn | None, keep_outputs: bool, dtype: torch.dtype | None,
                    out_device: str | torch.device, sample_ids: Sequence[Any] | None) -> Any:
    """The one batch loop of both paths: run each batch (recording, or with gradients), shape every site.

    Yields ``(batch, output or None, {site: (rows, gradient rows or None, dims)}, sample coordinates)``.
    Without ``keep_outputs`` and ``grads`` the pass stops after the last site (the logits are never made).
    """
    for batch in batches:
        if grads is not None:
            got = engine.gradients(model, batch.inputs, resolved, lambda out, batch=batch: grads(out, batch),
                                   mask=batch.mask)
            out, values, site_grads = got.output, got.acts, got.grads
        else:
            rec = engine.record(model, batch.inputs, resolved, mask=batch.mask, stop=not keep_outputs)
            out, values, site_grads = rec.output, rec.acts, None
        shaped: dict[str, tuple[torch.Tensor, torch.Tensor | None, list[str]]] = {}
        coords = None
        for site in resolved:
            parts = [values[site]] if site_grads is None else [values[site], site_grads[site].detach()]
            done = []
            for value in parts:
                if value.ndim and value.shape[0] == 1 and batch.size > 1:
                    # a site without a batch axis (rotary cos/sin, position ids): the same for every input
                    value = value.expand(batch.size, *value.shape[1:])
                value, dims = _layout(site, value, bridge)
                value, dims = _spatial(value, dims, spatial)
                if positions == "tokens" and "pos" in dims:
                    value, dims, pairs = _token_rows(value, dims, batch)
                else:
                    pairs = None
                    value, dims = _reduce_positions(value, dims, positions, batch)
                done.append(value.to(device=out_device, dtype=dtype) if dtype is not None else value.to(out_device))
            shaped[site] = (done[0], done[1] if len(done) > 1 else None, dims)
            if coords is None:
                coords = _sample_coords(batch, done[0].shape[0], pairs,
                                        batch.inputs.cpu() if bridge and isinstance(batch.inputs, torch.Tensor) else None,
                                        sample_ids)
        yield batch, (out.detach().to(out_device) if keep_outputs else None), shaped, coords


class _Rows:
    """One site's rows, batch after batch, copied no more than once.

    One batch is kept as it is (no concatenation). With ``total`` (one row per input), the rows go into
    a buffer for all inputs made at the first batch; batches that differ in shape (inputs padded per
    batch) fall back to a list concatenated at the end, the position axes right-padded.
    """

    def __init__(self, total: int | None) -> None:
        self.total, self.parts, self.buffer, self.filled = total, [], None, 0

    def add(self, value: torch.Tensor) -> None:
        """Append one batch's rows."""
        n = int(value.shape[0])
        if self.buffer is not None:
            if tuple(value.shape[1:]) == tuple(self.buffer.shape[1:]) and self.filled + n <= len(self.buffer):
                self.buffer[self.filled:self.filled + n].copy_(value)
                self.filled += n
                return
            self.parts, self.buffer = [self.buffer[:self.filled]], None
        elif not self.parts and self.total is not None and n < self.total:
            self.buffer = torch.empty((self.total, *value.shape[1:]), dtype=value.dtype, device=value.device)
            self.buffer[:n].copy_(value)
            self.filled = n
            return
        self.parts.append(value)

    def result(self, dims: list[str] | None) -> torch.Tensor:
        """All rows as one tensor (``dims`` name the axes: position axes are padded when batches differ)."""
        if self.buffer is not None:
            return self.buffer if self.filled == len(self.buffer) else self.buffer[:self.filled]
        if len(self.parts) == 1:
            return self.parts[0]
        return _cat(self.parts, dims) if dims is not None else torch.cat(self.parts)


def _rank_block(inputs: Any, rank: int, world_size: int) -> range:
    """This rank's contiguous block of the inputs (see :func:`interp.store.rank_range`)."""
    from .store._ranks import rank_range

    try:
        n = len(inputs) if not isinstance(inputs, str) else 1
    except TypeError:
        raise InputTypeError(f"a capture shared out among {world_size} ranks needs inputs of known length (texts, a "
                             f"tensor, an array or a Dataset), not a {type(inputs).__name__}") from None
    return rank_range(n, rank, world_size)


def _cat(parts: list[torch.Tensor], dims: list[str]) -> torch.Tensor:
    """Concatenate batches, right-padding the position axes when batches differ in length."""
    if len({tuple(p.shape[1:]) for p in parts}) == 1:
        return torch.cat(parts)
    width = {ax: max(p.shape[ax] for p in parts) for ax, d in enumerate(dims) if d in {"pos", "key_pos"}}
    padded = []
    for p in parts:
        pad: list[int] = []
        for ax in reversed(range(1, p.ndim)):
            pad.extend([0, width.get(ax, p.shape[ax]) - p.shape[ax]])
        padded.append(torch.nn.functional.pad(p, pad))
    return torch.cat(padded)


def _attrs(model: nn.Module, positions: Positions) -> dict[str, Any]:
    name = getattr(model, "zoo_name", None) or getattr(getattr(model, "cfg", None), "model_name", None) or type(model).__name__
    return {"source": str(name), "kind": "model", "positions": positions if isinstance(positions, (str, int)) else "index"}
