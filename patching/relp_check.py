"""The conservation check that every RelP call runs: did the rules reach every non-linearity?

With the rules on (plus the AH-rule, which turns the attention pattern into a constant) and the biases at zero,
each layer is linear in its input given the detached coefficients, so the relevance at the model's input,
``sum(x * dF/dx)``, equals any linear read-out ``F`` of the output (Ali et al. 2022; Rezaei Jafari et al. 2025).
A shortfall names a non-linearity no rule covers -- where RelP quietly degrades to AtP. :func:`check_conservation`
measures it on one input of the call with ``F`` a fixed random projection of the output, and compares the error
with a tolerance that follows the model's floating-point precision (:func:`tolerance`).

Where the relevance is measured: a bridge's first residual stream (``blocks.0.hook_resid_pre``); a plain module's
input when it is floating point, else the outputs of its ``nn.Embedding`` modules (token ids).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from interp import engine
from interp.errors import InterpError

from .conservation import _dtype, _without_biases, tolerance
from .relp_probe import opaque_modules as engine_opaque
from .rules import AttentionRule, Rule, RuleError, compile_rules

__all__ = ["RuleWarning", "ConservationWarning", "check_conservation", "report", "warn_or_raise", "first_sample",
           "nothing_placed"]


class RuleWarning(UserWarning):
    """No RelP rule applies on this model, and relevance is conserved without them: RelP is AtP here."""


class ConservationWarning(UserWarning):
    """RelP's relevance is not conserved beyond the model's precision: some non-linearity took no rule."""


@contextlib.contextmanager
def _without_constants(model: nn.Module) -> Iterator[None]:
    """A plain module's learned constants at zero while the block runs: parameters not named ``weight`` with a
    leading axis of 1 that broadcasts over the batch (a ViT's CLS token ``(1, 1, d)`` and position embedding
    ``(1, T, d)``). Like biases, they carry relevance that does not come from the input. Weights under other names
    (fused experts' ``gate_up_proj``, ``(E, 2F, D)``) stay."""
    if engine.is_bridge(model):
        yield
        return
    saved = []
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if not (leaf == "weight" or leaf.endswith("_weight")) and p.ndim >= 2 and p.shape[0] == 1:
                saved.append((p, p.detach().clone()))
                p.zero_()
    try:
        yield
    finally:
        with torch.no_grad():
            for p, value in reversed(saved):
                p.copy_(value)


def _readout(out: Any) -> Callable[[Any], torch.Tensor]:
    """A fixed random linear read-out of the model output (the conservation metric)."""
    out = engine.output_tensor(out)
    w = torch.randn(out.shape[1:], generator=torch.Generator().manual_seed(0)).to(out.device)
    return lambda o: (engine.output_tensor(o).double() * w.double()).sum()


def _measure(model: nn.Module, sample: Any, rules: list[Rule]) -> tuple[float, float, str]:
    ruleset = compile_rules(model, rules)
    with torch.no_grad():
        metric = _readout(engine.run(model, sample))
    if engine.is_bridge(model):
        sites = ["blocks.0.hook_resid_pre"]
    elif isinstance(sample, torch.Tensor) and sample.is_floating_point():
        x = sample.detach().clone().requires_grad_(True)
        with ruleset.installed(model), torch.enable_grad():
            value = metric(engine.run(model, x))
            (grad,) = torch.autograd.grad(value, [x])
        return float(value.detach()), float((grad.double() * x.detach().double()).sum()), "input"
    else:
        sites = [path for path, m in model.named_modules() if isinstance(m, nn.Embedding)]
    with ruleset.installed(model):
        got = engine.gradients(model, sample, sites, metric)
    relevance = sum(float((got.grads[s].double() * got.acts[s].double()).sum()) for s in sites)
    return float(got.value), relevance, ", ".join(sites)


def check_conservation(model: nn.Module, sample: Any, rules: list[Rule]) -> dict[str, Any]:
    """``{"relative_error", "tolerance", "site", "dtype", "conserved"}`` for the rules of a RelP call on ``sample``
    (the AH-rule added where the call leaves it off); ``{"error": why}`` when it cannot be measured.

    Measured without the model's biases and learned constants (restored afterwards).

    Parameters
    ----------
    model : torch.nn.Module
        The model of the RelP call.
    sample : Any
        One input (:func:`first_sample`).
    rules : list of Rule
        The call's rules.
    """
    dtype = _dtype(model)
    added = not any(r.name == "attention" for r in rules)
    check = list(rules) + ([AttentionRule()] if added else [])
    try:
        with _without_biases(model), _without_constants(model):
            try:
                value, relevance, site = _measure(model, sample, check)
            except RuleError:
                if not added:
                    raise
                # the AH-rule cannot be placed (an attention RelP cannot detach): measure the call's own rules, so
                # that the softmax left unruled shows as relevance not conserved rather than as no measurement
                value, relevance, site = _measure(model, sample, list(rules))
    except (InterpError, RuntimeError, TypeError, ValueError) as exc:
        return {"error": f"conservation not measured: {type(exc).__name__}: {exc}"}
    if not math.isfinite(value) or abs(value) < 1e-12:
        return {"error": "conservation not measured: the read-out is zero or not finite without the model's biases "
                         "and learned constants"}
    error = abs(value - relevance) / max(abs(value), 1e-12)
    tol = tolerance(dtype)
    return {"relative_error": error, "tolerance": tol, "site": site, "dtype": str(dtype).replace("torch.", ""),
            "conserved": error <= tol}


def report(applied: dict[str, list[str]], conservation: dict[str, Any]) -> str:
    """Where each rule went and the conservation error, as the lines of a summary.

    Parameters
    ----------
    applied : dict[str, list of str]
        ``{rule name: sites it was placed at}``.
    conservation : dict
        What :func:`check_conservation` returned.
    """
    lines = ["rules: " + "; ".join(f"{name} at {len(sites)} site{'s' * (len(sites) != 1)}"
                                   + (f" ({sites[0]}{' ...' if len(sites) > 1 else ''})" if sites else "")
                                   for name, sites in applied.items())]
    if "error" in conservation:
        lines.append(conservation["error"])
    else:
        verdict = "conserved" if conservation["conserved"] else "NOT conserved"
        lines.append(f"relevance {verdict}: relative error {conservation['relative_error']:.2e} at "
                     f"{conservation['site']} (tolerance {conservation['tolerance']:.0e} in {conservation['dtype']}; "
                     "all rules + AH-rule, no biases)")
    return "\n".join(lines)


def warn_or_raise(conservation: dict[str, Any], applied: dict[str, list[str]], strict: bool,
                  error: type[Exception]) -> None:
    """Warn (:class:`ConservationWarning`), or raise ``error`` when ``strict``, if relevance is not conserved.

    Parameters
    ----------
    conservation : dict
        What :func:`check_conservation` returned (an unmeasured one passes).
    applied : dict[str, list of str]
        ``{rule name: sites it was placed at}``, named in the message.
    strict : bool
        Raise instead of warning.
    error : type of Exception
        The exception raised when ``strict``.
    """
    if conservation.get("conserved", True):
        return
    message = (f"RelP's relevance is not conserved on this model: relative error {conservation['relative_error']:.2e} "
               f"> {conservation['tolerance']:.0e} ({conservation['dtype']}) with the rules {sorted(applied)} placed at "
               f"{sum(map(len, applied.values()))} sites; some non-linearity takes no rule, where RelP is AtP. "
               "See result.extra['rules'] for where the rules went; patching.relevance_conservation(model, ...) "
               "measures it")
    if strict:
        raise error(message)
    warnings.warn(message, ConservationWarning, stacklevel=3)


def first_sample(model: nn.Module, inputs: Any) -> Any:
    """The first input of a call (one prompt, one image) as the model takes it.

    Parameters
    ----------
    model : torch.nn.Module
        The model.
    inputs : Any
        The call's inputs (texts, tokens, tensors, a Dataset or DataLoader).
    """
    inputs = engine.to_tokens(model, inputs)
    if isinstance(inputs, torch.Tensor):
        return inputs[:1]
    batches, _ = engine.batches(model, inputs, 1, stop=1)
    return next(iter(batches)).inputs


def nothing_placed(model: nn.Module, applied: dict[str, list[str]]) -> str | None:
    """Why no rule could be placed (None when some rule was): RelP would be exactly AtP.

    Parameters
    ----------
    model : torch.nn.Module
        The model (its opaque modules are named in the message).
    applied : dict[str, list of str]
        ``{rule name: sites it was placed at}``.
    """
    if any(applied.values()):
        return None
    opaque = engine_opaque(model)
    where = (f"; its non-linearities run inside {opaque[:3]}, fused kernels without a place for a rule" if opaque
             else "")
    return (f"no RelP rule could be placed on this {type(model).__name__} (rules {sorted(applied)}){where}, so RelP "
            "would be exactly AtP. Use patching.attribution_patching, or pass rules=() to ask for RelP without rules")
