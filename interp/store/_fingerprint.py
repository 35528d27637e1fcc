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

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import xxhash

from .._integrity import checksum

__all__ = ["fingerprint", "fingerprint_differences"]

_ORDER = ("inputs", "attention_mask", "sample_ids", "preprocess", "grads", "model", "parameters", "sites", "positions",
          "spatial", "dtype", "version")
_CHUNK = 1 << 24  # elements copied to the host and hashed at a time (64 MB of float32): memory stays bounded


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
    own = getattr(inputs, "_fingerprint", None)  # a Hugging Face datasets.Dataset: its content fingerprint
    if isinstance(own, str) and own:
        return f"{type(inputs).__name__} of {len(inputs)} items, datasets fingerprint {own}"
    h, n = xxhash.xxh3_64(), 0
    for item in _items(inputs):
        _update(h, item)
        n += 1
    return f"{type(inputs).__name__} of {n} items, xxh3 {h.hexdigest()}"


def _items(inputs: Any) -> Iterable[Any]:
    """The items of a Dataset (in index order), a DataLoader (its map-style dataset in order when it reads
    it sequentially, else its batches) or any other iterable, read once to hash them."""
    data = torch.utils.data
    if isinstance(inputs, data.DataLoader):
        dataset = inputs.dataset
        if isinstance(inputs.sampler, data.SequentialSampler) and not isinstance(dataset, data.IterableDataset):
            return _items(dataset)
        return iter(inputs)  # a shuffled loader hashes differently on every run: such a store never resumes
    if hasattr(inputs, "__getitem__") and hasattr(inputs, "__len__") and not isinstance(inputs, data.IterableDataset):
        return (inputs[i] for i in range(len(inputs)))
    try:
        return iter(inputs)
    except TypeError:
        from ..errors import InputTypeError

        raise InputTypeError(f"cannot fingerprint inputs of type {type(inputs).__name__}: pass texts, a tensor, an "
                             "array, a Dataset or a DataLoader") from None


def _update(h: Any, item: Any) -> None:
    """Feed one input (a tensor, array, text, number, or a tuple / dict of them) to the hash ``h``."""
    if isinstance(item, np.ndarray):
        item = torch.from_numpy(np.ascontiguousarray(item))
    if isinstance(item, torch.Tensor):
        h.update(f"T{tuple(item.shape)}{item.dtype}|".encode())
        h.update(checksum(item).encode())
    elif isinstance(item, Mapping):
        h.update(f"M{len(item)}|".encode())
        for key in sorted(item, key=str):
            h.update(f"{key}=".encode())
            _update(h, item[key])
    elif isinstance(item, (list, tuple)):
        h.update(f"L{len(item)}|".encode())
        for part in item:
            _update(h, part)
    elif isinstance(item, (str, bytes)):
        text = item.encode() if isinstance(item, str) else item
        h.update(f"S{len(text)}|".encode() + text)
    elif isinstance(item, (int, float, complex, bool, type(None), np.generic)):
        h.update(f"N{item!r}|".encode())
    elif callable(getattr(item, "tobytes", None)):  # a PIL image (size and mode in its repr's place) or similar
        h.update(f"B{type(item).__name__}{getattr(item, 'size', '')}{getattr(item, 'mode', '')}|".encode())
        h.update(checksum(item.tobytes()).encode())
    else:
        import pickle

        try:
            data = pickle.dumps(item, protocol=4)
        except Exception:  # not picklable: its repr (an address in it would make every run differ: refused resume)
            data = repr(item).encode()
        h.update(f"P{len(data)}|".encode() + data)


def _parameters(model: torch.nn.Module) -> str:
    """XXH3 of every parameter and buffer: names, shapes, dtypes and every byte, streamed in chunks of
    ``_CHUNK`` elements (a GPU tensor is copied to the host one chunk at a time). Editing any single
    element changes it."""
    h = xxhash.xxh3_64()
    n = 0
    with torch.no_grad():
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
            n += 1
            if t.device.type == "meta":
                h.update(b"meta")
                continue
            flat = t.detach().reshape(-1)
            for start in range(0, flat.numel(), _CHUNK):
                part = flat[start : start + _CHUNK].contiguous().cpu()
                h.update(memoryview(part.view(torch.uint8).numpy()))
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
    grads: Callable | None = None,
) -> dict[str, Any]:
    """A fingerprint of a capture job: what :func:`interp.capture` records in the store it writes.

    Hashes the inputs (texts, token or image tensors, NumPy arrays; a Hugging Face ``datasets.Dataset`` by
    its own content fingerprint; a torch ``Dataset``/``DataLoader`` by reading every item once more), the attention
    mask and sample ids, and records the model's name, a cheap fingerprint of its parameters and
    buffers (names, shapes, dtypes and every value, hashed in chunks), the resolved sites,
    positions, spatial reduction, dtype and the library version. Two jobs with equal fingerprints
    write the same rows; :func:`fingerprint_differences` lists what differs between two of them.

    >>> fp = fingerprint(model, tokens, ["blocks.0.hook_resid_post"], positions="tokens")  # doctest: +SKIP
    """
    from .._version import __version__

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
    if grads is not None:  # the gradients of this metric are stored too
        fp["grads"] = getattr(grads, "__qualname__", type(grads).__name__)
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
