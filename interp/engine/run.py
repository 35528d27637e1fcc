"""The engine's verbs: run a model with hooks, record sites, take gradients at sites.

>>> from interp import engine
>>> rec = engine.record(model, tokens, ["blocks.0.hook_resid_post"], stop=True)        # doctest: +SKIP
>>> grads = engine.gradients(model, tokens, ["blocks.0.hook_resid_post"], metric)       # doctest: +SKIP
>>> with engine.hooked(model, [engine.Hook("blocks.0.attn.hook_z", lambda z: z * 0)]):  # doctest: +SKIP
...     logits = model(tokens)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..checks import check_metric_value
from ..errors import DimensionError, InputTypeError, SiteError
from .hooks import Hook, Phase, StopForward, hooked
from .inputs import forward

__all__ = ["run", "record", "gradients", "edits_reach", "Recording", "Gradients", "scalar"]


def run(model: nn.Module, inputs: Any, hooks: Sequence[Hook] = (), *, mask: torch.Tensor | None = None,
        stop_ok: bool = False, **kwargs: Any) -> Any:
    """Forward ``inputs`` with ``hooks`` installed; returns the output tensor (None if a hook stopped it).

    Parameters
    ----------
    model : torch.nn.Module
        A ``TransformerBridge`` (hook names) or any ``nn.Module`` (module paths).
    inputs : Any
        The model's inputs (moved to its device).
    hooks : Sequence[Hook]
        Hooks installed for this pass only.
    mask : torch.Tensor, optional
        ``(batch, pos)`` padding mask, passed to a bridge as ``attention_mask``.
    stop_ok : bool
        Return None when a hook ends the pass early (:class:`StopForward`) instead of raising.
    **kwargs
        Passed to the model's forward.
    """
    with hooked(model, hooks):
        try:
            return forward(model, inputs, mask, **kwargs)
        except StopForward:
            if stop_ok:
                return None
            raise


@dataclass
class Recording:
    """What :func:`record` returns: the model output (None when the pass stopped early) and the sites' values.

    Parameters
    ----------
    output : Any
        The output tensor (logits), or None.
    acts : dict[str, torch.Tensor]
        ``{site: value}`` of every site asked for.
    """

    output: Any
    acts: dict[str, torch.Tensor]


def record(model: nn.Module, inputs: Any, sites: Sequence[str], *, hooks: Sequence[Hook] = (),
           mask: torch.Tensor | None = None, grad: bool = False, stop: bool = False, clone: bool = False,
           **kwargs: Any) -> Recording:
    """One forward pass that keeps the value of every site (after all edits at that site).

    ``grad`` keeps the autograd graph (values are not detached); ``stop`` ends the pass as soon as every
    site has fired (the layers after the last site are not computed; the output is None); ``clone``
    copies the values (needed when a later in-place edit could change them).

    Parameters
    ----------
    model : torch.nn.Module
        A ``TransformerBridge`` (hook names) or any ``nn.Module`` (module paths).
    inputs : Any
        The model's inputs.
    sites : Sequence[str]
        The sites to keep (a site that never runs is a :class:`SiteError`).
    hooks : Sequence[Hook]
        Other hooks (edits) installed for this pass.
    mask : torch.Tensor, optional
        ``(batch, pos)`` padding mask.
    grad : bool
        Keep the autograd graph (values are not detached).
    stop : bool
        End the pass once every site has fired (the output is then None).
    clone : bool
        Copy the values (a later in-place edit cannot change them).
    **kwargs
        Passed to the model's forward.
    """
    acts: dict[str, torch.Tensor] = {}
    wanted = list(sites)

    def keeper(site: str) -> Callable[[torch.Tensor], None]:
        def keep(act: torch.Tensor) -> None:
            value = act if grad else act.detach()
            acts[site] = value.clone() if clone else value
            if stop and len(acts) == len(wanted):
                raise StopForward
        return keep

    context = contextlib.nullcontext() if grad else torch.no_grad()
    with context:
        out = run(model, inputs, [*hooks, *(Hook(s, keeper(s), Phase.READ) for s in wanted)], mask=mask,
                  stop_ok=stop, **kwargs)
    missing = [s for s in wanted if s not in acts]
    if missing:
        raise SiteError(f"sites {missing} did not run in the forward pass; pick sites on the computation path")
    return Recording(out, acts)


@dataclass
class Gradients:
    """What :func:`gradients` returns: the metric's value, the output, and each site's value and gradient.

    Parameters
    ----------
    value : torch.Tensor
        The metric, a 0-d tensor (detached).
    output : Any
        The model output.
    acts, grads : dict[str, torch.Tensor]
        ``{site: value}`` and ``{site: d metric / d value}`` (zeros where the metric does not depend on it).
    """

    value: torch.Tensor
    output: Any
    acts: dict[str, torch.Tensor]
    grads: dict[str, torch.Tensor]


def scalar(value: Any, metric: Any = None) -> torch.Tensor:
    """``value`` as a 0-d tensor; :class:`InputTypeError`/:class:`DimensionError` unless it is one number.

    Parameters
    ----------
    value : Any
        What the metric returned.
    metric : Any, optional
        The metric, named in the error message.
    """
    name = getattr(metric, "name", getattr(metric, "__name__", "metric"))
    if not isinstance(value, torch.Tensor):
        kind = type(value).__name__
        raise InputTypeError(f"{name} must return a scalar torch tensor so that gradients can flow, got a {kind} "
                             "(e.g. return logits[:, -1, token].mean())")
    if value.numel() != 1:
        raise DimensionError(f"{name} must return a scalar (one number for the batch), got shape "
                             f"{tuple(value.shape)}; reduce it, e.g. with .mean()")
    return value.reshape(())


def gradients(model: nn.Module, inputs: Any, sites: Sequence[str], metric: Callable[[Any], torch.Tensor], *,
              hooks: Sequence[Hook] = (), mask: torch.Tensor | None = None, **kwargs: Any) -> Gradients:
    """Forward once, backward ``metric`` once; the value and gradient of ``metric`` at every site.

    Gradients are taken with respect to zero offsets added at each site (after the other edits there),
    so they exist even when the model's parameters are frozen, and they reflect any rules in ``hooks``.

    Parameters
    ----------
    model : torch.nn.Module
        A ``TransformerBridge`` (hook names) or any ``nn.Module`` (module paths).
    inputs : Any
        The model's inputs.
    sites : Sequence[str]
        The sites whose values and gradients are returned.
    metric : Callable
        ``metric(output) -> scalar tensor``.
    hooks : Sequence[Hook]
        Other hooks (edits, backward rules) installed for this pass.
    mask : torch.Tensor, optional
        ``(batch, pos)`` padding mask.
    **kwargs
        Passed to the model's forward.
    """
    acts: dict[str, torch.Tensor] = {}
    offsets: dict[str, torch.Tensor] = {}

    def tap(site: str) -> Callable[[torch.Tensor], torch.Tensor]:
        def add(act: torch.Tensor) -> torch.Tensor:
            acts[site] = act.detach().clone()
            offsets[site] = torch.zeros_like(act, requires_grad=True)
            return act + offsets[site]
        return add

    wanted = list(sites)
    with torch.enable_grad():
        out = run(model, inputs, [*hooks, *(Hook(s, tap(s), Phase.EDIT) for s in wanted)], mask=mask, **kwargs)
        value = check_metric_value(scalar(metric(out), metric), metric, out)
        missing = [s for s in wanted if s not in offsets]
        if missing:
            raise SiteError(f"sites {missing} did not run in the forward pass; pick sites on the computation path")
        grads = torch.autograd.grad(value, [offsets[s] for s in wanted], allow_unused=True)
    return Gradients(value.detach(), out, acts,
                     {s: (g if g is not None else torch.zeros_like(acts[s])) for s, g in zip(wanted, grads)})


def edits_reach(model: nn.Module, site: str, inputs: Any) -> bool:
    """Whether editing ``site`` changes the model's output on ``inputs``.

    Some TransformerLens bridges expose hook points that only observe (BERT's ``attn.hook_pattern``: the
    wrapped module computes attention itself); an edit there would silently do nothing.

    Parameters
    ----------
    model : torch.nn.Module
        The model.
    site : str
        The site tested (its value is set to 1 everywhere).
    inputs : Any
        Inputs to run twice (plain and edited).
    """
    with torch.no_grad():
        plain = run(model, inputs)
        edited = run(model, inputs, [Hook(site, lambda act: act * 0 + 1.0)])
    return not torch.equal(plain, edited)
