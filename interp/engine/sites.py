"""Sites: where the engine reads and edits a model.

A *site* is a named place in a model's forward pass:

* on a TransformerLens ``TransformerBridge``, a hook name (``"blocks.3.mlp.hook_post"``), or a module path
  for places without a hook point (``"blocks.0._original_component.mlp._original_component.experts.act_fn"``);
* on any other ``nn.Module``, a module path from ``named_modules()`` (``"blocks.3.mlp.act"``): the
  module's output, or its input with the suffix ``":input"``; ``path#k`` is the ``k``-th call of a module
  that runs several times per forward pass, ``path:output[1]`` / ``path:output[name]`` an element of a
  structured output (spelling and checks: :mod:`interp.engine.views`).

Globs expand (``"blocks.*.mlp.hook_post"``). Short *site kinds* (``"resid_pre"``, ``"attn_out"``,
``"mlp_out"``, ``"heads"``, ``"mlp_post"`` ...) expand to one hook name per layer on a bridge.

The *layout* of a site's activation names its axes: ``unit`` is always the feature axis that
interventions index with ``units=`` and that :func:`interp.capture` calls ``unit`` -- the last axis of
transformer activations and the **channel axis** of conv feature maps ``(N, C, H, W)``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from typing import Any

from torch import nn

from ..errors import InputTypeError, SiteError, closest
from .views import SiteRef, format_site, parse_site

__all__ = ["is_bridge", "is_moe", "site_names", "resolve_sites", "resolve_site", "SITE_KINDS", "KIND_ALIASES",
           "canonical_kind", "is_kind", "kind_hook", "kind_sites", "n_layers", "layer_of", "layout",
           "encoder_decoder_stacks", "split_site", "is_head_site", "head_kind", "mlp_width"]

# site kind -> hook name template; ``{L}`` is the layer
SITE_KINDS: dict[str, str] = {
    "resid_pre": "blocks.{L}.hook_resid_pre",
    "resid_mid": "blocks.{L}.hook_resid_mid",
    "resid_post": "blocks.{L}.hook_resid_post",
    "attn_out": "blocks.{L}.hook_attn_out",
    "mlp_out": "blocks.{L}.hook_mlp_out",
    "z": "blocks.{L}.attn.hook_z",
    "q": "blocks.{L}.attn.hook_q",
    "k": "blocks.{L}.attn.hook_k",
    "v": "blocks.{L}.attn.hook_v",
    "pattern": "blocks.{L}.attn.hook_pattern",
    "mlp_pre": "blocks.{L}.mlp.hook_pre",
    "mlp_post": "blocks.{L}.mlp.hook_post",
}
#: Other spellings of the kinds (``"heads"`` is the per-head output ``hook_z``).
KIND_ALIASES = {"heads": "z", "head": "z", "neurons": "mlp_post", "neuron": "mlp_post", "resid": "resid_pre",
                "attn": "attn_out", "mlp": "mlp_out"}

_HEAD_LEAVES = {"hook_z", "hook_q", "hook_k", "hook_v", "hook_result"}
_PATTERN_LEAVES = {"hook_pattern", "hook_attn_scores"}


def is_bridge(model: Any) -> bool:
    """True for TransformerLens bridges (a ``hook_dict`` of hook points and a ``cfg``).

    A bridge's ``hook_dict`` is a property that rebuilds its aliases on every access (milliseconds), so it is
    looked up on the class, not evaluated.

    Parameters
    ----------
    model : Any
        Any object.
    """
    has = getattr(type(model), "hook_dict", None) is not None or "hook_dict" in getattr(model, "__dict__", {})
    return has and hasattr(model, "cfg")


def site_names(model: nn.Module) -> list[str]:
    """Every site of ``model`` in its own order: hook names (bridges) or module paths.

    Parameters
    ----------
    model : torch.nn.Module
        A ``TransformerBridge`` or any ``nn.Module``.
    """
    if is_bridge(model):
        return list(model.hook_dict.keys())
    return [name for name, _ in model.named_modules() if name]


def is_moe(model: Any, layer: int) -> bool:
    """Whether block ``layer`` of a bridge is a mixture of experts: its ``mlp.hook_pre``/``hook_post`` are then
    the whole MoE block's input and output (d_model), not neurons.

    Decided per block from the module tree (the wrapped block has ``experts``/``router``; TransformerLens binds a
    dense MLP of an interleaved stack as ``bound_dense``) and checked against the Hugging Face config's dense
    layers (``first_k_dense_replace``, ``mlp_only_layers``, ``decoder_sparse_step``, ``mlp_layer_types``); a
    disagreement raises :class:`SiteError`. The config decides only where the module tree says nothing.

    Parameters
    ----------
    model : Any
        The model (anything but a bridge with ``blocks`` gives False).
    layer : int
        The block index.
    """
    blocks = getattr(model, "blocks", None)
    if not is_bridge(model) or blocks is None:
        return False
    mlp = getattr(blocks[layer], "mlp", None)
    if mlp is None:
        return False
    tree, config = _moe_by_modules(mlp), _moe_by_config(model, layer)
    if tree is not None and config is not None and tree != config:
        raise SiteError(f"block {layer}: the module tree says {'a mixture of experts' if tree else 'a dense MLP'} "
                        f"({type(getattr(mlp, 'original_component', mlp)).__name__}) but the config's dense-layer "
                        f"settings say {'a mixture of experts' if config else 'a dense MLP'}; the model was not built "
                        "from its config, so its MLP layout cannot be trusted: rebuild it from the config")
    if tree is not None:
        return tree
    if config is not None:
        return config
    return bool(getattr(model.cfg, "num_experts", None))


def mlp_width(model: Any, layer: int | None, mlp: Any = None) -> int | None:
    """The number of neurons of block ``layer``'s dense MLP, read off its weights: the input width of the MLP's
    output projection back to d_model (the bridge's ``mlp.out`` linear map; ``nn.Linear`` or GPT-2's ``Conv1D``).

    TransformerLens's ``cfg.d_mlp`` is not trusted (it is twice the width on OPT, XGLM, LFM2 ...). Without an
    ``out`` map, the linear maps back to d_model inside the wrapped MLP decide when they agree on one width;
    ``cfg.d_mlp`` only when the MLP has none. None when they disagree (the width is ambiguous: callers refuse).

    Parameters
    ----------
    model : TransformerBridge
        The bridge.
    layer : int or None
        The block whose MLP is measured (``blocks.{layer}.mlp``).
    mlp : torch.nn.Module, optional
        The MLP bridge itself (an encoder-decoder's ``encoder_blocks.{L}.mlp``); ``layer`` is then not used.
    """
    if mlp is None and layer is not None:
        try:
            mlp = getattr(model.blocks[layer], "mlp", None)
        except (AttributeError, IndexError, TypeError):
            mlp = None
    if mlp is None:
        d_mlp = getattr(model.cfg, "d_mlp", None)
        return int(d_mlp) if d_mlp else None
    d_model = int(model.cfg.d_model)
    for name in ("out", "dense_out"):
        width = _in_width(getattr(getattr(mlp, name, None), "original_component", None), d_model)
        if width is not None:
            return width
    original = getattr(mlp, "original_component", mlp)
    widths = {w for module in original.modules() if (w := _in_width(module, d_model)) is not None}
    if len(widths) == 1:
        return widths.pop()
    d_mlp = getattr(model.cfg, "d_mlp", None)
    return int(d_mlp) if not widths and d_mlp else None


def _in_width(module: Any, d_model: int) -> int | None:
    """The input width of a linear map to ``d_model`` (``nn.Linear`` or a ``Conv1D``, weight ``(in, out)``)."""
    if isinstance(module, nn.Linear) and module.out_features == d_model:
        return int(module.in_features)
    weight = getattr(module, "weight", None)
    if type(module).__name__ == "Conv1D" and weight is not None and weight.ndim == 2 and weight.shape[1] == d_model:
        return int(weight.shape[0])
    return None


_DENSE_MLP_ATTRS = ("gate_proj", "up_proj", "down_proj", "c_fc", "fc1", "fc2", "dense_h_to_4h", "w1", "w2", "wi", "wo")


def _moe_by_modules(mlp: Any) -> bool | None:
    """MoE (True), dense (False) or unknown (None) from the module tree of a bridge's ``mlp``."""
    if getattr(mlp, "bound_dense", False) is True:  # TransformerLens bound the dense variant of an MoE stack
        return False
    original = getattr(mlp, "original_component", None)
    if original is None:
        return None
    if any(hasattr(original, attr) for attr in ("experts", "router", "block_sparse_moe")):
        return True
    if any(isinstance(getattr(original, attr, None), nn.Module) for attr in _DENSE_MLP_ATTRS):
        return False
    return None


def _moe_by_config(model: Any, layer: int) -> bool | None:
    """MoE (True), dense (False) or unknown (None) from the Hugging Face config's per-layer settings."""
    config = getattr(getattr(model, "original_model", None), "config", None)
    if config is None:
        return None
    config = getattr(config, "text_config", None) or config
    types = getattr(config, "mlp_layer_types", None)
    if isinstance(types, (list, tuple)) and layer < len(types):
        return str(types[layer]).lower() not in {"dense", "mlp"}
    experts = next((getattr(config, a) for a in ("n_routed_experts", "num_experts", "num_local_experts")
                    if isinstance(getattr(config, a, None), int)), None)
    if experts is not None and experts <= 0:
        return False
    first_dense = getattr(config, "first_k_dense_replace", None)
    if isinstance(first_dense, int):  # DeepSeek-V2/V3, GLM-4-MoE: the first k layers are dense
        return layer >= first_dense
    only, step = getattr(config, "mlp_only_layers", None), getattr(config, "decoder_sparse_step", None)
    if isinstance(only, (list, tuple)) or isinstance(step, int):
        return layer not in (only or ()) and (not isinstance(step, int) or step <= 1 or (layer + 1) % step == 0)
    return None


def n_layers(model: Any) -> int:
    """Number of transformer blocks of a bridge (or of a module with a ``blocks`` list).

    Parameters
    ----------
    model : Any
        The model (a ``TransformerBridge`` or any ``nn.Module``).
    """
    cfg = getattr(model, "cfg", None)
    if cfg is not None and hasattr(cfg, "n_layers"):
        return int(cfg.n_layers)
    blocks = getattr(model, "blocks", None)
    if isinstance(blocks, (nn.ModuleList, nn.Sequential)):
        return len(blocks)
    raise InputTypeError(f"cannot tell the number of layers of a {type(model).__name__}; name the sites explicitly")


_LAYER = re.compile(r"(?:^|\.)(?:blocks|layers|layer|h|_blocks|encoder_blocks|decoder_blocks)\.(\d+)(?:\.|$)")


def layer_of(site: str) -> int | None:
    """Layer index in a site name (``blocks.3.mlp.hook_post`` -> 3), or None when it names no layer.

    Parameters
    ----------
    site : str
        A hook name or module path.
    """
    m = _LAYER.search(site)
    return int(m.group(1)) if m else None


def canonical_kind(kind: str) -> str:
    """The canonical name of a site kind (``"heads"`` -> ``"z"``); :class:`SiteError` if unknown.

    Parameters
    ----------
    kind : str
        A site kind or one of its aliases.
    """
    kind = KIND_ALIASES.get(kind, kind)
    if kind not in SITE_KINDS:
        hint = closest(kind, list(SITE_KINDS) + list(KIND_ALIASES))
        raise SiteError(f"unknown site kind {kind!r}; expected one of {sorted(SITE_KINDS)} or "
                        f"{sorted(KIND_ALIASES)}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    return kind


def is_kind(model: Any, name: str) -> bool:
    """Whether ``name`` is a site kind (rather than a hook name or module path) for ``model``.

    Parameters
    ----------
    model : Any
        The model (a ``TransformerBridge`` or any ``nn.Module``).
    name : str
        A site kind, hook name or module path (kinds only count on a bridge).
    """
    return is_bridge(model) and (name in SITE_KINDS or name in KIND_ALIASES)


def kind_hook(model: Any, kind: str, layer: int) -> str:
    """Hook name of a site kind at ``layer``; :class:`SiteError` when the model lacks it.

    On a mixture-of-experts block ``mlp_pre``/``mlp_post`` would be the block's input and output (d_model), not
    neurons, so they are refused there.

    Parameters
    ----------
    model : TransformerBridge
        The bridge.
    kind : str
        A site kind or alias (``"resid_pre"``, ``"attn_out"``, ``"heads"`` ...).
    layer : int
        The block index.
    """
    if not is_bridge(model):
        raise InputTypeError(f"site kinds like {kind!r} need a TransformerBridge; pass module paths for other models")
    kind = canonical_kind(kind)
    stacks = encoder_decoder_stacks(model)
    if stacks:
        raise SiteError(f"site kinds like {kind!r} name blocks.{{L}} of a one-stack model, but this is an "
                        f"encoder-decoder model ({getattr(model.cfg, 'architecture', type(model).__name__)}) with "
                        f"the stacks {stacks}: name the sites explicitly, e.g. '{stacks[0]}.*.hook_resid_pre' or "
                        f"'{stacks[-1]}.{layer}.hook_mlp_out' (globs and hook names of both stacks work everywhere)")
    if kind in ("mlp_pre", "mlp_post") and is_moe(model, layer):
        raise SiteError(f"block {layer} is a mixture of experts: its mlp.hook_pre/hook_post are the whole block's "
                        f"input and output (d_model), not neurons, so {kind!r} would not address neurons; use "
                        "'mlp_out' for the block, or module paths inside the experts")
    return resolve_site(model, SITE_KINDS[kind].format(L=layer))


def encoder_decoder_stacks(model: Any) -> list[str]:
    """Names of the block stacks of an encoder-decoder bridge (``["encoder_blocks", "decoder_blocks"]`` for T5 and
    BART), or ``[]`` for a model with one stack of ``blocks``.

    Parameters
    ----------
    model : Any
        The model (a ``TransformerBridge`` or any ``nn.Module``).
    """
    if not is_bridge(model) or getattr(model, "blocks", None) is not None:
        return []
    return [name for name in ("encoder_blocks", "decoder_blocks") if getattr(model, name, None) is not None]


def kind_sites(model: Any, kind: str, layers: Sequence[int] | None = None) -> list[str]:
    """One hook name per layer for a site kind (all layers by default).

    Parameters
    ----------
    model : TransformerBridge
        The bridge.
    kind : str
        A site kind or alias.
    layers : Sequence[int], optional
        The layers (default all).
    """
    chosen = range(n_layers(model)) if layers is None else layers
    return [kind_hook(model, kind, int(layer)) for layer in chosen]


def resolve_sites(model: nn.Module, sites: str | Sequence[str]) -> list[str]:
    """Expand globs and check that every site exists; unknown names raise :class:`SiteError`
    with the closest names suggested. Order follows the model's own order of sites.

    A ``*`` matches within one dotted component when it can (``"_blocks.*"`` gives the blocks, not all of
    their submodules); otherwise it matches across dots (``"*hook_resid_pre"``).

    Parameters
    ----------
    model : torch.nn.Module
        A ``TransformerBridge`` (hook names) or any ``nn.Module`` (module paths).
    sites : str or Sequence[str]
        Names or globs, with the ``#call`` and ``:input``/``:output[...]`` spelling of
        :mod:`interp.engine.views`.
    """
    patterns = [sites] if isinstance(sites, str) else list(sites)
    if not patterns:
        raise SiteError("no sites given; pass hook names (bridges) or module paths (nn.Module)")
    if not all(isinstance(p, str) for p in patterns):
        raise InputTypeError(f"sites are hook names or module paths (strings), got {patterns!r}")
    names = site_names(model)
    known = set(names)
    bridge = is_bridge(model)
    chosen: list[str] = []
    for pattern in patterns:
        base, call, suffix, keys = split_site(pattern)
        pool, pool_set = names, known
        if bridge and (suffix or call is not None or (base not in known and _is_module_path(model, base))):
            # a bridge also takes module paths, for places without a hook point (e.g. MoE expert internals)
            if base in known and call is not None:
                raise SiteError(f"site {pattern!r}: a hook point runs once per forward pass, so it takes no '#call'")
            pool = [n for n, _ in model.named_modules() if n]
            pool_set = set(pool)
        if any(c in base for c in "*?["):
            matched = [n for n in pool if fnmatch.fnmatchcase(n, base)]
            # '*' prefers to stay within one path component: '_blocks.*' is the blocks, not every submodule
            matched = [n for n in matched if n.count(".") == base.count(".")] or matched
        else:
            matched = [base] if base in pool_set else []
        if not matched:
            hint = closest(base, names, n=5)
            what = "hook names" if bridge else "module paths"
            kinds = (f"; site kinds such as {sorted(SITE_KINDS)[:6]} are accepted by the attribution methods"
                     if bridge and base in SITE_KINDS | KIND_ALIASES else "")
            raise SiteError(f"the model has no site matching {pattern!r}"
                            + (f"; closest {what}: {hint}" if hint else f"; it has {len(names)} {what}, e.g. {names[:5]}")
                            + kinds)
        chosen.extend(format_site(SiteRef(m, call, suffix or "output", keys)) for m in matched)
    seen: set[str] = set()
    return [s for s in chosen if not (s in seen or seen.add(s))]


def split_site(pattern: str) -> tuple[str, int | None, str, tuple[int | str, ...]]:
    """``"layer1.*.relu#1:output[0]"`` -> (path or glob, call, ``"input"``/``"output"``/``""``, element keys).

    The spelling is that of :mod:`interp.engine.views`; a glob's ``[...]`` classes stay in the path (element
    keys come only after ``:input``/``:output``).

    Parameters
    ----------
    pattern : str
        A site name or glob.
    """
    head, colon, tail = pattern.partition(":")
    suffix, keys = "", ()
    if colon:
        m = re.fullmatch(r"(input|output)((?:\[[^\[\]]+\])*)", tail)
        if m is None:
            raise SiteError(f"site {pattern!r}: after ':' comes 'input' or 'output', optionally with element keys "
                            "('rnn:output[1]', 'encoder:output[last_hidden_state]', 'attn:input[1]')")
        suffix, keys = m[1], parse_site(f"x:{tail}").keys
    call = None
    m = re.fullmatch(r"(.*)#(\d+)", head)
    if m is not None:
        head, call = m[1], int(m[2])
    elif "#" in head:
        raise SiteError(f"site {pattern!r}: a call is named with '#' and a number, e.g. 'layer1.0.relu#1'")
    return head, call, suffix, keys


def is_head_site(site: str) -> bool:
    """Whether ``site`` is a per-head hook of a bridge (queries, keys, values or head outputs).

    Parameters
    ----------
    site : str
        A hook name.
    """
    return head_kind(site) is not None


def head_kind(site: str) -> str | None:
    """``"q"``, ``"k"``, ``"v"`` or ``"z"`` for a per-head hook name (``attn.hook_k``, ``attn.k.hook_out``,
    ``attn.o.hook_in`` ...), else None.

    Parameters
    ----------
    site : str
        A hook name.
    """
    for kind, ends in (("q", (".hook_q", ".q.hook_out")), ("k", (".hook_k", ".k.hook_out")),
                       ("v", (".hook_v", ".v.hook_out")), ("z", (".hook_z", ".o.hook_in"))):
        if site.endswith(ends) and ":" not in site:
            return kind
    return None


def _is_module_path(model: nn.Module, path: str) -> bool:
    try:
        model.get_submodule(path)
    except AttributeError:
        return False
    return bool(path)


def resolve_site(model: nn.Module, site: str) -> str:
    """Check that one site (no glob) exists and return its name.

    Parameters
    ----------
    model : torch.nn.Module
        A ``TransformerBridge`` (hook names) or any ``nn.Module`` (module paths).
    site : str
        A name that must match exactly one site (:class:`SiteError` otherwise, with the closest names).
    """
    if not isinstance(site, str):
        raise InputTypeError(f"a site is a hook name or module path string, got {type(site).__name__}")
    found = resolve_sites(model, site)
    if len(found) != 1:
        raise SiteError(f"site {site!r} matches {len(found)} sites {found[:5]}; name exactly one")
    return found[0]


def layout(site: str, ndim: int, bridge: bool) -> dict[str, int]:
    """Axis of each named dim of a site's activation with ``ndim`` axes (the batch is axis 0).

    * attention patterns/scores (bridge): ``[batch, head, query_pos, key_pos]`` -> head 1, pos 2, unit 3;
    * per-head vectors (``hook_z``, ``hook_q`` ...): ``[batch, pos, head, d_head]`` (the engine hands them over
      in this layout whatever the bridge's own, with the heads of the config: ``k``/``v`` have the key/value
      heads under grouped-query attention; see :mod:`interp.engine.views`);
    * conv feature maps of plain modules ``[batch, channel, height, width]``: ``unit`` is the channel;
    * everything else ``[batch, pos, unit]`` or ``[batch, unit]``.

    Parameters
    ----------
    site : str
        The site's name.
    ndim : int
        The activation's number of axes.
    bridge : bool
        Whether the site is a hook of a bridge (the attention layouts apply only there).
    """
    leaf = site.split(":")[0].split("#")[0].rsplit(".", 1)[-1]
    if bridge and leaf in _PATTERN_LEAVES and ndim == 4:
        return {"head": 1, "pos": 2, "unit": 3}
    if bridge and ndim == 4 and (leaf in _HEAD_LEAVES or site.endswith((".q.hook_out", ".k.hook_out", ".v.hook_out",
                                                                         ".o.hook_in"))):
        return {"pos": 1, "head": 2, "unit": 3}
    if ndim == 4 and not bridge:
        return {"unit": 1, "height": 2, "width": 3}
    if ndim == 3:
        return {"pos": 1, "unit": 2}
    if ndim == 2:
        return {"unit": 1}
    if ndim == 4:
        return {"pos": 1, "head": 2, "unit": 3}
    return {}
