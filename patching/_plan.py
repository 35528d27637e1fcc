"""What the four attribution methods share: the inputs pair, the sites and their grids of cells.

``sites`` is one or several entries, each a *site kind* (``"resid_pre"``, ``"attn_out"``, ``"mlp_out"``,
``"heads"``, ``"mlp_pre"``, ``"mlp_post"``, ``"q"``/``"k"``/``"v"``, ``"pattern"`` ...: one hook per layer of a
bridge, grid ``layer x by``) or hook names / module paths with globs (grid ``site x by``). With the
default ``sites=None`` every default kind the model has is used; a kind asked for by name that the model
lacks is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from interp import engine
from interp.engine.shortcuts import ReadPositions, ReadTokens, agrees
from interp.errors import ConfigError, DimensionError, InputTypeError, SiteError

from .metrics import evaluate

__all__ = ["DEFAULT_SITES", "DEFAULT_BY", "SitePlan", "plan_sites", "prepare_pair", "check_editable", "axis_sizes",
           "cell_coords", "reduce_to_cells", "check_direction", "metric_name", "reading"]

DEFAULT_SITES = ("resid_pre", "attn_out", "mlp_out", "heads")
DEFAULT_BY = {
    "resid_pre": ("pos",), "resid_mid": ("pos",), "resid_post": ("pos",), "attn_out": ("pos",), "mlp_out": ("pos",),
    "z": ("head",), "q": ("head",), "k": ("head",), "v": ("head",), "pattern": ("head",),
    "mlp_pre": ("neuron",), "mlp_post": ("neuron",),
}
#: grid dim -> axis name of :func:`interp.engine.layout`
AXIS_OF_DIM = {"pos": "pos", "head": "head", "neuron": "unit", "unit": "unit", "channel": "unit"}


@dataclass
class SitePlan:
    """One site entry: its label, the hook names / module paths of its first axis and the swept dims."""

    label: str
    names: list[str]
    first: str                      # "layer" (a site kind) or "site" (names)
    first_coords: list[Any]
    by: tuple[str, ...] | None      # None: decided from the activation (pos if it has one, else unit)

    def dims(self, act: torch.Tensor, bridge: bool) -> tuple[str, ...]:
        """The grid's dims, given the activation of its first site."""
        if self.by is not None:
            return (self.first,) + tuple(d for d in self.by if d not in {"layer", "site"})
        lay = engine.layout(self.names[0], act.ndim, bridge)
        return (self.first, "pos" if "pos" in lay else "unit")


def check_direction(direction: str) -> None:
    """``direction`` must be ``"denoise"`` or ``"noise"``."""
    if direction not in {"denoise", "noise"}:
        raise ConfigError(f"direction must be 'denoise' or 'noise', got {direction!r}")


def metric_name(metric: Any) -> str:
    """A printable name of a metric."""
    return str(getattr(metric, "name", getattr(metric, "__name__", "metric")))


def prepare_pair(model: nn.Module, clean: Any, corrupted: Any) -> tuple[Any, Any]:
    """Clean and corrupted inputs as tensors of equal shape (texts are tokenised on a bridge)."""
    clean, corrupted = engine.to_tokens(model, clean), engine.to_tokens(model, corrupted)
    engine.check_pair(clean, corrupted)
    return clean, corrupted


_OBSERVE_ONLY = (".hook_pattern", ".hook_attn_scores")


def check_editable(model: nn.Module, plans: list[SitePlan], inputs: Any) -> None:
    """Refuse attention-pattern sites whose edits do not reach the forward pass (they would patch nothing)."""
    if not engine.is_bridge(model):
        return
    for plan in plans:
        name = plan.names[0]
        if name.endswith(_OBSERVE_ONLY) and not engine.edits_reach(model, name, inputs[:1]):
            raise SiteError(f"edits at {name!r} do not reach this model's forward pass (its attention is computed "
                            "inside the wrapped Hugging Face module; the hook only observes); patch 'heads' (hook_z) "
                            "or 'q'/'k'/'v' instead")


def _by_for(label: str, kind: str | None, by: Sequence[str] | Mapping[str, Sequence[str]] | None) -> tuple | None:
    if isinstance(by, Mapping):
        chosen = by.get(label, by.get(kind) if kind else None)
        if chosen is None and kind is not None:
            chosen = next((v for k, v in by.items() if engine.KIND_ALIASES.get(k) == kind), None)
        return tuple(chosen) if chosen is not None else (DEFAULT_BY.get(kind) if kind else None)
    if by is not None:
        return (by,) if isinstance(by, str) else tuple(by)
    return DEFAULT_BY.get(kind) if kind else None


