"""What kind of variable an annotation is, and what to do with its missing values.

An annotation (a behaviour, a trial condition, a stimulus) is tested differently by kind:

* ``"binary"`` (two levels: booleans, 0/1, two labels or two numbers such as 1/2; the larger level, in
  text order for labels, is "true"): AUROC of the unit's activity between the two;
* ``"categorical"`` (a few unordered levels: reach targets, stimulus classes): mutual information,
  scored by decoding;
* ``"continuous"`` (speed, position): correlation;
* ``"circular"`` (a direction: an angle, or the two columns of a 2-D variable such as hand velocity):
  cosine tuning (:func:`interp.label.tuning.direction_tuning`).

The kind is declared (``kinds={"target": "categorical"}``, CLI ``--kinds target=categorical`` or
``--categorical target``) or inferred, and the result says which and why. Inference reads the values,
not their storage type: MATLAB stores every number as a double and NWB trial columns are often floats,
so integer-valued floats with at most ``max_levels`` levels are categorical codes, not a quantity to
correlate with.

Missing values (NaN, None) are never a level: ``nan_policy="raise"`` (default) raises
:class:`MissingAnnotationError` counting them; ``"drop"`` leaves those samples out of that annotation's
test.

>>> import numpy as np
>>> annotation_kind(np.array([1.0, 3.0, 2.0, 3.0, 8.0]))
('categorical', 'whole numbers with 4 levels (at most 12): category codes stored as floats')
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, DimensionError, NaNError

__all__ = ["KINDS", "TEST_OF", "annotation_kind", "annotation_values", "as_binary", "missing",
           "MissingAnnotationError", "parse_kinds"]

KINDS = ("binary", "categorical", "continuous", "circular")
#: The concept-test statistic of each kind (circular annotations are tested by cosine tuning).
TEST_OF = {"binary": "auroc", "categorical": "mi", "continuous": "correlation", "circular": "circular"}
_ALIASES = {"auroc": "binary", "bool": "binary", "mi": "categorical", "category": "categorical",
            "correlation": "continuous", "direction": "circular", "angle": "circular"}


class MissingAnnotationError(NaNError):
    """An annotation with missing values (NaN or None) where every sample needs one."""


def missing(values: np.ndarray) -> np.ndarray:
    """True where a value is missing: NaN, None, or a row of a 2-D annotation holding one.

    Parameters
    ----------
    values : numpy.ndarray
        An annotation, 1-D or ``(n, 2)``.
    """
    miss = np.asarray(pd.isna(values))
    return miss.any(1) if miss.ndim == 2 else miss


def annotation_values(values: Any) -> np.ndarray:
    """An annotation as a NumPy array: a column of per-sample vectors (a 2-column variable stored as one
    coordinate) becomes ``(n, k)``.

    Parameters
    ----------
    values : array-like
        One value per sample, ``(n, 2)`` columns, or an object column of equal-length vectors.
    """
    v = np.asarray(values)
    if v.dtype == object and v.ndim == 1 and len(v) and all(np.ndim(x) == 1 for x in v):
        widths = {len(x) for x in v}
        if len(widths) != 1:
            raise DimensionError(f"the annotation holds vectors of different lengths {sorted(widths)} per sample")
        v = np.stack([np.asarray(x, dtype=np.float64) for x in v])
    if v.dtype == object and v.ndim == 1:  # numbers with None for missing ones: floats with NaN
        present = [x for x in v if not pd.isna(x)]
        if present and all(isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)
                           for x in present):
            v = np.array([np.nan if pd.isna(x) else float(x) for x in v])
    if v.ndim == 2 and v.shape[1] == 1:
        v = v[:, 0]
    if v.ndim > 2 or (v.ndim == 2 and v.shape[1] != 2):
        raise DimensionError(f"an annotation is one value per sample, or two columns (the x and y of a 2-D variable "
                             f"such as velocity, tested as a direction); got shape {v.shape}")
    return v


def parse_kinds(specs: Any) -> dict[str, str]:
    """``{"target": "categorical"}`` from a mapping or ``["target=categorical", ...]`` (CLI ``--kinds``).

    Parameters
    ----------
    specs : mapping, sequence of str or None
        ``{name: kind}`` or ``NAME=KIND`` strings; kinds may be aliases (``auroc``, ``mi``, ``angle``, ...).
        None gives ``{}``.
    """
    if specs is None:
        return {}
    if isinstance(specs, dict):
        items = list(specs.items())
    else:
        items = []
        for spec in specs:
            name, sep, kind = str(spec).partition("=")
            if not sep or not name or not kind:
                raise ConfigError(f"a kind is given as NAME=KIND (KIND one of {KINDS}), got {spec!r}")
            items.append((name, kind))
    out = {}
    for name, kind in items:
        kind = _ALIASES.get(str(kind), str(kind))
        if kind not in KINDS:
            raise ConfigError(f"annotation {name!r}: kind {kind!r} is not one of {KINDS}")
        out[str(name)] = kind
    return out


def as_binary(values: Any) -> np.ndarray:
    """A two-level annotation as booleans: itself when boolean, else true where it takes the larger level
    (numbers by value, labels in text order; missing values are false).

    Parameters
    ----------
    values : array-like
        One value per sample, two levels (missing values aside).

    >>> as_binary([1, 2, 2, 1]).tolist()
    [False, True, True, False]
    """
    v = np.asarray(values)
    if v.dtype == bool:
        return v
    present = v[~missing(v)]
    if present.dtype.kind in "OUS":
        levels = sorted(pd.unique(present).tolist(), key=str)
    else:
        levels = sorted(pd.unique(present).tolist())
    if len(levels) > 2:
        raise ConfigError(f"a binary annotation has two levels, this one {len(levels)}")
    return np.asarray(v == levels[-1], dtype=bool) if levels else np.zeros(len(v), bool)


def annotation_kind(values: Any, declared: str | None = None, max_levels: int = 12) -> tuple[str, str]:
    """``(kind, why)`` of an annotation (missing values ignored); ``declared`` wins when given (checked).

    Parameters
    ----------
    values : array-like
        The annotation (see :func:`annotation_values`).
    declared : str, optional
        A declared kind (or alias); checked against the values (binary needs 2 levels, continuous one number
        per sample). None: inferred.
    max_levels : int, optional
        Whole numbers with at most this many levels are categorical (default 12).
    """
    v = annotation_values(values)
    present = v[~missing(v)]
    if declared is not None:
        kind = parse_kinds({"annotation": declared})["annotation"]
        levels = len(pd.unique(present)) if present.ndim == 1 else 0
        if kind == "binary" and levels != 2:
            raise ConfigError(f"declared binary but the annotation has {levels} levels")
        if kind == "continuous" and (present.ndim != 1 or present.dtype.kind not in "biuf"):
            raise ConfigError("declared continuous but the annotation is not one number per sample")
        return kind, "declared"
    if v.ndim == 2:
        return "circular", "two columns: the direction of the 2-D variable (x, y)"
    if present.dtype == bool:
        return "binary", "true/false values"
    levels = pd.unique(present)
    if present.dtype.kind in "OUS":
        if len(levels) == 2:
            return "binary", f"two labels {sorted(map(str, levels))}"
        return "categorical", f"{len(levels)} text labels"
    if len(levels) == 2 and set(levels.tolist()) <= {0, 1}:
        return "binary", "values 0 and 1"
    if len(levels) == 2:  # two numbers are two levels, as two labels are: the larger one is "true"
        return "binary", f"two levels {sorted(levels.tolist())} (the larger is true)"
    whole = present.dtype.kind in "biu" or bool(np.all(np.mod(present, 1) == 0))
    if whole and len(levels) <= max_levels:
        stored = "integers" if present.dtype.kind in "biu" else "category codes stored as floats"
        return "categorical", f"whole numbers with {len(levels)} levels (at most {max_levels}): {stored}"
    return "continuous", f"{'whole numbers' if whole else 'numbers'} with {len(levels)} levels"


def check_missing(name: str, values: np.ndarray, nan_policy: str, where: str = "") -> np.ndarray:
    """The samples to keep for annotation ``name``: all (none missing), the present ones (``"drop"``), or
    :class:`MissingAnnotationError` (``"raise"``).

    Parameters
    ----------
    name : str
        The annotation's name, for the message.
    values : numpy.ndarray
        Its values.
    nan_policy : str
        ``"raise"`` or ``"drop"``.
    where : str, optional
        Appended to the message (e.g. which recording).
    """
    if nan_policy not in ("raise", "drop"):
        raise ConfigError(f"nan_policy must be 'raise' or 'drop' for annotations, got {nan_policy!r}")
    miss = missing(values)
    if miss.any() and nan_policy == "raise":
        raise MissingAnnotationError(
            f"annotation {name!r} is missing (NaN/None) for {int(miss.sum())} of {len(miss)} samples{where}. "
            "Restrict the recording to the samples where it is defined (trials: interp.data.restrict, CLI "
            "--epochs), or leave those samples out of this annotation's test with nan_policy='drop' (CLI "
            "--nan-policy drop)")
    return ~miss
