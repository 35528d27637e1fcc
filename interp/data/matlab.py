"""MATLAB ``.mat`` files, v5 (``scipy.io.loadmat``) and v7.3 (HDF5, read with ``h5py``), as recordings.

Most shared neuroscience data are ``.mat`` files: a matrix of traces or binned spikes next to vectors of
times, trial ids and cell positions, or a struct array with one element per trial. :func:`load_mat`
picks the variables by name and names the axes; :func:`read_mat` returns a variable as plain Python
(to look inside a file); :func:`mat_variables` lists what a file holds.

Both versions read into the same Python values, so code does not depend on how the file was saved:

* numeric and logical arrays: :class:`numpy.ndarray` **with MATLAB's shape** (``size(x)``: a 1 x N
  row vector stays 1 x N; v7.3 arrays, stored transposed in HDF5, are transposed back);
* char arrays: ``str`` (one row) or a list of ``str`` (several rows);
* cell arrays and struct arrays: object arrays of MATLAB's shape (struct elements are ``dict``);
  a 1 x 1 struct is a ``dict``; sparse matrices become dense arrays.

Example
-------
>>> from scipy.io import savemat
>>> import numpy as np
>>> savemat("rec.mat", {"dff": np.random.rand(30, 500), "t": np.arange(500) / 20})  # doctest: +SKIP
>>> rec = load_mat("rec.mat", "dff", dims=("unit", "time"), time="t")               # doctest: +SKIP
>>> rec.dims, rec.shape                                                              # doctest: +SKIP
(('sample', 'unit'), (500, 30))
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, DimensionError, SchemaError, closest, require
from ..tensor import Activations
from ._common import require_file
from ._recording import RecordingShapeError, build_recording, recording_attrs

__all__ = ["load_mat", "read_mat", "mat_variables", "is_mat73"]

_NUMERIC = {"double", "single", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "logical"}


def is_mat73(path: str | os.PathLike) -> bool:
    """True when ``path`` is a MATLAB v7.3 (HDF5) file rather than a v5/v6/v7 file.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.mat`` file.
    """
    with open(path, "rb") as f:
        head = f.read(128)
    if b"MATLAB 7.3" in head:
        return True
    h5py = require("h5py", "h5py", extra="data")
    return bool(h5py.is_hdf5(str(path)))


# ------------------------------------------------------------------------------- v5 (scipy)
def _from_v5(value: Any) -> Any:
    import scipy.sparse as sp

    if sp.issparse(value):
        return np.asarray(value.todense())
    if not isinstance(value, np.ndarray):
        return value
    if value.dtype.names:  # struct (struct_as_record=True): a record array of MATLAB's shape
        elements = np.empty(value.shape, dtype=object)
        for idx in np.ndindex(value.shape):
            elements[idx] = {name: _from_v5(value[name][idx]) for name in value.dtype.names}
        return elements[(0,) * value.ndim] if value.size == 1 else elements
    if value.dtype.kind == "U":  # chars_as_strings: one string per row
        rows = [str(s) for s in value.reshape(-1)]
        return rows[0] if len(rows) == 1 else ("" if not rows else rows)
    if value.dtype == object:
        out = np.empty(value.shape, dtype=object)
        for idx in np.ndindex(value.shape):
            out[idx] = _from_v5(value[idx])
        return out
    return value


def _read_v5(path: Path, names: Sequence[str] | None) -> dict[str, Any]:
    from scipy.io import loadmat, whosmat

    classes = {n: c for n, _, c in whosmat(str(path))}
    raw = loadmat(str(path), variable_names=list(names) if names is not None else None, squeeze_me=False,
                  struct_as_record=True, chars_as_strings=True)
    out = {}
    for name, value in raw.items():
        if name.startswith("__"):
            continue
        value = _from_v5(value)
        if classes.get(name) == "logical" and isinstance(value, np.ndarray):
            value = value.astype(bool)
        out[name] = value
    return out


# ------------------------------------------------------------------------------- v7.3 (h5py)
def _attr(obj: Any, name: str) -> str | None:
    value = obj.attrs.get(name)
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _from_h5(obj: Any, f: Any, depth: int = 0) -> Any:
    import h5py

    if depth > 50:
        raise SchemaError(f"{obj.name}: structure nested more than 50 levels deep")
    cls = _attr(obj, "MATLAB_class")
    if isinstance(obj, h5py.Group):
        if "MATLAB_sparse" in obj.attrs:
            from scipy.sparse import csc_matrix

            n_rows = int(obj.attrs["MATLAB_sparse"])
            jc = obj["jc"][()]
            data = obj["data"][()] if "data" in obj else np.zeros(0)
            ir = obj["ir"][()] if "ir" in obj else np.zeros(0, dtype=np.int64)
            return np.asarray(csc_matrix((data, ir, jc), shape=(n_rows, len(jc) - 1)).todense())
        fields = [k for k in obj.keys() if not k.startswith("#")]
        if _is_struct_array_group(obj, fields):  # a struct array: each field holds one reference per element
            shape = obj[fields[0]].shape[::-1]
            out = np.empty(shape, dtype=object)
            columns = {k: obj[k][()].T for k in fields}
            for idx in np.ndindex(shape):
                out[idx] = {k: _from_h5(f[columns[k][idx]], f, depth + 1) for k in fields}
            return out[(0,) * len(shape)] if out.size == 1 else out
        return {k: _from_h5(obj[k], f, depth + 1) for k in fields}
    if "MATLAB_empty" in obj.attrs and obj.attrs["MATLAB_empty"]:
        shape = tuple(int(n) for n in np.asarray(obj[()]).reshape(-1))
        if cls == "char":
            return ""
        if cls in ("cell", "struct"):
            return np.empty(shape, dtype=object)
        return np.zeros(shape, dtype=np.float64 if cls in (None, "double") else cls if cls in _NUMERIC - {"logical"} else bool)
    if cls == "cell" or (cls is None and _is_ref_array(obj)):
        refs = obj[()].T
        out = np.empty(refs.shape, dtype=object)
        for idx in np.ndindex(refs.shape):
            out[idx] = _from_h5(f[refs[idx]], f, depth + 1)
        return out
    if "MATLAB_object_decode" in obj.attrs:
        return None  # MATLAB objects (classdef, string, missing, table) have no portable layout
    value = obj[()]
    if cls == "char":
        codes = np.asarray(value, dtype=np.uint16).T  # MATLAB shape: rows x characters (x pages)
        if codes.ndim > 2:
            return np.apply_along_axis(lambda r: "".join(map(chr, r)), 1, codes)
        rows = ["".join(map(chr, row)) for row in np.atleast_2d(codes)]
        return rows[0] if len(rows) == 1 else rows
    if value.dtype.names and {"real", "imag"} <= set(value.dtype.names):
        value = value["real"] + 1j * value["imag"]
    value = np.asarray(value).T
    if cls == "logical":
        value = value.astype(bool)
    return value


def _is_ref_array(obj: Any) -> bool:
    import h5py

    return isinstance(obj, h5py.Dataset) and h5py.check_dtype(ref=obj.dtype) is not None


def _is_struct_array_group(group: Any, fields: list[str]) -> bool:
    """MATLAB writes a struct array as a group whose fields are reference arrays without a MATLAB_class."""
    return bool(fields) and all(_is_ref_array(group[k]) and "MATLAB_class" not in group[k].attrs for k in fields)


def _read_v73(path: Path, names: Sequence[str] | None) -> dict[str, Any]:
    h5py = require("h5py", "h5py", extra="data")
    with h5py.File(str(path), "r") as f:
        available = [k for k in f.keys() if not k.startswith("#")]
        wanted = available if names is None else [n for n in names if n in available]
        return {name: _from_h5(f[name], f) for name in wanted}


# --------------------------------------------------------------------------------- public API
def _variables(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    if is_mat73(path):
        h5py = require("h5py", "h5py", extra="data")
        with h5py.File(str(path), "r") as f:
            out = {}
            for k in f.keys():
                if k.startswith("#"):
                    continue
                obj = f[k]
                shape = obj.shape[::-1] if isinstance(obj, h5py.Dataset) else (1, 1)
                if isinstance(obj, h5py.Group) and "MATLAB_sparse" not in obj.attrs:
                    fields = [n for n in obj.keys() if not n.startswith("#")]
                    if _is_struct_array_group(obj, fields):
                        shape = obj[fields[0]].shape[::-1]
                out[k] = (tuple(int(n) for n in shape), _attr(obj, "MATLAB_class") or "?")
            return out
    from scipy.io import whosmat

    return {n: (tuple(int(s) for s in shape), c) for n, shape, c in whosmat(str(path))}


def mat_variables(path: str | os.PathLike) -> pd.DataFrame:
    """The variables of a ``.mat`` file: one row per variable with ``name``, ``shape`` and MATLAB ``class``.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.mat`` file (v5 or v7.3).
    """
    path = require_file(path, "MATLAB file")
    rows = [{"name": n, "shape": s, "class": c} for n, (s, c) in _variables(path).items()]
    return pd.DataFrame(rows, columns=["name", "shape", "class"])


def read_mat(path: str | os.PathLike, variables: str | Sequence[str] | None = None) -> dict[str, Any]:
    """Read variables of a v5 or v7.3 ``.mat`` file as plain Python values (see the module docstring).

    ``variables``: a name or list of names (default: all). Unknown names raise :class:`ConfigError`.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.mat`` file (v5 or v7.3).
    variables : str or sequence of str, optional
        The variables to read; None: all.

    >>> read_mat("rec.mat", "t")["t"].shape        # doctest: +SKIP
    (1, 500)
    """
    path = require_file(path, "MATLAB file")
    names = [variables] if isinstance(variables, str) else (list(variables) if variables is not None else None)
    if names is not None:
        known = _variables(path)
        missing = [n for n in names if n not in known]
        if missing:
            hint = closest(missing[0], known)
            raise ConfigError(f"{path.name} has no variable {missing[0]!r}; it holds {_describe(known)}"
                              + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    try:
        return _read_v73(path, names) if is_mat73(path) else _read_v5(path, names)
    except (ValueError, OSError, NotImplementedError, TypeError) as exc:
        raise SchemaError(f"{path} could not be read as a MATLAB file: {exc}") from exc


def _describe(known: Mapping[str, tuple[tuple[int, ...], str]]) -> str:
    return ", ".join(f"{n} ({'x'.join(map(str, s))} {c})" for n, (s, c) in known.items()) or "nothing"


def _get(path: Path, tree: dict[str, Any], name: str) -> Any:
    """Look up ``name`` (``"var"`` or ``"var.field.subfield"`` through 1 x 1 structs) in what was read."""
    head, *rest = name.split(".")
    if head not in tree:
        tree.update(read_mat(path, head))
    value, where = tree[head], head
    for part in rest:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} is not a 1 x 1 struct, so {where}.{part} cannot be read"
                              + (" (a struct array: use variable=..., field=...)" if _is_struct_array(value) else ""))
        if part not in value:
            hint = closest(part, value)
            raise ConfigError(f"{where} has no field {part!r}; fields: {sorted(value)}"
                              + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        value, where = value[part], f"{where}.{part}"
    return value


def _is_struct_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.dtype == object and value.size > 0 and \
        all(isinstance(v, dict) for v in value.reshape(-1))


def _resolve(path: Path, tree: dict[str, Any], value: Any) -> Any:
    return _get(path, tree, value) if isinstance(value, str) else value


def _numeric(value: Any, what: str) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.dtype == object:
        raise SchemaError(f"{what} is not a numeric array (it is {type(value).__name__}"
                          + (f" of {value.dtype}" if isinstance(value, np.ndarray) else "") + ")")
    return value


def _fit_dims(array: np.ndarray, dims: Sequence[str] | None, what: str) -> np.ndarray:
    """Drop MATLAB's singleton axes when fewer dims than axes were named (a 1 x N vector for dims of length 1)."""
    if dims is not None and array.ndim > len(dims) and array.ndim == 2 and 1 in array.shape:
        return array.reshape(-1)
    return array


