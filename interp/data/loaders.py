"""Generic loaders: NumPy, CSV, parquet, local Hugging Face datasets, NWB, and the homogenized C. elegans schema.

Every loader returns :class:`interp.Activations` with ``attrs["kind"] == "recording"`` (override with
``attrs=``) and checks the values with :meth:`Activations.check_finite` (``nan_policy="raise"`` by
default: NaNs are counted in a :class:`interp.NaNError`; ``"drop"`` drops the units that hold them).

Example
-------
>>> import numpy as np
>>> from interp.data.loaders import from_numpy
>>> rec = from_numpy(np.zeros((10, 3), dtype=np.float32), coords={"unit": {"name": ["a", "b", "c"]}})
>>> rec.dims
('sample', 'unit')

The homogenized C. elegans format
---------------------------------
Simeon Q, Kashyap A, Kording KP, Boyden ES (2024). Homogenized C. elegans neural activity and
connectivity data. arXiv:2411.12091. One parquet row per worm x neuron; neurons named and ordered
canonically (``slot`` = position in the 302 hermaphrodite neurons); traces resampled to a common
``median_dt``. Columns written here (those of the published parquet, plus ``original_median_dt``/
``median_dt``): ``source_dataset``, ``raw_data_file``, ``worm``, ``neuron``, ``slot``,
``is_labeled_neuron``, ``is_unlabeled_neuron``, ``smooth_method``, ``interpolate_method``,
``original_calcium_data``, ``calcium_data`` (float32 lists), ``original_time_in_seconds``,
``time_in_seconds`` (float32 lists), ``original_median_dt``, ``median_dt``, ``original_max_timesteps``,
``max_timesteps``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..errors import ConfigError, DataNotFoundError, DimensionError, InputTypeError, SchemaError, require
from ..tensor import Activations, atomic_write
from ._common import check_choice, check_positive, require_file

__all__ = [
    "from_numpy", "load_array", "load_csv", "load_parquet", "load_hf_dataset", "load_nwb",
    "write_homogenized_celegans", "load_homogenized_celegans", "HOMOGENIZED_COLUMNS",
]

_NAN_POLICIES = ("raise", "drop", "zero", "ignore")
_DEFAULT_DIMS = {1: ("sample",), 2: ("sample", "unit"), 3: ("sample", "time", "unit")}


def _attrs(path: str | os.PathLike | None, attrs: Mapping[str, Any] | None, fmt: str) -> dict[str, Any]:
    base: dict[str, Any] = {"kind": "recording", "format": fmt}
    if path is not None:
        base.update(source=Path(path).stem, path=str(path))
    base.update(dict(attrs or {}))
    return base


def _finish(acts: Activations, nan_policy: str) -> Activations:
    check_choice("nan_policy", nan_policy, _NAN_POLICIES)
    return acts.check_finite(nan_policy, dim="unit" if "unit" in acts.dims else acts.dims[-1])


# ----------------------------------------------------------------------------------------- numpy
def from_numpy(array: np.ndarray, dims: Sequence[str] | None = None, coords: Mapping[str, Any] | None = None,
               attrs: Mapping[str, Any] | None = None, *, nan_policy: str = "raise") -> Activations:
    """Wrap a NumPy array as a recording.

    ``dims`` defaults to ``("sample",)``, ``("sample", "unit")`` or ``("sample", "time", "unit")`` for
    1-, 2- and 3-D arrays; other ranks need explicit dims.
    """
    if not isinstance(array, np.ndarray):
        raise InputTypeError(f"from_numpy expects a numpy.ndarray, got {type(array).__name__}")
    if dims is None:
        if array.ndim not in _DEFAULT_DIMS:
            raise DimensionError(f"a {array.ndim}-D array needs explicit dims (defaults exist for 1-3 D)")
        dims = _DEFAULT_DIMS[array.ndim]
    acts = Activations.from_numpy(array, dims, coords, _attrs(None, {"source": "array", **dict(attrs or {})}, "numpy"))
    return _finish(acts, nan_policy)


def load_array(path: str | os.PathLike, key: str | None = None, dims: Sequence[str] | None = None,
               coords: Mapping[str, Any] | None = None, attrs: Mapping[str, Any] | None = None, *,
               nan_policy: str = "raise") -> Activations:
    """Load a ``.npy`` or ``.npz`` file.

    For ``.npz``, ``key`` names the array (default: the only array, or one called ``data``, ``values``
    or ``X``); the other arrays of the archive whose name is ``"<dim>.<coord>"`` (e.g.
    ``"sample.stimulus"``) become coordinates.
    """
    path = require_file(path, "array file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        array = np.load(path, allow_pickle=False)
        extra: dict[str, np.ndarray] = {}
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            data_names = [n for n in names if "." not in n]
            if key is None:
                preferred = [n for n in ("data", "values", "X") if n in data_names]
                if len(data_names) == 1:
                    key = data_names[0]
                elif preferred:
                    key = preferred[0]
                else:
                    raise ConfigError(f"{path} holds several arrays {names}; pass key=... to choose one")
            if key not in names:
                raise ConfigError(f"{path} has no array {key!r}; it has {names}")
            array = archive[key]
            extra = {n: archive[n] for n in names if "." in n}
    else:
        raise ConfigError(f"load_array reads .npy or .npz files, got {path.name!r}")
    if dims is None:
        dims = _DEFAULT_DIMS.get(array.ndim)
        if dims is None:
            raise DimensionError(f"{path} holds a {array.ndim}-D array; pass dims=...")
    merged: dict[str, dict[str, Any]] = {}
    for name, values in extra.items():
        dim, coord = name.split(".", 1)
        if dim not in dims:
            raise DimensionError(f"{path}: coordinate array {name!r} names dim {dim!r}, not one of {tuple(dims)}")
        merged.setdefault(dim, {})[coord] = values
    for dim, given in dict(coords or {}).items():
        merged.setdefault(dim, {}).update(dict(given) if not isinstance(given, pd.DataFrame) else given.to_dict("list"))
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    acts = Activations(tensor, dims, merged, _attrs(path, attrs, suffix[1:]))
    return _finish(acts, nan_policy)


# ------------------------------------------------------------------------------------ tables
def _from_table(frame: pd.DataFrame, path, unit_columns, sample, value_column, attrs, nan_policy, fmt) -> Activations:
    if value_column is None and "values" in frame.columns and frame["values"].map(np.ndim).gt(0).all():
        value_column = "values"
    if value_column is not None:
        if value_column not in frame.columns:
            raise ConfigError(f"no column {value_column!r}; columns are {list(frame.columns)}")
        values = np.stack([np.asarray(v, dtype=np.float32) for v in frame[value_column]])
        meta = frame.drop(columns=[value_column]).reset_index(drop=True)
        if sample is not None:
            meta = meta.rename(columns={sample: "id"})
        dims = ("sample", "unit") if values.ndim == 2 else ("sample", *[f"dim_{i}" for i in range(1, values.ndim - 1)], "unit")
        acts = Activations(torch.from_numpy(values), dims, {"sample": meta}, _attrs(path, attrs, fmt))
        return _finish(acts, nan_policy)
    if unit_columns is not None:
        missing = [c for c in unit_columns if c not in frame.columns]
        if missing:
            raise ConfigError(f"unit columns {missing} are not in the table; columns are {list(frame.columns)}")
    if sample is not None and sample not in frame.columns:
        raise ConfigError(f"sample id column {sample!r} is not in the table; columns are {list(frame.columns)}")
    acts = Activations.from_frame(frame, sample=sample, unit_columns=unit_columns, attrs=_attrs(path, attrs, fmt))
    return _finish(acts, nan_policy)


def load_csv(path: str | os.PathLike, unit_columns: Sequence[str] | None = None, sample: str | None = None,
             attrs: Mapping[str, Any] | None = None, *, nan_policy: str = "raise", **read_csv: Any) -> Activations:
    """Load a wide CSV table: one row per sample, numeric ``unit_columns`` (default: every numeric column
    except ``sample``) become units, the other columns become sample coordinates (``sample`` is renamed
    ``id``). Extra keyword arguments go to :func:`pandas.read_csv`.
    """
    path = require_file(path, "CSV file")
    return _from_table(pd.read_csv(path, **read_csv), path, unit_columns, sample, None, attrs, nan_policy, "csv")


def load_parquet(path: str | os.PathLike, unit_columns: Sequence[str] | None = None, sample: str | None = None,
                 value_column: str | None = None, attrs: Mapping[str, Any] | None = None, *,
                 nan_policy: str = "raise", columns: Sequence[str] | None = None) -> Activations:
    """Load a parquet table: wide (like :func:`load_csv`) or with one list/array column ``value_column``
    (default ``"values"`` when present) holding each sample's vector."""
    path = require_file(path, "parquet file")
    frame = pd.read_parquet(path, columns=list(columns) if columns is not None else None)
    return _from_table(frame, path, unit_columns, sample, value_column, attrs, nan_policy, "parquet")


