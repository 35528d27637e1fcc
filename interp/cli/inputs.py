"""What a positional argument of the ``interp`` command names: a model, a recording file, a store or a data set.

The rule, applied the same way by every subcommand:

1. a path that exists and is a recording file -- ``.safetensors`` written by :meth:`interp.Activations.save`,
   ``.nwb`` or ``.mat`` -- or a recording folder -- a suite2p plane folder (``F.npy``, ``iscell.npy``) or a
   Kilosort/phy folder (``spike_times.npy``, ``spike_clusters.npy``) -- is a **recording**;
2. an existing folder with ``manifest.json`` is an **activation store** (written by ``interp capture``);
3. an existing folder with ``config.json`` is a **Hugging Face model directory**;
4. a zoo name (``interp.models.available()``) is a **model**;
5. a data set name that the subcommand supports (e.g. ``celegans``) is a **data set**;
6. anything else raises :class:`~interp.errors.ConfigError` (or :class:`~interp.errors.DataNotFoundError`
   for a file path that does not exist) listing what the argument accepts.

>>> classify("induction-2l").kind                                   # doctest: +SKIP
'model'
>>> classify("rec.safetensors").kind                                # doctest: +SKIP
'recording'
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataNotFoundError, DimensionError, closest

__all__ = ["Target", "classify", "load_model", "load_recording", "RECORDING_SUFFIXES"]

#: File suffixes read as recordings, and what they are.
RECORDING_SUFFIXES: dict[str, str] = {
    ".safetensors": "an Activations file written by Activations.save",
    ".nwb": "an NWB file",
    ".mat": "a MATLAB file (v5 or v7.3)",
}
_FLAG_HINTS = {".nwb": "series= is --series NAME, bin_size= is --bin-size SECONDS",
               ".mat": "variable= is --variable NAME, dims= is --dims DIM ..., field= is --field NAME"}
_KINDS = ("model", "recording", "store", "dataset")
_NAMES = {"model": "model", "recording": "recording file", "store": "activation store", "dataset": "data set"}


@dataclass(frozen=True)
class Target:
    """A classified positional argument: ``kind`` is ``"model"``, ``"recording"``, ``"store"`` or ``"dataset"``.

    Parameters
    ----------
    kind : str
        ``"model"``, ``"recording"``, ``"store"`` or ``"dataset"``.
    value : str
        The argument as typed.
    """

    kind: str
    value: str

    @property
    def path(self) -> Path:
        """The argument as a path (recordings, stores, model directories)."""
        return Path(self.value).expanduser()


def _accepted(accept: Sequence[str], datasets: Sequence[str]) -> str:
    from .. import models

    parts = []
    if "model" in accept:
        parts.append(f"a zoo model ({', '.join(models.available())}) or a Hugging Face model directory "
                     "(a folder with config.json)")
    if "recording" in accept:
        parts.append("a recording file (" + "; ".join(f"{s}: {w}" for s, w in RECORDING_SUFFIXES.items())
                     + ") or folder (suite2p plane folder, Kilosort/phy folder)")
    if "store" in accept:
        parts.append("an activation store folder (written by interp capture)")
    if "dataset" in accept and datasets:
        parts.append(f"a data set ({', '.join(datasets)})")
    return "; or ".join(parts)


def classify(text: str, accept: Sequence[str] = _KINDS, datasets: Sequence[str] = ()) -> Target:
    """Decide what ``text`` names (see the module docstring for the rule); ``accept`` limits the kinds.

    Parameters
    ----------
    text : str
        The positional argument (a path or a name; ``~`` is expanded).
    accept : sequence of str, optional
        The kinds the subcommand takes (default all four); a recognised kind outside it raises :class:`ConfigError`.
    datasets : sequence of str, optional
        Data set names the subcommand supports (default none).
    """
    from .. import models

    unknown = set(accept) - set(_KINDS)
    if unknown:
        raise ConfigError(f"unknown target kinds {sorted(unknown)}; use {_KINDS}")
    path = Path(text).expanduser()
    found: str | None = None
    if (path.is_file() and path.suffix.lower() in RECORDING_SUFFIXES) or recording_folder(path):
        found = "recording"
    elif path.is_dir() and (path / "manifest.json").is_file():
        found = "store"
    elif path.is_dir() and (path / "config.json").is_file():
        found = "model"
    elif text in models.available():
        found = "model"
    elif text in datasets:
        found = "dataset"
    if found is not None and found in accept:
        return Target(found, text)
    what = _accepted(accept, datasets)
    if found is not None:
        raise ConfigError(f"{text!r} is a {_NAMES[found]}, which this command does not take; "
                          f"it accepts {what}")
    if path.exists():
        kind = "folder" if path.is_dir() else f"file with suffix {path.suffix or '(none)'!r}"
        raise ConfigError(f"{text!r} is a {kind} that interp cannot read here; it accepts {what}")
    if path.suffix.lower() in RECORDING_SUFFIXES or "/" in text or "\\" in text:
        raise DataNotFoundError(f"{text!r} does not exist (expected {what})")
    names = list(models.available()) * ("model" in accept) + list(datasets) * ("dataset" in accept)
    hint = closest(text, names)
    raise ConfigError(f"{text!r} is neither an existing file nor a known name; it accepts {what}"
                      + (f" (did you mean {hint[0]!r}?)" if hint else ""))


def recording_folder(path: Path) -> str | None:
    """``"suite2p"`` or ``"phy"`` when ``path`` is a folder in that layout, else None.

    Parameters
    ----------
    path : pathlib.Path
        The folder to inspect (suite2p: ``F.npy`` and ``iscell.npy`` in it or in ``plane0``; phy:
        ``spike_times.npy`` and ``spike_clusters.npy``).
    """
    if not path.is_dir():
        return None
    if any((p / "F.npy").is_file() and (p / "iscell.npy").is_file() for p in (path, path / "plane0")):
        return "suite2p"
    if (path / "spike_times.npy").is_file() and (path / "spike_clusters.npy").is_file():
        return "phy"
    return None


def load_model(target: Target | str, device: str | None = None) -> tuple[Any, Any]:
    """``(model, preprocess)`` for a zoo name or a Hugging Face model directory (:func:`interp.models.load`).

    Parameters
    ----------
    target : Target or str
        A zoo name or a Hugging Face model directory.
    device : str, optional
        Torch device to load onto; None: :func:`interp.models.load`'s default.
    """
    from .. import models

    name = target.value if isinstance(target, Target) else target
    return models.load(name, device=device)


def _sample_axis(dims: Sequence[str] | None, field: str | None) -> str:
    """The name that ``load_mat``'s ``dims`` give the axis that becomes ``sample`` (its coords go under it)."""
    if field is not None or dims is None or "sample" in dims:
        return "sample"  # trial structs: each trial is a sample
    return "trial" if "trial" in dims else "time" if "time" in dims else "sample"


