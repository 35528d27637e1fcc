"""The AH-rule where attention-pattern hooks only observe (BERT-style bridges).

On most bridges the AH-rule detaches ``attn.hook_pattern``. Where the wrapped Hugging Face module computes
attention itself (BERT: the hook sees the pattern but edits never reach the forward pass), the rule goes into
the model's attention function instead: an attention implementation registered with transformers'
``AttentionInterface`` that runs the model's own implementation twice, once as is and once with queries and
keys detached, and returns ``out.detach() + (detached - detached.detach())``. The forward value is the model's
own; in the backward pass the pattern is a constant and relevance flows through the values only.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

__all__ = ["NAME", "CALLS", "attention_configs", "detached_pattern_attention"]

NAME = "interp_detached_pattern"
_ORIGINAL = "_interp_original_attn_implementation"
#: how many times the detached-pattern attention ran (tells whether a model goes through the interface)
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
    """The distinct Hugging Face configs of the model's attention modules (those choosing an implementation)."""
    seen: dict[int, Any] = {}
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "_attn_implementation") and module is not model:
            seen.setdefault(id(config), config)
    return list(seen.values())


@contextlib.contextmanager
def detached_pattern_attention(model: nn.Module) -> Iterator[None]:
    """Run the model's attention with detached patterns in the backward pass while the block runs."""
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
