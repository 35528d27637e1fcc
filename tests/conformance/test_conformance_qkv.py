"""Values, not shapes, of AtP and RelP at the per-head query, key and value hooks (issue 24: these were checked
for shape only) on every language model of the hand-written table.

* AtP at ``q``/``k``/``v`` equals grad(metric) . (clean - corrupted) from plain torch autograd through
  TransformerLens hooks (:func:`.checks.check_atp`), per layer and head.
* RelP with its LN rule alone equals the same autograd with every normalisation scale detached (the LN rule of
  Ali et al. 2022 that RelP, Jafari et al. 2025, uses), and differs from AtP there: the rule is placed and acts.

The generated families run the AtP check at q/k/v too (``INTERP_CONFORMANCE=all``: ``atp``).
"""

from __future__ import annotations

import warnings

import pytest

import patching

from .checks import check_atp
from .conftest import make_example

QKV = ("q", "k", "v")
#: TransformerLens's NormalizationBridge raises AttributeError ('no attribute weight') when a hook is on the
#: hook_scale of a LayerNorm without weights (OLMo's non-parametric norm), so the reference cannot be computed
NO_SCALE_HOOK = {"olmo"}


def test_atp_at_qkv_equals_autograd(lm):
    assert check_atp(lm, QKV) == "3 kinds"


def test_relp_ln_rule_at_qkv_equals_autograd_with_frozen_scales(lm):
    if lm.info.name in NO_SCALE_HOOK:
        pytest.skip(f"{lm.info.name}: TransformerLens cannot hook hook_scale of its weightless LayerNorm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the LN rule alone does not conserve relevance (it warns so)
        assert check_atp(lm, QKV, rules=["ln"]) == "3 kinds"
        ex = make_example(lm)
        relp = patching.relevance_patching(lm.model, ex.clean, ex.corrupted, ex.metric, list(QKV), rules=["ln"])
    atp = patching.attribution_patching(lm.model, ex.clean, ex.corrupted, ex.metric, list(QKV))
    gap = max(float((relp[k].effect - atp[k].effect).abs().max()) for k in QKV)
    assert gap > 1e-3, "the LN rule changed nothing at q/k/v: the reference would not tell it from AtP"
