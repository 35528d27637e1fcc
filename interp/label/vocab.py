"""Vocabulary projection of neuron weights: what a neuron writes to, or reads from, the vocabulary.

* Output side ("what does this neuron promote"): ``W_U^T (g * w_out)``, the direct effect of one unit of
  activation on the logits (nostalgebraist 2020, "logit lens"; Geva et al. 2022, "Transformer
  Feed-Forward Layers Build Predictions by Promoting Concepts in the Vocabulary Space"), where ``g`` is
  the final norm's gain.
* Input side: Davies 2025 ("Decoding specialised feature neurons in LLMs with the final projection
  layer", arXiv 2501.02688) decodes each up-projection row ``u_i`` (a row of W_up, which reads the
  residual stream) through the LM head: ``p_i = softmax(W_U^T (g * u_i))``; the top token labels the
  neuron and a concentrated distribution marks a "specialised" neuron.

The moments of ``W_U^T w_out`` over the vocabulary are what Gurnee et al. 2024 ("Universal Neurons in
GPT2 Language Models") use to find prediction, suppression and entropy neurons
(:mod:`interp.label.phenomena`).

>>> proj = vocab_projection(model, layer=3, which="out", k=5)          # doctest: +SKIP
>>> proj.to_frame().head()                                           # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..errors import ConfigError, InputTypeError

__all__ = ["VocabProjection", "vocab_projection", "mlp_weights", "unembedding", "decode_tokens"]


def _n_layers(model: Any) -> int:
    return int(model.cfg.n_layers)


def mlp_weights(model: Any, layer: int) -> dict[str, torch.Tensor]:
    """``{"in": (d_mlp, d_model), "gate": ... or absent, "out": (d_mlp, d_model)}`` of one MLP layer.

    ``in`` is the (up-)projection that reads the residual stream (for gated MLPs, W_up; ``gate`` is W_gate).
    """
    if not hasattr(model, "blocks"):
        raise InputTypeError("vocabulary projection needs a transformer (a TransformerBridge with .blocks)")
    if not 0 <= layer < _n_layers(model):
        raise ConfigError(f"layer {layer} out of range: the model has {_n_layers(model)} layers")
    mlp = getattr(model.blocks[layer], "mlp", None)
    if mlp is None or getattr(mlp, "W_out", None) is None:
        raise InputTypeError(f"block {layer} has no MLP weights (attention-only model?)")
    out = {"in": mlp.W_in.detach().float().T.contiguous(), "out": mlp.W_out.detach().float().contiguous()}
    gate = getattr(mlp, "W_gate", None)
    if gate is not None:
        out["gate"] = gate.detach().float().T.contiguous()
    return out


def unembedding(model: Any, final_norm: bool = True) -> torch.Tensor:
    """``W_U`` of shape ``(d_model, d_vocab)``, scaled row-wise by the final norm's gain when asked."""
    W_U = model.W_U.detach().float()
    if final_norm:
        gain = getattr(getattr(model, "ln_final", None), "w", None)
        if gain is not None:
            W_U = W_U * gain.detach().float()[:, None]
    return W_U


def decode_tokens(tokenizer: Any, ids: Sequence[int] | np.ndarray) -> list[str]:
    """Token strings for ids (``"<id>"`` when there is no tokenizer, ``""`` for -1)."""
    out = []
    for i in np.asarray(ids).reshape(-1).tolist():
        if i < 0:
            out.append("")
        elif tokenizer is None:
            out.append(f"<{i}>")
        else:
            try:
                out.append(tokenizer.decode([int(i)]))
            except Exception:  # noqa: BLE001 - a tokenizer without decode for this id
                out.append(f"<{i}>")
    return out


