"""Intervene and attribute: interventions, activation patching, attribution patching (AtP),
integrated gradients, relevance patching (RelP), neuron paths and scripted ablation studies.

>>> import patching
>>> with patching.intervene(model, patching.zero("blocks.0.attn.hook_z", heads=[1])):   # doctest: +SKIP
...     logits = model(tokens)
"""

from __future__ import annotations

from . import metrics
from .activation_patching import activation_patching, patch_blocks, patch_heads, patch_neurons
from .attribution import attribution_patching
from .integrated_gradients import IGResult, integrated_gradients
from .interventions import Inputs, Intervention, add, clamp, intervene, mean, patch, record, resample, scale, zero
from .relp import relevance_patching, relp_rules
from .results import PatchingResult

__all__ = [
    "metrics", "activation_patching", "patch_blocks", "patch_heads", "patch_neurons", "Inputs", "Intervention",
    "add", "clamp", "intervene", "mean", "patch", "record", "resample", "scale", "zero", "PatchingResult",
    "attribution_patching", "relevance_patching", "relp_rules", "integrated_gradients", "IGResult",
]
