"""Decompositions of recordings: which components track behaviour, and which named units load on them.

Calcium traces and behaviour are strongly autocorrelated, so shuffling time points breaks the null
(it makes chance correlations look significant). The null here circularly shifts the behaviour
against the component time courses (e.g. Harris 2020, "Nonsense correlations in neuroscience"),
which keeps both autocorrelations intact; with ``groups`` (trials, recordings) the shifts stay
within each group, or ``null="group"`` swaps whole trials (:mod:`interp.stats`).

Example
-------
>>> worm = interp.data.load("celegans", worm=0, trace="F_F20")               # doctest: +SKIP
>>> nmf = NMF(n_components=8).fit(worm)                                      # doctest: +SKIP
>>> res = behaviour_components(nmf, worm, variables=("reversal", "velocity"))  # doctest: +SKIP
>>> res.best("reversal")                                                     # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..errors import ConfigError, DimensionError, MismatchError
from ..results import Result, themed
from ..stats import null_indices, p_value, resolve_groups
from ..tensor import Activations

__all__ = ["circular_shift_correlation", "behaviour_correlation", "top_loading", "behaviour_components",
           "BehaviourComponents"]


def _zscore_columns(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(0)
    sd = x.std(0)
    sd[sd == 0] = np.inf
    return x / sd


def circular_shift_correlation(codes: np.ndarray, signal: np.ndarray, n_permutations: int = 1000,
                               min_shift: int | None = None, seed: int | None = 0, groups: Any = None,
                               null: str = "circular") -> dict[str, np.ndarray]:
    """Pearson r of each column of ``codes`` with ``signal`` and circular-shift p-values.

    Returns ``r`` (per column), ``p`` (per column: fraction of shifts with ``|r_null| >= |r|``) and
    ``p_max`` (per column, against the null of the largest ``|r|`` over all columns, which corrects for
    picking the best component). Shifts are drawn uniformly from ``[min_shift, T - min_shift]``
    within each group (default ``min_shift``: a tenth of the shortest group); ``null="group"`` swaps
    whole groups instead. p-values use the ``(1 + count) / (1 + n_permutations)`` estimator.

    Parameters
    ----------
    codes : numpy.ndarray
        Component time courses ``(time, component)``.
    signal : array-like
        One value per time point.
    n_permutations : int, optional
        Number of null draws (default 1000).
    min_shift : int, optional
        Smallest circular shift in samples; None: a tenth of the shortest group.
    seed : int or None, optional
        Seed of the null draws (default 0).
    groups : array-like, optional
        One label per time point (trials, runs); shifts stay within groups. None: one group.
    null : str, optional
        ``"circular"`` (default), ``"group"`` (swap whole groups) or ``"block"``.
    """
    codes = np.asarray(codes, dtype=np.float64)
    signal = np.asarray(signal, dtype=np.float64).reshape(-1)
    if codes.ndim != 2 or codes.shape[0] != signal.shape[0]:
        raise MismatchError(f"codes {codes.shape} and signal ({signal.shape[0]},) must have the same number of time points")
    T = signal.shape[0]
    if null not in ("circular", "group", "block"):
        raise ConfigError(f"null must be 'circular', 'group' or 'block' for time courses, got {null!r}")
    z = _zscore_columns(codes)
    s = _zscore_columns(signal[:, None])[:, 0]
    r = z.T @ s / T
    idx = null_indices(T, null, groups=resolve_groups(groups, T), n_permutations=n_permutations, seed=seed,
                       min_shift=min_shift)
    null_r = s[idx] @ z / T  # (n_permutations, n_components)
    p = p_value(np.abs(r), np.abs(null_r))
    null_max = np.abs(null_r).max(1)
    p_max = p_value(np.abs(r), np.broadcast_to(null_max[:, None], null_r.shape))
    return {"r": r, "p": p, "p_max": p_max, "null_max_95": np.quantile(null_max, 0.95)}


def _codes_matrix(codes: Any) -> np.ndarray:
    if isinstance(codes, Activations):
        return codes.numpy().reshape(codes.shape[0], -1)
    if isinstance(codes, torch.Tensor):
        return codes.detach().cpu().double().numpy()
    return np.asarray(codes, dtype=np.float64)


def behaviour_correlation(codes: Any, variables: Sequence[str] | Mapping[str, Any] = ("reversal", "velocity"),
                          n_permutations: int = 1000, min_shift: int | None = None, seed: int | None = 0,
                          groups: Any = None, null: str = "circular") -> pd.DataFrame:
    """Correlation of each component time course with behavioural signals, with circular-shift p-values.

    ``codes``: ``(time, component)`` Activations (e.g. from ``estimator.transform(recording)``, which
    keeps the recording's sample coordinates) or an array. ``variables``: names of sample
    coordinates of ``codes``, or a ``{name: array}`` mapping. ``groups``: a sample-coordinate name
    (e.g. ``"trial"``) or one label per time point; shifts stay within groups (or whole groups swap
    with ``null="group"``). One row per (variable, component).

    Parameters
    ----------
    codes : Activations, torch.Tensor or array-like
        Component time courses ``(time, component)``.
    variables : sequence of str or mapping of str to array-like, optional
        Sample-coordinate names of ``codes`` (default ``("reversal", "velocity")``), or ``{name: values}``
        (required when ``codes`` is not an Activations).
    n_permutations, min_shift, seed, null : optional
        As in :func:`circular_shift_correlation`.
    groups : str or array-like, optional
        A sample-coordinate name of ``codes`` or one label per time point.
    """
    matrix = _codes_matrix(codes)
    groups = resolve_groups(groups, matrix.shape[0], codes if isinstance(codes, Activations) else None)
    if isinstance(variables, Mapping):
        signals = {k: np.asarray(v, dtype=np.float64) for k, v in variables.items()}
    else:
        if not isinstance(codes, Activations):
            raise ConfigError("pass variables as {name: array} when codes are not an Activations with sample coords")
        signals = {name: codes.coord(name, dim="sample").astype(np.float64) for name in variables}
    rows = []
    for name, signal in signals.items():
        if signal.shape[0] != matrix.shape[0]:
            raise MismatchError(f"variable {name!r} has {signal.shape[0]} time points, codes have {matrix.shape[0]}")
        res = circular_shift_correlation(matrix, signal, n_permutations=n_permutations, min_shift=min_shift, seed=seed,
                                         groups=groups, null=null)
        for j in range(matrix.shape[1]):
            rows.append({"variable": name, "component": j, "r": res["r"][j], "p": res["p"][j],
                         "p_max": res["p_max"][j]})
    return pd.DataFrame(rows)


def top_loading(estimator: Any, names: Sequence[str] | None = None, n: int = 10, keep: Sequence[bool] | None = None,
                sign: str = "positive") -> pd.DataFrame:
    """The ``n`` units with the largest weights in each component of a fitted estimator.

    ``names`` default to the unit names seen in ``fit``; ``keep`` masks units (e.g. only identified
    neurons); ``sign`` is ``"positive"`` (largest weights), ``"negative"`` or ``"abs"``.

    Parameters
    ----------
    estimator : object
        A fitted estimator with ``components_`` ``(n_components, n_units)``.
    names : sequence of str, optional
        One name per unit; None: ``feature_names_in_`` of the fit, else the indices.
    n : int, optional
        Units listed per component (default 10).
    keep : sequence of bool, optional
        Mask of the units that may be listed; None: all.
    sign : str, optional
        ``"positive"`` (default: largest weights), ``"negative"`` or ``"abs"``.
    """
    W = estimator.components_.detach().cpu().double().numpy()
    names = list(names) if names is not None else getattr(estimator, "feature_names_in_", None)
    if names is None:
        names = [str(i) for i in range(W.shape[1])]
    if len(names) != W.shape[1]:
        raise DimensionError(f"{len(names)} names for {W.shape[1]} units")
    mask = np.ones(W.shape[1], bool) if keep is None else np.asarray(keep, bool)
    if sign not in ("positive", "negative", "abs"):
        raise ConfigError(f"sign must be 'positive', 'negative' or 'abs', got {sign!r}")
    score = {"positive": W, "negative": -W, "abs": np.abs(W)}[sign]
    rows = []
    for j in range(W.shape[0]):
        order = [i for i in np.argsort(-score[j], kind="stable") if mask[i]][:n]
        rows += [{"component": j, "rank": r, "unit": int(i), "name": names[i], "weight": W[j, i]} for r, i in enumerate(order)]
    return pd.DataFrame(rows)


@dataclass
class BehaviourComponents(Result):
    """Behaviour correlations of a recording's components and the named units that load on them.

    ``correlations``: one row per (component, variable) with ``r``, ``p`` (null of ``n_permutations``
    circular shifts or grouped permutations) and ``p_max`` (max-statistic corrected); ``loadings``: the
    top-loading units of each component; ``codes``: the components over time.

    Parameters
    ----------
    correlations : pandas.DataFrame
        One row per (variable, component): ``r``, ``p``, ``p_max``.
    loadings : pandas.DataFrame
        The top-loading units of each component (:func:`top_loading`).
    codes : Activations
        The component time courses.

    >>> bc = behaviour_components(NMF(8).fit(worm), worm)   # doctest: +SKIP
    >>> print(bc.summary()); bc.best("reversal")            # doctest: +SKIP
    """

    correlations: pd.DataFrame
    loadings: pd.DataFrame
    codes: Activations

    def best(self, variable: str, sign: str = "positive") -> dict[str, Any]:
        """The component most correlated with ``variable`` (``sign``: 'positive', 'negative' or 'abs').

        Parameters
        ----------
        variable : str
            A variable of :attr:`correlations`.
        sign : str, optional
            ``"positive"`` (default: largest r), ``"negative"`` (most negative r) or ``"abs"``.
        """
        rows = self.correlations[self.correlations["variable"] == variable]
        if rows.empty:
            raise ConfigError(f"no variable {variable!r}; have {sorted(set(self.correlations['variable']))}")
        key = {"positive": rows["r"], "negative": -rows["r"], "abs": rows["r"].abs()}[sign]
        row = rows.loc[key.idxmax()]
        j = int(row["component"])
        units = self.loadings[self.loadings["component"] == j]["name"].tolist()
        return {"variable": variable, "component": j, "r": float(row["r"]), "p": float(row["p"]),
                "p_max": float(row["p_max"]), "top_units": units}

    def to_frame(self) -> pd.DataFrame:
        """Correlations with the top-loading unit names of each component joined on."""
        names = self.loadings.groupby("component")["name"].apply(lambda s: ", ".join(s)).rename("top_units")
        return self.correlations.join(names, on="component")

    def summary(self) -> str:
        """For each variable, the most correlated component, its p-values and its top units."""
        variables = list(dict.fromkeys(self.correlations["variable"]))
        lines = [f"Behaviour correlations of {self.correlations['component'].nunique()} components with "
                 f"{len(variables)} variable(s)"]
        for v in variables:
            b = self.best(v, sign="abs")
            units = ", ".join(b["top_units"][:5])
            lines.append(f"  {v}: component {b['component']} r {b['r']:+.3f} (p {b['p']:.3g}, corrected {b['p_max']:.3g})"
                         + (f"; top units {units}" if units else ""))
        return "\n".join(lines)

    def plot(self, **kwargs: Any) -> Any:
        """Heatmap of r (variables x components)."""
        import plotly.express as px

        table = self.correlations.pivot(index="variable", columns="component", values="r")
        fig = px.imshow(table, color_continuous_scale="RdBu_r", zmin=-1, zmax=1, aspect="auto")
        return themed(fig, title=kwargs.get("title", "component-behaviour correlation r"))


def behaviour_components(estimator: Any, recording: Activations, variables: Sequence[str] = ("reversal", "velocity"),
                         n_top: int = 10, only_identified: bool = True, n_permutations: int = 1000,
                         min_shift: int | None = None, seed: int | None = 0, groups: Any = None,
                         null: str = "circular") -> BehaviourComponents:
    """Correlate a fitted estimator's components with behaviour and list their top-loading named units.

    ``only_identified`` keeps units whose ``identified`` coordinate is true (NeuroPAL-labelled
    neurons in ``celegans``); names come from the ``canonical`` (else ``name``) unit coordinate.

    Parameters
    ----------
    estimator : object
        A fitted decomposition with ``transform`` and ``components_``.
    recording : Activations
        The ``(sample, unit)`` recording it was fitted on, with the behaviour as sample coordinates.
    variables : sequence of str, optional
        Sample coordinates to correlate with (default ``("reversal", "velocity")``).
    n_top : int, optional
        Top-loading units listed per component (default 10).
    only_identified : bool, optional
        List only units whose ``identified`` coordinate is true, when there is one (default True).
    n_permutations, min_shift, seed, null : optional
        As in :func:`circular_shift_correlation`.
    groups : str or array-like, optional
        A sample-coordinate name of ``recording`` or one label per sample.
    """
    codes = estimator.transform(recording)
    groups = resolve_groups(groups, recording.shape[0], recording)
    correlations = behaviour_correlation(codes, variables, n_permutations=n_permutations, min_shift=min_shift, seed=seed,
                                         groups=groups, null=null)
    units = recording.coords["unit"]
    names = units["canonical"].where(units["canonical"].astype(str) != "", units.get("name")) \
        if "canonical" in units.columns else units.get("name")
    names = [str(v) for v in names] if names is not None else None
    keep = units["identified"].to_numpy(bool) if only_identified and "identified" in units.columns else None
    loadings = top_loading(estimator, names=names, n=n_top, keep=keep)
    return BehaviourComponents(correlations, loadings, codes)
