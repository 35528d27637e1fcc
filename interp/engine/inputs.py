"""Inputs: turn what a user passes (texts, token tensors, images, arrays, Datasets, DataLoaders) into
batches, and run one batch through a model.

Used by every analysis that runs a model, so that inputs are batched, tokenised and padded one way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checks import check_tokens, fit_context, model_vocab
from ..errors import DimensionError, InputTypeError, MismatchError
from .sites import is_bridge

__all__ = ["Batch", "tokenize", "batches", "to_tokens", "check_pair", "forward", "output_tensor", "repeat",
           "n_samples", "model_device"]


@dataclass
class Batch:
    """One batch of model inputs: the tensor, its padding mask (token inputs) and sample offset.

    Parameters
    ----------
    inputs : Any
        The batch (a tensor with the samples along dim 0).
    mask : torch.Tensor, optional
        ``(batch, pos)`` attention mask, 1 for real tokens and 0 for padding; None when the inputs came
        without one (token or image tensors given as such).
    start : int
        Index of the batch's first sample among all the inputs.
    """

    inputs: Any
    mask: torch.Tensor | None
    start: int

    @property
    def size(self) -> int:
        return n_samples(self.inputs)

    @property
    def lengths(self) -> torch.Tensor | None:
        return None if self.mask is None else self.mask.sum(1)


def tokenize(model: Any, texts: Sequence[str], prepend_bos: bool | None = None,
             truncate: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenize ``texts`` the way the bridge does (``to_tokens``), right-padded; returns tokens and mask.

    A text longer than the model's context (``cfg.n_ctx``) raises :class:`DimensionError` unless
    ``truncate=True``, which keeps its first ``n_ctx`` tokens and warns how many texts were cut.

    Parameters
    ----------
    model : TransformerBridge
        The bridge whose ``to_tokens`` tokenises.
    texts : Sequence[str]
        The texts (not empty).
    prepend_bos : bool, optional
        Passed to ``to_tokens`` (default: the bridge's own setting).
    truncate : bool
        Cut texts longer than the context instead of raising.

    Returns
    -------
    tokens, mask : torch.Tensor
        ``(n, max_len)`` long tokens, right-padded with the tokenizer's pad id (0 without one), and the
        mask (1 for real tokens).
    """
    if not texts:
        raise InputTypeError("the list of texts is empty")
    rows = [model.to_tokens(t, prepend_bos=prepend_bos, truncate=False)[0].cpu() for t in texts]
    rows = fit_context(rows, getattr(getattr(model, "cfg", None), "n_ctx", None), truncate)
    pad = getattr(getattr(model, "tokenizer", None), "pad_token_id", None)
    pad = 0 if pad is None else int(pad)
    width = max(len(r) for r in rows)
    tokens = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = r
        mask[i, : len(r)] = 1
    return tokens, mask


def _is_texts(inputs: Any) -> bool:
    return isinstance(inputs, (list, tuple)) and bool(inputs) and all(isinstance(t, str) for t in inputs)


def batches(model: Any, inputs: Any, batch_size: int, *, attention_mask: torch.Tensor | None = None,
            preprocess: Callable | None = None, skip: int = 0, stop: int | None = None,
            truncate: bool = False) -> tuple[Iterable[Batch], int | None]:
    """Batches of ``inputs`` (samples ``skip`` up to ``stop``) and the number of samples (None if unknown).

    Texts (bridges only) are tokenised and right-padded with a mask (longer than the context: an error
    unless ``truncate``, see :func:`tokenize`); NumPy arrays become tensors;
    ``preprocess`` is applied to raw inputs (per batch for Datasets and DataLoaders).

    Parameters
    ----------
    model : torch.nn.Module
        The model the batches are for (a bridge takes texts or token ids ``(batch, pos)``).
    inputs : Any
        Texts, a tensor or NumPy array with samples along dim 0, a torch ``Dataset`` or a ``DataLoader``
        (which keeps its own batch size).
    batch_size : int
        Samples per batch.
    attention_mask : torch.Tensor, optional
        ``(batch, pos)`` mask of token inputs (texts get one from :func:`tokenize`).
    preprocess : Callable, optional
        Applied to the inputs (per batch for Datasets and DataLoaders).
    skip : int
        Samples to skip at the start (to resume).
    stop : int, optional
        Stop before this sample (default: the end).
    truncate : bool
        Cut texts longer than the context instead of raising.
    """
    if isinstance(inputs, str):
        inputs = [inputs]
    if _is_texts(inputs):
        if not is_bridge(model):
            raise InputTypeError("texts can only be run through a TransformerBridge; tokenize them first for other models")
        inputs, attention_mask = tokenize(model, list(inputs), truncate=truncate)
    if isinstance(inputs, (list, tuple)) and len(inputs) == 0:
        raise InputTypeError("inputs are empty")
    if isinstance(inputs, np.ndarray):
        inputs = torch.from_numpy(inputs if inputs.flags.writeable else inputs.copy())
    loaders = (torch.utils.data.DataLoader, torch.utils.data.Dataset)
    if preprocess is not None and not isinstance(inputs, loaders):
        inputs = preprocess(inputs)
    if isinstance(inputs, torch.Tensor):
        return _tensor_batches(model, inputs, batch_size, attention_mask, skip, stop)
    if isinstance(inputs, torch.utils.data.Dataset) and not isinstance(inputs, torch.utils.data.IterableDataset):
        inputs = torch.utils.data.DataLoader(inputs, batch_size=batch_size, shuffle=False)
    if isinstance(inputs, torch.utils.data.DataLoader):
        return _loader_batches(inputs, preprocess, skip, stop)
    raise InputTypeError(
        f"cannot run a model on inputs of type {type(inputs).__name__}; pass texts (bridges), a token tensor "
        "(batch, pos), an image tensor (batch, C, H, W), a NumPy array, a torch Dataset or a DataLoader"
    )


