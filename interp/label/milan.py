"""MILAN: natural-language descriptions of visual units from their exemplars (Hernandez et al., ICLR 2022).

Paper: "Natural Language Descriptions of Deep Visual Features" (Hernandez, Schwettmann, Bau, Bagashvili,
Torralba, Andreas; arXiv 2201.11114). Code followed: ``evandez/neuron-descriptions`` at commit 19c4d58
(``src/exemplars/compute.py`` for the exemplars, ``src/milan/decoders.py`` for the PMI decoding):

* exemplars (:func:`unit_exemplars`): the top ``k = 15`` inputs by the unit's (spatially max-pooled)
  activation; each comes with a mask, the unit's activation map upsampled (bilinear) to the input size and
  thresholded at the unit's 0.99 activation quantile over the whole dataset (NetDissect's ``tally_topk_and_
  quantile``);
* a description model p(d | E) proposes candidates (MILAN: a Show-Attend-Tell captioner over the masked
  exemplars, beam 50) and a language model p(d) scores them; the description is the candidate with the
  largest ``log p(d|E) - pmi_weight * log p(d)`` (``pmi_weight`` = 0.2, their ``temperature``).

Describers (any object with ``candidates(masked_exemplars, exemplars) -> [(text, log p(d|E))]`` and
``log_prior(texts) -> log p(d)``): :class:`RetrievalDescriber` names exemplars by their dataset labels (p(d|E):
the share of exemplars with a label; p(d): the label's share of the dataset); :class:`CaptionerDescriber`
wraps any local image-to-text model given as a function from images to scored captions, with a unigram
language model of the captions it has produced as p(d) unless one is given.

Where it differs: no MILAN captioner weights are shipped (their model is trained on MILANNOTATIONS); the
quantile is computed exactly over every (input, location) activation (theirs: a streaming estimate); masks
of dense (non-spatial) units cover the whole input.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch

from .. import engine
from ..errors import ConfigError, DimensionError
from ..results import Result, themed

__all__ = ["UnitExemplars", "unit_exemplars", "Describer", "RetrievalDescriber", "CaptionerDescriber",
           "UnitDescriptions", "describe_units", "pmi_rerank"]


@dataclass
class UnitExemplars(Result):
    """Top inputs of each unit and the regions that drive it.

    Parameters
    ----------
    units : list of int
        The units, in the order of the arrays' first axis.
    indices : numpy.ndarray
        ``(n_units, k)`` input rows, strongest first.
    activations : numpy.ndarray
        ``(n_units, k)`` their max-pooled activation.
    masks : numpy.ndarray
        ``(n_units, k, H, W)`` bool: where each exemplar's upsampled activation reaches the threshold.
    thresholds : numpy.ndarray
        ``(n_units,)`` the activation quantile each mask is cut at.
    quantile : float
        The quantile of ``thresholds`` (over every input and location).
    """

    units: list[int]
    indices: np.ndarray
    activations: np.ndarray
    masks: np.ndarray
    thresholds: np.ndarray
    quantile: float = 0.99

    def to_frame(self) -> pd.DataFrame:
        """One row per (unit, rank): input index, activation, masked fraction of the input."""
        rows = []
        for u, unit in enumerate(self.units):
            for r in range(self.indices.shape[1]):
                rows.append({"unit": unit, "rank": r, "input": int(self.indices[u, r]),
                             "activation": float(self.activations[u, r]), "mask_fraction": float(self.masks[u, r].mean())})
        return pd.DataFrame(rows)

    def masked(self, images: torch.Tensor, unit: int) -> torch.Tensor:
        """The exemplars of ``unit`` with everything outside the mask set to 0.

        Parameters
        ----------
        images : torch.Tensor
            The dataset ``(n, C, H, W)`` the exemplars were found in.
        unit : int
            A unit of ``units`` (not its position).
        """
        u = self.units.index(unit)
        imgs = torch.as_tensor(images)[torch.as_tensor(self.indices[u])].float()
        mask = torch.as_tensor(self.masks[u])
        return imgs * mask[:, None] if imgs.ndim == 4 else imgs * mask

    def plot(self, unit: int | None = None, **kwargs: Any) -> Any:
        """Masks of one unit's exemplars side by side (plotly heat maps).

        Parameters
        ----------
        unit : int, optional
            A unit of ``units`` (default the first).
        **kwargs
            ``title``.
        """
        import plotly.express as px

        u = 0 if unit is None else self.units.index(unit)
        fig = px.imshow(self.masks[u].astype(float), facet_col=0, facet_col_wrap=5, binary_string=False)
        return themed(fig, title=kwargs.get("title", f"unit {self.units[u]}: exemplar masks"))


def _maps(model: Any, images: torch.Tensor, site: str, preprocess: Callable | None, batch_size: int) -> torch.Tensor:
    """The site's activation maps ``(n, units, h, w)`` (dense units: ``(n, units, 1, 1)``)."""
    parts = []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size]
        x = preprocess(x) if preprocess is not None else x
        with torch.no_grad():
            a = engine.record(model, x, [site], stop=True).acts[site].float()
        if a.ndim == 2:
            a = a[:, :, None, None]
        if a.ndim != 4:
            raise DimensionError(f"site {site!r} gives activations of shape {tuple(a.shape)}; MILAN exemplars need "
                                 "(batch, channel, height, width) maps or (batch, unit) vectors")
        parts.append(a.cpu())
    return torch.cat(parts)


