"""Patching metrics: functions of a model's output (logits) that return one number.

Every metric is a callable ``metric(logits) -> scalar tensor`` that stays differentiable, so the
same object drives activation patching, attribution patching, RelP and integrated gradients.
The batch is averaged; pass ``reduce="none"`` to get one value per example instead.

>>> m = logit_diff(correct=torch.tensor([3]), incorrect=torch.tensor([5]))
>>> m(torch.zeros(1, 4, 10)).item()
0.0
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from interp.checks import check_metric_value
from interp.errors import ConfigError, DimensionError, InputTypeError

__all__ = ["logit_diff", "normalized_logit_diff", "probability", "log_probability", "kl_divergence", "loss",
           "check_scalar", "evaluate", "Metric"]

Tokens = int | torch.Tensor | list[int]


@dataclass
class Metric:
    """A named metric; call it on logits ``[batch, pos, vocab]`` (or any model output).

    ``make(**args)`` rebuilds the per-example function from its arguments, so :meth:`select` can restrict the
    metric to some examples of the batch (the attribution methods split prompts into batches with it).

    Parameters
    ----------
    name : str
        The metric's name (shown in results).
    fn : Callable[[torch.Tensor], torch.Tensor]
        The per-example function: output -> ``(batch,)`` values.
    reduce : {"mean", "none"}
        Batch mean on call, or one value per example.
    make : Callable, optional
        ``make(**args) -> fn``, to rebuild ``fn`` for part of the batch (:meth:`select`).
    args : dict
        The arguments of ``make``.
    reads : str, optional
        The name of the argument in ``args`` holding the one position the metric reads per example (e.g.
        ``"pos"``); the engine then unembeds only that position (:class:`interp.engine.shortcuts.ReadPositions`).
        None: the metric may read every position.
    vocab : tuple of str
        The arguments in ``args`` holding token ids whose logits are all the metric reads, each on its own
        (a logit difference; not a softmax, which reads every token): the sweep then unembeds only those
        tokens (:class:`interp.engine.shortcuts.ReadTokens`). Empty: the metric may read every token.
    """

    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    reduce: str = "mean"
    make: Callable[..., Callable[[torch.Tensor], torch.Tensor]] | None = field(default=None, repr=False)
    args: dict[str, Any] = field(default_factory=dict, repr=False)
    reads: str | None = field(default=None, repr=False)  # the argument naming the one position read per example
    vocab: tuple[str, ...] = field(default=(), repr=False)  # the arguments naming the only tokens read

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        values = self.fn(logits)
        return values.mean() if self.reduce == "mean" else values

    def per_example(self) -> Metric:
        """The same metric without the batch mean (one value per example)."""
        return replace(self, reduce="none")

    @property
    def n_examples(self) -> int | None:
        """How many examples the per-example arguments (answer tokens, reference logits ...) describe."""
        sizes = [len(v) for v in self.args.values() if isinstance(v, torch.Tensor) and v.ndim >= 1 and len(v) > 1]
        return max(sizes) if sizes else None

    def select(self, rows: slice | Sequence[int] | torch.Tensor) -> Metric:
        """The metric restricted to the examples ``rows`` of the batch it was built for.

        Parameters
        ----------
        rows : slice, Sequence[int] or torch.Tensor
            The examples kept; per-example arguments are indexed with it (shared ones are kept whole).
        """
        if self.make is None:
            raise ConfigError(f"metric {self.name} cannot be restricted to part of the batch; build it with "
                              "patching.metrics or run the prompts in one batch (batch_size=None)")
        n = self.n_examples
        if n is None:
            return self
        sliced = {k: (v[rows] if isinstance(v, torch.Tensor) and v.ndim >= 1 and len(v) == n else v)
                  for k, v in self.args.items()}
        return replace(self, fn=self.make(**sliced), args=sliced)

    @property
    def positions(self) -> int | torch.Tensor | None:
        """The one position per example whose logits this metric reads (an int for every example, or one
        index each), or None when it reads more (or is not known): then every position is unembedded."""
        if self.reads is None or self.make is None:
            return None
        pos = self.args.get(self.reads)
        if isinstance(pos, int) and not isinstance(pos, bool):
            return pos
        if isinstance(pos, torch.Tensor) and pos.ndim <= 1 and not pos.is_floating_point() and pos.numel():
            return pos
        return None

    @property
    def tokens(self) -> torch.Tensor | None:
        """The sorted distinct token ids whose logits are all this metric reads, or None when it may read any
        (a softmax, a KL divergence, a plain callable)."""
        if not self.vocab or self.make is None:
            return None
        ids = [torch.as_tensor(self.args.get(name)).reshape(-1) for name in self.vocab]
        if any(i.is_floating_point() or i.dtype == torch.bool or not i.numel() for i in ids):
            return None
        return torch.unique(torch.cat([i.long().cpu() for i in ids]))

    def at_tokens(self, tokens: torch.Tensor) -> Metric:
        """The same metric on logits that hold only the columns ``tokens`` (``[..., len(tokens)]``, in that
        order; see :class:`interp.engine.shortcuts.ReadTokens`): its token ids become column indices.

        Parameters
        ----------
        tokens : torch.Tensor
            Sorted distinct token ids, a superset of :attr:`tokens`.
        """
        if self.tokens is None:
            raise ConfigError(f"metric {self.name} does not say which tokens it reads")
        args = dict(self.args)
        for name in self.vocab:
            ids = torch.as_tensor(args[name]).long()
            cols = torch.searchsorted(tokens, ids.cpu())
            if not bool((tokens[cols.clamp(max=len(tokens) - 1)] == ids.cpu()).all()):
                raise ConfigError(f"metric {self.name}: token ids of {name!r} are not all among the columns kept")
            args[name] = int(cols) if isinstance(args[name], int) else cols.to(ids.device)
        out = replace(self, fn=self.make(**args), args=args, vocab=())
        out.__dict__.update({k: v for k, v in self.__dict__.items() if k not in out.__dict__})
        return out

    def at_read_positions(self) -> Metric:
        """The same metric on logits that hold only its read position (``[batch, 1, vocab]``; see
        :class:`interp.engine.shortcuts.ReadPositions`, which makes such logits)."""
        pos = self.positions
        if pos is None:
            raise ConfigError(f"metric {self.name} does not read one position per example")
        args = {**self.args, self.reads: 0}
        if isinstance(args.get("reference"), torch.Tensor):  # KL: the reference at the read position too
            ref = args["reference"]
            args["reference"] = ref.narrow(1, int(pos) % ref.shape[1], 1)
        out = replace(self, fn=self.make(**args), args=args, reads=None)
        out.__dict__.update({k: v for k, v in self.__dict__.items() if k not in out.__dict__})
        return out

    def __repr__(self) -> str:
        return f"Metric({self.name})"


def _metric(name: str, make: Callable[..., Callable], reduce: str = "mean", reads: str | None = "pos",
            vocab: tuple[str, ...] = (), **args: Any) -> Metric:
    args = {k: (torch.as_tensor(v) if isinstance(v, (list, tuple)) else v) for k, v in args.items()}
    return Metric(name, make(**args), _check_reduce(reduce), make, args, reads, vocab)


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


def _logit_diff(correct: Tokens, incorrect: Tokens, pos: int | torch.Tensor) -> Callable:
    def fn(logits: torch.Tensor) -> torch.Tensor:
        last = _at(logits, pos)
        rows = torch.arange(last.shape[0], device=last.device)
        return last[rows, _ids(correct, last.shape[0], last.device)] - last[rows, _ids(incorrect, last.shape[0], last.device)]
    return fn


def logit_diff(correct: Tokens, incorrect: Tokens, pos: int | torch.Tensor = -1, reduce: str = "mean") -> Metric:
    """``logit[correct] - logit[incorrect]`` at ``pos`` (per example: a token or a position per row).

    Parameters
    ----------
    correct : int, list of int or torch.Tensor
        The right answer: one token id for every example, or one per example.
    incorrect : int, list of int or torch.Tensor
        The wrong answer: one token id for every example, or one per example.
    pos : int or torch.Tensor
        The position read: one for every example, or a tensor of one position per example.
    reduce : {"mean", "none"}
        ``"mean"``: the batch mean (a scalar, what the attribution methods need); ``"none"``: one value per
        example.
    """
    return _metric("logit_diff", _logit_diff, reduce, vocab=("correct", "incorrect"), correct=correct,
                   incorrect=incorrect, pos=pos)


def _normalized(correct: Tokens, incorrect: Tokens, pos: int | torch.Tensor, clean: float, corrupted: float) -> Callable:
    base = _logit_diff(correct, incorrect, pos)
    return lambda logits: (base(logits) - corrupted) / (clean - corrupted)


def normalized_logit_diff(correct: Tokens, incorrect: Tokens, clean_logits: torch.Tensor,
                          corrupted_logits: torch.Tensor, pos: int | torch.Tensor = -1) -> Metric:
    """``(LD - LD_corrupted) / (LD_clean - LD_corrupted)``: 1 on the clean run, 0 on the corrupted run.

    As in RelP (Rezaei Jafari et al. 2025) and the IOI patching demos: LD is averaged over the batch.

    Parameters
    ----------
    correct : int, list of int or torch.Tensor
        The right answer: one token id for every example, or one per example.
    incorrect : int, list of int or torch.Tensor
        The wrong answer: one token id for every example, or one per example.
    clean_logits, corrupted_logits : torch.Tensor
        ``[batch, pos, vocab]`` logits of the unpatched clean and corrupted runs (they fix the 1 and the 0;
        equal logit differences are a :class:`ConfigError`).
    pos : int or torch.Tensor
        The position read: one for every example, or a tensor of one position per example.
    """
    base = logit_diff(correct, incorrect, pos)
    with torch.no_grad():
        clean, corrupted = float(base(clean_logits)), float(base(corrupted_logits))
    if abs(clean - corrupted) < 1e-12:
        raise ConfigError("clean and corrupted logit differences are equal; the normalised metric is undefined")
    metric = _metric("normalized_logit_diff", _normalized, vocab=("correct", "incorrect"), correct=correct,
                     incorrect=incorrect, pos=pos, clean=clean, corrupted=corrupted)
    metric.clean, metric.corrupted = clean, corrupted  # type: ignore[attr-defined]
    return metric


def _probability(token: Tokens, pos: int | torch.Tensor, log: bool) -> Callable:
    def fn(logits: torch.Tensor) -> torch.Tensor:
        at = _at(logits, pos)
        probs = at.log_softmax(-1) if log else at.softmax(-1)
        return probs[torch.arange(probs.shape[0], device=probs.device), _ids(token, probs.shape[0], probs.device)]
    return fn


def probability(token: Tokens, pos: int | torch.Tensor = -1, reduce: str = "mean") -> Metric:
    """Softmax probability of ``token`` at ``pos``.

    Parameters
    ----------
    token : int, list of int or torch.Tensor
        The token: one token id for every example, or one per example.
    pos : int or torch.Tensor
        The position read: one for every example, or a tensor of one position per example.
    reduce : {"mean", "none"}
        ``"mean"``: the batch mean (a scalar, what the attribution methods need); ``"none"``: one value per
        example.
    """
    return _metric("probability", _probability, reduce, token=token, pos=pos, log=False)


def log_probability(token: Tokens, pos: int | torch.Tensor = -1, reduce: str = "mean") -> Metric:
    """Log-probability of ``token`` at ``pos``.

    Parameters
    ----------
    token : int, list of int or torch.Tensor
        The token: one token id for every example, or one per example.
    pos : int or torch.Tensor
        The position read: one for every example, or a tensor of one position per example.
    reduce : {"mean", "none"}
        ``"mean"``: the batch mean (a scalar, what the attribution methods need); ``"none"``: one value per
        example.
    """
    return _metric("log_probability", _probability, reduce, token=token, pos=pos, log=True)


def _kl(reference: torch.Tensor, pos: int | slice) -> Callable:
    def fn(logits: torch.Tensor) -> torch.Tensor:
        reps = logits.shape[0] // reference.shape[0]
        r = reference.repeat(reps, *([1] * (reference.ndim - 1))) if reps > 1 else reference
        p_log, q_log = r[:, pos].log_softmax(-1), logits[:, pos].log_softmax(-1)
        kl = (p_log.exp() * (p_log - q_log)).sum(-1)
        return kl if kl.ndim == 1 else kl.mean(-1)
    return fn


def kl_divergence(reference_logits: torch.Tensor, pos: int | slice = -1, reduce: str = "mean") -> Metric:
    """``KL(reference || current)`` of the next-token distributions at ``pos`` (all positions: ``slice(None)``).

    Parameters
    ----------
    reference_logits : torch.Tensor
        ``[batch, pos, vocab]`` logits of the reference run (detached).
    pos : int or slice
        The position(s); over several positions the KL is averaged per example.
    reduce : {"mean", "none"}
        ``"mean"``: the batch mean (a scalar, what the attribution methods need); ``"none"``: one value per
        example.
    """
    return _metric("kl_divergence", _kl, reduce, reads="pos" if isinstance(pos, int) else None,
                   reference=reference_logits.detach(), pos=pos)


def _loss(tokens: torch.Tensor, positions: slice) -> Callable:
    def fn(logits: torch.Tensor) -> torch.Tensor:
        reps = logits.shape[0] // tokens.shape[0]
        toks = tokens.to(logits.device).repeat(reps, 1) if reps > 1 else tokens.to(logits.device)
        logp = logits[:, :-1].log_softmax(-1)
        nll = -logp.gather(-1, toks[:, 1:, None])[..., 0]
        return nll[:, positions].mean(-1)
    return fn


def loss(tokens: torch.Tensor, positions: slice = slice(None), reduce: str = "mean") -> Metric:
    """Next-token cross-entropy on ``tokens`` (averaged over the chosen predicting positions).

    Parameters
    ----------
    tokens : torch.Tensor
        ``[batch, pos]`` the input tokens; position ``t`` predicts token ``t + 1``.
    positions : slice
        The predicting positions (among ``0 .. pos - 2``) averaged over.
    reduce : {"mean", "none"}
        ``"mean"``: the batch mean (a scalar, what the attribution methods need); ``"none"``: one value per
        example.
    """
    return _metric("loss", _loss, reduce, reads=None, tokens=torch.as_tensor(tokens).long(), positions=positions)


def check_scalar(value: Any, metric: Any = None) -> torch.Tensor:
    """Raise :class:`DimensionError` unless ``value`` is a one-element tensor; return it 0-d.

    A Python number or other non-tensor is an :class:`InputTypeError` (gradients could not flow).

    Parameters
    ----------
    value : Any
        What the metric returned.
    metric : Any, optional
        The metric, named in the error message.
    """
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
    """Call ``metric`` on ``output`` and check that it returned a finite scalar (NaN/inf: :class:`NaNError`,
    so that a NaN never fills patching cells quietly).

    Parameters
    ----------
    metric : Callable[[torch.Tensor], torch.Tensor]
        The metric.
    output : torch.Tensor
        The model output it is called on.
    """
    return check_metric_value(check_scalar(metric(output), metric), metric, output)