def _tensor_batches(model: Any, inputs: torch.Tensor, batch_size: int, attention_mask: torch.Tensor | None,
                    skip: int, stop: int | None) -> tuple[Iterator[Batch], int]:
    if inputs.ndim == 0 or inputs.shape[0] == 0:
        raise InputTypeError(f"inputs must have a non-empty batch axis, got shape {tuple(inputs.shape)}")
    if is_bridge(model) and (inputs.is_floating_point() or inputs.ndim != 2):
        raise InputTypeError(f"a TransformerBridge takes token ids of shape (batch, pos) and integer dtype, got "
                             f"{tuple(inputs.shape)} {inputs.dtype}")
    if attention_mask is not None and attention_mask.shape != inputs.shape[:2]:
        raise DimensionError(f"attention_mask has shape {tuple(attention_mask.shape)}, expected {tuple(inputs.shape[:2])}")
    n = int(inputs.shape[0])
    end = n if stop is None else min(n, stop)

    def gen() -> Iterator[Batch]:
        for start in range(skip, end, batch_size):
            last = min(start + batch_size, end)
            mask = None if attention_mask is None else attention_mask[start: last]
            yield Batch(inputs[start: last], mask, start)

    return gen(), n


def _loader_batches(loader: torch.utils.data.DataLoader, preprocess: Callable | None,
                    skip: int, stop: int | None) -> tuple[Iterator[Batch], int | None]:
    def gen() -> Iterator[Batch]:
        start = 0
        for item in loader:
            x = item[0] if isinstance(item, (list, tuple)) else (item["input_ids"] if isinstance(item, Mapping) else item)
            mask = item.get("attention_mask") if isinstance(item, Mapping) else None
            if preprocess is not None:
                x = preprocess(x)
            if not isinstance(x, torch.Tensor):
                raise InputTypeError(f"the DataLoader must yield tensors (or (x, y) tuples / dicts with input_ids), "
                                     f"got {type(x).__name__}")
            size = x.shape[0]
            if stop is not None and start >= stop:
                return
            if start + size > skip:
                cut = max(0, skip - start)
                end = size if stop is None else min(size, stop - start)
                yield Batch(x[cut:end], None if mask is None else mask[cut:end], start + cut)
            start += size

    try:
        total = len(loader.dataset)  # type: ignore[arg-type]
    except TypeError:
        total = None
    return gen(), total


def to_tokens(model: Any, inputs: Any, truncate: bool = False) -> Any:
    """Token tensor for a bridge from texts (of equal token length) or tokens; other inputs pass through.

    Token ids are checked (integer, inside the vocabulary); prompts longer than the model's context raise
    :class:`DimensionError` unless ``truncate=True`` (then cut, with a warning).

    Parameters
    ----------
    model : Any
        The model (inputs pass through unchanged unless it is a bridge).
    inputs : Any
        A text or texts, a token tensor ``(batch, pos)`` or ``(pos,)``, an array, or nested lists of ids.
    truncate : bool
        Cut prompts longer than the context instead of raising.
    """
    if isinstance(inputs, str):
        inputs = [inputs]
    if _is_texts(inputs):
        if not is_bridge(model):
            raise InputTypeError("texts need a TransformerBridge with a tokenizer; pass tensors for other models")
        rows = [model.to_tokens(t, truncate=False)[0] for t in inputs]
        rows = fit_context(rows, getattr(model.cfg, "n_ctx", None), truncate, "prompts")
        lengths = {len(r) for r in rows}
        if len(lengths) != 1:
            raise MismatchError(f"the prompts tokenize to different lengths {sorted(lengths)}; this needs "
                                "prompts of equal token length (pad or rephrase them)")
        return torch.stack(rows)
    if isinstance(inputs, np.ndarray):
        inputs = torch.from_numpy(inputs if inputs.flags.writeable else inputs.copy())
    if isinstance(inputs, torch.Tensor):
        if not is_bridge(model):
            return inputs
        return check_tokens(inputs if inputs.ndim > 1 else inputs.unsqueeze(0), model_vocab(model))
    if isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], (list, tuple)):
        tokens = torch.tensor(inputs)
        return check_tokens(tokens, model_vocab(model)) if is_bridge(model) else tokens
    if isinstance(inputs, Mapping):
        return inputs
    raise InputTypeError(f"inputs must be texts or a tensor, got {type(inputs).__name__}")


