"""Attention-head detectors from attention patterns: previous-token, induction and duplicate-token heads.

Scores follow TransformerLens' head detector and the papers that named the heads: each score is the
mean attention mass, over destination positions where the criterion applies, that a head puts on the
source position the criterion names.

* **Previous-token head** (Elhage et al. 2021, "A Mathematical Framework for Transformer Circuits"):
  attends from position t to t-1. Score = mean_t A[t, t-1].
* **Induction head** (Olsson et al. 2022, "In-context Learning and Induction Heads"): on a repeated
  sequence, attends from a token to the token *after* its previous occurrence. Score = mean over
  destinations t that have an earlier occurrence at s of A[t, s+1] (the "induction stripe").
* **Duplicate-token head** (Wang et al. 2022, "Interpretability in the Wild: IOI"): attends from a
  token to its previous occurrence(s). Score = mean over destinations with an earlier duplicate of the
  attention mass on all earlier duplicates.

A head is flagged when its score is at least ``threshold`` (default 0.4; the scores lie in [0, 1]).
Use repeated random tokens (e.g. ``interp.models.induction.make_repeated_tokens``) so that the
induction and duplicate criteria have many destinations.

>>> scores = head_scores(model, tokens)        # doctest: +SKIP
>>> scores.flagged("induction")                # doctest: +SKIP
[(1, 2)]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import engine
from ..errors import DimensionError, InputTypeError
from ..results import Result, themed

__all__ = ["HeadScores", "head_scores", "pattern_scores"]

KINDS = ("previous_token", "induction", "duplicate_token")


def _masks(tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """Source-position masks ``(batch, dst, src)`` for each criterion."""
    B, T = tokens.shape
    same = tokens[:, :, None] == tokens[:, None, :]  # (B, dst, src)
    earlier = torch.ones(T, T, dtype=torch.bool).tril(-1)  # src < dst
    dup = same & earlier
    prev = torch.zeros(T, T, dtype=torch.bool)
    prev[torch.arange(1, T), torch.arange(T - 1)] = True
    # induction: src = s+1 where tokens[s] == tokens[dst] and s < dst, and s+1 < dst... include s+1 <= dst-1
    ind = torch.zeros(B, T, T, dtype=torch.bool)
    ind[:, :, 1:] = dup[:, :, :-1]
    ind &= earlier  # the token after the earlier occurrence must itself precede dst
    return {"previous_token": prev.expand(B, T, T), "induction": ind, "duplicate_token": dup}


def pattern_scores(pattern: torch.Tensor, tokens: torch.Tensor) -> dict[str, np.ndarray]:
    """Scores per head from one layer's attention ``pattern`` ``(batch, head, dst, src)`` and ``tokens``.

    Parameters
    ----------
    pattern : torch.Tensor
        One layer's attention probabilities ``(batch, head, dst, src)`` on the CPU.
    tokens : torch.Tensor
        The token ids ``(batch, pos)`` the pattern was computed on.
    """
    if pattern.ndim != 4:
        raise DimensionError(f"pattern must be (batch, head, dst, src), got {tuple(pattern.shape)}")
    B, H, T, S = pattern.shape
    if tokens.shape != (B, T) or S != T:
        raise DimensionError(f"tokens {tuple(tokens.shape)} do not match pattern {tuple(pattern.shape)}")
    out = {}
    for kind, mask in _masks(tokens).items():
        mass = (pattern * mask[:, None].to(pattern.dtype)).sum(-1)  # (B, H, dst)
        has = mask.any(-1)  # (B, dst)
        n = has.sum()
        out[kind] = (mass * has[:, None]).sum((0, 2)).double().numpy() / max(int(n), 1)
    return out


@dataclass
class HeadScores(Result):
    """Previous-token, induction and duplicate-token scores of every head (``(layer, head)`` arrays).

    Parameters
    ----------
    previous_token, induction, duplicate_token : numpy.ndarray
        Scores ``(layer, head)``: the mean attention mass on the criterion's source positions, over the
        destinations that have one.
    threshold : float, optional
        Score at or above which a head is flagged (default 0.4).

    >>> scores = head_scores(model, tokens)      # doctest: +SKIP
    >>> print(scores.summary())                  # doctest: +SKIP
    """

    previous_token: np.ndarray
    induction: np.ndarray
    duplicate_token: np.ndarray
    threshold: float = 0.4

    def to_frame(self) -> pd.DataFrame:
        """One row per head with its three scores and the kinds it is flagged as."""
        L, H = self.induction.shape
        rows = []
        for layer in range(L):
            for head in range(H):
                scores = {k: float(getattr(self, k)[layer, head]) for k in KINDS}
                kinds = [k for k in KINDS if scores[k] >= self.threshold]
                rows.append({"layer": layer, "head": head, "unit": f"L{layer}H{head}", **scores,
                             "phenomena": ", ".join(k.replace("_", "-") + " head" for k in kinds)})
        return pd.DataFrame(rows)

    def flagged(self, kind: str) -> list[tuple[int, int]]:
        """``(layer, head)`` pairs whose ``kind`` score is at least the threshold.

        Parameters
        ----------
        kind : str
            ``"previous_token"``, ``"induction"`` or ``"duplicate_token"``.
        """
        if kind not in KINDS:
            raise InputTypeError(f"kind must be one of {KINDS}, got {kind!r}")
        return [tuple(map(int, ij)) for ij in np.argwhere(getattr(self, kind) >= self.threshold)]

    def summary(self) -> str:
        """The best head of each kind and the heads flagged at the threshold."""
        L, H = self.induction.shape
        lines = [f"Head scores of {L} layers x {H} heads (flagged at >= {self.threshold:g})"]
        for k in KINDS:
            scores = getattr(self, k)
            layer, head = divmod(int(np.argmax(scores)), H)
            flagged = ", ".join(f"L{a}H{b}" for a, b in self.flagged(k)) or "none"
            lines.append(f"  {k.replace('_', '-')}: best L{layer}H{head} {float(scores.max()):.3f}; flagged: {flagged}")
        return "\n".join(lines)

    def plot(self, **kwargs: Any) -> Any:
        """Heatmaps of the three scores (layer x head)."""
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        fig = make_subplots(rows=1, cols=3, subplot_titles=[k.replace("_", " ") for k in KINDS])
        for i, k in enumerate(KINDS):
            fig.add_trace(go.Heatmap(z=getattr(self, k), zmin=0, zmax=1, colorscale="Blues", showscale=i == 2), 1, i + 1)
            fig.update_xaxes(title_text="head", row=1, col=i + 1)
            fig.update_yaxes(title_text="layer", row=1, col=i + 1)
        return themed(fig, height=320, title=kwargs.get("title", "attention head scores"))


def head_scores(model, tokens: torch.Tensor | Iterable[torch.Tensor], batch_size: int = 32,
                threshold: float = 0.4) -> HeadScores:
    """Score every attention head of a TransformerBridge on ``tokens`` ``(batch, pos)``.

    Attention patterns are read from ``blocks.{L}.attn.hook_pattern`` batch by batch (nothing but the
    running sums is kept).

    Parameters
    ----------
    model : TransformerBridge
        The model (its ``blocks.{L}.attn.hook_pattern`` hooks are read).
    tokens : torch.Tensor or sequence of torch.Tensor
        Non-empty integer token ids ``(batch, pos)``, or a sequence of equal-length 1-D (or ``(1, pos)``) rows,
        which are stacked.
    batch_size : int, optional
        Sequences per forward pass (default 32).
    threshold : float, optional
        Score at or above which a head is flagged (default 0.4).
    """
    if not engine.is_bridge(model):
        raise InputTypeError("head_scores needs a TransformerBridge (attention patterns at blocks.*.attn.hook_pattern)")
    if not isinstance(tokens, torch.Tensor):
        rows = [torch.as_tensor(t).reshape(-1) for t in tokens]
        if not rows or len({len(r) for r in rows}) != 1:
            raise InputTypeError(f"tokens as a sequence must hold equal-length rows; got lengths "
                                 f"{sorted({len(r) for r in rows})[:8]} (pad them, or score each length separately)")
        tokens = torch.stack(rows)
    if tokens.ndim != 2 or tokens.shape[0] == 0 or tokens.is_floating_point():
        raise InputTypeError(f"tokens must be a non-empty integer tensor (batch, pos), got {tuple(tokens.shape)}")
    L, H = int(model.cfg.n_layers), int(model.cfg.n_heads)
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(L)]
    sums = {k: np.zeros((L, H)) for k in KINDS}
    weights = {k: 0 for k in KINDS}
    with torch.no_grad():
        for start in range(0, len(tokens), batch_size):
            batch = tokens[start:start + batch_size]
            cache = engine.record(model, batch, names, stop=True).acts
            masks = _masks(batch)
            for layer, name in enumerate(names):
                scores = pattern_scores(cache[name].float().cpu(), batch)
                for k in KINDS:
                    n = int(masks[k].any(-1).sum())
                    sums[k][layer] += scores[k] * n
                    if layer == 0:
                        weights[k] += n
    result = {k: sums[k] / max(weights[k], 1) for k in KINDS}
    return HeadScores(threshold=threshold, **result)
