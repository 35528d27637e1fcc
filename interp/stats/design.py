"""Which null is valid for a design: :func:`select_null` reads the trials, the activity and the values.

The label statistics (concept tests, category selectivity, direction tuning, the recording labeller)
test a unit's activity against one set of values (an annotation, a direction). Whether a resampling
null is exact depends on what is exchangeable:

* values **constant within each trial** (the reach target, the reward of a trial), with trials known:
  the values were assigned to trials, so permuting the trials' values (:func:`group_permutations`
  with ``constant=True``; trials of any lengths) is exact whatever the activity does, as long as the
  trial-level sequence of values has no serial order (checked: a blocked design with activity that
  runs on across trials gets the autocorrelation-corrected test instead);
* values **varying within trials**, trials of equal length whose activity restarts every trial
  (checked: the correlation of the last sample of a trial with the first of the next): whole trials
  are exchangeable and swap (``"group"``);
* otherwise (ragged trials, activity that runs on across trial boundaries, or no trials and both
  sides autocorrelated): no permutation of samples is exact and a circular shift is only valid near
  p = 0.05 (its null holds about ``n / tau`` independent values), so the test is the
  autocorrelation-corrected Wald test of :mod:`interp.stats.autocorr` (``"effective_n"``);
* no trials and one side not autocorrelated: samples are exchangeable (``"permutation"``).

A null named by the caller is checked: a shift within trials of a value that is constant within each
trial leaves it unchanged (:class:`~interp.errors.InvalidNullError`).

>>> import numpy as np
>>> trial = np.repeat(np.arange(20), 10); target = np.repeat(np.arange(20) % 4, 10)
>>> select_null("auto", groups=trial, activity=np.random.default_rng(0).normal(size=(200, 3)), values=target)[:2]
('group', True)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, InvalidNullError
from .nulls import NULLS, lag1_autocorrelation

__all__ = ["EFFECTIVE_N", "TESTS", "constant_within", "boundary_correlation", "trial_serial_dependence",
           "value_columns", "select_null", "time_positions", "sample_layout"]

#: The autocorrelation-corrected Wald test (:mod:`interp.stats.autocorr`), a valid test where no null is exact.
EFFECTIVE_N = "effective_n"
#: Names ``null=`` accepts in the label statistics: the resampling nulls and the corrected test.
TESTS = (*NULLS, EFFECTIVE_N)


def constant_within(values: Any, groups: np.ndarray) -> bool:
    """True when ``values`` take one value in every group.

    Parameters
    ----------
    values : array_like
        One value per sample.
    groups : numpy.ndarray
        Integer trial codes, one per sample (from :func:`~interp.stats.resolve_groups`).
    """
    v = pd.Series(np.asarray(values)).reset_index(drop=True)
    return bool((v.groupby(groups).nunique(dropna=False) <= 1).all())


def value_columns(values: Any) -> np.ndarray:
    """``(n, K)`` numeric columns of ``values``: itself when numeric with more than two levels, else the
    indicators of its levels (all of them).

    Parameters
    ----------
    values : array_like
        ``(n,)`` values (numeric or categorical), or ``(n, K)`` columns returned as floats.
    """
    v = np.asarray(values)
    if v.ndim == 2:
        return v.astype(float)
    if v.dtype.kind in "fiu" and len(np.unique(v)) > 2:
        return v.astype(float)[:, None]
    return (v[:, None] == pd.unique(v)[None, :]).astype(float)


def _ordered_trials(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last sample of every trial, trials in order of their first sample."""
    order = pd.unique(groups)
    pos = np.arange(len(groups))
    first = pd.Series(pos).groupby(groups).min().reindex(order).to_numpy()
    last = pd.Series(pos).groupby(groups).max().reindex(order).to_numpy()
    return first, last


def boundary_correlation(activity: np.ndarray, groups: np.ndarray) -> float:
    """Median over units of the correlation between the last sample of a trial and the first of the next.

    About the lag-1 autocorrelation when the activity runs on across trials; about 0 when it restarts
    every trial (or the gaps between trials are long). NaN with fewer than 4 trials.

    Parameters
    ----------
    activity : numpy.ndarray
        ``(n,)`` or ``(n, units)`` samples in time order.
    groups : numpy.ndarray
        Integer trial codes, one per sample (from :func:`~interp.stats.resolve_groups`).
    """
    X = np.asarray(activity, dtype=float)
    X = X[:, None] if X.ndim == 1 else X
    first, last = _ordered_trials(groups)
    if len(first) < 4:
        return float("nan")
    a, b = X[last[:-1]], X[first[1:]]
    a, b = a - a.mean(0), b - b.mean(0)
    den = np.sqrt((a ** 2).sum(0) * (b ** 2).sum(0))
    ok = den > 0
    if not ok.any():
        return 0.0
    return float(np.median((a * b).sum(0)[ok] / den[ok]))


