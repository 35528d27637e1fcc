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

import fnmatch
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .errors import ConfigError, DimensionError, InputTypeError, SiteError, closest
from .tensor import Activations

__all__ = ["capture", "resolve_sites", "is_bridge", "Captured", "tokenize"]

Positions = str | int | Sequence[int] | torch.Tensor
MetricFn = Callable[[Any, "Batch"], torch.Tensor]


def is_bridge(model: Any) -> bool:
    """True for TransformerLens bridges (anything with a ``hook_dict`` of hook points)."""
    return hasattr(model, "hook_dict") and hasattr(model, "cfg")


# --------------------------------------------------------------------------- sites
def _site_names(model: nn.Module) -> list[str]:
    if is_bridge(model):
        return list(model.hook_dict.keys())
    return [name for name, _ in model.named_modules() if name]


def resolve_sites(model: nn.Module, sites: str | Sequence[str]) -> list[str]:
    """Expand globs and check that every site exists; unknown names raise :class:`SiteError`
    with the closest names suggested. Order follows the model's own order of sites.

    A ``*`` matches within one dotted component when it can (``"_blocks.*"`` gives the blocks, not all of
    their submodules); otherwise it matches across dots (``"*hook_resid_pre"``).
    """
    patterns = [sites] if isinstance(sites, str) else list(sites)
    if not patterns:
        raise SiteError("no sites given; pass hook names (bridges) or module paths (nn.Module)")
    names = _site_names(model)
    known = set(names)
    chosen: list[str] = []
    for pattern in patterns:
        base, suffix = (pattern.rsplit(":", 1) + [""])[:2] if ":" in pattern else (pattern, "")
        if suffix and suffix not in {"input", "output"}:
            raise SiteError(f"site {pattern!r}: the suffix after ':' must be 'input' or 'output'")
        if suffix and is_bridge(model):
            raise SiteError(f"site {pattern!r}: ':input'/':output' suffixes are for nn.Module paths; bridges use hook names")
        if any(c in base for c in "*?["):
            matched = [n for n in names if fnmatch.fnmatchcase(n, base)]
            # '*' prefers to stay within one path component: '_blocks.*' is the blocks, not every submodule;
            # a pattern that matches nothing that way ('*hook_resid_pre') falls back to crossing dots
            matched = [n for n in matched if n.count(".") == base.count(".")] or matched
        else:
            matched = [base] if base in known else []
        if not matched:
            hint = closest(base, names, n=5)
            kind = "hook names" if is_bridge(model) else "module paths"
            raise SiteError(
                f"the model has no site matching {pattern!r}"
                + (f"; closest {kind}: {hint}" if hint else f"; it has {len(names)} {kind}, e.g. {names[:5]}")
            )
        chosen.extend(f"{m}:{suffix}" if suffix == "input" else m for m in matched)
    seen: set[str] = set()
    return [s for s in chosen if not (s in seen or seen.add(s))]


# -------------------------------------------------------------------------- inputs
@dataclass
class Batch:
    """One batch of model inputs: the tensor, its padding mask (token inputs) and sample offset."""

    inputs: Any
    mask: torch.Tensor | None
    start: int

    @property
    def size(self) -> int:
        return int(self.inputs.shape[0]) if isinstance(self.inputs, torch.Tensor) else len(self.inputs)

    @property
    def lengths(self) -> torch.Tensor | None:
        return None if self.mask is None else self.mask.sum(1)