# --------------------------------------------------------------------------- Hugging Face datasets
def load_hf_dataset(path: str | os.PathLike, split: str | None = None, value_column: str | None = None,
                    unit_columns: Sequence[str] | None = None, attrs: Mapping[str, Any] | None = None, *,
                    nan_policy: str = "raise") -> Activations:
    """Load a Hugging Face dataset saved on disk (:func:`datasets.load_from_disk`).

    A dataset written by :meth:`Activations.to_dataset` comes back with its dims, coords and attrs.
    Otherwise ``value_column`` (a list/array column) or the numeric ``unit_columns`` become units and the
    remaining columns become sample coordinates. A hub name (``"user/name"``) cannot be fetched offline
    and raises :class:`DataNotFoundError` saying how to get a local copy.
    """
    datasets = require("datasets", "datasets", extra="data")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataNotFoundError(
            f"{str(path)!r} is not a local dataset folder. Hub datasets cannot be downloaded here (offline); "
            f"on a machine with internet run datasets.load_dataset({str(path)!r}).save_to_disk(FOLDER) and pass FOLDER."
        )
    try:
        ds = datasets.load_from_disk(str(folder))
    except FileNotFoundError as exc:
        raise DataNotFoundError(f"{folder} is not a dataset saved with save_to_disk: {exc}") from exc
    if isinstance(ds, datasets.DatasetDict):
        splits = list(ds)
        if split is None and len(splits) == 1:
            split = splits[0]
        if split is None:
            raise ConfigError(f"{folder} has splits {splits}; pass split=...")
        check_choice("split", split, splits)
        ds = ds[split]
    elif split is not None:
        raise ConfigError(f"{folder} is a single Dataset without splits; drop split={split!r}")
    if '"dims"' in (ds.info.description or ""):
        acts = Activations.from_dataset(ds)
        acts.attrs = {**acts.attrs, **dict(attrs or {})}
        return _finish(acts, nan_policy)
    frame = ds.to_pandas()
    return _from_table(frame, folder, unit_columns, None, value_column, attrs, nan_policy, "hf-dataset")


