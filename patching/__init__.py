"""Intervene and attribute: interventions, the four attribution methods, RelP rules, neuron paths and
scripted ablation studies -- all on the hook engine of :mod:`interp.engine`.

The four attribution methods share one signature and one result type::

    res = patching.activation_patching(model, clean, corrupted, metric, sites=["resid_pre", "heads"])
    res = patching.attribution_patching(model, clean, corrupted, metric, sites=["resid_pre", "heads"])
    res = patching.relevance_patching(model, clean, corrupted, metric, sites=["resid_pre", "heads"])
    res = patching.integrated_gradients(model, clean, corrupted, metric, sites=["resid_pre", "heads"])
    res["heads"].effect          # change of the metric per cell (measured or estimated)

Edges and circuits (EAP, EAP-IG, RelP edges, exact edge patching; MIB's CPR/CMD)::

    edges = patching.edge_attribution(model, clean, corrupted, metric, method="eap-ig")
    patching.circuit_faithfulness(model, clean, corrupted, metric, edges.circuit(fraction=0.05))

>>> import patching
>>> with patching.intervene(model, patching.zero("blocks.0.attn.hook_z", heads=[1])):   # doctest: +SKIP
...     logits = model(tokens)
"""

from __future__ import annotations

from . import metrics
from .activation_patching import activation_patching
from .attribution import attribution_patching
from .conservation import ConservationResult, relevance_conservation
from .contract import METHODS, ContractError, attribution_method, check_contract  # noqa: E402
from .edges import Circuit, CircuitCurve, EdgeAttributionResult, circuit_faithfulness, edge_attribution, mib_scores
from .faithfulness import FAITHFULNESS_METHODS, Faithfulness, faithfulness
from .integrated_gradients import integrated_gradients
from .interventions import Inputs, Intervention, add, clamp, intervene, mean, patch, resample, scale, zero
from .relp import RULE_PRESETS, relevance_patching, relp_rules
from .results import AttributionResult, SiteGrid
from .rules import AttentionRule, HalfRule, IdentityRule, LNRule, Rule, RuleError

# METHODS: every attribution method under one contract, ``method(model, clean, corrupted, metric, sites=...)``,
# registered by :func:`attribution_method` where it is defined (the contract is checked there).

__all__ = [
    "metrics", "METHODS", "attribution_method", "check_contract", "ContractError", "activation_patching", "attribution_patching", "relevance_patching", "integrated_gradients",
    "AttributionResult", "SiteGrid", "relp_rules", "Rule", "LNRule", "IdentityRule", "HalfRule", "AttentionRule",
    "RuleError", "relevance_conservation", "faithfulness", "Faithfulness", "FAITHFULNESS_METHODS", "RULE_PRESETS", "edge_attribution", "EdgeAttributionResult", "Circuit", "CircuitCurve",
    "circuit_faithfulness", "mib_scores", "ConservationResult", "Inputs", "Intervention", "intervene", "add", "clamp", "mean", "patch", "resample", "scale", "zero",
]
