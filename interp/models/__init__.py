"""The model zoo: ``model, preprocess = interp.models.load(name)``.

Language models come back as a ``transformer_lens.model_bridge.TransformerBridge`` with their
tokenizer; vision models as an ``nn.Module`` in eval mode with a callable that turns images (HxWxC
uint8 arrays, PIL images, or a batch of them) into the model's input tensor. Nothing is downloaded:
weights come from installed packages, from files vendored in this repository, or are trained
locally once and cached under ``$INTERP_CACHE``.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import ConfigError, closest

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
    """Names accepted by :func:`load`."""
    return sorted(_REGISTRY)


def load(name: str, device: str | None = None, **kwargs: Any) -> tuple[Any, Any]:
    """Load a zoo model by name; returns ``(model, preprocess)``.

    >>> model, tokenizer = load("induction-2l")  # doctest: +SKIP
    """
    if name not in _REGISTRY:
        hint = closest(name, _REGISTRY)
        raise ConfigError(f"unknown model {name!r}; available: {available()}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    module, func = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), func)(device=device, **kwargs)