# ---------------------------------------------------------------------------------------- NWB
def load_nwb(path: str | os.PathLike, series: str | None = None, *, bin_size: float | None = None,
             attrs: Mapping[str, Any] | None = None, nan_policy: str = "raise") -> Activations:
    """Load one time series or the spike-sorted units of an NWB file (needs ``pynwb``: ``pip install pynwb``).

    ``series`` names a ``TimeSeries`` in ``acquisition`` or a processing module (searched by name,
    ``"module/name"`` also accepted), or ``"units"`` for the units table binned at ``bin_size`` seconds.
    With ``series=None`` the file's only time series is used; several raise :class:`ConfigError`
    listing them. Time series become ``(sample, unit)`` with sample coord ``time`` (s); units become
    spike counts with unit coords from the units table's scalar columns.
    """
    pynwb = require("pynwb", "pynwb", extra="nwb")
    path = require_file(path, "NWB file")
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
                from ..errors import closest

                hint = closest(series, names)
                raise ConfigError(f"no series {series!r} in {path}; available: {names}"
                                  + (f" (did you mean {hint[0]!r}?)" if hint else ""))
            acts = _nwb_timeseries(found[key], key)
    acts.attrs = {**_attrs(path, None, "nwb"), **acts.attrs, **dict(attrs or {})}
    return _finish(acts, nan_policy)


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
    else:
        time = float(ts.starting_time or 0.0) + np.arange(len(data)) / float(ts.rate)
    names = [f"{ts.name}[{i}]" for i in range(data.shape[1])]
    electrodes = getattr(ts, "electrodes", None)
    if electrodes is not None:
        table = electrodes.to_dataframe()
        for col in ("label", "location"):
            if col in table.columns and table[col].astype(str).is_unique:
                names = table[col].astype(str).tolist()
                break
    dt = float(np.median(np.diff(time))) if len(time) > 1 else float("nan")
    attrs = {"series": key, "units": getattr(ts, "unit", ""), "dt": dt, "sfreq": 1.0 / dt if dt == dt and dt else None,
             "description": getattr(ts, "description", "")}
    return Activations(torch.from_numpy(np.ascontiguousarray(data.astype(np.float32))), ("sample", "unit"),
                       {"sample": {"time": time}, "unit": {"name": names, "index": np.arange(data.shape[1])}}, attrs)


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