def _read_mat(path: Path, args: argparse.Namespace | None, nan_policy: str = "raise") -> Any:
    """Read a ``.mat`` file with :func:`interp.data.load_mat`: ``--variable``, ``--dims`` and ``--field`` pass
    through, and each ``--annotations`` name is read as a sample coordinate from the variable of that name (or,
    for a struct array of trials, from the field of each trial); trials are concatenated into samples x units."""
    from .. import data

    dims, field = getattr(args, "dims", None), getattr(args, "field", None)
    annotations = [] if getattr(args, "behavior", None) else list(getattr(args, "annotations", None) or [])
    coords = {_sample_axis(dims, field): {a: a for a in annotations}} if annotations else None
    return data.load_mat(path, getattr(args, "variable", None), dims, field=field, coords=coords,
                         stack=False if field is not None else None, nan_policy=nan_policy)


def _read_folder(path: Path, kind: str, bin_size: float | None, nan_policy: str) -> Any:
    from .. import data

    if kind == "suite2p":
        if bin_size is not None:
            raise ConfigError("--bin-size bins spike times; a suite2p folder holds fluorescence at its frame rate")
        rec = data.load_suite2p(path)
    else:
        if bin_size is None:
            raise ConfigError(f"{path} is a Kilosort/phy folder: give --bin-size SECONDS to bin its spike times")
        rec = data.load_phy(path, bin_size)
    return rec.check_finite(nan_policy)


