"""Shortcuts for running many patched copies of one batch: a shared-prefix KV cache and block replay.

Both are exact (checked against a full forward pass before they are used) and both are refused when
the check fails or the model could hide a patch from them:

* :class:`SharedPrefix` -- when two inputs agree on a token prefix and the bridge wraps a causal Hugging
  Face model with a KV cache, the prefix is computed once and each patched copy runs only the suffix.
* :class:`BlockReplay` -- a patch at block ``L`` cannot change blocks ``0..L-1``, so their recorded
  output of the base run is replayed instead of being recomputed. Refused when a block runs twice or
  out of order (weight tying, recurrence), where the full-pass check would pass yet replay would hide
  the patch.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from .hooks import observe_modules, overridden
from .inputs import forward
from .sites import is_bridge, site_names
from .views import parse_site

__all__ = ["SharedPrefix", "BlockReplay", "agrees"]


def agrees(shortcut: torch.Tensor, full: torch.Tensor) -> bool:
    """Whether a shortcut's output equals the full forward pass's (to 1e-4 of the output's scale).

    Parameters
    ----------
    shortcut, full : torch.Tensor
        The two outputs; different shapes disagree. The scale is ``max(|full|)``, at least 1.
    """
    full = full.detach()
    scale = max(float(full.abs().max()), 1.0)
    return shortcut.shape == full.shape and float((shortcut - full).abs().max()) <= 1e-4 * scale


class SharedPrefix:
    """KV cache of the token prefix shared by two inputs (causal HF-backed bridges only)."""

    def __init__(self, model: nn.Module, cache: Any, length: int, prefix_logits: torch.Tensor) -> None:
        self.model, self.cache, self.length, self.prefix_logits = model, cache, length, prefix_logits

    @classmethod
    def build(cls, model: nn.Module, base: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
              base_out: torch.Tensor) -> SharedPrefix | None:
        """The shared prefix of ``a`` and ``b`` cached from ``base``, or None when unavailable or inexact."""
        if not is_bridge(model) or base.ndim != 2 or not hasattr(model, "adapter"):
            return None
        differs = (a != b).any(0).nonzero()
        length = int(differs[0]) if len(differs) else 0
        if length < 2 or getattr(model.cfg, "is_encoder_decoder", False):
            return None
        try:
            with torch.no_grad():
                _, cache = model(base[:, :length], return_type="logits_and_cache")
                probe = cls(model, cache, length, base_out[:, :length])
                check = probe.run(base, 1)
        except Exception:  # noqa: BLE001 - any failure means: no KV-cache path for this model
            return None
        return probe if agrees(check, base_out) else None

    def run(self, inputs: torch.Tensor, n: int) -> torch.Tensor:
        """Forward the suffix of ``inputs`` (example-major, ``n`` copies per example) on the cached prefix."""
        cache = copy.deepcopy(self.cache)
        if n > 1:
            cache.batch_repeat_interleave(n)
        suffix = forward(self.model, inputs[:, self.length:], past_key_values=cache)
        return torch.cat([self.prefix_logits.repeat_interleave(n, 0).to(suffix.dtype), suffix], dim=1)


class BlockReplay:
    """Replay the recorded outputs of the blocks below the lowest patched one instead of computing them.

    Parameters
    ----------
    blocks : torch.nn.ModuleList
        The model's blocks.
    outputs : list
        Each block's recorded output on the base inputs.
    batch : int
        The base inputs' batch size (tensors with that leading axis are repeated per copy).
    """

    def __init__(self, blocks: nn.ModuleList, outputs: list[Any], batch: int) -> None:
        self.blocks, self.outputs, self.batch = blocks, outputs, batch
        self.owner = {id(m): i for i, block in enumerate(blocks) for m in block.modules()}

    @classmethod
    def build(cls, model: nn.Module, runner: Callable[[torch.Tensor, int], torch.Tensor], base: torch.Tensor,
              base_out: torch.Tensor) -> BlockReplay | None:
        """Record every block's output on ``base`` with ``runner``; None when replay would not be exact."""
        blocks = getattr(model, "blocks", None)
        if not isinstance(blocks, nn.ModuleList) or len(blocks) < 2:
            return None
        outputs: list[Any] = [None] * len(blocks)
        order: list[int] = []

        def keep(i: int, out: Any) -> None:
            order.append(i)
            outputs[i] = _map_tensors(out, lambda t: t.detach())

        with torch.no_grad(), observe_modules(list(blocks), keep):
            runner(base, 1)
        if order != list(range(len(blocks))):  # a block run twice or out of order could see the patch
            return None
        replay = cls(blocks, outputs, int(base.shape[0]))
        try:
            with torch.no_grad(), replay.skip(len(blocks) - 1, 1):
                check = runner(base, 1)
        except Exception:  # noqa: BLE001 - any failure means: no block replay for this model
            return None
        return replay if agrees(check, base_out) else None

    def first_block(self, model: nn.Module, site: str) -> int:
        """Index of the block whose forward fires ``site`` (0 when it fires outside every block).

        Parameters
        ----------
        model : torch.nn.Module
            The model the blocks belong to.
        site : str
            A resolved hook name or module path.
        """
        if is_bridge(model):
            point = model.hook_dict.get(site)
        else:
            name = parse_site(site).path
            point = model.get_submodule(name) if name in site_names(model) else None
        return self.owner.get(id(point), 0)

    @contextlib.contextmanager
    def skip(self, upto: int, n: int) -> Iterator[None]:
        """Within the block, blocks ``0..upto-1`` return their recorded output, repeated ``n`` times.

        Parameters
        ----------
        upto : int
            Blocks below this index are replayed.
        n : int
            Copies per example (outputs are repeated example-major).
        """
        replacements = []
        for i in range(upto):
            replay = _map_tensors(self.outputs[i], lambda t: t.repeat_interleave(n, 0) if t.ndim and t.shape[0] ==
                                  self.batch else t)
            replacements.append((self.blocks[i], lambda *args, replay=replay, **kwargs: replay))
        with overridden(replacements):
            yield


def _map_tensors(obj: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_map_tensors(o, fn) for o in obj)
    return obj


