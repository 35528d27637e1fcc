"""Shortcuts for running many patched copies of one batch: a shared-prefix KV cache and block replay.

Both are exact (checked against a full forward pass before they are used) and both are refused when
the check fails or the model could hide a patch from them:

* :class:`SharedPrefix` -- when two inputs agree on a token prefix and the bridge wraps a causal Hugging
  Face model with a KV cache, the prefix is computed once and each patched copy runs only the suffix.
* :class:`BlockReplay` -- a patch at block ``L`` cannot change blocks ``0..L-1``, so their recorded
  output of the base run is replayed instead of being recomputed. Refused when a block runs twice or
  out of order (weight tying, recurrence), where the full-pass check would pass yet replay would hide
  the patch.
* :class:`ReadPositions` -- a metric that reads the logits at one position per example (a logit
  difference at the last token) needs the unembedding of those rows only: the input of the bridge's
  unembedding (after the final norm, so any norm is computed as before) is cut to them. Exact because the
  unembedding is a ``Linear`` applied to each position alone; refused for any other unembedding.
* :class:`ReadTokens` -- a metric that reads the logits of a few tokens, each on its own (a logit
  difference), needs those rows of the unembedding only: the ``Linear`` is swapped for its rows of those
  tokens. Exact for the same reason (each logit is one row's dot product); the caller checks a pass against
  the full logits before use.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DimensionError
from .hooks import Hook, hooked, observe_modules, overridden
from .inputs import forward
from .sites import is_bridge, site_names
from .views import parse_site

__all__ = ["SharedPrefix", "BlockReplay", "ReadPositions", "ReadTokens", "agrees"]

UNEMBED_INPUT = "unembed.hook_in"


class ReadPositions:
    """Unembed only the positions a metric reads: one per example (an int for all, or one index each).

    ``hook()`` is the :class:`~interp.engine.Hook` that cuts the unembedding's input
    ``(rows, pos, d_model)`` to ``(rows, 1, d_model)``: the logits then hold the read position only, so the
    metric must read position 0 (see :meth:`patching.metrics.Metric.at_read_positions`).

    Parameters
    ----------
    positions : int or torch.Tensor
        The position read in every example (negative counts from the end), or one index per example.
    """

    def __init__(self, positions: int | torch.Tensor) -> None:
        self.positions = positions

    @classmethod
    def of(cls, model: nn.Module, positions: Any) -> ReadPositions | None:
        """The cut for a bridge whose unembedding is a ``Linear`` (per position), else None (unembed all).

        Parameters
        ----------
        model : nn.Module
            The model; only a ``TransformerBridge`` with an ``unembed.hook_in`` before a ``Linear`` is cut.
        positions : Any
            What the metric declares: an int, or a 1-D integer tensor (one index per example).
        """
        if _linear_unembedding(model) is None:
            return None
        if isinstance(positions, int) and not isinstance(positions, bool):
            return cls(positions)
        if isinstance(positions, torch.Tensor) and positions.ndim <= 1 and not positions.is_floating_point() \
                and positions.numel() >= 1 and positions.dtype != torch.bool:
            return cls(int(positions) if positions.numel() == 1 else positions.detach().long().reshape(-1))
        return None

    def shifted(self, offset: int, length: int) -> ReadPositions | None:
        """The same positions in inputs whose first ``offset`` of ``length`` positions were cut off (a shared
        prefix); None when one of them lies inside the cut-off part.

        Parameters
        ----------
        offset : int
            Positions cut off at the start.
        length : int
            Positions of the whole input.
        """
        def move(p: torch.Tensor) -> torch.Tensor:
            p = torch.where(p < 0, p + length, p)
            return p - offset
        moved = move(torch.as_tensor(self.positions))
        if bool((moved < 0).any()) or bool((moved >= length - offset).any()):
            return None
        return ReadPositions(int(moved) if moved.ndim == 0 else moved)

    def hook(self, copy_major: bool = False) -> Hook:
        """The cut, for batches of one or several copies of each example (``copy_major``: rows ``[x; x; ...]``
        as :func:`~interp.engine.repeat` makes them, else example-major as ``repeat_interleave``).

        Parameters
        ----------
        copy_major : bool
            Rows are whole copies of the batch one after the other (else each example's copies are adjacent).
        """
        positions = self.positions

        def cut(x: torch.Tensor) -> torch.Tensor:
            if isinstance(positions, int):
                return x.narrow(1, positions % x.shape[1], 1)
            per = positions.to(x.device)
            if len(per) != x.shape[0]:
                if x.shape[0] % len(per):
                    raise DimensionError(f"the metric reads {len(per)} positions (one per example) but the batch "
                                         f"has {x.shape[0]} rows; give one position per example")
                reps = x.shape[0] // len(per)
                per = per.repeat(reps) if copy_major else per.repeat_interleave(reps)
            return x[torch.arange(x.shape[0], device=x.device), per][:, None]
        return Hook(UNEMBED_INPUT, cut)


def _linear_unembedding(model: nn.Module) -> nn.Linear | None:
    """The bridge's unembedding when it is a plain ``Linear`` behind ``unembed.hook_in``, else None."""
    if not is_bridge(model) or UNEMBED_INPUT not in getattr(model, "hook_dict", {}):
        return None
    unembed = getattr(getattr(model, "unembed", None), "original_component", None)
    return unembed if type(unembed) is nn.Linear else None


class ReadTokens:
    """Unembed only the tokens a metric reads: the unembedding ``Linear`` is swapped (with
    :func:`~interp.engine.overridden`) for its rows of ``tokens``, so the logits are ``[..., len(tokens)]``.

    Parameters
    ----------
    unembed : torch.nn.Linear
        The model's unembedding.
    tokens : torch.Tensor
        Sorted distinct token ids; logit column ``j`` is token ``tokens[j]``.
    """

    def __init__(self, unembed: nn.Linear, tokens: torch.Tensor) -> None:
        self.unembed, self.tokens = unembed, tokens

    @classmethod
    def of(cls, model: nn.Module, tokens: torch.Tensor | None) -> ReadTokens | None:
        """The cut for a bridge whose unembedding is a ``Linear``, else None (unembed every token).

        Parameters
        ----------
        model : nn.Module
            The model.
        tokens : torch.Tensor, optional
            Sorted distinct token ids (what the metric declares); None: no cut.
        """
        unembed = _linear_unembedding(model)
        if unembed is None or tokens is None or not len(tokens) or int(tokens.max()) >= unembed.out_features:
            return None
        return cls(unembed, tokens)

    def replacements(self) -> list[tuple[nn.Module, Callable[..., Any]]]:
        """``[(unembed, forward)]`` for :func:`~interp.engine.overridden`: the logits of ``tokens`` only."""
        index = self.tokens.to(self.unembed.weight.device)
        weight = self.unembed.weight.index_select(0, index)
        bias = None if self.unembed.bias is None else self.unembed.bias.index_select(0, index)
        return [(self.unembed, lambda x: F.linear(x, weight, bias))]


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
    """KV cache of the token prefix shared by two inputs (causal HF-backed bridges only).

    Parameters
    ----------
    model : torch.nn.Module
        A causal Hugging Face-backed bridge.
    cache : Any
        The KV cache of the prefix (``past_key_values``).
    length : int
        The prefix's number of tokens.
    prefix_logits : torch.Tensor
        The full pass's logits over the prefix, ``(batch, length, vocab)`` (not used with ``read``).
    read : ReadPositions, optional
        The positions the metric reads (all in the suffix); the runs then return only their logits.
    """

    def __init__(self, model: nn.Module, cache: Any, length: int, prefix_logits: torch.Tensor,
                 read: ReadPositions | None = None) -> None:
        self.model, self.cache, self.length, self.prefix_logits = model, cache, length, prefix_logits
        self.read = read

    @classmethod
    def build(cls, model: nn.Module, base: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
              base_out: torch.Tensor, read: ReadPositions | None = None) -> SharedPrefix | None:
        """The shared prefix of ``a`` and ``b`` cached from ``base``, or None when unavailable or inexact.

        With ``read`` the runs return the logits at those positions only (``base_out`` holds just them);
        None when one of them lies in the prefix.

        Parameters
        ----------
        model : nn.Module
            A causal Hugging Face-backed bridge.
        base : torch.Tensor
            The tokens the patched copies run on.
        a, b : torch.Tensor
            The two inputs whose shared prefix is cached.
        base_out : torch.Tensor
            The full forward pass's output on ``base`` (the check).
        read : ReadPositions, optional
            The positions the metric reads.
        """
        if not is_bridge(model) or base.ndim != 2 or not hasattr(model, "adapter"):
            return None
        differs = (a != b).any(0).nonzero()
        length = int(differs[0]) if len(differs) else 0
        if length < 2 or getattr(model.cfg, "is_encoder_decoder", False):
            return None
        if read is not None:
            read = read.shifted(length, int(base.shape[1]))
            if read is None:
                return None
        try:
            # with a read, the prefix's logits are never used: one position is unembedded, for the cache alone
            with torch.no_grad():
                with hooked(model, [ReadPositions(-1).hook()] if read is not None else []):
                    _, cache = model(base[:, :length], return_type="logits_and_cache")
                probe = cls(model, cache, length, base_out[:, :length], read)
                check = probe.run(base, 1)
        except Exception:  # noqa: BLE001 - any failure means: no KV-cache path for this model
            return None
        return probe if agrees(check, base_out) else None

    def run(self, inputs: torch.Tensor, n: int) -> torch.Tensor:
        """Forward the suffix of ``inputs`` (example-major, ``n`` copies per example) on the cached prefix.

        Parameters
        ----------
        inputs : torch.Tensor
            Token ids ``(batch * n, pos)``, example-major; their prefix must equal the cached one.
        n : int
            Copies per example (the cache is repeated to match).
        """
        cache = copy.deepcopy(self.cache)
        if n > 1:
            cache.batch_repeat_interleave(n)
        if self.read is not None:  # the logits at the read positions only (all in the suffix)
            with hooked(self.model, [self.read.hook()]):
                return forward(self.model, inputs[:, self.length:], past_key_values=cache)
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


