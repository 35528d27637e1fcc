"""Plan a capture before running it: bytes per token, store size and peak memory.

``plan_capture(model, sites, texts=... or n_tokens=..., batch_size=...)`` answers the questions one asks
before a long capture into an :class:`~interp.store.ActivationStore` (what ``interp capture --dry-run``
prints): how many bytes each token costs at the chosen sites and dtype, how large the store will be,
and how much memory the job needs at its peak. It does not run the corpus. It runs six probe
sequences of the planned length through the same :func:`interp.capture` into temporary stores (two
batches of one sequence, then two batches of two) and measures

* the row shape of every site (so ``bytes per token`` is exact, ``key_pos`` axes included),
* the bytes of the shard files and of the coordinate tables per token and per shard,
* the peak of live tensor memory per device during the second batch (every tensor that torch
  allocates, tracked with a ``TorchDispatchMode``; the rows of the previous batch are still alive then;
  a batch of ``B`` sequences costs the one-sequence peak plus ``B - 1`` times the difference between
  the two probes: a forward pass is linear in the batch).

The peak adds the weights and the token ids of the whole input (capture tokenizes all texts at once,
padded to the longest). It counts tensors only: the Python runtime and libraries (about 0.5-1 GB for
torch and transformers on CPU) and the allocator's own overhead come on top (on CPU the resident set
grew by 5.84 GB where the plan said 5.17 GB for one batch, 13% more: ``smollm2-135m``, all 30 MLP sites,
32 x 256 tokens per batch).

>>> model, _ = interp.models.load("smollm2-135m")                              # doctest: +SKIP
>>> plan = plan_capture(model, "blocks.*.mlp.hook_post", n_tokens=10_000_000, seq_len=128, batch_size=32)  # doctest: +SKIP
>>> print(plan.summary())                                                      # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import tempfile
import weakref
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .errors import ConfigError, InputTypeError
from .results import Result, themed

__all__ = ["plan_capture", "CapturePlan", "format_bytes"]


def format_bytes(n: float) -> str:
    """``1536 -> '1.54 KB'`` (powers of 1000, as disks are sold).

    Parameters
    ----------
    n : float
        A number of bytes.
    """
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    return f"{n:.2f} TB"  # pragma: no cover


class _LiveTensorBytes:
    """Peak bytes of live tensor storages per device type while active (a ``TorchDispatchMode``)."""

    def __init__(self) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_leaves

        tracker = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                inputs = {id(t.untyped_storage()) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
                for leaf in tree_leaves(out):  # views and in-place results share an input's storage: not new
                    if isinstance(leaf, torch.Tensor) and id(leaf.untyped_storage()) not in inputs:
                        tracker._track(leaf)
                return out

        self.mode = Mode()
        self.live: dict[int, tuple[str, int]] = {}
        self.current: dict[str, int] = defaultdict(int)
        self.peak: dict[str, int] = defaultdict(int)

    def _track(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key = id(storage)
        if key in self.live:
            return
        device, nbytes = tensor.device.type, int(storage.nbytes())
        self.live[key] = (device, nbytes)
        self.current[device] += nbytes
        self.peak[device] = max(self.peak[device], self.current[device])
        weakref.finalize(storage, self._free, key)

    def _free(self, key: int) -> None:
        device, nbytes = self.live.pop(key, ("cpu", 0))
        self.current[device] -= nbytes

    def __enter__(self) -> _LiveTensorBytes:
        self.mode.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.mode.__exit__(*exc)


@dataclass
class CapturePlan(Result):
    """What a capture into a store will cost (see :func:`plan_capture`). Sizes are in bytes.

    ``to_frame()`` has one row per site (dims, row shape, bytes per token, store bytes of its shards);
    ``summary()`` the totals: bytes per token, store size, shards and the peak memory per device.

    Parameters
    ----------
    model : str
        The model's name.
    dtype : str
        The stored dtype.
    n_tokens, n_inputs, seq_len : int
        Tokens (rows) to store, inputs, and the token length of each input.
    batch_size : int
        Inputs per batch (one shard per batch).
    row_shapes : dict[str, tuple of int]
        ``{site: shape of one stored row}``.
    dims : dict[str, list of str]
        ``{site: dim names of a row}``.
    itemsize : int
        Bytes per stored value.
    coords_bytes_per_token : float
        Coordinate bytes stored per token.
    shard_overhead_bytes : float
        Fixed bytes per shard (``.npy`` headers, fixed coordinates).
    manifest_bytes : float
        Size of the manifest.
    weights_bytes, batch_bytes : dict[str, int]
        ``{device type: bytes}`` of the model's weights and of the tensors live while one batch runs.
    inputs_bytes : int
        Bytes of the tokenized inputs (on the CPU).
    notes : list of str
        Caveats of the estimate.
    """

    model: str
    dtype: str
    n_tokens: int
    n_inputs: int
    seq_len: int
    batch_size: int
    row_shapes: dict[str, tuple[int, ...]]
    dims: dict[str, list[str]]
    itemsize: int
    coords_bytes_per_token: float
    shard_overhead_bytes: float
    manifest_bytes: float
    weights_bytes: dict[str, int]
    batch_bytes: dict[str, int]
    inputs_bytes: int
    notes: list[str] = field(default_factory=list)

    @property
    def sites(self) -> list[str]:
        """The resolved sites, in the model's order."""
        return list(self.row_shapes)

    @property
    def site_bytes_per_token(self) -> dict[str, int]:
        """Bytes of one stored row (one token) of each site."""
        return {s: int(np.prod(shape, dtype=np.int64)) * self.itemsize for s, shape in self.row_shapes.items()}

    @property
    def bytes_per_token(self) -> int:
        """Activation bytes stored per token, summed over the sites (coordinates not included)."""
        return sum(self.site_bytes_per_token.values())

    @property
    def n_shards(self) -> int:
        """One shard per batch of inputs."""
        return max(1, math.ceil(self.n_inputs / self.batch_size))

    @property
    def store_bytes(self) -> int:
        """Estimated size of the finished store on disk."""
        per_token = self.bytes_per_token + self.coords_bytes_per_token
        return int(self.n_tokens * per_token + self.n_shards * self.shard_overhead_bytes + self.manifest_bytes)

    @property
    def peak_bytes(self) -> dict[str, int]:
        """Peak tensor memory per device type: weights + one batch (+ the tokenized inputs, on cpu)."""
        devices = set(self.weights_bytes) | set(self.batch_bytes) | {"cpu"}
        peak = {d: self.weights_bytes.get(d, 0) + self.batch_bytes.get(d, 0) for d in devices}
        peak["cpu"] += self.inputs_bytes
        return {d: v for d, v in sorted(peak.items()) if v > 0 or d == "cpu"}

    def to_frame(self) -> pd.DataFrame:
        """One row per site: ``site``, ``dims``, ``row_shape``, ``bytes_per_token``, ``store_bytes``."""
        per = self.site_bytes_per_token
        return pd.DataFrame({
            "site": self.sites,
            "dims": [",".join(self.dims[s]) for s in self.sites],
            "row_shape": [str(tuple(self.row_shapes[s])) for s in self.sites],
            "bytes_per_token": [per[s] for s in self.sites],
            "store_bytes": [per[s] * self.n_tokens for s in self.sites],
        })

    def plot(self, **kwargs: Any) -> Any:
        """Bytes per token of each site (bars)."""
        import plotly.graph_objects as go

        frame = self.to_frame()
        fig = go.Figure(go.Bar(x=frame["site"], y=frame["bytes_per_token"]))
        return themed(fig, title=kwargs.get("title", f"{self.model}: bytes per token per site ({self.dtype})"),
                      yaxis_title="bytes per token")

    def summary(self) -> str:
        """The plan in a few lines (what ``interp capture --dry-run`` prints)."""
        peak = self.peak_bytes
        lines = [
            f"capture plan: {self.model}, {len(self.sites)} site(s), {self.dtype}, batch size {self.batch_size}, "
            f"sequences of {self.seq_len} tokens",
            f"bytes per token: {self.bytes_per_token:,} (activations) + {self.coords_bytes_per_token:.1f} (coordinates)",
            f"tokens: {self.n_tokens:,} in {self.n_inputs:,} inputs -> store size {format_bytes(self.store_bytes)} "
            f"in {self.n_shards:,} shards",
            "peak memory: " + "; ".join(
                f"{d} {format_bytes(v)} (weights {format_bytes(self.weights_bytes.get(d, 0))}, one batch "
                f"{format_bytes(self.batch_bytes.get(d, 0))}"
                + (f", token ids {format_bytes(self.inputs_bytes)}" if d == "cpu" and self.inputs_bytes else "") + ")"
                for d, v in peak.items()),
        ]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def _store_files(path: Path) -> tuple[dict[str, Any], dict[str, int], int, int]:
    manifest = json.loads((path / "manifest.json").read_text())
    npy = {}
    for p in (path / "shards").iterdir():
        if p.name != "_coords":
            npy[p.name] = sum(f.stat().st_size for f in p.glob("*.npy"))
    coords = sum(f.stat().st_size for f in (path / "shards" / "_coords").glob("*.parquet"))
    return manifest, npy, coords, (path / "manifest.json").stat().st_size