def _behavior(rec: Any, table: str) -> Any:
    """Add the columns of a .csv/.tsv (one row per sample) as sample coordinates."""
    import pandas as pd

    path = Path(table).expanduser()
    if not path.is_file():
        raise DataNotFoundError(f"--behavior {table}: no such file")
    frame = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    if len(frame) != rec.shape[0]:
        raise ConfigError(f"--behavior {path.name} has {len(frame)} rows but the recording has {rec.shape[0]} samples; "
                          "give one row per sample (frame / bin)")
    sample = rec.coords[rec.dims[0]].copy()
    for col in frame.columns:
        sample[col if col not in sample.columns else f"behavior_{col}"] = frame[col].to_numpy()
    return rec.replace(coords={**rec.coords, rec.dims[0]: sample})


#: ``--unit-names`` values that say what to do with repeated names; anything else is where the names are.
UNIT_NAME_POLICIES = ("error", "index", "suffix")


def _named_units(rec: Any, spec: str, path: Path, suffix: str) -> Any:
    """Name the units from ``--unit-names``: a .txt/.csv file (one name per line) or a .mat variable."""
    source = Path(spec).expanduser()
    if source.is_file():
        names = [line.strip() for line in source.read_text().splitlines() if line.strip()]
    elif suffix == ".mat":
        from .. import data

        value = data.read_mat(path, spec.split(".")[0])
        for part in spec.split("."):
            value = value[part]
        names = [str(v) for v in (value.reshape(-1, order="F") if hasattr(value, "reshape") else value)]
    else:
        raise ConfigError(f"--unit-names {spec!r} is neither {'/'.join(UNIT_NAME_POLICIES)} nor a file of names (one per "
                          "line)" + (" nor a variable of the .mat file" if suffix == ".mat" else ""))
    unit_dim = rec.dims[-1]
    if len(names) != rec.shape[-1]:
        raise ConfigError(f"--unit-names {spec}: {len(names)} names for {rec.shape[-1]} units")
    units = rec.coords[unit_dim].copy()
    units["name"] = names
    return rec.replace(coords={**rec.coords, unit_dim: units})


def _intervals(rec: Any, spec: str) -> Any:
    """Restrict a loaded recording to the intervals of a .csv/.tsv table (start/end columns, seconds)."""
    import pandas as pd

    from ..data.intervals import IntervalSet, restrict

    path = Path(spec).expanduser()
    if not path.is_file():
        raise ConfigError(f"--intervals {spec!r}: an NWB interval table name works for .nwb files only; for this "
                          "recording give a .csv/.tsv file with start and end columns (seconds)")
    frame = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    return restrict(rec, IntervalSet.from_frame(frame))


