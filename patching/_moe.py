"""RelP's rules inside mixture-of-experts blocks.

TransformerLens maps ``mlp.hook_pre``/``hook_post`` of a MoE block to the whole block's input and output, so
the MLP rules cannot go on those hooks (the Identity rule on the block anti-correlates with activation
patching). Inside the block, the experts of Hugging Face's fused layout (``gate_up_proj``, ``down_proj``,
``act_fn``: Mixtral, Qwen2-MoE, OLMoE ... in transformers 5) compute, per expert ``e`` and routed token,
``w_e * down_e(act(gate_e x) * up_e x)``. The rule-aware forward below computes the same values and changes
only the backward pass:

* **Identity** on each expert's activation: ``act(g)`` passes gradient ``act(g) / g``;
* **Half** on each expert's gated product ``act(g) * u`` (relevance split equally between the factors);
* router weights treated like gates (as LRP treats gates and RelP's AH-rule attention patterns): the routing
  weight ``w_e`` is a constant of the backward pass, so the relevance of ``w_e * expert_e(x)`` flows into the
  expert. This keeps relevance conserved (a softmax weight is not linear in ``x``; halving its share, as the
  Half rule does for two linear factors, would leak relevance).

Llama-4's batched layout (``gate_up_proj`` ``(E, D, 2F)``, tokens sorted per expert and *scaled by their sigmoid
routing score before* the experts) gets the same rules in :func:`rule_aware_bmm_experts`, and its router a forward
that returns the same scores detached (the score is a gate on the input).

JetMoE's ``ParallelExperts`` (tokens grouped per expert, ``(E, out, in)`` weights; its attention is a mixture of
attention heads of the same layout) keeps its own forward: :func:`parallel_experts_overrides` detaches the routing
gates its routers return and puts the Half rule at the input of the MLP's ``output_linear``.

The replacement is checked against the module's own forward on the model's dimensions before it is used; an
expert implementation it does not reproduce is reported as not covered (and is an error when a rule was asked
for by name). The shared expert of Qwen2-MoE is a plain gated MLP with hook points and takes the usual rules;
its sigmoid gate passes plain gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["experts_of", "layer_experts", "rule_aware_experts", "rule_aware_bmm_experts", "rule_aware_glu_experts",
           "reproduces", "moe_overrides", "parallel_experts_overrides"]


def experts_of(model: nn.Module, layer: int) -> tuple[nn.Module | None, str]:
    """The fused experts module of a bridge's MoE block ``layer`` and its module path (None if not fused)."""
    mlp = model.blocks[layer].mlp
    original = getattr(mlp, "original_component", mlp)
    experts = getattr(original, "experts", None)
    if experts is None:  # experts beside a dense MLP, children of the decoder layer (Gemma-4's enable_moe_block)
        experts = layer_experts(model, layer)
    fused = (all(hasattr(experts, a) for a in ("gate_up_proj", "down_proj", "num_experts"))
             and (hasattr(experts, "act_fn") or _clamped_glu(experts)))
    if not fused:
        return None, ""
    path = next((name for name, module in model.named_modules() if module is experts), "")
    return experts, path


def layer_experts(model: nn.Module, layer: int) -> nn.Module | None:
    """The experts that are a child of decoder layer ``layer`` itself, next to its MLP and routed by a ``router``
    child of the layer (Gemma-4: ``experts(norm(x), *router(x)[1:][::-1])`` added to the dense MLP's output);
    None when the layer has none.

    Parameters
    ----------
    model : nn.Module
        A ``TransformerBridge``.
    layer : int
        The decoder layer.
    """
    original = getattr(model.blocks[layer], "original_component", None)
    experts = getattr(original, "experts", None)
    return experts if isinstance(experts, nn.Module) and isinstance(getattr(original, "router", None),
                                                                     nn.Module) else None


def rule_aware_experts(experts: nn.Module, identity: bool, half: bool,
                       straight: Callable, identity_surrogate: Callable) -> Callable[..., torch.Tensor]:
    """A forward for ``experts`` computing its values with RelP's surrogates for the backward pass."""
    scale = 0.5 if half else 1.0

    def forward(hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor) -> torch.Tensor:
        final = torch.zeros_like(hidden_states)
        with torch.no_grad():
            mask = F.one_hot(top_k_index, num_classes=experts.num_experts + 1).permute(2, 1, 0)
            hit = torch.greater(mask.sum(dim=(-1, -2)), 0).nonzero()
        for e in hit:
            e = e[0]
            if e == experts.num_experts:
                continue
            top_k_pos, token_idx = torch.where(mask[e])
            gate, up = F.linear(hidden_states[token_idx], experts.gate_up_proj[e]).chunk(2, dim=-1)
            a = experts.act_fn(gate)
            a_sur = identity_surrogate(gate, a) if identity else a
            h = F.linear(straight(a * up, scale * a_sur * up), experts.down_proj[e])
            w = top_k_weights[token_idx, top_k_pos, None]
            routed = straight(h * w, h * w.detach())
            final.index_add_(0, token_idx, routed.to(final.dtype))
        return final

    return forward


