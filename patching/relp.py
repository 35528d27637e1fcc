"""Relevance patching (RelP): attribution patching with LRP propagation rules.

After Rezaei Jafari, Eberle, Khakzar & Nanda 2025, "RelP: Faithful and Efficient Circuit Discovery via
Relevance Patching" (arXiv 2508.21258; code github.com/FarnoushRJ/RelP at commit aa0e228, a TransformerLens
fork). RelP replaces the local gradient of attribution patching with LRP relevance coefficients; the rules
(:mod:`patching.rules`) are forward-value-preserving edits installed through the hook engine, so no fork of the
model is needed. Same cost as AtP: two forward passes and one backward pass. Where it differs: by default every
rule applies where it can (LN, Identity, Half), while the authors' published usage leaves the Identity rule
inactive (``rules="published"`` reproduces that, :data:`RULE_PRESETS`); the rules are placed from the model's
architecture, not from a config flag; the faithfulness evaluation is :func:`patching.faithfulness`.

The result's ``extra["rules"]`` lists where each rule was applied and ``extra["conservation"]`` how well the
rules conserve relevance on the call's first input (both in ``summary()``); a rule asked for by name that cannot
be applied, or a model on which no rule can be placed, raises :class:`patching.rules.RuleError`, and relevance that
is not conserved warns (RelP never silently becomes AtP).

>>> res = relevance_patching(model, clean, corrupted, metric, sites=["resid_pre", "mlp_out"])  # doctest: +SKIP
>>> res.extra["rules"]["ln"][:2]                                                              # doctest: +SKIP
>>> with relp_rules(model):                                                                   # doctest: +SKIP
...     metric(model(tokens)).backward()        # LRP gradients in your own backward pass
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ._plan import plan_sites, prepare_pair
from .attribution import gradient_attribution
from .contract import attribution_method
from .relp_check import RuleWarning, check_conservation, first_sample, nothing_placed, report, warn_or_raise
from .results import AttributionResult
from .rules import DEFAULT_RULES, Rule, RuleError, compile_rules, resolve_rules

__all__ = ["relevance_patching", "relp_rules", "RULE_PRESETS"]

Rules = Sequence[str | Rule] | Mapping[str, bool] | str | None

#: named rule sets for ``rules=``. ``"published"``: the rules active in the RelP authors' published usage
#: (README and ``demos/lrp_patching.ipynb`` of FarnoushRJ/RelP at commit aa0e228): ``model.cfg.use_lrp =
#: True`` is set *after* ``HookedTransformer.from_pretrained``, but their fork picks the Identity-rule's
#: activation when the MLP is built (``can_be_used_as_mlp.py``, ``select_activation_function``), while the
#: LN-rule and Half-rule read ``cfg.use_lrp`` in every forward pass: so only LN and Half act (no AH-rule,
#: which their README's list leaves out). ``"default"``: ours, LN + Identity + Half where they apply.
RULE_PRESETS: dict[str, dict[str, bool]] = {
    "default": {},
    "published": {"identity": False},
}


def _preset(rules: Rules) -> Rules:
    if isinstance(rules, str) and rules in RULE_PRESETS:
        return dict(RULE_PRESETS[rules])
    return rules


@attribution_method("relp")
def relevance_patching(
    model: nn.Module,
    clean: Any,
    corrupted: Any,
    metric: Callable[[torch.Tensor], torch.Tensor],
    sites: str | Sequence[str] | None = None,
    *,
    by: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    layers: Sequence[int] | None = None,
    index: Mapping[str, Sequence[int]] | None = None,
    direction: str = "denoise",
    batch_size: int | None = None,
    rules: Rules = None,
    strict: bool = False,
) -> AttributionResult:
    """RelP estimates: ``(a_source - a_base) . relevance-gradient`` for every cell of ``sites``.

    Source: Rezaei Jafari, Eberle, Khakzar & Nanda 2025, "RelP: Faithful and Efficient Circuit Discovery via
    Relevance Patching" (arXiv 2508.21258); code ``FarnoushRJ/RelP`` at commit aa0e228 (a TransformerLens fork).
    Differences: the rules are placed from the architecture through the hook engine (no fork); by default LN,
    Identity and Half all act, while the authors' published usage leaves Identity inactive
    (``rules="published"``).

    Relevance patching (Jafari et al. 2025): attribution patching whose backward pass follows LRP rules.

    Every call checks itself: where each rule went (``extra["rules"]``) and the relevance conservation error of
    those rules on the call's first input (``extra["conservation"]``: all rules + AH-rule, no biases; see
    :mod:`patching.relp_check`), both in ``summary()``. An error above the tolerance of the model's dtype warns
    (:class:`patching.relp_check.ConservationWarning`; raises :class:`RuleError` with ``strict=True``) when the
    paper's rules were all asked for. A model on which no rule can be placed raises :class:`RuleError` unless
    ``rules=()`` when relevance is not conserved there (a GRU: its gates run inside one kernel), and warns
    (:class:`patching.relp_check.RuleWarning`) when it is (an attention-only model without norms: the paper's
    default rules have nothing to do and RelP is AtP).

    Where it helps: on whole components (residual stream, attention and MLP outputs, heads) RelP tracks
    activation patching far better than AtP on trained models (smollm2-135m IOI: residual 0.93 vs 0.65).
    Single neurons are small patches, where the plain gradient is nearly exact and the rules move away from
    it (mlp_post: AtP 0.998, RelP 0.72): compare with :func:`patching.attribution_patching` there
    (``benchmarks/results/faithfulness*.md``).

    Parameters
    ----------
    {shared_parameters}
    rules : None, str, Sequence[str | Rule] or Mapping[str, bool]
        ``None`` (the paper's defaults LN, Identity and Half wherever they apply), a preset name of
        :data:`RULE_PRESETS` (``"published"``: the rules active in the authors' published usage, LN and Half
        without Identity), a list of rule names or :class:`Rule` objects (each must apply somewhere), a mapping
        switching rules on/off, e.g. ``{"attention": True}``, or ``()`` for no rules at all (RelP = AtP, asked
        for explicitly).
    strict : bool
        Raise instead of warn when relevance is not conserved.

    Returns
    -------
    AttributionResult
        ``method="relp"``, with ``extra["rules"]`` = ``{rule: [sites]}``, ``extra["conservation"]`` and
        ``extra["report"]`` (the text ``summary()`` shows).
    """
    plan_sites(model, sites, by=by, layers=layers, index=index)  # a site the model lacks is the first error
    chosen, asked = resolve_rules(_preset(rules))
    ruleset = compile_rules(model, chosen, asked)
    clean_t, corrupted_t = prepare_pair(model, clean, corrupted)
    conservation = check_conservation(model, first_sample(model, corrupted_t if direction == "denoise" else clean_t),
                                      chosen)
    none_asked = rules is not None and not isinstance(rules, Mapping) and not chosen
    why = None if none_asked else nothing_placed(model, ruleset.applied)
    if why and not conservation.get("conserved", False):  # non-linearities no rule reaches: RelP would be AtP
        raise RuleError(why)
    if why:  # nothing for the rules to do (no norms, no smooth activations): RelP is AtP here, and correct
        warnings.warn(why.replace("would be exactly AtP", "is exactly AtP on it (relevance is conserved without "
                                  "rules)"), RuleWarning, stacklevel=2)
    if set(DEFAULT_RULES) <= {r.name for r in chosen}:
        warn_or_raise(conservation, ruleset.applied, strict, RuleError)
    extra = {"rules": ruleset.applied, "conservation": conservation, "report": report(ruleset.applied, conservation)}
    return gradient_attribution(model, clean_t, corrupted_t, metric, sites, by=by, layers=layers, index=index,
                                direction=direction, method="relp", context=lambda: ruleset.installed(model),
                                extra=extra, batch_size=batch_size)


@contextlib.contextmanager
def relp_rules(model: nn.Module, rules: Rules = None) -> Iterator[dict[str, list[str]]]:
    """Install RelP's rules while the block runs; yields ``{rule: [sites where it applies]}``.

    Source: Rezaei Jafari, Eberle, Khakzar & Nanda 2025, "RelP: Faithful and Efficient Circuit Discovery via
    Relevance Patching" (arXiv 2508.21258); code ``FarnoushRJ/RelP`` at commit aa0e228. Differences: as
    :func:`relevance_patching`.

    Forward values stay bit-identical; gradients become LRP relevance coefficients.

    Parameters
    ----------
    model : torch.nn.Module
        A ``TransformerBridge`` or any ``nn.Module``.
    rules : str, Sequence[str or Rule] or Mapping[str, bool], optional
        A preset name of :data:`RULE_PRESETS` (``"published"``), or rules as for
        :func:`patching.rules.resolve_rules` (default: ``ln``, ``identity``, ``half`` wherever they apply).
    """
    chosen, strict = resolve_rules(_preset(rules))
    with compile_rules(model, chosen, strict).installed(model) as applied:
        yield applied
