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
import copy
import dataclasses
import itertools
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_map

from ..errors import InputTypeError, SiteError
from .sites import head_kind, is_bridge, is_head_site, is_moe, layer_of, mlp_width
from .views import (
    IDENTITY,
    SiteRef,
    View,
    batch_view,
    format_site,
    head_expectations,
    head_view,
    neuron_view,
    parse_site,
    replace,
    select,
)

__all__ = ["Phase", "Hook", "StopForward", "hooked", "observe_modules", "overridden", "repair_block_outputs"]

Edit = Callable[[torch.Tensor], "torch.Tensor | None"]


class Phase(IntEnum):
    """Order of the hooks that meet at one site (see the module docstring).

    ``DEFINE`` (rules that rewrite the model's own computation) runs first, then ``EDIT`` (interventions,
    patches), then ``READ`` (recording what the site finally holds).

    Parameters
    ----------
    value : int or str
        ``Phase(1)`` is ``Phase.EDIT`` (the usual enum lookup by value).
    """

    DEFINE = 0
    EDIT = 1
    READ = 2


@dataclass(frozen=True)
class Hook:
    """``fn(activation) -> new activation | None`` at ``site``, run in ``phase``.

    ``every_call``: run at every call of a module that runs several times per forward pass (rules that
    rewrite the model's own computation; DEFINE hooks always do). Other hooks at such a module must name
    the call (``path#k``); see :mod:`interp.engine.views`.

    Parameters
    ----------
    site : str
        A resolved hook name (bridge) or module path, in the spelling of :mod:`interp.engine.views`.
    fn : Edit
        ``fn(activation) -> new activation | None`` (None keeps the value).
    phase : Phase
        When it runs among the hooks at the same site.
    every_call : bool
        Run at every call of a module that runs several times per forward pass.
    """

    site: str
    fn: Edit
    phase: Phase = Phase.EDIT
    every_call: bool = False


class StopForward(Exception):
    """Raised by a READ hook to end a forward pass early (caught by :func:`interp.engine.run`)."""


_SEQ = itertools.count()
_REGISTRY: weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, str], _Dispatch]] = weakref.WeakKeyDictionary()
_ROOTS: weakref.WeakKeyDictionary[nn.Module, _Root] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class _Entry:
    phase: int
    seq: int
    fn: Edit
    site: str
    call: int | None      # the call of a reused module (``#k``); None: the only call, or every call if ``every``
    keys: tuple           # element of a structured output / argument
    every: bool           # runs at every call (rules: they rewrite every call of the model's own computation)


class _Dispatch:
    """The single hook installed at one site of one model; runs the registered functions in order."""

    def __init__(self, root: _Root, target: Any, side: str, key: tuple[int, str]) -> None:
        self.root, self.side, self.key = root, side, key
        self.entries: list[_Entry] = []
        self.calls, self.generation = 0, -1
        self._remove, self.handle_id = _install(target, side, self)

    def add(self, hook: Hook, ref: SiteRef) -> _Entry:
        every = bool(hook.every_call) or hook.phase == Phase.DEFINE
        entry = _Entry(int(hook.phase), next(_SEQ), hook.fn, hook.site, ref.call, ref.keys, every)
        self.entries.append(entry)
        self.entries.sort(key=lambda e: (e.phase, e.seq))
        return entry

    def discard(self, entry: _Entry) -> None:
        if entry in self.entries:
            self.entries.remove(entry)

    def uninstall(self) -> None:
        self._remove()

    def needs_probe(self) -> bool:
        """A module site read or edited by an analysis: its calls and batch axis are checked on a probe pass."""
        return self.side != "point" and any(not e.every for e in self.entries)

    def __call__(self, obj: Any) -> Any:
        root = self.root
        if root.probing:
            root.observe(self, obj)
            return None
        if self.generation != root.generation:
            self.generation, self.calls = root.generation, 0
        index = self.calls
        self.calls += 1
        changed = False
        for entry in list(self.entries):
            if entry.call is not None and entry.call != index:
                continue
            raw = _element(obj, self.side, entry.keys, entry.site)
            view = root.view(self, index, entry.keys)
            new = entry.fn(view.to(raw))
            if new is not None:
                obj, changed = _with_element(obj, self.side, entry.keys, view.back(new, raw)), True
        return obj if changed else None


