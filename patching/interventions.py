"""Interventions: composable edits of activations at named sites.

An :class:`Intervention` says *where* (a site, optionally a subset of units, heads and
positions) and *what* (zero, mean or resample ablation, clamp to a value, scale, add a
steering vector, patch in the activation of another run). :func:`intervene` applies any number
of them while a ``with`` block runs::

    with patching.intervene(model, zero("blocks.0.attn.hook_z", heads=[1]),
                            add("blocks.1.hook_resid_pre", steering, scale=4.0)):
        logits = model(tokens)

Sites are TransformerLens hook names on a ``TransformerBridge`` and module paths on any other
``nn.Module`` (the module's output is edited). Edits are differentiable (``torch.where`` of the
edited and the original value), so interventions work inside training loops: gradients reach
the unedited part of the activation and any parameter used by the edit (e.g. a learned steering
vector).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from interp import engine
from interp.engine import Hook
from interp.errors import ConfigError, DimensionError, InputTypeError, MismatchError

__all__ = ["Intervention", "Inputs", "intervene", "zero", "mean", "resample", "clamp", "scale", "add", "patch",
           "KINDS"]

KINDS = ("zero", "mean", "resample", "clamp", "scale", "add", "patch", "function")
Index = int | Sequence[int] | slice | torch.Tensor | None


@dataclass
class Intervention:
    """One edit of one site.

    Parameters
    ----------
    site : str
        Hook name (bridge) or module path.
    kind : str
        One of :data:`KINDS`.
    value : Any, optional
        The clamp value, scale factor, steering vector, mean activation, patch source activation or
        resample pool (depends on ``kind``; required for ``clamp``, ``scale`` and ``add``); for
        ``mean``/``resample``/``patch`` it may instead be *inputs* to run the model on when the
        intervention starts.
    units, heads, positions : int, Sequence[int], slice or torch.Tensor, optional
        The subset edited (None = all). Units index the last axis, heads the head axis of per-head sites
        (``hook_z``, ``hook_q``, ``hook_pattern`` ...), positions the token axis (the query axis of
        attention patterns).
    fn : Callable[[torch.Tensor], torch.Tensor], optional
        For ``kind="function"``, ``fn(activation) -> activation`` of the same shape.
    seed : int
        Seed of the random rows drawn by ``resample``.
    """

    site: str
    kind: str
    value: Any = None
    units: Index = None
    heads: Index = None
    positions: Index = None
    fn: Callable[[torch.Tensor], torch.Tensor] | None = None
    seed: int = 0
    _source: torch.Tensor | None = field(default=None, repr=False)
    _bridge: bool = field(default=True, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown intervention kind {self.kind!r}; expected one of {KINDS}")
        if self.kind in {"clamp", "scale", "add"} and self.value is None:
            raise ConfigError(f"{self.kind} needs a value")
        if self.kind == "function" and not callable(self.fn):
            raise ConfigError("a function intervention needs fn(activation) -> activation")

    # ----------------------------------------------------------------- mechanics
    def mask(self, act: torch.Tensor) -> torch.Tensor | None:
        """Boolean mask (broadcastable to ``act``) of the edited entries; None means everything.

        Parameters
        ----------
        act : torch.Tensor
            The site's activation; its layout (which axis is unit, head, position) follows the site.
        """
        if self.units is None and self.heads is None and self.positions is None:
            return None
        axes = engine.layout(self.site, act.ndim, self._bridge)
        mask = torch.ones((1,) * act.ndim, dtype=torch.bool, device=act.device)
        for name, index in (("unit", self.units), ("head", self.heads), ("pos", self.positions)):
            if index is None:
                continue
            if name not in axes:
                raise DimensionError(f"site {self.site!r} has no {name} axis (activation shape {tuple(act.shape)}); "
                                     f"drop the '{name}s' subset")
            axis = axes[name] % act.ndim
            shape = [1] * act.ndim
            shape[axis] = act.shape[axis]
            sel = torch.zeros(act.shape[axis], dtype=torch.bool, device=act.device)
            try:
                sel[_as_index(index)] = True
            except IndexError as exc:
                raise DimensionError(f"{name} index {index!r} out of range for site {self.site!r} with "
                                     f"{act.shape[axis]} {name}s") from exc
            mask = mask & sel.reshape(shape)
        return mask

    def edited(self, act: torch.Tensor) -> torch.Tensor:
        """The fully edited activation (before restricting to the subset).

        Parameters
        ----------
        act : torch.Tensor
            The site's original activation; the result has its shape, device and dtype.
        """
        kind = self.kind
        if kind == "zero":
            return torch.zeros_like(act)
        if kind == "scale":
            return act * _like(self.value, act)
        if kind == "add":
            return act + _like(self.value, act)
        if kind == "clamp":
            return _like(self.value, act).expand_as(act)
        if kind == "function":
            out = self.fn(act)  # type: ignore[misc]
            if not isinstance(out, torch.Tensor) or out.shape != act.shape:
                raise DimensionError(f"function intervention on {self.site!r} must return a tensor of shape "
                                     f"{tuple(act.shape)}")
            return out
        source = self._source if self._source is not None else self.value
        if not isinstance(source, torch.Tensor):
            raise InputTypeError(f"{kind} on {self.site!r} needs an activation tensor (or inputs to compute it)")
        source = source.to(act.device, act.dtype)
        if kind == "mean":
            return _broadcast_source(source, act, self.site).expand_as(act)
        if kind == "patch":
            return _broadcast_source(source, act, self.site)
        if kind == "resample":
            gen = torch.Generator().manual_seed(self.seed)
            rows = torch.randint(0, source.shape[0], (act.shape[0],), generator=gen)
            pool = source[rows.to(source.device)]
            return _broadcast_source(pool, act, self.site)
        raise ConfigError(kind)  # pragma: no cover

    def __call__(self, act: torch.Tensor) -> torch.Tensor:
        new = self.edited(act)
        mask = self.mask(act)
        return new if mask is None else torch.where(mask, new, act)

    # ------------------------------------------------------------------- sources
    def _prepare(self, model: nn.Module) -> None:
        """Turn inputs given as ``value`` of mean/resample/patch into the activation they produce."""
        self._source = None
        self._bridge = engine.is_bridge(model)
        if self.kind not in {"mean", "resample", "patch"}:
            return
        value = self.value
        if hasattr(value, "data") and hasattr(value, "dims") and isinstance(value.data, torch.Tensor):
            value = value.data  # interp.Activations
        if isinstance(value, Inputs):
            inputs = value.data
        elif isinstance(value, torch.Tensor) and (value.is_floating_point() or not self._bridge):
            self._source = value
            return
        else:
            inputs = value
        if self._bridge:
            inputs = engine.to_tokens(model, inputs)
        acts = engine.record(model, inputs, [self.site]).acts[self.site]
        self._source = acts.mean(0, keepdim=True) if self.kind == "mean" else acts


@dataclass
class Inputs:
    """Marks model inputs (rather than an activation) as the source of a mean/resample/patch intervention.

    Needed for plain ``nn.Module`` models whose inputs are float tensors; on a bridge, texts and
    token tensors are recognised as inputs without it.

    Parameters
    ----------
    data : Any
        The model inputs to run when the intervention starts (the source activation is recorded there).
    """

    data: Any


def _as_index(index: Index) -> Any:
    if isinstance(index, (int, slice)):
        return index
    return torch.as_tensor(index, dtype=torch.long)


def _like(value: Any, act: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(value, dtype=act.dtype, device=act.device) if not isinstance(value, torch.Tensor) \
        else value.to(act.device, act.dtype)


def _broadcast_source(source: torch.Tensor, act: torch.Tensor, site: str) -> torch.Tensor:
    """Match a source activation to the batch of ``act`` (1 row broadcasts; k*B rows repeat B)."""
    if source.shape[1:] != act.shape[1:]:
        if source.shape == act.shape[1:]:
            return source.unsqueeze(0).expand_as(act)
        raise MismatchError(f"source activation for {site!r} has shape {tuple(source.shape)} but the run has "
                            f"{tuple(act.shape)}; inputs must have the same token length")
    if source.shape[0] == act.shape[0] or source.shape[0] == 1:
        return source.expand_as(act)
    if act.shape[0] % source.shape[0] == 0:
        return source.repeat(act.shape[0] // source.shape[0], *([1] * (act.ndim - 1)))
    raise MismatchError(f"source activation for {site!r} has batch {source.shape[0]} but the run has batch "
                        f"{act.shape[0]}")


# ----------------------------------------------------------------- constructors
def zero(site: str, *, units: Index = None, heads: Index = None, positions: Index = None) -> Intervention:
    """Zero ablation.

    Parameters
    ----------
    site : str
        Hook name (bridge) or module path (any ``nn.Module``: its output is edited).
    units, heads, positions : int, Sequence[int], slice or torch.Tensor, optional
        The subset edited (default all): units index the last axis, heads the head axis of per-head
        sites (``hook_z``, ``hook_q``, ``hook_pattern`` ...), positions the token axis.

    Returns
    -------
    Intervention
        The spec, to pass to :func:`intervene`.
    """
    return Intervention(site, "zero", units=units, heads=heads, positions=positions)


def mean(site: str, reference: Any, *, units: Index = None, heads: Index = None,
         positions: Index = None) -> Intervention:
    """Mean ablation: replace by the mean activation over ``reference``.

    Parameters
    ----------
    site : str
        Hook name (bridge) or module path (any ``nn.Module``: its output is edited).
    reference : torch.Tensor or inputs
        The mean activation itself (a float tensor shaped like one example, or ``[1, ...]``) or inputs
        (texts/tokens, or :class:`Inputs`) to average over when the intervention starts.
    units, heads, positions : int, Sequence[int], slice or torch.Tensor, optional
        The subset edited (default all): units index the last axis, heads the head axis of per-head
        sites (``hook_z``, ``hook_q``, ``hook_pattern`` ...), positions the token axis.

    Returns
    -------
    Intervention
        The spec, to pass to :func:`intervene`.
    """
    return Intervention(site, "mean", reference, units=units, heads=heads, positions=positions)


def resample(site: str, reference: Any, *, seed: int = 0, units: Index = None, heads: Index = None,
             positions: Index = None) -> Intervention:
    """Resample ablation: each example gets the activation of a random example of ``reference``.

    Parameters
    ----------
    site : str
        Hook name (bridge) or module path (any ``nn.Module``: its output is edited).
    reference : torch.Tensor or inputs
        The pool: activations ``[n, ...]`` or inputs (texts/tokens, or :class:`Inputs`) run when the
        intervention starts.
    seed : int
        Seed of the rows drawn from the pool (with replacement, one per example).
    units, heads, positions : int, Sequence[int], slice or torch.Tensor, optional
        The subset edited (default all): units index the last axis, heads the head axis of per-head
        sites (``hook_z``, ``hook_q``, ``hook_pattern`` ...), positions the token axis.

    Returns
    -------
    Intervention
        The spec, to pass to :func:`intervene`.
    """
    return Intervention(site, "resample", reference, units=units, heads=heads, positions=positions, seed=seed)


def clamp(site: str, value: float | torch.Tensor, *, units: Index = None, heads: Index = None,
          positions: Index = None) -> Intervention:
    """Clamp to a fixed value (a number or a tensor that broadcasts).

    Parameters
    ----------
    site : str
        Hook name (bridge) or module path (any ``nn.Module``: its output is edited).
    value : float or torch.Tensor
        The value the edited entries take (a tensor broadcasts to the activation).
    units, heads, positions : int, Sequence[int], slice or torch.Tensor, optional
        The subset edited (default all): units index the last axis, heads the head axis of per-head
        sites (``hook_z``, ``hook_q``, ``hook_pattern`` ...), positions the token axis.

    Returns
    -------
    Intervention
        The spec, to pass to :func:`intervene`.
    """
    return Intervention(site, "clamp", value, units=units, heads=heads, positions=positions)


def scale(site: str, factor: float | torch.Tensor, *, units: Index = None, heads: Index = None,
          positions: Index = None) -> Intervention:
    """Multiply by ``factor``.

    Parameters
    ----------
    site : str
        Hook name (bridge) or module path (any ``nn.Module``: its output is edited).
    factor : float or torch.Tensor
        The multiplier (a tensor broadcasts to the activation; 0 is a zero ablation).
    units, heads, positions : int, Sequence[int], slice or torch.Tensor, optional
        The subset edited (default all): units index the last axis, heads the head axis of per-head
        sites (``hook_z``, ``hook_q``, ``hook_pattern`` ...), positions the token axis.

    Returns
    -------
    Intervention
        The spec, to pass to :func:`intervene`.
    """
    return Intervention(site, "scale", factor, units=units, heads=heads, positions=positions)


def add(site: str, vector: torch.Tensor, *, coefficient: float = 1.0, units: Index = None, heads: Index = None,
        positions: Index = None) -> Intervention:
    """Add a steering vector (``coefficient * vector``, broadcast over batch and positions).

    Parameters
    ----------
    site : str
        Hook name (bridge) or module path (any ``nn.Module``: its output is edited).
    vector : torch.Tensor
        The steering vector, usually ``[d]`` for a site of width ``d``.
    coefficient : float
        Multiplies ``vector``.
    units, heads, positions : int, Sequence[int], slice or torch.Tensor, optional
        The subset edited (default all): units index the last axis, heads the head axis of per-head
        sites (``hook_z``, ``hook_q``, ``hook_pattern`` ...), positions the token axis.

    Returns
    -------
    Intervention
        The spec, to pass to :func:`intervene`.
    """
    value = vector * coefficient if coefficient != 1.0 else vector
    return Intervention(site, "add", value, units=units, heads=heads, positions=positions)


def patch(site: str, source: Any, *, units: Index = None, heads: Index = None,
          positions: Index = None) -> Intervention:
    """Patch in the activation of another run.

    Parameters
    ----------
    site : str
        Hook name (bridge) or module path (any ``nn.Module``: its output is edited).
    source : torch.Tensor or inputs
        That run's activation at ``site`` (same shape, or one example broadcast) or its inputs (texts/
        tokens, or :class:`Inputs`), run when the intervention starts.
    units, heads, positions : int, Sequence[int], slice or torch.Tensor, optional
        The subset edited (default all): units index the last axis, heads the head axis of per-head
        sites (``hook_z``, ``hook_q``, ``hook_pattern`` ...), positions the token axis.

    Returns
    -------
    Intervention
        The spec, to pass to :func:`intervene`.
    """
    return Intervention(site, "patch", source, units=units, heads=heads, positions=positions)


# --------------------------------------------------------------------- runtime
@contextlib.contextmanager
def intervene(model: nn.Module, *specs: Intervention) -> Iterator[nn.Module]:
    """Apply interventions while the block runs; yields the model.

    Several interventions on the same site are applied in the order given. Sources given as
    inputs (mean/resample/patch) are computed on entry, without the other interventions.

    Parameters
    ----------
    model : torch.nn.Module
        A ``TransformerBridge`` (hook names) or any ``nn.Module`` (module paths).
    *specs : Intervention or list of Intervention
        The edits; sites are resolved on ``model`` (a :class:`SiteError` names an unknown one).
    """
    flat: list[Intervention] = []
    for spec in specs:
        if isinstance(spec, (list, tuple)):
            flat.extend(spec)
        elif isinstance(spec, Intervention):
            flat.append(spec)
        else:
            raise InputTypeError(f"intervene() takes Intervention specs, got {type(spec).__name__}")
    for spec in flat:
        spec.site = engine.resolve_site(model, spec.site)
    for spec in flat:
        spec._prepare(model)
    with engine.hooked(model, [Hook(spec.site, spec) for spec in flat]):
        yield model


def with_value(spec: Intervention, **changes: Any) -> Intervention:
    """A copy of ``spec`` with fields replaced.

    Parameters
    ----------
    spec : Intervention
        The intervention to copy (unchanged).
    **changes
        New values of its fields (``value=``, ``positions=`` ...).
    """
    return replace(spec, **changes)
