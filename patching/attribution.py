"""Attribution patching (AtP): a first-order estimate of every activation patch at once.

``effect(cell) ~ grad_base(metric) . (a_source - a_base)`` summed over the cell, from two forward passes
and one backward pass (Nanda 2023, "Attribution patching: activation patching at industrial scale";
Syed, Rager & Conmy 2023, "Attribution patching outperforms automated circuit discovery"; Kramar et al.
2024, AtP*). :func:`patching.relevance_patching` is the same estimate with LRP relevance in place of the
gradient.

>>> res = attribution_patching(model, clean, corrupted, metric, sites=["resid_pre", "heads"])  # doctest: +SKIP
>>> res["resid_pre"].effect.shape                                          # (layer, pos)   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from interp import engine

from ._distributed import over_prompts
from ._plan import (
    axis_sizes,
    cell_coords,
    check_direction,
    check_editable,
    metric_name,
    metric_of,
    plan_sites,
    prepare_pair,
    reading,
    reduce_to_cells,
)
from .contract import attribution_method, fill_shared
from .results import AttributionResult, SiteGrid

__all__ = ["attribution_patching", "gradient_attribution"]


@attribution_method("atp")
def attribution_patching(
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
) -> AttributionResult:
    """AtP estimates of the effect of patching every cell of ``sites`` (2 forward + 1 backward pass per batch).

    Attribution patching (Nanda 2023; Kramár et al. 2024): ``(a_source - a_base) . d metric / d a`` at every
    cell. ``"denoise"`` linearises around the corrupted run (estimates patching clean activations into it),
    ``"noise"`` around the clean run.

    Parameters
    ----------
    {shared_parameters}

    Returns
    -------
    AttributionResult
        ``method="atp"``, whose ``effect`` estimates the metric change of each cell's patch.
    """
    return gradient_attribution(model, clean, corrupted, metric, sites, by=by, layers=layers, index=index,
                                direction=direction, method="atp", batch_size=batch_size)


def gradient_attribution(model: nn.Module, clean: Any, corrupted: Any, metric: Callable[[torch.Tensor], torch.Tensor],
                         sites: str | Sequence[str] | None, *, by: Any, layers: Sequence[int] | None,
                         index: Mapping[str, Sequence[int]] | None, direction: str, method: str,
                         context: Callable[[], Any] = contextlib.nullcontext, extra: dict | None = None,
                         batch_size: int | None = None) -> AttributionResult:
    """The AtP computation shared by AtP and RelP: ``context()`` (RelP's rules) shapes the backward pass.

    Parameters
    ----------
    {shared_parameters}
    method : str
        The name the result carries (``"atp"``, ``"relp"``).
    context : Callable[[], ContextManager]
        Called once per backward pass; the context it returns is active during the gradient (RelP installs
        its rules there). Default: nothing.
    extra : dict, optional
        Method details stored on the result as ``extra`` (RelP: the rules applied and the conservation check).

    Returns
    -------
    AttributionResult
        ``effect`` = gradient times (patched - original activation) per cell, batch-mean.
    """
    check_direction(direction)
    clean, corrupted = prepare_pair(model, clean, corrupted)
    plans = plan_sites(model, sites, by=by, layers=layers, index=index)
    check_editable(model, plans, clean)
    return over_prompts(lambda c, r, m, share: _estimate(model, c, r, m, plans, index, direction, method, context,
                                                         extra), clean, corrupted, metric, batch_size)


gradient_attribution.__doc__ = fill_shared(gradient_attribution.__doc__ or "")


def _estimate(model: nn.Module, clean: torch.Tensor, corrupted: torch.Tensor, metric: Callable, plans: list,
              index: Mapping[str, Sequence[int]] | None, direction: str, method: str, context: Callable[[], Any],
              extra: dict | None) -> AttributionResult:
    names = list(dict.fromkeys(n for p in plans for n in p.names))
    base, other = (corrupted, clean) if direction == "denoise" else (clean, corrupted)
    read, metric = reading(model, metric, names)  # unembed (and differentiate) only the positions the metric reads
    cut = [read.hook()] if read is not None else []
    other_run = engine.record(model, other, names, clone=True, hooks=cut)
    with context():
        got = engine.gradients(model, base, names, metric, hooks=cut)
    other_value = metric_of(metric, other_run.output)
    clean_value, corrupted_value = ((other_value, float(got.value)) if direction == "denoise"
                                    else (float(got.value), other_value))
    bridge = engine.is_bridge(model)
    grids = {}
    for plan in plans:
        first = got.acts[plan.names[0]]
        dims = plan.dims(first, bridge)
        sizes = axis_sizes(first, plan.names[0], bridge)
        coords = cell_coords(plan, dims, sizes, first.shape, index)
        rows = [reduce_to_cells((got.grads[n] * (other_run.acts[n] - got.acts[n])).double(), dims, coords, sizes)
                for n in plan.names]
        grids[plan.label] = SiteGrid(plan.label, dims, coords, torch.stack(rows).cpu())
    return AttributionResult(method=method, metric=metric_name(metric), clean_value=clean_value,
                             corrupted_value=corrupted_value, direction=direction, grids=grids, n_forward=2,
                             n_backward=1, extra=extra or {})