def load_mat(path: str | os.PathLike, variable: str | None = None, dims: Sequence[str] | None = None, *,
             field: str | None = None, time: str | Any = None, trial: str | Any = None,
             coords: Mapping[str, Mapping[str, Any]] | None = None, stack: bool | None = None,
             attrs: Mapping[str, Any] | None = None, nan_policy: str = "raise") -> Activations:
    """Load a recording from a MATLAB ``.mat`` file (v5 through ``scipy.io``, v7.3 through ``h5py``).

    Parameters
    ----------
    variable:
        The data: a numeric array (``"dff"``), a field of a 1 x 1 struct (``"session.traces"``), or a
        struct/cell array with one element per trial (then see ``field``). Default: the file's only
        numeric array of 2 or more dimensions; otherwise :class:`ConfigError` lists the variables.
    dims:
        Names of the data's axes **in MATLAB's order** (``size(x)``), e.g. ``("unit", "time")`` for a
        cells x frames matrix or ``("time", "unit", "trial")``; for trial structures, the axes of one
        trial's array. The conventions of :func:`interp.data.from_numpy` apply (``trial`` and ``time``
        axes, result ordered ``(sample, ..., unit)``, a guessed wide matrix refused).
    field:
        For a struct array of trials, the field holding each trial's data (e.g. ``"spikes"``).
    time, trial:
        Variable names (or arrays): times (s) of the time axis or of the samples, and trial ids (one per
        sample, or one per trial of a trial axis). For trial structures, ``time`` may name a field holding
        each trial's time vector.
    coords:
        ``{axis: {coordinate: variable name or values}}`` with axes named as in ``dims``, e.g.
        ``{"unit": {"x": "cell_x", "y": "cell_y"}, "sample": {"stimulus": "stim_id"}}``.
    stack:
        Trial structures only: ``True`` stacks trials into ``(sample=trial, time, unit)`` (all trials the
        same shape), ``False`` concatenates them into ``(sample, unit)`` with a per-sample ``trial``
        coordinate; ``None`` (default) stacks when the shapes agree. Each trial's scalar fields (target,
        condition, ...) become sample coordinates.

    Example
    -------
    >>> rec = load_mat("reach.mat", "trials", field="rates", dims=("time", "unit"), time="t")  # doctest: +SKIP
    >>> rec.dims, rec.coords["sample"].columns.tolist()                                       # doctest: +SKIP
    (('sample', 'time', 'unit'), ['trial', 'target'])
    """
    path = require_file(path, "MATLAB file")
    tree: dict[str, Any] = {}
    if variable is None:
        variable = _default_variable(path)
    data = _get(path, tree, variable)
    base_attrs = recording_attrs(path, {"variable": variable, **dict(attrs or {})}, "mat-v7.3" if is_mat73(path) else "mat")
    if _is_struct_array(data) or (isinstance(data, np.ndarray) and data.dtype == object):
        return _load_trials(path, tree, variable, data, dims, field, time, trial, coords, stack, base_attrs, nan_policy)
    if isinstance(data, dict):
        raise ConfigError(f"{variable!r} is a struct with fields {sorted(data)}; name the data field, e.g. "
                          f"variable='{variable}.{next(iter(data), 'field')}'")
    if field is not None:
        raise ConfigError(f"field={field!r} is for struct arrays of trials, but {variable!r} is a "
                          f"{type(data).__name__}; name the struct field in variable='{variable}.{field}' instead")
    array = _fit_dims(_numeric(data, f"{path.name}: {variable!r}"), dims, variable)
    resolved = {d: {k: _vector_of(_resolve(path, tree, v)) for k, v in dict(c).items()} for d, c in dict(coords or {}).items()}
    return build_recording(array, dims, resolved, base_attrs,
                           time=_vector_of(_resolve(path, tree, time)) if time is not None else None,
                           trial=_vector_of(_resolve(path, tree, trial)) if trial is not None else None,
                           nan_policy=nan_policy, what=f"{path.name}: {variable!r}")


