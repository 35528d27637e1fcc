"""The tasks of ``induction-2l``: repeated-token sequences (tiled and single-copy), the induction-head scores
of a model's heads and its losses on repeated sequences (:mod:`interp.models.induction` trains on them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F

from .. import engine
from ..errors import ConfigError, DimensionError
from ..results import Result, themed

BOS = 0

@dataclass
class RepeatedTokens:
    """Sequences of random tokens containing a repeated block (see :func:`make_repeated_tokens`).

    Parameters
    ----------
    tokens : torch.Tensor
        ``[n, seq_len]`` int64 token ids; position 0 is BOS (id 0).
    is_repeat : torch.Tensor
        ``[n, seq_len]`` bool; True where the token is a copy of the token ``period`` positions back.
    period : torch.Tensor
        ``[n]`` int64 length of the repeated block.
    start : torch.Tensor
        ``[n]`` int64 position where the first copy of the block begins.
    end : torch.Tensor
        ``[n]`` int64 position (exclusive) where the repeated part ends.
    tiled : torch.Tensor
        ``[n]`` bool; True for tiled sequences (the block repeats until the end), False for single copies.
    """

    tokens: torch.Tensor
    is_repeat: torch.Tensor
    period: torch.Tensor
    start: torch.Tensor
    end: torch.Tensor
    tiled: torch.Tensor

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def is_first(self) -> torch.Tensor:
        """``[n, seq_len]`` bool; True on the first copy of the block (first occurrences, unpredictable)."""
        pos = torch.arange(self.tokens.shape[1])
        return (pos >= self.start[:, None]) & (pos < (self.start + self.period)[:, None])

    @property
    def predictable(self) -> torch.Tensor:
        """``[n, seq_len]`` bool; True at target positions an induction head can predict.

        Token ``t`` is predictable when it is a repeat and so is token ``t - 1`` (the query position
        ``t - 1`` then has an earlier occurrence whose successor is token ``t``). The first token of the
        second copy is a repeat but is not predictable.
        """
        previous = torch.zeros_like(self.is_repeat)
        previous[:, 1:] = self.is_repeat[:, :-1]
        return self.is_repeat & previous

    @property
    def induction_source(self) -> torch.Tensor:
        """``[n, seq_len]`` int64; for repeat positions ``t``, the position ``t - period + 1`` an induction
        head should attend to (the token after the previous occurrence of token ``t``); -1 elsewhere."""
        pos = torch.arange(self.tokens.shape[1]).expand_as(self.tokens)
        source = pos - self.period[:, None] + 1
        return torch.where(self.is_repeat, source, torch.full_like(source, -1))

    def to_frame(self) -> pd.DataFrame:
        """One row per sequence: period, start, end, tiled."""
        return pd.DataFrame(
            {
                "period": self.period.tolist(),
                "start": self.start.tolist(),
                "end": self.end.tolist(),
                "tiled": self.tiled.tolist(),
            }
        )


def _sample_repeated(
    n: int,
    seq_len: int,
    generator: torch.Generator,
    d_vocab: int = 128,
    tiled_fraction: float = 0.5,
    min_period: int = 4,
    max_period: int | None = None,
) -> RepeatedTokens:
    max_period = max_period or (seq_len - 1) // 2
    if seq_len < 2 * min_period + 1 or max_period < min_period:
        raise DimensionError(f"seq_len={seq_len} is too short for two copies of a block of {min_period} tokens (+BOS)")
    if max_period > d_vocab - 1:
        raise ConfigError(f"max_period={max_period} exceeds the {d_vocab - 1} non-BOS tokens")
    tokens = torch.randint(1, d_vocab, (n, seq_len), generator=generator)  # noise everywhere, overwritten below
    tokens[:, 0] = BOS
    period = torch.randint(min_period, max_period + 1, (n,), generator=generator)
    tiled = torch.rand(n, generator=generator) < tiled_fraction
    # single copies start after 0..(seq_len - 1 - 2 * period) noise tokens; tiled blocks start right after BOS
    slack = (seq_len - 1 - 2 * period).clamp(min=0)
    offset = (torch.rand(n, generator=generator) * (slack + 1)).long().clamp(max=slack)
    start = torch.where(tiled, torch.ones_like(period), 1 + offset)
    end = torch.where(tiled, torch.full_like(period, seq_len), start + 2 * period)
    # distinct tokens inside a block, so the previous occurrence of each repeated token is unique in the block
    blocks = torch.argsort(torch.rand(n, d_vocab - 1, generator=generator), dim=1) + 1
    pos = torch.arange(seq_len)
    in_block = (pos >= start[:, None]) & (pos < end[:, None])
    block_index = ((pos - start[:, None]) % period[:, None]).clamp(min=0)
    tokens = torch.where(in_block, torch.gather(blocks, 1, block_index), tokens)
    is_repeat = in_block & (pos >= (start + period)[:, None])
    return RepeatedTokens(tokens, is_repeat, period, start, end, tiled)


def make_repeated_tokens(
    n: int,
    seq_len: int = 64,
    seed: int = 0,
    *,
    d_vocab: int = 128,
    tiled_fraction: float = 0.5,
    min_period: int = 4,
    max_period: int | None = None,
) -> RepeatedTokens:
    """Random-token sequences with a repeated block: the induction task of ``induction-2l``.

    Every sequence is ``BOS`` followed by random tokens ``1..d_vocab-1``. A block of ``period``
    distinct random tokens (``min_period <= period <= max_period``, default ``(seq_len - 1) // 2``) is

    * **tiled** (fraction ``tiled_fraction``): repeated from position 1 to the end of the sequence, or
    * **single-copy**: placed after a random-length noise prefix and repeated once, followed by noise.

    Deterministic in ``seed``. Returns :class:`RepeatedTokens` (``tokens``, ``is_repeat``, ``period``, ...).

    Parameters
    ----------
    n : int
        Number of sequences (at least 1).
    seq_len : int, optional
        Tokens per sequence including BOS (default 64); must fit two copies of a ``min_period`` block.
    seed : int, optional
        Seed of the torch generator (default 0).
    d_vocab : int, optional
        Vocabulary size including BOS (default 128).
    tiled_fraction : float, optional
        Expected fraction of tiled sequences, in [0, 1] (default 0.5).
    min_period, max_period : int, optional
        Bounds of the block length (defaults 4 and ``(seq_len - 1) // 2``); ``max_period`` must not exceed
        ``d_vocab - 1``.

    >>> data = make_repeated_tokens(2, seq_len=16, seed=0, tiled_fraction=1.0, min_period=5, max_period=5)
    >>> bool((data.tokens[:, 6:] == data.tokens[:, 1:-5]).all())
    True
    """
    if n < 1:
        raise ConfigError(f"n must be a positive number of sequences, got {n}")
    if not 0.0 <= tiled_fraction <= 1.0:
        raise ConfigError(f"tiled_fraction must be in [0, 1], got {tiled_fraction}")
    generator = torch.Generator().manual_seed(int(seed))
    return _sample_repeated(n, seq_len, generator, d_vocab, tiled_fraction, min_period, max_period)


# ----------------------------------------------------------------------------------------------------------------
# Measurements
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class InductionScores(Result):
    """Previous-token and induction scores of every head on repeated-token sequences of known period.

    (The general detectors, for any token sequences, are :func:`interp.label.heads.head_scores`.)

    Parameters
    ----------
    previous_token : torch.Tensor
        ``[n_layers, n_heads]`` mean attention from position ``t`` to ``t - 1`` (``t >= 2``).
    induction : torch.Tensor
        ``[n_layers, n_heads]`` mean attention from repeat positions ``t`` to ``t - period + 1``
        (the token after the previous occurrence of token ``t``).
    n_sequences : int
        Number of sequences the scores were averaged over.

    >>> scores = induction_head_scores(model)  # doctest: +SKIP
    >>> print(scores.summary())  # doctest: +SKIP
    """

    previous_token: torch.Tensor
    induction: torch.Tensor
    n_sequences: int

    def to_frame(self) -> pd.DataFrame:
        """One row per head: layer, head, previous_token, induction."""
        n_layers, n_heads = self.previous_token.shape
        rows = [
            {
                "layer": layer,
                "head": head,
                "previous_token": float(self.previous_token[layer, head]),
                "induction": float(self.induction[layer, head]),
            }
            for layer in range(n_layers)
            for head in range(n_heads)
        ]
        return pd.DataFrame(rows)

    def heads(self, kind: str = "induction", threshold: float = 0.5, layer: int | None = None) -> list[tuple[int, int]]:
        """``(layer, head)`` pairs whose ``kind`` score ("induction" or "previous_token") is at least ``threshold``.

        Parameters
        ----------
        kind : str, optional
            ``"induction"`` (default) or ``"previous_token"``.
        threshold : float, optional
            Minimum score (default 0.5).
        layer : int, optional
            Keep only heads of this layer; None: every layer.
        """
        if kind not in ("induction", "previous_token"):
            raise ConfigError(f"kind must be 'induction' or 'previous_token', got {kind!r}")
        scores = getattr(self, kind)
        pairs = [(int(li), int(hi)) for li, hi in (scores >= threshold).nonzero().tolist()]
        return [p for p in pairs if layer is None or p[0] == layer]

    def summary(self) -> str:
        """The best head of each kind and the heads above 0.5."""
        lines = [f"Induction scores of {self.induction.numel()} heads on {self.n_sequences} repeated-token sequences"]
        for kind in ("previous_token", "induction"):
            scores = getattr(self, kind)
            layer, head = divmod(int(scores.argmax()), scores.shape[1])
            above = self.heads(kind, 0.5)
            lines.append(f"  {kind.replace('_', '-')}: best L{layer}H{head} {float(scores.max()):.3f}; "
                         f"{len(above)} head(s) >= 0.5 {above if above else ''}".rstrip())
        return "\n".join(lines)

    def plot(self, **kwargs: Any) -> Any:
        """Plotly heatmaps of both scores (layers x heads)."""
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        fig = make_subplots(rows=1, cols=2, subplot_titles=("previous-token score", "induction score"))
        for col, scores in enumerate((self.previous_token, self.induction), start=1):
            fig.add_trace(
                go.Heatmap(z=scores.numpy(), zmin=0, zmax=1, colorscale="Blues", showscale=col == 2), row=1, col=col
            )
            fig.update_xaxes(title_text="head", row=1, col=col)
            fig.update_yaxes(title_text="layer", row=1, col=col)
        return themed(fig, title=kwargs.get("title", "induction-task head scores"), height=320)


def _attention_patterns(model: Any, tokens: torch.Tensor) -> list[torch.Tensor]:
    n_layers = model.cfg.n_layers
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(n_layers)]
    with torch.no_grad():
        cache = engine.record(model, tokens, names, stop=True).acts
    return [cache[name].float().cpu() for name in names]  # [batch, head, query, key]


def induction_head_scores(model: Any, data: RepeatedTokens | None = None, batch_size: int = 64) -> InductionScores:
    """Previous-token and induction scores of every head of ``model`` on repeated-token sequences.

    ``data`` defaults to 256 fresh sequences (``make_repeated_tokens(256, n_ctx, seed=10_000)``), a
    seed the training never uses. The induction score of a head is its mean attention from each repeat
    position ``t`` to ``t - period + 1``; the previous-token score its mean attention from ``t`` to ``t - 1``.

    Parameters
    ----------
    model : TransformerBridge
        An attention-only bridge with ``blocks.{layer}.attn.hook_pattern`` hooks.
    data : RepeatedTokens, optional
        The sequences; None: 256 fresh ones of length ``n_ctx``, seed 10 000.
    batch_size : int, optional
        Sequences per forward pass (default 64).

    >>> scores = induction_head_scores(model)  # doctest: +SKIP
    >>> scores.heads("induction", layer=1)  # doctest: +SKIP
    """
    if data is None:
        data = make_repeated_tokens(256, model.cfg.n_ctx, seed=10_000, d_vocab=model.cfg.d_vocab)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    prev_sum = torch.zeros(n_layers, n_heads, dtype=torch.float64)
    ind_sum = torch.zeros(n_layers, n_heads, dtype=torch.float64)
    prev_count = ind_count = 0
    device = next(model.parameters()).device
    for begin in range(0, len(data), batch_size):
        tokens = data.tokens[begin : begin + batch_size]
        source = data.induction_source[begin : begin + batch_size]
        batch, seq_len = tokens.shape
        patterns = _attention_patterns(model, tokens.to(device))
        query = torch.arange(2, seq_len)
        b_idx, q_idx = (source >= 0).nonzero(as_tuple=True)
        for layer, pattern in enumerate(patterns):
            prev_sum[layer] += pattern[:, :, query, query - 1].sum(dim=(0, 2)).double()
            ind_sum[layer] += pattern[b_idx, :, q_idx, source[b_idx, q_idx]].sum(dim=0).double()
        prev_count += batch * len(query)
        ind_count += len(b_idx)
    return InductionScores((prev_sum / prev_count).float(), (ind_sum / max(ind_count, 1)).float(), len(data))


def repeated_token_losses(model: Any, data: RepeatedTokens | None = None, batch_size: int = 64) -> dict[str, float]:
    """Mean next-token cross-entropy (nats) on first occurrences vs predictable repeats.

    ``first`` averages over targets in the first copy of the block (unpredictable: about
    ``log(d_vocab - 1)`` for a model that has learnt the task), ``repeat`` over targets that an induction
    head can predict (:attr:`RepeatedTokens.predictable`); ``ratio = repeat / first``.

    Parameters
    ----------
    model : TransformerBridge
        The model; its logits are read on ``data.tokens``.
    data : RepeatedTokens, optional
        The sequences; None: 256 fresh ones of length ``n_ctx``, seed 10 000.
    batch_size : int, optional
        Sequences per forward pass (default 64).
    """
    if data is None:
        data = make_repeated_tokens(256, model.cfg.n_ctx, seed=10_000, d_vocab=model.cfg.d_vocab)
    device = next(model.parameters()).device
    totals = {"first": [0.0, 0], "repeat": [0.0, 0]}
    for begin in range(0, len(data), batch_size):
        tokens = data.tokens[begin : begin + batch_size]
        with torch.no_grad():
            logits = model(tokens.to(device)).float().cpu()
        losses = F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten(), reduction="none")
        losses = losses.view(tokens.shape[0], -1)
        for key, mask in (("first", data.is_first), ("repeat", data.predictable)):
            target_mask = mask[begin : begin + batch_size, 1:]
            totals[key][0] += float(losses[target_mask].sum())
            totals[key][1] += int(target_mask.sum())
    first, repeat = (totals[k][0] / max(totals[k][1], 1) for k in ("first", "repeat"))
    return {"first": first, "repeat": repeat, "ratio": repeat / first}


# ----------------------------------------------------------------------------------------------------------------
# Building, training, caching
# ----------------------------------------------------------------------------------------------------------------
