"""What an activation store was made from: a fingerprint of the inputs, model, sites and settings.

:func:`fingerprint` is recorded in a store's manifest when it is created; resuming or rerunning into the
store with a different fingerprint raises :class:`~interp.errors.FingerprintError` naming what differs,
so that a store never mixes rows of two different jobs. Exposed as :func:`interp.store.fingerprint`.

Example
-------
>>> fp = fingerprint(model, tokens, ["blocks.0.hook_resid_post"], positions="tokens")  # doctest: +SKIP
>>> fp["inputs"]                                                                         # doctest: +SKIP
'tensor (40, 12) int64, xxh3 5f1c...'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import xxhash

from ._integrity import checksum

__all__ = ["fingerprint", "fingerprint_differences"]

_ORDER = ("inputs", "attention_mask", "sample_ids", "preprocess", "model", "parameters", "sites", "positions",
          "spatial", "dtype", "version")
_PARAM_SAMPLE = 1024  # values hashed per parameter tensor (a strided sample: cheap, and any real change shows)


def _describe_inputs(inputs: Any) -> str:
    if isinstance(inputs, str):
        inputs = [inputs]
    if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(t, str) for t in inputs):
        h = xxhash.xxh3_64()
        for text in inputs:
            data = text.encode("utf-8")
            h.update(len(data).to_bytes(8, "little"))
            h.update(data)
        return f"{len(inputs)} texts, xxh3 {h.hexdigest()}"
    if isinstance(inputs, np.ndarray):
        inputs = torch.from_numpy(np.ascontiguousarray(inputs))
    if isinstance(inputs, torch.Tensor):
        return f"tensor {tuple(inputs.shape)} {str(inputs.dtype).replace('torch.', '')}, xxh3 {checksum(inputs)}"
    try:
        size = f" of {len(inputs)} items"
    except TypeError:
        size = ""
    return f"{type(inputs).__name__}{size} (contents not hashed)"


def _parameters(model: torch.nn.Module) -> str:
    h = xxhash.xxh3_64()
    n = 0
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        n += 1
        flat = t.detach().reshape(-1)
        if flat.numel() > _PARAM_SAMPLE:
            flat = flat[:: flat.numel() // _PARAM_SAMPLE][:_PARAM_SAMPLE]
        if flat.device.type != "meta":
            h.update(memoryview(flat.contiguous().cpu().view(torch.uint8).numpy()))
    return f"{n} tensors, xxh3 {h.hexdigest()}"


def fingerprint(
    model: torch.nn.Module,
    inputs: Any,
    sites: Sequence[str],
    *,
    positions: Any = "all",
    spatial: str = "all",
    dtype: torch.dtype | str | None = None,
    attention_mask: torch.Tensor | None = None,
    sample_ids: Sequence[Any] | None = None,
    preprocess: Callable | None = None,
) -> dict[str, Any]:
    """A fingerprint of a capture job: what :func:`interp.capture` records in the store it writes.

    Hashes the inputs (texts, token or image tensors, NumPy arrays; a ``Dataset``/``DataLoader`` is
    described by type and length only, since hashing it would mean reading it twice), the attention
    mask and sample ids, and records the model's name, a cheap fingerprint of its parameters and
    buffers (names, shapes, dtypes and a strided sample of 1,024 values of each), the resolved sites,
    positions, spatial reduction, dtype and the library version. Two jobs with equal fingerprints
    write the same rows; :func:`fingerprint_differences` lists what differs between two of them.

    >>> fp = fingerprint(model, tokens, ["blocks.0.hook_resid_post"], positions="tokens")  # doctest: +SKIP
    """
    from ._version import __version__

    name = getattr(model, "zoo_name", None) or getattr(getattr(model, "cfg", None), "model_name", None) or type(model).__name__
    if isinstance(positions, (str, int, np.integer)):
        pos: Any = positions if isinstance(positions, str) else int(positions)
    else:
        pos = f"index, xxh3 {checksum(torch.as_tensor(np.asarray(positions)).long())}"
    fp: dict[str, Any] = {
        "inputs": _describe_inputs(inputs),
        "model": str(name),
        "parameters": _parameters(model),
        "sites": list(sites),
        "positions": pos,
        "spatial": spatial,
        "dtype": "as computed" if dtype is None else str(dtype).replace("torch.", ""),
        "version": __version__,
    }
    if attention_mask is not None:
        fp["attention_mask"] = _describe_inputs(torch.as_tensor(attention_mask))
    if sample_ids is not None:
        fp["sample_ids"] = _describe_inputs([str(i) for i in sample_ids])
    if preprocess is not None:
        fp["preprocess"] = getattr(preprocess, "__qualname__", type(preprocess).__name__)
    return fp


def fingerprint_differences(stored: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """What differs between a stored fingerprint and this run's, one readable line per item."""
    keys = [k for k in _ORDER if k in stored or k in now] + sorted((set(stored) | set(now)) - set(_ORDER))
    out = []
    for key in keys:
        a, b = stored.get(key), now.get(key)
        if a == b:
            continue
        if isinstance(a, list) and isinstance(b, list):
            gone, new = [s for s in a if s not in b], [s for s in b if s not in a]
            detail = (f"the store has {gone[:5]} that this run lacks" if gone else "") + \
                     ("; " if gone and new else "") + (f"this run adds {new[:5]}" if new else "")
            out.append(f"{key}: {detail or 'same items in another order'}")
        else:
            out.append(f"{key}: the store was made with {a!r}, this run has {b!r}")
    return out
