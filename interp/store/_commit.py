"""The store writer's group commit: a background thread makes appends durable and lists them in the manifest.

Appends write their shard files and queue them here; the committer thread checksums the new shards, fsyncs
everything queued, then atomically rewrites the manifest (or, in a distributed job, this rank's progress
ledger) that lists them. Appends never wait for the disk; :meth:`GroupCommit.flush` waits until all of it is
durable. A mixin of :class:`interp.store.ActivationStore`, which provides ``path``, ``manifest``, ``arrays``,
``rank``, ``world_size``, ``_fingerprint`` and ``_checkpoint`` (the crash-test hook).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from .._integrity import checksum, fsync_dir, fsync_file
from ..tensor import atomic_write
from . import _ranks as ranks
from ._manifest import MANIFEST, seal
from ._read import _safe

__all__ = ["MANIFEST", "GroupCommit"]


class GroupCommit:
    """Queue written files and commit them from one background thread (see the module docstring)."""

    def _init_committer(self) -> None:
        self._cv = threading.Condition()  # guards the manifest, the queue and the committer's state
        self._queue: list[Path] = []  # written files waiting for the committer
        self._unsummed: list[dict[str, Any]] = []  # shard entries waiting for their checksums
        self._version = self._durable = 0  # appends (and other changes) queued / made durable
        self._committer: threading.Thread | None = None
        self._error: BaseException | None = None

    def _commit(self, files: list[Path], entry: dict[str, Any] | None = None, *, wait: bool = False) -> None:
        """Queue ``files`` (written, not yet durable) for the committer thread, which checksums the new
        shards (from the page cache, off the appending thread), fsyncs everything queued, then rewrites the
        manifest (or this rank's progress) that lists it: a group commit, so appends never wait for the
        disk; ``wait`` waits until all of it is durable."""
        with self._cv:
            self._queue.extend(files)
            if entry is not None:
                self._unsummed.append(entry)
            self._version += 1
            if self._committer is None:
                self._committer = threading.Thread(target=self._commit_loop, name="interp-store-commit")
                self._committer.start()
        if wait:
            self.flush()

    def _commit_loop(self) -> None:
        while True:
            with self._cv:
                if self._durable == self._version:
                    self._committer = None
                    self._cv.notify_all()
                    return
                files, self._queue, version = self._queue, [], self._version
                unsummed, self._unsummed = self._unsummed, []
                if self.world_size == 1:  # a snapshot: shard entries never change once appended
                    target, snapshot = self.path / MANIFEST, {**self.manifest, "shards": list(self.manifest["shards"])}
                else:
                    target = ranks.ledger_file(self.path, self.rank)
                    snapshot = ranks.ledger(self.rank, self.world_size, self._fingerprint, self.manifest)
            try:
                for entry in unsummed:  # the snapshot shares these entries: they gain their checksums here
                    entry["sums"] = [self._file_checksum(self.path / "shards" / _safe(name) / f"{entry['name']}.npy")
                                     for name in self.arrays]
                for file in files:
                    fsync_file(file)
                for folder in {file.parent for file in files}:
                    fsync_dir(folder)
                self._checkpoint("synced")
                text = json.dumps(seal(snapshot))

                def write(tmp: str, text: str = text) -> None:
                    Path(tmp).write_text(text)
                    self._checkpoint("manifest")

                atomic_write(target, write)
                self._checkpoint("committed")
            except BaseException as exc:  # raised in the writer's thread by the next append/finish/close
                with self._cv:
                    self._error, self._committer = exc, None
                    self._cv.notify_all()
                return
            with self._cv:
                self._durable = version
                self._cv.notify_all()

    @staticmethod
    def _file_checksum(file: Path) -> str:
        """Checksum of a shard's rows as written (read back through the page cache)."""
        mm = np.load(file, mmap_mode="r")
        try:
            return checksum(mm)
        finally:
            del mm

    def flush(self) -> None:
        """Wait until every append so far is durable and listed in the manifest (raises a failed commit's
        error). :meth:`finish` and :meth:`close` do this; appends alone do not wait for the disk."""
        with self._cv:
            while self._committer is not None:
                self._cv.wait()
        self._raise_error()
