"""The activation store's root of trust: its manifest, checked before anything in it is believed, and the
folder it lives in, claimed before anything is written or removed there (see :mod:`interp.store`).

* :func:`seal` adds a checksum of the manifest's own content (``manifest_sum``, XXH3 over its canonical JSON);
  :func:`check_manifest` verifies it and every field (types, ranges, shard names, the row count and each
  shard's start as the running sum of rows), so a damaged or hand-edited manifest raises
  :class:`~interp.errors.CorruptFileError` / :class:`~interp.errors.SchemaError`, never a raw
  ``KeyError``/``TypeError`` or a read that silently repeats rows. Ranks' progress files are sealed and
  checked the same way (:func:`check_ledger`).
* :func:`check_array_names` refuses array names that would escape their shard folder (path separators,
  ``..``) or share one with another array after sanitising (``"mlp:input"`` and ``"mlp_input"``).
* :func:`claim` decides whether a folder may hold a store: a store (readable manifest), an empty folder, or
  one holding only a store's own entries; ``overwrite`` removes only those entries, never anything else.

Example
-------
>>> m = seal({"format": "interp-activation-store", "version": 3})
>>> verify_sum(m, "m")
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._integrity import ALGORITHM, checksum, fsync_dir
from ..errors import CorruptFileError, SchemaError

__all__ = ["MANIFEST", "LOCK", "SUM", "seal", "verify_sum", "check_manifest", "check_ledger", "check_array_names",
           "safe_name", "claim"]

MANIFEST = "manifest.json"
LOCK = "writer.lock"
SUM = "manifest_sum"
OWN = {MANIFEST, LOCK, "shards", "ranks"}  # what a store folder holds; nothing else is ever removed
SHARD_NAME = re.compile(r"^(r\d{5}-)?\d{5}$")
_SEALED_FROM = 3  # manifests of this format version on always carry their checksum


def safe_name(name: str) -> str:
    """The shard folder of array ``name`` (``/`` and ``:`` become ``_``)."""
    return name.replace("/", "_").replace(":", "_")


def _canonical(record: Mapping[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in record.items() if k != SUM}, sort_keys=True).encode()


def seal(record: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` with ``manifest_sum``: the checksum of everything else in it."""
    return {**{k: v for k, v in record.items() if k != SUM}, SUM: checksum(_canonical(record))}


def verify_sum(record: Mapping[str, Any], where: str, *, required: bool = True) -> None:
    """Raise :class:`CorruptFileError` when ``record``'s ``manifest_sum`` is missing (if ``required``) or does
    not match its content."""
    want = record.get(SUM)
    if want is None:
        if required:
            raise CorruptFileError(f"{where} carries no {SUM} (its checksum): it was damaged or edited by hand. "
                                   "Restore it from a copy, or recompute the store (rerun with overwrite=True).")
        return
    got = checksum(_canonical(record))
    if got != want:
        raise CorruptFileError(f"{where} has {ALGORITHM} checksum {got}, {want} was recorded when it was written: it was "
                               "damaged or edited by hand. Restore it from a copy, or recompute the store "
                               "(rerun with overwrite=True).")


def _bad(where: str, what: str) -> SchemaError:
    return SchemaError(f"{where} is malformed: {what}. Restore it from a copy, or recompute the store "
                       "(rerun with overwrite=True).")


