"""Integrated gradients at any site (layer integrated gradients).

Attribution of ``metric`` to the activation ``a`` at one site, integrating the gradient along the
straight path from a baseline activation ``a0`` to ``a`` (Sundararajan, Taly & Yan 2017,
"Axiomatic Attribution for Deep Networks")::

    IG(a) = (a - a0) * integral_0^1 dmetric/da (a0 + alpha (a - a0)) dalpha

Completeness: ``IG.sum() == metric(a) - metric(a0)`` up to the quadrature error, reported as
``delta`` (Captum's *convergence delta*). The path steps run batched: the input batch is
repeated for several alphas and each copy gets its own interpolated activation.

This function is reused by the neuron-path search (:mod:`patching.paths`).

>>> res = integrated_gradients(model, tokens, "blocks.1.hook_mlp_out", metric, steps=32)  # doctest: +SKIP
>>> res.attributions.shape, res.delta                                                     # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from interp.errors import ConfigError, DimensionError, MismatchError

from . import _hooks
from .interventions import record
from .metrics import evaluate

__all__ = ["integrated_gradients", "IGResult", "path_points"]

METHODS = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")


def path_points(steps: int, method: str = "gausslegendre") -> tuple[torch.Tensor, torch.Tensor]:
    """Quadrature points ``alphas`` in [0, 1] and their weights (as Captum's approximation methods)."""
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


@dataclass
class IGResult:
    """Integrated-gradients attributions of one site.

    Attributions have the activation's shape (``[batch, pos, unit]`` ...); ``delta`` is
    ``attributions.sum() - (metric_input - metric_baseline)``.
    """

    attributions: torch.Tensor
    site: str
    metric_input: float
    metric_baseline: float
    delta: float
    steps: int
    method: str
    n_forward: int
    n_backward: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def completeness_error(self) -> float:
        """``|delta| / |metric_input - metric_baseline|`` (relative completeness error)."""
        span = abs(self.metric_input - self.metric_baseline)
        return abs(self.delta) / span if span > 0 else abs(self.delta)

    def reduce(self, keep: str = "pos") -> torch.Tensor:
        """Sum the attributions over the batch and every axis but ``keep`` ("pos", "unit", "head")."""
        axes = _hooks.layout(self.site)
        if keep not in axes:
            raise DimensionError(f"site {self.site!r} has no {keep!r} axis")
        axis = axes[keep] % self.attributions.ndim
        return self.attributions.sum(dim=[a for a in range(self.attributions.ndim) if a != axis])

    def to_frame(self) -> pd.DataFrame:
        """One row per position (or unit when there is no position axis) with the summed attribution."""
        keep = "pos" if self.attributions.ndim >= 3 else "unit"
        values = self.reduce(keep).detach().cpu().double().numpy()
        return pd.DataFrame({keep: np.arange(len(values)), "attribution": values, "site": self.site})

    def plot(self):
        """Bar chart of the attribution per position (or unit)."""
        import plotly.express as px

        frame = self.to_frame()
        return px.bar(frame, x=frame.columns[0], y="attribution",
                      title=f"IG at {self.site} (delta {self.delta:.3g}, {self.steps} steps)")


def integrated_gradients(
    model: nn.Module,
    inputs: Any,
    site: str,
    metric: Callable[[torch.Tensor], torch.Tensor],
    baseline: torch.Tensor | float | None = None,
    steps: int = 20,
    *,
    baseline_inputs: Any = None,
    method: str = "gausslegendre",
    batch_size: int | None = None,
    max_rows: int = 512,
) -> IGResult:
    """Integrated gradients of ``metric`` with respect to the activation at ``site``.

    Args:
        model: a ``TransformerBridge`` (hook names) or any ``nn.Module`` (module paths).
        inputs: tokens/texts (bridge) or the input tensor.
        site: where to attribute (one hook name or module path).
        metric: ``metric(output) -> scalar``.
        baseline: baseline activation (tensor broadcastable to the activation, or a number);
            default zeros.
        steps: number of quadrature points.
        baseline_inputs: alternatively, inputs whose activation at ``site`` is the baseline
            (e.g. the corrupted prompts; Captum's ``LayerIntegratedGradients`` baselines).
        method: ``"gausslegendre"`` (Captum's default) or a Riemann rule.
        batch_size: path points per forward pass (default: as many as fit in ``max_rows`` rows).

    Returns:
        :class:`IGResult` (costs ``ceil(steps / batch_size)`` forward and backward passes over
        ``batch_size`` copies of the batch, plus 2 forward passes for the end points).
    """
    bridge = _hooks.is_bridge(model)
    inputs = _hooks.to_tokens(model, inputs) if bridge else inputs
    site = _hooks.resolve_site(model, site)
    act = record(model, inputs, [site])[site]
    if baseline_inputs is not None:
        if baseline is not None:
            raise ConfigError("give either baseline or baseline_inputs, not both")
        baseline_inputs = _hooks.to_tokens(model, baseline_inputs) if bridge else baseline_inputs
        _hooks.check_pair(inputs, baseline_inputs)
        base = record(model, baseline_inputs, [site])[site]
    elif baseline is None:
        base = torch.zeros_like(act)
    else:
        base = torch.as_tensor(baseline, dtype=act.dtype, device=act.device)
        try:
            base = base.expand_as(act)
        except RuntimeError as exc:
            raise MismatchError(f"baseline of shape {tuple(base.shape)} does not broadcast to the activation "
                                f"{tuple(act.shape)} at {site!r}") from exc
    diff = act - base
    alphas, weights = path_points(steps, method)
    batch = int(act.shape[0])
    chunk = batch_size or max(1, min(steps, max_rows // max(batch, 1)))
    total_grad = torch.zeros_like(act, dtype=torch.float64)
    calls = 0

    def repeat(x: Any, n: int) -> Any:
        return x.repeat(n, *([1] * (x.ndim - 1)))

    for start in range(0, steps, chunk):
        a = alphas[start:start + chunk].to(act.dtype)
        w = weights[start:start + chunk]
        n = len(a)
        shape = (n,) + (1,) * act.ndim
        path = (base.unsqueeze(0) + a.reshape(shape).to(act.device) * diff.unsqueeze(0)).reshape(n * batch, *act.shape[1:])
        path = path.detach().requires_grad_(True)
        with torch.enable_grad(), _hooks.hooks(model, [(site, lambda _act, path=path: path)]):
            out = _hooks.run(model, repeat(inputs, n))
            total = sum(float(w[j]) * evaluate(metric, out[j * batch:(j + 1) * batch]) for j in range(n))
            (grad,) = torch.autograd.grad(total, path)
        total_grad += grad.reshape(n, *act.shape).double().sum(0)
        calls += 1

    attributions = (diff.double() * total_grad).to(act.dtype)
    with torch.no_grad():
        m_input = float(evaluate(metric, _hooks.run(model, inputs)))
        with _hooks.hooks(model, [(site, lambda _act: base)]):
            m_base = float(evaluate(metric, _hooks.run(model, inputs)))
    delta = float(attributions.double().sum()) - (m_input - m_base)
    return IGResult(attributions=attributions, site=site, metric_input=m_input, metric_baseline=m_base, delta=delta,
                    steps=steps, method=method, n_forward=steps + 2, n_backward=steps,
                    extra={"forward_calls": calls + 2, "points_per_call": chunk})
