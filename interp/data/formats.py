"""Recording formats labs have on disk: suite2p output folders, spike times, Kilosort/phy folders.

* :func:`load_suite2p`: a suite2p ``plane`` folder (``F.npy``, ``Fneu.npy``, ``iscell.npy``,
  ``stat.npy``, ``ops.npy``) -> ΔF/F of the cells, neuropil-corrected (``F - 0.7 * Fneu``) over a
  running-percentile baseline, with ROI centroids and the classifier's cell probability as unit
  coordinates;
* :func:`from_spike_times`: spike times per unit (lists or arrays, e.g. an NWB units table's
  ``spike_times``) -> spike counts in bins;
* :func:`load_phy`: a Kilosort/phy folder (``spike_times.npy``, ``spike_clusters.npy``, ``params.py``,
  ``cluster_group.tsv``) -> binned counts, with each cluster's quality (``good``/``mua``/``noise``) as
  the unit coordinate ``quality``.

>>> import numpy as np
>>> rec = from_spike_times([[0.01, 0.02, 0.31], [0.5]], bin_size=0.1, names=["a", "b"])
>>> rec.numpy()[:, 0].tolist(), rec.coord("name").tolist()
([2.0, 0.0, 0.0, 1.0, 0.0, 0.0], ['a', 'b'])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..errors import ConfigError, DataNotFoundError, SchemaError
from ..tensor import Activations
from ._common import check_positive, require_file
from ._recording import recording_attrs

__all__ = ["load_suite2p", "from_spike_times", "load_phy", "read_cluster_groups"]


def _npy(folder: Path, name: str, allow_pickle: bool = False) -> np.ndarray:
    path = folder / name
    if not path.is_file():
        raise DataNotFoundError(f"{folder} has no {name}; a suite2p plane folder holds F.npy, Fneu.npy, iscell.npy "
                                "and stat.npy (suite2p/plane0)")
    try:
        return np.load(path, allow_pickle=allow_pickle)
    except (ValueError, OSError, EOFError) as exc:
        raise SchemaError(f"{path} could not be read as a NumPy file: {exc}") from exc


def _baseline(trace: np.ndarray, window: int, percentile: float) -> np.ndarray:
    """Running percentile of each row over ``window`` samples (suite2p's ``maximin``-free ΔF/F baseline)."""
    from scipy.ndimage import percentile_filter

    return percentile_filter(trace, percentile, size=(1, window), mode="nearest")


def load_suite2p(folder: str | os.PathLike, *, neuropil: float = 0.7, baseline: float = 60.0, percentile: float = 8.0,
                 cells_only: bool = True, fs: float | None = None, attrs: dict[str, Any] | None = None) -> Activations:
    """Load a suite2p plane folder as ΔF/F of its ROIs.

    Parameters
    ----------
    folder:
        The ``plane0`` folder (or a ``suite2p`` folder with one plane).
    neuropil:
        Neuropil coefficient: ``F - neuropil * Fneu`` (suite2p's default 0.7).
    baseline, percentile:
        F0 is the running ``percentile`` of the corrected trace over ``baseline`` seconds; ΔF/F =
        ``(F - F0) / F0``. A baseline at or below zero (a dim ROI over-corrected for neuropil) raises
        :class:`SchemaError` naming the ROIs: lower ``neuropil`` or leave those ROIs out.
    cells_only:
        Keep the ROIs the classifier accepted (``iscell[:, 0] == 1``; default) or all ROIs.
    fs:
        Frame rate (Hz); default ``ops.npy``'s ``fs``.

    Returns
    -------
    Activations
        ``(sample, unit)`` float32 with sample coordinate ``time`` (s); unit coordinates ``name``
        (``roi<k>``, k the ROI's index in suite2p), ``roi``, ``cell_probability``, ``x``, ``y``
        (centroid ``med``, pixels), ``npix``.
    """
    folder = require_file(folder, "suite2p folder")
    if not (folder / "F.npy").is_file() and (folder / "plane0" / "F.npy").is_file():
        folder = folder / "plane0"
    F = _npy(folder, "F.npy").astype(np.float64)
    Fneu = _npy(folder, "Fneu.npy").astype(np.float64)
    iscell = _npy(folder, "iscell.npy")
    if F.ndim != 2 or F.shape != Fneu.shape:
        raise SchemaError(f"F.npy {F.shape} and Fneu.npy {Fneu.shape} must be the same (ROIs, frames) matrix")
    iscell = np.asarray(iscell, dtype=np.float64).reshape(len(iscell), -1)
    if len(iscell) != len(F):
        raise SchemaError(f"iscell.npy has {len(iscell)} rows for {len(F)} ROIs in F.npy")
    stat = _npy(folder, "stat.npy", allow_pickle=True) if (folder / "stat.npy").is_file() else None
    if fs is None:
        ops_path = folder / "ops.npy"
        if not ops_path.is_file():
            raise ConfigError(f"{folder} has no ops.npy to read the frame rate from; pass fs=... (Hz)")
        ops = np.load(ops_path, allow_pickle=True).item()
        fs = ops.get("fs")
        if fs is None:
            raise ConfigError(f"{ops_path} has no 'fs'; pass fs=... (Hz)")
    fs = check_positive("fs", fs)
    neuropil = float(neuropil)
    if not 0 <= neuropil <= 1.5:
        raise ConfigError(f"neuropil={neuropil} is outside [0, 1.5]; suite2p's default is 0.7")
    keep = np.flatnonzero(iscell[:, 0] > 0.5) if cells_only else np.arange(len(F))
    if not len(keep):
        raise SchemaError(f"iscell.npy marks no ROI as a cell ({len(F)} ROIs); pass cells_only=False to load them all")
    corrected = F[keep] - neuropil * Fneu[keep]
    window = max(3, int(round(baseline * fs)))
    f0 = _baseline(corrected, window, percentile)
    bad = np.flatnonzero((f0 <= 0).any(1))
    if len(bad):
        raise SchemaError(f"{len(bad)} ROI(s) (suite2p indices {keep[bad][:8].tolist()}) have a baseline at or below zero "
                          f"after subtracting {neuropil} x neuropil, so ΔF/F is undefined; lower neuropil= or leave them "
                          "out (cells_only, or select ROIs)")
    dff = ((corrected - f0) / f0).T.astype(np.float32)
    unit = pd.DataFrame({"name": [f"roi{k}" for k in keep], "roi": keep, "cell_probability": iscell[keep, -1]})
    if stat is not None:
        if len(stat) != len(F):
            raise SchemaError(f"stat.npy has {len(stat)} ROIs for {len(F)} in F.npy")
        med = np.array([np.asarray(stat[k].get("med", (np.nan, np.nan)), dtype=float) for k in keep])
        unit["y"], unit["x"] = med[:, 0], med[:, 1]  # suite2p's med is (y, x)
        unit["npix"] = [int(stat[k].get("npix", len(np.atleast_1d(stat[k].get("ypix", []))))) for k in keep]
    time = np.arange(F.shape[1]) / fs
    info = {"dt": 1.0 / fs, "units": "dF/F", "neuropil": neuropil, "baseline_s": baseline, "percentile": percentile,
            **dict(attrs or {})}
    return Activations(torch.from_numpy(np.ascontiguousarray(dff)), ("sample", "unit"),
                       {"sample": {"time": time}, "unit": unit}, {**recording_attrs(folder, None, "suite2p"), **info})


def from_spike_times(spike_times: Sequence[Any], bin_size: float, *, start: float | None = None,
                     end: float | None = None, names: Sequence[str] | None = None,
                     unit_coords: dict[str, Sequence[Any]] | pd.DataFrame | None = None,
                     attrs: dict[str, Any] | None = None) -> Activations:
    """Bin spike times (seconds, one array per unit) into counts.

    Bins are ``bin_size`` wide and aligned on multiples of ``bin_size``, from ``start`` (default: the
    first spike) to ``end`` (default: the last spike); spikes outside are not counted. ``names`` (one per
    unit, default ``"0"``, ``"1"``...) and ``unit_coords`` (e.g. ``{"quality": [...]}``) become unit
    coordinates; sample coordinate ``time`` holds the bin centres.

    Parameters
    ----------
    spike_times : sequence of array-like
        One array of spike times (seconds) per unit; all finite.
    bin_size : float
        Bin width in seconds (positive).
    start, end : float, optional
        Time range to bin; None: the first / last spike over all units (both are required when no unit spikes).
    names : sequence of str, optional
        One name per unit; None: ``"0"``, ``"1"``, ...
    unit_coords : dict or pandas.DataFrame, optional
        Extra unit coordinates, one row per unit (a ``name`` column is ignored).
    attrs : dict, optional
        Extra attrs, merged over the defaults (``kind``, ``dt``, ``units``, ``source``).
    """
    bin_size = check_positive("bin_size", bin_size)
    trains = [np.sort(np.asarray(t, dtype=np.float64).reshape(-1)) for t in spike_times]
    if not trains:
        raise ConfigError("no units: give one array of spike times per unit")
    if any(not np.isfinite(t).all() for t in trains):
        raise SchemaError("spike times must be finite numbers (seconds)")
    nonempty = [t for t in trains if len(t)]
    if not nonempty and (start is None or end is None):
        raise SchemaError("no unit has any spike; give start= and end= to bin silent units")
    lo = min(t[0] for t in nonempty) if start is None else float(start)
    hi = max(t[-1] for t in nonempty) if end is None else float(end)
    if not hi > lo:
        raise ConfigError(f"end ({hi}) must be after start ({lo})")
    first, last = int(np.floor(lo / bin_size + 1e-9)), int(np.floor(hi / bin_size + 1e-9)) + 1
    edges = bin_size * np.arange(first, last + 1)
    # the edge bins reach past [start, end] (they are aligned on multiples of bin_size): spikes there are not counted
    counts = np.stack([np.histogram(t[(t >= lo) & (t <= hi)], edges)[0] for t in trains], axis=1).astype(np.float32)
    unit = pd.DataFrame({"name": [str(n) for n in names] if names is not None else [str(i) for i in range(len(trains))]})
    if len(unit) != len(trains):
        raise ConfigError(f"names has {len(unit)} entries for {len(trains)} units")
    extra = pd.DataFrame(unit_coords) if unit_coords is not None else pd.DataFrame()
    if extra.shape[1] == 0:
        extra = pd.DataFrame(index=unit.index)
    if len(extra) != len(trains):
        raise ConfigError(f"unit_coords have {len(extra)} rows for {len(trains)} units")
    unit = pd.concat([unit, extra.reset_index(drop=True).drop(columns=["name"], errors="ignore")], axis=1)
    unit["index"] = np.arange(len(trains))
    info = {"kind": "recording", "dt": bin_size, "units": "spike count per bin", "source": "spike times",
            **dict(attrs or {})}
    return Activations(torch.from_numpy(counts), ("sample", "unit"),
                       {"sample": {"time": (edges[:-1] + edges[1:]) / 2}, "unit": unit}, info)


def read_cluster_groups(path: str | os.PathLike) -> pd.DataFrame:
    """A phy/Kilosort cluster table (``cluster_group.tsv``, ``cluster_KSLabel.tsv``): ``cluster_id`` and
    ``quality`` (``good``, ``mua``, ``noise``, ``unsorted``).

    Parameters
    ----------
    path : str or os.PathLike
        The ``.tsv`` file; it needs ``cluster_id`` and a ``group``, ``KSLabel`` or ``quality`` column.
    """
    path = require_file(path, "cluster table")
    table = pd.read_csv(path, sep="\t")
    label = next((c for c in ("group", "KSLabel", "quality") if c in table.columns), None)
    if "cluster_id" not in table.columns or label is None:
        raise SchemaError(f"{path.name} needs columns cluster_id and group (or KSLabel); it has {list(table.columns)}")
    return pd.DataFrame({"cluster_id": table["cluster_id"].astype(int), "quality": table[label].astype(str)})


def load_phy(folder: str | os.PathLike, bin_size: float, *, qualities: Sequence[str] | None = ("good", "mua"),
             sample_rate: float | None = None) -> Activations:
    """Binned spike counts of a Kilosort/phy folder, one unit per cluster, named ``cluster<id>``, with the
    curated quality (``cluster_group.tsv``, else Kilosort's ``cluster_KSLabel.tsv``) as unit coordinate
    ``quality``. ``qualities``: the clusters to keep (default good and mua; ``None``: all).
    ``sample_rate`` (Hz) defaults to ``params.py``'s ``sample_rate``.

    Parameters
    ----------
    folder : str or os.PathLike
        The Kilosort/phy output folder (``spike_times.npy``, ``spike_clusters.npy``, ``params.py``).
    bin_size : float
        Bin width in seconds.
    qualities : sequence of str or None, optional
        Qualities of the clusters to keep (default ``("good", "mua")``); clusters missing from the table are
        ``"unsorted"``; None keeps every cluster.
    sample_rate : float, optional
        Sampling rate of ``spike_times.npy`` in Hz; None: read from ``params.py``.
    """
    folder = require_file(folder, "phy folder")
    times = np.load(require_file(folder / "spike_times.npy", "spike_times.npy")).reshape(-1)
    clusters = np.load(require_file(folder / "spike_clusters.npy", "spike_clusters.npy")).reshape(-1)
    if len(times) != len(clusters):
        raise SchemaError(f"spike_times.npy has {len(times)} spikes but spike_clusters.npy {len(clusters)}")
    if not len(times):
        raise SchemaError(f"{folder} has no spikes (spike_times.npy is empty); was the sorting run on this recording?")
    if sample_rate is None:
        params = folder / "params.py"
        if not params.is_file():
            raise ConfigError(f"{folder} has no params.py; pass sample_rate=... (Hz)")
        scope: dict[str, Any] = {}
        for line in params.read_text().splitlines():  # simple 'name = value' lines; not executed
            name, sep, value = line.partition("=")
            if sep and name.strip() == "sample_rate":
                scope["sample_rate"] = float(value.strip())
        if "sample_rate" not in scope:
            raise ConfigError(f"{params} has no sample_rate; pass sample_rate=... (Hz)")
        sample_rate = scope["sample_rate"]
    sample_rate = check_positive("sample_rate", sample_rate)
    table = next((folder / n for n in ("cluster_group.tsv", "cluster_KSLabel.tsv") if (folder / n).is_file()), None)
    ids = np.unique(clusters)
    quality = pd.Series("unsorted", index=ids)
    if table is not None:
        groups = read_cluster_groups(table).set_index("cluster_id")["quality"]
        quality.update(groups[groups.index.isin(ids)])
    if qualities is not None:
        ids = np.array([i for i in ids if quality[i] in set(qualities)])
        if not len(ids):
            raise SchemaError(f"no cluster has quality {list(qualities)}; pass qualities=None to keep all")
    seconds = times.astype(np.float64) / sample_rate
    trains = [seconds[clusters == i] for i in ids]
    return from_spike_times(trains, bin_size, start=0.0, end=float(seconds.max()),
                            names=[f"cluster{i}" for i in ids],
                            unit_coords={"cluster_id": ids.astype(int), "quality": quality[ids].to_numpy()},
                            attrs={**recording_attrs(folder, None, "phy"), "dt": bin_size,
                                   "units": "spike count per bin", "sample_rate": sample_rate})
