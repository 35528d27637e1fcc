"""Streaming unit statistics: one pass over a corpus or stimulus set, memory O(units x k).

:class:`UnitStats` is updated batch by batch with activations ``(batch, pos, unit)`` (token models:
one row per token), ``(sample, unit)`` (images, trials) or a single time series ``(time, unit)``
(recordings, pass it as ``(1, time, unit)`` to get time windows). It keeps, per unit:

* the top-k and bottom-k exemplars with their context: the ids of the tokens in a window around the
  exemplar and the unit's own activation over that window (for highlighting), plus sample and
  position indices (to fetch images or time windows later);
* an exact streaming histogram (fixed number of bins whose range doubles when a value falls
  outside it, merging bin pairs, so no value is ever clipped);
* count, mean and variance (Chan et al.'s parallel update, float64), minimum, maximum and the
  activation frequency (fraction of rows above ``threshold``);
* the per-token and per-position sums needed for the variance explained by token identity or
  position (Voita et al. 2023; Gurnee et al. 2024), for up to ``max_token_types`` token types;
* the largest ratio ``|a| / median_j |a_j|`` over rows (massive activations, Sun et al. 2024).

Nothing grows with the corpus: a 100k-token pass over a 1,536-unit layer holds a few tens of MB.

>>> import torch
>>> stats = UnitStats(n_units=3, k=2, window=(1, 1))
>>> stats.update(torch.tensor([[[0., 1., 2.], [3., 0., 1.], [1., 5., 0.]]]), tokens=torch.tensor([[7, 8, 9]]))
>>> res = stats.result()
>>> res.top_values[1].tolist()
[5.0, 1.0]
>>> res.top_tokens[1, 0].tolist()   # tokens around the best exemplar of unit 1 (window -1..+1, -1 = none)
[8, 9, -1]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..errors import ConfigError, DimensionError, InputTypeError, NaNError
from ..results import Result, themed

__all__ = ["UnitStats", "UnitStatsResult"]


def _window_gather(acts: torch.Tensor, tokens: torch.Tensor | None, rows_b: torch.Tensor, rows_t: torch.Tensor,
                   left: int, right: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Context windows for candidates ``rows_b/rows_t`` of shape ``(c, U)`` -> ``(c, U, W)`` acts and tokens."""
    B, T, U = acts.shape
    W = left + right + 1
    pad_acts = torch.full((B, T + W - 1, U), float("nan"), dtype=torch.float32)
    pad_acts[:, left:left + T] = acts
    offsets = torch.arange(W)
    tt = rows_t.unsqueeze(-1) + offsets  # (c, U, W) in padded coordinates
    bb = rows_b.unsqueeze(-1).expand_as(tt)
    uu = torch.arange(U).view(1, U, 1).expand_as(tt)
    win_acts = pad_acts[bb, tt, uu]
    if tokens is None:
        win_tokens = torch.full(tt.shape, -1, dtype=torch.long)
    else:
        pad_tok = torch.full((B, T + W - 1), -1, dtype=torch.long)
        pad_tok[:, left:left + T] = tokens
        win_tokens = pad_tok[bb, tt]
    return win_acts, win_tokens


