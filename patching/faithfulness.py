"""Faithfulness of attribution methods: correlation of their estimates with activation patching.

The evaluation of RelP (Rezaei Jafari, Eberle, Khakzar, Nanda, "Faithful and Efficient Circuit Discovery
via Relevance Patching", arXiv 2508.21258; code ``FarnoushRJ/RelP``, ``demos/lrp_patching.ipynb``): per
component kind (residual stream, attention outputs, MLP outputs, ...), the Pearson correlation between
each method's estimated effects and the effects measured by activation patching (denoising), over every
(layer, position) cell. The paper reports Pearson r per kind on IOI (GPT-2 small MLP outputs: AtP 0.195,
RelP 0.992). Where it differs: Spearman's rho is reported beside Pearson's r; cells before the first
token where clean and corrupted differ are left out (every method gives exactly 0 there); several prompt
groups (e.g. IOI templates of different lengths) are pooled into one correlation.

>>> res = patching.faithfulness(model, clean, corrupted, metric, sites=["resid_pre", "attn_out", "mlp_out"])  # doctest: +SKIP
>>> res.to_frame()          # one row per (component, method): pearson_r, spearman_r, cells, passes
>>> res.plot()
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from interp.errors import ConfigError
from interp.results import Result, themed

__all__ = ["faithfulness", "Faithfulness", "FAITHFULNESS_METHODS"]

#: label -> (``patching.METHODS`` name, keyword arguments[, number of groups]): the methods compared by
#: default. ``"RelP (published)"`` is the rule set of the RelP authors' published usage (``rules="published"``).
FAITHFULNESS_METHODS: dict[str, tuple] = {
    "AtP": ("atp", {}),
    "RelP": ("relp", {}),
    "RelP (published)": ("relp", {"rules": "published"}),
}

#: how component kinds are named in the table
KIND_NAMES = {"resid_pre": "resid", "attn_out": "attn_out", "mlp_out": "mlp_out", "z": "heads", "heads": "heads",
              "mlp_pre": "mlp_pre (neurons)", "mlp_post": "mlp_post (neurons)"}


def _cells(res: Any, first: int) -> np.ndarray:
    """Flatten a [layer, pos] / [layer, head] / [layer, neuron] grid, dropping positions before ``first``."""
    values = res.effect
    if res.dims[1] == "pos":
        values = values[:, first:]
    return values.reshape(-1).double().cpu().numpy()


def _rank(x: np.ndarray) -> np.ndarray:
    return pd.Series(x).rank(method="average").to_numpy()


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


@dataclass
class Faithfulness(Result):
    """Per (component kind, method): Pearson r and Spearman rho with activation patching, and the cost.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per (component, method) with ``pearson_r``, ``spearman_r``, ``pairs``, ``cells``,
        ``forward_passes``, ``backward_passes``, ``seconds`` (one call scores every kind: its cost is charged
        to the first kind).
    values : dict
        ``{(component, method): (truth, estimate)}`` cell arrays (activation patching's effects and the
        method's estimates, in the same order).
    """

    table: pd.DataFrame
    values: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    def to_frame(self) -> pd.DataFrame:
        """The table (one row per component and method)."""
        return self.table.copy()

    def summary(self) -> str:
        """Pearson r (Spearman rho) of each method per component kind."""
        lines = ["Faithfulness: correlation with activation patching, Pearson r (Spearman rho)"]
        for comp, g in self.table[self.table.method != "activation patching"].groupby("component", sort=False):
            parts = [f"{r.method} {r.pearson_r:.3f} ({r.spearman_r:.3f})" for r in g.itertuples()]
            lines.append(f"  {comp}: " + ", ".join(parts))
        return "\n".join(lines)

    def plot(self, component: str | None = None, **kwargs: Any) -> Any:
        """Bars of Pearson r per component and method; with ``component``, the scatter of estimates vs truth.

        Parameters
        ----------
        component : str, optional
            A component kind of ``table`` to scatter (default: the bar chart of every kind).
        **kwargs
            ``title``.
        """
        import plotly.express as px
        import plotly.graph_objects as go

        if component is None:
            frame = self.table[self.table.method != "activation patching"]
            fig = px.bar(frame, x="component", y="pearson_r", color="method", barmode="group")
            fig.update_layout(yaxis_title="Pearson r with activation patching")
            return themed(fig, title=kwargs.get("title", "faithfulness per component kind"))
        fig = go.Figure()
        for (comp, method), (truth, est) in self.values.items():
            if comp == component and method != "activation patching":
                fig.add_scatter(x=truth, y=est, mode="markers", name=method)
        fig.update_layout(xaxis_title="activation patching effect", yaxis_title="estimated effect")
        return themed(fig, title=kwargs.get("title", f"estimates vs activation patching: {component}"))


def _groups(clean: Any, corrupted: Any, metric: Any) -> list[tuple[Any, Any, Callable, int, int]]:
    """(clean, corrupted, metric, first differing position, n pairs) per group."""
    if corrupted is None and metric is None:
        items = list(clean) if isinstance(clean, (list, tuple)) else [clean]
        out = []
        for g in items:
            if not all(hasattr(g, a) for a in ("clean", "corrupted", "metric")):
                raise ConfigError("without corrupted= and metric=, clean must be prompt-pair groups with .clean, "
                                  ".corrupted and .metric() (e.g. patching.datasets.ioi_pairs(...))")
            first = g.first_difference() if hasattr(g, "first_difference") else 0
            out.append((g.clean, g.corrupted, g.metric(), first, len(g.clean)))
        return out
    if corrupted is None or metric is None:
        raise ConfigError("give clean, corrupted and metric (or prompt-pair groups as clean, alone)")
    c = torch.as_tensor(clean) if not isinstance(clean, (str, list)) else clean
    differs = (c != corrupted).any(0).nonzero() if isinstance(c, torch.Tensor) and isinstance(corrupted, torch.Tensor) \
        and c.shape == corrupted.shape and c.ndim == 2 else None
    first = int(differs[0]) if differs is not None and len(differs) else 0
    return [(clean, corrupted, metric, first, len(clean))]


def faithfulness(model: Any, clean: Any, corrupted: Any = None, metric: Callable | None = None,
                 sites: str | Sequence[str] = ("resid_pre", "attn_out", "mlp_out"), methods: Any = None, *,
                 index: Mapping[str, Sequence[int]] | None = None) -> Faithfulness:
    """How well each attribution method tracks activation patching, per component kind.

    Source: Rezaei Jafari, Eberle, Khakzar & Nanda 2025, "RelP: Faithful and Efficient Circuit Discovery via
    Relevance Patching" (arXiv 2508.21258); code ``FarnoushRJ/RelP`` at commit aa0e228 (Pearson r with
    activation patching per component kind). Differences: Spearman rho is ours; cells before the first differing
    token (0 under every method) are left out.

    ``clean``, ``corrupted``, ``metric`` as for every method of :data:`patching.METHODS`; or ``clean`` alone
    as a list of prompt-pair groups (``patching.datasets.ioi_pairs``, ``induction_pairs``: objects with
    ``clean``, ``corrupted``, ``metric()`` and ``first_difference()``), pooled into one correlation.
    ``sites``: component kinds (site kinds or hook names), each correlated separately. ``methods``: a list of
    ``patching.METHODS`` names, or ``{label: (name, kwargs)}`` (a third element ``n`` limits that method to
    the first ``n`` groups, correlated with activation patching on the same groups); default
    :data:`FAITHFULNESS_METHODS` (AtP, RelP with our default rules, RelP with the authors' published rules).
    ``index`` picks neurons of neuron kinds (``{"neuron": [...]}``), the same for every method.

    Returns a :class:`Faithfulness` (Pearson r and Spearman rho per kind and method, a bar plot). The
    acceptance configuration of ``benchmarks/faithfulness.py`` is this call on its prompt groups.

    Parameters
    ----------
    model : torch.nn.Module
        A ``TransformerBridge`` or any ``nn.Module``.
    clean : Any
        Clean inputs, or (with ``corrupted`` and ``metric`` left out) a list of prompt-pair groups.
    corrupted : Any, optional
        Corrupted inputs of the same shape as ``clean``.
    metric : Callable, optional
        ``metric(logits) -> scalar``, a batch mean (see :mod:`patching.metrics`).
    sites : str or Sequence[str]
        Component kinds, each correlated separately (default ``resid_pre``, ``attn_out``, ``mlp_out``).
    methods : Sequence[str] or Mapping, optional
        Names in :data:`patching.METHODS` or ``{label: (name, kwargs[, n])}``; default
        :data:`FAITHFULNESS_METHODS`.
    index : Mapping[str, Sequence[int]], optional
        Indices of an axis (``{"neuron": [...]}``), the same for every method.
    """
    from .contract import METHODS  # the registry the attribution methods add themselves to

    kinds = [sites] if isinstance(sites, str) else list(sites)
    if methods is None:
        methods = FAITHFULNESS_METHODS
    if not isinstance(methods, Mapping):
        methods = {m: (m, {}) for m in methods}
    for label, spec in methods.items():
        if spec[0] not in METHODS or spec[0] == "activation":
            raise ConfigError(f"method {label!r}: {spec[0]!r} is not an estimate in patching.METHODS "
                              f"({sorted(k for k in METHODS if k != 'activation')})")
    groups = _groups(clean, corrupted, metric)
    pooled: dict[tuple[str, str], dict[int, np.ndarray]] = {}
    cost: dict[tuple[str, str], list[float]] = {}

    def add(label: str, res: Any, seconds: float, gi: int, first: int) -> None:
        for j, kind in enumerate(kinds):
            key = (kind, label)
            pooled.setdefault(key, {})[gi] = _cells(res[kind], first)
            c = cost.setdefault(key, [0, 0, 0.0])
            c[0] += res.n_forward if j == 0 else 0
            c[1] += res.n_backward if j == 0 else 0
            c[2] += seconds / len(kinds)

    for gi, (c_in, x_in, m, first, _) in enumerate(groups):
        common = dict(sites=kinds, index=index)
        t = time.perf_counter()
        add("activation patching", METHODS["activation"](model, c_in, x_in, m, **common), time.perf_counter() - t, gi,
            first)
        for label, spec in methods.items():
            name, kwargs = spec[0], dict(spec[1]) if len(spec) > 1 else {}
            if len(spec) > 2 and spec[2] is not None and gi >= int(spec[2]):
                continue
            t = time.perf_counter()
            add(label, METHODS[name](model, c_in, x_in, m, **common, **kwargs), time.perf_counter() - t, gi, first)
    rows, values = [], {}
    for (kind, label), parts in pooled.items():
        est = np.concatenate(list(parts.values()))
        truth = np.concatenate([pooled[(kind, "activation patching")][i] for i in parts])
        comp = KIND_NAMES.get(kind, kind)
        values[(comp, label)] = (truth, est)
        rows.append(dict(component=comp, method=label, pearson_r=_corr(truth, est), spearman_r=_corr(_rank(truth), _rank(est)),
                         pairs=sum(groups[i][4] for i in parts), cells=len(est), forward_passes=int(cost[(kind, label)][0]),
                         backward_passes=int(cost[(kind, label)][1]), seconds=cost[(kind, label)][2]))
    return Faithfulness(pd.DataFrame(rows), values)