def _int(value: Any, where: str, field: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _bad(where, f"{field} must be an integer >= {low}, found {value!r}")
    return value


def check_array_names(names: Iterable[Any], where: str = "the store") -> None:
    """Refuse array names that are not strings, contain a path separator, ``..`` or a NUL, name the coordinate
    folder, or share a shard folder with another name after sanitising (:func:`safe_name`)."""
    seen: dict[str, str] = {}
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise SchemaError(f"{where}: array names must be non-empty strings, got {name!r}")
        if "/" in name or "\\" in name or "\0" in name or ".." in name or name.startswith("."):
            raise SchemaError(f"{where}: array name {name!r} contains a path separator, '..' or a leading '.'; it "
                              "would be written outside its shard folder. Rename the array (e.g. blocks.0.mlp).")
        folder = safe_name(name)
        if folder == "_coords":
            raise SchemaError(f"{where}: array name {name!r} is the folder of the sample coordinates; rename it")
        if folder in seen:
            raise SchemaError(f"{where}: arrays {seen[folder]!r} and {name!r} would share the shard folder "
                              f"shards/{folder} (':' and '/' become '_'); rename one of them")
        seen[folder] = name


def _check_shards(shards: Any, n_arrays: int, n_rows: Any, where: str, *, sized: bool) -> None:
    if not isinstance(shards, list):
        raise _bad(where, f"shards must be a list, found {type(shards).__name__}")
    start, names = 0, set()
    for i, shard in enumerate(shards):
        at = f"shard {i}"
        if not isinstance(shard, dict):
            raise _bad(where, f"{at} must be an object, found {type(shard).__name__}")
        name = shard.get("name", f"{i:05d}")
        if not isinstance(name, str) or not SHARD_NAME.match(name) or name in names:
            raise _bad(where, f"{at} has the name {name!r} (expected 00012 or r00001-00012, each once)")
        names.add(name)
        rows = _int(shard.get("rows"), where, f"{at} rows")
        if _int(shard.get("start"), where, f"{at} start") != start:
            raise _bad(where, f"{at} starts at row {shard['start']}, but the shards before it hold {start} rows")
        start += rows
        for key, kind in (("bytes", int), ("sums", str)):
            value = shard.get(key)
            if value is None and (key == "sums" or not sized):
                continue
            if (not isinstance(value, list) or len(value) != n_arrays
                    or not all(isinstance(v, kind) and not isinstance(v, bool) for v in value)):
                raise _bad(where, f"{at} {key} must list one {kind.__name__} per array ({n_arrays}), found {value!r}")
        if not isinstance(shard.get("coords", False), bool) or not isinstance(shard.get("coords_sum", ""), str):
            raise _bad(where, f"{at} has a malformed coords / coords_sum field")
    if _int(n_rows, where, "n_rows") != start:
        raise _bad(where, f"n_rows is {n_rows}, but its shards hold {start} rows")


def check_manifest(m: dict[str, Any], where: str) -> None:
    """Check every field of a store manifest (after its format and version were recognised)."""
    version = m.get("version")
    verify_sum(m, where, required=isinstance(version, int) and version >= _SEALED_FROM)
    dtype = m.get("dtype")
    try:
        ok = isinstance(dtype, str) and np.dtype(dtype).kind in "biuf"
    except TypeError:
        ok = False
    if not ok:
        raise _bad(where, f"dtype must name a numeric NumPy dtype, found {dtype!r}")
    arrays = m.get("arrays")
    if not isinstance(arrays, dict):
        raise _bad(where, "arrays must be an object {name: {shape, dims}}")
    check_array_names(arrays, where)
    for name, spec in arrays.items():
        if not isinstance(spec, dict):
            raise _bad(where, f"array {name!r} must be an object with shape and dims")
        shape, dims = spec.get("shape"), spec.get("dims")
        if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
            raise _bad(where, f"array {name!r} has shape {shape!r} (expected a list of sizes >= 0)")
        if not isinstance(dims, list) or len(dims) != len(shape) + 1 or not all(isinstance(d, str) for d in dims):
            raise _bad(where, f"array {name!r} has dims {dims!r} (expected {len(shape) + 1} names)")
    for key, kind in (("attrs", dict), ("unit_coords", dict), ("complete", bool)):
        if not isinstance(m.get(key, kind()), kind):
            raise _bad(where, f"{key} must be a {kind.__name__}, found {type(m.get(key)).__name__}")
    for name, frame in m.get("unit_coords", {}).items():
        if (not isinstance(frame, dict) or not all(isinstance(v, list) for v in frame.values())
                or len({len(v) for v in frame.values()}) > 1):
            raise _bad(where, f"unit_coords of {name!r} must be an object of equally long lists")
    if not isinstance(m.get("fingerprint"), (dict, type(None))):
        raise _bad(where, "fingerprint must be an object or null")
    _int(m.get("world_size", 1), where, "world_size", 1)
    _int(m.get("inputs_done"), where, "inputs_done")
    _check_shards(m.get("shards"), len(arrays), m.get("n_rows"), where, sized=version != 1)


def check_ledger(ledger: dict[str, Any], n_arrays: int | None, where: str) -> None:
    """Check a rank's progress file (see :mod:`interp.store._ranks`): its checksum and fields."""
    verify_sum(ledger, where, required=False)
    _int(ledger.get("rank"), where, "rank")
    _int(ledger.get("world_size"), where, "world_size", 1)
    _int(ledger.get("inputs_done"), where, "inputs_done")
    if not isinstance(ledger.get("fingerprint"), (dict, type(None))) or not isinstance(ledger.get("attrs", {}), dict):
        raise _bad(where, "fingerprint / attrs must be objects")
    shards = ledger.get("shards")
    width = n_arrays if n_arrays is not None else (len(shards[0].get("bytes", [])) if shards and isinstance(shards[0], dict) else 0)
    _check_shards(shards, width, ledger.get("n_rows"), where, sized=True)


def _own(name: str) -> bool:
    return name in OWN or (name.startswith(f".{MANIFEST}.") and name.endswith(".tmp"))


def _readable(path: Path) -> bool:
    try:
        value = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(value, dict) and value.get("format") == "interp-activation-store"


def claim(path: Path, *, overwrite: bool) -> None:
    """Make sure ``path`` may hold a store before anything is written there: it is absent, empty, a store
    (a readable manifest), or holds only a store's own entries; else :class:`SchemaError`. With ``overwrite``
    remove the store's own entries (manifest, shards, ranks; never the lock, never anything else)."""
    if path.exists() and not path.is_dir():
        raise SchemaError(f"{path} is a file, not a folder: an activation store is a folder. Pass a new or empty "
                          "folder (or an existing store) as the store path / --out.")
    if path.is_symlink():
        raise SchemaError(f"{path} is a symbolic link; pass the folder it points to as the store path")
    if not path.exists():
        return
    entries = sorted(path.iterdir())
    foreign = [e.name for e in entries if not _own(e.name)]
    if foreign and not _readable(path):
        verb = "overwrite" if overwrite else "write into"
        raise SchemaError(
            f"{path} is not an activation store (no readable {MANIFEST}) and not empty: it holds {foreign[:5]}"
            + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            + f". Refusing to {verb} it, so that nothing in it is lost; pass a new or empty folder as the store path "
            "(CLI: --out)."
        )
    for entry in entries:
        if entry.name in ("shards", "ranks") and entry.is_symlink():
            raise SchemaError(f"{entry} is a symbolic link; a store's shards/ and ranks/ must be real folders inside it")


def clear(path: Path) -> None:
    """Remove a store's own entries (after :func:`claim` and with the writer lock held), keeping the lock file
    and anything else in the folder."""
    for entry in path.iterdir():
        if _own(entry.name) and entry.name != LOCK:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    fsync_dir(path)