def trial_serial_dependence(values: Any, groups: np.ndarray) -> float:
    """Largest lag-1 autocorrelation of the trial-level values (their indicators for categories).

    Zero with fewer than 4 trials.

    Parameters
    ----------
    values : array_like
        One value per sample; each trial's first sample gives the trial's value.
    groups : numpy.ndarray
        Integer trial codes, one per sample (from :func:`~interp.stats.resolve_groups`).
    """
    first, _ = _ordered_trials(groups)
    per_trial = np.asarray(values)[first]
    if len(per_trial) < 4:
        return 0.0
    return float(np.max(lag1_autocorrelation(value_columns(per_trial))))


def select_null(null: str = "auto", *, groups: np.ndarray | None = None, activity: np.ndarray | None = None,
                values: Any = None) -> tuple[str, bool, str]:
    """``(name, constant, reason)``: the null (or test) for ``values`` against ``activity`` (module docstring).

    ``constant``: the values are constant within each group (whole trials' values are permuted, trials
    of any lengths). ``groups``: integer codes (from :func:`~interp.stats.resolve_groups`) or None.

    Parameters
    ----------
    null : str
        ``"auto"`` or one of :data:`TESTS` (checked against the design).
    groups : numpy.ndarray, optional
        Integer trial codes, one per sample (at least two trials); None for a single series.
    activity : numpy.ndarray, optional
        ``(n, units)`` the activity, for its autocorrelation.
    values : array_like, optional
        The variable tested against the activity.
    """
    if null not in ("auto", *TESTS):
        raise ConfigError(f"null must be 'auto' or one of {TESTS}, got {null!r}")
    v = None if values is None else np.asarray(values)
    X = None if activity is None else np.asarray(activity, dtype=float)
    constant = False
    if groups is not None:
        G = int(groups.max()) + 1 if len(groups) else 0
        if G < 2:
            raise ConfigError("the samples form a single group; tests across trials need at least two trials "
                              "(drop groups= to test a single series)")
        constant = v is not None and constant_within(v, groups)
    if null != "auto":
        if null == "group" and groups is None:
            raise ConfigError("null='group' needs groups= (a trial or subject label per sample)")
        if null in ("circular", "block") and groups is not None and constant:
            raise InvalidNullError(
                f"null={null!r} reorders samples within each trial, but the values are constant within every trial, "
                "so the null is the data itself and every unit would look untuned; use null='group' (permutes the "
                "trials' values) or null='auto'")
        return null, constant and null == "group", "chosen by the caller"
    if groups is not None:
        G = int(groups.max()) + 1
        cross = float("nan") if X is None else boundary_correlation(X, groups)
        crosses = not (cross < 0.1)  # NaN (too few trials to tell) counts as crossing
        if constant:
            serial = trial_serial_dependence(v, groups)
            if serial > 3 / math.sqrt(G) and crosses and X is not None:
                return EFFECTIVE_N, False, (
                    f"the values are constant within trials but follow each other in runs across trials (lag-1 r "
                    f"{serial:.2f}) and the activity runs on across trials (boundary r {cross:.2f}), so permuting "
                    "trials is not exact; autocorrelation-corrected Wald test")
            return "group", True, "the values are constant within trials: the trials' values are permuted"
        sizes = np.bincount(groups)
        equal = len(set(sizes.tolist())) == 1
        if equal and not crosses:
            return "group", False, (f"the activity restarts every trial (r across trial boundaries {cross:.2f}): "
                                    "whole trials are swapped")
        why = ("the trials differ in length" if not equal else
               f"the activity runs on across trial boundaries (r {cross:.2f}), so trials are not exchangeable")
        return EFFECTIVE_N, False, f"the values vary within trials and {why}: autocorrelation-corrected Wald test"
    if X is None or v is None:
        return "permutation", False, "samples are treated as exchangeable"
    n = len(X)
    threshold = max(0.1, 3 / math.sqrt(max(n, 1)))
    cols = value_columns(v)
    Z = cols - cols.mean(0)
    resid = X - X.mean(0)
    resid = resid - Z @ np.linalg.lstsq(Z, resid, rcond=None)[0]  # a tuned unit's response is not autocorrelation
    r_act = float(np.max(lag1_autocorrelation(resid))) if X.size else 0.0
    r_val = float(np.max(lag1_autocorrelation(cols)))
    if r_act > threshold and r_val > threshold:
        return EFFECTIVE_N, False, (f"the samples are autocorrelated (lag-1 r of the activity up to {r_act:.2f}, of the "
                                    f"values {r_val:.2f}) and no trials are given: autocorrelation-corrected Wald test")
    return "permutation", False, "samples are exchangeable (no autocorrelation in the activity or the values)"