def check_pair(clean: Any, corrupted: Any) -> None:
    """Clean and corrupted inputs must have the same shape (same batch and token length).

    Parameters
    ----------
    clean, corrupted : torch.Tensor
        The two inputs; tensors of different shapes raise :class:`MismatchError`.
    """
    if not isinstance(clean, torch.Tensor) or not isinstance(corrupted, torch.Tensor):
        raise InputTypeError("clean and corrupted inputs must be tensors (or texts for a bridge)")
    if clean.shape != corrupted.shape:
        what = "token lengths" if clean.ndim == 2 and clean.shape[0] == corrupted.shape[0] else "shapes"
        raise MismatchError(f"clean and corrupted inputs have different {what}: {tuple(clean.shape)} vs "
                            f"{tuple(corrupted.shape)}; patching compares matching positions, so they must be equal")


def output_tensor(out: Any) -> Any:
    """The main tensor of a model output (first element of a tuple, ``.logits`` of a HF output).

    Parameters
    ----------
    out : Any
        What the model's forward returned.
    """
    if isinstance(out, tuple):
        out = out[0]
    if hasattr(out, "logits"):
        out = out.logits
    return out


def forward(model: nn.Module, inputs: Any, mask: torch.Tensor | None = None, **kwargs: Any) -> Any:
    """Run ``model`` on ``inputs`` (moved to its device) and return its output tensor (logits).

    A padding ``mask`` is passed as ``attention_mask`` to bridges when some entries are padding.

    Parameters
    ----------
    model : torch.nn.Module
        The model.
    inputs : Any
        Its inputs (token ids of a bridge are checked against the vocabulary).
    mask : torch.Tensor, optional
        ``(batch, pos)`` padding mask (1 = real token).
    **kwargs
        Passed to the model's forward.
    """
    device = model_device(model)
    if is_bridge(model) and isinstance(inputs, torch.Tensor):
        check_tokens(inputs, model_vocab(model), "inputs")  # an id outside the vocabulary: a bare IndexError
    if device is not None and isinstance(inputs, torch.Tensor):
        inputs = inputs.to(device)
    if is_bridge(model) and mask is not None and not bool(mask.all()):
        kwargs["attention_mask"] = mask.to(inputs.device)
    return output_tensor(model(inputs, **kwargs))


def repeat(inputs: Any, n: int) -> Any:
    """``n`` copies of a batch stacked along axis 0 (copy-major: rows ``[x; x; ...]``).

    Parameters
    ----------
    inputs : torch.Tensor or Mapping
        A tensor, or a dict of tensors, with the samples along dim 0.
    n : int
        Number of copies.
    """
    if isinstance(inputs, torch.Tensor):
        return inputs.repeat(n, *([1] * (inputs.ndim - 1)))
    if isinstance(inputs, Mapping):
        return {k: repeat(v, n) for k, v in inputs.items()}
    raise InputTypeError(f"inputs must be a tensor (or a dict of tensors) with the samples along dim 0; "
                         f"got {type(inputs).__name__}")


def n_samples(inputs: Any) -> int:
    """Number of samples along axis 0 of a tensor, a dict of tensors or a list.

    Parameters
    ----------
    inputs : Any
        A tensor, a dict of tensors (its first value counts) or a list.
    """
    if isinstance(inputs, (list, tuple)):
        return len(inputs)
    if isinstance(inputs, torch.Tensor):
        return int(inputs.shape[0])
    if isinstance(inputs, Mapping) and inputs:
        return n_samples(next(iter(inputs.values())))
    raise InputTypeError(f"inputs must be a tensor (or a dict of tensors) with the samples along dim 0; "
                         f"got {type(inputs).__name__}")


def model_device(model: nn.Module) -> torch.device | None:
    """Device of the model's first parameter (None for a parameter-free module).

    Parameters
    ----------
    model : torch.nn.Module
        The model.
    """
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return None
