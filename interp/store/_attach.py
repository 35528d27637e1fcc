"""How a writer joins an activation store: rank 0 claims the folder and takes the lock (other ranks are
admitted), the existing manifest or this rank's progress is loaded and checked, and the job's fingerprint is
compared with the one the store was made from. A mixin of :class:`interp.store.ActivationStore`, which
provides ``path``, ``manifest``, ``close``, ``_reset`` and ``_check_files`` (see :mod:`interp.store` for the
guarantees).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import FingerprintError, SchemaError
from ..tensor import _jsonable
from . import _lock
from . import _manifest as checked
from . import _ranks as ranks
from ._fingerprint import fingerprint_differences
from ._manifest import LOCK, MANIFEST

__all__ = ["Attach", "FORMAT_VERSION", "READABLE", "RESUMABLE"]

FORMAT_VERSION = 3  # 3: the manifest carries its own checksum (manifest_sum)
READABLE = {1, 2, 3}
RESUMABLE = {2, 3}  # a resumed version-2 store is rewritten as version 3


class Attach:
    """Joining a store as its writer (rank 0) or as an admitted rank; see the module docstring."""

    @staticmethod
    def _load_manifest(path: Path) -> dict[str, Any]:
        file = path / MANIFEST
        if not file.exists():
            raise SchemaError(f"{path} is not an activation store (no {MANIFEST})")
        manifest = ranks.read_json(file, "the manifest")
        if manifest.get("format") != "interp-activation-store":
            raise SchemaError(f"{file} is not an interp activation-store manifest")
        if manifest.get("version") not in READABLE:
            raise SchemaError(f"{path} has store format version {manifest.get('version')!r}; this interp reads {sorted(READABLE)}")
        checked.check_manifest(manifest, f"the manifest {file}")
        return manifest

    def _attach_collectively(self, *args: Any) -> bool:
        """Under torch.distributed: rank 0 attaches first and tells every rank (a broadcast) whether the store
        is complete or why it was refused; the others then return the complete store, raise the same error,
        or are admitted. Returns True when the store is complete. A rerun of a finished job, or of one whose
        rank died after rank 0's commit, thus ends at once on every rank instead of waiting for a rank 0 that
        has already left."""
        error: BaseException | None = None
        if args[3] == 0:
            try:
                self._attach(*args)
                news: dict[str, Any] = {"complete": self.complete}
            except BaseException as exc:  # told to the other ranks, then raised here
                error, news = exc, {"error": str(exc), "kind": type(exc).__name__}
            ranks.broadcast(news)
            if error is not None:
                raise error
            return bool(news["complete"])
        news = ranks.broadcast(None)
        if "error" in news:
            raise ranks.error_named(news["kind"])(f"rank 0 refused the activation store at {self.path}, so rank "
                                                  f"{args[3]} stops too: {news['error']}")
        if not news["complete"]:
            self._attach(*args)
            return False
        self.rank, self.world_size, self.job_id = args[3], args[4], args[5]
        self.manifest = self._load_manifest(self.path)
        self._check_files()
        return True

    def _attach(self, fp: Mapping[str, Any] | None, overwrite: bool, wait: bool | float, rank: int, world_size: int,
                job_id: str | None, timeout: float) -> None:
        """Take the lock (rank 0) or be admitted (other ranks), then load what is already stored."""
        self.rank, self.world_size, self.job_id, self._timeout = rank, world_size, job_id, timeout
        self._fingerprint = None if fp is None else _jsonable(dict(fp))
        what = f"the activation store at {self.path}"
        info = _lock.my_info(job_id=job_id, rank=rank, world_size=world_size)
        checked.claim(self.path, overwrite=overwrite)  # a folder that is not a store is never written into
        self.path.mkdir(parents=True, exist_ok=True)
        if rank == 0:
            self._lock_fd = _lock.acquire(self.path / LOCK, {**info, "job_id": None}, wait=wait, what=what)
            if overwrite:
                checked.claim(self.path, overwrite=True)  # again, now that no one else writes here
                checked.clear(self.path)
            _lock.record(self._lock_fd, info)  # other ranks are admitted from here on
        else:
            ranks.admit(self.path / LOCK, rank, job_id, wait, timeout, what)
        if world_size > 1:
            self._rank_fd = _lock.acquire(self.path / ranks.RANKS / f"r{rank:05d}.lock", info, wait=False,
                                          what=f"rank {rank} of {what}")
        self._writer = True
        if (self.path / MANIFEST).exists():
            self._adopt(self._load_manifest(self.path))
        elif ranks.ledger_file(self.path, rank).exists():
            self.manifest.update(self._ledger_view(self.manifest))

    def _adopt(self, manifest: dict[str, Any]) -> None:
        """Load an existing manifest into this writer after checking that this job may resume it."""
        if manifest.get("version") not in RESUMABLE:
            raise SchemaError(f"{self.path} has store format version {manifest.get('version')}; it can be read but not "
                              f"resumed by this interp (format {FORMAT_VERSION}). Rerun with overwrite=True.")
        manifest = {**manifest, "version": FORMAT_VERSION}
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

    def check_fingerprint(self, fingerprint: Mapping[str, Any]) -> Any:
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

    # ------------------------------------------------------------------ ranks
    def _ledger_view(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """This rank's view before the commit: the global schema with this rank's own shards and progress."""
        ledger = ranks.read_ledger(self.path, self.rank)
        self._check_ledger(ledger)
        return {**manifest, "shards": list(ledger.get("shards", [])), "n_rows": int(ledger.get("n_rows", 0)),
                "inputs_done": int(ledger.get("inputs_done", 0)), "complete": False, "done": bool(ledger.get("done"))}

    def _check_ledger(self, ledger: Mapping[str, Any]) -> None:
        if ledger.get("world_size", self.world_size) != self.world_size:
            raise SchemaError(f"rank {ledger.get('rank')} of the store at {self.path} was written by a job of "
                              f"{ledger['world_size']} ranks, this one has {self.world_size}; rerun with overwrite=True")
        if self._fingerprint is not None and ledger.get("fingerprint") not in (None, self._fingerprint):
            self._check_fingerprint(ledger["fingerprint"], int(ledger.get("n_rows", 0)))
