"""Every family TransformerLens bridges, built tiny offline, through every check of :mod:`.checks`.

The table is generated (:func:`.families.families`: TransformerLens's ``SUPPORTED_ARCHITECTURES``), the
expectations come from the model (:mod:`.checks`). A check passes when the library is right or refuses by name
(an ``InterpError``); a wrong number or a crash fails it.

What runs by default (``make test``): :data:`DEFAULT_CHECKS` on every family (about a minute on 2 cores). With
``INTERP_CONFORMANCE=all`` the two expensive checks run too (patching sweeps against ``transformer_lens.patching``,
AtP against autograd: about 2 more minutes). The counts are in
tests/conformance/README.md (``python -m tests.conformance.report``).

Cases that fail today are ``xfail(strict=True)`` in :data:`KNOWN`, each with its reason: a defect another change
of issue 18 fixes (engine18, rules18), or one this suite found that is not fixed yet. They flip to XPASS (and fail
the run) when the fix lands, so the mark is removed then. RelP either conserves relevance or refuses by name on
every family (relp18): state-space / recurrent mixers and MoE expert layouts it cannot rule are refused; Gemma-4's
gain-free value norm and per-layer-input gate take the LN and Identity rules (gemma18).
"""

from __future__ import annotations

import functools
import os
import warnings

import pytest
import transformers

from interp.errors import InterpError

from .checks import CHECKS, NotApplicable
from .families import build, built_families, families

ALL = os.environ.get("INTERP_CONFORMANCE", "").lower() == "all"
DEFAULT_CHECKS = ("boots", "layouts", "capture", "relp", "vocab")


#: (family, check) -> reason: fails on main after the engine18b and relp18 merges (2026-12-07, transformers 5.23,
#: transformer_lens 4.3); the marks of the cases those merges fixed are gone (the last, Gemma-4's RelP: gemma18)
KNOWN: dict[tuple[str, str], str] = {}


@functools.cache
def _built(name: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return build(name), None
        except Exception as exc:  # noqa: BLE001 - a family that does not build or boot is reported, not dropped
            return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"


def _cases() -> list:
    checks = list(CHECKS) if ALL else list(DEFAULT_CHECKS)
    cases = []
    for name in built_families():
        for check in checks:
            marks = [pytest.mark.xfail(strict=True, reason=KNOWN[name, check])] if (name, check) in KNOWN else []
            cases.append(pytest.param(name, check, id=f"{name}-{check}", marks=marks))
    return cases


@pytest.mark.parametrize(("name", "check"), _cases())
def test_family(name, check, one_thread):
    b, why = _built(name)
    if b is None:
        pytest.skip(f"{name} does not build or boot offline: {why}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            CHECKS[check](b)
        except NotApplicable as exc:
            pytest.skip(str(exc))
        except InterpError:
            pass  # refused by name: a right answer (counted as 'refused' in the report)


def test_every_adapter_is_a_family_or_has_a_reason():
    """Every adapter TransformerLens registers is in the table; one not built says why (not silently dropped)."""
    from transformer_lens.factories.architecture_adapter_factory import SUPPORTED_ARCHITECTURES

    table = families()
    assert {a for f in table for a in f.aliases} == set(SUPPORTED_ARCHITECTURES)
    for f in table:
        assert f.refused or getattr(transformers, f.architecture, None) is not None, f
    assert len(built_families()) >= 60  # decoders, encoders and MoE families of transformers 5


def test_pattern_reach_is_remembered_per_model_not_per_address():
    """RelP's 'do pattern edits reach' answer was cached by id(model): a new model at a freed model's address got
    the old answer (OPT after BERT: relevance off by 3%). It is cached weakly by the model itself now."""
    import gc

    from patching import rules

    bert, _ = _built("bert")
    assert rules._pattern_edits_reach(bert.model) is False
    fresh = build("bert")  # a model that is collected: its answer must go with it
    assert rules._pattern_edits_reach(fresh.model) is False and fresh.model in rules._REACH
    n = len(rules._REACH)
    del fresh
    gc.collect()
    assert len(rules._REACH) == n - 1
