"""The model zoo, and your own models: ``model, preprocess = interp.models.load(name_or_model)``.

Language models come back as a ``transformer_lens.model_bridge.TransformerBridge`` with their
tokenizer; vision models as an ``nn.Module`` in eval mode with a callable that turns images (HxWxC
uint8 arrays, PIL images, or a batch of them) into the model's input tensor. Nothing is downloaded:
weights come from installed packages, from files vendored in this repository, or are trained
locally once and cached under ``$INTERP_CACHE``.

Bring your own model (see :mod:`interp.models.hf`): ``load`` also takes a local Hugging Face
directory, a ``transformers`` model object (with ``tokenizer=``), a ``TransformerBridge``, any
``nn.Module`` (returned as is, with ``preprocess=None``: sites are module paths), or a Hugging Face
hub / TransformerLens name (needs the network or the local Hugging Face cache; offline it raises an
error that says how to load it from a local directory). :func:`integer_tokenizer` is the zoo's small
offline tokenizer (words are token ids), handy for toy checkpoints.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataNotFoundError, closest
from . import hf
from ._tokenizers import integer_tokenizer

__all__ = ["load", "available", "integer_tokenizer"]

# name -> "module:function"; each function takes (device=None, **kwargs) and returns (model, preprocess)
_REGISTRY: dict[str, str] = {
    "induction-2l": "interp.models.induction:load_induction_2l",
    "smollm2-135m": "interp.models.lm:load_smollm2",
    "minilm-l6": "interp.models.lm:load_minilm",
    "efficientnet-lite0": "interp.models.vision:load_efficientnet_lite0",
    "resnet20-cifar10": "interp.models.vision:load_resnet20",
    "digits-vit": "interp.models.digits:load_digits_vit",
}


def available() -> list[str]:
    """Names of the zoo models :func:`load` knows."""
    return sorted(_REGISTRY)


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~", ".\\")) or os.sep in name.rstrip(os.sep) and Path(
        name.split(os.sep)[0]).expanduser().is_dir()


def load(name: Any, device: str | None = None, **kwargs: Any) -> tuple[Any, Any]:
    """Load a model; returns ``(model, preprocess)``.

    ``name`` is one of:

    * a zoo name (:func:`available`), e.g. ``"smollm2-135m"``; extra keyword arguments go to its loader;
    * a local Hugging Face directory (``config.json`` + weights + tokenizer, as ``save_pretrained``
      writes them) -> ``(TransformerBridge, tokenizer)``; ``tokenizer=`` and ``dtype=`` are accepted;
    * a ``transformers`` model object -> ``(TransformerBridge, tokenizer)``; pass ``tokenizer=`` unless
      the tokenizer is saved beside the model. The object is wrapped in place (save it first if you
      need ``save_pretrained`` later);
    * a ``TransformerBridge`` -> ``(bridge, bridge.tokenizer)``;
    * any other ``nn.Module`` -> ``(module, None)``, unchanged (sites are module paths);
    * a Hugging Face hub / TransformerLens name such as ``"gpt2"``: loaded from the local Hugging Face
      cache, or downloaded when online; offline it raises :class:`~interp.errors.DataNotFoundError`
      saying how to copy it into a local directory.

    A model object with weights on the meta device (shapes, no values) is refused with what to do.

    The tokenizer is handled for you: TransformerLens needs one it can reload from disk, so an
    in-memory tokenizer is saved to a temporary folder and loaded back first.

    Parameters
    ----------
    name : str, os.PathLike or torch.nn.Module
        A zoo name, a Hugging Face directory, a hub name, or a model object (see above).
    device : str, optional
        Where to put the model; None: the loader's default (normally CPU), an object is left where it is.
    **kwargs
        Zoo names: passed to the zoo loader. Directories, hub names and objects: only ``tokenizer=`` (and
        ``dtype=`` for directories and hub names); anything else raises :class:`ConfigError`.

    >>> model, tokenizer = load("induction-2l")            # doctest: +SKIP
    >>> model, tokenizer = load("checkpoints/my-gpt2")     # doctest: +SKIP
    >>> model, tokenizer = load(my_hf_model, tokenizer=my_tokenizer)   # doctest: +SKIP
    >>> net, preprocess = load(my_cnn)                     # doctest: +SKIP
    """
    from ..engine import repair_block_outputs  # a bridge's hook points fire as documented (GPT-1's resid_post)

    model, preprocess = _load(name, device, **kwargs)
    return repair_block_outputs(model), preprocess


def _load(name: Any, device: str | None = None, **kwargs: Any) -> tuple[Any, Any]:
    if isinstance(name, (str, os.PathLike)):
        text = os.fspath(name)
        if text in _REGISTRY:
            module, func = _REGISTRY[text].split(":")
            return getattr(importlib.import_module(module), func)(device=device, **kwargs)
        tokenizer, dtype = kwargs.pop("tokenizer", None), kwargs.pop("dtype", None)
        options = {"tokenizer": tokenizer} | ({"dtype": dtype} if dtype is not None else {})
        if Path(text).expanduser().is_dir():
            hf.check_kwargs(kwargs, f"the directory {text!r}")
            return hf.load_directory(text, device=device, **options)
        if isinstance(name, os.PathLike) or _looks_like_path(text):
            raise DataNotFoundError(f"no such directory: {text!r} (and it is not a zoo model: {available()})")
        hf.check_kwargs(kwargs, f"the hub model {text!r}")
        return hf.load_hub(text, device=device, zoo=available(), hint=closest(text, _REGISTRY), **options)
    kind = hf.as_hf_or_module(name)
    _refuse_meta(name)
    tokenizer = kwargs.pop("tokenizer", None)
    hf.check_kwargs(kwargs, f"a {type(name).__name__} object")
    if kind == "hf":
        return hf.bridge_model(name, tokenizer, device=device)
    if tokenizer is not None:
        raise ConfigError(f"tokenizer= applies to transformers model objects; a {type(name).__name__} is returned "
                          "as is (a bridge keeps its own tokenizer, a plain nn.Module has none)")
    model = name.to(device) if device is not None else name
    return (model, model.tokenizer) if kind == "bridge" else (model, None)


def _refuse_meta(model: Any) -> None:
    """Refuse a model whose weights are on the meta device: they hold no values, so every number would fail later."""
    import torch

    if not isinstance(model, torch.nn.Module):
        return
    meta = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if meta:
        raise ConfigError(
            f"{type(model).__name__} has {len(meta)} parameters/buffers on the meta device (e.g. {meta[:3]}): they "
            "have shapes but no values (a model built under init_empty_weights(), with device='meta', or loaded "
            "with a device_map that left weights unloaded). Load real weights first: "
            "model.to_empty(device='cpu') then model.load_state_dict(state_dict), or "
            "from_pretrained(path) without device_map='meta', then call interp.models.load again"
        )
