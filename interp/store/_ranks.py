"""The ranks of one distributed job writing one activation store: who they are, how they are admitted,
and how their progress files are merged into the store's manifest (see :mod:`interp.store`).

Each rank ``r`` keeps its own progress in ``ranks/r{r:05d}.json`` (its shards, rows, inputs done, and
``done`` once it finished); rank 0 merges them in rank order when every rank is done. Only files on a
shared filesystem pass between ranks, so nothing here needs ``torch.distributed`` beyond reading the
rank and world size of an initialised process group.

Example
-------
>>> list(rank_range(10, 1, 3))
[3, 4, 5]
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..engine.distributed import rank_and_world
from ..errors import ConfigError, CorruptFileError, StoreLockedError
from . import _lock

__all__ = ["rank_range", "resolve_job", "broadcast", "error_named", "read_json", "wait_until", "ledger_file", "read_ledger", "ledger",
           "admit", "collect", "merge"]

RANKS = "ranks"
POLL = 0.05


def rank_range(n: int, rank: int, world_size: int) -> range:
    """The ``rank``-th of ``world_size`` contiguous blocks of ``range(n)``: ``n * rank // world_size`` up to
    ``n * (rank + 1) // world_size`` (sizes differ by at most one). Ranks that capture these blocks of the
    inputs write a store whose rank-major row order equals a one-process run's; each rank's part of a
    global minibatch is this block of it.

    >>> list(rank_range(10, 1, 3))
    [3, 4, 5]
    """
    return range(n * rank // world_size, n * (rank + 1) // world_size)


def resolve_job(rank: int | None, world_size: int | None, job_id: str | None) -> tuple[int, int, str | None]:
    """``(rank, world_size, job_id)``: the given ones, else the initialised ``torch.distributed`` group's
    rank and size and, under torchrun, ``TORCHELASTIC_RUN_ID@MASTER_ADDR:MASTER_PORT`` (shared by the ranks
    of one job, different for two jobs running at once)."""
    if rank is None and world_size is None:
        rank, world_size = rank_and_world()
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


def broadcast(news: Any) -> Any:
    """Rank 0's ``news`` on every rank of the initialised torch.distributed group (``broadcast_object_list``)."""
    import torch.distributed as dist

    box = [news]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def error_named(kind: str) -> type[Exception]:
    """The :mod:`interp.errors` class called ``kind`` (a rank re-raises rank 0's error), else StoreLockedError."""
    from .. import errors

    found = getattr(errors, kind, None)
    return found if isinstance(found, type) and issubclass(found, errors.InterpError) else StoreLockedError


def read_json(file: Path, what: str) -> dict[str, Any]:
    """A JSON object from ``file``; unreadable or truncated content raises :class:`CorruptFileError`."""
    try:
        value = json.loads(file.read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise CorruptFileError(f"{what} {file} cannot be read ({exc}); the store is damaged: restore it or rerun with overwrite=True") from exc
    if not isinstance(value, dict):
        raise CorruptFileError(f"{what} {file} does not hold a JSON object; restore it or rerun with overwrite=True")
    return value


def wait_until(check: Callable[[], Any], timeout: float) -> Any:
    """Poll ``check()`` until it returns something true or ``timeout`` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(POLL)


def ledger_file(path: Path, rank: int) -> Path:
    """Where rank ``rank`` keeps its progress."""
    return path / RANKS / f"r{rank:05d}.json"


def read_ledger(path: Path, rank: int) -> dict[str, Any]:
    """Rank ``rank``'s progress (empty if it has written nothing yet)."""
    from ._manifest import check_ledger

    file = ledger_file(path, rank)
    if not file.exists():
        return {}
    found = read_json(file, f"rank {rank}'s progress")
    check_ledger(found, None, f"rank {rank}'s progress {file}")
    return found


def ledger(rank: int, world_size: int, fingerprint: Mapping[str, Any] | None, view: Mapping[str, Any]) -> dict[str, Any]:
    """The progress record of a rank whose view of the store is ``view`` (a snapshot)."""
    return {"rank": rank, "world_size": world_size, "fingerprint": fingerprint, "shards": list(view["shards"]),
            "n_rows": view["n_rows"], "inputs_done": view["inputs_done"], "done": bool(view.get("done")),
            "attrs": dict(view.get("attrs", {}))}


def admit(lock_file: Path, rank: int, job_id: str | None, wait: bool | float, timeout: float, what: str) -> None:
    """Rank > 0: wait until rank 0 of the same job holds the writer lock; refuse a lock held by another job
    (at once, or after ``timeout`` if ``wait``)."""

    def admitted() -> bool | None:
        info = _lock.holder(lock_file)
        if info and _lock.is_held(lock_file):
            if info.get("job_id") == job_id:
                return True
            # a recorded holder that is gone: rank 0 of this job has just taken the lock and not yet recorded itself
            if wait is False and info.get("job_id") is not None and not _lock.gone(info):
                raise StoreLockedError(f"{what} is being written by {_lock.describe(info)}, not by rank 0 of job "
                                       f"{job_id!r}; this rank is refused. Use another path or wait for that writer.")
        return None

    if not wait_until(admitted, timeout):
        holder = _lock.describe(_lock.holder(lock_file)) if _lock.is_held(lock_file) else "no one"
        raise StoreLockedError(f"rank {rank} of job {job_id!r} waited {timeout:.0f} s for rank 0 to take {what}; it is held "
                               f"by {holder}. Start rank 0 with the same job_id (or raise timeout=).")


def collect(path: Path, world_size: int, timeout: float) -> list[dict[str, Any]]:
    """Rank 0: every rank's progress once all of them are done (waits up to ``timeout`` seconds)."""

    def ledgers() -> list[dict[str, Any]] | None:
        found = [read_ledger(path, r) for r in range(world_size)]
        return found if all(x.get("done") for x in found) else None

    found = wait_until(ledgers, timeout)
    if not found:
        missing = [r for r in range(world_size) if not read_ledger(path, r).get("done")]
        raise StoreLockedError(
            f"rank 0 waited {timeout:.0f} s for ranks {missing} of {world_size} to finish the store at {path}; they are "
            "still running or were killed. Rerun the whole job to resume them (or raise timeout=)."
        )
    return found


def merge(manifest: Mapping[str, Any], ledgers: list[dict[str, Any]]) -> dict[str, Any]:
    """The committed manifest: every rank's shards in rank order (rank-major rows), progress summed."""
    shards, start = [], 0
    for ledger in ledgers:
        for entry in ledger["shards"]:
            shards.append({**entry, "start": start})
            start += int(entry["rows"])
    merged = {k: v for k, v in manifest.items() if k != "done"}
    merged.update(shards=shards, n_rows=start, inputs_done=sum(int(x["inputs_done"]) for x in ledgers), complete=True)
    return merged
