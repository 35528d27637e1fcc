"""Label scoring: how well a label predicts the unit's activity on held-out data.

* **Detection** (delphi's detection score, Paulo et al. 2024): held-out activating examples (the
  unit's top-k on data not used to write the label) vs random held-out examples; the label's
  predicate (does the example contain what the label names?) scores each example, and the score is
  the AUROC of those predicate values for telling activating from random examples. 0.5 = chance.
* **Simulation** (Bills et al. 2023): an explainer that can simulate predicts per-token activations
  from the label alone; the score is the Pearson correlation with the real activations.
* For recordings the predicate is the annotation itself on held-out time (AUROC for a binary
  annotation, |r| for a continuous one).

>>> detection_auroc([1, 1, 0], [0, 0, 0, 1])    # predicate on 3 activating and 4 random examples
0.7083333333333334
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

from ..errors import DimensionError

__all__ = ["detection_auroc", "simulation_correlation", "auroc"]


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half); NaN when a class is empty.

    Parameters
    ----------
    scores : Sequence[float]
        A score per example (higher: more likely positive).
    labels : Sequence[bool]
        Whether each example is positive (same length as ``scores``).
    """
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    if s.shape != y.shape:
        raise DimensionError(f"scores and labels differ in length: {s.shape} vs {y.shape}")
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = sps.rankdata(s)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def detection_auroc(predicate_on_activating: Sequence[float], predicate_on_random: Sequence[float]) -> float:
    """AUROC of the label's predicate for telling activating from random held-out examples.

    Parameters
    ----------
    predicate_on_activating : Sequence[float]
        The predicate's score (or 0/1 verdict) on each activating example.
    predicate_on_random : Sequence[float]
        The same on each random example.
    """
    a, r = np.asarray(predicate_on_activating, float), np.asarray(predicate_on_random, float)
    return auroc(np.concatenate([a, r]), np.concatenate([np.ones(len(a), bool), np.zeros(len(r), bool)]))


def simulation_correlation(simulated: Sequence[float], actual: Sequence[float]) -> float:
    """Pearson correlation of simulated and actual activations (NaN if either is constant).

    Non-finite pairs are dropped; fewer than 3 left gives NaN.

    Parameters
    ----------
    simulated : Sequence[float]
        The simulator's predicted activation per token or example.
    actual : Sequence[float]
        The unit's actual activations (same length).
    """
    s, a = np.asarray(simulated, float), np.asarray(actual, float)
    if s.shape != a.shape:
        raise DimensionError(f"simulated and actual activations differ in length: {s.shape} vs {a.shape}")
    ok = np.isfinite(s) & np.isfinite(a)
    if ok.sum() < 3 or s[ok].std() == 0 or a[ok].std() == 0:
        return float("nan")
    return float(np.corrcoef(s[ok], a[ok])[0, 1])
