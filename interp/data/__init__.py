"""Recordings: ``recording = interp.data.load(name)`` or one of the generic loaders; each returns :class:`interp.Activations`.

Bundled/available offline: ``kriegeskorte92``, ``hippocampus``, ``celegans``, ``eegmmidb``. A lab's own
data sets join them with :func:`register`.

Bring your own recording (every loader checks shapes at the boundary, see :mod:`interp.data._recording`):

* :func:`from_numpy`, :func:`from_xarray` -- arrays already in memory;
* :func:`load_mat` (MATLAB v5 and v7.3), :func:`load_nwb` (NWB), :func:`load_array` (``.npy``/``.npz``),
  :func:`load_csv`, :func:`load_parquet`, :func:`load_hf_dataset` -- files;
* :func:`load_suite2p` (suite2p plane folders -> ΔF/F), :func:`load_phy` (Kilosort/phy folders, with
  cluster quality), :func:`from_spike_times` (spike times per unit -> binned counts);
* :class:`IntervalSet`, :func:`restrict` (keep the samples inside trials/epochs), :func:`epochs`
  (peri-event windows, ``(trial, time, unit)``), :func:`nwb_intervals`.

>>> import numpy as np, interp
>>> rec = interp.data.from_numpy(np.random.rand(4, 300), dims=("unit", "time"), time=np.arange(300) * 0.1)
>>> rec.dims, rec.shape
(('sample', 'unit'), (300, 4))
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError, InputTypeError, closest
from ._recording import RecordingShapeError
from .formats import from_spike_times, load_phy, load_suite2p, read_cluster_groups
from .intervals import IntervalError, IntervalSet, epochs, restrict
from .loaders import from_numpy, from_xarray, load_array, load_csv, load_hf_dataset, load_parquet
from .matlab import load_mat, mat_variables, read_mat
from .nwb import load_nwb, nwb_intervals

__all__ = [
    "load", "available", "register", "from_numpy", "from_xarray", "load_mat", "read_mat", "mat_variables",
    "load_nwb", "load_array", "load_csv", "load_parquet", "load_hf_dataset", "RecordingShapeError",
    "load_suite2p", "load_phy", "from_spike_times", "read_cluster_groups", "IntervalSet", "IntervalError", "restrict",
    "epochs", "nwb_intervals",
]

_BUILTIN: dict[str, str] = {
    "kriegeskorte92": "interp.data.kriegeskorte:load_kriegeskorte92",
    "hippocampus": "interp.data.hippocampus:load_hippocampus",
    "celegans": "interp.data.celegans:load_celegans",
    "eegmmidb": "interp.data.eeg:load_eegmmidb",
}
_REGISTRY: dict[str, str | Callable[..., Any]] = dict(_BUILTIN)


def available() -> list[str]:
    """Names accepted by :func:`load` (built-in and registered)."""
    return sorted(_REGISTRY)


def register(name: str, loader: Callable[..., Any] | str, *, overwrite: bool = False) -> None:
    """Make ``interp.data.load(name, **kwargs)`` call ``loader(**kwargs)``.

    ``loader`` is a callable or a ``"package.module:function"`` string (imported on first use, so a
    lab's package can register its data sets without importing heavy code). Registering a name that
    exists raises :class:`ConfigError` unless ``overwrite=True``; built-in names cannot be replaced.

    Parameters
    ----------
    name : str
        The data set name (non-empty; not a built-in name).
    loader : callable or str
        The loader, or ``"package.module:function"`` imported on first use.
    overwrite : bool, optional
        Replace a name registered before (default False).

    Example
    -------
    >>> import numpy as np, interp
    >>> def my_session(day=1):
    ...     rng = np.random.default_rng(day)
    ...     return interp.data.from_numpy(rng.random((20, 500)), dims=("unit", "time"), attrs={"source": f"day{day}"})
    >>> interp.data.register("lab-tectum", my_session, overwrite=True)
    >>> interp.data.load("lab-tectum", day=2).attrs["source"]
    'day2'
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"a data set name must be a non-empty string, got {name!r}")
    if isinstance(loader, str):
        module, sep, func = loader.partition(":")
        if not sep or not module or not func:
            raise ConfigError(f"loader string must look like 'package.module:function', got {loader!r}")
    elif not callable(loader):
        raise InputTypeError(f"loader must be a callable or a 'module:function' string, got {type(loader).__name__}")
    if name in _BUILTIN:
        raise ConfigError(f"{name!r} is a built-in data set and cannot be replaced; register under another name")
    if name in _REGISTRY and not overwrite:
        raise ConfigError(f"a data set {name!r} is already registered; pass overwrite=True to replace it")
    _REGISTRY[name] = loader


def load(name: str, **kwargs: Any) -> Any:
    """Load a recorded data set by name (see each loader's docstring for its options; :func:`available` lists them).

    Parameters
    ----------
    name : str
        A name from :func:`available`.
    **kwargs
        Passed to the data set's loader.
    """
    if name not in _REGISTRY:
        hint = closest(name, _REGISTRY)
        raise ConfigError(f"unknown data set {name!r}; available: {available()}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                          + ". Register your own with interp.data.register(name, loader).")
    loader = _REGISTRY[name]
    if isinstance(loader, str):
        module, func = loader.split(":")
        try:
            loader = getattr(importlib.import_module(module), func)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"data set {name!r} is registered as {_REGISTRY[name]!r}, which cannot be imported: {exc}") from exc
    return loader(**kwargs)