def _element(obj: Any, side: str, keys: tuple, site: str) -> torch.Tensor:
    """The tensor a site names in a hook's value (a hook point's tensor, a module's output or its arguments)."""
    if side == "point":
        return obj
    if side == "output":
        return select(obj, keys, site)
    args, kwargs = obj
    if not keys:
        if not args:
            raise InputTypeError(f"site {site!r}: the module got no positional argument; name a keyword, "
                                 f"e.g. {site}[{next(iter(kwargs), 'name')}]")
        return select(args[0], (), site + "[0]" if not isinstance(args[0], torch.Tensor) else site)
    first, rest = keys[0], keys[1:]
    try:
        value = args[first] if isinstance(first, int) else kwargs[first]
    except (IndexError, KeyError):
        raise SiteError(f"site {site!r}: the module got {len(args)} positional arguments and the keywords "
                        f"{sorted(kwargs)}; name one of them") from None
    return select(value, rest, site)


def _with_element(obj: Any, side: str, keys: tuple, new: torch.Tensor) -> Any:
    if side == "point":
        return new
    if side == "output":
        return replace(obj, keys, new)
    args, kwargs = obj
    if not keys:
        return (replace(args[0], (), new),) + tuple(args[1:]), kwargs
    first, rest = keys[0], keys[1:]
    if isinstance(first, int):
        items = list(args)
        items[first] = replace(items[first], rest, new)
        return tuple(items), kwargs
    return args, {**kwargs, first: replace(kwargs[first], rest, new)}


class _Root:
    """Per-model state: the forward-pass count (which call of a reused module is which), the probe passes that
    check module sites (how often each module runs, where its batch axis is) and a bridge's head layouts."""

    def __init__(self, model: nn.Module) -> None:
        self.model = weakref.ref(model)
        self.generation, self.probing, self.signature = 0, False, None
        self.known: dict[Any, dict[Any, Any]] = {}       # input signature -> {(key, call, keys): View, key: count}
        self.seen: dict[tuple[int, str], list[Any]] = {}  # filled during a probe pass
        self.heads: dict[int, View] | None = None         # id(hook point) -> View (bridges)
        self.handle: Any = None

    def view(self, dispatch: _Dispatch, index: int, keys: tuple) -> View:
        if dispatch.side == "point":
            return self.heads.get(dispatch.key[0], IDENTITY) if self.heads else IDENTITY
        return self.known.get(self.signature, {}).get((dispatch.key, index, keys), IDENTITY)

    def observe(self, dispatch: _Dispatch, obj: Any) -> None:
        shapes = {}
        for entry in dispatch.entries:
            try:
                shapes[entry.keys] = tuple(_element(obj, dispatch.side, entry.keys, entry.site).shape)
            except (SiteError, InputTypeError) as exc:
                shapes[entry.keys] = exc
        self.seen.setdefault(dispatch.key, []).append(shapes)

    def before_forward(self, args: tuple, kwargs: dict) -> None:
        """Root forward pre-hook: a new pass; probe module sites not yet seen with inputs of this signature."""
        if self.probing:
            return
        self.generation += 1
        model = self.model()
        table = _REGISTRY.get(model, {}) if model is not None else {}
        probed = [d for d in table.values() if d.needs_probe()]
        if not probed:
            self.signature = None  # no view from an earlier pass's inputs
            return
        leaves = tree_flatten((args, kwargs))[0]
        self.signature = tuple((tuple(x.shape[1:]), x.dtype) if isinstance(x, torch.Tensor) else type(x).__name__
                               for x in leaves)
        known = self.known.setdefault(self.signature, {})
        if any(("probed", d.key, e.keys) not in known for d in probed for e in d.entries):
            self._probe(model, args, kwargs, known, probed)
        for dispatch in probed:
            self._check(dispatch, known)

    def _probe(self, model: nn.Module, args: tuple, kwargs: dict, known: dict, probed: list[_Dispatch]) -> None:
        batch = next((int(x.shape[0]) for x in tree_flatten((args, kwargs))[0]
                      if isinstance(x, torch.Tensor) and x.ndim), None)
        buffers = {n: b.clone() for n, b in model.named_buffers()} if model.training else {}
        devices = sorted({x.device.index or 0 for x in tree_flatten((args, kwargs))[0]
                          if isinstance(x, torch.Tensor) and x.is_cuda})
        runs = []
        ours = {d.handle_id for d in _REGISTRY.get(model, {}).values()}
        with torch.no_grad(), torch.random.fork_rng(devices=devices), _only(model, ours):
            for grow in (False, True):
                if grow and batch is None:
                    break
                call_args = tree_map(_private, (args, kwargs)) if not grow else tree_map(
                    lambda x: torch.cat([x, x[:1]]) if isinstance(x, torch.Tensor) and x.ndim and x.shape[0] == batch
                    else _private(x), (args, kwargs))
                self.seen, self.probing = {}, True
                try:
                    model.forward(*call_args[0], **call_args[1])
                except Exception:  # noqa: BLE001 - the grown batch may not fit (a cache); one probe then
                    if not grow:
                        raise
                    break
                finally:
                    self.probing = False
                runs.append(self.seen)
        for name, value in buffers.items():
            model.get_buffer(name).copy_(value)
        self.seen = {}
        for dispatch in probed:
            calls = runs[0].get(dispatch.key, [])
            known[dispatch.key] = len(calls)
            known.update({("probed", dispatch.key, e.keys): True for e in dispatch.entries})
            for index, shapes in enumerate(calls):
                for keys, small in shapes.items():
                    large = runs[1].get(dispatch.key, [{}] * (index + 1))[index].get(keys) if len(runs) > 1 else None
                    known[(dispatch.key, index, keys)] = (
                        View("refused", reason=str(small)) if isinstance(small, Exception) else
                        batch_view(dispatch.entries[0].site if not keys else _site_of(dispatch, keys), small,
                                   large if isinstance(large, tuple) else None, batch or 0))

    def _check(self, dispatch: _Dispatch, known: dict) -> None:
        count = known.get(dispatch.key, 0)
        for entry in dispatch.entries:
            if entry.every:
                continue
            ref = parse_site(entry.site)
            if entry.call is None and count > 1:
                spell = [format_site(dataclasses.replace(ref, call=k)) for k in range(count)]
                raise SiteError(f"module {ref.path!r} runs {count} times in one forward pass (a reused module), so "
                                f"site {entry.site!r} does not say which call; name one: {spell}")
            if entry.call is not None and count and entry.call >= count:
                raise SiteError(f"site {entry.site!r} names call {entry.call} of module {ref.path!r}, which runs "
                                f"{count} time(s) in one forward pass; use #0 .. #{count - 1}")
            for index in ([entry.call] if entry.call is not None else range(count)):
                view = known.get((dispatch.key, index, entry.keys), IDENTITY)
                if view.kind == "refused":
                    raise SiteError(view.reason)