@dataclass
class _Extremes:
    """Top-k (or, for bottom-k, top-k of the negated values) with their context."""

    values: torch.Tensor  # (U, k) sorted descending; -inf where empty
    sample: torch.Tensor  # (U, k)
    pos: torch.Tensor  # (U, k)
    tokens: torch.Tensor  # (U, k, W)
    window: torch.Tensor  # (U, k, W) float16 activation of the unit over the window

    @classmethod
    def empty(cls, n_units: int, k: int, width: int) -> _Extremes:
        return cls(
            torch.full((n_units, k), float("-inf")), torch.full((n_units, k), -1, dtype=torch.long),
            torch.full((n_units, k), -1, dtype=torch.long), torch.full((n_units, k, width), -1, dtype=torch.long),
            torch.full((n_units, k, width), float("nan"), dtype=torch.float16),
        )

    def merge(self, flat: torch.Tensor, acts: torch.Tensor, tokens: torch.Tensor | None, row_b: torch.Tensor,
              row_t: torch.Tensor, sample_offset: int, left: int, right: int, sign: float) -> None:
        k = self.values.shape[1]
        kk = min(k, flat.shape[0])
        vals, idx = torch.topk(flat * sign, kk, dim=0)  # (kk, U)
        cb, ct = row_b[idx], row_t[idx]  # (kk, U)
        win_acts, win_tok = _window_gather(acts, tokens, cb, ct, left, right)
        values = torch.cat([self.values, vals.T], dim=1)
        order = torch.topk(values, k, dim=1).indices  # (U, k)
        self.values = values.gather(1, order)
        self.sample = torch.cat([self.sample, (cb + sample_offset).T], 1).gather(1, order)
        self.pos = torch.cat([self.pos, ct.T], 1).gather(1, order)
        W = self.tokens.shape[2]
        o3 = order.unsqueeze(-1).expand(-1, -1, W)
        self.tokens = torch.cat([self.tokens, win_tok.permute(1, 0, 2)], 1).gather(1, o3)
        self.window = torch.cat([self.window, win_acts.permute(1, 0, 2).half()], 1).gather(1, o3)