def unit_exemplars(model: Any, images: Any, site: str, units: Sequence[int] | None = None, k: int = 15,
                   quantile: float = 0.99, preprocess: Callable | None = None, batch_size: int = 64) -> UnitExemplars:
    """The top-``k`` inputs of each unit and masks of the regions that drive it (MILAN's exemplars).

    Source: Hernandez et al., "Natural Language Descriptions of Deep Visual Features", ICLR 2022 (arXiv
    2201.11114); code ``evandez/neuron-descriptions`` at commit 19c4d58 (``src/exemplars/compute.py``).
    Differences: the quantile is exact over every (input, location) (theirs: a streaming estimate); dense units
    get whole-input masks.

    ``images``: ``(n, C, H, W)`` (masks are drawn at ``H x W``). Activations are ranked by their spatial max;
    a mask is the activation map upsampled to ``H x W`` (bilinear) and cut at the unit's ``quantile`` over
    every (input, location) of the dataset.

    Parameters
    ----------
    model : torch.nn.Module
        The vision model.
    images : array_like
        ``(n, C, H, W)``; masks are drawn at ``H x W``.
    site : str
        Module path whose output ``(n, units, h, w)`` is described (or ``(n, units)``: masks cover everything).
    units : Sequence[int], optional
        Units (channels) to describe (default all).
    k : int
        Exemplars per unit (at most ``n``).
    quantile : float
        In (0, 1): a mask is where the activation reaches this quantile of the unit over every input and
        location.
    preprocess : Callable, optional
        Applied to each batch of images before the model.
    batch_size : int
        Images per forward pass.
    """
    images = torch.as_tensor(images)
    if images.ndim != 4:
        raise DimensionError(f"images must be (n, channels, height, width); got {tuple(images.shape)}")
    if not 0 < quantile < 1:
        raise ConfigError(f"quantile must be in (0, 1), got {quantile}")
    maps = _maps(model, images, site, preprocess, batch_size)
    n, n_units = maps.shape[:2]
    units = list(range(n_units)) if units is None else [int(u) for u in units]
    if any(not 0 <= u < n_units for u in units):
        raise ConfigError(f"units must be in [0, {n_units}); got {units}")
    k = min(int(k), n)
    H, W = images.shape[-2:]
    idx, acts, masks, thresholds = [], [], [], []
    for u in units:
        m = maps[:, u]
        thr = float(torch.quantile(m.reshape(-1).double(), quantile))
        pooled = m.reshape(n, -1).amax(1)
        top = pooled.topk(k)
        up = torch.nn.functional.interpolate(m[top.indices][:, None], size=(H, W), mode="bilinear", align_corners=False)[:, 0]
        idx.append(top.indices.numpy())
        acts.append(top.values.numpy())
        masks.append((up >= thr).numpy() if m.shape[-1] > 1 or m.shape[-2] > 1 else np.ones((k, H, W), dtype=bool))
        thresholds.append(thr)
    return UnitExemplars(units, np.stack(idx), np.stack(acts), np.stack(masks), np.array(thresholds), quantile)


