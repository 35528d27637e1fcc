"""Enrichment of a labeled set of names for a class of neurons (hypergeometric test).

>>> enrichment_test(["AVAL", "AVAR"], ["AVAL", "AVAR", "RIML", "ASHL"], ["AVA"]).overlap
2
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from scipy import stats as sps

from ..errors import InputTypeError, MismatchError
from ..results import Result, themed

__all__ = ["Enrichment", "enrichment_test", "neuron_class"]


def neuron_class(name: str) -> str:
    """C. elegans neuron class of a NeuroPAL name: drop a trailing L/R (``AVAL`` -> ``AVA``, ``RIML`` -> ``RIM``).

    Parameters
    ----------
    name : str
        A neuron name.
    """
    name = str(name).strip()
    if len(name) >= 4 and name[-1] in "LR":
        return name[:-1]
    return name


@dataclass
class Enrichment(Result):
    """Result of a hypergeometric enrichment test.

    Parameters
    ----------
    population, in_class, selected, overlap : int
        Distinct names in the population, those in the classes, those selected, selected and in the classes.
    expected : float
        The overlap expected under random selection.
    p_value : float
        One-sided hypergeometric p-value.
    overlap_names : list of str
        The selected names in the classes.
    """

    population: int
    in_class: int
    selected: int
    overlap: int
    expected: float
    p_value: float
    overlap_names: list[str]

    def to_frame(self) -> pd.DataFrame:
        """One row: population, in_class, selected, overlap, expected, p_value, overlap_names."""
        return pd.DataFrame([self.__dict__])

    def summary(self) -> str:
        """Overlap against expectation and the p-value."""
        return (f"{self.overlap} of {self.selected} selected names are in the classes ({self.expected:.1f} expected from "
                f"{self.in_class} of {self.population}); hypergeometric p = {self.p_value:.3g}")

    def plot(self, **kwargs: Any) -> Any:
        """The overlap against its expectation under random selection (plotly bars)."""
        import plotly.graph_objects as go

        fig = go.Figure(go.Bar(x=["observed", "expected"], y=[self.overlap, self.expected],
                               text=[", ".join(self.overlap_names[:8]), f"{self.expected:.1f}"], textposition="auto"))
        return themed(fig, title=kwargs.get("title", f"Enrichment: hypergeometric p = {self.p_value:.3g}"),
                      yaxis_title="selected names in the classes")


def enrichment_test(selected: Sequence[str], population: Sequence[str], classes: Sequence[str],
                    class_of: Any = neuron_class) -> Enrichment:
    """Is ``selected`` (e.g. names labeled reversal-related) enriched for ``classes`` (e.g. AVA, AVE, RIM, AIB)?

    One-sided hypergeometric test (``scipy.stats.hypergeom.sf``) over the distinct names of
    ``population``: M names, K of them in the classes, N selected, x selected in the classes;
    ``p = P(X >= x)``.

    Parameters
    ----------
    selected : sequence of str
        The names picked (e.g. labeled reversal-related).
    population : sequence of str
        Every name that could have been picked.
    classes : sequence of str
        The classes tested for enrichment.
    class_of : callable, optional
        Name -> class (default :func:`neuron_class`).
    """
    pop = sorted(set(map(str, population)))
    sel = sorted(set(map(str, selected)))
    missing = set(sel) - set(pop)
    if missing:
        raise MismatchError(f"selected names not in the population: {sorted(missing)[:5]}")
    if not pop:
        raise InputTypeError("the population of names is empty")
    cls = set(classes)
    in_class = [n for n in pop if class_of(n) in cls]
    overlap = [n for n in sel if class_of(n) in cls]
    M, K, N, x = len(pop), len(in_class), len(sel), len(overlap)
    p = float(sps.hypergeom.sf(x - 1, M, K, N)) if N else 1.0
    return Enrichment(M, K, N, x, K * N / M, p, overlap)
