"""Rodent hippocampal tetrode units with position: the nelpy example data (linear track and W-maze).

Spike-sorted units (MatClust) and video position tracking (60 frames/s, 30 kHz clock, pixels) from
github.com/nelpy/example-data (MIT, "Copyright (c) 2017 nelpy"). The linear-track session is described
in nelpy's LinearTrackDemo notebook as CA1 of a Long-Evans rat recorded with a SpikeGadgets headstage
(about 15 min on the track followed by about 15 min of rest); the W-maze session alternates run and
rest. Units are place-cell-like (see ``shared/data/hippocampus_nelpy/SOURCE.md``).

Example
-------
>>> from interp.data import load
>>> rec = load("hippocampus", environment="linear-track", bin_size=0.25)
>>> rec.dims, rec.sizes["unit"]
(('sample', 'unit'), 31)
>>> running = rec.sel(speed=lambda v: v > 20)          # bins where the rat runs faster than 20 px/s
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..errors import SchemaError
from ..tensor import Activations
from ._common import check_choice, check_positive, data_root, require_file

__all__ = ["load_hippocampus", "read_spikes", "read_position"]

ENVIRONMENTS = ("linear-track", "w-maze")
CLOCK_RATE = 30000.0
CITATION = ("nelpy example data (github.com/nelpy/example-data, MIT licence, Copyright (c) 2017 nelpy): "
            "MatClust-sorted tetrode units and video position tracking")
_STILL_FRAMES = 600  # 10 s at 60 frames/s without any change of position = animal in its (untracked) rest box


def read_spikes(path: str | Path) -> pd.DataFrame:
    """Read a MatClust ``spikes.mat``: one row per non-empty unit with ``tetrode``, ``cluster`` and ``times`` (s).

    Tetrodes and clusters are numbered from 1, in the order of the file. A tetrode with a single unit
    is stored as a bare struct, tetrodes with several as a cell array; empty clusters are skipped.

    Parameters
    ----------
    path : str or pathlib.Path
        The ``spikes.mat`` file.
    """
    from scipy.io import loadmat

    mat = loadmat(str(require_file(path, "spikes.mat")), squeeze_me=True)
    if "spikes" not in mat:
        raise SchemaError(f"{path} has no 'spikes' variable (keys: {[k for k in mat if not k.startswith('__')]})")
    rows = []
    for tetrode, clusters in enumerate(np.atleast_1d(mat["spikes"]), start=1):
        clusters = np.asarray(clusters)
        if clusters.dtype.names is not None:  # a tetrode with one unit is a bare struct
            entries = [(1, clusters)]
        elif clusters.dtype == object:  # several units: a cell array, possibly with empty cells
            entries = list(enumerate(clusters.ravel(), start=1))
        else:  # an empty numeric array: the tetrode was not sorted
            entries = []
        for cluster, entry in entries:
            entry = np.asarray(entry)
            if entry.size == 0 or entry.dtype.names is None or "time" not in entry.dtype.names:
                continue
            times = np.atleast_1d(np.asarray(entry["time"].ravel()[0], dtype=np.float64)).ravel()
            if times.size:
                rows.append({"tetrode": tetrode, "cluster": cluster, "times": np.sort(times)})
    return pd.DataFrame(rows, columns=["tetrode", "cluster", "times"])


def read_position(path: str | Path) -> pd.DataFrame:
    """Read a SpikeGadgets ``.videoPositionTracking`` file: columns ``time`` (s), ``x``, ``y`` (pixels).

    The header (ending in ``<End settings>``) gives the clock rate (30 kHz) and the packet layout
    ``<time uint32><xloc uint16><yloc uint16><xloc2 uint16><yloc2 uint16>``. Frames whose time stamp
    does not increase are dropped.

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.videoPositionTracking`` file.
    """
    raw = require_file(path, "position file").read_bytes()
    marker = b"<End settings>\n"
    end = raw.find(marker)
    if not raw.startswith(b"<Start settings>") or end < 0:
        raise SchemaError(f"{path} is not a videoPositionTracking file (no <Start settings> ... <End settings> header)")
    header = raw[:end].decode("latin-1")
    clock = CLOCK_RATE
    for line in header.splitlines():
        if line.startswith("clockrate:"):
            clock = float(line.split(":", 1)[1])
    body = raw[end + len(marker):]
    layout = np.dtype([("time", "<u4"), ("x", "<u2"), ("y", "<u2"), ("x2", "<u2"), ("y2", "<u2")])
    packets = np.frombuffer(body[: len(body) // layout.itemsize * layout.itemsize], layout)
    ticks = packets["time"].astype(np.int64)
    keep = np.ones(len(ticks), dtype=bool)
    keep[1:] = ticks[1:] > np.maximum.accumulate(ticks)[:-1]
    packets = packets[keep]
    return pd.DataFrame({"time": packets["time"] / clock, "x": packets["x"].astype(np.float64),
                         "y": packets["y"].astype(np.float64)})


def _still_mask(x: np.ndarray, y: np.ndarray, min_frames: int = _STILL_FRAMES) -> np.ndarray:
    """True for frames inside runs of at least ``min_frames`` frames with an unchanged position."""
    moved = np.r_[True, (np.diff(x) != 0) | (np.diff(y) != 0)]
    run_id = np.cumsum(moved)
    run_length = np.bincount(run_id)[run_id]
    return run_length >= min_frames


def _speed(position: pd.DataFrame, sigma_s: float) -> np.ndarray:
    """Speed (pixels/s) from Gaussian-smoothed position (sigma in seconds)."""
    from scipy.ndimage import gaussian_filter1d

    t = position["time"].to_numpy()
    frame_dt = float(np.median(np.diff(t)))
    sigma = max(sigma_s / frame_dt, 1e-6)
    xs = gaussian_filter1d(position["x"].to_numpy(), sigma)
    ys = gaussian_filter1d(position["y"].to_numpy(), sigma)
    return np.hypot(np.gradient(xs, t), np.gradient(ys, t))


def _linearise(x: np.ndarray, y: np.ndarray, on_track: np.ndarray) -> np.ndarray:
    """Position along the first principal axis of the on-track positions (pixels, 0 at the track's end)."""
    points = np.c_[x, y]
    centre = points[on_track].mean(0)
    _, _, vt = np.linalg.svd(points[on_track] - centre, full_matrices=False)
    projection = (points - centre) @ vt[0]
    return projection - projection[on_track].min()


def load_hippocampus(environment: str = "linear-track", bin_size: float = 0.1, *, speed_sigma: float = 0.25,
                     min_spikes: int = 1, on_track_only: bool = False) -> Activations:
    """Binned spike counts of hippocampal units with the animal's position and speed per bin.

    Parameters
    ----------
    environment:
        ``"linear-track"`` (31 units) or ``"w-maze"`` (25 non-empty units).
    bin_size:
        Bin width in seconds (``attrs["dt"]``). Bins tile the time covered by both the spike sorting
        and the position tracking.
    speed_sigma:
        Standard deviation (s) of the Gaussian that smooths position before speed is differentiated.
    min_spikes:
        Keep units with at least this many spikes.
    on_track_only:
        Keep only bins where the animal was tracked on the maze (not in the untracked rest box).

    Returns
    -------
    Activations
        ``(sample, unit)`` float32 spike counts. Sample coords: ``time`` (bin centre, s), ``x``, ``y``
        (pixels, linearly interpolated at the bin centre), ``speed`` (pixels/s), ``on_track`` (False
        while the position stays unchanged for 10 s or more, i.e. the rest box) and, on the linear
        track, ``linear_position`` (pixels along the track's principal axis). Unit coords: ``name``
        (``"t{tetrode}c{cluster}"``), ``tetrode``, ``cluster``, ``index``, ``n_spikes``, ``rate`` (Hz
        over the binned span). Attrs: ``source``, ``kind``, ``dt``, ``units``, ``citation``,
        ``environment``, ``position_units``.
    """
    environment = check_choice("environment", environment, ENVIRONMENTS)
    bin_size = check_positive("bin_size", bin_size)
    root = data_root("hippocampus", "hippocampus_nelpy", vendored=True, env="INTERP_HIPPOCAMPUS") / environment
    units = read_spikes(root / "spikes.mat")
    position = read_position(root / "trajectory.videoPositionTracking")
    units = units[units["times"].map(len) >= int(min_spikes)].reset_index(drop=True)

    start = max(position["time"].iloc[0], min(t[0] for t in units["times"]))
    stop = min(position["time"].iloc[-1], max(t[-1] for t in units["times"]))
    edges = start + bin_size * np.arange(int(np.floor((stop - start) / bin_size)) + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    counts = np.stack([np.diff(np.searchsorted(t, edges, side="left")) for t in units["times"]], axis=1)

    t = position["time"].to_numpy()
    still = _still_mask(position["x"].to_numpy(), position["y"].to_numpy())
    nearest = np.clip(np.searchsorted(t, centres), 0, len(t) - 1)
    sample = pd.DataFrame({
        "time": centres,
        "x": np.interp(centres, t, position["x"].to_numpy()),
        "y": np.interp(centres, t, position["y"].to_numpy()),
        "speed": np.interp(centres, t, _speed(position, speed_sigma)),
        "on_track": ~still[nearest],
    })
    if environment == "linear-track":
        sample["linear_position"] = _linearise(sample["x"].to_numpy(), sample["y"].to_numpy(),
                                               sample["on_track"].to_numpy())
    span = edges[-1] - edges[0]
    unit = pd.DataFrame({
        "name": [f"t{a}c{b}" for a, b in zip(units["tetrode"], units["cluster"])],
        "tetrode": units["tetrode"].to_numpy(),
        "cluster": units["cluster"].to_numpy(),
        "index": np.arange(len(units)),
        "n_spikes": counts.sum(0),
        "rate": counts.sum(0) / span,
    })
    attrs = {"source": "hippocampus", "kind": "recording", "environment": environment, "dt": bin_size,
             "units": "spike count per bin", "position_units": "pixels (camera 640x480)", "citation": CITATION,
             "path": str(root)}
    out = Activations(torch.from_numpy(counts.astype(np.float32)), ("sample", "unit"),
                      {"sample": sample, "unit": unit}, attrs)
    return out.where("on_track") if on_track_only else out
