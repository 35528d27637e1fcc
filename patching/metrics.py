"""Patching metrics: functions of a model's output (logits) that return one number.

Every metric is a callable ``metric(logits) -> scalar tensor`` that stays differentiable, so the
same object drives activation patching, attribution patching, RelP and integrated gradients.
The batch is averaged; pass ``reduce="none"`` to get one value per example instead.

>>> m = logit_diff(correct=torch.tensor([3]), incorrect=torch.tensor([5]))
>>> m(torch.zeros(1, 4, 10)).item()
0.0
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from interp.errors import ConfigError, DimensionError, InputTypeError

__all__ = ["logit_diff", "normalized_logit_diff", "probability", "log_probability", "kl_divergence", "loss",
           "check_scalar", "evaluate", "Metric"]

Tokens = int | torch.Tensor | list[int]


@dataclass
class Metric:
    """A named metric; call it on logits ``[batch, pos, vocab]`` (or any model output)."""

    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    reduce: str = "mean"

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        values = self.fn(logits)
        return values.mean() if self.reduce == "mean" else values

    def per_example(self) -> Metric:
        """The same metric without the batch mean (one value per example)."""
        return Metric(self.name, self.fn, reduce="none")

    def __repr__(self) -> str:
        return f"Metric({self.name})"


def _ids(tokens: Tokens, batch: int, device: torch.device) -> torch.Tensor:
    ids = torch.as_tensor(tokens, device=device).long().reshape(-1)
    if ids.numel() == 1:
        return ids.expand(batch)
    if ids.numel() != batch:
        # patched runs stack k copies of the batch; the answer tokens repeat with them
        if batch % ids.numel() == 0:
            return ids.repeat(batch // ids.numel())
        raise DimensionError(f"got {ids.numel()} answer tokens for a batch of {batch}; give one per example")
    return ids


def _at(logits: torch.Tensor, pos: int | torch.Tensor) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 3:
        raise DimensionError(f"this metric expects logits [batch, pos, vocab], got "
                             f"{tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__}")
    if isinstance(pos, int):
        return logits[:, pos]
    pos = _ids(pos, logits.shape[0], logits.device)
    return logits[torch.arange(logits.shape[0], device=logits.device), pos]


def _check_reduce(reduce: str) -> str:
    if reduce not in {"mean", "none"}:
        raise ConfigError(f"reduce must be 'mean' or 'none', got {reduce!r}")
    return reduce


def logit_diff(correct: Tokens, incorrect: Tokens, pos: int | torch.Tensor = -1, reduce: str = "mean") -> Metric:
    """``logit[correct] - logit[incorrect]`` at ``pos`` (per example: a token or a position per row)."""

    def fn(logits: torch.Tensor) -> torch.Tensor:
        last = _at(logits, pos)
        rows = torch.arange(last.shape[0], device=last.device)
        return last[rows, _ids(correct, last.shape[0], last.device)] - last[rows, _ids(incorrect, last.shape[0], last.device)]

    return Metric("logit_diff", fn, _check_reduce(reduce))


def normalized_logit_diff(correct: Tokens, incorrect: Tokens, clean_logits: torch.Tensor,
                          corrupted_logits: torch.Tensor, pos: int | torch.Tensor = -1) -> Metric:
    """``(LD - LD_corrupted) / (LD_clean - LD_corrupted)``: 1 on the clean run, 0 on the corrupted run.

    As in RelP (Rezaei Jafari et al. 2025) and the IOI patching demos: LD is averaged over the batch.
    """
    base = logit_diff(correct, incorrect, pos)
    with torch.no_grad():
        clean, corrupted = float(base(clean_logits)), float(base(corrupted_logits))
    if abs(clean - corrupted) < 1e-12:
        raise ConfigError("clean and corrupted logit differences are equal; the normalised metric is undefined")

    def fn(logits: torch.Tensor) -> torch.Tensor:
        return (base.fn(logits) - corrupted) / (clean - corrupted)

    metric = Metric("normalized_logit_diff", fn)
    metric.clean, metric.corrupted = clean, corrupted  # type: ignore[attr-defined]
    return metric


def probability(token: Tokens, pos: int | torch.Tensor = -1, reduce: str = "mean") -> Metric:
    """Softmax probability of ``token`` at ``pos``."""

    def fn(logits: torch.Tensor) -> torch.Tensor:
        probs = _at(logits, pos).softmax(-1)
        return probs[torch.arange(probs.shape[0], device=probs.device), _ids(token, probs.shape[0], probs.device)]

    return Metric("probability", fn, _check_reduce(reduce))


def log_probability(token: Tokens, pos: int | torch.Tensor = -1, reduce: str = "mean") -> Metric:
    """Log-probability of ``token`` at ``pos``."""

    def fn(logits: torch.Tensor) -> torch.Tensor:
        logp = _at(logits, pos).log_softmax(-1)
        return logp[torch.arange(logp.shape[0], device=logp.device), _ids(token, logp.shape[0], logp.device)]

    return Metric("log_probability", fn, _check_reduce(reduce))


def kl_divergence(reference_logits: torch.Tensor, pos: int | slice = -1, reduce: str = "mean") -> Metric:
    """``KL(reference || current)`` of the next-token distributions at ``pos`` (all positions: ``slice(None)``)."""
    ref = reference_logits.detach()

    def fn(logits: torch.Tensor) -> torch.Tensor:
        reps = logits.shape[0] // ref.shape[0]
        r = ref.repeat(reps, *([1] * (ref.ndim - 1))) if reps > 1 else ref
        p_log, q_log = r[:, pos].log_softmax(-1), logits[:, pos].log_softmax(-1)
        kl = (p_log.exp() * (p_log - q_log)).sum(-1)
        return kl if kl.ndim == 1 else kl.mean(-1)

    return Metric("kl_divergence", fn, _check_reduce(reduce))


def loss(tokens: torch.Tensor, positions: slice = slice(None), reduce: str = "mean") -> Metric:
    """Next-token cross-entropy on ``tokens`` (averaged over the chosen predicting positions)."""
    tokens = torch.as_tensor(tokens).long()

    def fn(logits: torch.Tensor) -> torch.Tensor:
        reps = logits.shape[0] // tokens.shape[0]
        toks = tokens.to(logits.device).repeat(reps, 1) if reps > 1 else tokens.to(logits.device)
        logp = logits[:, :-1].log_softmax(-1)
        nll = -logp.gather(-1, toks[:, 1:, None])[..., 0]
        return nll[:, positions].mean(-1)

    return Metric("loss", fn, _check_reduce(reduce))


def check_scalar(value: Any, metric: Any = None) -> torch.Tensor:
    """Raise :class:`DimensionError` unless ``value`` is a one-element tensor; return it 0-d."""
    name = getattr(metric, "name", getattr(metric, "__name__", repr(metric)))
    if not isinstance(value, torch.Tensor):
        if isinstance(value, (int, float)):
            raise InputTypeError(f"metric {name} returned a Python {type(value).__name__}; return a torch tensor "
                                 "so that gradients can flow (e.g. logits[:, -1, tok].mean())")
        raise InputTypeError(f"metric {name} must return a scalar tensor, got {type(value).__name__}")
    if value.numel() != 1:
        raise DimensionError(f"metric {name} must return a scalar (one number for the batch), got a tensor of "
                             f"shape {tuple(value.shape)}; reduce it, e.g. with .mean()")
    return value.reshape(())


def evaluate(metric: Callable[[torch.Tensor], torch.Tensor], output: torch.Tensor) -> torch.Tensor:
    """Call ``metric`` on ``output`` and check that it returned a scalar."""
    return check_scalar(metric(output), metric)
