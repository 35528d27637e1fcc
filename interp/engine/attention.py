"""Attention swaps: the model's attention with its pattern detached in the backward pass (RelP's AH-rule).

On most bridges RelP's AH-rule (Ali et al. 2022, "XAI for Transformers: Better Explanations through Conservative
Propagation"; used by Rezaei Jafari et al. 2025, RelP) detaches ``attn.hook_pattern``. Where the wrapped Hugging
Face module computes attention itself, edits at that hook never reach the forward pass, and the rule goes into the
model's attention function instead. Two forms are covered, both leaving every forward value unchanged:

* :func:`detached_pattern_attention`: an attention implementation registered with transformers'
  ``AttentionInterface`` (BERT) that runs the model's own implementation twice, once as is and once with queries
  and keys detached, and returns ``out.detach() + (detached - detached.detach())``;
* :func:`detached_pattern_method`: attention modules with their own ``_attn(query, key, value, attention_mask)``
  (GPT-J, GPT-Neo) get an ``_attn`` that calls the original on detached queries and keys.

In the backward pass the pattern is a constant and relevance flows through the values only. ``CALLS`` counts how
often either swap ran, so a caller can tell whether the model goes through it at all.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

__all__ = ["NAME", "CALLS", "attention_configs", "detached_pattern_attention", "attention_methods",
           "detached_pattern_method"]

NAME = "interp_detached_pattern"
_ORIGINAL = "_interp_original_attn_implementation"
#: how many times a detached-pattern attention ran (tells whether a model goes through the swap)
CALLS = [0]


def _implementation(module: nn.Module, name: str) -> Callable[..., Any]:
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    if name in ALL_ATTENTION_FUNCTIONS:
        return ALL_ATTENTION_FUNCTIONS[name]
    return sys.modules[type(module).__module__].eager_attention_forward


def _detached(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
              attention_mask: torch.Tensor | None, **kwargs: Any) -> tuple[torch.Tensor, Any]:
    CALLS[0] += 1
    base = _implementation(module, getattr(module.config, _ORIGINAL))
    out, weights = base(module, query, key, value, attention_mask, **kwargs)
    surrogate, _ = base(module, query.detach(), key.detach(), value, attention_mask, **kwargs)
    return out.detach() + (surrogate - surrogate.detach()), weights


def attention_configs(model: nn.Module) -> list[Any]:
    """The distinct Hugging Face configs of the model's attention modules (those choosing an implementation).

    Parameters
    ----------
    model : nn.Module
        A Hugging Face model, or a bridge wrapping one.
    """
    seen: dict[int, Any] = {}
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "_attn_implementation") and module is not model:
            seen.setdefault(id(config), config)
    return list(seen.values())


@contextlib.contextmanager
def detached_pattern_attention(model: nn.Module) -> Iterator[None]:
    """Run the model's attention with detached patterns in the backward pass while the block runs.

    Parameters
    ----------
    model : nn.Module
        A model whose attention goes through transformers' ``AttentionInterface`` (BERT).
    """
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, _detached)
    configs = attention_configs(model)
    try:
        for config in configs:
            object.__setattr__(config, _ORIGINAL, config._attn_implementation)
            config._attn_implementation = NAME
        yield
    finally:
        for config in configs:
            if hasattr(config, _ORIGINAL):
                config._attn_implementation = getattr(config, _ORIGINAL)
                object.__delattr__(config, _ORIGINAL)


def attention_methods(model: nn.Module) -> list[nn.Module]:
    """Attention modules of ``model`` that compute their pattern in their own ``_attn(query, key, value,
    attention_mask)`` method (GPT-J, GPT-Neo), outside transformers' ``AttentionInterface``.

    Parameters
    ----------
    model : nn.Module
        Any model; its modules are searched.
    """
    found = []
    for module in model.modules():
        method = getattr(type(module), "_attn", None)
        if not callable(method):
            continue
        try:
            params = list(inspect.signature(method).parameters)
        except (TypeError, ValueError):
            continue
        if params[1:4] == ["query", "key", "value"]:
            found.append(module)
    return found


@contextlib.contextmanager
def detached_pattern_method(model: nn.Module) -> Iterator[None]:
    """Run the ``_attn`` of every module of :func:`attention_methods` on detached queries and keys while the block
    runs: the same values, with the attention pattern a constant of the backward pass.

    Parameters
    ----------
    model : nn.Module
        A model with modules of :func:`attention_methods` (GPT-J, GPT-Neo); others are left as they are.
    """
    modules = attention_methods(model)

    def swap(module: nn.Module) -> Callable[..., Any]:
        original = type(module)._attn

        def _attn(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            CALLS[0] += 1
            return original(module, query.detach(), key.detach(), value, *args, **kwargs)
        return _attn

    done = []
    try:
        for module in modules:
            if "_attn" in module.__dict__:
                continue  # already swapped (nested use)
            object.__setattr__(module, "_attn", swap(module))
            done.append(module)
        yield
    finally:
        for module in done:
            module.__dict__.pop("_attn", None)