class Describer(Protocol):
    """``candidates(masked, exemplars) -> [(text, log p(d|E))]`` and ``log_prior(texts) -> log p(d)``."""

    def candidates(self, masked: torch.Tensor, indices: np.ndarray) -> list[tuple[str, float]]:
        """Candidate descriptions of one unit with ``log p(d | exemplars)``.

        Parameters
        ----------
        masked : torch.Tensor
            The unit's exemplars ``(k, C, H, W)`` with everything outside their masks set to 0.
        indices : numpy.ndarray
            ``(k,)`` the exemplars' rows in the dataset.

        Returns
        -------
        list of (str, float)
            ``(text, log p(text | exemplars))`` pairs.
        """

    def log_prior(self, texts: Sequence[str]) -> np.ndarray:
        """``log p(d)`` of each text.

        Parameters
        ----------
        texts : Sequence[str]
            Candidate descriptions.

        Returns
        -------
        numpy.ndarray
            ``(len(texts),)`` log prior probabilities.
        """


class RetrievalDescriber:
    """Names a unit by the dataset labels of its exemplars.

    Source: Hernandez et al., "Natural Language Descriptions of Deep Visual Features", ICLR 2022 (arXiv
    2201.11114); code ``evandez/neuron-descriptions`` at commit 19c4d58. Differences: not in the paper: it names
    exemplars by their dataset labels in place of a trained captioner.

    p(d | E) = the share of the exemplars labelled d; p(d) = d's share of the whole dataset, so the PMI
    rerank prefers a label the exemplars over-represent to one that is merely common.

    Parameters
    ----------
    labels : Sequence
        The dataset label of every input row.
    names : dict, optional
        ``{label: text}`` for the descriptions (default the label itself as a string).
    """

    name = "retrieval"

    def __init__(self, labels: Sequence[Any], names: dict[Any, str] | None = None) -> None:
        self.labels = np.asarray(list(labels))
        self.names = names or {}
        counts = Counter(self.labels.tolist())
        self._prior = {self._text(lab): np.log(c / len(self.labels)) for lab, c in counts.items()}

    def _text(self, label: Any) -> str:
        return str(self.names.get(label, label))

    def candidates(self, masked: torch.Tensor, indices: np.ndarray) -> list[tuple[str, float]]:
        """Candidate descriptions of one unit with ``log p(d | exemplars)``: the labels of the exemplars, with their share.

        Parameters
        ----------
        masked : torch.Tensor
            The masked exemplars (unused: only their labels count).
        indices : numpy.ndarray
            ``(k,)`` the exemplars' rows in the dataset.

        Returns
        -------
        list of (str, float)
            ``(text, log p(text | exemplars))`` pairs.
        """
        counts = Counter(self.labels[np.asarray(indices)].tolist())
        return [(self._text(lab), float(np.log(c / len(indices)))) for lab, c in counts.most_common()]

    def log_prior(self, texts: Sequence[str]) -> np.ndarray:
        """``log p(d)`` of each text: its label's share of the dataset (-inf for an unknown text).

        Parameters
        ----------
        texts : Sequence[str]
            Candidate descriptions.

        Returns
        -------
        numpy.ndarray
            ``(len(texts),)`` log prior probabilities.
        """
        return np.array([self._prior.get(t, -np.inf) for t in texts])