@dataclass
class VocabProjection:
    """Top and bottom tokens of each unit's weight vector projected through the unembedding.

    Attributes: ``units`` (indices), ``top_ids``/``top_logits`` and ``bottom_ids``/``bottom_logits``
    ``(n_units, k)``, ``top_prob`` (softmax mass of the best token: Davies' specialisation), vocabulary
    moments ``mean``, ``std``, ``skew``, ``kurtosis`` (Gurnee et al. 2024), ``norm`` of the weight vector,
    and token strings ``top_tokens``/``bottom_tokens``.
    """

    layer: int
    which: str
    units: np.ndarray
    top_ids: np.ndarray
    top_logits: np.ndarray
    bottom_ids: np.ndarray
    bottom_logits: np.ndarray
    top_prob: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    skew: np.ndarray
    kurtosis: np.ndarray
    norm: np.ndarray
    top_tokens: list[list[str]]
    bottom_tokens: list[list[str]]

    def to_frame(self) -> pd.DataFrame:
        """One row per unit: top/bottom tokens, specialisation and vocabulary moments."""
        return pd.DataFrame({
            "layer": self.layer, "unit": self.units, "which": self.which,
            "top_tokens": [" | ".join(t) for t in self.top_tokens],
            "bottom_tokens": [" | ".join(t) for t in self.bottom_tokens],
            "top_prob": self.top_prob, "skew": self.skew, "kurtosis": self.kurtosis, "norm": self.norm,
        })

    def row(self, unit: int) -> int:
        """Row of ``unit`` in the arrays."""
        hits = np.flatnonzero(self.units == unit)
        if not len(hits):
            raise ConfigError(f"unit {unit} is not in this projection")
        return int(hits[0])

    def plot(self, unit: int | None = None):
        """Bar chart of one unit's top and bottom tokens (default: the first unit)."""
        import plotly.graph_objects as go

        r = 0 if unit is None else self.row(unit)
        labels = list(self.top_tokens[r])[::-1] + list(self.bottom_tokens[r])
        values = list(self.top_logits[r])[::-1] + list(self.bottom_logits[r])
        fig = go.Figure(go.Bar(x=values, y=[repr(t) for t in labels], orientation="h"))
        fig.update_layout(title=f"L{self.layer}.{self.units[r]} W_{self.which} through W_U", template="none", height=400)
        return fig


def vocab_projection(model: Any, layer: int, which: str = "out", units: Sequence[int] | None = None, k: int = 10,
                     tokenizer: Any = None, final_norm: bool = True, chunk: int = 256) -> VocabProjection:
    """Project each unit's weight vector of MLP ``layer`` through the unembedding.

    Parameters
    ----------
    model:
        A TransformerBridge with MLPs.
    layer:
        MLP layer index.
    which:
        ``"out"`` (W_out rows: what the unit writes), ``"in"`` (W_in / W_up rows: what it reads, Davies
        2025) or ``"gate"`` (W_gate rows of a gated MLP).
    units:
        Unit indices (default: all).
    k:
        Number of top and bottom tokens kept per unit.
    tokenizer:
        For token strings (default: ``model.tokenizer``).
    final_norm:
        Multiply by the final norm's gain first (the logit lens convention).
    """
    weights = mlp_weights(model, layer)
    if which not in weights:
        raise ConfigError(f"which must be one of {sorted(weights)} for this model, got {which!r}")
    W = weights[which]
    d_mlp = W.shape[0]
    units_arr = np.arange(d_mlp) if units is None else np.asarray(list(units), dtype=np.int64)
    if len(units_arr) and (units_arr.min() < 0 or units_arr.max() >= d_mlp):
        raise ConfigError(f"unit indices must be in [0, {d_mlp}), got {units_arr.min()}..{units_arr.max()}")
    W_U = unembedding(model, final_norm)
    tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    k = min(k, W_U.shape[1])
    parts: dict[str, list[np.ndarray]] = {n: [] for n in
                                          ["ti", "tl", "bi", "bl", "tp", "mean", "std", "skew", "kurt", "norm"]}
    with torch.no_grad():
        for start in range(0, len(units_arr), chunk):
            idx = torch.as_tensor(units_arr[start:start + chunk])
            w = W[idx]
            logits = w @ W_U  # (c, vocab)
            top = logits.topk(k, dim=1)
            bottom = (-logits).topk(k, dim=1)
            mu = logits.mean(1, keepdim=True)
            centred = logits - mu
            sd = centred.pow(2).mean(1).sqrt()
            z = centred / sd.clamp_min(1e-12)[:, None]
            parts["ti"].append(top.indices.numpy())
            parts["tl"].append(top.values.numpy())
            parts["bi"].append(bottom.indices.numpy())
            parts["bl"].append(-bottom.values.numpy())
            parts["tp"].append(torch.softmax(logits, 1).max(1).values.numpy())
            parts["mean"].append(mu[:, 0].numpy())
            parts["std"].append(sd.numpy())
            parts["skew"].append(z.pow(3).mean(1).numpy())
            parts["kurt"].append(z.pow(4).mean(1).numpy())
            parts["norm"].append(w.norm(dim=1).numpy())
    cat = {n: (np.concatenate(v) if v else np.zeros((0, k) if n in {"ti", "tl", "bi", "bl"} else 0)) for n, v in parts.items()}
    top_tokens = [decode_tokens(tokenizer, row) for row in cat["ti"]]
    bottom_tokens = [decode_tokens(tokenizer, row) for row in cat["bi"]]
    return VocabProjection(layer, which, units_arr, cat["ti"], cat["tl"], cat["bi"], cat["bl"], cat["tp"], cat["mean"],
                           cat["std"], cat["skew"], cat["kurt"], cat["norm"], top_tokens, bottom_tokens)
