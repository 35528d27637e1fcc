"""What RelP's rules reach on a bridge, found from the module tree: the parts no rule covers, and the modules that
take a rule without a hook point.

RelP (Rezaei Jafari et al. 2025, arXiv 2508.21258) makes every layer linear in its input given detached
coefficients: LN-rule on norms, Identity/Half on MLP activations and gated products, the AH-rule on attention
patterns (Ali et al. 2022). A bridge's hook points carry those rules for its norms, attentions and MLPs; two
things are left:

* **Uncovered components** (:func:`uncovered`): a component of a decoder layer that holds parameters and is none
  of a linear map, a norm, an attention with a pattern, an MLP with pre/post activations or a mixture of experts.
  Those are the state-space, recurrent and linear-attention mixers (Mamba and Mamba-2 ``A_log``/``D``, RWKV's time
  mix, RecurrentGemma's RG-LRU, gated delta nets, Zamba2's hybrid layers): their recurrences, gates and causal
  convolutions with a SiLU take no rule, so relevance would not be conserved. RelP refuses them by name. Found
  by what the layer is made of (no list of architecture names); :data:`_STATE_PARAMETERS` is the documented
  fallback for plain modules, where there is no bridge to read: a module holding a state recurrence's own
  parameters.
* **Inner modules** (:func:`inner_modules`): norms no norm bridge wraps (BitNet's ``ffn_sub_norm`` and
  ``attn_sub_norm`` inside its MLP and attention) and the parts of a mixture-of-experts block that are not
  the routed experts or a bridged component (GLM-4-MoE's and AFMoE's ``shared_experts``, plain gated MLPs with
  no hook points), and the elementwise activations that are children of a decoder layer itself (Gemma-4's
  per-layer-input gate ``act_fn(per_layer_input_gate(h)) * per_layer_input``, Per-Layer Embeddings). They take
  the module rules of plain ``nn.Module`` models.

Experts beside a dense MLP (Gemma-4's ``enable_moe_block``: ``router`` and ``experts`` children of the decoder
layer, added to the MLP's output) are covered when the rule-aware expert forward of :mod:`patching._moe`
reproduces them (routing weights constant, as the attention pattern under the AH-rule), else named.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from interp import engine

from ._moe import experts_of, layer_experts
from .relp_probe import activation_kind, norm_kind

__all__ = ["uncovered", "inner_modules", "attention_gates", "per_layer_input_layers", "detached_per_layer_inputs"]

#: parameters that only a state recurrence has (Mamba/Mamba-2/gated delta nets ``A_log``, RWKV ``time_decay``,
#: RG-LRU ``recurrent_param``): the fallback that finds those mixers in a plain ``nn.Module``
_STATE_PARAMETERS = ("A_log", "time_decay", "recurrent_param")
#: children of an attention module that gate its output, ``o_proj(attn * sigmoid(gate_proj(x)))`` (AFMoE, Laguna's
#: softplus ``g_proj``, Qwen3-Next): a gate, like the pattern, is a constant of the backward pass (Arras et al. 2017,
#: "Explaining recurrent neural network predictions in sentiment analysis": gates pass no relevance)
_ATTENTION_GATES = ("gate_proj", "g_proj", "gate")
_NORMS = (nn.LayerNorm,) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())


def _is_bridge_component(module: nn.Module) -> bool:
    return "_original_component" in module._modules


def _points(model: nn.Module, prefix: str) -> set[str]:
    """The hook points of a bridge component at ``prefix`` (aliases included: ``mlp.hook_pre`` may be an inner
    linear map's output)."""
    return {name[len(prefix) + 1:] for name in model.hook_dict if name.startswith(prefix + ".")}


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, _NORMS) or norm_kind(module) is not None


