"""Every family TransformerLens bridges, built tiny offline, through every check of :mod:`.checks`.

The table is generated (:func:`.families.families`: TransformerLens's ``SUPPORTED_ARCHITECTURES``), the
expectations come from the model (:mod:`.checks`). A check passes when the library is right or refuses by name
(an ``InterpError``); a wrong number or a crash fails it.

What runs by default (``make test``): the cheap checks (:data:`DEFAULT_CHECKS`) on every family. With
``INTERP_CONFORMANCE=all`` every check runs on every family (the long tail: patching sweeps against
``transformer_lens.patching``, AtP against autograd, RelP conservation, capture of every hook). The counts are in
tests/conformance/README.md (``python -m tests.conformance.report``).

Cases that fail today because of a defect another change of issue 18 fixes are ``xfail(strict=True)`` in
:data:`KNOWN`: they flip to XPASS (and fail the run) when the fix lands, so the mark is removed then.
"""

from __future__ import annotations

import functools
import os
import warnings

import pytest
import transformers

from interp.errors import InterpError

from .checks import CHECKS
from .families import build, built_families, families

ALL = os.environ.get("INTERP_CONFORMANCE", "").lower() == "all"
DEFAULT_CHECKS = ("boots", "layouts", "vocab")

_MLA = "issue 18: multi-head latent attention (DeepSeek-V2 style) q/k/v/heads layouts, fixed by engine18"
_GQA = "issue 18: GQA k/v head axis, fixed by engine18"
_MOE_LAYERS = "issue 18: per-layer MoE detection, fixed by rules18"
_ENCDEC = "issue 18: encoder-decoder (T5/BART) refusal or site kinds, fixed by rules18"
_IDENTITY = "issue 18: RelP Identity rule found by what modules compute (GELUActivation etc.), fixed by rules18"

#: (family, check) -> reason: fails today because of a defect fixed by another helper of issue 18
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
