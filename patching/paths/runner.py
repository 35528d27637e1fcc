"""Running a model with edits at one token position of each path site (on the hook engine)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from interp import engine
from interp.engine import Hook
from interp.errors import ConfigError, DimensionError, InputTypeError, SiteError

__all__ = ["mlp_sites", "PassCounter", "SiteRunner", "Edit", "batches", "targets_of", "neuron_mask", "target_prob"]

Edit = Callable[[torch.Tensor], "torch.Tensor | None"]


def mlp_sites(model: Any) -> list[str]:
    """Default path sites: the MLP hidden neurons of every block, in layer order.

    TransformerBridge -> ``blocks.{L}.mlp.hook_post``; an ``nn.Module`` with ``model.blocks[i].mlp.act``
    (the zoo's ViTs) -> ``blocks.{i}.mlp.act``. Anything else: pass ``sites`` yourself.

    Parameters
    ----------
    model : torch.nn.Module
        A ``TransformerBridge`` or a module with ``model.blocks[i].mlp.act``.
    """
    if engine.is_bridge(model):
        n_layers = int(model.cfg.n_layers)
        return [f"blocks.{i}.mlp.hook_post" for i in range(n_layers)]
    blocks = getattr(model, "blocks", None)
    if blocks is not None and all(hasattr(getattr(b, "mlp", None), "act") for b in blocks):
        return [f"blocks.{i}.mlp.act" for i in range(len(blocks))]
    raise ConfigError(
        f"cannot guess the MLP sites of a {type(model).__name__}; pass sites=[...] (module paths such as "
        "'layers.0.mlp.act', or TransformerBridge hook names), one per layer in layer order"
    )


@dataclass
class PassCounter:
    """Counts forward and backward passes (one per model call / autograd call) and their batch rows.

    Parameters
    ----------
    forward, backward : int
        Passes so far.
    rows : int
        Batch rows of the forward passes so far.
    """

    forward: int = 0
    backward: int = 0
    rows: int = 0

    def reset(self) -> None:
        self.forward = self.backward = self.rows = 0


class SiteRunner:
    """Runs a model with edits at the chosen position of each site and returns target-position logits.

    Parameters
    ----------
    model : torch.nn.Module
        A ``TransformerBridge`` or any ``nn.Module``.
    sites : Sequence[str]
        Distinct sites, one per layer, in layer order; each outputs ``(batch, pos, units)`` or
        ``(batch, units)``.
    position : int or torch.Tensor, optional
        Token position edited and read (default 0); a tensor gives one position per row (its length must
        divide the batch).
    forward : Callable, optional
        ``forward(model, inputs) -> logits`` (default ``model(inputs)``).
    """

    def __init__(self, model: Any, sites: Sequence[str], position: int | torch.Tensor | None, forward=None):
        if isinstance(sites, str) or not isinstance(sites, Sequence) or len(sites) == 0:
            raise ConfigError(f"sites must be a non-empty list of site names, one per layer; got {sites!r}")
        if len(set(sites)) != len(sites):
            dup = sorted({s for s in sites if list(sites).count(s) > 1})
            raise ConfigError(f"sites must be distinct (one per layer); repeated: {dup}")
        if not isinstance(model, torch.nn.Module):
            raise InputTypeError(f"model must be a torch.nn.Module or a TransformerBridge; got {type(model).__name__}")
        self.model = model
        self.sites = [engine.resolve_site(model, s) for s in sites]
        self.position = position
        self.forward_fn = forward
        self.bridge = engine.is_bridge(model)
        self.counter = PassCounter()

    # -- positions -------------------------------------------------------------------------------
    def _pos(self, n: int, t: int, device) -> torch.Tensor:
        pos = 0 if self.position is None else self.position
        if isinstance(pos, int):
            p = torch.full((n,), pos, dtype=torch.long, device=device)
        else:
            p = torch.as_tensor(pos, dtype=torch.long, device=device).reshape(-1)
            if n % len(p):
                raise DimensionError(f"{len(p)} positions do not divide a batch of {n} rows")
            p = p.repeat(n // len(p))
        if ((p < -t) | (p >= t)).any():
            raise DimensionError(f"position {p.tolist()[:4]} out of range for {t} tokens")
        return p % t

    def _apply(self, act: torch.Tensor, edit: Edit) -> torch.Tensor | None:
        if isinstance(act, tuple):
            raise InputTypeError("path sites must output a single tensor (batch, pos, units) or (batch, units)")
        if act.ndim == 2:
            out = edit(act)
            return None if out is None else out
        if act.ndim != 3:
            raise DimensionError(f"site activations must be (batch, pos, units) or (batch, units); got {tuple(act.shape)}")
        n, t = act.shape[:2]
        rows = torch.arange(n, device=act.device)
        pos = self._pos(n, t, act.device)
        out = edit(act[rows, pos])
        if out is None:
            return None
        return act.index_put((rows, pos), out.to(act.dtype))

    def edit_hooks(self, edits: Mapping[int, Edit]) -> list[Hook]:
        """Engine hooks applying ``edits`` at the position.

        Parameters
        ----------
        edits : Mapping[int, Edit]
            ``{site index: edit}``; an edit maps the ``(rows, units)`` vector at the position to a new one,
            or returns None to leave it.
        """
        return [Hook(self.sites[k], lambda act, e=e: self._apply(act, e)) for k, e in edits.items()]

    def logits(self, inputs: Any, edits: Mapping[int, Edit] | None = None) -> torch.Tensor:
        """Model logits at the target position, shape (n, n_classes), with ``edits`` applied.

        Parameters
        ----------
        inputs : Any
            A batch of model inputs.
        edits : Mapping[int, Edit], optional
            ``{site index: edit}``; an edit maps the ``(rows, units)`` vector at the position to a new one, or
            returns None to leave it (default: no edits).
        """
        with engine.hooked(self.model, self.edit_hooks(edits or {})):
            out = self.forward_fn(self.model, inputs) if self.forward_fn is not None else self.model(inputs)
        self.counter.forward += 1
        self.counter.rows += len(out) if hasattr(out, "__len__") else 0
        if isinstance(out, (tuple, list)):
            out = out[0]
        if hasattr(out, "logits"):
            out = out.logits
        if out.ndim == 3:
            n, t = out.shape[:2]
            out = out[torch.arange(n, device=out.device), self._pos(n, t, out.device)]
        if out.ndim != 2:
            raise DimensionError(f"the model output must be logits (batch, classes) or (batch, pos, vocab); got {tuple(out.shape)}")
        return out

    def capture(self, inputs: Any) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Clean activations at the position of every site (list of (B, d)) and logits; checks site order.

        Parameters
        ----------
        inputs : Any
            A batch of model inputs.
        """
        store: dict[int, torch.Tensor] = {}
        order: list[int] = []

        def recorder(k):
            def edit(vec):
                order.append(k)
                store[k] = vec.detach().clone()
                return None

            return edit

        with torch.no_grad():
            logits = self.logits(inputs, {k: recorder(k) for k in range(len(self.sites))})
        missing = [self.sites[k] for k in range(len(self.sites)) if k not in store]
        if missing:
            raise SiteError(f"sites {missing} never ran in the model's forward pass; pick sites on the computation path")
        if len(order) != len(self.sites):
            raise ConfigError(f"each site must run once per forward pass; these ran {len(order)} times in total: "
                              f"{[self.sites[k] for k in order]} (a module shared between layers cannot be a site)")
        if order != sorted(order):
            ran = [self.sites[k] for k in order]
            raise ConfigError(f"sites must be listed in layer order (the order the model runs them); the model ran {ran}")
        return [store[k] for k in range(len(self.sites))], logits.detach()


def batches(inputs: Any, batch_size: int):
    """Yield (slice, batch). A list of tensors (e.g. prompts of different lengths) runs one item at a time.

    Parameters
    ----------
    inputs : Any
        Samples on dim 0 (a tensor, a mapping of tensors), or a list of per-sample tensors.
    batch_size : int
        Samples per batch (ignored for a list).
    """
    n = engine.n_samples(inputs)
    if isinstance(inputs, (list, tuple)):
        for i, item in enumerate(inputs):
            item = torch.as_tensor(item) if not isinstance(item, (torch.Tensor, Mapping)) else item
            if isinstance(item, torch.Tensor) and not item.is_floating_point() and item.ndim == 1:
                item = item[None]  # token ids of one prompt
            yield slice(i, i + 1), item
        return
    step = max(1, int(batch_size))
    for start in range(0, n, step):
        sl = slice(start, min(n, start + step))
        yield sl, _slice(inputs, sl)


def _slice(inputs: Any, sl: slice) -> Any:
    if isinstance(inputs, Mapping):
        return {k: v[sl] for k, v in inputs.items()}
    return inputs[sl]


def targets_of(targets: Any, n: int, n_classes: int) -> torch.Tensor:
    """The targets as an ``(n,)`` long tensor, checked against the number of classes.

    Parameters
    ----------
    targets : int or array_like
        One class per sample, or one for all.
    n : int
        The number of samples.
    n_classes : int
        The model's number of classes (logits width); a target outside ``0..n_classes - 1`` is an error.
    """
    t = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
    if t.numel() == 1 and n > 1:
        t = t.repeat(n)
    if t.numel() != n:
        raise DimensionError(f"got {t.numel()} targets for {n} samples; give one target class per sample")
    bad = (t < 0) | (t >= n_classes)
    if bad.any():
        raise ConfigError(f"target class {t[bad][0].item()} is out of range: the model has {n_classes} classes (0..{n_classes - 1})")
    return t


def neuron_mask(idx: torch.Tensor, d: int) -> torch.Tensor:
    """(B, K) neuron indices -> (B, d) bool mask.

    Parameters
    ----------
    idx : torch.Tensor
        ``(B, K)`` long neuron indices.
    d : int
        The number of neurons.
    """
    return torch.zeros(idx.shape[0], d, dtype=torch.bool, device=idx.device).scatter_(1, idx, True)


def target_prob(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Softmax probability of each row's target, ``(n,)`` (computed in float32).

    Parameters
    ----------
    logits : torch.Tensor
        ``(n, n_classes)``.
    targets : torch.Tensor
        ``(n,)`` long class indices.
    """
    return torch.softmax(logits.float(), dim=-1).gather(1, targets.view(-1, 1)).squeeze(1)