def _has_parameters(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def _covered(model: nn.Module, child: nn.Module, bridged: dict[int, str], is_moe: bool) -> bool:
    """Whether a part of a decoder layer is something a RelP rule covers (or needs none: a linear map). ``bridged``:
    the bridge path of every bridge component (its hook points tell what it is)."""
    if isinstance(child, (nn.Linear, nn.Embedding)) or not _has_parameters(child):
        return True
    if not _is_bridge_component(child):
        if _is_norm(child):
            return True
        # a plain wrapper around bridged components (GPT-Neo's attn around its bridged attn.attention)
        kids = list(child.children())
        return (not child._parameters and any(id(k) in bridged for k in child.modules())
                and all(_covered(model, k, bridged, is_moe) for k in kids))
    if isinstance(child._modules["_original_component"], (nn.Linear, nn.Embedding)):
        return True
    points = _points(model, bridged[id(child)]) if id(child) in bridged else set()
    return ("hook_scale" in points or "hook_pattern" in points or {"hook_pre", "hook_post"} <= points
            or (is_moe and "hook_router_scores" in points) or _is_norm(child._modules["_original_component"]))


def uncovered(model: nn.Module) -> list[str]:
    """The components of ``model`` that no RelP rule covers and that are not linear (``"blocks.0: mamba
    (BambaMixer)"``); empty when every part of every layer takes a rule.

    Parameters
    ----------
    model : nn.Module
        A ``TransformerBridge`` (its decoder layers are read) or a plain module (searched for
        :data:`_STATE_PARAMETERS`).
    """
    if not engine.is_bridge(model):
        return [f"{path} ({type(module).__name__}: holds {', '.join(own)})" for path, module in model.named_modules()
                if (own := [n for n in _STATE_PARAMETERS if n in module._parameters])]
    found = []
    for layer in range(engine.n_layers(model)):
        original = getattr(model.blocks[layer], "original_component", None)
        if original is None:
            continue
        is_moe = engine.is_moe(model, layer)
        bridged: dict[int, str] = {}
        for path, module in model.blocks[layer].named_modules(remove_duplicate=False):
            if path and _is_bridge_component(module) and "_original_component" not in path.split("."):
                bridged.setdefault(id(module), f"blocks.{layer}.{path}")  # the hook names' spelling
        beside = layer_experts(model, layer)
        # experts beside the MLP take the rule-aware expert forward (routing weights constant: the router is a
        # gate) when it reproduces them; otherwise they stay uncovered and are named
        routed = (beside, original.router) if beside is not None and experts_of(model, layer)[0] is beside else ()
        for name, child in original.named_children():
            if not any(child is r for r in routed) and not _covered(model, child, bridged, is_moe):
                inner = child._modules.get("_original_component", child)
                found.append(f"blocks.{layer}: {name} ({type(inner).__name__})")
    return found


def inner_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(path, module)`` of a bridge's modules that take the plain-module rules: norms that no norm bridge wraps,
    and the parts of mixture-of-experts blocks outside the routed experts and outside bridged components.

    Parameters
    ----------
    model : nn.Module
        A ``TransformerBridge``.
    """
    wrapped = {id(m._modules["_original_component"]) for m in model.modules()
               if _is_bridge_component(m) and "hook_scale" in m._modules}
    moe_roots: dict[int, Any] = {}
    for layer in range(engine.n_layers(model)):
        mlp = getattr(model.blocks[layer], "mlp", None)
        original = getattr(mlp, "original_component", None)
        if original is not None and engine.is_moe(model, layer):
            moe_roots[id(original)] = getattr(original, "experts", None)
    activations = _layer_activations(model)
    out: list[tuple[str, nn.Module]] = []
    seen: set[int] = set()

    def walk(path: str, module: nn.Module, in_moe: bool, skip: Any) -> None:
        if id(module) in seen:
            return
        seen.add(id(module))
        if id(module) in moe_roots:
            in_moe, skip = True, moe_roots[id(module)]
        elif in_moe and (module is skip or _is_bridge_component(module)):
            return  # the routed experts (their own rule-aware forward) or a bridged part (its hook points)
        if id(module) not in wrapped and not _is_bridge_component(module) and (
                (in_moe and module is not skip) or _is_norm(module) or id(module) in activations):
            out.append((path, module))
        for name, child in module.named_children():
            walk(f"{path}.{name}" if path else name, child, in_moe, skip)

    walk("", model, False, None)
    return [(path, module) for path, module in out if path]


def _layer_activations(model: nn.Module) -> set[int]:
    """``id``s of the elementwise activations that are children of a decoder layer itself, outside its bridged
    attention and MLP (Gemma-4's per-layer-input gate ``act_fn(per_layer_input_gate(h)) * per_layer_input``):
    no hook point carries their Identity rule."""
    found = set()
    for layer in range(engine.n_layers(model)):
        original = getattr(model.blocks[layer], "original_component", None)
        for child in (original.children() if original is not None else ()):
            if not _is_bridge_component(child) and not _has_parameters(child) and activation_kind(child):
                found.add(id(child))
    return found


def attention_gates(model: nn.Module) -> list[str]:
    """Module paths of the output-gate projections of a bridge's attentions (children named in
    :data:`_ATTENTION_GATES` of an attention with a ``hook_pattern``), whose outputs the AH-rule detaches.

    Parameters
    ----------
    model : nn.Module
        A ``TransformerBridge``.
    """
    found = []
    for name in sorted(n for n in model.hook_dict if n.endswith(".hook_pattern")):
        prefix = name[: -len(".hook_pattern")]
        attn = model.get_submodule(prefix)
        original = getattr(attn, "original_component", None)
        for gate in _ATTENTION_GATES:
            if isinstance(getattr(original, gate, None), nn.Module) and gate in attn._modules:
                found.append(f"{prefix}.{gate}")
            elif isinstance(getattr(original, gate, None), nn.Module):
                found.append(f"{prefix}._original_component.{gate}")
    return found


def per_layer_input_layers(model: nn.Module) -> list[tuple[str, nn.Module, int]]:
    """``(path, module, position)`` of the modules whose ``forward`` takes a ``per_layer_input`` (Gemma-4's and
    Gemma-3n's decoder layers: Per-Layer Embeddings, ``act_fn(per_layer_input_gate(h)) * per_layer_input``), with
    the argument's position; only layers with ``per_layer_*`` children (Per-Layer Embeddings switched on).

    Parameters
    ----------
    model : nn.Module
        A plain module (on a bridge the per-layer inputs are computed before ``blocks.0.hook_resid_pre``, constants
        of every hook point's gradient already).
    """
    found = []
    for path, module in model.named_modules():
        try:
            names = list(inspect.signature(module.forward).parameters)
        except (TypeError, ValueError):
            continue
        if "per_layer_input" in names and any(name.startswith("per_layer") for name, _ in module.named_children()):
            found.append((path, module, names.index("per_layer_input")))
    return found


def detached_per_layer_inputs(layers: list[tuple[str, nn.Module, int]]) -> list[tuple[nn.Module, Any]]:
    """Forwards for ``layers`` (:func:`per_layer_input_layers`) that detach their ``per_layer_input`` (for
    ``engine.overridden``): a coefficient of the backward pass, as the attention pattern under the AH-rule, so that
    the product ``act_fn(gate(h)) * per_layer_input`` is linear in ``h`` (as on a bridge, where it is computed
    before the first hook point). Values unchanged.

    Parameters
    ----------
    layers : list of tuple[str, nn.Module, int]
        ``(path, module, position of per_layer_input in forward)``.
    """
    def replacement(module: nn.Module, position: int) -> Any:
        forward = type(module).forward

        def detached(*args: Any, **kwargs: Any) -> Any:
            if len(args) > position and args[position] is not None:
                args = (*args[:position], args[position].detach(), *args[position + 1:])
            if kwargs.get("per_layer_input") is not None:
                kwargs["per_layer_input"] = kwargs["per_layer_input"].detach()
            return forward(module, *args, **kwargs)

        return detached

    return [(module, replacement(module, position)) for _, module, position in layers]
