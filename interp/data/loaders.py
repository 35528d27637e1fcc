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

from ..errors import ConfigError, DataNotFoundError, DimensionError, InputTypeError, SchemaError, closest, require
from ..tensor import Activations, atomic_write
from ._common import check_choice, check_positive, require_file
from ._recording import DEFAULT_DIMS, NAN_POLICIES, RecordingShapeError, build_recording, recording_attrs
from .nwb import load_nwb

__all__ = [
    "from_numpy", "from_xarray", "RecordingShapeError", "load_array", "load_csv", "load_parquet", "load_hf_dataset", "load_nwb",
    "write_homogenized_celegans", "load_homogenized_celegans", "HOMOGENIZED_COLUMNS",
]

_NAN_POLICIES = NAN_POLICIES
_SAMPLE_COLUMNS = ("time", "trial")
_attrs = recording_attrs


def _finish(acts: Activations, nan_policy: str) -> Activations:
    check_choice("nan_policy", nan_policy, _NAN_POLICIES)
    return acts.check_finite(nan_policy, dim="unit" if "unit" in acts.dims else acts.dims[-1])


# ----------------------------------------------------------------------------------- arrays
def from_numpy(array: np.ndarray, dims: Sequence[str] | None = None, coords: Mapping[str, Any] | None = None,
               attrs: Mapping[str, Any] | None = None, *, time: Any = None, trial: Any = None,
               nan_policy: str = "raise") -> Activations:
    """Wrap a NumPy array as a recording, with the checks of :mod:`interp.data._recording`.

    Parameters
    ----------
    array:
        The recorded values, any numeric dtype. Integer and boolean arrays (spike counts, events) are
        cast to float32 (exact up to 2**24; ``attrs["original_dtype"]`` keeps the original).
    dims:
        One name per axis, in the array's order. Defaults: ``("sample",)``, ``("sample", "unit")``,
        ``("sample", "time", "unit")`` for 1-3 D arrays; a 2-D array with more columns than rows needs
        explicit dims (it is ambiguous: a cells x time matrix is ``("unit", "time")``). Besides
        ``sample`` and ``unit`` you may name a ``trial`` axis (it becomes ``sample`` with a ``trial``
        coordinate) and a ``time`` axis (without a sample/trial axis it is the sample axis of a time
        series). The result is always ordered ``(sample, ..., unit)``.
    coords:
        Per-axis metadata ``{dim: {name: values}}`` (or DataFrames), keyed by the names given in ``dims``.
    time:
        Times in seconds of the time axis, or of the samples of a time series; sets ``attrs["dt"]``.
    trial:
        Trial ids: one per sample of a time series cut into trials, or one per trial of a trial axis.
        Trial-aware statistics group on this ``trial`` sample coordinate (``groups="trial"``).
    nan_policy:
        ``"raise"`` (default), ``"drop"`` (drop units holding NaN), ``"zero"`` or ``"ignore"``.

    Raises
    ------
    RecordingShapeError
        A coordinate whose length matches another axis (a transposed array), or a guessed 2-D layout
        with more units than samples.

    Example
    -------
    >>> import numpy as np
    >>> cells_by_time = np.random.rand(5, 200)                     # 5 cells, 200 frames at 10 Hz
    >>> rec = from_numpy(cells_by_time, dims=("unit", "time"), time=np.arange(200) / 10)
    >>> rec.dims, rec.shape, rec.attrs["dt"]
    (('sample', 'unit'), (200, 5), 0.1)
    """
    if not isinstance(array, np.ndarray):
        raise InputTypeError(f"from_numpy expects a numpy.ndarray, got {type(array).__name__}")
    return build_recording(array, dims, coords, recording_attrs(None, {"source": "array", **dict(attrs or {})}, "numpy"),
                           time=time, trial=trial, nan_policy=nan_policy)


