"""Recorded data sets: ``recording = interp.data.load(name)`` returns :class:`interp.Activations`.

Bundled/available offline: ``kriegeskorte92``, ``hippocampus``, ``celegans``, ``eegmmidb``.
Generic loaders for NumPy/CSV/parquet, local Hugging Face dataset folders, NWB and the homogenized
C. elegans schema live in :mod:`interp.data.loaders`.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import ConfigError, closest

_REGISTRY: dict[str, str] = {
    "kriegeskorte92": "interp.data.kriegeskorte:load_kriegeskorte92",
    "hippocampus": "interp.data.hippocampus:load_hippocampus",
    "celegans": "interp.data.celegans:load_celegans",
    "eegmmidb": "interp.data.eeg:load_eegmmidb",
}


def available() -> list[str]:
    """Names accepted by :func:`load`."""
    return sorted(_REGISTRY)


def load(name: str, **kwargs: Any) -> Any:
    """Load a recorded data set by name (see each loader's docstring for its options)."""
    if name not in _REGISTRY:
        hint = closest(name, _REGISTRY)
        raise ConfigError(f"unknown data set {name!r}; available: {available()}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    module, func = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), func)(**kwargs)
