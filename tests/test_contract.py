"""The attribution contract is declared once (patching.contract) and checked on every registered method."""

from __future__ import annotations

import inspect

import pytest

import patching
from patching.contract import CONTRACT, ContractError, attribution_method, check_contract


def test_every_registered_method_keeps_the_contract_and_documents_it():
    assert set(patching.METHODS) >= {"activation", "atp", "relp", "ig"}
    for name, fn in patching.METHODS.items():
        check_contract(fn)
        params = inspect.signature(fn).parameters
        assert list(params)[:5] == ["model", "clean", "corrupted", "metric", "sites"]
        doc = inspect.getdoc(fn)
        assert "{shared_parameters}" not in doc and "\nParameters\n----------\n" in doc, name
        for shared in CONTRACT.parameters:
            assert shared in doc, (name, shared)


def _good(model, clean, corrupted, metric, sites=None, *, by=None, layers=None, index=None, direction="denoise",
          batch_size=None, steps=5):
    """A method.

    Parameters
    ----------
    {shared_parameters}
    steps : int
        Its own.
    """


def _extra_positional(model, clean, corrupted, metric, sites=None, steps=5, *, by=None, layers=None, index=None,
                      direction="denoise", batch_size=None):
    pass


def _other_default(model, clean, corrupted, metric, sites=None, *, by=None, layers=None, index=None,
                   direction="noise", batch_size=None):
    pass


def _missing(model, clean, corrupted, metric, sites=None, *, by=None, layers=None, index=None, direction="denoise"):
    pass


@pytest.mark.parametrize("fn, match", [(_extra_positional, "positional"), (_other_default, "direction"),
                                       (_missing, "batch_size")])
def test_a_method_that_drifts_from_the_contract_is_refused(fn, match):
    with pytest.raises(ContractError, match=match):
        attribution_method("drift")(fn)
    assert "drift" not in patching.METHODS


def test_registration_fills_the_shared_parameters_and_refuses_a_second_method_under_one_name():
    try:
        fn = attribution_method("good")(_good)
        assert patching.METHODS["good"] is fn and "batch_size : int, optional" in fn.__doc__
        with pytest.raises(ContractError, match="two attribution methods"):
            attribution_method("good")(_same_signature)
    finally:
        patching.METHODS.pop("good", None)


def _same_signature(model, clean, corrupted, metric, sites=None, *, by=None, layers=None, index=None,
                    direction="denoise", batch_size=None):
    pass
