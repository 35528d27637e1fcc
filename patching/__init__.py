"""Intervene and attribute: interventions, the four attribution methods, RelP rules, neuron paths and
scripted ablation studies -- all on the hook engine of :mod:`interp.engine`.

The four attribution methods share one signature and one result type::

    res = patching.activation_patching(model, clean, corrupted, metric, sites=["resid_pre", "heads"])
    res = patching.attribution_patching(model, clean, corrupted, metric, sites=["resid_pre", "heads"])
    res = patching.relevance_patching(model, clean, corrupted, metric, sites=["resid_pre", "heads"])
    res = patching.integrated_gradients(model, clean, corrupted, metric, sites=["resid_pre", "heads"])
    res["heads"].effect          # change of the metric per cell (measured or estimated)

>>> import patching
>>> with patching.intervene(model, patching.zero("blocks.0.attn.hook_z", heads=[1])):   # doctest: +SKIP
...     logits = model(tokens)
"""

from __future__ import annotations

from . import metrics
from .activation_patching import activation_patching
from .attribution import attribution_patching
from .conservation import ConservationResult, relevance_conservation
from .faithfulness import FAITHFULNESS_METHODS, Faithfulness, faithfulness
from .integrated_gradients import integrated_gradients
from .interventions import Inputs, Intervention, add, clamp, intervene, mean, patch, resample, scale, zero
from .relp import RULE_PRESETS, relevance_patching, relp_rules
from .results import AttributionResult, SiteGrid
from .rules import AttentionRule, HalfRule, IdentityRule, LNRule, Rule, RuleError

#: The four attribution methods under one contract: ``method(model, clean, corrupted, metric, sites=...)``.
METHODS = {"activation": activation_patching, "atp": attribution_patching, "relp": relevance_patching,
           "ig": integrated_gradients}

__all__ = [
    "metrics", "METHODS", "activation_patching", "attribution_patching", "relevance_patching", "integrated_gradients",
    "AttributionResult", "SiteGrid", "relp_rules", "Rule", "LNRule", "IdentityRule", "HalfRule", "AttentionRule",
    "RuleError", "relevance_conservation", "faithfulness", "Faithfulness", "FAITHFULNESS_METHODS", "RULE_PRESETS", "ConservationResult", "Inputs", "Intervention", "intervene", "add", "clamp", "mean", "patch", "resample", "scale", "zero",
]