@contextlib.contextmanager
def _only(model: nn.Module, ours: set[int]) -> Iterator[None]:
    """While a probe pass runs, only the engine's own hooks ``ours`` fire: the user's hooks and those of
    :func:`observe_modules` (block replay) must not see the extra passes. The hook tables are restored as they were."""
    saved, ours = [], ours | _REPAIRED.get(model, set())
    for module in model.modules():
        for table in (module._forward_hooks, module._forward_pre_hooks):
            if any(k not in ours for k in table):
                saved.append((table, list(table.items())))
                for k in [k for k in table if k not in ours]:
                    del table[k]
    try:
        yield
    finally:
        for table, items in saved:
            table.clear()
            table.update(items)


def _private(value: Any) -> Any:
    """A copy of an argument the probe pass could change (a KV cache); tensors and plain values as they are."""
    if isinstance(value, (torch.Tensor, int, float, bool, str, type(None))):
        return value
    try:
        return copy.deepcopy(value)
    except Exception as exc:  # noqa: BLE001 - the probe must not touch the caller's state
        raise SiteError(f"the probe pass that checks module sites cannot copy an argument of type "
                        f"{type(value).__name__} ({exc}); pass tensors, or hook points instead of module paths") from None


def _site_of(dispatch: _Dispatch, keys: tuple) -> str:
    return next((e.site for e in dispatch.entries if e.keys == keys), dispatch.entries[0].site)


def _target(model: nn.Module, site: str, points: dict | None = None) -> tuple[Any, str, SiteRef]:
    """The object a site's dispatcher goes on (a hook point, or a module), which side of it, and the parsed site.

    Aliases of one TransformerLens hook point (``mlp.hook_pre`` and ``mlp.gate.hook_out``) share a target,
    so everything registered at either name runs in one dispatcher, in one order. ``points``: the bridge's
    ``hook_dict`` when the caller already has it (building it costs milliseconds per access).
    """
    if is_bridge(model):
        points = model.hook_dict if points is None else points
        if site in points:
            return points[site], "point", SiteRef(site)
    ref = parse_site(site)
    try:
        module = model.get_submodule(ref.path) if ref.path else model
    except AttributeError:
        raise SiteError(f"the model has no submodule {ref.path!r}") from None
    return module, ref.side, ref


