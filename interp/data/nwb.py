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

__all__ = ["load_nwb"]


def load_nwb(path: str | os.PathLike, series: str | None = None, *, bin_size: float | None = None,
             attrs: Mapping[str, Any] | None = None, nan_policy: str = "raise") -> Activations:
    """Load one time series or the spike-sorted units of an NWB file (needs ``pynwb``: ``pip install pynwb``).

    ``series`` names a ``TimeSeries`` in ``acquisition`` or a processing module (searched by name,
    ``"module/name"`` also accepted), or ``"units"`` for the units table binned at ``bin_size`` seconds.
    With ``series=None`` the file's only time series is used; several raise :class:`ConfigError`
    listing them.

    Returns ``(sample, unit)`` with sample coordinate ``time`` (s). Time series keep their values
    (float32); units become spike counts per bin with unit coordinates from the units table's scalar
    columns. When the file has a trials table, every sample gets a ``trial`` coordinate (the row of the
    trial whose ``[start_time, stop_time)`` holds it, ``-1`` between trials) and the trials table's
    scalar columns (``NaN``/``None`` between trials; a column whose name is taken gets a ``trial_``
    prefix). ROI series (``RoiResponseSeries``) get unit coordinates ``x``, ``y`` (and ``z``): the
    centroid of each ROI's image or pixel mask, in pixels.

    Raises :class:`RecordingShapeError` when a series' timestamps match its second axis rather than its
    first (data written as channels x time, against the NWB convention).

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
        trials = nwb.trials.to_dataframe() if getattr(nwb, "trials", None) is not None else None
    if trials is not None and len(trials):
        acts.coords["sample"] = _with_trials(acts.coords["sample"], trials)
    acts.attrs = {**recording_attrs(path, None, "nwb"), **acts.attrs, **dict(attrs or {})}
    return acts.check_finite(nan_policy, dim="unit")


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


def _with_trials(sample: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """Per-sample trial id (-1 outside trials) and the trials table's scalar columns."""
    if "time" not in sample.columns:
        return sample
    if not {"start_time", "stop_time"} <= set(trials.columns):
        raise SchemaError(f"the NWB trials table has no start_time/stop_time columns; it has {list(trials.columns)}")
    time = sample["time"].to_numpy(dtype=np.float64)
    start = trials["start_time"].to_numpy(dtype=np.float64)
    stop = trials["stop_time"].to_numpy(dtype=np.float64)
    order = np.argsort(start, kind="stable")
    pos = np.searchsorted(start[order], time, side="right") - 1
    row = np.where(pos >= 0, order[np.clip(pos, 0, None)], -1)
    inside = (row >= 0) & (time < stop[np.clip(row, 0, None)])
    row = np.where(inside, row, -1)
    out = sample.copy()
    out["trial"] = row
    for col in trials.columns:
        if col in ("start_time", "stop_time") or not trials[col].map(np.ndim).eq(0).all():
            continue
        values = trials[col].to_numpy()
        name = col if col not in out.columns else f"trial_{col}"
        filled = pd.Series(values[np.clip(row, 0, None)]).where(row >= 0)
        out[name] = filled.to_numpy()
    return out


def _nwb_units(units, bin_size: float) -> Activations:
    table = units.to_dataframe()
    spikes = [np.sort(np.asarray(t, dtype=np.float64)) for t in table["spike_times"]]
    nonempty = [t for t in spikes if len(t)]
    if not nonempty:
        raise SchemaError("the NWB units table has no spikes")
    first = int(np.floor(min(t[0] for t in nonempty) / bin_size))
    last = int(np.floor(max(t[-1] for t in nonempty) / bin_size)) + 1
    edges = bin_size * np.arange(first, last + 1)  # bins aligned on multiples of bin_size
    counts = np.stack([np.histogram(t, edges)[0] for t in spikes], axis=1).astype(np.float32)
    unit = pd.DataFrame({"name": [str(i) for i in table.index], "index": np.arange(len(table))})
    for col in table.columns:
        if col != "spike_times" and table[col].map(np.ndim).eq(0).all():
            unit[col] = table[col].to_numpy()
    return Activations(torch.from_numpy(counts), ("sample", "unit"),
                       {"sample": {"time": (edges[:-1] + edges[1:]) / 2}, "unit": unit},
                       {"series": "units", "dt": bin_size, "units": "spike count per bin"})
