"""Attribution patching (AtP): a first-order estimate of every activation patch at once.

``effect(site) ~ grad_corrupted(metric) . (a_clean - a_corrupted)`` from two forward passes and
one backward pass (Nanda 2023, "Attribution patching: activation patching at industrial scale";
Syed, Rager & Conmy 2023, "Attribution patching outperforms automated circuit discovery";
Kramar et al. 2024, AtP*). With ``rules=`` the gradient is replaced by LRP relevance (RelP, see
:mod:`patching.relp`).

>>> scores = attribution_patching(model, clean, corrupted, metric)     # doctest: +SKIP
>>> scores["mlp_out"].values.shape                                     # [layer, pos] doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from interp.errors import ConfigError, DimensionError

from . import _hooks
from .activation_patching import DEFAULT_BY, _axis_sizes
from .metrics import evaluate
from .results import PatchingResult

__all__ = ["attribution_patching", "gradients_at"]


def gradients_at(model: nn.Module, inputs: Any, sites: Sequence[str], metric: Callable[[torch.Tensor], torch.Tensor],
                 *, rules: dict[str, bool] | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Forward ``inputs`` once, backward ``metric`` once; returns (metric, activations, gradients) at ``sites``.

    Gradients are taken with respect to zero offsets added at each site, so they exist even when
    the model's parameters are frozen.
    """
    acts: dict[str, torch.Tensor] = {}
    offsets: dict[str, torch.Tensor] = {}

    def offset(site: str) -> Callable[[torch.Tensor], torch.Tensor]:
        def hook(act: torch.Tensor) -> torch.Tensor:
            acts[site] = act.detach().clone()
            offsets[site] = torch.zeros_like(act, requires_grad=True)
            return act + offsets[site]
        return hook

    ctx: Any = contextlib.nullcontext()
    if rules is not None:
        from .relp import relp_rules

        ctx = relp_rules(model, **rules)
    with torch.enable_grad(), ctx, _hooks.hooks(model, [(s, offset(s)) for s in sites]):
        out = _hooks.run(model, inputs)
        value = evaluate(metric, out)
        missing = [s for s in sites if s not in offsets]
        if missing:
            raise ConfigError(f"sites {missing} did not run in the forward pass")
        grads = torch.autograd.grad(value, [offsets[s] for s in sites], allow_unused=True)
    return value.detach(), acts, {s: (g if g is not None else torch.zeros_like(acts[s])) for s, g in zip(sites, grads)}


def _reduce(score: torch.Tensor, keep_axes: Sequence[int]) -> torch.Tensor:
    """Sum over every axis except ``keep_axes`` (kept in the given order)."""
    drop = [a for a in range(score.ndim) if a not in keep_axes]
    out = score.sum(dim=drop) if drop else score
    order = sorted(keep_axes)
    return out.permute([order.index(a) for a in keep_axes]) if len(keep_axes) > 1 else out


def attribution_patching(
    model: nn.Module,
    clean: Any,
    corrupted: Any,
    metric: Callable[[torch.Tensor], torch.Tensor],
    sites: str | Sequence[str] = ("resid_pre", "attn_out", "mlp_out", "z"),
    *,
    by: dict[str, Sequence[str]] | None = None,
    direction: str = "denoise",
    rules: dict[str, bool] | None = None,
) -> dict[str, PatchingResult]:
    """AtP scores for every cell of every site kind, from 2 forward passes and 1 backward pass.

    Args:
        sites: site kinds (as in :func:`patching.activation_patching`); the same cells are scored.
        by: per-kind axes, e.g. ``{"z": ("pos", "head")}`` (defaults as in activation patching).
        direction: ``"denoise"`` linearises around the corrupted run (estimates patching clean
            activations into it), ``"noise"`` around the clean run.
        rules: LRP rules for RelP (see :func:`patching.relp.relp_rules`); None = plain gradients.

    Returns:
        ``{kind: PatchingResult}`` whose ``values`` are estimated metric changes.
    """
    if direction not in {"denoise", "noise"}:
        raise ConfigError(f"direction must be 'denoise' or 'noise', got {direction!r}")
    kinds = [sites] if isinstance(sites, str) else list(sites)
    clean = _hooks.to_tokens(model, clean)
    corrupted = _hooks.to_tokens(model, corrupted)
    _hooks.check_pair(clean, corrupted)
    plan = {}
    for kind in kinds:
        canon = _hooks.canonical_kind(kind)
        if canon in plan:
            continue
        if canon == "mlp_post" and "blocks.0.mlp.hook_post" not in model.hook_dict:
            raise _hooks.SiteError(f"site kind {kind!r}: the model has no MLP (attn-only)")
        names = [_hooks.kind_hook(model, canon, layer) for layer in range(_hooks.n_layers(model))]
        plan[canon] = (names, tuple((by or {}).get(kind, (by or {}).get(canon, DEFAULT_BY[canon][1:]))))
    all_names = [n for names, _ in plan.values() for n in names]

    from .activation_patching import run_and_record

    base, other = (corrupted, clean) if direction == "denoise" else (clean, corrupted)
    other_out, other_acts = run_and_record(model, other, all_names)
    value, base_acts, grads = gradients_at(model, base, all_names, metric, rules=rules)
    other_value = float(evaluate(metric, other_out))
    clean_value, corrupted_value = (other_value, float(value)) if direction == "denoise" else (float(value), other_value)

    method = "atp" if rules is None else "relp"
    results = {}
    for kind, (names, dims) in plan.items():
        sizes = _axis_sizes(base_acts[names[0]], names[0])
        for d in dims:
            if d not in sizes:
                raise DimensionError(f"site kind {kind!r} has no {d!r} axis; valid: {sorted(sizes)}")
        keep = [sizes[d][0] for d in dims]
        rows = []
        for name in names:
            score = grads[name] * (other_acts[name] - base_acts[name])
            rows.append(_reduce(score.double(), keep))
        coords = {"layer": list(range(len(names)))}
        coords.update({d: list(range(sizes[d][1])) for d in dims})
        results[kind] = PatchingResult(values=torch.stack(rows).cpu(), dims=("layer",) + dims, coords=coords, site=kind,
                                       method=method, metric=getattr(metric, "name", "metric"), clean_value=clean_value,
                                       corrupted_value=corrupted_value, direction=direction, n_forward=2, n_backward=1,
                                       extra={"rules": rules} if rules else {})
    return results
