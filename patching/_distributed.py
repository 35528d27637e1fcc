"""Prompt batches and ranks for the attribution methods.

``batch_size`` splits the clean/corrupted prompts into batches that run one after another; the cell scores of
the batches are averaged with weights ``batch / total``, which equals one run over all prompts because the
metrics of :mod:`patching.metrics` are batch means (:meth:`Metric.select` restricts them to a batch).

Under an initialised ``torch.distributed`` process group (``torchrun``), the prompt batches are shared out
among the ranks; with a single batch, activation patching shares out its patches instead. Every rank gathers
the parts (``all_gather_object``: gloo on CPU, NCCL on GPUs) and returns the same result, equal to one process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from interp.engine.distributed import gather, rank_and_world

from .results import AttributionResult

__all__ = ["over_prompts", "merge_shares"]


def _weighted(parts: list[tuple[float, AttributionResult]]) -> AttributionResult:
    """Average the parts' cell scores and unpatched values with the given weights (which sum to 1)."""
    first = parts[0][1]
    grids = {}
    for site, grid in first.grids.items():
        effect = sum(w * r.grids[site].effect.double() for w, r in parts)
        grids[site] = type(grid)(grid.site, grid.dims, grid.coords, effect)
    extra = dict(first.extra)
    extra["prompt_batches"] = len(parts)
    return AttributionResult(method=first.method, metric=first.metric,
                             clean_value=sum(w * r.clean_value for w, r in parts),
                             corrupted_value=sum(w * r.corrupted_value for w, r in parts),
                             direction=first.direction, grids=grids,
                             n_forward=sum(r.n_forward for _, r in parts),
                             n_backward=sum(r.n_backward for _, r in parts), extra=extra)


def over_prompts(run: Callable[..., AttributionResult], clean: torch.Tensor, corrupted: torch.Tensor, metric: Any,
                 batch_size: int | None, **kwargs: Any) -> AttributionResult:
    """Run ``run(clean_b, corrupted_b, metric_b, share=...)`` per prompt batch (and rank) and combine."""
    total = int(clean.shape[0])
    rank, world = rank_and_world()
    size = total if batch_size is None else max(1, int(batch_size))
    spans = [slice(i, min(total, i + size)) for i in range(0, total, size)]
    if len(spans) == 1:  # one batch: the method may share its own work out (activation patching's patches)
        return run(clean, corrupted, metric, share=(rank, world), **kwargs)
    mine = [(s.stop - s.start) / total for s in spans[rank::world]]
    parts = [run(clean[s], corrupted[s], metric.select(s) if hasattr(metric, "select") else _unsplittable(metric),
                 share=(0, 1), **kwargs) for s in spans[rank::world]]
    everyone = gather(list(zip(mine, parts)))
    return _weighted([p for part in everyone for p in part])


def _unsplittable(metric: Any) -> Any:
    from interp.errors import ConfigError

    raise ConfigError(f"metric {getattr(metric, '__name__', metric)!r} cannot be restricted to a batch of prompts; "
                      "build it with patching.metrics (their Metric.select does it) or leave batch_size=None")


def merge_shares(values: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
    """Combine the cells each rank computed (``done`` marks them) into one grid, on every rank."""
    parts = gather((values, done))
    out = torch.zeros_like(values)
    for v, d in parts:
        out = torch.where(d, v, out)
    return out