def _install(target: Any, side: str, dispatch: Callable[[Any], Any]) -> tuple[Callable[[], None], int]:
    """Install ``dispatch`` on ``target``; returns the function that removes it and the torch handle's id."""
    if side == "point":
        handle = target.add_hook(lambda act, hook: dispatch(act))

        def remove() -> None:
            handle.hook.remove()
            if handle in target.fwd_hooks:
                target.fwd_hooks.remove(handle)
        return remove, handle.hook.id
    if side == "input":
        handle = target.register_forward_pre_hook(lambda m, args, kwargs: dispatch((args, kwargs)), with_kwargs=True)
    else:
        handle = target.register_forward_hook(lambda m, args, out: dispatch(out))
    return handle.remove, handle.id


_REPAIRED: weakref.WeakKeyDictionary[nn.Module, set[int]] = weakref.WeakKeyDictionary()


def repair_block_outputs(model: nn.Module) -> nn.Module:
    """Make a bridge's block output hook (``blocks.{L}.hook_out`` = ``hook_resid_post``) fire where the wrapped
    block returns a *list* (GPT-1's post-LN ``Block``: ``[h] + attentions``): TransformerLens hooks only a tensor
    or a tuple, so the site was listed but never ran (reads empty, edits lost). A forward hook on each such block
    runs the hook point on the list's first element, for every caller (``run_with_cache`` too). Idempotent; a
    model that is not a bridge is returned unchanged. Called by :func:`interp.models.load` and by the engine the
    first time it sees a model.

    Parameters
    ----------
    model : torch.nn.Module
        The model (a TransformerLens bridge is repaired in place).
    """
    if not is_bridge(model) or model in _REPAIRED:
        return model
    ids = _REPAIRED[model] = set()
    for block in getattr(model, "blocks", ()):
        point = getattr(block, "hook_out", None)
        if point is None or not hasattr(point, "add_hook"):
            continue

        def fire(module: nn.Module, args: Any, out: Any, point: Any = point) -> Any:
            if isinstance(out, list) and out and isinstance(out[0], torch.Tensor):
                return [point(out[0]), *out[1:]]
            return None
        ids.add(block.register_forward_hook(fire).id)
    return model


def _root(model: nn.Module) -> _Root:
    root = _ROOTS.get(model)
    if root is None:
        repair_block_outputs(model)
        root = _ROOTS[model] = _Root(model)
    if root.handle is None:
        root.handle = model.register_forward_pre_hook(lambda m, args, kwargs: root.before_forward(args, kwargs),
                                                      with_kwargs=True)
    return root


@contextlib.contextmanager
def hooked(model: nn.Module, hooks: Iterable[Hook]) -> Iterator[nn.Module]:
    """Run ``hooks`` while the block runs (in the order of :class:`Phase`); yields the model.

    Sites must already be resolved (see :func:`interp.engine.resolve_sites`). A module site's calls and batch
    axis are checked on a probe pass the first time the model runs on inputs of a new shape (see
    :mod:`interp.engine.views`); a bridge's per-head sites are checked against its config once.

    Parameters
    ----------
    model : torch.nn.Module
        A ``TransformerBridge`` or any ``nn.Module``.
    hooks : Iterable[Hook]
        The hooks, removed when the block ends (also on an error).
    """
    if not isinstance(model, nn.Module):
        raise InputTypeError(f"model must be a torch nn.Module or TransformerBridge, got {type(model).__name__}")
    table = _REGISTRY.setdefault(model, {})
    root = _root(model)
    added: list[tuple[tuple[int, str], _Entry]] = []
    points = model.hook_dict if is_bridge(model) else None  # once per block, not once per hook
    try:
        for hook in hooks:
            if not isinstance(hook, Hook):
                raise InputTypeError(f"hooked() takes Hook objects, got {type(hook).__name__}")
            target, side, ref = _target(model, hook.site, points)
            if side == "point" and hook.phase != Phase.DEFINE and _checked(model, hook.site):
                _check_heads(model, root, target, hook.site)
            key = (id(target), side)
            if key not in table:
                table[key] = _Dispatch(root, target, side, key)
            added.append((key, table[key].add(hook, ref)))
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
        if not table and root.handle is not None:
            root.handle.remove()
            root.handle = None


_PATTERNS = (".hook_pattern", ".hook_attn_scores")