def time_positions(times: Any, max_step: int | None = None) -> np.ndarray | None:
    """Each sample's place on the recording's regular time grid, or None when there is no gap.

    The grid step is the median interval between samples; an interval of ``k`` steps (rounded, at
    least 1, so jitter does not count) puts the next sample ``k`` places on. ``max_step`` caps a gap
    (default: half the number of samples, the longest lag :mod:`interp.stats.autocorr` uses), so
    one long pause between sessions does not make a huge grid, and where the gaps would still make the
    grid more than 4x the samples (many trials far apart) each counts for at most ``3 n / gaps``
    steps (lags across them are then counted shorter than they are). None also when the times do not
    increase or are not finite (the samples are then taken as consecutive).

    Parameters
    ----------
    times:
        One time per sample, in recording order.
    max_step:
        The largest step a gap counts for.

    >>> time_positions([0.0, 0.1, 0.2, 0.5, 0.6]).tolist()
    [0, 1, 2, 5, 6]
    """
    t = np.asarray(times, dtype=float)
    n = len(t)
    if n < 3 or not np.isfinite(t).all():
        return None
    step = np.diff(t)
    if (step <= 0).any():
        return None
    k = np.maximum(1, np.rint(step / np.median(step)))
    if (k == 1).all():
        return None
    k = np.minimum(k, max(2, n // 2 + 1) if max_step is None else max_step)
    gaps = int((k > 1).sum())
    if k.sum() > 4 * n and max_step is None:  # many long gaps: keep the grid within 4x the samples
        k = np.minimum(k, max(2, 3 * n // gaps))
    return np.concatenate([[0], np.cumsum(k)]).astype(np.int64)


#: What the corrected test assumes when a recording says nothing about its trials or gaps (issue 19).
STATIONARY_NOTE = ("no trial or time coordinate: the samples are taken as one stationary series; if the activity "
                   "restarts at each trial this is liberal (7.4% of tests below 0.05 on null data): give groups= or "
                   "a 'trial' sample coordinate")


def sample_layout(source: Any, n: int, keep: np.ndarray | None = None, groups: np.ndarray | None = None
                  ) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """``(segments, positions, note)``: what a recording says about its samples' order in time.

    Used by the autocorrelation-corrected test when ``groups`` are not given: ``segments`` are the
    recording's own ``trial`` sample coordinate (contiguous trials; the autocovariance is then
    estimated within and across trials, so activity that restarts every trial is handled) or, without
    one, the stretches between gaps of its ``time`` coordinate; ``positions`` place the samples on
    the time grid (:func:`time_positions`) so lags are counted in time across gaps. Segments are not
    treated as exchangeable trials (that needs ``groups=``). ``note`` says what was used; when the
    recording knows neither (a bare array, no ``trial`` or ``time`` coordinate) and no ``groups``
    were given, it is :data:`STATIONARY_NOTE`: the samples are one stationary series, and activity
    that restarts at each trial, which nothing in the data marks, makes the test liberal
    (``tests/test_stats_layout.py``: 7.4% at 0.05). Give ``groups=`` or a ``trial`` coordinate then.

    Parameters
    ----------
    source:
        An :class:`~interp.Activations` (anything else: nothing is known).
    n:
        Number of samples of ``source``.
    keep:
        Boolean mask of the samples analysed (the others are dropped; they leave a gap in time).
    groups:
        The trial codes the caller gave (of the kept samples), if any: they are the segments, and
        only the time positions are read from the recording.
    """
    from ..tensor import Activations

    if not isinstance(source, Activations) or source.shape[0] != n:
        return None, None, "" if groups is not None else STATIONARY_NOTE
    frame = source.coords.get(source.dims[0])
    if frame is None:
        return None, None, "" if groups is not None else STATIONARY_NOTE
    sel = np.ones(n, bool) if keep is None else np.asarray(keep, bool)
    notes = []
    positions = None
    if "time" in frame.columns:
        try:
            times = np.asarray(frame["time"], dtype=float)
        except (TypeError, ValueError):
            times = None
        if times is not None:
            full = time_positions(times)
            if full is None and not sel.all():
                full = np.arange(n)
            if full is not None:
                positions = full[sel] - full[sel][0] if sel.any() else None
                if positions is not None and (np.diff(positions) > 1).any():
                    notes.append("lags counted in time across the gaps of the 'time' coordinate")
                else:
                    positions = None
    segments = None
    if groups is not None:
        return None, positions, "; ".join(notes)
    if "trial" in frame.columns:
        values = pd.Series(np.asarray(frame["trial"])[sel])
        if not values.isna().any() and len(values):
            codes = pd.factorize(values)[0].astype(np.int64)
            change = np.flatnonzero(np.diff(codes) != 0) + 1
            if len(np.unique(codes[np.r_[0, change]])) == len(change) + 1 and len(change) >= 1:
                segments = codes
                notes.append(f"autocorrelation estimated within and across the recording's {len(change) + 1} "
                             "trials ('trial' coordinate; pass groups='trial' to permute trials)")
    if segments is None and positions is not None:
        segments = np.concatenate([[0], np.cumsum(np.diff(positions) > 1)]).astype(np.int64)
        notes.append(f"the {int(segments[-1]) + 1} stretches between gaps as segments")
    if segments is None and positions is None:
        notes.append(STATIONARY_NOTE)
    return segments, positions, "; ".join(notes)
