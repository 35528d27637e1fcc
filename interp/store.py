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
  The fsyncs and the manifest rewrite of append *k* run in a background thread while append *k+1* is
  computed; :meth:`~ActivationStore.finish` and :meth:`~ActivationStore.close` wait for them.
* **Fingerprint.** A store records what it was made from (:func:`fingerprint`: inputs' hash, model name
  and a parameter fingerprint, sites, positions, dtype, library version). Resuming or rerunning into it
  with anything different raises :class:`~interp.errors.FingerprintError` naming the difference;
  ``overwrite=True`` starts again.
* **Checked reads.** Opening a store checks every shard file's header against the manifest (dtype, row
  count and row shape) and its size against the header; each shard's XXH3 checksum is verified on its
  first read (once per open store, then cached, so minibatch reads cost the same as unchecked ones).
  A mismatch raises :class:`~interp.errors.CorruptFileError`; a short shard is never read.
* **Several ranks, one store.** With ``rank``/``world_size`` (or under an initialised
  ``torch.distributed`` process group), rank 0 holds the writer lock and admits the other ranks of the
  same job (same ``job_id``: by default torchrun's ``TORCHELASTIC_RUN_ID`` plus ``MASTER_ADDR:MASTER_PORT``);
  every other writer is refused. Each rank appends its own shards and progress (``ranks/rNNNNN.json``);
  :meth:`~ActivationStore.finish` on rank 0 waits until every rank has finished and commits the manifest
  once, atomically. Rows are in **rank-major order**: rank 0's rows in its append order, then rank 1's,
  and so on; when rank ``r`` captures the ``r``-th contiguous block of the inputs (:func:`rank_range`) this
  is exactly the order of a one-process run. A killed rank resumes from its own progress on rerun (same
  ``world_size``). Only a filesystem shared by all ranks (with working ``flock``) is required.

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
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from . import _lock
from ._fingerprint import fingerprint, fingerprint_differences
from ._integrity import ALGORITHM, checksum, fsync_dir, fsync_file
from .errors import ConfigError, CorruptFileError, DimensionError, FingerprintError, SchemaError, StoreLockedError, closest
from .tensor import Activations, _jsonable, atomic_write

__all__ = ["ActivationStore", "fingerprint", "rank_range"]

MANIFEST = "manifest.json"
LOCK = "writer.lock"
RANKS = "ranks"
FORMAT_VERSION = 2
READABLE = {1, 2}
POLL = 0.05

_crash: Callable[[str], None] | None = None  # test hook: called at named points inside an append


def _checkpoint(point: str) -> None:
    if _crash is not None:
        _crash(point)


def _save_npy(path: str, value: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, value)


def _safe(name: str) -> str:
    return name.replace("/", "_").replace(":", "_")


def rank_range(n: int, rank: int, world_size: int) -> range:
    """The ``rank``-th of ``world_size`` contiguous, near-equal blocks of ``range(n)`` (the first ``n %
    world_size`` blocks are one longer). Ranks that capture these blocks write a store whose rank-major
    row order equals a one-process run's.

    >>> list(rank_range(10, 1, 3))
    [4, 5, 6]
    """
    base, extra = divmod(int(n), int(world_size))
    lo = rank * base + min(rank, extra)
    return range(lo, lo + base + (1 if rank < extra else 0))


def _job(rank: int | None, world_size: int | None, job_id: str | None) -> tuple[int, int, str | None]:
    if rank is None and world_size is None:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            rank, world_size = dist.get_rank(), dist.get_world_size()
        else:
            rank, world_size = 0, 1
    if rank is None or world_size is None:
        raise ConfigError("pass both rank and world_size (or neither: then they come from torch.distributed)")
    if not (isinstance(world_size, int) and world_size >= 1 and isinstance(rank, int) and 0 <= rank < world_size):
        raise ConfigError(f"rank must be in [0, world_size) and world_size at least 1; got rank {rank!r}, world_size {world_size!r}")
    if world_size > 1 and job_id is None:
        run, addr, port = (os.environ.get(k) for k in ("TORCHELASTIC_RUN_ID", "MASTER_ADDR", "MASTER_PORT"))
        if addr and port:
            job_id = f"{run or '-'}@{addr}:{port}"
        elif run and run != "none":
            job_id = run
        else:
            raise ConfigError(
                "the ranks of one distributed job must present the same job_id to share a store; pass job_id=... "
                "(under torchrun it defaults to TORCHELASTIC_RUN_ID@MASTER_ADDR:MASTER_PORT)"
            )
    return rank, world_size, job_id


def _schema(arrays: Mapping[str, Sequence[int]], dims: Mapping[str, Sequence[str]] | None) -> dict[str, Any]:
    dims = dims or {}
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


def _read_json(file: Path, what: str) -> dict[str, Any]:
    try:
        value = json.loads(file.read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise CorruptFileError(f"{what} {file} cannot be read ({exc}); the store is damaged: restore it or rerun with overwrite=True") from exc
    if not isinstance(value, dict):
        raise CorruptFileError(f"{what} {file} does not hold a JSON object; restore it or rerun with overwrite=True")
    return value


def _wait_until(check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(POLL)


class ActivationStore:
    """A directory of activations that grows by atomic appends and reads back as checked memmaps.

    :meth:`create` makes a store, or resumes an existing one, as its one writer; :meth:`open` reads one.
    See the module docstring for the guarantees (lock, fingerprint, checksums, fsync, several ranks).
    """

    def __init__(self, path: str | os.PathLike, manifest: dict[str, Any]) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self.rank, self.world_size, self.job_id = 0, int(manifest.get("world_size", 1)), None
        self._memmaps: dict[tuple[str, int], np.ndarray] = {}
        self._coords_ok: set[int] = set()
        self._bounds: np.ndarray | None = None
        self._writer = False
        self._lock_fd: int | None = None
        self._rank_fd: int | None = None
        self._fingerprint: dict[str, Any] | None = None
        self._timeout = 600.0
        self._pending: threading.Thread | None = None
        self._error: BaseException | None = None

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
        rank, world_size, job_id = _job(rank, world_size, job_id)
        store = cls(path, {"arrays": {}, "world_size": world_size, "shards": [], "n_rows": 0, "inputs_done": 0,
                           "complete": False, "attrs": {}, "unit_coords": {}, "dtype": dtype})
        store._attach(fingerprint, overwrite, wait, rank, world_size, job_id, float(timeout))
        if arrays is not None:
            store.define(arrays, dims=dims, dtype=dtype, unit_coords=unit_coords, attrs=attrs)
        return store

    @classmethod
    def open(cls, path: str | os.PathLike) -> ActivationStore:
        """Open an existing store for reading (no lock; shard headers are checked now, checksums on first read)."""
        path = Path(path)
        store = cls(path, cls._load_manifest(path))
        store._check_files()
        return store

    @staticmethod
    def _load_manifest(path: Path) -> dict[str, Any]:
        file = path / MANIFEST
        if not file.exists():
            raise SchemaError(f"{path} is not an activation store (no {MANIFEST})")
        manifest = _read_json(file, "the manifest")
        if manifest.get("format") != "interp-activation-store":
            raise SchemaError(f"{file} is not an interp activation-store manifest")
        if manifest.get("version") not in READABLE:
            raise SchemaError(f"{path} has store format version {manifest.get('version')}; this interp reads {sorted(READABLE)}")
        return manifest

    def _attach(self, fp: Mapping[str, Any] | None, overwrite: bool, wait: bool | float, rank: int, world_size: int,
                job_id: str | None, timeout: float) -> None:
        """Take the lock (rank 0) or be admitted (other ranks), then load what is already stored."""
        self.rank, self.world_size, self.job_id, self._timeout = rank, world_size, job_id, timeout
        self._fingerprint = None if fp is None else _jsonable(dict(fp))
        what = f"the activation store at {self.path}"
        info = _lock.my_info(job_id=job_id, rank=rank, world_size=world_size)
        self.path.mkdir(parents=True, exist_ok=True)
        if rank == 0:
            self._lock_fd = _lock.acquire(self.path / LOCK, {**info, "job_id": None}, wait=wait, what=what)
            if overwrite:
                for entry in self.path.iterdir():
                    if entry.name != LOCK:
                        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
                fsync_dir(self.path)
            _lock.record(self._lock_fd, info)  # other ranks are admitted from here on
        else:
            self._admit(job_id, wait, timeout, what)
        if world_size > 1:
            self._rank_fd = _lock.acquire(self.path / RANKS / f"r{rank:05d}.lock", info, wait=False,
                                          what=f"rank {rank} of {what}")
        self._writer = True
        if (self.path / MANIFEST).exists():
            self._adopt(self._load_manifest(self.path))
        elif (self._ledger_file()).exists():
            self.manifest.update(self._ledger_view(self.manifest))

    def _admit(self, job_id: str | None, wait: bool | float, timeout: float, what: str) -> None:
        file = self.path / LOCK

        def admitted() -> bool | None:
            info = _lock.holder(file)
            if info and _lock.is_held(file):
                if info.get("job_id") == job_id:
                    return True
                if wait is False and info.get("job_id") is not None:
                    raise StoreLockedError(f"{what} is being written by {_lock.describe(info)}, not by rank 0 of job "
                                           f"{job_id!r}; this rank is refused. Use another path or wait for that writer.")
            return None

        if not _wait_until(admitted, timeout):
            raise StoreLockedError(
                f"rank {self.rank} of job {job_id!r} waited {timeout:.0f} s for rank 0 to take {what}; it holds "
                f"{_lock.describe(_lock.holder(file)) if _lock.is_held(file) else 'no one'}. Start rank 0 with the same "
                "job_id (or raise timeout=)."
            )

    def _adopt(self, manifest: dict[str, Any]) -> None:
        """Load an existing manifest into this writer after checking that this job may resume it."""
        if manifest.get("version") != FORMAT_VERSION:
            raise SchemaError(f"{self.path} has store format version {manifest.get('version')}; it can be read but not "
                              f"resumed by this interp (format {FORMAT_VERSION}). Rerun with overwrite=True.")
        if int(manifest.get("world_size", 1)) != self.world_size:
            raise SchemaError(f"the store at {self.path} was begun by {manifest.get('world_size', 1)} rank(s); resume it with "
                              f"the same number of ranks (this run has {self.world_size}) or rerun with overwrite=True")
        self._check_fingerprint(manifest.get("fingerprint"), int(manifest.get("n_rows", 0)))
        if self.world_size > 1 and not manifest.get("complete"):
            manifest = self._ledger_view(manifest)
        self.manifest = manifest
        self._reset()
        self._check_files()
        if manifest.get("complete"):  # nothing left to write: let the next writer in at once
            self.close()

    def check_fingerprint(self, fingerprint: Mapping[str, Any]) -> ActivationStore:
        """Refuse (:class:`FingerprintError`) a job whose :func:`fingerprint` differs from the one this store
        was made from; an empty writer without one adopts it. Returns the store.

        :func:`interp.capture` calls this on a store object it is given.
        """
        self._fingerprint = _jsonable(dict(fingerprint))
        stored = self.manifest.get("fingerprint")
        self._check_fingerprint(stored, self.n_rows)
        if not self.complete:
            self._require_writer()
            if stored is None:
                self.manifest["fingerprint"] = self._fingerprint
        return self

    def _check_fingerprint(self, stored: Mapping[str, Any] | None, n_rows: int) -> None:
        if self._fingerprint is None:
            return
        if stored is None:
            if n_rows:
                raise FingerprintError(f"the store at {self.path} holds {n_rows} rows but no record of what made them, so "
                                       "resuming cannot be checked; write to another path or rerun with overwrite=True")
            return
        diffs = fingerprint_differences(stored, self._fingerprint)
        if diffs:
            raise FingerprintError(
                f"the store at {self.path} was made from something else than this run: " + "; ".join(diffs)
                + ". Resuming would mix the two. Rerun with what made it, write to another path, or pass "
                "overwrite=True (CLI: --overwrite) to start again."
            )

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
        """
        self._require_writer()
        schema = _schema(arrays, dims)
        np.dtype(dtype)
        if not self.manifest["arrays"] and self.rank > 0:
            if not _wait_until(lambda: (self.path / MANIFEST).exists(), self._timeout):
                raise StoreLockedError(f"rank {self.rank} waited {self._timeout:.0f} s for rank 0 to define the store at "
                                       f"{self.path}; is rank 0 running?")
            self._adopt(self._load_manifest(self.path))
        if self.manifest["arrays"]:
            self._check_schema(schema, dtype)
            return self
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
        atomic_write(self.path / MANIFEST, lambda tmp: Path(tmp).write_text(json.dumps(self.manifest)))
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

    # ------------------------------------------------------------------ ranks
    def _ledger_file(self, rank: int | None = None) -> Path:
        return self.path / RANKS / f"r{self.rank if rank is None else rank:05d}.json"

    def _ledger_view(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """This rank's view before the commit: the global schema with this rank's own shards and progress."""
        file = self._ledger_file()
        ledger = _read_json(file, f"rank {self.rank}'s progress") if file.exists() else {}
        if ledger and self._fingerprint is not None and ledger.get("fingerprint") not in (None, self._fingerprint):
            self._check_fingerprint(ledger["fingerprint"], int(ledger.get("n_rows", 0)))
        return {**manifest, "shards": list(ledger.get("shards", [])), "n_rows": int(ledger.get("n_rows", 0)),
                "inputs_done": int(ledger.get("inputs_done", 0)), "complete": False, "done": bool(ledger.get("done"))}

    def _ledger_text(self) -> str:
        m = self.manifest
        return json.dumps({"rank": self.rank, "world_size": self.world_size, "fingerprint": self._fingerprint,
                           "shards": m["shards"], "n_rows": m["n_rows"], "inputs_done": m["inputs_done"],
                           "done": bool(m.get("done")), "attrs": m.get("attrs", {})})

    def _merge(self) -> dict[str, Any]:
        """Rank 0: wait for every rank's finished progress, then the global manifest (rank-major order)."""
        def ledgers() -> list[dict[str, Any]] | None:
            out = []
            for r in range(self.world_size):
                file = self._ledger_file(r)
                ledger = _read_json(file, f"rank {r}'s progress") if file.exists() else {}
                if not ledger.get("done"):
                    return None
                out.append(ledger)
            return out

        found = _wait_until(ledgers, self._timeout)
        if not found:
            missing = [r for r in range(self.world_size)
                       if not (self._ledger_file(r).exists() and _read_json(self._ledger_file(r), "progress").get("done"))]
            raise StoreLockedError(
                f"rank 0 waited {self._timeout:.0f} s for ranks {missing} of {self.world_size} to finish the store at "
                f"{self.path}; they are still running or were killed. Rerun the whole job to resume them (or raise timeout=)."
            )
        shards, start = [], 0
        for ledger in found:
            if self._fingerprint is not None and ledger.get("fingerprint") not in (None, self._fingerprint):
                self._check_fingerprint(ledger["fingerprint"], int(ledger.get("n_rows", 0)))
            for entry in ledger["shards"]:
                shards.append({**entry, "start": start})
                start += int(entry["rows"])
        merged = {k: v for k, v in self.manifest.items() if k != "done"}
        merged.update(shards=shards, n_rows=start, inputs_done=sum(int(x["inputs_done"]) for x in found), complete=True)
        return merged

    # ---------------------------------------------------------------- properties
    @property
    def arrays(self) -> list[str]:
        """Names of the stored arrays (e.g. hook names)."""
        return list(self.manifest["arrays"])

    @property
    def n_rows(self) -> int:
        """Number of rows stored in each array (for a rank before the commit: its own rows)."""
        return int(self.manifest["n_rows"])

    def __len__(self) -> int:
        return self.n_rows

    @property
    def inputs_done(self) -> int:
        """How many inputs of the producing job are fully stored (for a rank before the commit: of its own
        inputs); what a resumed job skips."""
        return int(self.manifest["inputs_done"])

    @property
    def complete(self) -> bool:
        """True once the producing job called :meth:`finish` (on every rank)."""
        return bool(self.manifest.get("complete"))

    @property
    def fingerprint(self) -> dict[str, Any] | None:
        """What the store was made from (see :func:`fingerprint`), if recorded."""
        return self.manifest.get("fingerprint")

    @property
    def attrs(self) -> dict[str, Any]:
        """Provenance recorded at creation."""
        return dict(self.manifest["attrs"])

    def __repr__(self) -> str:
        return f"ActivationStore({str(self.path)!r}, arrays={self.arrays}, rows={self.n_rows}, shards={len(self.manifest['shards'])})"

    def _spec(self, name: str) -> dict[str, Any]:
        if name not in self.manifest["arrays"]:
            hint = closest(name, self.arrays)
            raise DimensionError(f"the store has no array {name!r}; it has {self.arrays}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        return self.manifest["arrays"][name]

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
        """
        self._require_writer()
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
        files, sums = [], []
        for name, value in arrays.items():
            file = self.path / "shards" / _safe(name) / f"{shard}.npy"
            atomic_write(file, lambda tmp, v=value: _save_npy(tmp, v), sync=False)
            sums.append(checksum(value))
            files.append(file)
            _checkpoint("shard")
        entry: dict[str, Any] = {"name": shard, "rows": int(n or 0), "start": self.n_rows, "coords": bool(len(coords.columns)),
                                 "sums": sums}
        if len(coords.columns):
            buf = io.BytesIO()
            coords.reset_index(drop=True).to_parquet(buf, index=False)
            data = buf.getvalue()
            file = self.path / "shards" / "_coords" / f"{shard}.parquet"
            atomic_write(file, lambda tmp: Path(tmp).write_bytes(data), sync=False)
            entry["coords_sum"] = checksum(data)
            files.append(file)
        _checkpoint("shards")
        self.manifest["shards"].append(entry)
        self.manifest["n_rows"] = self.n_rows + int(n or 0)
        if inputs_done is not None:
            self.manifest["inputs_done"] = int(inputs_done)
        self._bounds = None
        self._commit(files)

    def _commit(self, files: list[Path], *, wait: bool = False) -> None:
        """Make ``files`` durable, then rewrite the manifest (or this rank's progress) that lists them.

        Runs in a background thread (one at a time, in order), unless ``wait``.
        """
        self._join()
        if self.world_size == 1:
            target, manifest = self.path / MANIFEST, {**self.manifest, "shards": list(self.manifest["shards"])}
            render: Callable[[], str] = lambda: json.dumps(manifest)
        else:
            target, text = self._ledger_file(), self._ledger_text()
            render = lambda: text

        def run() -> None:
            try:
                for file in files:
                    fsync_file(file)
                for folder in {file.parent for file in files}:
                    fsync_dir(folder)
                _checkpoint("synced")
                text = render()

                def write(tmp: str) -> None:
                    Path(tmp).write_text(text)
                    _checkpoint("manifest")

                atomic_write(target, write)
                _checkpoint("committed")
            except BaseException as exc:  # raised in the writer's thread by the next append/finish/close
                self._error = exc

        if wait:
            run()
            self._raise_error()
        else:
            self._pending = threading.Thread(target=run, name="interp-store-commit")
            self._pending.start()

    def _join(self) -> None:
        if self._pending is not None:
            self._pending.join()
            self._pending = None
        self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            exc, self._error = self._error, None
            raise exc

    def finish(self, **attrs: Any) -> None:
        """Mark the store complete (optionally recording more attrs) and release the writer lock.

        In a distributed job every rank calls it: a rank > 0 records that its part is done and waits (up to
        ``timeout``) for rank 0's commit; rank 0 waits for every rank, then commits the manifest once.
        """
        self._require_writer()
        self._join()
        self.manifest["attrs"].update(_jsonable(attrs))
        if self.world_size == 1:
            self.manifest["complete"] = True
            self._commit([], wait=True)
            self.close()
            return
        self.manifest["done"] = True
        self._commit([], wait=True)
        if self.rank == 0:
            merged = self._merge()
            self.manifest = merged
            self._reset()
            self._check_files()
            atomic_write(self.path / MANIFEST, lambda tmp: Path(tmp).write_text(json.dumps(merged)))
            self.close()
            return
        self.close()

        def committed() -> dict[str, Any] | None:
            manifest = self._load_manifest(self.path)
            return manifest if manifest.get("complete") else None

        manifest = _wait_until(committed, self._timeout)
        if not manifest:
            raise StoreLockedError(f"rank {self.rank} finished its part, but rank 0 did not commit the store at {self.path} "
                                   f"within {self._timeout:.0f} s; rerun the job to resume (finished ranks redo nothing)")
        self.manifest = manifest
        self._reset()
        self._check_files()

    def close(self) -> None:
        """Wait for the last append's commit and release the writer lock (the store stays readable)."""
        try:
            self._join()
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

    # ------------------------------------------------------------------- checks
    def _reset(self) -> None:
        self._memmaps.clear()
        self._coords_ok.clear()
        self._bounds = None

    def _file(self, name: str, i: int) -> Path:
        shard = self.manifest["shards"][i]
        return self.path / "shards" / _safe(name) / f"{shard.get('name', f'{i:05d}')}.npy"

    def _damaged(self, file: Path, problem: str) -> CorruptFileError:
        return CorruptFileError(
            f"the store at {self.path} is damaged: {file.relative_to(self.path)} {problem}. Its rows cannot be trusted; "
            "restore the file from a copy, or recompute the store (rerun with overwrite=True)."
        )

    def _check_files(self) -> None:
        """Every listed shard file exists and its header matches the manifest (dtype, rows, row shape) and
        its size matches its header: a shorter or longer file is refused before anything is read."""
        dtype = np.dtype(self.manifest["dtype"])
        for name in self.arrays:
            row = tuple(self.manifest["arrays"][name]["shape"])
            for i, shard in enumerate(self.manifest["shards"]):
                file = self._file(name, i)
                expect = (int(shard["rows"]), *row)
                try:
                    with open(file, "rb") as f:
                        version = np.lib.format.read_magic(f)
                        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                        shape, fortran, found = read(f)
                        offset, size = f.tell(), os.fstat(f.fileno()).st_size
                except FileNotFoundError:
                    raise self._damaged(file, "is missing") from None
                except (OSError, ValueError) as exc:
                    raise self._damaged(file, f"has no valid .npy header ({exc})") from exc
                if found != dtype or tuple(shape) != expect or fortran:
                    raise self._damaged(file, f"holds {tuple(shape)} {found}, the manifest says {expect} {dtype}")
                if size != offset + int(np.prod(expect)) * dtype.itemsize:
                    raise self._damaged(file, f"has {size} bytes, {offset + int(np.prod(expect)) * dtype.itemsize} expected "
                                              f"for {expect[0]} rows (truncated or appended to)")
            for i, shard in enumerate(self.manifest["shards"]):
                if shard.get("coords") and not (self.path / "shards" / "_coords" / f"{shard.get('name', f'{i:05d}')}.parquet").exists():
                    raise self._damaged(self.path / "shards" / "_coords" / f"{shard.get('name', f'{i:05d}')}.parquet", "is missing")

    def verify(self) -> ActivationStore:
        """Check every shard's checksum now (reads the whole store once); raises :class:`CorruptFileError`."""
        for name in self.arrays:
            for i in range(len(self.manifest["shards"])):
                self._shard(name, i)
        self.sample_coords()
        return self

    # --------------------------------------------------------------------- read
    def _shard(self, name: str, i: int) -> np.ndarray:
        key = (name, i)
        block = self._memmaps.get(key)
        if block is None:
            file, shard = self._file(name, i), self.manifest["shards"][i]
            try:
                mm = np.load(file, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise self._damaged(file, f"cannot be read ({exc})") from exc
            expect = (int(shard["rows"]), *self.manifest["arrays"][name]["shape"])
            if mm.shape != expect or mm.dtype != np.dtype(self.manifest["dtype"]):
                raise self._damaged(file, f"holds {mm.shape} {mm.dtype}, the manifest says {expect} {self.manifest['dtype']}")
            sums = shard.get("sums")
            if sums is not None:
                got = checksum(mm)
                want = sums[self.arrays.index(name)]
                if got != want:
                    raise self._damaged(file, f"has {ALGORITHM} checksum {got}, {want} was recorded when it was written "
                                              "(flipped bits or a partial copy)")
            # a plain ndarray view of the memmap: fancy indexing skips the memmap subclass machinery
            block = self._memmaps[key] = np.asarray(mm)
        return block

    def _offsets(self) -> np.ndarray:
        if self._bounds is None:
            self._bounds = np.array([s["start"] for s in self.manifest["shards"]] + [self.n_rows], dtype=np.int64)
        return self._bounds

    def rows(self, name: str, index: Sequence[int] | np.ndarray | slice) -> np.ndarray:
        """Rows of array ``name`` by global row index (any order), as a NumPy array."""
        spec = self._spec(name)
        if isinstance(index, slice):
            index = np.arange(self.n_rows)[index]
        index = np.asarray(index, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= self.n_rows):
            raise DimensionError(f"row index out of range for a store of {self.n_rows} rows")
        offsets = self._offsets()
        out = np.empty((index.size, *spec["shape"]), dtype=self.manifest["dtype"])
        ordered = bool(np.all(index[1:] >= index[:-1])) if index.size > 1 else True
        order = None if ordered else np.argsort(index, kind="stable")
        sorted_index = index if ordered else index[order]
        target = out if ordered else np.empty_like(out)
        bounds = np.searchsorted(sorted_index, offsets)
        for s in range(len(offsets) - 1):
            a, b = int(bounds[s]), int(bounds[s + 1])
            if a < b:
                # take into the output slice, no temporary; mode="clip" never clips: every shard's length was
                # checked against the manifest (_check_files, _shard), and the indices above
                np.take(self._shard(name, s), sorted_index[a:b] - offsets[s], axis=0, out=target[a:b], mode="clip")
        if not ordered:
            out[order] = target
        return out

    def _coords(self, i: int) -> pd.DataFrame:
        shard = self.manifest["shards"][i]
        if not shard.get("coords"):
            return pd.DataFrame(index=range(shard["rows"]))
        file = self.path / "shards" / "_coords" / f"{shard.get('name', f'{i:05d}')}.parquet"
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise self._damaged(file, f"cannot be read ({exc})") from exc
        if i not in self._coords_ok and shard.get("coords_sum") not in (None, got := checksum(data)):
            raise self._damaged(file, f"has {ALGORITHM} checksum {got}, {shard['coords_sum']} was recorded when it was written")
        try:
            frame = pd.read_parquet(io.BytesIO(data))
        except Exception as exc:  # pyarrow's ArrowInvalid and friends
            raise self._damaged(file, f"is not a readable parquet file ({exc})") from exc
        if len(frame) != shard["rows"]:
            raise self._damaged(file, f"has {len(frame)} rows, the manifest says {shard['rows']}")
        self._coords_ok.add(i)
        return frame

    def sample_coords(self) -> pd.DataFrame:
        """The sample coordinates of every stored row."""
        frames = [self._coords(i) for i in range(len(self.manifest["shards"]))]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def unit_coords(self, name: str) -> pd.DataFrame | None:
        """The unit coordinates recorded for array ``name``, if any."""
        coords = self.manifest["unit_coords"].get(name)
        return pd.DataFrame(coords) if coords is not None else None

    def read(self, name: str, rows: slice | Sequence[int] | None = None, device: str | torch.device = "cpu") -> Activations:
        """Array ``name`` (all rows, or the selected ones) as :class:`Activations`."""
        spec = self._spec(name)
        index = np.arange(self.n_rows) if rows is None else (np.arange(self.n_rows)[rows] if isinstance(rows, slice) else np.asarray(rows))
        data = torch.from_numpy(self.rows(name, index)).to(device)
        sample = self.sample_coords().iloc[index].reset_index(drop=True) if self.n_rows else None
        coords: dict[str, Any] = {spec["dims"][0]: sample}
        units = self.unit_coords(name)
        if units is not None:
            coords[spec["dims"][-1]] = units
        return Activations(data, spec["dims"], coords, {**self.attrs, "site": name})

    def minibatches(
        self,
        name: str,
        batch_size: int = 4096,
        *,
        shuffle: bool = True,
        seed: int | None = 0,
        drop_last: bool = False,
        device: str | torch.device = "cpu",
        epochs: int = 1,
        rank: int = 0,
        world_size: int = 1,
    ) -> Iterator[torch.Tensor]:
        """Minibatches of array ``name`` as tensors (for training SAEs and probes), streamed from disk.

        With ``shuffle`` every epoch draws a global permutation of all rows (``seed`` fixes it: same seed,
        same order) and each minibatch is gathered shard by shard in sorted order, so only the minibatch
        is in memory. ``batch_size`` is the global minibatch: with ``world_size`` > 1 each rank gets the
        ``rank``-th contiguous part (:func:`rank_range`) of every global minibatch, so the ranks read
        disjoint rows, yield the same number of batches, and their union is the one-process minibatch.

        >>> for x in store.minibatches("blocks.3.mlp.hook_post", 4096, seed=0, rank=r, world_size=n): ...  # doctest: +SKIP
        """
        self._spec(name)
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        if not (world_size >= 1 and 0 <= rank < world_size):
            raise ConfigError(f"rank must be in [0, world_size), got rank {rank}, world_size {world_size}")
        rng = np.random.default_rng(seed)
        for _ in range(epochs):
            order = rng.permutation(self.n_rows) if shuffle else np.arange(self.n_rows)
            for start in range(0, self.n_rows, batch_size):
                idx = order[start : start + batch_size]
                if drop_last and idx.size < batch_size:
                    break
                if world_size > 1:
                    part = rank_range(idx.size, rank, world_size)
                    idx = idx[part.start : part.stop]
                if shuffle:  # the order inside a random minibatch carries no information; sorted reads are faster
                    idx = np.sort(idx)
                yield torch.from_numpy(self.rows(name, idx)).to(device)

    # ------------------------------------------------------------------- export
    def to_parquet(self, name: str, path: str | os.PathLike) -> Path:
        """Write array ``name`` with its sample coordinates to one parquet file (one row per sample)."""
        frame = self.sample_coords()
        values = self.rows(name, slice(None)).reshape(self.n_rows, -1)
        frame = frame.assign(values=list(values)) if len(frame) else pd.DataFrame({"values": list(values)})
        path = Path(path)
        atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))
        return path

    def to_dataset(self, name: str):
        """Array ``name`` as a Hugging Face :class:`datasets.Dataset` (streamed shard by shard)."""
        import datasets

        coords = self.sample_coords()
        spec = self._spec(name)
        view = ActivationStore(self.path, self.manifest)  # a plain reader: datasets pickles the generator

        def rows():
            for i, shard in enumerate(view.manifest["shards"]):
                block = view._shard(name, i)
                for j in range(shard["rows"]):
                    row = {"values": block[j]}
                    if len(coords.columns):
                        row.update(coords.iloc[shard["start"] + j].to_dict())
                    yield row

        ds = datasets.Dataset.from_generator(rows)
        ds.info.description = json.dumps({"site": name, "dims": spec["dims"], "attrs": self.attrs})
        return ds
