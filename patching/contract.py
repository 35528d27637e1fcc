"""The attribution contract, declared once and checked: every attribution method takes the same leading
parameters, in the same order, with the same defaults, and returns :class:`patching.AttributionResult`.

:func:`attribution_method` registers a method in :data:`METHODS` after checking its signature against
:func:`_contract` (a mismatch is a :class:`ContractError` when the module is imported, so a method cannot
drift from the others), and writes the shared parameters into its docstring where it says
``{shared_parameters}``. In the manner of Captum's ``Attribution`` base class, the shared parameters are
documented here once:

>>> import patching
>>> sorted(patching.METHODS)
['activation', 'atp', 'ig', 'relp']
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from interp.errors import InterpError

__all__ = ["METHODS", "ContractError", "attribution_method", "check_contract", "SHARED_PARAMETERS"]

F = TypeVar("F", bound=Callable[..., Any])

#: Every registered attribution method, by short name (``"activation"``, ``"atp"``, ``"relp"``, ``"ig"`` ...).
METHODS: dict[str, Callable[..., Any]] = {}

#: The shared parameters in numpydoc form; a method's docstring places them with ``{shared_parameters}``.
SHARED_PARAMETERS = """\
model : torch.nn.Module
    A ``TransformerBridge`` (site kinds or hook names) or any ``nn.Module`` (module paths).
clean, corrupted : Any
    Inputs of equal shape: token tensors ``[batch, pos]``, texts of equal token length, or model inputs.
metric : Callable[[torch.Tensor], torch.Tensor]
    ``metric(logits) -> scalar`` (see :mod:`patching.metrics`); a mean over the batch, so that batches
    can be combined.
sites : str or Sequence[str], optional
    Site kinds (``"resid_pre"``, ``"attn_out"``, ``"mlp_out"``, ``"heads"``, ``"mlp_pre"``,
    ``"mlp_post"``, ``"q"``/``"k"``/``"v"``, ``"pattern"`` ...) and/or hook names / module paths;
    default: every one of ``resid_pre, attn_out, mlp_out, heads`` the model has.
by : Sequence[str] or Mapping[str, Sequence[str]], optional
    Swept axes after ``layer``/``site``: ``("pos",)``, ``("head",)``, ``("pos", "head")``,
    ``("neuron",)``, ``("pos", "neuron")``, ``("unit",)`` (conv channels); ``()`` treats whole layers.
    A mapping gives them per site.
layers : Sequence[int], optional
    Layers to cover (default all).
index : Mapping[str, Sequence[int]], optional
    Restrict an axis to some indices, e.g. ``{"neuron": [3, 17], "pos": [-1]}``.
direction : {"denoise", "noise"}
    ``"denoise"`` patches (or linearises towards) clean activations in the corrupted run; ``"noise"``
    corrupted activations in the clean run.
batch_size : int, optional
    Prompts per batch (default all at once). Under ``torchrun`` the batches are shared out among the
    ranks and gathered, so every rank returns the same result."""


class ContractError(InterpError, TypeError):
    """An attribution method's signature breaks the shared contract."""


def _contract(model: Any, clean: Any, corrupted: Any, metric: Callable[[Any], Any],
              sites: str | Sequence[str] | None = None, *, by: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
              layers: Sequence[int] | None = None, index: Mapping[str, Sequence[int]] | None = None,
              direction: str = "denoise", batch_size: int | None = None) -> Any:
    """The shared signature (never called)."""


CONTRACT = inspect.signature(_contract)


def check_contract(fn: Callable[..., Any]) -> None:
    """Raise :class:`ContractError` unless ``fn`` takes the shared parameters as :data:`CONTRACT` declares them.

    The positional parameters must be exactly ``model, clean, corrupted, metric, sites``; every shared
    keyword-only parameter must be there with the same default; a method's own parameters are keyword-only.

    Parameters
    ----------
    fn : Callable
        An attribution method.
    """
    name = getattr(fn, "__qualname__", repr(fn))
    params = inspect.signature(fn).parameters
    shared = CONTRACT.parameters
    positional = [p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    want = [p for p in shared.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
    if [p.name for p in positional] != [p.name for p in want]:
        raise ContractError(f"{name}: positional parameters {[p.name for p in positional]}; the attribution "
                            f"contract is {[p.name for p in want]} (its own parameters go after '*')")
    for p in shared.values():
        mine = params.get(p.name)
        if mine is None:
            raise ContractError(f"{name} lacks the shared parameter {p.name!r}")
        if mine.kind is not p.kind or mine.default != p.default:
            raise ContractError(f"{name}: parameter {p.name!r} is {mine.kind.description} with default "
                                f"{mine.default!r}; the contract has {p.kind.description} with default {p.default!r}")
    loose = [p.name for p in params.values() if p.name not in shared and p.kind is not p.KEYWORD_ONLY]
    if loose:
        raise ContractError(f"{name}: its own parameters {loose} must be keyword-only")


def attribution_method(name: str) -> Callable[[F], F]:
    """Register an attribution method under ``name`` in :data:`METHODS`, checking it keeps the contract.

    Parameters
    ----------
    name : str
        The short name (``patching.METHODS[name]``; ``faithfulness(methods=[...])`` and the CLI use it).

    Returns
    -------
    Callable
        A decorator that checks the method (:func:`check_contract`), fills ``{shared_parameters}`` in its
        docstring with :data:`SHARED_PARAMETERS`, registers it and returns it unchanged.
    """
    def register(fn: F) -> F:
        check_contract(fn)
        if name in METHODS and METHODS[name] is not fn:
            raise ContractError(f"two attribution methods are registered as {name!r}: {METHODS[name].__qualname__} "
                                f"and {fn.__qualname__}")
        if fn.__doc__ and "{shared_parameters}" in fn.__doc__:
            fn.__doc__ = fill_shared(fn.__doc__)
        METHODS[name] = fn
        return fn

    return register


def fill_shared(doc: str) -> str:
    """``doc`` with its ``{shared_parameters}`` line replaced by :data:`SHARED_PARAMETERS`, at that line's indent.

    Parameters
    ----------
    doc : str
        A docstring with a ``{shared_parameters}`` line.
    """
    out = []
    for line in doc.splitlines():
        if line.strip() == "{shared_parameters}":
            indent = line[: len(line) - len(line.lstrip())]
            out += [indent + x if x else x for x in SHARED_PARAMETERS.splitlines()]
        else:
            out.append(line)
    return "\n".join(out)
