"""Phenomenon detectors for units, each with its published criterion.

Activation-based detectors read a :class:`~interp.label.stats.UnitStatsResult` (one streaming pass);
weight-based detectors read the model's weights. Thresholds are parameters; defaults are ours unless
the docstring says they come from the paper.

>>> flags = detect_phenomena(stats_result, model=model, layer=3)      # doctest: +SKIP
>>> flags.to_frame().query("dead")                                    # doctest: +SKIP
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from ..errors import DimensionError, InputTypeError
from ..results import Result, themed
from .stats import UnitStatsResult

__all__ = [
    "dead_units", "massive_units", "token_detectors", "ngram_detectors", "positional_units",
    "vocab_neuron_classes", "enrichment_depletion", "universal_units", "Phenomena", "detect_phenomena",
    "StreamingCorrelation", "exemplar_ngrams",
]


def dead_units(stats: UnitStatsResult, min_frequency: float = 0.0) -> np.ndarray:
    """Units that (almost) never activate.

    Criterion (Voita, Ferrando & Nalmpantis 2023, "Neurons in Large Language Models: Dead, N-gram,
    Positional"): a neuron is dead if it never activates (value above ``stats.threshold``, 0 for ReLU-like
    activations) on a large diverse corpus. ``min_frequency`` > 0 relaxes "never" to "at most this often".

    Parameters
    ----------
    stats : UnitStatsResult
        Streaming statistics of the units.
    min_frequency : float, optional
        Highest firing frequency still counted as dead (default 0: never fires).
    """
    return stats.frequency <= min_frequency


def massive_units(stats: UnitStatsResult, min_abs: float = 100.0, min_ratio: float = 1000.0) -> np.ndarray:
    """Units that carry massive activations.

    Criterion (Sun, Chen, Kolter & Liu 2024, "Massive Activations in Large Language Models"): an
    activation is massive when its magnitude exceeds 100 and is about 1,000 times the median magnitude
    of the hidden state it belongs to. Here: max |a| >= ``min_abs`` and max over rows of
    ``|a| / median_j |a_j|`` >= ``min_ratio`` (both defaults from the paper).

    Parameters
    ----------
    stats : UnitStatsResult
        Streaming statistics of the units.
    min_abs : float, optional
        Smallest maximum magnitude (default 100).
    min_ratio : float, optional
        Smallest ratio of the magnitude to the median magnitude of its hidden state (default 1000).
    """
    abs_max = np.maximum(np.abs(stats.maximum), np.abs(stats.minimum))
    return (abs_max >= min_abs) & (stats.massive_ratio >= min_ratio)


def token_detectors(stats: UnitStatsResult, min_eta2: float = 0.5) -> np.ndarray:
    """Units whose activation is mostly explained by the current token's identity (unigram neurons).

    Criterion (Gurnee et al. 2024, "Universal Neurons in GPT2 Language Models", unigram neurons; Voita et
    al. 2023, token detectors): the fraction of activation variance explained by the current token
    (between-token sum of squares over total) is high. Threshold ``min_eta2`` is ours.

    Parameters
    ----------
    stats : UnitStatsResult
        Streaming statistics of the units.
    min_eta2 : float, optional
        Smallest share of variance explained by the current token (default 0.5).
    """
    return stats.token_eta2() >= min_eta2


def positional_units(stats: UnitStatsResult, min_eta2: float = 0.5) -> np.ndarray:
    """Units whose activation is mostly explained by the absolute position.

    Criterion (Voita et al. 2023, positional neurons; Gurnee et al. 2024, position neurons): the fraction
    of activation variance explained by position in the context is high. Threshold ``min_eta2`` is ours.

    Parameters
    ----------
    stats : UnitStatsResult
        Streaming statistics of the units.
    min_eta2 : float, optional
        Smallest share of variance explained by the position (default 0.5).
    """
    return stats.position_eta2() >= min_eta2


def exemplar_ngrams(stats: UnitStatsResult, unit: int, n: int = 2, top: int = 5) -> list[tuple[tuple[int, ...], int]]:
    """Most common n-grams (token ids) ending at the top-k exemplars of ``unit``, with counts.

    Parameters
    ----------
    stats : UnitStatsResult
        Streaming statistics with exemplar token windows.
    unit : int
        The unit's index.
    n : int, optional
        N-gram length (default 2), from 1 to the window's left context + 1.
    top : int, optional
        Most common n-grams returned (default 5).
    """
    left = stats.window[0]
    if n < 1 or n > left + 1:
        raise DimensionError(f"n must be in 1..{left + 1} (the exemplar window reaches {left} tokens back)")
    grams = []
    for w in stats.top_tokens[unit]:
        g = tuple(int(t) for t in w[left - n + 1:left + 1])
        if all(t >= 0 for t in g):
            grams.append(g)
    return Counter(grams).most_common(top)


def ngram_detectors(stats: UnitStatsResult, n: int = 2, min_share: float = 0.6,
                    max_token_eta2: float = 0.5) -> tuple[np.ndarray, list[tuple[int, ...] | None]]:
    """Units whose top exemplars are one n-gram, where the last token alone does not explain the unit.

    Criterion (Voita et al. 2023, n-gram detectors; Gurnee et al. 2023, "Finding Neurons in a Haystack"):
    the neuron fires on a specific short sequence of tokens. Here: at least ``min_share`` of the top-k
    exemplars end with the same n-gram, and the current token explains less than ``max_token_eta2`` of
    the variance (otherwise it is a token detector). Returns ``(mask, best n-gram per unit)``.

    Parameters
    ----------
    stats : UnitStatsResult
        Streaming statistics with exemplar token windows.
    n : int, optional
        N-gram length (default 2).
    min_share : float, optional
        Smallest share of the top-k exemplar slots that must end with the same n-gram (default 0.6).
    max_token_eta2 : float, optional
        The current token must explain less than this share of the variance (default 0.5).
    """
    eta = stats.token_eta2()
    mask = np.zeros(stats.n_units, dtype=bool)
    best: list[tuple[int, ...] | None] = []
    k = stats.top_values.shape[1]
    for u in range(stats.n_units):
        common = exemplar_ngrams(stats, u, n=n, top=1)
        best.append(common[0][0] if common else None)
        mask[u] = bool(common) and common[0][1] >= min_share * k and eta[u] < max_token_eta2
    return mask, best


def vocab_neuron_classes(kurtosis: np.ndarray, skew: np.ndarray, norm: np.ndarray | None = None,
                         null_fraction: np.ndarray | None = None, min_kurtosis: float = 10.0,
                         min_null_ratio: float = 10.0, chance_null: float | None = None,
                         norm_quantile: float = 0.9) -> pd.DataFrame:
    """Prediction, suppression and entropy neurons from the moments of ``W_U w_out``.

    Criteria (Gurnee et al. 2024, "Universal Neurons in GPT2 Language Models", section 5):

    * prediction neuron: the vocabulary distribution of ``W_U w_out`` has high kurtosis (a few tokens
      get large logit effects) and positive skew (they are promoted);
    * suppression neuron: high kurtosis and negative skew (a few tokens are suppressed);
    * entropy neuron: a large-norm ``w_out`` that writes mostly into the (effective) null space of
      ``W_U``, so it changes the final norm's scale and hence the entropy of the prediction rather than
      any particular logit (also Stolfo et al. 2024, "Confidence Regulation Neurons in LMs").

    ``min_kurtosis`` (ours; a Gaussian has kurtosis 3), ``null_fraction`` = share of ``||w_out||^2`` in the
    bottom singular directions of W_U, flagged when it is ``min_null_ratio`` times ``chance_null`` (the
    share a random direction would have) and the norm is above the layer's ``norm_quantile``.

    Parameters
    ----------
    kurtosis, skew : numpy.ndarray
        Kurtosis and skew of each unit's ``W_U w_out`` over the vocabulary.
    norm : numpy.ndarray, optional
        ``||w_out||`` per unit; needed for entropy neurons.
    null_fraction : numpy.ndarray, optional
        Share of ``||w_out||^2`` in the null space of ``W_U`` (:func:`null_space_fraction`); needed for entropy neurons.
    min_kurtosis : float, optional
        Kurtosis from which a unit is a prediction or suppression neuron (default 10).
    min_null_ratio : float, optional
        How many times the chance share ``null_fraction`` must be (default 10).
    chance_null : float, optional
        Share a random direction would have; None (or 0): no entropy neurons are flagged.
    norm_quantile : float, optional
        Entropy neurons need a norm at or above this quantile of the layer (default 0.9).
    """
    kurtosis, skew = np.asarray(kurtosis), np.asarray(skew)
    heavy = kurtosis >= min_kurtosis
    out = pd.DataFrame({"prediction": heavy & (skew > 0), "suppression": heavy & (skew < 0)})
    entropy = np.zeros(len(kurtosis), dtype=bool)
    if null_fraction is not None and norm is not None and chance_null:
        big = np.asarray(norm) >= np.quantile(norm, norm_quantile)
        entropy = big & (np.asarray(null_fraction) >= min_null_ratio * chance_null)
    out["entropy"] = entropy
    return out


def null_space_fraction(model: Any, layer: int, n_null: int | None = None, final_norm: bool = True) -> tuple[np.ndarray, float]:
    """Share of each ``||w_out||^2`` in the ``n_null`` bottom left-singular directions of ``W_U`` (and the chance share).

    Parameters
    ----------
    model : TransformerBridge
        The model (its unembedding and MLP weights are read).
    layer : int
        The MLP layer.
    n_null : int, optional
        Number of bottom singular directions spanning the null space; None: ``max(1, d_model // 50)``.
    final_norm : bool, optional
        Fold the final norm's weights into ``W_U`` (default True).
    """
    from .vocab import mlp_weights, unembedding

    W_U = unembedding(model, final_norm)  # (d_model, vocab)
    d = W_U.shape[0]
    n_null = n_null or max(1, d // 50)
    gram = (W_U @ W_U.T).double()  # (d_model, d_model): its eigenvectors are W_U's left singular vectors
    _, vecs = torch.linalg.eigh(gram)  # ascending eigenvalues: the first columns span the effective null space
    null = vecs[:, :n_null].float()  # (d_model, n_null)
    w = mlp_weights(model, layer)["out"]
    frac = (w @ null).pow(2).sum(1) / w.pow(2).sum(1).clamp_min(1e-12)
    return frac.numpy(), n_null / d


def enrichment_depletion(model: Any, layer: int, threshold: float = 0.5, use: str = "in") -> pd.DataFrame:
    """Enrichment and depletion neurons from ``cos(w_in, w_out)``.

    Criterion (Gurnee et al. 2024, "Universal Neurons in GPT2 Language Models", section 5.3): a neuron
    whose output weights point along its input weights (cos > 0) adds to the direction that activated
    it (enrichment); one whose output opposes its input (cos < 0) removes it (depletion). Threshold
    ``|cos| >= threshold`` is ours. For gated MLPs ``use`` picks W_in (up) or W_gate as ``w_in``.

    Parameters
    ----------
    model : TransformerBridge
        The model (its MLP weights are read).
    layer : int
        The MLP layer.
    threshold : float, optional
        ``|cos|`` from which a unit is flagged (default 0.5).
    use : str, optional
        Which input weights are ``w_in``: ``"in"`` (default) or, for gated MLPs, ``"gate"``.
    """
    from .vocab import mlp_weights

    w = mlp_weights(model, layer)
    if use not in w:
        raise InputTypeError(f"use must be one of {sorted(k for k in w if k != 'out')}, got {use!r}")
    cos = torch.nn.functional.cosine_similarity(w[use], w["out"], dim=1).numpy()
    return pd.DataFrame({"cos_in_out": cos, "enrichment": cos >= threshold, "depletion": cos <= -threshold})


class StreamingCorrelation:
    """Pearson correlation of every unit of model A with every unit of model B, accumulated in batches.

    Memory O(units_a x units_b); pass aligned activations ``(rows, units)`` of the two models on the
    same tokens.

    Parameters
    ----------
    n_a : int
        Units of model A.
    n_b : int
        Units of model B.
    """

    def __init__(self, n_a: int, n_b: int) -> None:
        self.n = 0
        self.sa = torch.zeros(n_a, dtype=torch.float64)
        self.sb = torch.zeros(n_b, dtype=torch.float64)
        self.saa = torch.zeros(n_a, dtype=torch.float64)
        self.sbb = torch.zeros(n_b, dtype=torch.float64)
        self.sab = torch.zeros(n_a, n_b, dtype=torch.float64)

    def update(self, a: torch.Tensor, b: torch.Tensor) -> None:
        """Add one batch of aligned rows.

        Parameters
        ----------
        a : torch.Tensor
            Activations of model A, reshaped to ``(rows, n_a)``.
        b : torch.Tensor
            Activations of model B on the same rows, reshaped to ``(rows, n_b)``.
        """
        a, b = torch.as_tensor(a).reshape(-1, len(self.sa)).double(), torch.as_tensor(b).reshape(-1, len(self.sb)).double()
        if len(a) != len(b):
            raise DimensionError(f"the two models' activations must have the same rows, got {len(a)} and {len(b)}")
        self.n += len(a)
        self.sa += a.sum(0)
        self.sb += b.sum(0)
        self.saa += (a * a).sum(0)
        self.sbb += (b * b).sum(0)
        self.sab += a.T @ b

    def result(self) -> np.ndarray:
        n = self.n
        cov = self.sab / n - torch.outer(self.sa, self.sb) / n ** 2
        va = (self.saa / n - (self.sa / n) ** 2).clamp_min(0)
        vb = (self.sbb / n - (self.sb / n) ** 2).clamp_min(0)
        denom = torch.outer(va.sqrt(), vb.sqrt())
        return torch.where(denom > 0, cov / denom.clamp_min(1e-300), torch.zeros_like(cov)).numpy()


def universal_units(acts_a: torch.Tensor, acts_b: torch.Tensor, threshold: float = 0.5, seed: int = 0,
                    batch_rows: int = 65536) -> pd.DataFrame:
    """Units of model A that have a highly correlated partner in model B (universal neurons).

    Criterion (Gurnee et al. 2024, "Universal Neurons in GPT2 Language Models", section 3): for each
    neuron of A, the maximum Pearson correlation with any neuron of B over the same tokens, minus the
    same maximum against a random rotation of B's activations (the *excess correlation*, which removes
    what correlation a basis-free representation would give). Gurnee et al. call neurons with excess
    correlation above 0.5 universal (the default ``threshold``).

    ``acts_a``/``acts_b`` are ``(rows, units)`` on the same tokens (e.g. two seeds of one architecture).

    Parameters
    ----------
    acts_a : torch.Tensor
        Activations of model A ``(rows, units_a)``.
    acts_b : torch.Tensor
        Activations of model B ``(rows, units_b)`` on the same tokens.
    threshold : float, optional
        Excess correlation from which a unit is universal (default 0.5).
    seed : int, optional
        Seed of the random rotation of the baseline (default 0).
    batch_rows : int, optional
        Rows accumulated per step (default 65536).
    """
    a, b = torch.as_tensor(acts_a).float(), torch.as_tensor(acts_b).float()
    if a.ndim != 2 or b.ndim != 2 or len(a) != len(b):
        raise DimensionError(f"acts must be (rows, units) with the same rows, got {tuple(a.shape)} and {tuple(b.shape)}")
    if len(a) < 3:
        raise DimensionError("need at least 3 rows to correlate units")
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(b.shape[1], b.shape[1], generator=g))
    bc = b - b.mean(0)
    rotated = bc @ q
    corr, base = StreamingCorrelation(a.shape[1], b.shape[1]), StreamingCorrelation(a.shape[1], b.shape[1])
    for start in range(0, len(a), batch_rows):
        corr.update(a[start:start + batch_rows], b[start:start + batch_rows])
        base.update(a[start:start + batch_rows], rotated[start:start + batch_rows])
    r, r0 = corr.result(), base.result()
    best = r.argmax(1)
    max_r, max_r0 = r.max(1), r0.max(1)
    excess = max_r - max_r0
    return pd.DataFrame({"unit": np.arange(a.shape[1]), "partner": best, "max_corr": max_r, "baseline_corr": max_r0,
                         "excess_corr": excess, "universal": excess >= threshold})


@dataclass
class Phenomena(Result):
    """Per-unit phenomenon flags (boolean columns) and the numbers behind them.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per unit: the flag columns and the numbers behind them.
    notes : dict of str to str, optional
        Detectors that were skipped, and why.

    Attributes
    ----------
    FLAGS : tuple of str
        The flag columns in display order (a class constant, not a field).

    >>> ph = detect_phenomena(stats)          # doctest: +SKIP
    >>> print(ph.summary())                   # doctest: +SKIP
    """

    frame: pd.DataFrame
    notes: dict[str, str] = field(default_factory=dict)

    FLAGS: ClassVar[tuple[str, ...]] = ("dead", "massive", "token_detector", "ngram_detector", "positional", "prediction",
                            "suppression", "entropy", "enrichment", "depletion", "universal")

    def to_frame(self) -> pd.DataFrame:
        """One row per unit: the flags and the numbers behind them."""
        return self.frame.copy()

    def labels(self) -> list[list[str]]:
        """Flag names per unit (for the report's phenomenon column)."""
        cols = [c for c in self.FLAGS if c in self.frame.columns]
        flags = self.frame[cols].to_numpy(dtype=bool)
        return [[c.replace("_", "-") for c, f in zip(cols, row) if f] for row in flags]

    def summary(self) -> str:
        """How many units show each phenomenon, and which detectors were skipped."""
        cols = [c for c in self.FLAGS if c in self.frame.columns]
        counts = ", ".join(f"{c.replace('_', '-')} {int(self.frame[c].sum())}" for c in cols)
        lines = [f"Phenomena of {len(self.frame)} units", f"  units per phenomenon: {counts or 'no detectors ran'}"]
        lines += [f"  {key}: {note}" for key, note in self.notes.items()]
        return "\n".join(lines)

    def plot(self, **kwargs: Any) -> Any:
        """Bar chart of how many units show each phenomenon."""
        import plotly.graph_objects as go

        cols = [c for c in self.FLAGS if c in self.frame.columns]
        fig = go.Figure(go.Bar(x=cols, y=[int(self.frame[c].sum()) for c in cols]))
        return themed(fig, title=kwargs.get("title", "units per phenomenon"), height=320, yaxis_title="units")


def detect_phenomena(stats: UnitStatsResult, model: Any = None, layer: int | None = None,
                     vocab: Any = None, universal: pd.DataFrame | None = None) -> Phenomena:
    """Run every detector that the inputs allow and collect the flags per unit.

    ``stats`` gives dead, massive, token, n-gram and positional; ``model`` + ``layer`` (an MLP layer of a
    TransformerBridge) add prediction, suppression and entropy (from ``vocab``, a ``which="out"``
    :class:`~interp.label.vocab.VocabProjection` of all units, computed if absent) and enrichment /
    depletion; ``universal`` (from :func:`universal_units`) adds universality.

    Parameters
    ----------
    stats : UnitStatsResult
        Streaming statistics of the units.
    model : TransformerBridge, optional
        The model, for the weight-based detectors (with ``layer``).
    layer : int, optional
        The MLP layer the units belong to.
    vocab : VocabProjection, optional
        A ``which="out"`` projection of all units; None: computed from ``model``.
    universal : pandas.DataFrame, optional
        The output of :func:`universal_units` for the same units.
    """
    frame = pd.DataFrame({"unit": np.arange(stats.n_units), "frequency": stats.frequency,
                          "token_eta2": stats.token_eta2(), "position_eta2": stats.position_eta2(),
                          "massive_ratio": stats.massive_ratio})
    frame["dead"] = dead_units(stats)
    frame["massive"] = massive_units(stats)
    frame["token_detector"] = token_detectors(stats) & ~frame["dead"]
    has_tokens = bool((stats.top_tokens >= 0).any())
    if has_tokens and stats.window[0] >= 1:
        ngram, best = ngram_detectors(stats)
        frame["ngram_detector"] = ngram & ~frame["dead"]
        frame["top_ngram"] = [None if g is None else list(g) for g in best]
    frame["positional"] = positional_units(stats) & ~frame["dead"]
    notes: dict[str, str] = {}
    if model is not None and layer is not None:
        try:
            from .vocab import vocab_projection

            vocab = vocab if vocab is not None else vocab_projection(model, layer, "out", k=5)
            if len(vocab.units) == stats.n_units:
                nf, chance = null_space_fraction(model, layer)
                classes = vocab_neuron_classes(vocab.kurtosis, vocab.skew, vocab.norm, nf, chance_null=chance)
                frame["vocab_kurtosis"], frame["vocab_skew"], frame["null_fraction"] = vocab.kurtosis, vocab.skew, nf
                for c in classes.columns:
                    frame[c] = classes[c].to_numpy()
                ed = enrichment_depletion(model, layer, use="gate" if hasattr(model.blocks[layer].mlp, "W_gate")
                                          and model.blocks[layer].mlp.W_gate is not None else "in")
                for c in ed.columns:
                    frame[c] = ed[c].to_numpy()
        except InputTypeError as exc:
            notes["weights"] = f"weight-based detectors skipped: {exc}"
    if universal is not None:
        frame["excess_corr"] = universal["excess_corr"].to_numpy()
        frame["universal"] = universal["universal"].to_numpy()
    return Phenomena(frame, notes)