def tokenize(model: Any, texts: Sequence[str], prepend_bos: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenize ``texts`` the way the bridge does (``to_tokens``), right-padded; returns tokens and mask."""
    if not texts:
        raise InputTypeError("the list of texts is empty")
    rows = [model.to_tokens(t, prepend_bos=prepend_bos)[0].cpu() for t in texts]
    pad = getattr(getattr(model, "tokenizer", None), "pad_token_id", None)
    pad = 0 if pad is None else int(pad)
    width = max(len(r) for r in rows)
    tokens = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = r
        mask[i, : len(r)] = 1
    return tokens, mask


def _batches(model: Any, inputs: Any, batch_size: int, attention_mask: torch.Tensor | None,
             preprocess: Callable | None, skip: int) -> tuple[Iterable[Batch], int | None]:
    if isinstance(inputs, str):
        inputs = [inputs]
    if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(t, str) for t in inputs):
        if not is_bridge(model):
            raise InputTypeError("texts can only be captured from a TransformerBridge; tokenize them first for other models")
        tokens, mask = tokenize(model, list(inputs))
        inputs, attention_mask = tokens, mask
    if isinstance(inputs, (list, tuple)) and len(inputs) == 0:
        raise InputTypeError("inputs are empty")
    if isinstance(inputs, np.ndarray):
        inputs = torch.from_numpy(inputs)
    if preprocess is not None and not isinstance(inputs, (torch.utils.data.DataLoader, torch.utils.data.Dataset)):
        inputs = preprocess(inputs)
    if isinstance(inputs, torch.Tensor):
        if inputs.ndim == 0 or inputs.shape[0] == 0:
            raise InputTypeError(f"inputs must have a non-empty batch axis, got shape {tuple(inputs.shape)}")
        if is_bridge(model) and (inputs.is_floating_point() or inputs.ndim != 2):
            raise InputTypeError(f"a TransformerBridge takes token ids of shape (batch, pos) and integer dtype, got {tuple(inputs.shape)} {inputs.dtype}")
        if attention_mask is not None and attention_mask.shape != inputs.shape[:2]:
            raise DimensionError(f"attention_mask has shape {tuple(attention_mask.shape)}, expected {tuple(inputs.shape[:2])}")
        n = inputs.shape[0]

        def tensor_batches():
            for start in range(skip, n, batch_size):
                mask = None if attention_mask is None else attention_mask[start : start + batch_size]
                yield Batch(inputs[start : start + batch_size], mask, start)

        return tensor_batches(), n
    if isinstance(inputs, torch.utils.data.Dataset) and not isinstance(inputs, torch.utils.data.IterableDataset):
        inputs = torch.utils.data.DataLoader(inputs, batch_size=batch_size, shuffle=False)
    if isinstance(inputs, torch.utils.data.DataLoader):
        loader = inputs

        def loader_batches():
            start = 0
            for item in loader:
                x = item[0] if isinstance(item, (list, tuple)) else (item["input_ids"] if isinstance(item, Mapping) else item)
                mask = item.get("attention_mask") if isinstance(item, Mapping) else None
                if preprocess is not None:
                    x = preprocess(x)
                if not isinstance(x, torch.Tensor):
                    raise InputTypeError(f"the DataLoader must yield tensors (or (x, y) tuples / dicts with input_ids), got {type(x).__name__}")
                size = x.shape[0]
                if start + size > skip:
                    cut = max(0, skip - start)
                    yield Batch(x[cut:], None if mask is None else mask[cut:], start + cut)
                start += size

        try:
            total = len(loader.dataset)  # type: ignore[arg-type]
        except TypeError:
            total = None
        return loader_batches(), total
    raise InputTypeError(
        f"cannot capture from inputs of type {type(inputs).__name__}; pass texts (bridges), a token tensor "
        "(batch, pos), an image tensor (batch, C, H, W), a NumPy array, a torch Dataset or a DataLoader"
    )


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
        return value[:, int(positions)], rest
    index = torch.as_tensor(positions, device=value.device).long()
    if index.ndim == 1 and index.shape[0] >= batch.start + n:
        index = index[batch.start : batch.start + n]
        return value[torch.arange(n, device=value.device), index], rest
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


# ------------------------------------------------------------------------- hooks
class _StopForward(Exception):
    """Raised by the last hook to end a forward pass whose remaining layers nobody needs."""


class _Recorder:
    """Installs hooks that keep each site's value for the current batch."""

    def __init__(self, model: nn.Module, sites: list[str], keep_graph: bool, stop_early: bool = False) -> None:
        self.model, self.sites, self.keep_graph, self.stop_early = model, sites, keep_graph, stop_early
        self.values: dict[str, torch.Tensor] = {}
        self.handles: list[Any] = []

    def _store(self, site: str, value: Any) -> None:
        if isinstance(value, tuple):
            value = value[0]
        if not isinstance(value, torch.Tensor):
            raise InputTypeError(f"site {site!r} produced a {type(value).__name__}, not a tensor; pick another site")
        self.values[site] = value if self.keep_graph else value.detach()
        if self.stop_early and len(self.values) == len(self.sites):
            raise _StopForward

    def __enter__(self) -> _Recorder:
        if is_bridge(self.model):
            for site in self.sites:
                def hook(value, hook, site=site):
                    self._store(site, value)
                    return None
                self.model.hook_dict[site].add_hook(hook)
                self.handles.append(self.model.hook_dict[site])
        else:
            modules = dict(self.model.named_modules())
            for site in self.sites:
                name, _, which = site.partition(":")
                if which == "input":
                    handle = modules[name].register_forward_pre_hook(lambda m, args, site=site: self._store(site, args))
                else:
                    handle = modules[name].register_forward_hook(lambda m, args, out, site=site: self._store(site, out))
                self.handles.append(handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self.handles:
            if hasattr(handle, "remove_hooks"):
                handle.remove_hooks("fwd")
            else:
                handle.remove()
        self.handles.clear()


def _forward(model: nn.Module, batch: Batch, device: torch.device | None) -> Any:
    x = batch.inputs.to(device) if device is not None and isinstance(batch.inputs, torch.Tensor) else batch.inputs
    if is_bridge(model):
        kwargs = {}
        if batch.mask is not None and not bool(batch.mask.all()):
            kwargs["attention_mask"] = batch.mask.to(x.device)
        return model(x, **kwargs)
    return model(x)


def _model_device(model: nn.Module) -> torch.device | None:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return None


# ------------------------------------------------------------------------ result
class Captured(dict):
    """``{site: Activations}`` from :func:`capture`; ``.grads`` holds gradients when requested,
    ``.outputs`` the model outputs when ``keep_outputs=True``."""

    grads: dict[str, Activations]
    outputs: torch.Tensor | None

    def stack(self, dim: str = "unit") -> Activations:
        """Concatenate every site along ``dim`` (a ``site`` coordinate tells them apart)."""
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
        ``metric(output, batch) -> scalar``: also capture d metric / d site (in ``result.grads``).
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
    bridge = is_bridge(model)
    resolved = resolve_sites(model, sites)
    single = isinstance(sites, str) and not any(c in sites for c in "*?[")
    device = _model_device(model)

    store_obj = None
    skip = 0
    if store is not None:
        from .store import ActivationStore

        store_obj = store if isinstance(store, ActivationStore) else None
        if store_obj is None and Path(store, "manifest.json").exists() and not overwrite:
            store_obj = ActivationStore.open(store)
        if store_obj is not None:
            skip = store_obj.inputs_done
            if store_obj.complete:
                return store_obj

    batches, total = _batches(model, inputs, batch_size, attention_mask, preprocess, skip)
    chunks: dict[str, list[torch.Tensor]] = {s: [] for s in resolved}
    grad_chunks: dict[str, list[torch.Tensor]] = {s: [] for s in resolved}
    coord_chunks: list[pd.DataFrame] = []
    dims_of: dict[str, list[str]] = {}
    outputs: list[torch.Tensor] = []

    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=skip, desc="capture", unit="input", disable=not progress, leave=False)
    try:
        for batch in batches:
            keep_graph = grads is not None
            stop_early = not keep_graph and not keep_outputs
            with _Recorder(model, resolved, keep_graph, stop_early) as rec, torch.set_grad_enabled(keep_graph):
                try:
                    out = _forward(model, batch, device)
                except _StopForward:
                    out = None
                if grads is not None:
                    metric = grads(out, batch)
                    if not isinstance(metric, torch.Tensor) or metric.numel() != 1:
                        shape = tuple(metric.shape) if isinstance(metric, torch.Tensor) else type(metric).__name__
                        raise DimensionError(f"the grads metric must return a scalar tensor, got {shape}")
                    values = [rec.values[s] for s in resolved]
                    grad_values = torch.autograd.grad(metric, values, allow_unused=True)
            if keep_outputs:
                outputs.append((out[0] if isinstance(out, tuple) else out).detach().to(out_device))
            rows: dict[str, torch.Tensor] = {}
            coords = None
            for i, site in enumerate(resolved):
                parts = [rec.values[site].detach()]
                if grads is not None:
                    g = grad_values[i]
                    parts.append(torch.zeros_like(parts[0]) if g is None else g.detach())
                shaped = []
                for value in parts:
                    value, dims = _layout(site, value, bridge)
                    value, dims = _spatial(value, dims, spatial)
                    if positions == "tokens" and "pos" in dims:
                        value, dims, pairs = _token_rows(value, dims, batch)
                    else:
                        pairs = None
                        value, dims = _reduce_positions(value, dims, positions, batch)
                    shaped.append(value.to(device=out_device, dtype=dtype) if dtype is not None else value.to(out_device))
                dims_of[site] = dims
                if coords is None:
                    coords = _sample_coords(batch, shaped[0].shape[0], pairs,
                                            batch.inputs.cpu() if bridge and isinstance(batch.inputs, torch.Tensor) else None,
                                            sample_ids)
                if store_obj is not None or store is not None:
                    rows[site] = shaped[0]
                else:
                    chunks[site].append(shaped[0])
                    if grads is not None:
                        grad_chunks[site].append(shaped[1])
            if store is not None:
                if store_obj is None:
                    from .store import ActivationStore

                    store_obj = ActivationStore.create(
                        store, {s: tuple(r.shape[1:]) for s, r in rows.items()},
                        dims={s: dims_of[s] for s in rows},
                        dtype=str(dtype or torch.float32).replace("torch.", ""),
                        unit_coords={s: _unit_coords(s, dims_of[s], rows[s].shape).get("unit", {}) for s in rows
                                     if "unit" in dims_of[s]},
                        attrs=_attrs(model, positions),
                        overwrite=overwrite,
                    )
                store_obj.append(rows, coords, inputs_done=batch.start + batch.size)
            else:
                coord_chunks.append(coords)
            bar.update(batch.size)
    finally:
        bar.close()

    if store_obj is not None:
        store_obj.finish()
        return store_obj

    if not coord_chunks:
        raise InputTypeError("inputs produced no batches (empty dataset?)")
    sample = pd.concat(coord_chunks, ignore_index=True)
    result = Captured()
    result.grads = {}
    result.outputs = torch.cat(outputs) if outputs else None
    attrs = _attrs(model, positions)
    for site in resolved:
        data = _cat(chunks[site], dims_of[site])
        coords = _unit_coords(site, dims_of[site], data.shape)
        coords["sample"] = sample
        result[site] = Activations(data, dims_of[site], coords, {**attrs, "site": site})
        if grads is not None:
            result.grads[site] = Activations(_cat(grad_chunks[site], dims_of[site]), dims_of[site], coords,
                                             {**attrs, "site": site, "grad_of": "metric"})
    if single and grads is None:
        return result[resolved[0]]
    return result


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