def rule_aware_bmm_experts(experts: nn.Module, identity: bool, half: bool, straight: Callable,
                           identity_surrogate: Callable) -> Callable[..., torch.Tensor]:
    """The same for Llama-4's batched layout: ``forward(routed_in)`` with tokens already sorted per expert and
    scaled by their routing scores (``gate_up_proj`` of shape ``(E, D, 2F)``, ``down_proj`` ``(E, F, D)``)."""
    scale = 0.5 if half else 1.0

    def forward(hidden_states: torch.Tensor) -> torch.Tensor:
        h = hidden_states.view(experts.gate_up_proj.shape[0], -1, experts.gate_up_proj.shape[1])
        gate, up = torch.bmm(h, experts.gate_up_proj).chunk(2, dim=-1)
        a = experts.act_fn(gate)
        a_sur = identity_surrogate(gate, a) if identity else a
        out = torch.bmm(straight(up * a, scale * up * a_sur), experts.down_proj)
        return out.view(-1, out.shape[-1])

    return forward


def _clamped_glu(experts: nn.Module) -> bool:
    """GPT-OSS's experts: ``(E, D, 2F)`` weights with biases, interleaved gate/up columns and ``_apply_gate``."""
    return all(hasattr(experts, a) for a in ("_apply_gate", "gate_up_proj_bias", "down_proj_bias", "alpha", "limit"))


def rule_aware_glu_experts(experts: nn.Module, identity: bool, half: bool, straight: Callable,
                           identity_surrogate: Callable) -> Callable[..., torch.Tensor]:
    """GPT-OSS's experts, ``((clamp(up) + 1) * glu(clamp(gate))) @ down + b`` per routed token: the Identity rule on
    each factor's elementwise function (``u -> clamp(u) + 1`` passes gradient ``(clamp(u) + 1) / u``, so its ``+ 1``
    is relevance of ``u`` and not a bias), the Half rule on their product, routing weights constant."""
    scale = 0.5 if half else 1.0

    def forward(hidden_states: torch.Tensor, router_indices: torch.Tensor, routing_weights: torch.Tensor
                ) -> torch.Tensor:
        final = torch.zeros_like(hidden_states)
        with torch.no_grad():
            mask = F.one_hot(router_indices, num_classes=experts.num_experts).permute(2, 1, 0)
            hit = torch.greater(mask.sum(dim=(-1, -2)), 0).nonzero()
        for e in hit:
            e = e[0]
            top_k_pos, token_idx = torch.where(mask[e])
            gate_up = hidden_states[token_idx] @ experts.gate_up_proj[e] + experts.gate_up_proj_bias[e]
            value = experts._apply_gate(gate_up)
            gate, up = gate_up[..., ::2], gate_up[..., 1::2]
            clamped = gate.clamp(max=experts.limit)
            glu = clamped * torch.sigmoid(clamped * experts.alpha)
            shifted = up.clamp(min=-experts.limit, max=experts.limit) + 1
            if identity:
                glu, shifted = identity_surrogate(gate, glu), identity_surrogate(up, shifted)
            h = straight(value, scale * glu * shifted) @ experts.down_proj[e] + experts.down_proj_bias[e]
            w = routing_weights[token_idx, top_k_pos, None]
            final.index_add_(0, token_idx, straight(h * w, h * w.detach()).to(final.dtype))
        return final

    return forward


def _bmm_layout(experts: nn.Module) -> bool:
    """Llama-4's experts: weights ``(E, D, 2F)`` and ``(E, F, D)``, a forward of the routed inputs only."""
    gate_up, down = experts.gate_up_proj, experts.down_proj
    return not _clamped_glu(experts) and (gate_up.ndim == 3 and down.ndim == 3 and gate_up.shape[2] == 2 * down.shape[1]
            and gate_up.shape[1] == down.shape[2] and gate_up.shape[1] != gate_up.shape[2])


def _detached_router(moe: nn.Module) -> tuple[nn.Module, Callable] | None:
    """Llama-4 scales each expert's *input* by its sigmoid routing score: the score is a gate, a constant of the
    backward pass (as the routing weights of the other layouts). A forward for the router returning the same
    ``(scores, logits)`` with the scores detached; None when the MoE block has no such router."""
    router = getattr(moe, "router", None)
    router = getattr(router, "original_component", router)
    if not isinstance(router, nn.Linear):
        return None
    forward = type(router).forward

    def detached(hidden_states: torch.Tensor) -> Any:
        scores, *rest = forward(router, hidden_states)
        return (scores.detach(), *rest)

    return router, detached


