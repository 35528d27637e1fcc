"""Integrated gradients at sites (layer integrated gradients) under the attribution contract.

For each site, the activation ``a`` of the base run is moved along the straight path from its base value
to the source value (denoising: from the corrupted run's activation to the clean run's), the rest of the
model running on the base input, and the gradient of the metric is integrated along the path
(Sundararajan, Taly & Yan 2017, "Axiomatic Attribution for Deep Networks"; Captum's
``LayerIntegratedGradients``)::

    IG(a) = (a_source - a_base) * integral_0^1 dmetric/da (a_base + alpha (a_source - a_base)) dalpha

Completeness: the attributions of one site sum to the effect of patching the *whole* site, which is
measured too and reported per site (``extra["completeness"]``). The path steps run batched: the base batch
is repeated for several alphas and each copy gets its own interpolated activation.

>>> res = integrated_gradients(model, clean, corrupted, metric, sites="resid_pre", steps=32)  # doctest: +SKIP
>>> res.extra["completeness"]                              # relative error per site          # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from interp import engine
from interp._progress import tqdm
from interp.engine import Hook
from interp.engine.distributed import gather
from interp.errors import ConfigError

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
from .contract import attribution_method
from .metrics import evaluate
from .results import AttributionResult, SiteGrid

__all__ = ["integrated_gradients", "path_points", "METHODS"]

METHODS = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")


def path_points(steps: int, method: str = "gausslegendre") -> tuple[torch.Tensor, torch.Tensor]:
    """Quadrature points ``alphas`` in [0, 1] and their weights (as Captum's approximation methods).

    Parameters
    ----------
    steps : int
        Number of points (>= 1; >= 2 for ``"riemann_trapezoid"``).
    method : str
        ``"gausslegendre"`` (default), ``"riemann_left"``, ``"riemann_right"``, ``"riemann_middle"`` or
        ``"riemann_trapezoid"``.

    Returns
    -------
    alphas, weights : torch.Tensor
        ``(steps,)`` float64 each; the weights sum to 1.
    """
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    if method == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(steps)
        return torch.tensor(0.5 * (1 + x)), torch.tensor(0.5 * w)
    if method == "riemann_trapezoid":
        if steps < 2:
            raise ConfigError("riemann_trapezoid needs steps >= 2")
        alphas = torch.linspace(0, 1, steps, dtype=torch.float64)
        weights = torch.full((steps,), 1.0 / (steps - 1), dtype=torch.float64)
        weights[0] = weights[-1] = 0.5 / (steps - 1)
        return alphas, weights
    offsets = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}
    if method not in offsets:
        raise ConfigError(f"unknown IG method {method!r}; expected one of {METHODS}")
    alphas = (torch.arange(steps, dtype=torch.float64) + offsets[method]) / steps
    return alphas, torch.full((steps,), 1.0 / steps, dtype=torch.float64)


@attribution_method("ig")
def integrated_gradients(
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
    steps: int = 20,
    method: str = "gausslegendre",
    batch_size: int | None = None,
    points_per_pass: int | None = None,
    max_rows: int = 512,
    progress: bool = False,
) -> AttributionResult:
    """Integrated-gradients estimates of the effect of patching every cell of ``sites``.

    Integrated gradients (Sundararajan et al. 2017) from the corrupted to the clean activation of each site.
    Costs ``steps`` forward and backward passes per site (one site per layer of a site kind), plus one
    forward pass per site for the completeness check. With one prompt batch under ``torchrun`` the sites
    are shared out among the ranks.

    Parameters
    ----------
    {shared_parameters}
    steps : int
        Quadrature points along the path.
    method : str
        ``"gausslegendre"`` (Captum's default) or a Riemann rule (``"riemann_trapezoid"`` ...).
    points_per_pass : int, optional
        Path points per forward pass (default: as many as fit in ``max_rows`` rows).
    max_rows : int
        Cap on ``points x batch`` rows per forward pass.
    progress : bool
        Show a progress bar.

    Returns
    -------
    AttributionResult
        ``method="ig"``; ``extra["completeness"]`` holds, per site,
        ``|sum(attributions) - whole-site patch effect| / |whole-site patch effect|``.
    """
    check_direction(direction)
    clean, corrupted = prepare_pair(model, clean, corrupted)
    plans = plan_sites(model, sites, by=by, layers=layers, index=index)
    check_editable(model, plans, clean)
    options = dict(steps=steps, method=method, points_per_pass=points_per_pass, max_rows=max_rows,
                   progress=progress)
    return over_prompts(lambda c, r, m, share: _integrate(model, c, r, m, plans, index, direction, share, options),
                        clean, corrupted, metric, batch_size)


def _integrate(model: nn.Module, clean: torch.Tensor, corrupted: torch.Tensor, metric: Callable, plans: list,
               index: Mapping[str, Sequence[int]] | None, direction: str, share: tuple[int, int],
               options: dict[str, Any]) -> AttributionResult:
    """IG of one prompt batch (``share``: this rank's part of the sites)."""
    steps, method = options["steps"], options["method"]
    names = list(dict.fromkeys(n for p in plans for n in p.names))
    base, other = (corrupted, clean) if direction == "denoise" else (clean, corrupted)
    read, metric = reading(model, metric, names)  # unembed (and differentiate) only the positions the metric reads
    cut = [read.hook(copy_major=True)] if read is not None else []
    base_run = engine.record(model, base, names, clone=True, hooks=cut)
    other_run = engine.record(model, other, names, clone=True, hooks=cut)
    base_value, other_value = metric_of(metric, base_run.output), metric_of(metric, other_run.output)
    clean_value, corrupted_value = (other_value, base_value) if direction == "denoise" else (base_value, other_value)
    alphas, weights = path_points(steps, method)
    rows = int(base.shape[0])
    chunk = options["points_per_pass"] or max(1, min(steps, options["max_rows"] // max(rows, 1)))
    attributions, completeness = {}, {}
    rank, world = share
    for name in tqdm(names[rank::world], disable=not options["progress"], desc="integrated gradients"):
        a0, a1 = base_run.acts[name], other_run.acts[name]
        grad = _integrated_grad(model, base, name, a0, a1, metric, alphas, weights, chunk, cut)
        attributions[name] = (a1 - a0).double() * grad
        with torch.no_grad():
            whole = metric_of(metric, engine.run(model, base, [*cut, Hook(name, lambda act, a1=a1: a1)])) - base_value
        total = float(attributions[name].sum())
        completeness[name] = abs(total - whole) / abs(whole) if whole != 0 else abs(total)
    if world > 1:
        for part in gather((attributions, completeness)):
            attributions.update(part[0])
            completeness.update(part[1])
    bridge = engine.is_bridge(model)
    grids = {}
    for plan in plans:
        first = base_run.acts[plan.names[0]]
        dims = plan.dims(first, bridge)
        sizes = axis_sizes(first, plan.names[0], bridge)
        coords = cell_coords(plan, dims, sizes, first.shape, index)
        grids[plan.label] = SiteGrid(plan.label, dims, coords, torch.stack(
            [reduce_to_cells(attributions[n], dims, coords, sizes) for n in plan.names]).cpu())
    calls = -(-steps // chunk)
    return AttributionResult(method="ig", metric=metric_name(metric), clean_value=clean_value,
                             corrupted_value=corrupted_value, direction=direction, grids=grids,
                             n_forward=2 + len(names) * (steps + 1), n_backward=len(names) * steps,
                             extra={"steps": steps, "integration": method, "completeness": completeness,
                                    "forward_calls": 2 + len(names) * (calls + 1), "points_per_call": chunk})


def _integrated_grad(model: nn.Module, base: torch.Tensor, site: str, a0: torch.Tensor, a1: torch.Tensor,
                     metric: Callable, alphas: torch.Tensor, weights: torch.Tensor, chunk: int,
                     cut: Sequence[Hook] = ()) -> torch.Tensor:
    """Weighted sum over the path points of d metric / d activation at ``site`` (float64, shape of ``a0``)."""
    diff, rows = a1 - a0, int(a0.shape[0])
    total = torch.zeros_like(a0, dtype=torch.float64)
    for start in range(0, len(alphas), chunk):
        a = alphas[start:start + chunk].to(a0.dtype).to(a0.device)
        w = weights[start:start + chunk]
        n = len(a)
        path = (a0.unsqueeze(0) + a.reshape((n,) + (1,) * a0.ndim) * diff.unsqueeze(0)).reshape(n * rows, *a0.shape[1:])
        path = path.detach().requires_grad_(True)
        with torch.enable_grad():
            out = engine.run(model, engine.repeat(base, n), [*cut, Hook(site, lambda act, path=path: path)])
            value = sum(float(w[j]) * evaluate(metric, out[j * rows:(j + 1) * rows]) for j in range(n))
            if not isinstance(value, torch.Tensor) or not value.requires_grad:
                grad = None  # the metric does not depend on the site at all
            else:
                (grad,) = torch.autograd.grad(value, path, allow_unused=True)
            if grad is None:  # the site's value does not reach the metric: its attributions are 0
                continue
        total += grad.reshape(n, *a0.shape).double().sum(0)
    return total