def _vector_of(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.ndim == 2 and 1 in value.shape:
        return value.reshape(-1)
    if isinstance(value, np.ndarray) and value.dtype == object:
        return [v if not isinstance(v, np.ndarray) or v.size != 1 else v.reshape(-1)[0] for v in value.reshape(-1)]
    return value


def _default_variable(path: Path) -> str:
    known = _variables(path)
    candidates = [n for n, (shape, cls) in known.items()
                  if cls in _NUMERIC | {"?"} and len(shape) >= 2 and sum(s > 1 for s in shape) >= 2]
    if len(candidates) != 1:
        raise ConfigError(f"{path.name} holds {_describe(known)}; pass variable=... to choose the data"
                          + (" (for a struct array of trials, also field=...)" if not candidates else ""))
    return candidates[0]


def _scalar(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype != object:
        return value.reshape(-1)[0].item()
    if isinstance(value, (str, int, float, bool, np.generic)):
        return value
    return None


def _per_sample_fields(elements: list[dict], lengths: list[int], skip: set) -> dict[str, Any]:
    """Fields holding one value (or one row) per sample of every trial, concatenated across trials: a vector of
    the trial's length, or a 2-D array with the trial's length on one axis (a T x 2 velocity -> rows)."""
    out: dict[str, Any] = {}
    for key in elements[0]:
        if key in skip:
            continue
        parts = []
        for e, n in zip(elements, lengths):
            v = e.get(key)
            if not isinstance(v, np.ndarray) or v.dtype == object or v.ndim > 2:
                break
            if v.ndim == 2 and 1 in v.shape and v.size == n:
                v = v.reshape(-1)
            elif v.ndim == 2 and v.shape[0] != n and v.shape[1] == n:
                v = v.T
            if len(v) != n or n == 1:
                break
            parts.append(v)
        else:
            joined = np.concatenate(parts)
            out[key] = joined if joined.ndim == 1 else list(joined)
    return out


def _load_trials(path: Path, tree: dict[str, Any], variable: str, data: np.ndarray, dims, field, time, trial,
                 coords, stack, attrs, nan_policy) -> Activations:
    elements = list(data.reshape(-1, order="F"))  # MATLAB's linear order
    is_struct = all(isinstance(e, dict) for e in elements)
    if is_struct:
        if field is None:
            numeric = [k for k, v in elements[0].items() if isinstance(v, np.ndarray) and v.dtype != object and v.size > 1]
            raise ConfigError(f"{variable!r} is a struct array of {len(elements)} trials; pass field=... naming the data "
                              f"field (fields with arrays: {numeric}; all fields: {sorted(elements[0])})")
        missing = [i for i, e in enumerate(elements) if field not in e]
        if missing:
            hint = closest(field, elements[0])
            raise ConfigError(f"{variable!r} has no field {field!r}; fields: {sorted(elements[0])}"
                              + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        arrays = [_numeric(e[field], f"{variable}({i + 1}).{field}") for i, e in enumerate(elements)]
    else:
        if field is not None:
            raise ConfigError(f"{variable!r} is a cell array; field= is for struct arrays")
        arrays = [_numeric(e, f"{variable}{{{i + 1}}}") for i, e in enumerate(elements)]
    if dims is None:
        raise DimensionError(f"{variable!r} holds one array per trial (first: {arrays[0].shape}); pass dims=... naming "
                             "one trial's axes in MATLAB's order, e.g. dims=('time', 'unit') or ('unit', 'time')")
    dims = [str(d) for d in dims]
    if "sample" in dims or "trial" in dims:
        raise DimensionError(f"dims={tuple(dims)} name one trial's axes; trials become the sample axis themselves, "
                             "so name the within-trial axes 'time' and 'unit'")
    arrays = [_fit_dims(a, dims, variable) for a in arrays]
    bad = [i for i, a in enumerate(arrays) if a.ndim != len(dims)]
    if bad:
        raise DimensionError(f"trial {bad[0] + 1} of {variable!r} has shape {arrays[bad[0]].shape}, not {len(dims)} axes "
                             f"for dims {tuple(dims)}")
    times = None
    if time is not None:
        if isinstance(time, str) and is_struct and time in elements[0]:
            times = [np.asarray(_vector_of(e[time]), dtype=np.float64).reshape(-1) for e in elements]
        else:
            shared = np.asarray(_vector_of(_resolve(path, tree, time)), dtype=np.float64).reshape(-1)
            times = [shared] * len(arrays)
    meta = pd.DataFrame({"trial": np.arange(len(arrays))})
    if trial is not None:
        meta["trial"] = _vector_of(_resolve(path, tree, trial))
    if is_struct:
        for key in elements[0]:
            if key in (field, time):
                continue
            values = [_scalar(e.get(key)) for e in elements]
            if all(v is not None for v in values):
                meta[key if key not in ("trial", "time") else f"trial_{key}"] = values
    for name, value in dict(dict(coords or {}).get("sample", {})).items():
        if isinstance(value, str) and is_struct and value in elements[0]:
            continue  # a field of each trial: a scalar field is in meta already, a per-sample one is added below
        meta[name] = _vector_of(_resolve(path, tree, value))
    extra = {d: {k: _vector_of(_resolve(path, tree, v)) for k, v in dict(c).items()}
             for d, c in dict(coords or {}).items() if d != "sample"}
    empty = [i for i, a in enumerate(arrays) if a.size == 0]
    kept = [i for i in range(len(arrays)) if i not in set(empty)]
    if empty:  # said, not silently dropped: a warning and attrs["empty_trials"] (MATLAB's 1-based numbers)
        import warnings

        if len(empty) == len(arrays):
            raise SchemaError(f"every trial of {variable!r} is empty")
        warnings.warn(f"{path.name}: {len(empty)} empty trial(s) of {variable!r} (numbers {[i + 1 for i in empty][:10]}) "
                      "hold no samples and are left out; the other trials keep their trial ids", stacklevel=3)
        full = [i for i in range(len(arrays)) if i not in set(empty)]
        arrays = [arrays[i] for i in full]
        times = None if times is None else [times[i] for i in full]
        meta = meta.iloc[full].reset_index(drop=True)
        attrs = {**attrs, "empty_trials": [i + 1 for i in empty]}
    same = len({a.shape for a in arrays}) == 1
    if stack is None:
        stack = same
    if stack and not same:
        raise RecordingShapeError(f"trials of {variable!r} differ in shape ({sorted({a.shape for a in arrays})[:4]}); "
                                  "pass stack=False to concatenate them into (sample, unit) with a trial coordinate")
    if stack:
        array = np.stack(arrays)
        coords_out: dict[str, Any] = {"trial": meta, **extra}
        time_vector = None
        if times is not None:
            if any(len(t) != len(times[0]) or not np.allclose(t, times[0]) for t in times):
                raise RecordingShapeError(f"the trials of {variable!r} have different time vectors; pass stack=False")
            time_vector = times[0]
        return build_recording(array, ["trial", *dims], coords_out, attrs, time=time_vector, nan_policy=nan_policy,
                               what=f"{path.name}: {variable!r}")
    if "unit" not in dims or len(dims) != 2:
        raise DimensionError(f"to concatenate trials each trial needs dims (time, unit) in some order; got {tuple(dims)}")
    time_axis = [d for d in dims if d != "unit"][0]
    rows = [np.moveaxis(a, dims.index(time_axis), 0) for a in arrays]
    widths = {r.shape[1] for r in rows}
    if len(widths) != 1:
        raise RecordingShapeError(f"trials of {variable!r} have different numbers of units: {sorted(widths)}")
    lengths = [len(r) for r in rows]
    sample = meta.iloc[np.repeat(np.arange(len(rows)), lengths)].reset_index(drop=True)
    if times is not None:
        bad = [i for i, (t, n) in enumerate(zip(times, lengths)) if len(t) != n]
        if bad:
            raise RecordingShapeError(f"trial {bad[0] + 1}: {len(times[bad[0]])} times for {lengths[bad[0]]} samples")
        sample["time"] = np.concatenate(times)
    if is_struct:
        for key, values in _per_sample_fields([elements[i] for i in kept], lengths, {field, time, *meta.columns}).items():
            sample[key if key not in sample.columns else f"trial_{key}"] = values
    return build_recording(np.concatenate(rows), ["sample", "unit"], {"sample": sample, **extra}, attrs,
                           nan_policy=nan_policy, what=f"{path.name}: {variable!r}")