class UnitStats:
    """One-pass accumulator of per-unit statistics and exemplars (memory O(units x k)).

    Parameters
    ----------
    n_units:
        Number of units (last axis of every update).
    k:
        Number of top and of bottom exemplars kept per unit.
    window:
        ``(left, right)`` context kept around each exemplar along the position/time axis.
    n_bins:
        Histogram bins per unit (even).
    threshold:
        A row "activates" a unit when its value is above this (activation frequency; dead units).
    max_token_types:
        Token types tracked for the token-identity statistics (the rest share one "other" row).
    n_positions:
        Positions tracked for the position statistics (later positions share the last row); 0 to skip.
    """

    def __init__(self, n_units: int, k: int = 16, window: tuple[int, int] = (12, 4), n_bins: int = 64,
                 threshold: float = 0.0, max_token_types: int = 2048, n_positions: int = 512) -> None:
        if n_units < 1:
            raise ConfigError(f"n_units must be at least 1, got {n_units}")
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        if n_bins < 2 or n_bins % 2:
            raise ConfigError(f"n_bins must be an even number >= 2, got {n_bins}")
        left, right = (int(window), int(window)) if np.isscalar(window) else (int(window[0]), int(window[1]))
        if left < 0 or right < 0:
            raise ConfigError(f"window must be two non-negative ints (left, right), got {window}")
        self.n_units, self.k, self.left, self.right = int(n_units), int(k), left, right
        self.n_bins, self.threshold = int(n_bins), float(threshold)
        self.max_token_types, self.n_positions = int(max_token_types), int(n_positions)
        U, W = self.n_units, left + right + 1
        self.count = 0
        self.n_samples = 0
        self._mean = torch.zeros(U, dtype=torch.float64)
        self._m2 = torch.zeros(U, dtype=torch.float64)
        self._min = torch.full((U,), float("inf"))
        self._max = torch.full((U,), float("-inf"))
        self._active = torch.zeros(U, dtype=torch.float64)
        self._top = _Extremes.empty(U, self.k, W)
        self._bottom = _Extremes.empty(U, self.k, W)
        self._hist = torch.zeros((U, self.n_bins), dtype=torch.float64)
        self._hist_lo: torch.Tensor | None = None
        self._hist_w: torch.Tensor | None = None
        self._massive = torch.zeros(U)
        self._token_row: dict[int, int] = {}
        self._token_sums = torch.zeros((0, U), dtype=torch.float64)
        self._token_counts = torch.zeros(0, dtype=torch.float64)
        self._pos_sums = torch.zeros((self.n_positions, U), dtype=torch.float64)
        self._pos_counts = torch.zeros(self.n_positions, dtype=torch.float64)

    # ----------------------------------------------------------------- update
    def update(self, acts: torch.Tensor, tokens: torch.Tensor | None = None, mask: torch.Tensor | None = None,
               sample_offset: int | None = None) -> None:
        """Add one batch.

        Parameters
        ----------
        acts:
            ``(batch, pos, unit)`` or ``(sample, unit)``.
        tokens:
            ``(batch, pos)`` token ids for the exemplar contexts and token statistics (optional).
        mask:
            ``(batch, pos)`` with 1 for real tokens, 0 for padding (optional).
        sample_offset:
            Index of this batch's first sample in the corpus (default: samples seen so far).
        """
        if not isinstance(acts, torch.Tensor):
            acts = torch.as_tensor(np.asarray(acts))
        acts = acts.detach().to("cpu", torch.float32)
        if acts.ndim == 2:
            acts = acts.unsqueeze(1)
            tokens = None if tokens is None else torch.as_tensor(tokens).reshape(-1, 1)
            mask = None if mask is None else torch.as_tensor(mask).reshape(-1, 1)
        if acts.ndim != 3 or acts.shape[-1] != self.n_units:
            raise DimensionError(f"acts must be (batch, pos, {self.n_units}) or (sample, {self.n_units}), got {tuple(acts.shape)}")
        B, T, U = acts.shape
        if tokens is not None:
            tokens = torch.as_tensor(tokens).to("cpu", torch.long)
            if tokens.shape != (B, T):
                raise DimensionError(f"tokens must have shape {(B, T)} to match acts, got {tuple(tokens.shape)}")
        valid = torch.ones(B, T, dtype=torch.bool) if mask is None else torch.as_tensor(mask).to("cpu").bool()
        if valid.shape != (B, T):
            raise DimensionError(f"mask must have shape {(B, T)}, got {tuple(valid.shape)}")
        offset = self.n_samples if sample_offset is None else int(sample_offset)
        self.n_samples = max(self.n_samples, offset + B)
        row_b, row_t = torch.nonzero(valid, as_tuple=True)
        if row_b.numel() == 0:
            return
        flat = acts[row_b, row_t]  # (N, U)
        if not torch.isfinite(flat).all():
            raise NaNError("activations contain NaN or infinite values; clean them or drop those units first")
        self._update_moments(flat)
        masked = acts.masked_fill(~valid.unsqueeze(-1), float("nan"))
        self._top.merge(flat, masked, tokens, row_b, row_t, offset, self.left, self.right, 1.0)
        self._bottom.merge(flat, masked, tokens, row_b, row_t, offset, self.left, self.right, -1.0)
        self._update_hist(flat)
        med = flat.abs().median(dim=1, keepdim=True).values.clamp_min(1e-6)
        self._massive = torch.maximum(self._massive, (flat.abs() / med).max(0).values)
        if self.n_positions:
            pos = row_t.clamp_max(self.n_positions - 1)
            self._pos_sums.index_add_(0, pos, flat.double())
            self._pos_counts.index_add_(0, pos, torch.ones(len(pos), dtype=torch.float64))
        if tokens is not None and self.max_token_types:
            self._update_tokens(tokens[row_b, row_t], flat)

    def _update_moments(self, flat: torch.Tensor) -> None:
        n_b = flat.shape[0]
        x = flat.double()
        mean_b = x.mean(0)
        m2_b = ((x - mean_b) ** 2).sum(0)
        n = self.count
        delta = mean_b - self._mean
        total = n + n_b
        self._mean += delta * n_b / total
        self._m2 += m2_b + delta ** 2 * n * n_b / total
        self.count = total
        self._min = torch.minimum(self._min, flat.min(0).values)
        self._max = torch.maximum(self._max, flat.max(0).values)
        self._active += (flat > self.threshold).sum(0).double()

    def _update_hist(self, flat: torch.Tensor) -> None:
        nb = self.n_bins
        lo_b, hi_b = flat.min(0).values.double(), flat.max(0).values.double()
        if self._hist_lo is None:
            span = (hi_b - lo_b).clamp_min(1e-6)
            self._hist_lo = lo_b - 1e-3 * span
            self._hist_w = span * 1.002 / nb
        lo, w = self._hist_lo, self._hist_w
        for _ in range(64):  # each round doubles the range of the units that need it
            up = hi_b >= lo + nb * w
            down = lo_b < lo
            if not (up.any() or down.any()):
                break
            merged = self._hist.view(-1, nb // 2, 2).sum(-1)
            zeros = torch.zeros_like(merged)
            grow_up = up & ~down
            grow_down = down
            new = self._hist.clone()
            new[grow_up] = torch.cat([merged, zeros], 1)[grow_up]
            new[grow_down] = torch.cat([zeros, merged], 1)[grow_down]
            self._hist = new
            lo = torch.where(grow_down, lo - nb * w, lo)
            w = torch.where(grow_up | grow_down, w * 2, w)
        self._hist_lo, self._hist_w = lo, w
        bins = ((flat.double() - lo) / w).floor().long().clamp(0, nb - 1)  # (N, U)
        offsets = torch.arange(self.n_units) * nb
        self._hist.view(-1).index_add_(0, (bins + offsets).reshape(-1), torch.ones(bins.numel(), dtype=torch.float64))

    def _update_tokens(self, toks: torch.Tensor, flat: torch.Tensor) -> None:
        other = self.max_token_types  # the last row collects every token type beyond the cap
        if self._token_sums.shape[0] == 0:
            self._token_sums = torch.zeros((other + 1, self.n_units), dtype=torch.float64)
            self._token_counts = torch.zeros(other + 1, dtype=torch.float64)
        uniq, inverse = torch.unique(toks, return_inverse=True)
        row_of_uniq = []
        for t in uniq.tolist():
            r = self._token_row.get(t)
            if r is None and len(self._token_row) < other:
                r = self._token_row[t] = len(self._token_row)
            row_of_uniq.append(other if r is None else r)
        rows = torch.tensor(row_of_uniq, dtype=torch.long)[inverse]
        self._token_sums.index_add_(0, rows, flat.double())
        self._token_counts.index_add_(0, rows, torch.ones(len(rows), dtype=torch.float64))

    # ----------------------------------------------------------------- result
    def result(self) -> UnitStatsResult:
        """The statistics so far (raises if nothing was seen)."""
        if self.count == 0:
            raise InputTypeError("no activations were seen: the corpus or stimulus set is empty")
        var = self._m2 / max(self.count - 1, 1)
        n_tok = len(self._token_row)
        token_ids = np.full(self._token_sums.shape[0], -1, dtype=np.int64)
        for t, r in self._token_row.items():
            token_ids[r] = t
        return UnitStatsResult(
            count=self.count, n_samples=self.n_samples, mean=self._mean.numpy().copy(), var=var.numpy(),
            minimum=self._min.numpy().copy(), maximum=self._max.numpy().copy(),
            frequency=(self._active / self.count).numpy(), threshold=self.threshold,
            top_values=self._top.values.numpy().copy(), top_sample=self._top.sample.numpy().copy(),
            top_pos=self._top.pos.numpy().copy(), top_tokens=self._top.tokens.numpy().copy(),
            top_window=self._top.window.float().numpy(),
            bottom_values=-self._bottom.values.numpy(), bottom_sample=self._bottom.sample.numpy().copy(),
            bottom_pos=self._bottom.pos.numpy().copy(), bottom_tokens=self._bottom.tokens.numpy().copy(),
            bottom_window=self._bottom.window.float().numpy(),
            hist_counts=self._hist.numpy().copy(), hist_lo=self._hist_lo.numpy().copy(),
            hist_width=self._hist_w.numpy().copy(), massive_ratio=self._massive.numpy().copy(),
            token_ids=token_ids, token_counts=self._token_counts.numpy().copy(),
            token_sums=self._token_sums.numpy().copy(), n_token_types=n_tok,
            position_counts=self._pos_counts.numpy().copy(), position_sums=self._pos_sums.numpy().copy(),
            window=(self.left, self.right),
        )


def _eta_squared(sums: np.ndarray, counts: np.ndarray, mean: np.ndarray, var: np.ndarray, n: int) -> np.ndarray:
    """Fraction of variance explained by group identity, corrected for the number of groups.

    Epsilon-squared (Kelley 1935): ``(SS_between - (k - 1) MS_within) / SS_total``. Plain eta-squared
    (SS_between / SS_total) grows with the number of groups even without any effect (with thousands of
    token types seen a few times each it approaches 1), so the corrected value is what detectors use.
    """
    keep = counts > 0
    k = int(keep.sum())
    group_means = sums[keep] / counts[keep, None]
    between = (counts[keep, None] * (group_means - mean[None, :]) ** 2).sum(0)
    total = var * max(n - 1, 1)
    within = np.maximum(total - between, 0.0)
    ms_within = within / max(n - k, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = np.where(total > 0, (between - (k - 1) * ms_within) / total, 0.0)
    return np.clip(eps, 0.0, 1.0)


@dataclass
class UnitStatsResult(Result):
    """Per-unit statistics from :class:`UnitStats` (arrays indexed by unit first).

    Parameters
    ----------
    count, n_samples : int
        Rows (tokens, samples, time points) and samples seen.
    mean, var, minimum, maximum : numpy.ndarray
        ``(units,)`` moments and extremes.
    frequency : numpy.ndarray
        ``(units,)`` fraction of rows above ``threshold``.
    threshold : float
        The activation threshold of ``frequency``.
    top_values, top_sample, top_pos : numpy.ndarray
        ``(units, k)`` the largest activations, their sample and position indices (best first).
    top_tokens, top_window : numpy.ndarray
        ``(units, k, window)`` token ids around each exemplar (-1 = none) and the unit's activation there.
    bottom_values, bottom_sample, bottom_pos, bottom_tokens, bottom_window : numpy.ndarray
        The same for the smallest activations.
    hist_counts : numpy.ndarray
        ``(units, n_bins)`` histogram counts.
    hist_lo, hist_width : numpy.ndarray
        ``(units,)`` each histogram's lower edge and bin width.
    massive_ratio : numpy.ndarray
        ``(units,)`` the largest ``|a| / median_j |a_j|`` over rows (Sun et al. 2024).
    token_ids, token_counts, token_sums : numpy.ndarray
        Tracked token ids (-1: the shared "other" row), their counts and ``(types, units)`` activation sums.
    n_token_types : int
        Token types tracked.
    position_counts, position_sums : numpy.ndarray
        Per position (later ones share the last row): counts and ``(positions, units)`` activation sums.
    window : tuple of (int, int)
        ``(left, right)`` context around each exemplar.
    extra : dict
        Cached derived values.

    >>> stats = UnitStats(8, k=3); stats.update(torch.randn(4, 16, 8)); res = stats.result()
    >>> len(res.to_frame())
    8
    """

    count: int
    n_samples: int
    mean: np.ndarray
    var: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray
    frequency: np.ndarray
    threshold: float
    top_values: np.ndarray
    top_sample: np.ndarray
    top_pos: np.ndarray
    top_tokens: np.ndarray
    top_window: np.ndarray
    bottom_values: np.ndarray
    bottom_sample: np.ndarray
    bottom_pos: np.ndarray
    bottom_tokens: np.ndarray
    bottom_window: np.ndarray
    hist_counts: np.ndarray
    hist_lo: np.ndarray
    hist_width: np.ndarray
    massive_ratio: np.ndarray
    token_ids: np.ndarray
    token_counts: np.ndarray
    token_sums: np.ndarray
    n_token_types: int
    position_counts: np.ndarray
    position_sums: np.ndarray
    window: tuple[int, int]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_units(self) -> int:
        return len(self.mean)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.var)

    def hist_edges(self, unit: int) -> np.ndarray:
        """Bin edges of ``unit``'s histogram.

        Parameters
        ----------
        unit : int
            The unit's index.
        """
        nb = self.hist_counts.shape[1]
        return self.hist_lo[unit] + self.hist_width[unit] * np.arange(nb + 1)

    def token_eta2(self) -> np.ndarray:
        """Fraction of each unit's variance explained by the current token's identity (epsilon-squared)."""
        if "token_eta2" not in self.extra:
            self.extra["token_eta2"] = (np.zeros(self.n_units) if not len(self.token_counts) else
                                        _eta_squared(self.token_sums, self.token_counts, self.mean, self.var, self.count))
        return self.extra["token_eta2"]

    def position_eta2(self) -> np.ndarray:
        """Fraction of each unit's variance explained by the position in the context (epsilon-squared)."""
        if "position_eta2" not in self.extra:
            self.extra["position_eta2"] = (np.zeros(self.n_units) if not self.position_counts.sum() else
                                           _eta_squared(self.position_sums, self.position_counts, self.mean, self.var,
                                                        self.count))
        return self.extra["position_eta2"]

    def token_means(self, unit: int, top: int = 10, min_count: int = 2, largest: bool = True) -> pd.DataFrame:
        """Tokens with the highest (or lowest) mean activation of ``unit`` (seen at least ``min_count`` times).

        Parameters
        ----------
        unit : int
            The unit's index.
        top : int
            Tokens listed.
        min_count : int
            Tokens seen fewer times are left out.
        largest : bool
            Highest means first (False: lowest first).
        """
        key = ("token_means", min_count)
        if key not in self.extra:  # (tracked tokens seen often enough, their mean activations for every unit)
            keep = np.flatnonzero((self.token_ids >= 0) & (self.token_counts >= min_count))
            means = self.token_sums[keep] / self.token_counts[keep, None] if len(keep) else np.zeros((0, self.n_units))
            self.extra[key] = (keep, means)
        keep, means = self.extra[key]
        if not len(keep):
            return pd.DataFrame(columns=["token", "count", "mean"])
        col = means[:, unit]
        n = min(top, len(col))
        order = np.argpartition(-col if largest else col, n - 1)[:n]
        order = order[np.argsort(-col[order] if largest else col[order], kind="stable")]
        rows = keep[order]
        return pd.DataFrame({"token": self.token_ids[rows], "count": self.token_counts[rows].astype(int), "mean": col[order]})

    def position_means(self) -> np.ndarray:
        """``(positions, unit)`` mean activation per position (NaN where unseen)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.position_sums / self.position_counts[:, None]

    def to_frame(self) -> pd.DataFrame:
        """One row per unit: mean, std, min, max, frequency, massive ratio, token and position eta²."""
        return pd.DataFrame({
            "unit": np.arange(self.n_units), "mean": self.mean, "std": self.std, "min": self.minimum,
            "max": self.maximum, "frequency": self.frequency, "massive_ratio": self.massive_ratio,
            "token_eta2": self.token_eta2(), "position_eta2": self.position_eta2(),
        })

    def summary(self) -> str:
        """How much was seen, how many units are active, and the most token- and position-driven units."""
        active = self.frequency > 0
        lines = [f"Unit statistics of {self.n_units} units over {self.count} activations ({self.n_samples} sequences)",
                 f"  active (frequency > 0): {int(active.sum())} units; median frequency {float(np.median(self.frequency)):.3g}"]
        for name, values in (("token", self.token_eta2()), ("position", self.position_eta2())):
            if len(values) and float(np.max(values)) > 0:
                u = int(np.argmax(values))
                lines.append(f"  most {name}-driven: unit {u} ({name} eta2 {float(values[u]):.3f})")
        return "\n".join(lines)

    def plot(self, unit: int = 0, **kwargs: Any) -> Any:
        """Histogram of one unit's activations (plotly).

        Parameters
        ----------
        unit : int
            The unit's index.
        **kwargs
            ``title``.
        """
        import plotly.graph_objects as go

        edges = self.hist_edges(unit)
        fig = go.Figure(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=self.hist_counts[unit], width=np.diff(edges)))
        return themed(fig, title=kwargs.get("title", f"unit {unit}: activation histogram"), xaxis_title="activation",
                      yaxis_title="count", height=300)
