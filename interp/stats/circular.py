"""Circular statistics for angles (head direction, reach direction, phase).

* :func:`circular_mean`: the direction of the mean resultant vector (= :func:`scipy.stats.circmean`);
* :func:`resultant_length`: its length ``R/n`` in [0, 1] (1: all angles equal; 0: no preferred
  direction), as :func:`scipy.stats.directional_stats`;
* :func:`rayleigh_test`: is the distribution of angles uniform? ``z = n rbar^2`` and Zar's (1999,
  eq. 27.4) p-value ``exp(sqrt(1 + 4n + 4(n^2 - R^2)) - (1 + 2n))``.

Weights (e.g. spike counts or firing rates per angle bin) count each angle that many times. The
Rayleigh test assumes independent angles: for spikes of an autocorrelated time series use a
shift or trial null (:func:`interp.label.direction_tuning`) for the p-value and the resultant
length as the effect size.

>>> import numpy as np
>>> round(circular_mean([350, 20], degrees=True), 6)
5.0
>>> round(resultant_length([0.0, np.pi]), 6)
0.0
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError, DimensionError, MismatchError, NaNError

__all__ = ["circular_mean", "resultant_length", "rayleigh_test", "wrap_degrees"]


def _prepare(angles: Any, weights: Any, degrees: bool) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(angles, dtype=float)
    if degrees:
        a = np.deg2rad(a)
    if weights is None:
        return a, np.ones_like(a)
    try:
        w = np.broadcast_to(np.asarray(weights, dtype=float), a.shape)
    except ValueError as exc:
        raise MismatchError(f"weights {np.shape(weights)} must match angles {a.shape}") from exc
    if (w < 0).any():
        raise ConfigError("weights must be non-negative (counts or rates)")
    return a, w


def _vector(angles: Any, weights: Any, degrees: bool, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, w = _prepare(angles, weights, degrees)
    total = w.sum(axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (w * np.cos(a)).sum(axis) / total
        s = (w * np.sin(a)).sum(axis) / total
    return c, s, total


def wrap_degrees(angle: Any) -> Any:
    """Angles in degrees wrapped to [0, 360).

    Parameters
    ----------
    angle : float or array_like
        Angles in degrees.
    """
    out = np.mod(np.asarray(angle, dtype=float), 360.0)
    out = np.where(out >= 360.0, 0.0, out)
    return float(out) if out.ndim == 0 else out


def circular_mean(angles: Any, weights: Any = None, degrees: bool = False, axis: int = 0) -> Any:
    """Mean direction of ``angles`` (radians in [0, 2pi), or degrees in [0, 360) with ``degrees=True``).

    NaN when the resultant vector is zero (no mean direction).

    Parameters
    ----------
    angles : array_like
        Angles in radians (degrees with ``degrees=True``).
    weights : array_like, optional
        A weight per angle (e.g. spike counts); default 1 each.
    degrees : bool
        Angles (and the result) in degrees.
    axis : int
        The axis the angles lie along.
    """
    c, s, _ = _vector(angles, weights, degrees, axis)
    with np.errstate(invalid="ignore"):
        m = np.where(np.hypot(c, s) > 1e-12, np.mod(np.arctan2(s, c), 2 * np.pi), np.nan)
    m = np.where(m > 2 * np.pi - 1e-12, 0.0, m)  # -0.0 wraps to 2 pi; the direction is 0
    m = np.rad2deg(m) if degrees else m
    return float(m) if np.ndim(m) == 0 else m


def resultant_length(angles: Any, weights: Any = None, degrees: bool = False, axis: int = 0) -> Any:
    """Mean resultant length ``|sum w e^{i a}| / sum w`` in [0, 1].

    Parameters
    ----------
    angles : array_like
        Angles in radians (degrees with ``degrees=True``).
    weights : array_like, optional
        A weight per angle (e.g. spike counts); default 1 each.
    degrees : bool
        Angles (and the result) in degrees.
    axis : int
        The axis the angles lie along.
    """
    c, s, _ = _vector(angles, weights, degrees, axis)
    r = np.hypot(c, s)
    return float(r) if np.ndim(r) == 0 else r


def rayleigh_test(angles: Any, weights: Any = None, degrees: bool = False, axis: int = 0) -> tuple[Any, Any]:
    """Rayleigh test of uniformity: ``(z, p_value)`` with ``z = n rbar^2`` (Zar 1999, eq. 27.4).

    ``n`` is the number of angles (or the sum of integer ``weights``, e.g. spike counts). Small p:
    the angles cluster around a mean direction. NaN angles raise :class:`NaNError`, no angles (or zero total
    weight) :class:`DimensionError`.

    Parameters
    ----------
    angles : array_like
        Angles in radians (degrees with ``degrees=True``).
    weights : array_like, optional
        A weight per angle (e.g. spike counts); default 1 each.
    degrees : bool
        Angles (and the result) in degrees.
    axis : int
        The axis the angles lie along.
    """
    a = np.asarray(angles, dtype=float)
    if not np.isfinite(a).all() or (weights is not None and not np.isfinite(np.asarray(weights, dtype=float)).all()):
        raise NaNError("rayleigh_test got NaN or infinite angles or weights; drop them first")
    c, s, n = _vector(angles, weights, degrees, axis)
    if np.any(np.asarray(n) <= 0):
        raise DimensionError("rayleigh_test needs at least one angle with positive weight (got none)")
    rbar = np.hypot(c, s)
    R = n * rbar
    z = n * rbar ** 2
    with np.errstate(invalid="ignore"):
        p = np.exp(np.sqrt(1 + 4 * n + 4 * (n ** 2 - R ** 2)) - (1 + 2 * n))
    p = np.clip(p, 0.0, 1.0)
    return (float(z), float(p)) if np.ndim(z) == 0 else (z, p)
