"""Category selectivity per unit: a concept test per category (AUROC of that category vs the rest), FDR over
units x categories, with the null the design needs (:func:`interp.label.concepts.concept_test`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, InputTypeError, MismatchError
from ..stats import resolve_groups, select_null
from ..tensor import Activations
from .concepts import ConceptTests, _matrix, concept_test

__all__ = ["category_selectivity"]


def category_selectivity(acts: Activations | np.ndarray, categories: Sequence[Any] | np.ndarray | str, *,
                         groups: Any = None, null: str = "auto", n_permutations: int = 1000,
                         min_shift: int | None = None, block_size: int | None = None, alpha: float = 0.05,
                         seed: int = 0) -> ConceptTests:
    """Category selectivity per unit (Kriegeskorte et al. 2008 style: animate/inanimate, faces, bodies...).

    For every category, AUROC of the unit's response for that category's samples vs all others, with
    FDR over units x categories. A unit is labeled selective for a category when q < alpha and
    AUROC > 0.5.

    The null follows :func:`concept_test`: with ``groups`` (trials) whole trials swap their categories,
    which makes the test valid on time series cut into trials (a single-sample permutation flags most
    units of an untuned autocorrelated recording); without groups time series get circular shifts and
    independent stimuli a permutation.

    >>> import numpy as np
    >>> cats = np.repeat(["face", "body", "object"], 30)
    >>> X = np.random.default_rng(0).normal(size=(90, 4)); X[cats == "face", 2] += 2
    >>> t = category_selectivity(X, cats, n_permutations=200)
    >>> t.significant(direction="+")[["unit", "concept"]].values.tolist()
    [[2, 'face']]

    Parameters
    ----------
    acts : Activations or numpy.ndarray
        ``(sample, unit)`` activity.
    categories : array_like or str
        One label per sample, or a sample-coordinate name of ``acts``.
    groups, null, n_permutations, min_shift, block_size
        The null's design (trials, null, draws, smallest shift, block size), as in :func:`concept_test`.
    alpha : float
        The FDR level (over units x categories).
    seed : int
        Seed of the null draws.
    """
    X, _ = _matrix(acts)
    if isinstance(categories, str):
        if not isinstance(acts, Activations):
            raise InputTypeError("a category coordinate name needs an Activations with that sample coordinate")
        categories = acts.coord(categories, acts.dims[0])
    cats = np.asarray(categories)
    if len(cats) != X.shape[0]:
        raise MismatchError(f"categories has {len(cats)} values but there are {X.shape[0]} samples")
    levels = [c for c in pd.unique(cats)]
    if len(levels) < 2:
        raise ConfigError("need at least two categories")
    anns = {str(c): (cats == c) for c in levels}
    reason = None
    if null == "auto":  # one choice for the categorical variable (its one-vs-rest flags share the design)
        source = acts if isinstance(acts, Activations) else None
        codes = resolve_groups(groups, X.shape[0], source)
        keep = X.std(0) > 0
        null, _, reason = select_null("auto", groups=codes, activity=X[:, keep] if keep.any() else X, values=cats)
    tests = concept_test(acts, anns, kind="auroc", null=null, groups=groups, n_permutations=n_permutations,
                         min_shift=min_shift, block_size=block_size, alpha=alpha, seed=seed)
    if reason is not None:
        tests.reason = reason
    return tests
