"""The one place where the library installs hooks on a model.

Every analysis (capture, interventions, activation and attribution patching, RelP rules, integrated
gradients, neuron paths, label streaming, SAE splicing and steering) describes what it wants at a site
as a :class:`Hook` -- a function ``fn(activation) -> new activation | None`` -- and enters
:func:`hooked`. This module installs **one dispatcher per site** on TransformerLens hook points (bridges)
or as torch forward / forward-pre hooks (any ``nn.Module``), and runs the functions registered at that
site in a documented order, however the ``with`` blocks that registered them are nested:

1. :attr:`Phase.DEFINE` -- rewrites of the value the model itself computes (RelP's LRP rules: the
   forward value is unchanged, only the backward pass differs). They belong to the model, so they run
   first and every other hook sees the rewritten value.
2. :attr:`Phase.EDIT` -- interventions, patches, integrated-gradient path points and the zero offsets
   that make gradients at a site, in the order they were registered (an inner ``with`` block's edits
   run after an outer block's).
3. :attr:`Phase.READ` -- records, and the savers of rules that need the value the rest of the model
   sees. They run last, so a record returns the value after every edit, and a rule that reads a site
   (the input of an activation function) sees the edited value, so gradients reach an offset there.

A READ hook may raise :class:`StopForward` to end a forward pass whose remaining layers nobody needs.
"""

from __future__ import annotations

import contextlib
import itertools
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import torch
from torch import nn

from ..errors import InputTypeError, SiteError
from .sites import is_bridge

__all__ = ["Phase", "Hook", "StopForward", "hooked", "observe_modules", "overridden"]

Edit = Callable[[torch.Tensor], "torch.Tensor | None"]


class Phase(IntEnum):
    """Order of the hooks that meet at one site (see the module docstring)."""

    DEFINE = 0
    EDIT = 1
    READ = 2


@dataclass(frozen=True)
class Hook:
    """``fn(activation) -> new activation | None`` at ``site``, run in ``phase``."""

    site: str
    fn: Edit
    phase: Phase = Phase.EDIT


class StopForward(Exception):
    """Raised by a READ hook to end a forward pass early (caught by :func:`interp.engine.run`)."""


_SEQ = itertools.count()
_REGISTRY: weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, str], _Dispatch]] = weakref.WeakKeyDictionary()


class _Dispatch:
    """The single hook installed at one site of one model; runs the registered functions in order."""

    def __init__(self, target: Any, side: str) -> None:
        self.entries: list[tuple[int, int, Edit]] = []
        self._remove = _install(target, side, self)

    def add(self, phase: Phase, fn: Edit) -> tuple[int, int, Edit]:
        entry = (int(phase), next(_SEQ), fn)
        self.entries.append(entry)
        self.entries.sort(key=lambda e: (e[0], e[1]))
        return entry

    def discard(self, entry: tuple[int, int, Edit]) -> None:
        if entry in self.entries:
            self.entries.remove(entry)

    def uninstall(self) -> None:
        self._remove()

    def __call__(self, act: torch.Tensor) -> torch.Tensor | None:
        changed = False
        for _, _, fn in list(self.entries):
            new = fn(act)
            if new is not None:
                act, changed = new, True
        return act if changed else None


def _apply_to_output(out: Any, fn: Callable[[torch.Tensor], torch.Tensor | None]) -> Any:
    if isinstance(out, tuple):
        new = fn(out[0])
        return None if new is None else (new,) + tuple(out[1:])
    if not isinstance(out, torch.Tensor):
        raise InputTypeError(f"a site must output a tensor (or a tuple whose first element is one), got "
                             f"{type(out).__name__}; pick another module")
    return fn(out)


def _apply_to_input(args: tuple, fn: Callable[[torch.Tensor], torch.Tensor | None]) -> Any:
    if not args or not isinstance(args[0], torch.Tensor):
        raise InputTypeError("an ':input' site must receive a tensor as its first positional argument")
    new = fn(args[0])
    return None if new is None else (new,) + tuple(args[1:])


