"""Per-head inputs and outputs of attention on a TransformerBridge, for edge-level analyses.

TransformerLens bridges expose each head's own residual input (``attn.hook_q_input``, ``hook_k_input``,
``hook_v_input``: ``[batch, pos, head, d_model]``, key/value inputs per *key/value* head under GQA/MQA),
each head's own residual write (``attn.hook_result``: ``[batch, pos, head, d_model]``) and the MLP's own
input (``hook_mlp_in``), but only while the model's ``use_split_qkv_input`` / ``use_attn_result`` /
``use_hook_mlp_in`` flags are on. :func:`split_inputs` switches them on while a block runs and restores the
caller's flags afterwards (also on error); the forward values do not change.

>>> with split_inputs(model):                                         # doctest: +SKIP
...     rec = engine.record(model, tokens, ["blocks.1.attn.hook_k_input"])
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ..errors import InputTypeError

__all__ = ["split_inputs"]

_FLAGS = (("use_attn_result", "set_use_attn_result"), ("use_split_qkv_input", "set_use_split_qkv_input"),
          ("use_hook_mlp_in", "set_use_hook_mlp_in"))


@contextlib.contextmanager
def split_inputs(model: Any) -> Iterator[Any]:
    """Enable per-head q/k/v inputs, per-head results and the MLP input hook while the block runs.

    Only the switches that were off are turned on, and back off afterwards (``use_attn_in`` is switched off
    meanwhile, as it excludes split inputs).

    Parameters
    ----------
    model : TransformerBridge
        The bridge (anything else is an :class:`InputTypeError`).
    """
    cfg = getattr(model, "cfg", None)
    if cfg is None or not all(hasattr(model, setter) for _, setter in _FLAGS):
        raise InputTypeError(f"per-head inputs need a TransformerLens TransformerBridge, got {type(model).__name__}")
    changed: list[str] = []
    attn_in = bool(getattr(cfg, "use_attn_in", False))
    try:
        if attn_in:  # exclusive with split q/k/v inputs
            model.set_use_attn_in(False)
        for flag, setter in _FLAGS:
            if not getattr(cfg, flag, False):  # only touch what changes: each switch rebuilds the hook aliases
                getattr(model, setter)(True)
                changed.append(setter)
        yield model
    finally:
        for setter in reversed(changed):
            getattr(model, setter)(False)
        if attn_in:
            model.set_use_attn_in(True)