def plan_sites(model: nn.Module, sites: str | Sequence[str] | None, *,
               by: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
               layers: Sequence[int] | None = None, index: Mapping[str, Sequence[int]] | None = None) -> list[SitePlan]:
    """Resolve ``sites`` into one :class:`SitePlan` per entry (see the module docstring)."""
    bridge = engine.is_bridge(model)
    explicit = sites is not None
    for d in index or {}:
        if d not in AXIS_OF_DIM:
            raise ConfigError(f"index names axis {d!r}; the axes that can be restricted are {sorted(AXIS_OF_DIM)} "
                              "(an axis a site does not sweep is left alone there)")
    if not explicit:
        if not bridge:
            raise ConfigError(f"a plain {type(model).__name__} has no site kinds; name the sites to attribute to "
                              "(module paths such as 'blocks.0.mlp.act' or 'layer1.0.conv2', globs allowed)")
        sites = DEFAULT_SITES
    entries = [sites] if isinstance(sites, str) else list(sites)
    if not entries:
        raise SiteError("no sites given")
    plans: list[SitePlan] = []
    for entry in entries:
        if not isinstance(entry, str):
            raise InputTypeError(f"each site is a site kind, hook name or module path (a string), got {entry!r}")
        if engine.is_kind(model, entry):
            kind = engine.canonical_kind(entry)
            if engine.encoder_decoder_stacks(model):  # kinds name one stack: say what works instead
                engine.kind_hook(model, kind, 0)
            chosen = list(range(engine.n_layers(model))) if layers is None else [int(x) for x in layers]
            try:
                names = engine.kind_sites(model, kind, chosen)
            except SiteError as exc:
                if explicit:
                    raise SiteError(f"the model has no {entry!r} sites ({exc}); e.g. an attention-only model has no "
                                    "MLP sites") from None
                continue
            label = entry if entry in engine.KIND_ALIASES else kind
            if any(p.label == label for p in plans):
                continue
            plans.append(SitePlan(label, names, "layer", chosen, _by_for(label, kind, by)))
        else:
            names = engine.resolve_sites(model, entry)
            plans.append(SitePlan(entry, names, "site", list(names), _by_for(entry, None, by)))
    if not plans:
        raise SiteError("none of the default sites exists in this model; name the sites")
    return plans


def axis_sizes(act: torch.Tensor, site: str, bridge: bool) -> dict[str, tuple[int, int]]:
    """Grid dim -> (axis, size) for the dims a site's activation has."""
    lay = engine.layout(site, act.ndim, bridge)
    return {dim: (lay[axis], act.shape[lay[axis]]) for dim, axis in AXIS_OF_DIM.items() if axis in lay}


def cell_coords(plan: SitePlan, dims: tuple[str, ...], sizes: dict[str, tuple[int, int]], shape: Sequence[int],
                index: Mapping[str, Sequence[int]] | None) -> dict[str, list[Any]]:
    """Coordinates of every grid axis (``index`` restricts an axis to some indices)."""
    coords: dict[str, list[Any]] = {dims[0]: list(plan.first_coords)}
    for d in dims[1:]:
        if d not in sizes:
            raise DimensionError(f"site {plan.names[0]!r} (shape {tuple(shape)}) has no {d!r} axis; "
                                 f"valid axes: {sorted(sizes)}")
        n = sizes[d][1]
        chosen = (index or {}).get(d)
        coords[d] = list(range(n)) if chosen is None else [int(i) % n for i in chosen]
    return coords


def reduce_to_cells(score: torch.Tensor, dims: tuple[str, ...], coords: dict[str, list[Any]],
                    sizes: dict[str, tuple[int, int]]) -> torch.Tensor:
    """Sum an elementwise score over every axis but the swept ones, then pick the chosen indices."""
    keep = [sizes[d][0] for d in dims[1:]]
    drop = [a for a in range(score.ndim) if a not in keep]
    out = score.sum(dim=drop) if drop else score
    order = sorted(keep)
    if len(keep) > 1:
        out = out.permute([order.index(a) for a in keep])
    for i, d in enumerate(dims[1:]):
        out = out.index_select(i, torch.as_tensor(coords[d], dtype=torch.long, device=out.device))
    return out


def metric_of(metric: Callable[[torch.Tensor], torch.Tensor], output: torch.Tensor) -> float:
    """The metric on a model output as a float."""
    return float(evaluate(metric, output))


def reading(model: nn.Module, metric: Callable, names: Sequence[str] = (), cut: bool = True
            ) -> tuple[ReadPositions | None, Callable]:
    """What ``metric`` reads: the cut of the unembedding to its one position per example, and the metric on
    the cut logits; ``(None, metric)`` when it does not say (a plain callable), reads more, the model's
    unembedding cannot be cut (then every position is unembedded, as before), or one of the sites ``names``
    is the unembedding itself (its activation keeps every position)."""
    if any(n.split(":")[0].startswith("unembed.") or n == "hook_unembed" for n in names):
        return None, metric
    positions = getattr(metric, "positions", None) if cut and hasattr(metric, "at_read_positions") else None
    read = ReadPositions.of(model, positions) if positions is not None else None
    if read is None:
        return None, metric
    return read, metric.at_read_positions()


def narrow_vocab(model: nn.Module, read: ReadPositions | None, metric: Callable, base: torch.Tensor,
                 base_out: torch.Tensor) -> tuple[list, Callable, torch.Tensor]:
    """``(replacements, metric, base_out)`` for runs that unembed only the tokens the metric reads.

    ``replacements`` swap the unembedding for its rows of those tokens (:class:`ReadTokens`, for
    :func:`interp.engine.overridden`), ``metric`` reads the narrowed logits and ``base_out`` is the base run's
    output at those columns. Used only where the metric also reads one position (``read``), after one pass on
    the first base example has matched the full logits; otherwise ``([], metric, base_out)``.
    """
    tokens = getattr(metric, "tokens", None)
    cut = ReadTokens.of(model, tokens) if read is not None and hasattr(metric, "at_tokens") else None
    if cut is None:
        return [], metric, base_out
    swaps = cut.replacements()
    first = ReadPositions(read.positions if isinstance(read.positions, int) else read.positions[:1])
    narrowed = base_out.index_select(-1, cut.tokens.to(base_out.device))
    with torch.no_grad(), engine.hooked(model, [first.hook()]), engine.overridden(swaps):
        check = engine.forward(model, base[:1])
    if not agrees(check, narrowed[:1]):
        return [], metric, base_out
    return swaps, metric.at_tokens(cut.tokens), narrowed
