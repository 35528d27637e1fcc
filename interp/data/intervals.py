"""Intervals of a recording (trials, epochs, behavioural states) and peri-event epochs.

An :class:`IntervalSet` is a set of ``[start, end)`` time intervals with one row of labels per interval
(pynapple's ``IntervalSet`` is the model). :func:`restrict` keeps the samples of a recording that fall
inside an interval and gives each one the interval it belongs to as a ``trial`` coordinate (plus the
intervals' labels): samples outside every interval are **excluded**, never given a trial of their own,
so a trial-aware null (``groups="trial"``) sees only real trials. :func:`epochs` cuts a fixed window
around each event, MNE-``Epochs`` style, into a ``(sample=trial, time, unit)`` recording.

>>> import numpy as np, interp
>>> rec = interp.data.from_numpy(np.random.rand(100, 3), time=np.arange(100) * 0.1)
>>> trials = IntervalSet([1.0, 5.0], [3.0, 6.0], labels={"target": [2, 7]})
>>> inside = restrict(rec, trials)
>>> inside.shape, sorted(set(inside.coord("trial").tolist())), inside.attrs["intervals"]["excluded"]
((30, 3), [0, 1], 70)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..errors import ConfigError, DimensionError
from ..tensor import Activations

__all__ = ["IntervalSet", "IntervalError", "restrict", "epochs", "sample_times"]


class IntervalError(ConfigError):
    """Intervals that cannot be used: unsorted bounds, overlaps, no sample inside, events without data."""


class IntervalSet:
    """``[start, end)`` intervals in seconds, sorted by start, with one row of ``labels`` per interval.

    Parameters
    ----------
    start, end:
        One value per interval (seconds); every ``end`` must exceed its ``start`` and intervals must
        not overlap (a sample inside two trials has no single trial).
    labels:
        Per-interval metadata (``{name: values}`` or a DataFrame): trial conditions, targets, states.

    >>> IntervalSet([0, 2], [1, 3]).index_of(np.array([0.5, 1.5, 2.0]))
    array([ 0, -1,  1])
    """

    def __init__(self, start: Any, end: Any, labels: Mapping[str, Any] | pd.DataFrame | None = None) -> None:
        start = np.asarray(start, dtype=np.float64).reshape(-1)
        end = np.asarray(end, dtype=np.float64).reshape(-1)
        if start.shape != end.shape:
            raise IntervalError(f"start has {len(start)} values but end has {len(end)}; give one of each per interval")
        if not (np.isfinite(start).all() and np.isfinite(end).all()):
            raise IntervalError("interval bounds must be finite numbers (a NaN start or end has no samples)")
        bad = np.flatnonzero(end <= start)
        if len(bad):
            raise IntervalError(f"interval {bad[0]} ends ({end[bad[0]]}) at or before it starts ({start[bad[0]]}); "
                                "every end must be later than its start")
        frame = pd.DataFrame(index=pd.RangeIndex(len(start))) if labels is None else (
            labels.reset_index(drop=True) if isinstance(labels, pd.DataFrame) else pd.DataFrame(dict(labels)))
        if len(frame) != len(start):
            raise IntervalError(f"labels have {len(frame)} rows for {len(start)} intervals")
        order = np.argsort(start, kind="stable")
        self.start, self.end = start[order], end[order]
        self.labels = frame.iloc[order].reset_index(drop=True)
        overlap = np.flatnonzero(self.start[1:] < self.end[:-1])
        if len(overlap):
            i = overlap[0]
            raise IntervalError(f"intervals overlap: [{self.start[i]}, {self.end[i]}) and [{self.start[i + 1]}, "
                                f"{self.end[i + 1]}); a sample inside both would have no single interval")

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, start: str | None = None, end: str | None = None) -> IntervalSet:
        """From a table with start/end columns (default: ``start_time``/``stop_time`` as in NWB, or
        ``start``/``end``); the other scalar columns become labels."""
        cols = list(frame.columns)
        start = start or next((c for c in ("start_time", "start") if c in cols), None)
        end = end or next((c for c in ("stop_time", "end", "stop", "end_time") if c in cols), None)
        if start not in cols or end not in cols:
            raise IntervalError(f"the interval table needs start and end columns (start_time/stop_time or "
                                f"start/end); it has {cols}")
        rest = frame.drop(columns=[start, end]).reset_index(drop=True)
        scalar = [c for c in rest.columns if rest[c].map(np.ndim).eq(0).all()]
        return cls(frame[start].to_numpy(), frame[end].to_numpy(), rest[scalar])

    def __len__(self) -> int:
        return len(self.start)

    def __repr__(self) -> str:
        return f"IntervalSet({len(self)} intervals, {self.duration():.4g} s, labels {list(self.labels.columns)})"

    def duration(self) -> float:
        """Total time covered (seconds)."""
        return float((self.end - self.start).sum())

    def to_frame(self) -> pd.DataFrame:
        """One row per interval: ``start``, ``end`` and the labels."""
        return pd.concat([pd.DataFrame({"start": self.start, "end": self.end}), self.labels], axis=1)

    def index_of(self, times: Any) -> np.ndarray:
        """The interval holding each time (``start <= t < end``), ``-1`` for times outside every interval.

        Parameters
        ----------
        times : array-like
            Times in seconds (any shape; the result has the same shape).
        """
        t = np.asarray(times, dtype=np.float64)
        pos = np.searchsorted(self.start, t, side="right") - 1
        inside = (pos >= 0) & (t < self.end[np.clip(pos, 0, None)])
        return np.where(inside, pos, -1)

    def contains(self, times: Any) -> np.ndarray:
        """True for the times inside an interval.

        Parameters
        ----------
        times : array-like
            Times in seconds.
        """
        return self.index_of(times) >= 0


def sample_times(rec: Activations, time: str = "time") -> np.ndarray:
    """Times (s) of a recording's samples: its ``time`` coordinate, else ``arange(n) * attrs["dt"]``.

    Parameters
    ----------
    rec : Activations
        The recording; its first dim holds the samples.
    time : str, optional
        Name of the sample coordinate holding times in seconds (default ``"time"``).
    """
    sample = rec.coords[rec.dims[0]]
    if time in sample.columns:
        values = sample[time].to_numpy()
        if not pd.api.types.is_numeric_dtype(values.dtype):
            raise DimensionError(f"sample coordinate {time!r} is not numeric; intervals need times in seconds")
        return values.astype(np.float64)
    if rec.attrs.get("dt"):
        return np.arange(rec.shape[0]) * float(rec.attrs["dt"])
    raise DimensionError(f"the recording has no sample coordinate {time!r} and no attrs['dt']; give the sample "
                         "times (time=... when loading) to use intervals")


def restrict(rec: Activations, intervals: IntervalSet, *, time: str = "time", name: str = "trial") -> Activations:
    """Keep the samples inside ``intervals``; each gets the interval's index as coordinate ``name`` (default
    ``trial``, ``0..len(intervals)-1`` in time order) and the intervals' labels (a label whose name is
    taken gets a ``trial_`` prefix). Samples outside every interval are dropped;
    ``attrs["intervals"]`` says how many and how many intervals held no sample.

    Raises :class:`IntervalError` when no sample falls inside any interval.

    Parameters
    ----------
    rec : Activations
        A 2-D recording ``(sample, unit)`` with sample times (see :func:`sample_times`).
    intervals : IntervalSet
        The intervals, on the same clock as the sample times.
    time : str, optional
        Name of the time coordinate (default ``"time"``).
    name : str, optional
        Name of the coordinate receiving each sample's interval index (default ``"trial"``).
    """
    if not isinstance(intervals, IntervalSet):
        raise ConfigError(f"intervals must be an IntervalSet, got {type(intervals).__name__}")
    if rec.data.ndim != 2:
        raise DimensionError(f"restrict keeps samples of a (sample, unit) time series; got dims {rec.dims} (a recording "
                             "already cut into trials is restricted by selecting trials: rec.isel(sample=...))")
    times = sample_times(rec, time)
    which = intervals.index_of(times)
    keep = np.flatnonzero(which >= 0)
    if not len(keep):
        raise IntervalError(f"no sample of the recording (times {times.min():.4g}..{times.max():.4g} s) falls inside "
                            f"the {len(intervals)} intervals ({intervals.start.min():.4g}..{intervals.end.max():.4g} s); "
                            "are both in seconds on the same clock?")
    out = rec.isel(**{rec.dims[0]: keep})
    sample = out.coords[out.dims[0]].reset_index(drop=True).copy()
    held = which[keep]
    sample[name] = held
    for col in intervals.labels.columns:
        column = col if col not in sample.columns else f"trial_{col}"
        sample[column] = intervals.labels[col].to_numpy()[held]
    empty = int(len(intervals) - len(np.unique(held)))
    attrs = {**out.attrs, "intervals": {"n": len(intervals), "excluded": int(len(times) - len(keep)),
                                        "empty": empty, "coordinate": name}}
    return out.replace(coords={**out.coords, out.dims[0]: sample}, attrs=attrs)


def _event_times(events: Any) -> tuple[np.ndarray, pd.DataFrame]:
    if isinstance(events, IntervalSet):
        return events.start, events.labels
    if isinstance(events, pd.DataFrame):
        col = next((c for c in ("time", "start_time", "start", "onset") if c in events.columns), None)
        if col is None:
            raise IntervalError(f"an events table needs a time column (time, start_time, start or onset); it has "
                                f"{list(events.columns)}")
        return events[col].to_numpy(dtype=np.float64), events.drop(columns=[col]).reset_index(drop=True)
    t = np.asarray(events, dtype=np.float64).reshape(-1)
    return t, pd.DataFrame(index=pd.RangeIndex(len(t)))


def epochs(rec: Activations, events: Any, window: tuple[float, float], *, baseline: tuple[float, float] | None = None,
           time: str = "time", incomplete: str = "raise") -> Activations:
    """Peri-event epochs: the samples from ``event + window[0]`` to ``event + window[1]`` around each event.

    Parameters
    ----------
    events:
        Event times (s), an :class:`IntervalSet` (its starts) or a DataFrame with a ``time`` (or
        ``start_time``/``onset``) column; the other columns become per-trial coordinates.
    window:
        ``(before, after)`` in seconds relative to the event, e.g. ``(-0.5, 1.0)``.
    baseline:
        ``(a, b)`` seconds relative to the event: each trial's mean over that span is subtracted per unit
        (MNE's ``baseline=``); ``None`` keeps the values.
    incomplete:
        An event whose window runs past the recording: ``"raise"`` (default) or ``"drop"`` it (the
        dropped events are listed in ``attrs["dropped_events"]``).

    Returns
    -------
    Activations
        dims ``("sample", "time", "unit")``: one sample per trial (event), with sample coordinates
        ``trial`` and ``event_time`` (and the events' labels) and a ``time`` coordinate relative to the
        event. The recording must be sampled on a regular clock (``dt``).
    """
    if rec.data.ndim != 2:
        raise DimensionError(f"epochs cut a (sample, unit) time series; got dims {rec.dims}")
    if incomplete not in ("raise", "drop"):
        raise ConfigError(f"incomplete must be 'raise' or 'drop', got {incomplete!r}")
    lo, hi = (float(w) for w in window)
    if not hi > lo:
        raise IntervalError(f"window {window} must be (before, after) with after > before, e.g. (-0.5, 1.0)")
    t = sample_times(rec, time)
    if len(t) < 2:
        raise IntervalError("a recording of fewer than 2 samples has no clock to cut epochs on")
    steps = np.diff(t)
    dt = float(np.median(steps))
    if not dt > 0 or np.abs(steps - dt).max() > 0.01 * dt:
        raise IntervalError(f"the sample times are not on a regular clock (steps {steps.min():.4g}..{steps.max():.4g} s); "
                            "epochs need evenly spaced samples (resample, or restrict to intervals instead)")
    offsets = np.arange(int(np.round(lo / dt)), int(np.round(hi / dt)) + 1)
    ev, labels = _event_times(events)
    if not len(ev):
        raise IntervalError("no events given")
    centre = np.round((ev - t[0]) / dt).astype(np.int64)
    idx = centre[:, None] + offsets[None, :]
    ok = (idx.min(1) >= 0) & (idx.max(1) < len(t))
    if not ok.all():
        bad = np.flatnonzero(~ok)
        if incomplete == "raise":
            raise IntervalError(f"{len(bad)} event(s) (first at {ev[bad[0]]:.4g} s) have windows {window} that run past "
                                f"the recording ({t[0]:.4g}..{t[-1]:.4g} s); narrow the window or pass incomplete='drop'")
    X = rec.data.detach().cpu().numpy()[idx[ok]]  # (trial, time, unit)
    rel = offsets * dt
    if baseline is not None:
        b0, b1 = (float(b) for b in baseline)
        in_base = (rel >= b0 - 1e-9 * dt) & (rel <= b1 + 1e-9 * dt)
        if not in_base.any():
            raise IntervalError(f"baseline {baseline} holds no sample of the window {window}")
        X = X - X[:, in_base].mean(1, keepdims=True)
    meta = labels.iloc[np.flatnonzero(ok)].reset_index(drop=True)
    sample = pd.concat([pd.DataFrame({"trial": np.flatnonzero(ok), "event_time": ev[ok]}), meta], axis=1)
    attrs = {**rec.attrs, "dt": dt, "epochs": {"window": [lo, hi], "baseline": list(baseline) if baseline else None}}
    if not ok.all():
        attrs["dropped_events"] = ev[~ok].tolist()
    coords = {"sample": sample, "time": pd.DataFrame({"time": rel}), "unit": rec.coords[rec.dims[1]]}
    return Activations(torch.from_numpy(np.ascontiguousarray(X)), ("sample", "time", "unit"), coords, attrs)


def _as_intervals(value: Any) -> IntervalSet:
    """An IntervalSet from an IntervalSet, a DataFrame with start/end columns or ``(starts, ends)``."""
    if isinstance(value, IntervalSet):
        return value
    if isinstance(value, pd.DataFrame):
        return IntervalSet.from_frame(value)
    if isinstance(value, Sequence) and len(value) == 2:
        return IntervalSet(value[0], value[1])
    raise ConfigError(f"intervals must be an IntervalSet, a table with start/end columns or (starts, ends); "
                      f"got {type(value).__name__}")