def _target(model: nn.Module, site: str, points: dict | None = None) -> tuple[Any, str]:
    """The object a site's dispatcher goes on (a hook point, or a module) and which side of it.

    Aliases of one TransformerLens hook point (``mlp.hook_pre`` and ``mlp.gate.hook_out``) share a target,
    so everything registered at either name runs in one dispatcher, in one order. ``points``: the bridge's
    ``hook_dict`` when the caller already has it (building it costs milliseconds per access).
    """
    if is_bridge(model):
        points = model.hook_dict if points is None else points
        if site in points:
            return points[site], "point"
    name, _, which = site.partition(":")
    try:
        module = model.get_submodule(name) if name else model
    except AttributeError:
        raise SiteError(f"the model has no submodule {name!r}") from None
    return module, ("input" if which == "input" else "output")


def _install(target: Any, side: str, dispatch: _Dispatch) -> Callable[[], None]:
    """Install ``dispatch`` on ``target``; returns the function that removes it."""
    if side == "point":
        handle = target.add_hook(lambda act, hook: dispatch(act))

        def remove() -> None:
            handle.hook.remove()
            if handle in target.fwd_hooks:
                target.fwd_hooks.remove(handle)
        return remove
    if side == "input":
        handle = target.register_forward_pre_hook(lambda m, args: _apply_to_input(args, dispatch))
    else:
        handle = target.register_forward_hook(lambda m, args, out: _apply_to_output(out, dispatch))
    return handle.remove


@contextlib.contextmanager
def hooked(model: nn.Module, hooks: Iterable[Hook]) -> Iterator[nn.Module]:
    """Run ``hooks`` while the block runs (in the order of :class:`Phase`); yields the model.

    Sites must already be resolved (see :func:`interp.engine.resolve_sites`).
    """
    if not isinstance(model, nn.Module):
        raise InputTypeError(f"model must be a torch nn.Module or TransformerBridge, got {type(model).__name__}")
    table = _REGISTRY.setdefault(model, {})
    added: list[tuple[tuple[int, str], tuple[int, int, Edit]]] = []
    try:
        points = model.hook_dict if is_bridge(model) else None  # once per block, not once per hook
        for hook in hooks:
            if not isinstance(hook, Hook):
                raise InputTypeError(f"hooked() takes Hook objects, got {type(hook).__name__}")
            target, side = _target(model, hook.site, points)
            key = (id(target), side)
            if key not in table:
                table[key] = _Dispatch(target, side)
            added.append((key, table[key].add(hook.phase, hook.fn)))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*hook_scale/hook_normalized.*")
            yield model
    finally:
        for key, entry in reversed(added):
            dispatch = table.get(key)
            if dispatch is None:
                continue
            dispatch.discard(entry)
            if not dispatch.entries:
                dispatch.uninstall()
                del table[key]


@contextlib.contextmanager
def observe_modules(modules: Sequence[nn.Module], fn: Callable[[int, Any], None]) -> Iterator[None]:
    """Call ``fn(i, output)`` whenever ``modules[i]`` finishes its forward (used by block replay)."""
    handles = [m.register_forward_hook(lambda mod, args, out, i=i: fn(i, out)) for i, m in enumerate(modules)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def overridden(replacements: Sequence[tuple[nn.Module, Callable[..., Any]]]) -> Iterator[None]:
    """Replace the ``forward`` of modules while the block runs (block replay; RelP's rule-aware MoE experts).

    A replacement must compute the same values as the module (callers check it before use).
    """
    done: list[nn.Module] = []
    try:
        for module, forward in replacements:
            if "forward" in module.__dict__:
                raise InputTypeError(f"the forward of {type(module).__name__} is already replaced")
            # object.__setattr__: bridge components forward attribute writes to the wrapped module
            object.__setattr__(module, "forward", forward)
            done.append(module)
        yield
    finally:
        for module in done:
            module.__dict__.pop("forward", None)