# ------------------------------------------------------------------- homogenized C. elegans
HOMOGENIZED_COLUMNS = (
    "source_dataset", "raw_data_file", "worm", "neuron", "slot", "is_labeled_neuron", "is_unlabeled_neuron",
    "smooth_method", "interpolate_method", "original_calcium_data", "calcium_data", "original_time_in_seconds",
    "time_in_seconds", "original_median_dt", "median_dt", "original_max_timesteps", "max_timesteps",
)
_REQUIRED = ("source_dataset", "worm", "neuron", "calcium_data", "time_in_seconds")


def write_homogenized_celegans(worms: Sequence[Activations], path: str | os.PathLike, *, dt: float | None = None,
                               source_dataset: str = "Dag2023", include_unlabeled: bool = False) -> Path:
    """Write worms (e.g. from :func:`interp.data.load_celegans`) in the homogenized C. elegans parquet schema.

    Each worm must be ``(sample, unit)`` with a sample coordinate ``time`` (s) and unit coordinate
    ``name``. Identified neurons (canonical names, see :func:`interp.data.celegans.canonical_name`) are
    written in canonical order with ``slot`` = their index among the 302 neurons; when a neuron occurs
    twice in a worm the trace with the higher ``confidence`` is kept. With ``include_unlabeled`` the
    other traces follow with ``is_unlabeled_neuron=True``, their own name and ``slot`` = 302 + index.
    Traces are linearly resampled to a common grid ``0, dt, 2 dt, ...`` (``dt`` defaults to the
    median of the worms' ``attrs["dt"]``). Worms are named ``worm0``, ``worm1``, ... in the given order.
    The file is written atomically; returns its path.
    """
    from .celegans import canonical_name, canonical_neurons

    if isinstance(worms, Activations):
        worms = [worms]
    if not worms or not all(isinstance(w, Activations) for w in worms):
        raise InputTypeError("write_homogenized_celegans expects a non-empty list of Activations (one per worm)")
    for i, worm in enumerate(worms):
        if worm.dims != ("sample", "unit"):
            raise DimensionError(f"worm {i} has dims {worm.dims}; expected ('sample', 'unit')")
        if "time" not in worm.coords["sample"].columns or "name" not in worm.coords["unit"].columns:
            raise SchemaError(f"worm {i} needs a sample coordinate 'time' and a unit coordinate 'name'")
    if dt is None:
        dts = [float(w.attrs.get("dt", np.median(np.diff(w.coord("time"))))) for w in worms]
        dt = float(np.median(dts))
    dt = check_positive("dt", dt)
    slots = {name: i for i, name in enumerate(canonical_neurons())}
    rows: list[dict[str, Any]] = []
    for w_index, worm in enumerate(worms):
        rows.extend(_worm_rows(worm, f"worm{w_index}", dt, slots, canonical_name, source_dataset, include_unlabeled))
    table = pd.DataFrame(rows, columns=list(HOMOGENIZED_COLUMNS))
    path = Path(path)
    atomic_write(path, lambda tmp: table.to_parquet(tmp, index=False, engine="pyarrow"))
    return path