def from_xarray(array: Any, dims: Mapping[str, str] | None = None, *, variable: str | None = None,
                time: Any = None, trial: Any = None, attrs: Mapping[str, Any] | None = None,
                nan_policy: str = "raise") -> Activations:
    """Wrap an :class:`xarray.DataArray` (or one variable of a ``Dataset``) as a recording.

    ``dims`` renames axes, e.g. ``{"neuron": "unit", "frame": "time"}``; after renaming the axes follow
    :func:`from_numpy`'s conventions (``unit``; ``sample``, ``trial`` or ``time``). 1-D coordinates
    become per-axis coordinates (an index coordinate named like its axis, e.g. ``time``, keeps that
    name). ``time``/``trial``/``nan_policy`` as in :func:`from_numpy`.

    Parameters
    ----------
    array : xarray.DataArray or xarray.Dataset
        The data; a Dataset needs ``variable`` unless it holds one variable.
    dims : mapping of str to str, optional
        Renames of the array's axes, ``{old: new}``; every key must be an axis.
    variable : str, optional
        The Dataset variable to read.
    time, trial : array-like, optional
        As in :func:`from_numpy`.
    attrs : mapping, optional
        Extra attrs, merged over the array's own attrs.
    nan_policy : str, optional
        ``"raise"`` (default), ``"drop"``, ``"zero"`` or ``"ignore"``.

    Example
    -------
    >>> import numpy as np, xarray as xr
    >>> da = xr.DataArray(np.random.rand(3, 50), dims=("neuron", "frame"),
    ...                   coords={"frame": np.arange(50) * 0.5, "neuron": ["a", "b", "c"]})
    >>> rec = from_xarray(da, dims={"neuron": "unit", "frame": "time"})
    >>> rec.dims, list(rec.coords["sample"].columns), list(rec.coords["unit"].columns)
    (('sample', 'unit'), ['time'], ['name'])
    """
    xr = require("xarray", "xarray", extra="data")
    if isinstance(array, xr.Dataset):
        names = list(array.data_vars)
        if variable is None:
            if len(names) != 1:
                raise ConfigError(f"the Dataset holds variables {names}; pass variable=... to choose one")
            variable = names[0]
        if variable not in names:
            hint = closest(str(variable), names)
            raise ConfigError(f"no variable {variable!r}; the Dataset holds {names}"
                              + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        array = array[variable]
    elif not isinstance(array, xr.DataArray):
        raise InputTypeError(f"from_xarray expects an xarray.DataArray or Dataset, got {type(array).__name__}")
    rename = {str(k): str(v) for k, v in dict(dims or {}).items()}
    missing = [k for k in rename if k not in array.dims]
    if missing:
        raise DimensionError(f"dims renames {missing}, which are not axes of the array {tuple(array.dims)}")
    new_dims = [rename.get(str(d), str(d)) for d in array.dims]
    coords: dict[str, dict[str, Any]] = {d: {} for d in new_dims}
    for name, coord in array.coords.items():
        if coord.ndim == 1:
            dim = rename.get(str(coord.dims[0]), str(coord.dims[0]))
            column = str(name)
            if column == str(coord.dims[0]):  # an index coordinate: named after its (new) axis' meaning
                column = {"time": "time", "unit": "name", "trial": "trial"}.get(dim, column)
            coords[dim][column] = coord.values
    merged = {**dict(array.attrs), **dict(attrs or {})}
    return build_recording(np.asarray(array.values), new_dims, coords,
                           recording_attrs(None, {"source": str(array.name or "xarray"), **merged}, "xarray"),
                           time=time, trial=trial, nan_policy=nan_policy)


def load_array(path: str | os.PathLike, key: str | None = None, dims: Sequence[str] | None = None,
               coords: Mapping[str, Any] | None = None, attrs: Mapping[str, Any] | None = None, *,
               nan_policy: str = "raise") -> Activations:
    """Load a ``.npy`` or ``.npz`` file.

    For ``.npz``, ``key`` names the array (default: the only array, or one called ``data``, ``values``
    or ``X``); the other arrays of the archive whose name is ``"<dim>.<coord>"`` (e.g.
    ``"sample.stimulus"``) become coordinates. ``dims`` and the checks are those of :func:`from_numpy`.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.npy`` or ``.npz`` file (no pickled objects).
    key : str, optional
        The ``.npz`` array to read; None: the only array without a dot in its name, else ``data``, ``values``
        or ``X``.
    dims : sequence of str, optional
        Axis names, as in :func:`from_numpy`.
    coords : mapping, optional
        Per-axis coordinates ``{dim: {name: values}}`` (or DataFrames), added to those of the archive.
    attrs : mapping, optional
        Extra attrs.
    nan_policy : str, optional
        ``"raise"`` (default), ``"drop"``, ``"zero"`` or ``"ignore"``.
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
    names = tuple(dims) if dims is not None else DEFAULT_DIMS.get(array.ndim, ())
    merged: dict[str, dict[str, Any]] = {}
    for name, values in extra.items():
        dim, coord = name.split(".", 1)
        if dim not in names:
            raise DimensionError(f"{path}: coordinate array {name!r} names dim {dim!r}, not one of {names}")
        merged.setdefault(dim, {})[coord] = values
    for dim, given in dict(coords or {}).items():
        merged.setdefault(dim, {}).update(dict(given) if not isinstance(given, pd.DataFrame) else given.to_dict("list"))
    return build_recording(array, dims, merged, recording_attrs(path, attrs, suffix[1:]), nan_policy=nan_policy,
                           what=f"the array in {path.name}")


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
    if unit_columns is None:  # 'time' and 'trial' columns describe samples, they are not units
        unit_columns = [c for c in frame.columns if c != sample and c not in _SAMPLE_COLUMNS
                        and pd.api.types.is_numeric_dtype(frame[c])]
    acts = Activations.from_frame(frame, sample=sample, unit_columns=unit_columns, attrs=_attrs(path, attrs, fmt))
    if "time" in acts.coords["sample"].columns and "dt" not in acts.attrs and len(acts) > 1 \
            and pd.api.types.is_numeric_dtype(acts.coords["sample"]["time"]):
        acts.attrs["dt"] = float(f"{float(np.median(np.diff(acts.coord('time').astype(np.float64)))):.12g}")
    return _finish(acts, nan_policy)


def load_csv(path: str | os.PathLike, unit_columns: Sequence[str] | None = None, sample: str | None = None,
             attrs: Mapping[str, Any] | None = None, *, nan_policy: str = "raise", **read_csv: Any) -> Activations:
    """Load a wide CSV table: one row per sample, numeric ``unit_columns`` (default: every numeric column
    except ``sample``, ``time`` and ``trial``) become units, the other columns become sample coordinates
    (``sample`` is renamed ``id``; a ``time`` column sets ``attrs["dt"]``; a ``trial`` column is the
    per-sample trial id). Extra keyword arguments go to :func:`pandas.read_csv`.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file.
    unit_columns : sequence of str, optional
        The columns that become units; None: every numeric column except ``sample``, ``time`` and ``trial``.
    sample : str, optional
        A column of sample ids (renamed ``id``); None: none.
    attrs : mapping, optional
        Extra attrs.
    nan_policy : str, optional
        ``"raise"`` (default), ``"drop"``, ``"zero"`` or ``"ignore"``.
    **read_csv
        Passed to :func:`pandas.read_csv` (e.g. ``sep=";"``).
    """
    path = require_file(path, "CSV file")
    return _from_table(pd.read_csv(path, **read_csv), path, unit_columns, sample, None, attrs, nan_policy, "csv")


def load_parquet(path: str | os.PathLike, unit_columns: Sequence[str] | None = None, sample: str | None = None,
                 value_column: str | None = None, attrs: Mapping[str, Any] | None = None, *,
                 nan_policy: str = "raise", columns: Sequence[str] | None = None) -> Activations:
    """Load a parquet table: wide (like :func:`load_csv`, ``time``/``trial`` columns stay sample coordinates)
    or with one list/array column ``value_column``
    (default ``"values"`` when present) holding each sample's vector.

    Parameters
    ----------
    path : str or os.PathLike
        The parquet file.
    unit_columns : sequence of str, optional
        Wide tables: the columns that become units (default as in :func:`load_csv`).
    sample : str, optional
        A column of sample ids (renamed ``id``).
    value_column : str, optional
        A list/array column holding each sample's vector; None: ``"values"`` when that column holds vectors,
        else the table is wide.
    attrs : mapping, optional
        Extra attrs.
    nan_policy : str, optional
        ``"raise"`` (default), ``"drop"``, ``"zero"`` or ``"ignore"``.
    columns : sequence of str, optional
        Read only these columns of the file; None: all.
    """
    path = require_file(path, "parquet file")
    from ..checks import reading

    with reading(path, "parquet file", "write it again (a file cut short cannot be read)"):
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

    Parameters
    ----------
    path : str or os.PathLike
        A folder written by ``save_to_disk`` (a hub name raises :class:`DataNotFoundError`).
    split : str, optional
        The split of a ``DatasetDict``; None: its only split.
    value_column : str, optional
        A list/array column holding each sample's vector (default ``"values"`` when present).
    unit_columns : sequence of str, optional
        Wide datasets: the numeric columns that become units; None: every numeric column except ``time``
        and ``trial``.
    attrs : mapping, optional
        Extra attrs.
    nan_policy : str, optional
        ``"raise"`` (default), ``"drop"``, ``"zero"`` or ``"ignore"``.
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

    Parameters
    ----------
    worms : sequence of Activations
        One ``(sample, unit)`` recording per worm (a single Activations is one worm).
    path : str or os.PathLike
        The parquet file to write.
    dt : float, optional
        Step of the common time grid in seconds; None: the median of the worms' ``attrs["dt"]`` (or of their
        time steps).
    source_dataset : str, optional
        Value of the ``source_dataset`` column (default ``"Dag2023"``).
    include_unlabeled : bool, optional
        Also write the traces without a canonical neuron name (default False).
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
