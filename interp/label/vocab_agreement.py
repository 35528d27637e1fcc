"""Do two models' neurons decode to the same token? (Davies, arXiv 2501.02688)

Davies decodes every up-projection neuron of Llama-3.1-8B and of Llama-3.1-8B-Instruct through the LM
head and reports that over 75% (75.4%) of the neurons keep the same top token after instruction tuning.
:func:`top_token_agreement` computes that rate for any two models with the same MLP shape and
vocabulary, per layer, through :func:`interp.label.vocab_projection` (by default as the paper decodes:
the LM head alone, ``final_norm=False`` for ``which="in"``). Where it differs: the paper published no code;
ties between top tokens are broken by the lowest token id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, DimensionError
from ..results import Result, themed
from .vocab import vocab_projection

__all__ = ["TokenAgreement", "top_token_agreement"]


@dataclass
class TokenAgreement(Result):
    """Per layer, the fraction of neurons whose top-1 decoded token is the same in two models.

    Parameters
    ----------
    units : pandas.DataFrame
        One row per (layer, unit) with ``token_a``, ``token_b`` (ids), ``same``, and the token strings
        ``text_a``, ``text_b``.
    which : str
        The weight rows compared (``"in"``, ``"out"``, ``"gate"``).
    """

    units: pd.DataFrame
    which: str

    @property
    def rate(self) -> float:
        """Agreement over all neurons of all layers compared."""
        return float(self.units["same"].mean())

    def to_frame(self) -> pd.DataFrame:
        """One row per layer: ``n_units``, ``agreement`` (fraction with the same top token)."""
        return (self.units.groupby("layer").agg(n_units=("unit", "count"), agreement=("same", "mean"))
                .reset_index())

    def summary(self) -> str:
        """The overall agreement rate and its range over layers."""
        per = self.to_frame()
        return (f"Top-token agreement ({self.which} vectors): {self.rate:.1%} of {len(self.units)} neurons "
                f"(layers {per.agreement.min():.1%} to {per.agreement.max():.1%}; Davies: 75.4% for Llama-3.1-8B "
                "vs its Instruct model)")

    def plot(self, **kwargs: Any) -> Any:
        """Agreement rate per layer."""
        import plotly.express as px

        fig = px.line(self.to_frame(), x="layer", y="agreement", markers=True)
        fig.update_yaxes(range=[0, 1])
        return themed(fig, title=kwargs.get("title", f"same top token ({self.which} vectors) per layer"))


def top_token_agreement(model_a: Any, model_b: Any, layer: int | Sequence[int] | None = None, which: str = "in",
                        final_norm: bool | None = None, tokenizer: Any = None) -> TokenAgreement:
    """The fraction of neurons whose top decoded token agrees between ``model_a`` and ``model_b``.

    Source: Davies 2025, "Decoding specialised feature neurons in LLMs with the final projection layer" (arXiv
    2501.02688, v1 and v2); no code published. Differences: ties between top tokens go to the lowest token id;
    any two models of equal shape, not only Llama-3.1-8B vs Instruct.

    ``layer``: one layer, several, or None for every layer. ``which``/``final_norm`` as for
    :func:`~interp.label.vocab_projection` (default: up-projection rows through the LM head alone, as
    Davies). Both models must have the same number of layers, MLP width and vocabulary.

    Parameters
    ----------
    model_a, model_b : TransformerBridge
        The two models (a base model and its instruct version, say).
    layer : int or Sequence[int], optional
        One layer, several, or None for every layer.
    which : {"in", "out", "gate"}
        The MLP weight rows decoded (default the up-projection rows, as Davies).
    final_norm : bool, optional
        Read out as the model does (True: final norm, biases, soft cap) or through the LM head alone (False);
        default False for ``"in"`` (as Davies), True otherwise.
    tokenizer : Any, optional
        For the token strings (default ``model_a.tokenizer``).
    """
    for attr in ("n_layers", "d_vocab"):
        a, b = getattr(model_a.cfg, attr, None), getattr(model_b.cfg, attr, None)
        if a != b:
            raise DimensionError(f"the two models differ in {attr} ({a} vs {b}); top tokens are only comparable "
                                 "between models with the same layers and vocabulary (e.g. a base model and its "
                                 "instruct version)")
    layers = list(range(int(model_a.cfg.n_layers))) if layer is None else \
        [int(layer)] if isinstance(layer, (int, np.integer)) else [int(x) for x in layer]
    if not layers:
        raise ConfigError("layer must name at least one layer")
    tokenizer = tokenizer if tokenizer is not None else getattr(model_a, "tokenizer", None)
    frames = []
    for li in layers:
        pa = vocab_projection(model_a, li, which, k=1, tokenizer=tokenizer, final_norm=final_norm)
        pb = vocab_projection(model_b, li, which, k=1, tokenizer=tokenizer, final_norm=final_norm)
        if len(pa.units) != len(pb.units):
            raise DimensionError(f"layer {li}: {len(pa.units)} vs {len(pb.units)} {which} rows; the MLPs differ in width")
        frames.append(pd.DataFrame({"layer": li, "unit": pa.units, "token_a": pa.top_ids[:, 0], "token_b": pb.top_ids[:, 0],
                                    "same": pa.top_ids[:, 0] == pb.top_ids[:, 0],
                                    "text_a": [t[0] for t in pa.top_tokens], "text_b": [t[0] for t in pb.top_tokens]}))
    return TokenAgreement(pd.concat(frames, ignore_index=True), which)
