"""On-disk activation store: sharded ``.npy`` files + a JSON manifest, written by one writer (or by the
ranks of one distributed job) and checked when read.

Layout of a store directory::

    manifest.json                  schema, fingerprint, shards with their checksums, progress, complete
    writer.lock                    the writer lock (flock) and who holds it
    shards/{array}/00000.npy       rows of one array written by one append (rank r: r00001-00000.npy)
    shards/_coords/00000.parquet   the sample coordinates of those rows
    ranks/r00001.json              a rank's own progress (distributed jobs only; merged on commit)

Guarantees
----------
* **One writer.** :meth:`ActivationStore.create` takes an OS file lock (``flock`` on ``writer.lock``) for
  the life of the writer: until :meth:`~ActivationStore.finish`, :meth:`~ActivationStore.close` or the
  process's exit. A second writer gets :class:`~interp.errors.StoreLockedError` naming the holder (pid,
  host, start time, job), or waits if asked (``wait=True`` or seconds). The OS drops the lock when its
  holder dies, so a lock file left by a killed process never blocks. :meth:`ActivationStore.open` reads
  without a lock; readers see the last committed append.
* **Atomic, durable appends.** Shard files are written to temporary files and renamed; the manifest that
  lists them is rewritten (temporary file, fsync, rename, fsync of the directory) only after the shards'
  data and directories are fsynced, so a killed process or an OS crash leaves the store as it was after
  some complete append. Orphan files of an interrupted append are ignored and overwritten on resume.
  Appends do not wait for the disk: a background thread makes them durable in order, grouping the
  appends that arrived while it was busy into one commit; :meth:`~ActivationStore.flush`,
  :meth:`~ActivationStore.finish` and :meth:`~ActivationStore.close` wait for it. A commit that fails (a
  full disk) ends the writer and is raised by its next call; the store keeps its last durable state.
* **Fingerprint.** A store records what it was made from (:func:`fingerprint`: a hash of the inputs' contents,
  Datasets and DataLoaders included, the model name and a hash of every parameter and buffer, sites,
  positions, dtype, library version). Resuming or rerunning into it with anything different raises
  :class:`~interp.errors.FingerprintError` naming the difference; ``overwrite=True`` starts again.
* **Nothing else is touched.** A store is only written into a new or empty folder, or an existing store;
  a non-empty folder without a readable manifest (or a file) is refused with :class:`SchemaError`, and
  ``overwrite=True`` removes only the store's own entries (manifest, shards, ranks). Lock files are never
  followed as symbolic links; array names with path separators or ``..``, or two names sharing a shard
  folder after sanitising, are refused.
* **A sealed manifest.** The manifest carries a checksum of itself (``manifest_sum``) and every field is
  checked when it is read (shard names, row counts, each shard's start, sizes against the files):
  a damaged or hand-edited one raises :class:`SchemaError` / :class:`CorruptFileError`; reads never clip.
* **Checked reads.** Opening a store checks that every shard file exists with the byte size it was
  written with (one ``stat`` per file: a shorter or longer file is refused before anything is read); the
  first read of a shard checks its header (dtype, row count, row shape) against the manifest and its XXH3
  checksum, once per open store, so minibatch reads then cost what unchecked ones did. A mismatch raises
  :class:`~interp.errors.CorruptFileError`; a short shard is never read. :meth:`~ActivationStore.verify`
  checks everything at once.
* **Several ranks, one store.** With ``rank``/``world_size`` (or under an initialised
  ``torch.distributed`` process group), rank 0 holds the writer lock and admits the other ranks of the
  same job (same ``job_id``: by default torchrun's ``TORCHELASTIC_RUN_ID`` plus ``MASTER_ADDR:MASTER_PORT``);
  every other writer is refused. Each rank appends its own shards and progress (``ranks/rNNNNN.json``);
  :meth:`~ActivationStore.finish` on rank 0 waits until every rank has finished and commits the manifest
  once, atomically. Rows are in **rank-major order**: rank 0's rows in its append order, then rank 1's,
  and so on; when rank ``r`` captures the ``r``-th contiguous block of the inputs (:func:`rank_range`) this
  is exactly the order of a one-process run. A killed rank resumes from its own progress on rerun (same
  ``world_size``). Under ``torch.distributed`` rank 0 tells every rank (a broadcast) whether the store is
  complete or refused, so rerunning a finished job ends at once on every rank. Only a filesystem shared by all ranks (with working ``flock``) is required.
* **Shuffled training input.** :meth:`~ActivationStore.minibatches` draws a global permutation per epoch
  (same ``seed``, same order) and gathers each minibatch shard by shard in sorted order, holding only the
  minibatch in memory; with ``rank``/``world_size`` every rank reads its own disjoint part of each global
  minibatch.

Example
-------
>>> store = ActivationStore.create("/tmp/acts", {"mlp": (16,)}, dims={"mlp": ("sample", "unit")})  # doctest: +SKIP
>>> store.append({"mlp": torch.randn(8, 16)}, inputs_done=8)                                     # doctest: +SKIP
>>> store.finish()                                                                               # doctest: +SKIP
>>> for batch in ActivationStore.open("/tmp/acts").minibatches("mlp", batch_size=4): ...          # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .._integrity import ALGORITHM, checksum
from ..errors import DimensionError, SchemaError, StoreLockedError
from ..tensor import _jsonable, atomic_write
from . import _lock
from . import _manifest as checked
from . import _ranks as ranks
from ._attach import FORMAT_VERSION, READABLE, Attach  # noqa: F401 (READABLE: part of this module's API)
from ._commit import MANIFEST, GroupCommit
from ._fingerprint import fingerprint
from ._ranks import rank_range
from ._read import StoreReader, _safe

__all__ = ["ActivationStore", "fingerprint", "rank_range"]

LOCK = checked.LOCK

_crash: Callable[[str], None] | None = None  # test hook: called at named points inside an append


def _checkpoint(point: str) -> None:
    if _crash is not None:
        _crash(point)


def _save_npy(path: str, value: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, value)


def _schema(arrays: Mapping[str, Sequence[int]], dims: Mapping[str, Sequence[str]] | None) -> dict[str, Any]:
    dims = dims or {}
    checked.check_array_names(arrays, "the store's schema")
    schema = {
        name: {
            "shape": [int(s) for s in shape],
            "dims": list(dims.get(name, ("sample",) + tuple(f"dim{i}" for i in range(len(shape))))),
        }
        for name, shape in arrays.items()
    }
    for name, spec in schema.items():
        if len(spec["dims"]) != len(spec["shape"]) + 1:
            raise DimensionError(f"array {name!r}: dims {spec['dims']} must name the sample axis plus {len(spec['shape'])} row axes")
    return schema


class ActivationStore(Attach, GroupCommit, StoreReader):
    """A directory of activations that grows by atomic appends and reads back as checked memmaps.

    :meth:`create` makes a store, or resumes an existing one, as its one writer; :meth:`open` reads one.
    See the module docstring for the guarantees (lock, fingerprint, checksums, fsync, several ranks).

    Parameters
    ----------
    path : str or os.PathLike
        The store's directory.
    manifest : dict
        Its manifest as read or being built (construct stores with :meth:`create` or :meth:`open`, not
        directly).
    """

    _checkpoint = staticmethod(_checkpoint)  # for the committer thread (GroupCommit)

    def __init__(self, path: str | os.PathLike, manifest: dict[str, Any]) -> None:
        super().__init__(path, manifest)
        self.rank, self.world_size, self.job_id = 0, int(manifest.get("world_size", 1)), None
        self._writer = False
        self._lock_fd: int | None = None
        self._rank_fd: int | None = None
        self._fingerprint: dict[str, Any] | None = None
        self._timeout = 600.0
        self._init_committer()

    # ----------------------------------------------------------------- create/open
    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        arrays: Mapping[str, Sequence[int]] | None = None,
        *,
        dims: Mapping[str, Sequence[str]] | None = None,
        dtype: str = "float32",
        unit_coords: Mapping[str, pd.DataFrame | Mapping[str, Sequence[Any]]] | None = None,
        attrs: Mapping[str, Any] | None = None,
        fingerprint: Mapping[str, Any] | None = None,
        overwrite: bool = False,
        wait: bool | float = False,
        rank: int | None = None,
        world_size: int | None = None,
        job_id: str | None = None,
        timeout: float = 600.0,
    ) -> ActivationStore:
        """Become the writer of the store at ``path``: create it, or resume a compatible existing one.

        ``arrays`` (``{name: shape of one row}``), ``dims``, ``dtype``, ``unit_coords`` and ``attrs`` define
        the schema; leave ``arrays`` out when it is only known later and call :meth:`define` before the first
        append. Resuming a store with another schema raises :class:`SchemaError`, with another
        ``fingerprint`` (see :func:`fingerprint`) :class:`FingerprintError`; ``overwrite=True`` starts again.

        Another live writer makes this raise :class:`StoreLockedError`, or wait: ``wait=True`` as long as it
        takes, a number for that many seconds. In a distributed job pass ``rank``/``world_size`` (default:
        the initialised ``torch.distributed`` group) and the same ``job_id`` on every rank (default under
        torchrun: its run id and master address); ranks other than 0 wait up to ``timeout`` seconds for
        rank 0, and rank 0's :meth:`finish` waits up to ``timeout`` for every rank.

        >>> with ActivationStore.create("/tmp/acts", {"x": (4,)}) as store:   # doctest: +SKIP
        ...     store.append({"x": np.ones((2, 4))}, inputs_done=2); store.finish()
        """
        collective = rank is None and world_size is None  # ranks of a torch.distributed group agree by broadcast
        rank, world_size, job_id = ranks.resolve_job(rank, world_size, job_id)
        store = cls(path, {"arrays": {}, "world_size": world_size, "shards": [], "n_rows": 0, "inputs_done": 0,
                           "complete": False, "attrs": {}, "unit_coords": {}, "dtype": dtype})
        try:
            args = (fingerprint, overwrite, wait, rank, world_size, job_id, float(timeout))
            if collective and world_size > 1:
                if store._attach_collectively(*args):
                    return store  # rank 0 found the store complete: every rank returns it, nothing to write
            else:
                store._attach(*args)
            if arrays is not None:
                store.define(arrays, dims=dims, dtype=dtype, unit_coords=unit_coords, attrs=attrs)
        except BaseException:
            store.close()  # a refused writer lets go at once (its traceback may keep it alive for long)
            raise
        return store

    @classmethod
    def open(cls, path: str | os.PathLike) -> ActivationStore:
        """Open an existing store for reading (no lock; shard file sizes are checked now, headers and checksums on
        each shard's first read)."""
        path = Path(path)
        store = cls(path, cls._load_manifest(path))
        store._check_files()
        return store

    def define(
        self,
        arrays: Mapping[str, Sequence[int]],
        *,
        dims: Mapping[str, Sequence[str]] | None = None,
        dtype: str = "float32",
        unit_coords: Mapping[str, pd.DataFrame | Mapping[str, Sequence[Any]]] | None = None,
        attrs: Mapping[str, Any] | None = None,
    ) -> ActivationStore:
        """Set the schema of a store created without ``arrays`` (checks it against a resumed store's).

        On ranks other than 0 this waits (up to ``timeout``) for rank 0 to define the store, then checks
        that both agree.

        Parameters
        ----------
        arrays : mapping of str to sequence of int
            ``{array name: shape of one row}``, e.g. ``{"blocks.0.hook_resid_post": (128, 768)}``.
        dims : mapping of str to sequence of str, optional
            Dim names of each array's rows (one per axis of its row shape); None: ``dim0``, ``dim1``, ...
        dtype : str, optional
            The NumPy dtype rows are stored in (default ``"float32"``).
        unit_coords : mapping of str to DataFrame or mapping, optional
            Per array, coordinates of its last axis (e.g. unit names).
        attrs : mapping, optional
            JSON-serialisable metadata kept in the manifest.
        """
        schema = _schema(arrays, dims)
        np.dtype(dtype)
        if not self.manifest["arrays"] and self.rank > 0:
            self._require_writer()
            if not ranks.wait_until(lambda: (self.path / MANIFEST).exists(), self._timeout):
                raise StoreLockedError(f"rank {self.rank} waited {self._timeout:.0f} s for rank 0 to define the store at "
                                       f"{self.path}; is rank 0 running?")
            self._adopt(self._load_manifest(self.path))
        if self.manifest["arrays"]:
            self._check_schema(schema, dtype)
            return self
        self._require_writer()
        coords = {}
        for name, frame in (unit_coords or {}).items():
            frame = pd.DataFrame(frame) if not isinstance(frame, pd.DataFrame) else frame
            coords[name] = _jsonable(frame.to_dict(orient="list"))
        self.manifest = {
            "format": "interp-activation-store",
            "version": FORMAT_VERSION,
            "dtype": dtype,
            "arrays": schema,
            "unit_coords": coords,
            "attrs": _jsonable(dict(attrs or {})),
            "fingerprint": self._fingerprint,
            "checksum": ALGORITHM,
            "world_size": self.world_size,
            "shards": [],
            "n_rows": 0,
            "inputs_done": 0,
            "complete": False,
        }
        text = json.dumps(checked.seal(self.manifest))
        atomic_write(self.path / MANIFEST, lambda tmp: Path(tmp).write_text(text))
        return self

    def _check_schema(self, schema: dict[str, Any], dtype: str) -> None:
        mine = self.manifest["arrays"]
        problems = []
        if set(mine) != set(schema):
            problems.append(f"arrays {sorted(mine)} vs requested {sorted(schema)}")
        for name in set(mine) & set(schema):
            if mine[name] != schema[name]:
                problems.append(f"array {name!r}: stored {mine[name]} vs requested {schema[name]}")
        if self.manifest["dtype"] != dtype:
            problems.append(f"dtype {self.manifest['dtype']} vs requested {dtype}")
        if problems:
            raise SchemaError(
                f"the store at {self.path} was created with a different schema: " + "; ".join(problems)
                + ". Use another path or overwrite=True."
            )

    # -------------------------------------------------------------------- write
    def _require_writer(self) -> None:
        if not self._writer:
            raise StoreLockedError(
                f"this ActivationStore for {self.path} is not a writer (opened for reading, finished or closed); "
                "take the writer lock with ActivationStore.create(path, ...) to append"
            )

    def _shard_name(self, i: int) -> str:
        return f"{i:05d}" if self.world_size == 1 else f"r{self.rank:05d}-{i:05d}"

    def append(
        self,
        rows: Mapping[str, torch.Tensor | np.ndarray],
        sample_coords: pd.DataFrame | Mapping[str, Sequence[Any]] | None = None,
        inputs_done: int | None = None,
    ) -> None:
        """Append one batch of rows to every array, atomically (committed in the background; see the module notes).

        ``rows`` must hold every array with the same number of rows; ``sample_coords`` one row per
        stored row; ``inputs_done`` the producing job's (or this rank's) progress after this batch.

        Parameters
        ----------
        rows : mapping of str to torch.Tensor or numpy.ndarray
            One batch per array (every array of the schema, the same number of rows each); bfloat16 is
            stored as float32's values in the store's dtype.
        sample_coords : DataFrame or mapping, optional
            One row of sample coordinates per stored row (e.g. ``sample``, ``pos``); None: none.
        inputs_done : int, optional
            How many inputs the producing job (or this rank) has consumed after this batch, for resuming;
            None: unchanged.
        """
        self._require_writer()
        self._raise_error()  # a commit of an earlier append failed (e.g. a full disk): stop here
        if not self.manifest["arrays"]:
            raise SchemaError("this store has no schema yet: call define(arrays, ...) before the first append")
        if self.complete:
            raise SchemaError(f"the store at {self.path} is complete; create it with overwrite=True to write it again")
        if set(rows) != set(self.arrays):
            raise SchemaError(f"append needs rows for exactly the arrays {self.arrays}, got {sorted(rows)}")
        dtype = np.dtype(self.manifest["dtype"])
        arrays: dict[str, np.ndarray] = {}
        n = None
        for name in self.arrays:
            value, spec = rows[name], self._spec(name)
            if isinstance(value, torch.Tensor):
                value = value.detach().to("cpu", dtype=torch.float32 if value.dtype == torch.bfloat16 else None).numpy()
            value = np.ascontiguousarray(value, dtype=dtype)
            if list(value.shape[1:]) != spec["shape"]:
                raise DimensionError(f"array {name!r} rows have shape {tuple(value.shape[1:])}, the store expects {tuple(spec['shape'])}")
            if n is not None and value.shape[0] != n:
                raise DimensionError(f"arrays in one append must have the same number of rows ({n} vs {value.shape[0]} for {name!r})")
            n = value.shape[0]
            arrays[name] = value
        coords = pd.DataFrame(sample_coords) if sample_coords is not None else pd.DataFrame(index=range(n or 0))
        if len(coords) != n:
            raise DimensionError(f"sample_coords has {len(coords)} rows, the arrays have {n}")
        if self.rank > 0 and (_lock.holder(self.path / LOCK) or {}).get("job_id") != self.job_id:
            raise StoreLockedError(f"the store at {self.path} is no longer held by rank 0 of job {self.job_id!r} "
                                   f"but by {_lock.describe(_lock.holder(self.path / LOCK))}; this rank stops")
        shard = self._shard_name(len(self.manifest["shards"]))
        files, sizes = [], []
        for name, value in arrays.items():
            file = self.path / "shards" / _safe(name) / f"{shard}.npy"
            atomic_write(file, lambda tmp, v=value: _save_npy(tmp, v), sync=False)
            sizes.append(file.stat().st_size)
            files.append(file)
            _checkpoint("shard")
        entry: dict[str, Any] = {"name": shard, "rows": int(n or 0), "start": self.n_rows, "coords": bool(len(coords.columns)),
                                 "bytes": sizes}  # "sums" (checksums) are added by the committer thread
        if len(coords.columns):
            buf = io.BytesIO()
            coords.reset_index(drop=True).to_parquet(buf, index=False)
            data = buf.getvalue()
            file = self.path / "shards" / "_coords" / f"{shard}.parquet"
            atomic_write(file, lambda tmp: Path(tmp).write_bytes(data), sync=False)
            entry["coords_sum"] = checksum(data)
            files.append(file)
        _checkpoint("shards")
        with self._cv:
            self.manifest["shards"].append(entry)
            self.manifest["n_rows"] = self.n_rows + int(n or 0)
            if inputs_done is not None:
                self.manifest["inputs_done"] = int(inputs_done)
        self._bounds = None
        self._commit(files, entry)

    def _raise_error(self) -> None:
        """A failed commit (e.g. a full disk) ends this writer: it lets go of the lock and shows what is
        durably stored again, so that a new writer resumes from there."""
        if self._error is not None:
            exc, self._error = self._error, None
            self.close()
            try:
                manifest = self._load_manifest(self.path)
                self.manifest = self._ledger_view(manifest) if self.world_size > 1 and not manifest.get("complete") else manifest
            except Exception:  # nothing durable yet: keep the schema, forget the rows
                self.manifest.update(shards=[], n_rows=0, inputs_done=0)
            self._reset()
            raise exc

    def finish(self, **attrs: Any) -> None:
        """Mark the store complete (optionally recording more attrs) and release the writer lock.

        In a distributed job every rank calls it: a rank > 0 records that its part is done and waits (up to
        ``timeout``) for rank 0's commit; rank 0 waits for every rank, then commits the manifest once.
        """
        if self.complete:  # already committed (e.g. resumed after the end): nothing to do
            self.close()
            return
        self._require_writer()
        self.flush()
        if not self.manifest["arrays"] and self.rank > 0:  # a rank with no inputs: it still reports done
            if ranks.wait_until(lambda: (self.path / MANIFEST).exists(), self._timeout):
                self._adopt(self._load_manifest(self.path))
            if self.complete:
                return
        if not self.manifest["arrays"]:
            self.close()
            raise SchemaError(f"nothing was written to the store at {self.path} (no schema defined, no rows); it stays incomplete")
        self.manifest["attrs"].update(_jsonable(attrs))
        if self.world_size == 1:
            self.manifest["complete"] = True
            self._commit([], wait=True)
            self.close()
            return
        self.manifest["done"] = True
        self._commit([], wait=True)
        if self.rank == 0:
            found = ranks.collect(self.path, self.world_size, self._timeout)
            for ledger in found:
                self._check_ledger(ledger)
            merged = self.manifest = ranks.merge(self.manifest, found)
            self._reset()
            self._check_files()
            text = json.dumps(checked.seal(merged))
            atomic_write(self.path / MANIFEST, lambda tmp: Path(tmp).write_text(text))
            self.close()
            _checkpoint("finished")
            return
        self.close()

        def committed() -> dict[str, Any] | None:
            manifest = self._load_manifest(self.path)
            return manifest if manifest.get("complete") else None

        manifest = ranks.wait_until(committed, self._timeout)
        if not manifest:
            raise StoreLockedError(f"rank {self.rank} finished its part, but rank 0 did not commit the store at {self.path} "
                                   f"within {self._timeout:.0f} s; rerun the job to resume (finished ranks redo nothing)")
        self.manifest = manifest
        self._reset()
        self._check_files()
        _checkpoint("finished")

    def close(self) -> None:
        """Wait for the last append's commit and release the writer lock (the store stays readable)."""
        try:
            self.flush()
        finally:
            _lock.release(self._rank_fd)
            _lock.release(self._lock_fd)
            self._rank_fd = self._lock_fd = None
            self._writer = False

    def __enter__(self) -> ActivationStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:  # a forgotten writer still lets go of its locks when collected
        for fd in (getattr(self, "_rank_fd", None), getattr(self, "_lock_fd", None)):
            if fd is not None:
                try:
                    os.close(fd)
                except Exception:  # already closed, or the interpreter is shutting down
                    pass
