"""Feature dashboards of an SAE on a model, exported in Neuronpedia's upload format.

For each feature: its top-activating contexts (every token's activation in the context and the position
that qualified it), the density (fraction of tokens where it fires) and a histogram of its nonzero
activations, and its logit effects (what its decoder direction writes to the vocabulary: the top and
bottom tokens and a histogram of all logits). :meth:`FeatureDashboards.to_neuronpedia` writes the batch
JSON that SAEDashboard's ``NeuronpediaRunner`` writes (``model_id``, ``layer``, ``sae_set``, ``features``
with ``pos_str``/``pos_values``, ``neg_str``/``neg_values``, ``frac_nonzero``,
``freq_hist_data_bar_values/heights``, ``logits_hist_data_bar_values/heights``, ``activations`` with
``tokens``, ``values``, ``bin_min``/``bin_max``/``bin_contains`` and ``qualifying_token_index``), so a
dashboard made here can be uploaded to, or compared with, Neuronpedia.

Logit effects follow SAEDashboard: the decoder row through the unembedding without the final norm
(``W_dec[f] @ W_U``), so they are defined for SAEs on residual-stream sites (width ``d_model``).

>>> dash = feature_dashboards(model, sae, tokens, "blocks.3.hook_resid_post", features=range(8))  # doctest: +SKIP
>>> dash.to_neuronpedia("batch-0.json", model_id="smollm2-135m", layer=3, sae_set="res-topk")   # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import engine
from ..errors import ConfigError, DimensionError
from ..results import Result, themed
from ..tensor import atomic_write
from .vocab import logit_lens

__all__ = ["feature_dashboards", "FeatureDashboards"]


@dataclass
class FeatureDashboards(Result):
    """Dashboards of some features of an SAE (see the module docstring); one dict per feature in ``features``.

    Parameters
    ----------
    site : str
        The site the SAE reads.
    features : list of dict
        One SAEDashboard-style dict per feature (``feature_index``, ``frac_nonzero``, ``activations``,
        ``pos_str``, ``neg_str``, histogram data, ...).
    n_prompts : int
        Number of prompts (rows of ``tokens``).
    n_tokens_in_prompt : int
        Tokens per prompt.
    dataset : str, optional
        Name of the corpus, for the Neuronpedia export.
    notes : list of str, optional
        Caveats of the run.
    """

    site: str
    features: list[dict[str, Any]]
    n_prompts: int
    n_tokens_in_prompt: int
    dataset: str = ""
    notes: list[str] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        """One row per feature: index, density, top activation, top and bottom logit tokens."""
        return pd.DataFrame([{"feature": f["feature_index"], "frac_nonzero": f["frac_nonzero"],
                              "max_activation": max((a["bin_max"] for a in f["activations"]), default=0.0),
                              "top_logit_tokens": " | ".join(f["pos_str"][:5]),
                              "bottom_logit_tokens": " | ".join(f["neg_str"][:5])} for f in self.features])

    def summary(self) -> str:
        """How many features, on which site and corpus, and the densest one."""
        frame = self.to_frame()
        lines = [f"FeatureDashboards: {len(frame)} features of the SAE at {self.site}, over {self.n_prompts} "
                 f"prompts x {self.n_tokens_in_prompt} tokens"]
        if len(frame):
            dense = frame.sort_values("frac_nonzero", ascending=False).iloc[0]
            lines.append(f"  densest: feature {int(dense['feature'])} fires on {dense['frac_nonzero']:.2%} of "
                         f"tokens; top logits {dense['top_logit_tokens']}")
        return "\n".join(lines)

    def plot(self, feature: int | None = None, **kwargs: Any) -> Any:
        """Activation histogram and logit histogram of one feature (default: the first).

        Parameters
        ----------
        feature : int, optional
            The feature index (one of those in ``features``); None: the first.
        **kwargs
            ``title`` overrides the figure title.
        """
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        known = [x["feature_index"] for x in self.features]
        if feature is not None and feature not in known:
            raise ConfigError(f"feature {feature!r} has no dashboard here; the dashboards hold features "
                              f"{known[:10]}{' ...' if len(known) > 10 else ''}")
        f = self.features[0] if feature is None else self.features[known.index(feature)]
        fig = make_subplots(rows=1, cols=2, subplot_titles=["activations (nonzero)", "logit effects"])
        fig.add_trace(go.Bar(x=f["freq_hist_data_bar_values"], y=f["freq_hist_data_bar_heights"],
                             showlegend=False), row=1, col=1)
        fig.add_trace(go.Bar(x=f["logits_hist_data_bar_values"], y=f["logits_hist_data_bar_heights"],
                             showlegend=False), row=1, col=2)
        return themed(fig, title=kwargs.get("title", f"feature {f['feature_index']} at {self.site}"))

    def to_neuronpedia(self, path: str | os.PathLike, *, model_id: str, layer: int, sae_set: str,
                       sae_id_suffix: str | None = None) -> Path:
        """Write the features as one Neuronpedia upload batch (SAEDashboard's ``batch-*.json`` layout).

        Parameters
        ----------
        path : str or PathLike
            The JSON file, written atomically.
        model_id, layer, sae_set, sae_id_suffix
            Where the batch goes on Neuronpedia: model id, layer, the SAE set's name and an optional suffix.

        Returns
        -------
        pathlib.Path
            The file.
        """
        batch = {"model_id": model_id, "layer": int(layer), "sae_set": sae_set, "sae_id_suffix": sae_id_suffix,
                 "features": [{**f, "n_prompts_total": self.n_prompts, "n_tokens_in_prompt": self.n_tokens_in_prompt,
                               "dataset": self.dataset} for f in self.features]}
        path = Path(path)
        atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(batch)))
        return path


def _round(values: Any) -> list[float]:
    return [round(float(v), 5) for v in np.asarray(values, dtype=float).reshape(-1)]


def _histogram(values: np.ndarray, n_bins: int) -> tuple[list[float], list[float]]:
    """(bin centres, counts) of ``values``; empty lists when there are none."""
    if values.size == 0:
        return [], []
    counts, edges = np.histogram(values, bins=n_bins)
    return _round((edges[:-1] + edges[1:]) / 2), _round(counts)


def _strings(model: Any, ids: Sequence[int]) -> list[str]:
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        return [str(int(i)) for i in ids]
    return [tokenizer.decode([int(i)]) for i in ids]


def feature_dashboards(model: Any, sae: Any, tokens: torch.Tensor, site: str, *, features: Sequence[int] | None = None,
                       n_top: int = 20, n_logits: int = 10, n_bins: int = 40, batch_size: int = 32,
                       logits: bool = True, dataset: str = "", progress: bool = False) -> FeatureDashboards:
    """Dashboards of SAE features on a token corpus: top contexts, density, activation and logit histograms.

    Parameters
    ----------
    model : TransformerBridge
        The model the SAE reads (its tokenizer turns ids into token strings).
    sae : SparseAutoencoder
        A fitted SAE (``transform`` gives its codes) on activations of ``site``.
    tokens : torch.Tensor
        ``(n_prompts, n_tokens)`` token ids: the corpus (every position is a sample, as the SAE saw them).
    site : str
        The hook name the SAE reads, e.g. ``"blocks.3.hook_resid_post"``.
    features : Sequence[int], optional
        Which features (default: all).
    n_top : int
        Top-activating contexts kept per feature (one per prompt, at the prompt's maximum).
    n_logits : int
        Top and bottom logit tokens kept per feature.
    n_bins : int
        Bins of the activation and logit histograms.
    batch_size : int
        Prompts per forward pass.
    logits : bool
        Compute logit effects (the SAE must read a residual-stream site of width ``d_model``).
    dataset : str
        Name of the corpus, stored in the export.
    progress : bool
        Show a progress bar.

    Returns
    -------
    FeatureDashboards
        One dashboard per feature, exportable with :meth:`FeatureDashboards.to_neuronpedia`.
    """
    from .._progress import tqdm

    tokens = torch.as_tensor(tokens)
    if tokens.ndim != 2 or tokens.shape[0] == 0 or tokens.shape[1] == 0:
        raise DimensionError(f"tokens must be a non-empty (n_prompts, n_tokens) tensor; got {tuple(tokens.shape)}")
    m = int(sae.components_.shape[0])
    feats = np.arange(m) if features is None else np.asarray(list(features), dtype=int)
    if feats.size == 0 or feats.min() < 0 or feats.max() >= m:
        raise ConfigError(f"features must be indices in [0, {m}); got {features!r}")
    codes = []
    for start in tqdm(range(0, tokens.shape[0], batch_size), disable=not progress, desc="dashboards"):
        batch = tokens[start:start + batch_size]
        act = engine.record(model, batch, [site], stop=True).acts[site]
        if act.ndim != 3:
            raise DimensionError(f"{site} gives activations of shape {tuple(act.shape)}; a (batch, pos, d) site "
                                 "is needed (per-head sites: flatten the heads first)")
        flat = torch.as_tensor(sae.transform(act.reshape(-1, act.shape[-1]).float()))
        codes.append(flat.reshape(act.shape[0], act.shape[1], -1)[..., torch.as_tensor(feats)])
    acts = torch.cat(codes).double().numpy()  # (prompt, pos, feature)
    resid = None
    if logits:
        # the decoder rows in activation units (the SAE's input scale folded in), as SAELens stores them
        directions = (sae.components_.detach().float() / float(sae.input_scale_))[torch.as_tensor(feats)]
        if directions.shape[1] != int(model.cfg.d_model):
            raise ConfigError(f"logit effects need an SAE on a residual-stream site (width d_model="
                              f"{model.cfg.d_model}); this one is {directions.shape[1]} wide: pass logits=False")
        bias = logit_lens(model, torch.zeros(1, directions.shape[1]), final_norm=False)
        resid = (logit_lens(model, directions, final_norm=False) - bias).double().numpy()  # W_dec[f] @ W_U
    out = []
    for j, f in enumerate(feats.tolist()):
        a = acts[..., j]
        peak = a.max(1)
        order = [i for i in np.argsort(-peak, kind="stable")[:n_top] if peak[i] > 0]
        contexts = [{"bin_min": -1, "bin_max": round(float(peak[i]), 5), "bin_contains": -1,
                     "tokens": _strings(model, tokens[i].tolist()), "values": _round(a[i]),
                     "qualifying_token_index": int(a[i].argmax())} for i in order]
        nonzero = a[a > 0]
        freq_x, freq_y = _histogram(nonzero, n_bins)
        entry = {"feature_index": f, "frac_nonzero": round(float((a > 0).mean()), 6),
                 "freq_hist_data_bar_values": freq_x, "freq_hist_data_bar_heights": freq_y, "activations": contexts,
                 "pos_str": [], "pos_values": [], "neg_str": [], "neg_values": [],
                 "logits_hist_data_bar_values": [], "logits_hist_data_bar_heights": []}
        if resid is not None:
            row = resid[j]
            top, bottom = np.argsort(-row)[:n_logits], np.argsort(row)[:n_logits]
            entry.update(pos_str=_strings(model, top), pos_values=_round(row[top]),
                         neg_str=_strings(model, bottom), neg_values=_round(row[bottom]))
            entry["logits_hist_data_bar_values"], entry["logits_hist_data_bar_heights"] = _histogram(row, n_bins)
        out.append(entry)
    return FeatureDashboards(site, out, int(tokens.shape[0]), int(tokens.shape[1]), dataset)