def reproduces(experts: nn.Module, forward: Callable[..., torch.Tensor], top_k: int = 2) -> bool:
    """Whether ``forward`` gives the module's own output on random tokens routed to random experts."""
    g = torch.Generator().manual_seed(0)
    d = experts.gate_up_proj.shape[1 if _clamped_glu(experts) else -1]
    param = experts.gate_up_proj
    x = torch.randn(12, d, generator=g).to(param.device, param.dtype)
    k = min(top_k, experts.num_experts)
    idx = torch.stack([torch.randperm(experts.num_experts, generator=g)[:k] for _ in range(12)]).to(param.device)
    w = torch.rand(12, k, generator=g).to(param.device, param.dtype)
    if _bmm_layout(experts):
        x = torch.randn(experts.gate_up_proj.shape[0] * 3, experts.gate_up_proj.shape[1], generator=g).to(param)
        with torch.no_grad():
            mine, theirs = forward(x), experts(x)
        scale = max(float(theirs.abs().max()), 1e-6)
        return mine.shape == theirs.shape and float((mine - theirs).abs().max()) <= 1e-5 * scale
    try:
        with torch.no_grad():
            mine, theirs = forward(x, idx, w), experts(x, idx, w)
    except (RuntimeError, TypeError, ValueError, IndexError):  # another layout (Llama-4's (E, D, 2F) weights)
        return False
    scale = max(float(theirs.abs().max()), 1e-6)
    return mine.shape == theirs.shape and float((mine - theirs).abs().max()) <= 1e-5 * scale


def _parallel_experts(module: nn.Module) -> bool:
    """JetMoE's ``ParallelExperts`` layout: ``input_linear`` and ``output_linear`` with ``(E, out, in)`` weights
    applied to tokens grouped per expert, routed by a ``router`` returning ``(index, batch_index, gates, sizes,
    logits)``."""
    return (all(getattr(getattr(module, name, None), "weight", torch.empty(0)).ndim == 3
                for name in ("input_linear", "output_linear")) and isinstance(getattr(module, "router", None), nn.Module))


def _detached_gates(router: nn.Module) -> tuple[nn.Module, Callable]:
    """A forward for a ``ParallelExperts`` router returning the same tuple with the gates (item 2) detached."""
    forward = type(router).forward

    def detached(hidden_states: torch.Tensor) -> Any:
        out = forward(router, hidden_states)
        return (*out[:2], out[2].detach(), *out[3:])

    return router, detached


def parallel_experts_overrides(moe: nn.Module, half: bool, straight: Callable) -> list[tuple[nn.Module, Callable]]:
    """JetMoE's mixture of experts (MLP) or of attention heads (``experts`` of its attention): the routing gates
    constant (as the routing weights of the fused layout), and in the MLP, ``output(act(h1) * h2)``, the Half rule
    on the gated product at the input of ``output_linear`` (the Identity rule on ``activation`` is a module rule,
    :func:`patching.relp_cover.inner_modules`). Values unchanged; empty when ``moe`` is not of that layout.

    Parameters
    ----------
    moe : nn.Module
        The MoE block or the attention's mixture of attention heads.
    half : bool
        Whether the Half rule is on.
    straight : Callable
        ``straight(value, surrogate)``: ``value`` forwards, ``surrogate``'s gradient backwards.
    """
    router = getattr(moe.router, "original_component", moe.router)
    if not _parallel_experts(moe) or not hasattr(router, "top_k"):
        return []
    out = [_detached_gates(router)]
    if half and isinstance(getattr(moe, "activation", None), nn.Module):
        linear = moe.output_linear
        forward = type(linear).forward
        out.append((linear, lambda inputs, expert_size, linear=linear, forward=forward:
                    forward(linear, straight(inputs, 0.5 * inputs), expert_size)))
    return out


def moe_overrides(model: nn.Module, layers: range, names: set[str], straight: Callable,
                  identity_surrogate: Callable) -> tuple[list[tuple[nn.Module, Any]], list[str], list[str]]:
    """Rule-aware expert forwards for every MoE layer; returns (replacements, covered paths, uncovered layers)."""
    replacements, covered, uncovered = [], [], []
    for layer in layers:
        experts, path = experts_of(model, layer)
        if experts is None:
            moe = getattr(model.blocks[layer].mlp, "original_component", None)
            parallel = parallel_experts_overrides(moe, "half" in names, straight) if moe is not None else []
            attn = getattr(getattr(model.blocks[layer], "attn", None), "original_component", None)
            heads = getattr(attn, "experts", None)
            if parallel and heads is not None:  # JetMoE's mixture of attention heads: its gates too
                parallel += parallel_experts_overrides(heads, False, straight)
            if not parallel:
                uncovered.append(f"blocks.{layer}.mlp")
            replacements += parallel
            covered += [f"blocks.{layer}.mlp (parallel experts, routing gates detached)"] * bool(parallel)
            continue
        bmm = _bmm_layout(experts)
        make = (rule_aware_bmm_experts if bmm else rule_aware_glu_experts if _clamped_glu(experts)
                else rule_aware_experts)
        forward = make(experts, "identity" in names, "half" in names, straight, identity_surrogate)
        router = _detached_router(getattr(model.blocks[layer].mlp, "original_component", None)) if bmm else None
        if not reproduces(experts, forward) or (bmm and router is None):
            uncovered.append(path)
            continue
        replacements.append((experts, forward))
        covered.append(path)
        if router is not None:
            replacements.append(router)
            covered.append(f"blocks.{layer}.mlp.router (routing scores detached)")
    return replacements, covered, uncovered
