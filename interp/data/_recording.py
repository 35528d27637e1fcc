"""The boundary where a user's array becomes a recording: axis names, trials, dtype and shape checks.

Every generic loader (:func:`interp.data.from_numpy`, :func:`~interp.data.from_xarray`,
:func:`~interp.data.load_mat`, ...) ends here, so the same rules hold whatever the file format:

* **Axis names.** The result is ordered ``(sample, [other dims], unit)``. A ``trial`` axis becomes the
  ``sample`` axis with a ``trial`` coordinate; a ``time`` axis with no ``sample``/``trial`` axis is the
  sample axis of a time series (its values go to a ``time`` sample coordinate). So ``("unit", "time")``
  (a cells x time matrix), ``("time", "unit")`` and ``("trial", "time", "unit")`` all work.
* **Integer and boolean data** (spike counts, binary events) are cast to float32, exactly: the original
  dtype is kept in ``attrs["original_dtype"]``. Integers beyond 2**24, which float32 cannot hold
  exactly, raise :class:`~interp.errors.InputTypeError` (convert to float64 yourself).
* **A coordinate on the wrong axis** (a time vector as long as the unit axis, a trial vector as long as
  the time axis) raises :class:`RecordingShapeError`: the array is probably transposed.
* **More units than samples.** When the axis names were not given and a 2-D array has more columns
  than rows (e.g. 114 x 4,245: a cells x time matrix read as 114 samples of 4,245 cells), a
  :class:`RecordingShapeError` asks for ``dims``; naming the axes (``dims=("sample", "unit")`` or
  ``("unit", "time")``) is the way to say which is which. Named axes that make a time series of more
  units than time points (``dims=("time", "unit")`` on a cells x time matrix) are refused too; rows that
  really are time points are named ``("sample", "unit")`` with ``time=...``.
* **Coordinates of the sample axis** may be given under ``"sample"`` or under the name of the axis that
  becomes it (``"time"``, ``"trial"``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..errors import DimensionError, InputTypeError
from ..tensor import Activations
from ._common import check_choice

__all__ = ["RecordingShapeError", "build_recording", "recording_attrs", "NAN_POLICIES", "DEFAULT_DIMS"]

NAN_POLICIES = ("raise", "drop", "zero", "ignore")
DEFAULT_DIMS = {1: ("sample",), 2: ("sample", "unit"), 3: ("sample", "time", "unit")}
_EXACT_FLOAT32 = 2 ** 24


class RecordingShapeError(DimensionError):
    """A recording whose axes do not fit together (a transposed matrix, a coordinate on the wrong axis)."""


def recording_attrs(path: str | os.PathLike | None, attrs: Mapping[str, Any] | None, fmt: str) -> dict[str, Any]:
    """Provenance attrs of a loaded recording: ``kind="recording"``, ``format``, ``source``/``path``."""
    base: dict[str, Any] = {"kind": "recording", "format": fmt}
    if path is not None:
        base.update(source=Path(path).stem, path=str(path))
    base.update(dict(attrs or {}))
    return base


def _as_float(array: np.ndarray, what: str) -> tuple[np.ndarray, str | None]:
    if array.dtype == object or array.dtype.kind in "USV":
        raise InputTypeError(f"{what} must be numeric, got dtype {array.dtype}")
    if array.dtype.kind == "c":
        raise InputTypeError(f"{what} is complex ({array.dtype}); pass np.abs(x) or x.real")
    if array.dtype.kind in "biu":
        if array.size and array.dtype.kind != "b" and float(np.abs(array).max()) > _EXACT_FLOAT32:
            raise InputTypeError(
                f"{what} holds integers up to {np.abs(array).max()}, which float32 cannot represent exactly; "
                "convert it yourself (array.astype(np.float64)) and pass the float array"
            )
        return array.astype(np.float32), str(array.dtype)
    return array, None


def _frame(value: Any) -> pd.DataFrame:
    if isinstance(value, pd.DataFrame):
        return value.reset_index(drop=True)
    return pd.DataFrame({k: list(v) if isinstance(v, (np.ndarray, list, tuple, pd.Series)) and np.ndim(v) > 1 else v
                         for k, v in dict(value).items()})


def _check_lengths(coords: dict[str, pd.DataFrame], sizes: dict[str, int], shape: tuple[int, ...]) -> None:
    for dim, frame in coords.items():
        if not len(frame.columns) or len(frame) == sizes[dim]:
            continue
        others = [d for d, n in sizes.items() if d != dim and n == len(frame)]
        names = ", ".join(map(repr, frame.columns[:4]))
        if others:
            raise RecordingShapeError(
                f"coordinate {names} of axis {dim!r} has {len(frame)} values, the length of axis {others[0]!r}, "
                f"not of {dim!r} ({sizes[dim]}); the array (shape {shape}) looks transposed: pass array.T, or "
                f"name the axes in the array's order with dims=..."
            )
        raise RecordingShapeError(f"coordinate {names} of axis {dim!r} has {len(frame)} values but the axis has "
                                  f"{sizes[dim]} (array shape {shape}, dims {tuple(sizes)})")


def _rename_axes(dims: list[str], coords: dict[str, pd.DataFrame]) -> tuple[list[str], str | None]:
    """Map ``trial`` and a lone ``time`` axis onto ``sample``; returns new dims and the renamed axis."""
    if "trial" in dims:
        if "sample" in dims:
            raise DimensionError(f"dims {tuple(dims)} have both 'trial' and 'sample'; a trial axis is the sample axis: "
                                 "name the within-trial axis 'time' (e.g. ('trial', 'time', 'unit'))")
        renamed = "trial"
    elif "time" in dims and "sample" not in dims:
        renamed = "time"
    else:
        return dims, None
    dims = ["sample" if d == renamed else d for d in dims]
    if renamed in coords:
        coords["sample"] = coords.pop(renamed)
    return dims, renamed


def build_recording(array: np.ndarray, dims: Sequence[str] | None = None, coords: Mapping[str, Any] | None = None,
                    attrs: Mapping[str, Any] | None = None, *, time: Any = None, trial: Any = None,
                    nan_policy: str = "raise", what: str = "the array") -> Activations:
    """Check a user's array and wrap it as a recording (see the module docstring for the rules).

    ``time``: times of the time axis (``("sample", "time", "unit")`` data) or of the samples of a time
    series, in seconds; sets ``attrs["dt"]`` when missing. ``trial``: one trial id per sample (a time
    series cut into trials), or one per trial when the array has a trial axis.
    """
    check_choice("nan_policy", nan_policy, NAN_POLICIES)
    if not isinstance(array, np.ndarray):
        raise InputTypeError(f"{what} must be a numpy.ndarray, got {type(array).__name__}")
    array, original = _as_float(array, what)
    guessed = dims is None
    if guessed:
        if array.ndim not in DEFAULT_DIMS:
            raise DimensionError(f"a {array.ndim}-D array needs explicit dims (defaults exist for 1-3 D), "
                                 "e.g. dims=('trial', 'time', 'unit', 'condition')")
        dims = DEFAULT_DIMS[array.ndim]
    dims = [str(d) for d in dims]
    if len(dims) != array.ndim:
        raise DimensionError(f"{what} has {array.ndim} axes (shape {array.shape}) but {len(dims)} dims {tuple(dims)} were given")
    if len(set(dims)) != len(dims):
        raise DimensionError(f"dims must be unique, got {tuple(dims)}")
    if array.ndim >= 2 and "unit" not in dims:
        raise DimensionError(f"dims {tuple(dims)} have no 'unit' axis; name the axis of neurons, cells, channels or "
                             "voxels 'unit' (e.g. dims=('unit', 'time') for a cells x time matrix)")
    frames = {str(d): _frame(v) for d, v in dict(coords or {}).items()}
    sample_axis = "trial" if "trial" in dims else "time" if "time" in dims else None
    if "sample" in frames and "sample" not in dims and sample_axis is not None:
        if sample_axis in frames:
            raise DimensionError(f"coords are given for both 'sample' and {sample_axis!r}, which become the same axis; "
                                 "give them under one name")
        frames[sample_axis] = frames.pop("sample")  # the axis that becomes the sample axis, by its final name
    unknown = set(frames) - set(dims)
    if unknown:
        raise DimensionError(f"coords given for axes {sorted(unknown)} that are not in dims {tuple(dims)}")
    dims, renamed = _rename_axes(dims, frames)
    sizes = dict(zip(dims, array.shape))
    frames = {d: frames[d] if d in frames and len(frames[d].columns) else pd.DataFrame(index=pd.RangeIndex(n))
              for d, n in sizes.items()}
    _check_lengths(frames, sizes, array.shape)
    if trial is not None:
        frames["sample"]["trial"] = _vector(trial, sizes, "sample", "trial")
    elif renamed == "trial" and "trial" not in frames["sample"].columns:
        frames["sample"]["trial"] = np.arange(sizes["sample"])
    if time is not None:
        time_dim = "time" if "time" in sizes else "sample"
        frames[time_dim]["time"] = _vector(time, sizes, time_dim, "time")
    if not guessed and renamed == "time" and array.ndim == 2 and sizes["unit"] > sizes["sample"]:
        raise RecordingShapeError(
            f"{what} with dims {tuple(d if d != 'sample' else 'time' for d in dims)} has {sizes['sample']} time points "
            f"and {sizes['unit']:,} units: more units than time points, which usually means the axes are swapped "
            f"(a cells x time matrix is dims=('unit', 'time')). If the rows really are time points, name them "
            f"dims=('sample', 'unit') and give their times with time=...")
    if guessed and array.ndim == 2 and array.shape[1] > array.shape[0]:
        series = "time" in frames["sample"].columns or any(k in dict(attrs or {}) for k in ("dt", "sfreq"))
        kind = "a time series with " if series else ""
        raise RecordingShapeError(
            f"{what} of shape {array.shape} would be read as {kind}{array.shape[0]} samples x {array.shape[1]:,} units: "
            f"more units than samples. If rows are cells (a cells x time matrix), pass dims=('unit', 'time') or "
            f"array.T; if rows really are samples (e.g. stimuli x voxels), pass dims=('sample', 'unit')."
        )
    order = (["sample"] if "sample" in dims else []) + [d for d in dims if d not in ("sample", "unit")] \
        + (["unit"] if "unit" in dims else [])
    if order != dims:
        array = np.transpose(array, [dims.index(d) for d in order])
        dims = order
    out_attrs = dict(attrs or {})
    out_attrs.setdefault("kind", "recording")
    if original is not None:
        out_attrs["original_dtype"] = original
    if renamed:
        out_attrs.setdefault("sample_axis", renamed)
    time_values = frames.get("time", frames["sample"]).get("time")
    if "dt" not in out_attrs and time_values is not None and len(time_values) > 1 \
            and pd.api.types.is_numeric_dtype(time_values):
        dt = float(np.median(np.diff(np.asarray(time_values, dtype=np.float64))))
        out_attrs["dt"] = float(f"{dt:.12g}")  # arange(n) * 0.1 gives 0.09999999999999964 otherwise
    acts = Activations(torch.from_numpy(np.ascontiguousarray(array)), dims, frames, out_attrs)
    return acts.check_finite(nan_policy, dim="unit" if "unit" in acts.dims else acts.dims[-1])


def _vector(values: Any, sizes: dict[str, int], dim: str, name: str) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim == 2 and 1 in values.shape:
        values = values.reshape(-1)
    if values.ndim != 1:
        raise RecordingShapeError(f"{name} must be a vector, got shape {values.shape}")
    if len(values) != sizes[dim]:
        others = [d for d, n in sizes.items() if d != dim and n == len(values)]
        hint = (f"; that is the length of axis {others[0]!r}: the array looks transposed (pass array.T, or name the "
                "axes in the array's order with dims=...)") if others else ""
        raise RecordingShapeError(f"{name} has {len(values)} values but axis {dim!r} has {sizes[dim]}{hint}")
    return values
