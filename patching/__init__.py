"""Intervene and attribute: interventions, activation patching, attribution patching (AtP),
integrated gradients, relevance patching (RelP), neuron paths and scripted ablation studies.

>>> import patching
>>> with patching.intervene(model, patching.zero("blocks.0.attn.hook_z", heads=[1])):   # doctest: +SKIP
...     logits = model(tokens)
"""

from __future__ import annotations

import importlib

from . import metrics
from .activation_patching import activation_patching, patch_blocks, patch_heads, patch_neurons
from .interventions import Inputs, Intervention, add, clamp, intervene, mean, patch, record, resample, scale, zero
from .results import PatchingResult

__all__ = [
    "metrics", "activation_patching", "patch_blocks", "patch_heads", "patch_neurons", "Inputs", "Intervention",
    "add", "clamp", "intervene", "mean", "patch", "record", "resample", "scale", "zero", "PatchingResult",
    "attribution_patching", "relevance_patching", "relp_rules", "integrated_gradients", "IGResult",
]

_LAZY = {
    "attribution_patching": "attribution", "relevance_patching": "relp", "relp_rules": "relp",
    "integrated_gradients": "integrated_gradients", "IGResult": "integrated_gradients",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'patching' has no attribute {name!r}")
