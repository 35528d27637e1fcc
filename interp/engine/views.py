"""What a site's spelling names inside a module's call, and the layout in which the engine hands it over.

Spelling of a site (module paths; a TransformerLens hook name takes none of the suffixes but ``:input``)::

    path[#k][:input|:output][[key]...]

* ``#k`` -- the ``k``-th call (from 0) of a module that runs several times in one forward pass
  (``layer1.0.relu#1``: the second ReLU of a torchvision-style ``BasicBlock``). A site without ``#k`` on
  such a module is refused (:class:`~interp.errors.SiteError` naming the spellings), never read as one call.
* ``:output[key]`` -- an element of a structured output: ``[1]`` indexes a tuple or list, ``[name]`` a dict,
  a ``ModelOutput``, a dataclass or a named tuple; keys chain (``lstm:output[1][0]`` is an LSTM's ``h_n``).
  A site whose output is a structure and that names no element is refused with the list of elements
  (except a tuple whose other elements are all ``None``: its one tensor is meant).
* ``:input`` is the first positional argument; ``:input[k]`` the ``k``-th, ``:input[name]`` a keyword.

:class:`View` is the layout the engine presents a site's value in, checked on a probe pass: the batch first
(a module whose batch axis is not first, such as a GRU's ``h_n`` ``(layers, batch, hidden)``, is handed over
as ``(batch, layers * hidden)``), and per-head sites of a bridge as ``(batch, pos, head, d_head)`` with the
heads the model's config says it has (see :func:`head_view`).
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import SiteError

__all__ = ["SiteRef", "parse_site", "format_site", "select", "replace", "View", "IDENTITY", "batch_view",
           "head_view", "head_expectations", "neuron_view", "config_value", "layer_config"]

_SPELLING = re.compile(r"^(?P<path>[^#:\[\]]*?)(?:#(?P<call>\d+))?(?::(?P<side>input|output))?"
                       r"(?P<keys>(?:\[[^\[\]]+\])*)$")


@dataclass(frozen=True)
class SiteRef:
    """A parsed site: module path (or hook name), which call (None: the only one), side and element keys.

    Parameters
    ----------
    path : str
        The module path or hook name.
    call : int, optional
        Which call of a module that runs several times per forward pass (None: the only one).
    side : {"output", "input"}
        The module's output or its input.
    keys : tuple of (int or str)
        Element keys into a tuple, list, dict or model output (``[1]``, ``[last_hidden_state]``).
    """

    path: str
    call: int | None = None
    side: str = "output"
    keys: tuple[int | str, ...] = ()


def parse_site(site: str) -> SiteRef:
    """Split a site spelling (see the module docstring); :class:`SiteError` when it is malformed.

    Parameters
    ----------
    site : str
        ``"path[#call][:input|:output][[key]...]"``.
    """
    m = _SPELLING.match(site)
    if m is None:
        raise SiteError(f"cannot read the site {site!r}; the spelling is 'path[#call][:input|:output][[key]...]', "
                        "e.g. 'layer1.0.relu#1', 'rnn:output[1]', 'encoder:output[last_hidden_state]'")
    keys = tuple(int(k) if re.fullmatch(r"-?\d+", k) else k for k in re.findall(r"\[([^\[\]]+)\]", m["keys"]))
    return SiteRef(m["path"], None if m["call"] is None else int(m["call"]), m["side"] or "output", keys)


def format_site(ref: SiteRef) -> str:
    """The one canonical spelling of a parsed site (``:output`` is written only before element keys).

    Parameters
    ----------
    ref : SiteRef
        The parsed site.
    """
    text = ref.path + (f"#{ref.call}" if ref.call is not None else "")
    if ref.side == "input":
        text += ":input"
    elif ref.keys:
        text += ":output"
    return text + "".join(f"[{k}]" for k in ref.keys)


# ------------------------------------------------------------------------------------------ elements
def _describe(obj: Any) -> str:
    if isinstance(obj, torch.Tensor):
        return f"Tensor{tuple(obj.shape)}"
    return type(obj).__name__


def _elements(obj: Any) -> list[tuple[int | str, Any]]:
    if isinstance(obj, Mapping):
        return list(obj.items())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [(f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)]
    if isinstance(obj, (tuple, list)):
        return list(enumerate(obj))
    return []


def _child(obj: Any, key: int | str, site: str) -> Any:
    try:
        if isinstance(obj, Mapping):
            return obj[key]
        if isinstance(obj, (tuple, list)):
            if isinstance(key, str) and hasattr(obj, "_fields"):
                return getattr(obj, key)
            return obj[key]
        if dataclasses.is_dataclass(obj) and isinstance(key, str):
            return getattr(obj, key)
    except (KeyError, IndexError, TypeError, AttributeError):
        pass
    listing = ", ".join(f"[{k}] {_describe(v)}" for k, v in _elements(obj)) or "none"
    raise SiteError(f"site {site!r}: a {type(obj).__name__} has no element [{key}]; its elements: {listing}")


def select(obj: Any, keys: tuple[int | str, ...], site: str) -> torch.Tensor:
    """The tensor that ``keys`` name inside ``obj``; :class:`SiteError` listing the elements otherwise.

    Parameters
    ----------
    obj : Any
        A module's input or output (tensor, tuple, list, dict or model output).
    keys : tuple of (int or str)
        The element keys, outermost first; none: ``obj`` itself, or the one tensor of ``(output, None, ...)``.
    site : str
        The site's name, for the error message.
    """
    for key in keys:
        obj = _child(obj, key, site)
    if isinstance(obj, torch.Tensor):
        return obj
    elements = _elements(obj)
    if isinstance(obj, tuple) and not keys:
        tensors = [k for k, v in elements if isinstance(v, torch.Tensor)]
        if len(tensors) == 1 and all(v is None for k, v in elements if k != tensors[0]):
            return obj[tensors[0]]  # (output, None, ...): the one tensor is meant
    if not elements:
        raise SiteError(f"site {site!r} gives a {type(obj).__name__}, not a tensor; pick another module")
    prefix = site if keys else (site + "[0]" if site.endswith(":input") else site.removesuffix(":output") + ":output")
    listing = ", ".join(f"{prefix}[{k}] {_describe(v)}" for k, v in elements)
    raise SiteError(f"site {site!r} gives a {type(obj).__name__} of {len(elements)} elements, not one tensor; "
                    f"name the element to read or edit: {listing}")


def replace(obj: Any, keys: tuple[int | str, ...], new: torch.Tensor) -> Any:
    """A copy of ``obj`` with the element that ``keys`` name replaced by ``new`` (``obj`` is not changed).

    Parameters
    ----------
    obj : Any
        A module's input or output (tensor, tuple, named tuple, list, dict or model output).
    keys : tuple of (int or str)
        The element keys, outermost first (none: ``obj`` itself, or its one tensor).
    new : torch.Tensor
        The replacement.
    """
    if not keys:
        if isinstance(obj, torch.Tensor):
            return new
        index = next(k for k, v in _elements(obj) if isinstance(v, torch.Tensor))  # the (output, None) case
        keys = (index,)
    key, rest = keys[0], keys[1:]
    inner = replace(_child(obj, key, "?"), rest, new) if rest else new
    if isinstance(obj, Mapping):
        dup = copy.copy(obj)  # a dict, OrderedDict or transformers ModelOutput keeps its class
        dup[key] = inner
        return dup
    if isinstance(obj, tuple):
        if isinstance(key, str):
            return obj._replace(**{key: inner})
        items = list(obj)
        items[key] = inner
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
    if isinstance(obj, list):
        items = list(obj)
        items[key] = inner
        return items
    return dataclasses.replace(obj, **{str(key): inner})


# ------------------------------------------------------------------------------------------- layouts
@dataclass(frozen=True)
class View:
    """How a site's raw value maps to the layout the engine hands over (and back).

    ``kind``: ``"identity"``; ``"swap"`` (a bridge's ``(batch, head, pos, d)`` -> ``(batch, pos, head, d)``);
    ``"heads"`` (the last two axes regrouped into ``heads`` real heads: a bridge that split a head-major
    ``heads * d_head`` vector by a wrong ``d_head``); ``"batch"`` (batch axis ``axis`` moved first, the rest
    flattened into one unit axis); ``"refused"`` (``reason`` says why; using the site raises it).

    Parameters
    ----------
    kind : {"identity", "swap", "heads", "batch", "refused"}
        ``"identity"``, ``"swap"`` (head and position axes), ``"heads"`` (regroup the last two axes),
        ``"batch"`` (batch axis moved first, the rest flattened) or ``"refused"``.
    axis : int
        The batch axis of ``"batch"``.
    heads : int
        The number of heads of ``"heads"``.
    reason : str
        Why a ``"refused"`` site is refused.
    """

    kind: str = "identity"
    axis: int = 0
    heads: int = 0
    reason: str = ""

    def to(self, value: torch.Tensor) -> torch.Tensor:
        """The raw value in the presented layout.

        Parameters
        ----------
        value : torch.Tensor
            The site's raw value (a refused view raises its :class:`SiteError`).
        """
        if self.kind == "identity":
            return value
        if self.kind == "swap":
            return value.transpose(1, 2)
        if self.kind == "heads":
            return value.reshape(*value.shape[:-2], self.heads, -1)
        if self.kind == "batch":
            return value.movedim(self.axis, 0).reshape(value.shape[self.axis], -1)
        raise SiteError(self.reason)

    def back(self, new: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        """A value in the presented layout turned back into the raw layout of ``raw``.

        Parameters
        ----------
        new : torch.Tensor
            A value in the presented layout (an edit's result).
        raw : torch.Tensor
            The site's raw value, whose layout is restored.
        """
        if self.kind == "identity":
            return new
        if self.kind == "swap":
            return new.transpose(1, 2)
        if self.kind == "heads":
            return new.reshape(raw.shape)
        moved = list(raw.movedim(self.axis, 0).shape)
        return new.reshape(moved).movedim(0, self.axis)


IDENTITY = View()


def batch_view(site: str, small: tuple[int, ...], large: tuple[int, ...] | None, batch: int) -> View:
    """The view of a module site seen with shape ``small`` for ``batch`` inputs and ``large`` for ``batch + 1``.

    Parameters
    ----------
    site : str
        The site's name, for the refusal's reason.
    small : tuple of int
        The value's shape on ``batch`` inputs.
    large : tuple of int, optional
        Its shape on ``batch + 1`` inputs (None: one probe only).
    batch : int
        The probe's batch size.
    """
    if large is None:  # one probe only: accept a batch-first value, refuse a guess
        if small and small[0] == batch and batch not in small[1:]:
            return IDENTITY
        if batch not in small:
            return IDENTITY  # no axis follows the inputs: a value shared by every input (broadcast)
        return View("refused", reason=f"site {site!r} has shape {small} for {batch} inputs and the engine could not "
                                      "tell which axis is the batch; pick a module whose output is batch-first")
    if len(small) != len(large):
        return View("refused", reason=f"site {site!r} changes rank with the batch ({small} vs {large}); "
                                      "pick another module")
    moved = [a for a, (s, t) in enumerate(zip(small, large)) if s != t]
    if not moved:
        return IDENTITY
    if len(moved) == 1 and small[moved[0]] == batch and large[moved[0]] == batch + 1:
        return IDENTITY if moved[0] == 0 else View("batch", axis=moved[0])
    return View("refused", reason=(
        f"site {site!r} has shape {small} for {batch} inputs and {large} for {batch + 1}: no single axis follows "
        "the inputs (e.g. the batch is flattened with positions or routed tokens), so the engine cannot tell "
        "which rows belong to which input; pick a module whose output keeps a batch axis"))


def config_value(config: Any, name: str) -> Any:
    """``config.name``, or None where the config has no single value for it (transformers' per-layer configs,
    Gemma-4's ``head_dim``, raise on the global read) or no such field.

    Parameters
    ----------
    config : object or None
        A Hugging Face (or TransformerLens) config.
    name : str
        The field to read.
    """
    try:
        return getattr(config, name, None)
    except Exception:  # noqa: BLE001 - transformers' AmbiguousGlobalPerLayerAttributeError (and its kin)
        return None


def layer_config(config: Any, layer: int | None) -> Any:
    """The Hugging Face config of block ``layer``: ``config.per_layer_config[layer]`` where the config is
    heterogeneous (Gemma-4: ``head_dim`` differs between sliding and full attention layers), else ``config``.

    Parameters
    ----------
    config : object or None
        The wrapped model's Hugging Face config.
    layer : int or None
        The block; None: the global config.
    """
    if config is None or layer is None:
        return config
    per_layer = config_value(config, "per_layer_config")
    if per_layer is None:
        return config
    try:
        return per_layer[layer]
    except Exception:  # noqa: BLE001 - a view without that layer: the global config answers
        return config


def head_expectations(model: Any, layer: int | None = None) -> dict[str, tuple[int, int | None]]:
    """(heads, d_head) per head-site kind (``q``, ``k``, ``v``, ``z``) from a bridge's configs, for block ``layer``.

    The wrapped Hugging Face config wins over TransformerLens's, read per layer where the config is heterogeneous
    (:func:`layer_config`); multi-head latent attention: queries and keys have ``qk_nope_head_dim +
    qk_rope_head_dim``, values ``v_head_dim``, keys and values are expanded to every head; grouped-query
    attention: ``k`` and ``v`` have ``num_key_value_heads`` heads. ``d_head`` is None where no config gives a
    single value: the probe pass then reads it off the hook (:func:`head_view` checks the heads only).

    Parameters
    ----------
    model : TransformerBridge
        The bridge (its ``cfg`` and the wrapped model's Hugging Face ``config``).
    layer : int, optional
        The block whose attention is described; None reads the model-wide values (``d_head`` None where
        the layers differ).
    """
    cfg = model.cfg
    hf = layer_config(getattr(getattr(model, "original_model", None), "config", None), layer)
    heads = int(config_value(hf, "num_attention_heads") or cfg.n_heads)
    kv = int(config_value(hf, "num_key_value_heads") or getattr(cfg, "n_key_value_heads", None) or heads)
    if hf is not None and config_value(hf, "kv_lora_rank"):  # multi-head latent attention
        qk = int(hf.qk_nope_head_dim) + int(hf.qk_rope_head_dim)
        return {"q": (heads, qk), "k": (heads, qk), "v": (heads, int(hf.v_head_dim)), "z": (heads, int(hf.v_head_dim))}
    try:
        d = getattr(hf, "head_dim", None) or getattr(cfg, "d_head", None) or int(cfg.d_model) // heads
    except Exception:  # noqa: BLE001 - a head_dim per layer and no layer asked: read it off the probe
        d = None
    d = None if d is None else int(d)
    return {"q": (heads, d), "k": (kv, d), "v": (kv, d), "z": (heads, d)}


def head_view(site: str, shape: tuple[int, ...], pos: int, expected: tuple[int, int | None], what: str) -> View:
    """The view of a per-head site seen with ``shape`` on a probe of one input of ``pos`` positions
    (``expected``: heads and d_head; d_head None: any width per head).

    Parameters
    ----------
    site : str
        The site's name, for the refusal's reason.
    shape : tuple of int
        The site's shape on the probe.
    pos : int
        The probe's number of positions.
    expected : tuple of (int, int or None)
        ``(heads, d_head)`` from :func:`head_expectations`; d_head None accepts any width per head.
    what : str
        Which heads, ``"attention"`` or ``"key/value"``, for the refusal's reason.
    """
    heads, d = expected
    if len(shape) != 4:
        return IDENTITY
    if shape[1:3] == (pos, heads) and d in (None, shape[3]):
        return IDENTITY
    if shape[1:3] == (heads, pos) and shape[2] != shape[1] and d in (None, shape[3]):
        return View("swap")
    if d is not None and shape[1] == pos and shape[2] * shape[3] == heads * d:
        return View("heads", heads=heads)
    return View("refused", reason=(
        f"site {site!r} has shape {shape} on a probe of {pos} positions, which matches neither (batch, pos, head, "
        f"d_head) nor (batch, head, pos, d_head) with the {heads} {what} heads of d_head {d} the model's config "
        "gives; the engine cannot tell its head axis, so it refuses the site (read the layer's output, "
        "hook_attn_out, or the module paths inside the attention instead)"))


def neuron_view(site: str, shape: tuple[int, ...], d_mlp: int | None) -> View:
    """The MLP neuron hook of a dense block must have ``d_mlp`` units (its last axis): the width the MLP's output
    projection reads (:func:`interp.engine.sites.mlp_width`); None: no single width is known, refused.

    Parameters
    ----------
    site : str
        The site's name, for the refusal's reason.
    shape : tuple of int
        The site's shape on the probe.
    d_mlp : int or None
        The MLP's width (:func:`interp.engine.sites.mlp_width`); None refuses the site.
    """
    if d_mlp is not None and shape and shape[-1] == d_mlp:
        return IDENTITY
    known = (f"whose last axis is not the MLP's width d_mlp = {d_mlp} (the input width of its output projection): "
             "the engine cannot tell that its units are the MLP's neurons (a fused [gate, up] projection is "
             "2 x d_mlp wide)") if d_mlp is not None else (
        "and the engine cannot tell the MLP's width (no single output projection back to d_model, and the config "
        "gives no d_mlp)")
    return View("refused", reason=(
        f"site {site!r} has shape {shape}, {known}, so it refuses the site (use 'mlp_out', or module paths inside "
        "the MLP)"))
