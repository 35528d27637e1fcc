"""Whole-brain calcium imaging of freely moving C. elegans with NeuroPAL neuron identities (Flavell lab).

Seven SWF702 worms (GCaMP7f + NeuroPAL), 800 confocal volumes each at about 1.66 Hz (dt = 0.6 s),
130-146 traced neurons of which 87-110 carry a NeuroPAL identity, with behaviour (velocity, reversals,
head angle) per volume. Dag U*, Nwabudike I*, Kang D* et al. (2023) Dissecting the functional
organization of the C. elegans serotonergic system at whole-brain scale. Cell,
doi:10.1016/j.cell.2023.04.023; files from github.com/flavell-lab/NSM_5HTR_analysis.

The source repository has no licence, so the data are read from ``shared/data/celegans_flavell`` (or
``$INTERP_CELEGANS``, or ``root=``) and never copied into this package.

Example
-------
>>> from interp.data import load
>>> worms = load("celegans")                       # a list of 7 Activations           # doctest: +SKIP
>>> ava = load("celegans", worm=0).sel(name="AVA*")  # AVAL / AVAR traces of worm 0   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..errors import ConfigError, SchemaError, closest
from ..tensor import Activations
from ._common import BUNDLED, check_choice, data_root, require_file

__all__ = ["load_celegans", "worm_ids", "canonical_neurons", "canonical_name"]

CITATION = ("Dag U, Nwabudike I, Kang D, Gomes MA, Kim J, Atanas AA, Bueno E, Estrem C, Pugliese S, Wang Z, "
            "Towlson E, Flavell SW (2023). Dissecting the functional organization of the C. elegans serotonergic "
            "system at whole-brain scale. Cell. doi:10.1016/j.cell.2023.04.023")

TRACES = {
    "zscore": ("gcamp/trace_array", "z-scored GCaMP/mNeptune ratio (per neuron)"),
    "raw": ("gcamp/trace_array_original", "GCaMP/mNeptune ratio, un-normalised"),
    "F_F20": ("gcamp/traces_array_F_F20", "F/F20: ratio divided by its 20th percentile"),
}
BEHAVIOUR = {  # sample coordinate -> dataset in the h5 file
    "velocity": "behavior/velocity",
    "head_angle": "behavior/head_angle",
    "angular_velocity": "behavior/angular_velocity",
    "body_curvature": "behavior/worm_curvature",
}


def _root(root: str | Path | None) -> Path:
    if root is not None:
        path = Path(root).expanduser()
        if not path.is_dir():
            from ..errors import DataNotFoundError

            raise DataNotFoundError(f"C. elegans data folder not found: {path}")
        return path
    return data_root("celegans", "celegans_flavell", vendored=False, env="INTERP_CELEGANS")


def worm_ids(root: str | Path | None = None) -> list[str]:
    """The worm ids (dataset uids such as ``"2022-07-26-31"``) that have a trace file, sorted.

    Parameters
    ----------
    root : str or pathlib.Path, optional
        The data folder (holding ``swf702_with_id``); None: the installed data set (or ``$INTERP_CELEGANS``).
    """
    folder = _root(root) / "swf702_with_id"
    return sorted(p.name[: -len("-data.h5")] for p in folder.glob("*-data.h5"))


def canonical_neurons() -> list[str]:
    """The 302 hermaphrodite neuron names in canonical (sorted) order, as in the homogenized data set.

    Names follow the cect package's ``PREFERRED_HERM_NEURON_NAMES`` (MIT), motor neurons unpadded
    (``VB2``, not ``VB02``).
    """
    lines = (BUNDLED / "celegans_neurons_302.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def canonical_name(label: str) -> str:
    """The canonical neuron name for a NeuroPAL label, or ``""`` when it is not one neuron.

    Zero-padded motor neuron numbers are unpadded (``VB02`` -> ``VB2``); uncertain labels (``"AIA?"``)
    and class-only labels return ``""``.

    Parameters
    ----------
    label : str
        A NeuroPAL label (converted with ``str`` and stripped).
    """
    import re

    label = str(label).strip()
    match = re.fullmatch(r"([A-Z]+)0*([1-9][0-9]*)", label)
    if match:
        label = match.group(1) + match.group(2)
    return label if label in _canonical_set() else ""


_CANONICAL: set[str] = set()


def _canonical_set() -> set[str]:
    if not _CANONICAL:
        _CANONICAL.update(canonical_neurons())
    return _CANONICAL


def _labels(root: Path, uid: str, n_units: int) -> pd.DataFrame:
    frame = pd.DataFrame({"index": np.arange(n_units)})
    path = root / "labels_csv" / f"{uid}-labels.csv"
    columns = ["label", "neuron_class", "LR", "DV", "neuropal_roi", "confidence"]
    if path.exists():
        labels = pd.read_csv(path)
        missing = {"trace_col", *columns} - set(labels.columns)
        if missing:
            raise SchemaError(f"{path} lacks columns {sorted(missing)}")
        if labels["trace_col"].max() >= n_units:
            raise SchemaError(f"{path} labels trace column {labels['trace_col'].max()} but the worm has {n_units} traces")
        frame = frame.merge(labels.rename(columns={"trace_col": "index"})[["index", *columns]], on="index", how="left")
    else:
        for col in columns:
            frame[col] = np.nan
    label = frame["label"].fillna("").astype(str)
    frame.insert(1, "name", np.where(label == "", [f"unk_{i}" for i in frame["index"]], label))
    frame["label"] = label
    frame["canonical"] = [canonical_name(v) for v in label]
    conf = pd.to_numeric(frame["confidence"], errors="coerce").fillna(-1)  # a name given twice: the surer one keeps it
    best = conf.groupby(frame["canonical"]).transform("max")
    first = frame.assign(_c=conf).groupby("canonical")["_c"].transform(lambda c: c.index == c.idxmax())
    frame.loc[(frame["canonical"] != "") & ((conf < best) | ~first.astype(bool)), "canonical"] = ""
    frame["identified"] = frame["canonical"] != ""
    for col in ["neuron_class", "LR", "DV"]:
        frame[col] = frame[col].fillna("").astype(str)
    frame["confidence"] = frame["confidence"].astype(float)
    frame["neuropal_roi"] = frame["neuropal_roi"].fillna(-1).astype(int)
    return frame


def _load_worm(root: Path, uid: str, trace: str, nan_policy: str) -> Activations:
    import h5py

    path = require_file(root / "swf702_with_id" / f"{uid}-data.h5", f"trace file of worm {uid}")
    key, description = TRACES[trace]
    with h5py.File(path, "r") as f:
        for needed in [key, "timing/timestamp_confocal", "behavior/reversal_vec", *BEHAVIOUR.values()]:
            if needed not in f:
                raise SchemaError(f"{path} has no dataset {needed!r}")
        traces = np.asarray(f[key][()], dtype=np.float32)
        stamps = np.asarray(f["timing/timestamp_confocal"][()], dtype=np.float64)
        behaviour = {name: np.asarray(f[k][()], dtype=np.float64) for name, k in BEHAVIOUR.items()}
        reversal = np.asarray(f["behavior/reversal_vec"][()]).astype(bool)
    if traces.ndim != 2 or traces.shape[0] != len(stamps):
        raise SchemaError(f"{path}: traces {traces.shape} do not match {len(stamps)} time stamps (expected frames x neurons)")
    dt = float(np.median(np.diff(stamps)))
    sample = pd.DataFrame({"frame": np.arange(len(stamps)), "time": stamps - stamps[0], **behaviour,
                           "reversal": reversal})
    sample.insert(0, "worm", uid)
    attrs = {
        "source": "celegans", "kind": "recording", "worm": uid, "dt": dt, "sfreq": 1.0 / dt, "trace": trace,
        "units": description, "citation": CITATION, "path": str(path),
        "coord_units": {"time": "s", "velocity": "as stored in the file (not stated there; mm/s in the Flavell lab's papers)",
                        "head_angle": "rad", "reversal": "behavior/reversal_vec of the file (not velocity < 0)"},
    }
    acts = Activations(torch.from_numpy(traces), ("sample", "unit"),
                       {"sample": sample, "unit": _labels(root, uid, traces.shape[1])}, attrs)
    return acts.check_finite(nan_policy, dim="unit")


def load_celegans(worm: str | int | None = None, *, trace: str = "zscore", nan_policy: str = "raise",
                  root: str | Path | None = None) -> Activations | list[Activations]:
    """Whole-brain calcium traces of freely moving worms, one :class:`Activations` per worm.

    Parameters
    ----------
    worm:
        ``None`` for all worms (a list, sorted by id), a worm id such as ``"2022-07-26-31"`` or its
        position in :func:`worm_ids`.
    trace:
        ``"zscore"`` (``trace_array``, the default), ``"raw"`` (``trace_array_original``) or ``"F_F20"``.
    nan_policy:
        Passed to :meth:`Activations.check_finite` over units: ``"raise"`` (default: a
        :class:`NaNError` counting the NaNs), ``"drop"`` (drop neurons with any NaN), ``"zero"`` or
        ``"ignore"``. The seven local worms have no NaN in any trace.
    root:
        The data folder (default: ``$INTERP_CELEGANS`` or ``shared/data/celegans_flavell``), holding
        ``swf702_with_id/<id>-data.h5`` and ``labels_csv/<id>-labels.csv``.

    Returns
    -------
    Activations or list of Activations
        ``(sample, unit)`` float32, sample = confocal volume. Sample coords: ``worm``, ``frame``,
        ``time`` (s since the first volume), ``velocity``, ``head_angle``, ``angular_velocity``,
        ``body_curvature`` and ``reversal`` (bool, the file's ``reversal_vec``; it agrees with
        ``velocity < 0`` on only 76-91% of frames, so it is not derived from velocity). Unit coords:
        ``index`` (trace column), ``name`` (NeuroPAL label, ``"unk_{index}"`` when unidentified; labels
        ending in ``?`` are uncertain and a few labels occur twice in a worm), ``label``, ``canonical``
        (the canonical neuron name or ``""``; a name given to two traces of a worm stays on the one with the
        higher confidence, so it identifies one unit), ``identified``, ``neuron_class``, ``LR``, ``DV``,
        ``confidence`` (1-5, NaN when unidentified), ``neuropal_roi``. Attrs: ``dt`` (about 0.6 s),
        ``sfreq``, ``worm``, ``units``, ``citation``.
    """
    trace = check_choice("trace", trace, TRACES)
    check_choice("nan_policy", nan_policy, ["raise", "drop", "zero", "ignore"])
    folder = _root(root)
    ids = worm_ids(folder)
    if not ids:
        from ..errors import DataNotFoundError

        raise DataNotFoundError(f"no <id>-data.h5 files in {folder / 'swf702_with_id'}")
    if worm is None:
        return [_load_worm(folder, uid, trace, nan_policy) for uid in ids]
    if isinstance(worm, (int, np.integer)) and not isinstance(worm, bool):
        if not -len(ids) <= worm < len(ids):
            raise ConfigError(f"worm={worm} out of range: there are {len(ids)} worms ({ids})")
        return _load_worm(folder, ids[int(worm)], trace, nan_policy)
    if worm not in ids:
        hint = closest(str(worm), ids)
        raise ConfigError(f"no worm {worm!r}; worms are {ids}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    return _load_worm(folder, worm, trace, nan_policy)