def load_recording(target: Target | str, args: argparse.Namespace | None = None) -> Any:
    """Read a recording file or folder as :class:`interp.Activations`, using the recording flags of ``args``
    (``--variable``/``--dims``/``--field`` for .mat, ``--series``/``--bin-size`` for NWB, ``--bin-size`` for
    phy folders, ``--behavior``, ``--intervals``, ``--nan-policy``) and checking that every ``--annotations``
    name is one of its sample coordinates.

    Parameters
    ----------
    target : Target or str
        The recording file (``.safetensors``, ``.nwb``, ``.mat``) or folder (suite2p, Kilosort/phy).
    args : argparse.Namespace, optional
        The parsed flags (:func:`interp.cli.flags.add_recording`); None or missing flags: the defaults.
    """
    from ..errors import NaNError
    from ..tensor import Activations

    path = target.path if isinstance(target, Target) else Path(target).expanduser()
    folder = recording_folder(path)
    if not path.is_file() and folder is None:
        raise DataNotFoundError(f"recording file not found: {path}")
    suffix = path.suffix.lower() if folder is None else f"/{folder}"
    series = getattr(args, "series", None)
    bin_size = getattr(args, "bin_size", None)
    nan_policy = getattr(args, "nan_policy", None) or "raise"
    intervals = getattr(args, "intervals", None)
    mat_flags = [f"--{f}" for f in ("variable", "dims", "field") if getattr(args, f, None) is not None]
    if mat_flags and suffix != ".mat":
        raise ConfigError(f"{' '.join(mat_flags)} read .mat files; {path.name} is not one")
    if series is not None and suffix != ".nwb":
        raise ConfigError(f"--series is for NWB files; {path.name} is not one")
    if bin_size is not None and suffix not in (".nwb", "/phy", "/suite2p"):
        raise ConfigError(f"--bin-size is for NWB units and Kilosort/phy folders; {path.name} is not one")
    try:
        if folder is not None:
            rec = _read_folder(path, folder, bin_size, nan_policy)
        elif suffix == ".safetensors":
            rec = Activations.load(path).check_finite(nan_policy)
        elif suffix == ".nwb":
            from ..data.nwb import load_nwb

            table = "trials" if intervals is None else None if intervals in ("none", "None") or \
                Path(intervals).suffix.lower() in (".csv", ".tsv") else intervals
            rec = load_nwb(path, series, bin_size=bin_size, intervals=table, nan_policy=nan_policy)
        elif suffix == ".mat":
            rec = _read_mat(path, args, nan_policy)
        else:
            raise ConfigError(f"{path.name}: recording files are {', '.join(RECORDING_SUFFIXES)}")
    except NaNError as exc:
        raise NaNError(f"{exc} [command line: --nan-policy drop drops the units holding them]") from exc
    except (ConfigError, DimensionError) as exc:  # the loaders speak Python; say which flags those are
        if suffix not in _FLAG_HINTS:
            raise
        raise type(exc)(f"{exc} [command line: {_FLAG_HINTS[suffix]}]") from exc
    if getattr(args, "unit_names", None) not in (None, *UNIT_NAME_POLICIES):
        rec = _named_units(rec, args.unit_names, path, suffix)
    if getattr(args, "behavior", None):
        rec = _behavior(rec, args.behavior)
    if intervals is not None and intervals not in ("none", "None") and (suffix != ".nwb" or
                                                                         Path(intervals).suffix.lower() in (".csv", ".tsv")):
        rec = _intervals(rec, intervals)
    check_annotations(rec, getattr(args, "annotations", None) or [], str(path))
    return rec


def reject_file_flags(args: argparse.Namespace, what: str, annotations: bool = True) -> None:
    """Raise :class:`ConfigError` when flags that read recording files were given for something else.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed flags.
    what : str
        The end of the error message, saying what the positional argument was instead.
    annotations : bool, optional
        Also reject ``--annotations`` (default True; False where the subcommand uses it for other inputs).
    """
    names = ("annotations",) * annotations + ("variable", "dims", "field", "series", "bin_size", "behavior", "intervals")
    given = ["--" + n.replace("_", "-") for n in names if getattr(args, n, None)]
    if given:
        raise ConfigError(f"{' '.join(given)} read recording files; {what}")


def check_annotations(rec: Any, annotations: Sequence[str], where: str) -> None:
    """Raise :class:`ConfigError` naming the available sample coordinates when one is missing.

    Parameters
    ----------
    rec : Activations
        The recording; its first dim holds the sample coordinates.
    annotations : sequence of str
        The coordinate names asked for.
    where : str
        The recording's name in the message (e.g. its path).
    """
    sample = rec.dims[0]
    have = list(rec.coords[sample].columns)
    missing = [a for a in annotations if a not in have]
    if missing:
        raise ConfigError(f"{where} has no sample coordinate {missing}; its {sample!r} coordinates are "
                          f"{have or 'none'}. Name coordinates that exist with --annotations (for a .mat file, "
                          "variables that hold one value per sample)")


def require_matrix(rec: Any, where: str) -> None:
    """Raise :class:`DimensionError` unless ``rec`` is 2-D (samples x units).

    Parameters
    ----------
    rec : Activations
        The recording.
    where : str
        Its name in the message.
    """
    if rec.data.ndim != 2:
        raise DimensionError(f"{where} has dims {rec.dims}; this command needs (samples x units). Flatten or select "
                             "the other axes first (Activations.flatten / isel) and save it again")
