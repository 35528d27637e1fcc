"""EEG Motor Movement/Imagery data set (PhysioNet EEGMMIDB), subject 1: left vs right fist, read with MNE.

64-channel EEG at 160 Hz (BCI2000). Runs 3, 7, 11: executed opening and closing of the left or right
fist; runs 4, 8, 12: imagined. Annotations T0 = rest, T1 = left fist, T2 = right fist.
Schalk G, McFarland DJ, Hinterberger T, Birbaumer N, Wolpaw JR (2004). BCI2000: a general-purpose
brain-computer interface (BCI) system. IEEE TBME 51(6):1034-1043; Goldberger AL et al. (2000).
PhysioBank, PhysioToolkit, and PhysioNet. Circulation 101(23):e215-e220.

The EDF files are read from ``shared/data/eeg_eegmmidb_s001`` (or ``$INTERP_EEGMMIDB`` or ``root=``).

Example
-------
>>> from interp.data import load
>>> epochs = load("eegmmidb", task="imagined", tmin=0.0, tmax=2.0)             # doctest: +SKIP
>>> epochs.dims                                                                 # doctest: +SKIP
('sample', 'time', 'unit')
>>> left = epochs.sel(condition="left")                                         # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..errors import ConfigError, DataNotFoundError, require
from ..tensor import Activations
from ._common import check_choice, data_root, require_file

__all__ = ["load_eegmmidb", "RUNS"]

RUNS = {"executed": (3, 7, 11), "imagined": (4, 8, 12)}
CONDITIONS = {"T1": "left", "T2": "right"}
CITATION = ("Schalk G, McFarland DJ, Hinterberger T, Birbaumer N, Wolpaw JR (2004). BCI2000: A General-Purpose "
            "Brain-Computer Interface (BCI) System. IEEE TBME 51(6):1034-1043. Goldberger AL et al. (2000). "
            "PhysioBank, PhysioToolkit, and PhysioNet. Circulation 101(23):e215-e220.")


def _read_run(mne, path: Path, l_freq: float | None, h_freq: float | None):
    raw = mne.io.read_raw_edf(str(path), preload=True, verbose="error")
    mne.datasets.eegbci.standardize(raw)  # "Fc5." -> "FC5"
    builtin = mne.channels.get_builtin_montages()
    name = "colin27_1005" if "colin27_1005" in builtin else "standard_1005"  # renamed in MNE 1.13
    raw.set_montage(mne.channels.make_standard_montage(name), on_missing="ignore", verbose="error")
    if l_freq is not None or h_freq is not None:
        raw.filter(l_freq, h_freq, fir_design="firwin", skip_by_annotation="edge", verbose="error")
    return raw


def load_eegmmidb(task: str = "executed", tmin: float = -1.0, tmax: float = 4.0, *, subject: int = 1,
                  runs: tuple[int, ...] | None = None, l_freq: float | None = None, h_freq: float | None = None,
                  baseline: tuple[float | None, float | None] | None = None,
                  root: str | Path | None = None) -> Activations:
    """Epochs of left- vs right-fist trials as ``(sample, time, unit)``: trials x time points x channels.

    Parameters
    ----------
    task:
        ``"executed"`` (runs 3, 7, 11) or ``"imagined"`` (runs 4, 8, 12).
    tmin, tmax:
        Epoch window in seconds around each T1/T2 cue (inclusive, 160 Hz: the default -1..4 s gives 801
        time points). Epochs that do not fit in the recording are dropped.
    subject:
        PhysioNet subject number; only subject 1 is available offline.
    runs:
        Override the runs of ``task``.
    l_freq, h_freq:
        Optional band-pass (FIR, MNE defaults) applied to each run before epoching.
    baseline:
        Optional MNE baseline window, e.g. ``(None, 0)``.
    root:
        Folder holding ``S001R03.edf`` etc. (default: ``$INTERP_EEGMMIDB`` or ``shared/data/eeg_eegmmidb_s001``).

    Returns
    -------
    Activations
        float32 volts. Sample coords: ``id``, ``condition`` (``"left"``/``"right"``), ``event``
        (``"T1"``/``"T2"``), ``label`` (0 = left, 1 = right), ``run``, ``task``, ``subject``, ``onset``
        (s from the start of the run). Time coords: ``time`` (s from the cue). Unit coords: ``name``
        (standard 10-05 channel name), ``index``, ``x``, ``y``, ``z`` (montage position, m). Attrs:
        ``sfreq`` (160), ``dt``, ``units`` ("V"), ``citation``.
    """
    mne = require("mne", "mne", extra="data")
    task = check_choice("task", task, RUNS)
    if tmax <= tmin:
        raise ConfigError(f"tmax ({tmax}) must be greater than tmin ({tmin})")
    runs = tuple(runs) if runs is not None else RUNS[task]
    unknown = [r for r in runs if r not in RUNS["executed"] + RUNS["imagined"]]
    if unknown:
        raise ConfigError(f"runs {unknown} are not left/right-fist runs; use {RUNS}")
    if root is not None:
        folder = Path(root).expanduser()
        if not folder.is_dir():
            raise DataNotFoundError(f"EEGMMIDB folder not found: {folder}")
    else:
        folder = data_root("eegmmidb", "eeg_eegmmidb_s001", env="INTERP_EEGMMIDB")

    arrays, rows, info, sfreq, times = [], [], None, None, None
    for run in runs:
        path = require_file(folder / f"S{subject:03d}R{run:02d}.edf", f"EEGMMIDB subject {subject} run {run}")
        raw = _read_run(mne, path, l_freq, h_freq)
        events, event_id = mne.events_from_annotations(raw, event_id={"T1": 1, "T2": 2}, verbose="error")
        epochs = mne.Epochs(raw, events, event_id=event_id, tmin=tmin, tmax=tmax, baseline=baseline,
                            preload=True, picks="eeg", verbose="error")
        kept = epochs.events
        arrays.append(epochs.get_data(copy=False).astype(np.float32))  # (epochs, channels, times)
        codes = {v: k for k, v in event_id.items()}
        for sample_index, event in zip(kept[:, 0], kept[:, 2]):
            rows.append({"event": codes[int(event)], "run": run, "onset": sample_index / raw.info["sfreq"]})
        info = info if info is not None else epochs.info
        sfreq, times = raw.info["sfreq"], epochs.times
    data = np.concatenate(arrays).transpose(0, 2, 1)  # -> (epochs, times, channels)
    sample = pd.DataFrame(rows)
    sample.insert(0, "id", [f"S{subject:03d}R{r:02d}e{i:02d}" for i, r in enumerate(sample["run"])])
    sample["condition"] = sample["event"].map(CONDITIONS)
    sample["label"] = (sample["event"] == "T2").astype(int)
    sample["task"] = task if runs == RUNS[task] else "custom"
    sample["subject"] = subject
    positions = np.array([ch["loc"][:3] for ch in info["chs"]], dtype=np.float64)
    unit = pd.DataFrame({"name": info["ch_names"], "index": np.arange(len(info["ch_names"])),
                         "x": positions[:, 0], "y": positions[:, 1], "z": positions[:, 2]})
    attrs = {"source": "eegmmidb", "kind": "recording", "subject": subject, "task": task, "runs": list(runs),
             "sfreq": float(sfreq), "dt": 1.0 / float(sfreq), "units": "V", "tmin": tmin, "tmax": tmax,
             "filter": [l_freq, h_freq], "citation": CITATION, "path": str(folder)}
    return Activations(torch.from_numpy(np.ascontiguousarray(data)), ("sample", "time", "unit"),
                       {"sample": sample, "time": {"time": times}, "unit": unit}, attrs)
