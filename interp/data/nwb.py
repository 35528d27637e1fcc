"""Neurodata Without Borders (NWB) files: one time series or the spike-sorted units, with trials and ROI positions.

Example
-------
>>> rec = interp.data.load_nwb("session.nwb", series="Fluorescence/RoiResponseSeries")  # doctest: +SKIP
>>> rec.coords["sample"][["time", "trial"]].head()                                    # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..errors import ConfigError, DimensionError, SchemaError, closest, require
from ..tensor import Activations
from ._common import check_choice, check_positive, require_file
from ._recording import NAN_POLICIES, RecordingShapeError, recording_attrs
from .intervals import IntervalSet, restrict

__all__ = ["load_nwb", "nwb_intervals"]


def load_nwb(path: str | os.PathLike, series: str | None = None, *, bin_size: float | None = None,
             intervals: str | None = "trials", attrs: Mapping[str, Any] | None = None,
             nan_policy: str = "raise") -> Activations:
    """Load one time series or the spike-sorted units of an NWB file (needs ``pynwb``: ``pip install pynwb``).

    ``series`` names a ``TimeSeries`` in ``acquisition`` or a processing module (searched by name,
    ``"module/name"`` also accepted), or ``"units"`` for the units table binned at ``bin_size`` seconds.
    With ``series=None`` the file's only time series is used; several raise :class:`ConfigError`
    listing them.

    Returns ``(sample, unit)`` with sample coordinate ``time`` (s). Time series keep their values
    (float32); units become spike counts per bin with unit coordinates from the units table's scalar
    columns. ``intervals`` names an interval table of the file (default ``"trials"``; also ``"epochs"``
    or any table in ``nwb.intervals``): when the file has it, the recording is restricted to the samples
    inside its intervals (:func:`interp.data.intervals.restrict`): each sample gets a ``trial``
    coordinate (the row of the interval whose ``[start_time, stop_time)`` holds it) and the table's
    scalar columns (a column whose name is taken gets a ``trial_`` prefix); samples between trials are
    excluded (``attrs["intervals"]`` counts them), never a trial of their own. ``intervals=None`` keeps
    every sample without trial coordinates (:func:`nwb_intervals` reads the table). ROI series (``RoiResponseSeries``) get unit coordinates ``x``, ``y`` (and ``z``): the
    centroid of each ROI's image or pixel mask, in pixels.

    Raises :class:`RecordingShapeError` when a series' timestamps match its second axis rather than its
    first (data written as channels x time, against the NWB convention).

    Parameters
    ----------
    path : str or os.PathLike
        The NWB file.
    series : str, optional
        A time series name (or ``"module/name"``), or ``"units"``; None: the file's only series.
    bin_size : float, optional
        Bin width in seconds; required (positive) for ``series="units"``.
    intervals : str or None, optional
        Interval table to restrict the samples to (default ``"trials"``, used only when the file has it);
        None keeps every sample.
    attrs : mapping, optional
        Extra attrs, merged over the file's.
    nan_policy : str, optional
        ``"raise"`` (default), ``"drop"``, ``"zero"`` or ``"ignore"``.

    Example
    -------
    >>> units = load_nwb("session.nwb", series="units", bin_size=0.02)   # doctest: +SKIP
    """
    pynwb = require("pynwb", "pynwb", extra="nwb")
    path = require_file(path, "NWB file")
    check_choice("nan_policy", nan_policy, NAN_POLICIES)
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        found = _nwb_series(nwb, pynwb)
        names = sorted(found) + (["units"] if nwb.units is not None else [])
        if series is None:
            if len(names) != 1:
                raise ConfigError(f"{path} holds {names or 'no time series'}; pass series=... to choose one")
            series = names[0]
        if series == "units":
            if nwb.units is None:
                raise ConfigError(f"{path} has no units table; time series: {sorted(found)}")
            acts = _nwb_units(nwb.units, check_positive("bin_size", bin_size if bin_size is not None else 0))
        else:
            key = series if series in found else next((k for k in found if k.split("/")[-1] == series), None)
            if key is None:
                hint = closest(series, names)
                raise ConfigError(f"no series {series!r} in {path}; available: {names}"
                                  + (f" (did you mean {hint[0]!r}?)" if hint else ""))
            acts = _nwb_timeseries(found[key], key)
        table = _interval_table(nwb, intervals, path) if intervals is not None else None
    acts.attrs = {**recording_attrs(path, None, "nwb"), **acts.attrs, **dict(attrs or {})}
    if table is not None and len(table):
        acts = restrict(acts, IntervalSet.from_frame(table))
        acts.attrs["intervals"]["table"] = intervals
    return acts.check_finite(nan_policy, dim="unit")


def _interval_table(nwb, name: str, path) -> pd.DataFrame | None:
    """The interval table ``name`` (trials, epochs, or one of ``nwb.intervals``) as a DataFrame, or None when
    the file has none of that name (an explicit name other than 'trials' that is missing is an error)."""
    table = getattr(nwb, name, None) if name in ("trials", "epochs", "invalid_times") else None
    if table is None:
        found = dict(getattr(nwb, "intervals", {}) or {})
        table = found.get(name)
        if table is None:
            if name == "trials":
                return None
            raise ConfigError(f"{path} has no interval table {name!r}; it has {sorted(found) or 'none'}")
    return table.to_dataframe()


def nwb_intervals(path: str | os.PathLike, name: str = "trials") -> IntervalSet:
    """The interval table ``name`` of an NWB file (trials, epochs...) as an :class:`IntervalSet`.

    Parameters
    ----------
    path : str or os.PathLike
        The NWB file.
    name : str, optional
        The interval table (default ``"trials"``); a missing table raises :class:`ConfigError`.
    """
    pynwb = require("pynwb", "pynwb", extra="nwb")
    path = require_file(path, "NWB file")
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        table = _interval_table(io.read(), name, path)
    if table is None:
        raise ConfigError(f"{path} has no {name} table")
    return IntervalSet.from_frame(table)


def _nwb_series(nwb, pynwb) -> dict[str, Any]:
    found = {name: obj for name, obj in nwb.acquisition.items() if isinstance(obj, pynwb.base.TimeSeries)}
    for module_name, module in nwb.processing.items():
        for iface_name, iface in module.data_interfaces.items():
            if isinstance(iface, pynwb.base.TimeSeries):
                found[f"{module_name}/{iface_name}"] = iface
            elif hasattr(iface, "roi_response_series") or hasattr(iface, "time_series"):
                inner = getattr(iface, "roi_response_series", None) or getattr(iface, "time_series", {})
                for series_name, ts in inner.items():
                    found[f"{module_name}/{iface_name}/{series_name}"] = ts
    return found


def _nwb_timeseries(ts, key: str) -> Activations:
    data = np.asarray(ts.data[()])
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2:
        raise DimensionError(f"NWB series {key!r} has {data.ndim} dims; only (time, channels) series are supported")
    if ts.timestamps is not None:
        time = np.asarray(ts.timestamps[()], dtype=np.float64)
        if len(time) != data.shape[0]:
            hint = (" but matches its second axis: the data were written channels x time, NWB stores time x channels"
                    if len(time) == data.shape[1] else "")
            raise RecordingShapeError(f"NWB series {key!r}: {len(time)} timestamps for data of shape {data.shape}"
                                      f"{hint}; fix the file (or read ts.data yourself and use from_numpy)")
    else:
        time = float(ts.starting_time or 0.0) + np.arange(len(data)) / float(ts.rate)
    unit = pd.DataFrame({"name": [f"{ts.name}[{i}]" for i in range(data.shape[1])], "index": np.arange(data.shape[1])})
    electrodes = getattr(ts, "electrodes", None)
    if electrodes is not None:
        table = electrodes.to_dataframe()
        for col in ("label", "location"):
            if col in table.columns and table[col].astype(str).is_unique:
                unit["name"] = table[col].astype(str).tolist()
                break
    rois = getattr(ts, "rois", None)
    if rois is not None:
        positions = _roi_centroids(rois)
        if positions is not None and len(positions) == data.shape[1]:
            for axis, column in zip("xyz", positions.T):
                unit[axis] = column
    dt = float(np.median(np.diff(time))) if len(time) > 1 else float("nan")
    attrs = {"series": key, "units": getattr(ts, "unit", ""), "dt": dt, "sfreq": 1.0 / dt if dt == dt and dt else None,
             "description": getattr(ts, "description", "")}
    return Activations(torch.from_numpy(np.ascontiguousarray(data.astype(np.float32))), ("sample", "unit"),
                       {"sample": {"time": time}, "unit": unit}, attrs)


def _roi_centroids(rois) -> np.ndarray | None:
    """Centroid (x, y[, z]) of each ROI of a DynamicTableRegion into a PlaneSegmentation, or None."""
    table = rois.table
    rows = np.asarray(rois.data[()])
    names = set(table.colnames)
    if "image_mask" in names:
        out = []
        for r in rows:
            mask = np.asarray(table["image_mask"][int(r)], dtype=np.float64)
            grids = np.meshgrid(*[np.arange(n) for n in mask.shape], indexing="ij")
            total = mask.sum()
            # image_mask is (x, y[, z]) in NWB (PlaneSegmentation docs: "x, y" pixel order)
            out.append([float((g * mask).sum() / total) if total else np.nan for g in grids])
        return np.asarray(out)
    for column, width in (("pixel_mask", 2), ("voxel_mask", 3)):
        if column in names:
            out = []
            for r in rows:
                mask = table[column][int(r)]
                coords = np.array([[m[i] for i in range(width)] for m in mask], dtype=np.float64)
                weight = np.array([m[width] for m in mask], dtype=np.float64)
                out.append(coords.T @ weight / weight.sum() if weight.sum() else [np.nan] * width)
            return np.asarray(out)
    return None


def _nwb_units(units, bin_size: float) -> Activations:
    from .formats import from_spike_times

    table = units.to_dataframe()
    if not any(len(t) for t in table["spike_times"]):
        raise SchemaError("the NWB units table has no spikes")
    extra = {col: table[col].to_numpy() for col in table.columns
             if col != "spike_times" and table[col].map(np.ndim).eq(0).all()}
    named = next((c for c in ("unit_name", "name", "label") if c in extra), None)  # the lab's own unit names
    names = [str(v) for v in extra[named]] if named else [str(i) for i in table.index]
    acts = from_spike_times(list(table["spike_times"]), bin_size, names=names, unit_coords=extra)
    acts.attrs = {"series": "units", "dt": bin_size, "units": "spike count per bin"}
    return acts