def _weights(model: torch.nn.Module) -> dict[str, int]:
    seen: set[int] = set()
    out: dict[str, int] = defaultdict(int)
    for t in list(model.parameters()) + list(model.buffers()):
        storage = t.untyped_storage()
        if storage.data_ptr() in seen:
            continue
        seen.add(storage.data_ptr())
        out[t.device.type] += int(storage.nbytes())
    return dict(out)


def plan_capture(model: Any, sites: str | Sequence[str], *, texts: Sequence[str] | None = None,
                 n_tokens: int | None = None, seq_len: int | None = None, batch_size: int = 16,
                 dtype: torch.dtype = torch.float32, model_name: str | None = None, seed: int = 0,
                 truncate: bool = False) -> CapturePlan:
    """Plan a capture of ``model`` at ``sites`` into a store, without running the corpus.

    Parameters
    ----------
    model: a ``TransformerBridge`` (the store holds one row per real token).
    sites: hook names, globs allowed, as for :func:`interp.capture`.
    texts: the inputs of the capture: they give the number of tokens and the padded length (capture
        tokenizes all texts at once, so every batch has the length of the longest text).
    n_tokens: tokens to plan for (default: the tokens of ``texts``; with ``texts`` too, the inputs are
        scaled to this many tokens at the texts' mean length).
    seq_len: tokens per input when no ``texts`` are given (default ``min(128, n_ctx)``).
    batch_size, dtype: as for :func:`interp.capture`.
    seed: seed of the random probe tokens.
    truncate: as :func:`interp.capture`: texts longer than the context are an error unless ``True`` (then cut).

    Returns
    -------
    :class:`CapturePlan`; ``plan.store_bytes``, ``plan.bytes_per_token``, ``plan.peak_bytes``.

    Example
    -------
    >>> plan = plan_capture(model, "blocks.*.hook_resid_post", n_tokens=10**6, batch_size=8)  # doctest: +SKIP
    >>> plan.store_bytes / 1e9                                                             # doctest: +SKIP
    """
    from .capture import capture
    from .engine import is_bridge, tokenize

    if not is_bridge(model):
        raise InputTypeError("plan_capture plans captures of language models (TransformerBridge) over tokens; "
                             f"got {type(model).__name__}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    n_ctx = int(getattr(model.cfg, "n_ctx", 0) or 2048)
    notes: list[str] = []
    if texts is not None:
        if seq_len is not None:
            raise ConfigError("give seq_len only without texts (the texts set the length)")
        tokens, mask = tokenize(model, list(texts), truncate=truncate)  # as capture(truncate=) will
        lengths = mask.sum(1)
        length = int(tokens.shape[1])
        total = int(lengths.sum())
        if n_tokens is None:
            n_tokens, n_inputs = total, len(texts)
        else:
            n_inputs = max(1, round(n_tokens / float(lengths.float().mean())))
            notes.append(f"{len(texts):,} texts ({total:,} tokens) scaled to {n_tokens:,} tokens")
    else:
        if n_tokens is None:
            raise ConfigError("give texts or n_tokens (how many tokens the capture will store)")
        length = int(min(128, n_ctx) if seq_len is None else seq_len)  # seq_len=0 is refused below, never 64
        n_inputs = math.ceil(n_tokens / length)
    if n_tokens < 1 or length < 1:
        raise ConfigError(f"n_tokens and seq_len must be at least 1, got {n_tokens} and {length}")
    if length > n_ctx:
        raise ConfigError(f"inputs of {length} tokens are longer than the model's context ({n_ctx})")
    vocab = int(getattr(model.cfg, "d_vocab", 2))
    generator = torch.Generator().manual_seed(seed)
    probe = torch.randint(1 if vocab > 1 else 0, max(vocab, 1), (4, length), generator=generator)
    peaks: list[dict[str, int]] = []
    files: list[tuple[dict[str, Any], dict[str, int], int, int]] = []
    with tempfile.TemporaryDirectory(prefix="interp-plan-") as tmp:
        for b in (1, 2):  # two batches each: the rows of one batch are still alive while the next one runs
            with _LiveTensorBytes() as live:
                capture(model, probe[: 2 * b], sites, store=Path(tmp, f"b{b}"), batch_size=b, dtype=dtype,
                        progress=False)
            peaks.append(dict(live.peak))
            files.append(_store_files(Path(tmp, f"b{b}")))
    manifest, npy, coords1, manifest_size = files[0]
    _, _, coords2, _ = files[1]
    itemsize = np.dtype(manifest["dtype"]).itemsize
    row_shapes = {s: tuple(spec["shape"]) for s, spec in manifest["arrays"].items()}
    dims = {s: list(spec["dims"]) for s, spec in manifest["arrays"].items()}
    data_bytes = sum(int(np.prod(shape, dtype=np.int64)) * itemsize * 2 * length for shape in row_shapes.values())
    npy_overhead = (sum(npy.values()) - data_bytes) / 2  # the .npy headers of one shard
    coords_per_token = max(0.0, (coords2 - coords1) / (2 * length))
    coords_fixed = max(0.0, (coords1 - coords_per_token * 2 * length) / 2)
    entry = {"rows": 10 * length * batch_size, "start": 10 * n_tokens, "coords": True}
    per_shard_manifest = len(json.dumps({"s": [entry, entry]}, indent=1)) - len(json.dumps({"s": [entry]}, indent=1))
    n_shards = max(1, math.ceil(n_inputs / batch_size))
    devices = set(peaks[0]) | set(peaks[1])
    batch = {d: int(peaks[0].get(d, 0) + (batch_size - 1) * max(0, peaks[1].get(d, 0) - peaks[0].get(d, 0)))
             for d in devices}
    name = model_name or getattr(model, "zoo_name", None) or getattr(model.cfg, "model_name", None) or type(model).__name__
    return CapturePlan(
        model=str(name), dtype=str(manifest["dtype"]), n_tokens=int(n_tokens), n_inputs=int(n_inputs),
        seq_len=length, batch_size=batch_size, row_shapes=row_shapes, dims=dims, itemsize=itemsize,
        coords_bytes_per_token=coords_per_token, shard_overhead_bytes=npy_overhead + coords_fixed,
        manifest_bytes=manifest_size + (n_shards - 2) * per_shard_manifest, weights_bytes=_weights(model),
        batch_bytes=batch, inputs_bytes=2 * 8 * n_inputs * length, notes=notes,
    )
