"""The model's own read-out of its residual stream, ``unembed(final_norm(x))``, checked against its logits.

Used by :mod:`interp.label.vocab` (vocabulary projection, the logit lens). The read-out applies everything the
wrapped model does between the last residual stream and its logits: BERT's MLM head transform, the final norm,
the unembedding with its bias, scalar logit factors and final soft caps read from the config
(:func:`logit_transform`). It is checked once per model against the model's own logits; an architecture whose
read-out differs raises, naming the wrapped class and the config entries it may apply.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch

from .. import engine
from ..errors import InputTypeError

__all__ = ["logit_transform", "readout", "check_readout", "require_bridge"]

_CHECKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# ------------------------------------------------------------------------------------------------ read-out


def require_bridge(model: Any) -> None:
    missing = [name for name in ("blocks", "cfg", "W_U") if getattr(model, name, None) is None]
    if not missing:
        return
    what = type(model).__name__
    stacks = engine.encoder_decoder_stacks(model)
    why = (f"; it is an encoder-decoder model with {stacks} instead of one stack of blocks, whose read-out is not "
           "supported: use interp.capture or patching with explicit hook names "
           f"('{stacks[-1]}.*.hook_resid_post') instead" if stacks else "")
    raise InputTypeError(f"vocabulary projection needs a decoder or encoder language model bridge with blocks, cfg and "
                         f"an unembedding W_U; this {what} has no {' / '.join(missing)}{why}")


#: Hugging Face config attributes that rescale the logits after the unembedding, and how the model applies them
_LOGIT_FACTORS = {"logit_scale": "multiply",  # Cohere, Cohere2
                  "output_multiplier": "multiply",  # the models that call it so
                  "lm_head_multiplier": "multiply",  # Falcon-H1
                  "logits_scaling": "divide",  # Granite, GraniteMoe, GraniteMoeShared, GraniteMoeHybrid
                  "final_logit_softcapping": "softcap"}  # Gemma-2, Gemma-3, and families that copied it


def _hf_config(model: Any) -> Any:
    config = getattr(getattr(model, "original_model", None), "config", None)
    return getattr(config, "text_config", None) or config


def logit_transform(model: Any) -> list[tuple[str, str, float]]:
    """What the model does to its logits after the unembedding, read from its config: ``[(attribute, "multiply" |
    "divide" | "softcap", value)]`` in the order the model applies them (scale, then soft cap)."""
    config = _hf_config(model)
    steps = []
    for name, how in _LOGIT_FACTORS.items():
        value = getattr(config, name, None) if config is not None else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 and \
                not (how != "softcap" and value == 1):
            steps.append((name, how, float(value)))
    cap = getattr(model.cfg, "output_logits_soft_cap", None)
    if not any(how == "softcap" for _, how, _ in steps) and isinstance(cap, (int, float)) and cap > 0:
        steps.append(("output_logits_soft_cap", "softcap", float(cap)))
    return steps


def readout(model: Any, x: torch.Tensor) -> torch.Tensor:
    """Final residual stream ``(..., d_model)`` -> logits, through the bridge's own modules."""
    head = getattr(model, "mlm_head", None)
    if head is not None:  # BERT-style MLM head: dense -> activation -> LayerNorm (ln_final) -> decoder
        from transformers.activations import ACT2FN

        x = ACT2FN[getattr(model.cfg, "act_fn", None) or "gelu"](head(x))
    norm = getattr(model, "ln_final", None)  # GPT-1 (post-LN blocks) has no final norm; check_readout verifies
    logits = model.unembed(x if norm is None else norm(x))
    for _, how, value in logit_transform(model):
        if how == "multiply":
            logits = logits * value
        elif how == "divide":
            logits = logits / value
        else:  # soft cap: cap * tanh(logits / cap)
            logits = value * torch.tanh(logits / value)
    return logits


def _unknown_readout(model: Any) -> str:
    """What the read-out did not reproduce: the wrapped class and its logit-related config entries."""
    original = getattr(model, "original_model", None)
    config = _hf_config(model)
    known = set(_LOGIT_FACTORS) | {"attn_logit_softcapping"}
    entries = {} if config is None else {k: v for k, v in config.to_dict().items() if k not in known and any(
        w in k for w in ("logit", "multiplier", "scal", "softcap")) and isinstance(v, (int, float)) and v not in (0, 1)}
    used = [f"{name}={value:g} ({how})" for name, how, value in logit_transform(model)]
    return (f"{type(original).__name__ if original is not None else type(model).__name__}.forward computes its logits "
            f"differently from unembed(ln_final(x)){' with ' + ', '.join(used) if used else ''}"
            + (f"; config entries it may apply and the read-out does not know: {entries}" if entries else ""))


def check_readout(model: Any) -> None:
    """Raise unless ``_readout(last resid_post)`` reproduces the model's logits (once per model)."""
    try:
        if _CHECKED.get(model):
            return
    except TypeError:  # not weak-referenceable: check every time
        pass
    site = f"blocks.{int(model.cfg.n_layers) - 1}.hook_resid_post"
    device = next(model.parameters()).device
    tokens = (torch.arange(1, 4, device=device) % int(model.cfg.d_vocab))[None]
    if site not in model.hook_dict:
        raise InputTypeError(f"vocabulary projection needs {site!r}, which this model does not record")
    with torch.no_grad():
        rec = engine.record(model, tokens, [site])
        logits, got = rec.output, readout(model, rec.acts[site])
    scale = max(float(logits.abs().max()), 1.0)
    tol = 1e-4 if logits.dtype in (torch.float32, torch.float64) else 2e-2
    if got.shape != logits.shape or float((got.float() - logits.float()).abs().max()) > tol * scale:
        raise InputTypeError(
            f"vocabulary projection cannot reproduce the logits of this model ({getattr(model.cfg, 'architecture', '?')}) "
            f"from its last residual stream: {_unknown_readout(model)}; pass final_norm=False for the plain linear "
            "map x @ W_U + b_U"
        )
    try:
        _CHECKED[model] = True
    except TypeError:
        pass