_CHECKED: weakref.WeakKeyDictionary[nn.Module, dict[str, bool]] = weakref.WeakKeyDictionary()


def _checked(model: nn.Module, name: str) -> bool:
    """Whether a bridge's hook point has a layout the probe checks (heads, attention patterns, MLP neurons);
    decided once per model and hook point (the module tree and config it reads do not change)."""
    known = _CHECKED.setdefault(model, {})
    if name not in known:
        known[name] = is_head_site(name) or name.endswith(_PATTERNS) or _neurons(model, name)
    return known[name]


def _neurons(model: nn.Module, name: str) -> bool:
    """Whether ``name`` is the neuron hook (``mlp.hook_pre``/``hook_post``) of a dense block of a bridge."""
    if not name.endswith((".mlp.hook_pre", ".mlp.hook_post")):
        return False
    layer = layer_of(name)
    return layer is not None and not is_moe(model, layer)


def _owner(model: nn.Module, name: str) -> nn.Module | None:
    """The module a bridge's hook point ``name`` belongs to (``encoder_blocks.0.mlp`` for its ``hook_pre``)."""
    try:
        return model.get_submodule(name.rsplit(".", 1)[0])
    except AttributeError:
        return None


def _check_heads(model: nn.Module, root: _Root, target: Any, site: str) -> None:
    """Probe a bridge once: the layout of every per-head hook point, checked against the config's heads, and the
    width of the MLP neuron hooks of dense blocks, checked against ``d_mlp``."""
    if root.heads is None:
        points = {name: point for name, point in model.hook_dict.items() if _checked(model, name)}
        expected = {layer: head_expectations(model, layer) for layer in {layer_of(n) for n in points}}
        sizes = {n for per_layer in expected.values() for pair in per_layer.values() for n in pair}
        pos = next(t for t in (7, 11, 13, 5, 17, 3, 19, 23) if t not in sizes)
        pos = min(pos, int(getattr(model.cfg, "n_ctx", pos) or pos))
        shapes: dict[int, tuple[str, tuple[int, ...]]] = {}
        def seen(act: Any, name: str, point: Any) -> None:
            shapes.setdefault(id(point), (name, tuple(act.shape)))

        installed = [_install(p, "point", lambda act, n=n, p=p: seen(act, n, p)) for n, p in points.items()]
        vocab = int(getattr(model.cfg, "d_vocab", 2) or 2)
        tokens = (torch.arange(pos) % max(vocab - 1, 1) + 1).unsqueeze(0)
        root.probing = True
        try:
            with torch.no_grad(), _only(model, {hid for _, hid in installed}):
                from .inputs import model_device

                device = model_device(model)
                model(tokens.to(device) if device is not None else tokens)
        finally:
            root.probing = False
            for remove, _ in installed:
                remove()
        root.heads = {}
        for pid, (name, shape) in shapes.items():
            kind, layer = head_kind(name), layer_of(name)
            if name.endswith(_PATTERNS):
                heads = expected[layer]["q"][0]
                root.heads[pid] = IDENTITY if shape == (1, heads, pos, pos) else View("refused", reason=(
                    f"site {name!r} has shape {shape} on a probe of {pos} positions, not (batch, head, query_pos, "
                    f"key_pos) with the config's {heads} heads; the engine refuses it"))
            elif kind is None:
                root.heads[pid] = neuron_view(name, shape, mlp_width(model, layer, _owner(model, name)))
            elif kind in expected[layer]:
                heads = expected[layer]
                what = "key/value" if kind in ("k", "v") and heads[kind][0] != heads["q"][0] else "attention"
                root.heads[pid] = head_view(name, shape, pos, heads[kind], what)
    view = root.heads.get(id(target), IDENTITY)
    if view.kind == "refused":
        raise SiteError(view.reason.replace(next((n for n, p in model.hook_dict.items() if p is target), site), site))


@contextlib.contextmanager
def observe_modules(modules: Sequence[nn.Module], fn: Callable[[int, Any], None]) -> Iterator[None]:
    """Call ``fn(i, output)`` whenever ``modules[i]`` finishes its forward (used by block replay).

    Parameters
    ----------
    modules : Sequence[torch.nn.Module]
        The modules observed.
    fn : Callable[[int, Any], None]
        Called with the module's index and its output; its return value is ignored.
    """
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

    Parameters
    ----------
    replacements : Sequence[tuple[torch.nn.Module, Callable]]
        ``(module, forward)`` pairs; a module whose forward is already replaced is an :class:`InputTypeError`.
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