class CaptionerDescriber:
    """Any local image-to-text model: ``caption(masked_exemplars) -> [(text, log p(text | exemplars))]``.

    Source: Hernandez et al., "Natural Language Descriptions of Deep Visual Features", ICLR 2022 (arXiv
    2201.11114); code ``evandez/neuron-descriptions`` at commit 19c4d58. Differences: any local captioner stands
    in for their Show-Attend-Tell model; the default prior is a unigram model, not their LSTM.

    ``log_prior``: a function from texts to log p(d) (MILAN: an LSTM language model of the captions); by
    default a unigram model of the words of every candidate this describer has produced so far, with add-one
    smoothing (a stand-in; pass a real language model when you have one).

    Parameters
    ----------
    caption : Callable[[torch.Tensor], list of (str, float)]
        ``caption(masked_exemplars) -> [(text, log p(text | exemplars))]``.
    log_prior : Callable[[Sequence[str]], array_like], optional
        ``log_prior(texts) -> log p(text)`` (default the unigram stand-in above).
    """

    name = "captioner"

    def __init__(self, caption: Callable[[torch.Tensor], list[tuple[str, float]]],
                 log_prior: Callable[[Sequence[str]], Any] | None = None) -> None:
        self.caption, self._log_prior = caption, log_prior
        self._words: Counter = Counter()

    def candidates(self, masked: torch.Tensor, indices: np.ndarray) -> list[tuple[str, float]]:
        """Candidate descriptions of one unit with ``log p(d | exemplars)``: the captioner's output (its words feed the default prior).

        Parameters
        ----------
        masked : torch.Tensor
            The unit's exemplars ``(k, C, H, W)`` with everything outside their masks set to 0.
        indices : numpy.ndarray
            ``(k,)`` the exemplars' rows in the dataset.

        Returns
        -------
        list of (str, float)
            ``(text, log p(text | exemplars))`` pairs.
        """
        out = [(str(t), float(s)) for t, s in self.caption(masked)]
        for text, _ in out:
            self._words.update(text.lower().split())
        return out

    def log_prior(self, texts: Sequence[str]) -> np.ndarray:
        """``log p(d)`` of each text: the given prior, or the add-one unigram model of the captions so far.

        Parameters
        ----------
        texts : Sequence[str]
            Candidate descriptions.

        Returns
        -------
        numpy.ndarray
            ``(len(texts),)`` log prior probabilities.
        """
        if self._log_prior is not None:
            return np.asarray(self._log_prior(texts), dtype=float)
        total, vocab = sum(self._words.values()), len(self._words) + 1
        return np.array([sum(np.log((self._words[w] + 1) / (total + vocab)) for w in t.lower().split()) for t in texts])


def pmi_rerank(candidates: Sequence[tuple[str, float]], log_prior: np.ndarray, pmi_weight: float = 0.2
               ) -> pd.DataFrame:
    """Candidates sorted by ``log p(d|E) - pmi_weight * log p(d)`` (MILAN's decoding; 0.2 in their code).

    Source: Hernandez et al., "Natural Language Descriptions of Deep Visual Features", ICLR 2022 (arXiv
    2201.11114); code ``evandez/neuron-descriptions`` at commit 19c4d58 (``src/milan/decoders.py``).
    Differences: reranks a given candidate list (theirs: the beam of their captioner).

    Parameters
    ----------
    candidates : Sequence[tuple[str, float]]
        ``(description, log p(d | exemplars))`` pairs.
    log_prior : numpy.ndarray
        ``log p(d)`` of each candidate, in the same order.
    pmi_weight : float
        The weight of the prior (0: rank by ``log p(d|E)`` alone).
    """
    frame = pd.DataFrame(candidates, columns=["description", "log_p_given_exemplars"])
    frame["log_p"] = np.asarray(log_prior, dtype=float)
    frame["score"] = frame["log_p_given_exemplars"] - pmi_weight * frame["log_p"]
    return frame.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


