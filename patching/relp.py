"""Relevance patching (RelP): attribution patching with LRP propagation rules.

After Rezaei Jafari, Eberle, Khakzar & Nanda 2025, "RelP: Faithful and Efficient Circuit
Discovery via Relevance Patching" (arXiv 2508.21258). RelP replaces the local gradient of
attribution patching with LRP relevance coefficients. As in the paper's code, the rules are
*forward-pass edits that leave every value unchanged and only change the backward pass*; here
they are installed as TransformerLens hooks, so no fork of the model is needed:

* **LN-rule** (Ali et al. 2022): LayerNorm/RMSNorm scale treated as a constant
  (``x_centered / scale.detach() * w + b``).
* **Identity-rule** (Jafari et al. 2024): an elementwise activation ``phi`` passes gradient
  ``phi(x)/x`` (``x * (phi(x)/x).detach()``, x stabilised by 1e-6).
* **Half-rule** (gated MLPs such as Llama's ``act(gate) * up``): the product's relevance is
  split equally between its two factors (gradient of ``prod/2 + (prod/2).detach()``).
* **AH-rule** (Ali et al. 2022, optional, off by default as in the paper's example): attention
  pattern detached.

Each edit returns ``value.detach() + (surrogate - surrogate.detach())``: the forward value is
bit-identical to the original and only the surrogate's gradient flows.

>>> res = relevance_patching(model, clean, corrupted, metric)          # doctest: +SKIP
>>> with relp_rules(model, attention=True):                            # doctest: +SKIP
...     loss = metric(model(tokens)); loss.backward()                  # LRP gradients
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from interp.errors import InputTypeError

from . import _hooks
from .results import PatchingResult

__all__ = ["relp_rules", "relevance_patching", "RULES", "DEFAULT_RULES"]

RULES = ("ln", "identity", "half", "attention")
DEFAULT_RULES = {"ln": True, "identity": True, "half": True, "attention": False}
EPS = 1e-6


def _stabilize(x: torch.Tensor) -> torch.Tensor:
    return x + EPS * torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


def _straight(value: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    """Exactly ``value`` in the forward pass, the gradient of ``surrogate`` in the backward pass."""
    return value.detach() + (surrogate - surrogate.detach()).to(value.dtype)


def _norm_surrogate(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    xf = x.float() if x.dtype not in (torch.float32, torch.float64) else x
    rms = bool(getattr(module, "uses_rms_norm", False))
    xc = xf if rms else xf - xf.mean(-1, keepdim=True)
    original = getattr(module, "original_component", None)
    eps = getattr(original, "eps", None) or getattr(original, "variance_epsilon", None)
    eps = float(eps) if eps is not None else float(getattr(getattr(module, "config", None), "eps", 1e-5))
    scale = (xc.pow(2).mean(-1, keepdim=True) + eps).sqrt().detach()
    out = xc / scale
    weight = getattr(module, "weight", None) if not isinstance(original, nn.Identity) else None
    if isinstance(weight, torch.Tensor):
        out = out * ((1.0 + weight) if getattr(module, "uses_weight_offset", False) else weight)
    bias = getattr(original, "bias", None)
    if isinstance(bias, torch.Tensor) and not rms:
        out = out + bias
    return out


def _rule_hooks(model: nn.Module, ln: bool, identity: bool, half: bool, attention: bool) -> list[tuple[str, Callable]]:
    names = set(model.hook_dict)
    fns: list[tuple[str, Callable]] = []
    if ln:
        for scale_hook in sorted(n for n in names if n.endswith(".hook_scale")):
            prefix = scale_hook[: -len(".hook_scale")]
            if f"{prefix}.hook_in" not in names or f"{prefix}.hook_out" not in names:
                continue
            module = model.get_submodule(prefix)
            saved: dict[str, torch.Tensor] = {}

            def keep(x: torch.Tensor, saved: dict = saved) -> None:
                saved["x"] = x

            def edit(out: torch.Tensor, saved: dict = saved, module: nn.Module = module) -> torch.Tensor:
                return _straight(out, _norm_surrogate(module, saved.pop("x")))

            fns += [(f"{prefix}.hook_in", keep), (f"{prefix}.hook_out", edit)]
    for layer in range(_hooks.n_layers(model)):
        pre, post = f"blocks.{layer}.mlp.hook_pre", f"blocks.{layer}.mlp.hook_post"
        linear = f"blocks.{layer}.mlp.hook_pre_linear"
        if pre not in names or post not in names:
            continue
        if linear in names:  # gated MLP: post = act(gate) * up
            if not (identity or half):
                continue
            act_fn = _gated_act_fn(model, layer)
            saved = {}
            fns += [(pre, lambda g, saved=saved: saved.__setitem__("g", g)),
                    (linear, lambda u, saved=saved: saved.__setitem__("u", u))]

            def gated(h: torch.Tensor, saved: dict = saved, act_fn: Callable = act_fn) -> torch.Tensor:
                g, u = saved.pop("g"), saved.pop("u")
                a = act_fn(g)
                a_sur = g * (a / _stabilize(g)).detach() if identity else a
                prod = a_sur * u
                return _straight(h, 0.5 * prod if half else prod)

            fns.append((post, gated))
        elif identity:
            saved = {}
            fns.append((pre, lambda x, saved=saved: saved.__setitem__("x", x)))

            def ident(y: torch.Tensor, saved: dict = saved) -> torch.Tensor:
                x = saved.pop("x")
                return _straight(y, x * (y / _stabilize(x)).detach())

            fns.append((post, ident))
    if attention:
        fns += [(n, lambda p: p.detach()) for n in sorted(names) if n.endswith(".attn.hook_pattern")]
    return fns


def _gated_act_fn(model: nn.Module, layer: int) -> Callable[[torch.Tensor], torch.Tensor]:
    mlp = model.blocks[layer].mlp
    fn = getattr(getattr(mlp, "original_component", None), "act_fn", None)
    if callable(fn):
        return fn
    from transformer_lens.model_bridge.generalized_components.gated_mlp import resolve_activation_fn

    return resolve_activation_fn(model.cfg)


@contextlib.contextmanager
def relp_rules(model: nn.Module, *, ln: bool = True, identity: bool = True, half: bool = True,
               attention: bool = False) -> Iterator[nn.Module]:
    """Install the LRP rules of RelP on a ``TransformerBridge`` while the block runs.

    Forward values stay bit-identical; gradients become LRP relevance coefficients
    (gradient x input = LRP relevance).
    """
    if not _hooks.is_bridge(model):
        raise InputTypeError("RelP rules are defined for TransformerBridge models (they hook LayerNorm, MLP and "
                             "attention hook points)")
    with _hooks.hooks(model, _rule_hooks(model, ln, identity, half, attention)):
        yield model


def relevance_patching(model: nn.Module, clean: Any, corrupted: Any, metric: Callable[[torch.Tensor], torch.Tensor],
                       sites: str | Sequence[str] = ("resid_pre", "attn_out", "mlp_out", "z"), *,
                       rules: dict[str, bool] | None = None, **kwargs: Any) -> dict[str, PatchingResult]:
    """RelP scores: ``(a_clean - a_corrupted) . relevance-gradient`` at every site kind.

    Same cost as attribution patching: two forward passes and one backward pass.
    ``rules`` switches rules on/off, e.g. ``{"attention": True}`` (defaults: LN, Identity, Half on).
    """
    from .attribution import attribution_patching

    chosen = {**DEFAULT_RULES, **(rules or {})}
    unknown = set(chosen) - set(RULES)
    if unknown:
        raise _hooks.config_error_unknown(sorted(unknown)[0], RULES, "RelP rules")
    return attribution_patching(model, clean, corrupted, metric, sites, rules=chosen, **kwargs)