def _worm_rows(worm: Activations, worm_name: str, dt: float, slots: dict[str, int], canonical_name,
               source_dataset: str, include_unlabeled: bool) -> list[dict[str, Any]]:
    time = worm.coord("time").astype(np.float64)
    time = time - time[0]
    grid = np.arange(0.0, time[-1] + 1e-9, dt)
    traces = worm.numpy().astype(np.float64)
    units = worm.coords["unit"].reset_index(drop=True)
    confidence = units["confidence"].to_numpy(dtype=float) if "confidence" in units else np.zeros(len(units))
    canonical = [canonical_name(n) for n in units["name"]]
    best: dict[str, int] = {}
    for j, name in enumerate(canonical):
        if name and (name not in best or np.nan_to_num(confidence[j], nan=-1) > np.nan_to_num(confidence[best[name]], nan=-1)):
            best[name] = j
    order = [(slots[n], n, j, True) for n, j in best.items()]
    if include_unlabeled:
        order += [(len(slots) + j, str(units["name"][j]), j, False) for j, n in enumerate(canonical) if not n]
    raw_file = str(worm.attrs.get("path", worm.attrs.get("worm", worm_name)))
    rows = []
    for slot, name, j, labeled in sorted(order):
        rows.append({
            "source_dataset": source_dataset, "raw_data_file": os.path.basename(raw_file), "worm": worm_name,
            "neuron": name, "slot": int(slot), "is_labeled_neuron": labeled, "is_unlabeled_neuron": not labeled,
            "smooth_method": "no smoothing", "interpolate_method": "linear",
            "original_calcium_data": traces[:, j].astype(np.float32),
            "calcium_data": np.interp(grid, time, traces[:, j]).astype(np.float32),
            "original_time_in_seconds": time.astype(np.float32), "time_in_seconds": grid.astype(np.float32),
            "original_median_dt": np.float32(np.median(np.diff(time))), "median_dt": np.float32(dt),
            "original_max_timesteps": np.int32(len(time)), "max_timesteps": np.int32(len(grid)),
        })
    return rows