@dataclass
class UnitDescriptions(Result):
    """One description per unit (the best candidate after the PMI rerank), with every candidate's scores.

    Parameters
    ----------
    descriptions : pandas.DataFrame
        One row per unit: ``unit``, ``description``, ``score``, ``log_p_given_exemplars``, ``n_candidates``.
    candidates : dict[int, pandas.DataFrame]
        ``{unit: every candidate, reranked}`` (:func:`pmi_rerank`).
    exemplars : UnitExemplars, optional
        The exemplars and masks the descriptions came from.
    """

    descriptions: pd.DataFrame
    candidates: dict[int, pd.DataFrame] = field(default_factory=dict, repr=False)
    exemplars: UnitExemplars | None = field(default=None, repr=False)

    def to_frame(self) -> pd.DataFrame:
        """One row per unit: ``description``, its ``score`` and ``log_p_given_exemplars``, ``n_candidates``."""
        return self.descriptions.copy()

    def summary(self) -> str:
        """The first units and their descriptions."""
        lines = [f"MILAN descriptions of {len(self.descriptions)} units (PMI-reranked)"]
        lines += [f"  unit {r.unit}: {r.description}" for r in self.descriptions.head(10).itertuples()]
        return "\n".join(lines)


def describe_units(model: Any, images: Any, site: str, describer: Any, units: Sequence[int] | None = None,
                   k: int = 15, quantile: float = 0.99, pmi_weight: float = 0.2, preprocess: Callable | None = None,
                   batch_size: int = 64) -> UnitDescriptions:
    """MILAN end to end: exemplars and masks per unit, candidates from ``describer``, PMI rerank.

    Source: Hernandez et al., "Natural Language Descriptions of Deep Visual Features", ICLR 2022 (arXiv
    2201.11114); code ``evandez/neuron-descriptions`` at commit 19c4d58. Differences: no trained MILAN captioner
    is shipped; the describer is pluggable.

    ``describer``: :class:`RetrievalDescriber`, :class:`CaptionerDescriber` or any object with
    ``candidates(masked_exemplars, exemplar_indices)`` and ``log_prior(texts)``.

    Parameters
    ----------
    model : torch.nn.Module
        The vision model.
    images : array_like
        ``(n, C, H, W)``; masks are drawn at ``H x W``.
    site : str
        Module path whose output ``(n, units, h, w)`` is described (or ``(n, units)``: masks cover everything).
    describer : Describer
        A :class:`RetrievalDescriber`, :class:`CaptionerDescriber` or any object with
        ``candidates(masked, indices)`` and ``log_prior(texts)``.
    units : Sequence[int], optional
        Units (channels) to describe (default all).
    k : int
        Exemplars per unit (at most ``n``).
    quantile : float
        In (0, 1): a mask is where the activation reaches this quantile of the unit over every input and
        location.
    pmi_weight : float
        The weight of the prior in the rerank (:func:`pmi_rerank`).
    preprocess : Callable, optional
        Applied to each batch of images before the model.
    batch_size : int
        Images per forward pass.
    """
    if not (hasattr(describer, "candidates") and hasattr(describer, "log_prior")):
        raise ConfigError(f"a describer needs candidates(masked, indices) and log_prior(texts); got {type(describer).__name__}")
    ex = unit_exemplars(model, images, site, units, k, quantile, preprocess, batch_size)
    rows, cands = [], {}
    images = torch.as_tensor(images)
    for u, unit in enumerate(ex.units):
        cand = describer.candidates(ex.masked(images, unit), ex.indices[u])
        if not cand:
            rows.append({"unit": unit, "description": "", "score": np.nan, "log_p_given_exemplars": np.nan,
                         "n_candidates": 0})
            continue
        ranked = pmi_rerank(cand, describer.log_prior([t for t, _ in cand]), pmi_weight)
        cands[unit] = ranked
        best = ranked.iloc[0]
        rows.append({"unit": unit, "description": best["description"], "score": float(best["score"]),
                     "log_p_given_exemplars": float(best["log_p_given_exemplars"]), "n_candidates": len(ranked)})
    return UnitDescriptions(pd.DataFrame(rows), cands, ex)
