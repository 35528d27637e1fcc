"""Shared plumbing for the patching package: site names, site kinds and hook installation.

Sites use the same scheme as :func:`interp.capture`: TransformerLens hook names on a
``TransformerBridge`` (``"blocks.0.attn.hook_z"``, globs allowed) and module paths from
``named_modules()`` on any other ``nn.Module``. Short *site kinds* (``"resid_pre"``,
``"attn_out"``, ``"mlp_out"``, ``"z"``, ``"mlp_post"``, ...) expand to one hook name per layer.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from interp.capture import is_bridge, resolve_sites
from interp.errors import ConfigError, InputTypeError, MismatchError, SiteError, closest

__all__ = ["is_bridge", "resolve_sites", "resolve_site", "SITE_KINDS", "kind_hook", "hooks", "layout",
           "to_tokens", "check_pair", "n_layers", "site_layer"]

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
KIND_ALIASES = {"heads": "z", "head": "z", "neurons": "mlp_post", "neuron": "mlp_post", "resid": "resid_pre",
                "attn": "attn_out", "mlp": "mlp_out"}


def n_layers(model: Any) -> int:
    """Number of transformer blocks of a bridge."""
    return int(model.cfg.n_layers)


def canonical_kind(kind: str) -> str:
    kind = KIND_ALIASES.get(kind, kind)
    if kind not in SITE_KINDS:
        hint = closest(kind, list(SITE_KINDS) + list(KIND_ALIASES))
        raise SiteError(f"unknown site kind {kind!r}; expected one of {sorted(SITE_KINDS)}"
                        + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    return kind


def kind_hook(model: Any, kind: str, layer: int) -> str:
    """Hook name of a site kind at ``layer``; raises :class:`SiteError` when the model lacks it."""
    if not is_bridge(model):
        raise InputTypeError(f"site kinds like {kind!r} need a TransformerBridge; pass module paths for other models")
    name = SITE_KINDS[canonical_kind(kind)].format(L=layer)
    return resolve_site(model, name)


def resolve_site(model: nn.Module, site: str) -> str:
    """Check that one site (no glob) exists and return its name."""
    if not isinstance(site, str):
        raise InputTypeError(f"a site is a hook name or module path string, got {type(site).__name__}")
    found = resolve_sites(model, site)
    if len(found) != 1:
        raise SiteError(f"site {site!r} matches {len(found)} sites {found[:5]}; name exactly one")
    return found[0]


def site_layer(site: str) -> int | None:
    """Layer index in a ``blocks.{L}....`` hook name, else None."""
    parts = site.split(".")
    if len(parts) > 1 and parts[0] == "blocks" and parts[1].isdigit():
        return int(parts[1])
    return None


def layout(site: str) -> dict[str, int]:
    """Axis positions of the named dims of a site's activation (batch is axis 0).

    Attention patterns/scores are ``[batch, head, query_pos, key_pos]``; per-head vectors
    (``hook_z``, ``hook_q`` ...) are ``[batch, pos, head, d_head]``; everything else is
    ``[batch, pos, unit]`` (or ``[batch, unit]``/``[batch, channel, ...]`` for other modules).
    """
    leaf = site.rsplit(".", 1)[-1]
    if leaf in {"hook_pattern", "hook_attn_scores"}:
        return {"head": 1, "pos": 2, "unit": 3}
    if leaf in {"hook_z", "hook_q", "hook_k", "hook_v", "hook_result"} or site.endswith(
            (".q.hook_out", ".k.hook_out", ".v.hook_out", ".o.hook_in")):
        return {"pos": 1, "head": 2, "unit": 3}
    return {"pos": 1, "unit": -1}


@contextlib.contextmanager
def hooks(model: nn.Module, fns: Sequence[tuple[str, Callable[[torch.Tensor], torch.Tensor | None]]]) -> Iterator[None]:
    """Install forward hooks ``fn(activation) -> new activation | None`` on sites for the block's duration.

    On a bridge the hook goes on the hook point (aliases and reshaping conventions of
    TransformerLens apply); on other modules it edits the module's output (the first element of
    a tuple output).
    """
    removers: list[Callable[[], None]] = []
    try:
        if is_bridge(model):
            for site, fn in fns:
                point = model.hook_dict[site]
                handle = point.add_hook(lambda act, hook, fn=fn: fn(act))
                removers.append(lambda point=point, handle=handle: _remove_lens_handle(point, handle))
        else:
            modules = dict(model.named_modules())
            for site, fn in fns:
                handle = modules[site].register_forward_hook(lambda m, args, out, fn=fn: _apply_to_output(out, fn))
                removers.append(handle.remove)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*hook_scale/hook_normalized.*")
            yield
    finally:
        for remove in reversed(removers):
            remove()


def _remove_lens_handle(point: Any, handle: Any) -> None:
    handle.hook.remove()
    if handle in point.fwd_hooks:
        point.fwd_hooks.remove(handle)


def _apply_to_output(out: Any, fn: Callable[[torch.Tensor], torch.Tensor | None]) -> Any:
    if isinstance(out, tuple):
        new = fn(out[0])
        return None if new is None else (new,) + tuple(out[1:])
    return fn(out)


def to_tokens(model: Any, inputs: Any) -> Any:
    """Token tensor for a bridge from strings or tokens; other inputs pass through unchanged."""
    if isinstance(inputs, str):
        inputs = [inputs]
    if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(t, str) for t in inputs):
        if not is_bridge(model):
            raise InputTypeError("texts need a TransformerBridge with a tokenizer; pass tensors for other models")
        rows = [model.to_tokens(t)[0] for t in inputs]
        lengths = {len(r) for r in rows}
        if len(lengths) != 1:
            raise MismatchError(f"the prompts tokenize to different lengths {sorted(lengths)}; patching needs "
                                "prompts of equal token length (pad or rephrase them)")
        return torch.stack(rows)
    if isinstance(inputs, torch.Tensor):
        return inputs if inputs.ndim > 1 or not is_bridge(model) else inputs.unsqueeze(0)
    if isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], (list, tuple)):
        return torch.tensor(inputs)
    raise InputTypeError(f"inputs must be texts or a tensor, got {type(inputs).__name__}")


def check_pair(clean: torch.Tensor, corrupted: torch.Tensor) -> None:
    """Clean and corrupted inputs must have the same shape (same batch and token length)."""
    if not isinstance(clean, torch.Tensor) or not isinstance(corrupted, torch.Tensor):
        raise InputTypeError("clean and corrupted inputs must be tensors (or texts for a bridge)")
    if clean.shape != corrupted.shape:
        what = "token lengths" if clean.ndim == 2 and clean.shape[0] == corrupted.shape[0] else "shapes"
        raise MismatchError(f"clean and corrupted inputs have different {what}: {tuple(clean.shape)} vs "
                            f"{tuple(corrupted.shape)}; patching compares matching positions, so they must be equal")


def run(model: nn.Module, inputs: Any, **kwargs: Any) -> torch.Tensor:
    """Forward a bridge (tokens) or a module; returns the output (logits)."""
    out = model(inputs, **kwargs)
    if isinstance(out, tuple):
        out = out[0]
    if hasattr(out, "logits"):
        out = out.logits
    return out


def config_error_unknown(key: str, allowed: Sequence[str], where: str) -> ConfigError:
    hint = closest(key, allowed)
    return ConfigError(f"unknown key {key!r} in {where}; allowed: {sorted(allowed)}"
                       + (f" (did you mean {hint[0]!r}?)" if hint else ""))