def load_homogenized_celegans(path: str | os.PathLike, *, value: str = "calcium_data",
                              worms: Sequence[str] | None = None, source_dataset: str | Sequence[str] | None = None,
                              canonical: bool = False, nan_policy: str = "raise") -> list[Activations]:
    """Read a homogenized C. elegans parquet file (or a folder of parquet shards): one Activations per worm.

    Parameters
    ----------
    value:
        The trace column: ``"calcium_data"`` (resampled, default) or ``"original_calcium_data"`` (with
        ``original_time_in_seconds``), or any other list column of the same length per worm.
    worms, source_dataset:
        Keep only these worms / source data sets.
    canonical:
        Return all 302 canonical neurons in canonical order for every worm, with NaN traces (and
        ``recorded=False``) for neurons the worm did not record. NaN handling (``nan_policy``) applies to
        the recorded traces before padding.

    Returns
    -------
    list of Activations
        ``(sample, unit)`` float32 per worm in file order; sample coords ``time`` (s); unit coords ``name``
        (the ``neuron`` column), ``slot``, ``is_labeled_neuron`` (and ``recorded`` when ``canonical``);
        attrs ``source_dataset``, ``worm``, ``dt`` (``median_dt``), ``kind`` "recording".
    """
    path = require_file(path, "homogenized C. elegans parquet")
    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    if not files:
        raise DataNotFoundError(f"no .parquet files in {path}")
    table = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    missing = [c for c in _REQUIRED if c not in table.columns]
    if missing:
        raise SchemaError(f"{path} is not in the homogenized C. elegans schema: missing columns {missing}; "
                          f"it has {list(table.columns)}")
    if value not in table.columns:
        raise ConfigError(f"no trace column {value!r}; list columns are "
                          f"{[c for c in table.columns if table[c].map(np.ndim).gt(0).all()]}")
    check_choice("nan_policy", nan_policy, _NAN_POLICIES)
    time_column = "original_time_in_seconds" if value.startswith("original_") and "original_time_in_seconds" in table else "time_in_seconds"
    if source_dataset is not None:
        wanted = [source_dataset] if isinstance(source_dataset, str) else list(source_dataset)
        table = table[table["source_dataset"].isin(wanted)]
    if worms is not None:
        table = table[table["worm"].isin(list(worms))]
    if table.empty:
        raise ConfigError(f"no rows left after selecting worms={worms}, source_dataset={source_dataset}")
    out = []
    for (dataset, worm), rows in table.groupby(["source_dataset", "worm"], sort=False):
        out.append(_homogenized_worm(rows, dataset, worm, value, time_column, canonical, nan_policy, path))
    return out


def _homogenized_worm(rows: pd.DataFrame, dataset: str, worm: str, value: str, time_column: str, canonical: bool,
                      nan_policy: str, path: Path) -> Activations:
    lengths = rows[value].map(len)
    if lengths.nunique() != 1:
        raise SchemaError(f"{dataset}/{worm}: {value} has different lengths across neurons ({sorted(lengths.unique())})")
    traces = np.stack([np.asarray(v, dtype=np.float32) for v in rows[value]], axis=1)
    time = np.asarray(rows[time_column].iloc[0], dtype=np.float64)
    if len(time) != traces.shape[0]:
        raise SchemaError(f"{dataset}/{worm}: {time_column} has {len(time)} values but {value} has {traces.shape[0]}")
    unit = pd.DataFrame({"name": rows["neuron"].astype(str).to_numpy()})
    for col in ("slot", "is_labeled_neuron"):
        if col in rows:
            unit[col] = rows[col].to_numpy()
    dt_col = "original_median_dt" if value.startswith("original_") else "median_dt"
    dt = float(rows[dt_col].iloc[0]) if dt_col in rows else float(np.median(np.diff(time)))
    attrs = {"source": "homogenized-celegans", "kind": "recording", "source_dataset": dataset, "worm": worm,
             "dt": dt, "units": value, "path": str(path),
             "citation": "Simeon Q, Kashyap A, Kording KP, Boyden ES (2024). Homogenized C. elegans neural activity "
                         "and connectivity data. arXiv:2411.12091"}
    if "raw_data_file" in rows:
        attrs["raw_data_file"] = str(rows["raw_data_file"].iloc[0])
    acts = Activations(torch.from_numpy(traces), ("sample", "unit"), {"sample": {"time": time}, "unit": unit}, attrs)
    acts = acts.check_finite(nan_policy, dim="unit")
    if not canonical:
        return acts
    from .celegans import canonical_neurons

    names = canonical_neurons()
    padded = np.full((acts.shape[0], len(names)), np.nan, dtype=np.float32)
    where = {n: i for i, n in enumerate(acts.coord("name"))}
    recorded = np.array([n in where for n in names])
    for i, n in enumerate(names):
        if n in where:
            padded[:, i] = acts.data[:, where[n]].numpy()
    unit = pd.DataFrame({"name": names, "slot": np.arange(len(names)), "recorded": recorded})
    return Activations(torch.from_numpy(padded), ("sample", "unit"), {"sample": acts.coords["sample"], "unit": unit},
                       acts.attrs)
