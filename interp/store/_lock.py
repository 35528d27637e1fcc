"""The activation store's writer lock: an OS file lock (``flock``) held for the life of a writer.

The lock file records who holds it (pid, host, start time, job id, rank, command) so that a refused
writer can say whom it waits for. The OS releases the lock when the holder exits or is killed, so a lock
file left behind by a dead process never blocks anyone: only a live lock counts, never the file's content.

``flock`` works on local filesystems and on NFSv4 (Linux maps it to NFS byte-range locks); on Lustre the
clients must mount with ``-o flock``.

Example
-------
>>> fd = acquire("/tmp/acts/writer.lock", {"job_id": None}, wait=False, what="the store at /tmp/acts")  # doctest: +SKIP
>>> release(fd)                                                                                        # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import SchemaError, StoreLockedError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["acquire", "record", "release", "holder", "is_held", "describe", "my_info"]

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # a lock file is never a symbolic link (its target would be truncated)
GRACE = 0.5  # seconds a non-waiting writer retries (a peer rank's probe holds a shared lock for microseconds)
POLL = 0.05


def my_info(**extra: Any) -> dict[str, Any]:
    """What a lock file records about this process."""
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv)[:300],
        **extra,
    }


def holder(path: str | os.PathLike) -> dict[str, Any] | None:
    """The holder recorded in a lock file (None if the file is absent, empty or being rewritten)."""
    try:
        fd = os.open(path, os.O_RDONLY | NOFOLLOW)
        try:
            text = os.read(fd, 1 << 16).decode()
        finally:
            os.close(fd)
        info = json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def is_held(path: str | os.PathLike) -> bool:
    """True while some process holds the lock (probed with a shared, non-blocking lock)."""
    if fcntl is None or not Path(path).exists():  # pragma: no cover - Windows
        return False
    fd = _open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's shared lock
    return False


def gone(info: dict[str, Any]) -> bool:
    """Whether the recorded holder is a process of this host that no longer exists (then whoever holds the lock
    now took it after that process and has not recorded itself yet, or is a child it forked)."""
    if info.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(info["pid"]), 0)
    except ProcessLookupError:
        return True
    except (OSError, KeyError, ValueError, TypeError):
        return False
    return False


def _alive(info: dict[str, Any]) -> str:
    if info.get("host") == socket.gethostname() and info.get("pid") == os.getpid():
        return " (this very process: an earlier ActivationStore writer for this path is still open; finish() or close() it)"
    return " (that pid is gone: a child process it forked may still hold the lock)" if gone(info) else ""


def describe(info: dict[str, Any] | None) -> str:
    """Human description of a lock holder."""
    if not info:
        return "another process (its details are being written or were lost)"
    job = ""
    if info.get("job_id") is not None:
        job = f", job {info['job_id']!r}, rank {info.get('rank', 0)} of {info.get('world_size', 1)}"
    return f"pid {info.get('pid')} on host {info.get('host')!r} since {info.get('started')}{job}{_alive(info)}"


def _open(path: str | os.PathLike, flags: int) -> int:
    """Open a lock file without following a symbolic link (:class:`SchemaError` names one)."""
    try:
        return os.open(path, flags | NOFOLLOW, 0o666)
    except OSError as exc:
        if Path(path).is_symlink():
            raise SchemaError(f"the lock file {path} is a symbolic link (to {os.readlink(path)!r}); a writer would "
                              "overwrite its target. Remove the link, then write again.") from exc
        raise


def _try(path: Path) -> int | None:
    fd = _open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    try:
        same = os.fstat(fd).st_ino == os.stat(path).st_ino  # the file was not replaced between open and lock
    except FileNotFoundError:
        same = False
    if not same:
        os.close(fd)
        return None
    return fd


def acquire(path: str | os.PathLike, info: dict[str, Any], *, wait: bool | float, what: str) -> int | None:
    """Take the exclusive lock at ``path`` and record ``info`` in it; returns the file descriptor to keep open.

    ``wait=False`` refuses at once (after a brief grace) with :class:`StoreLockedError` naming the
    holder; ``wait=True`` waits as long as it takes, a number waits that many seconds; a warning says
    whom it waits for.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover - Windows
        warnings.warn("no file locking on this platform: make sure only one process writes " + what, stacklevel=3)
        return None
    start = time.monotonic()
    limit = GRACE if wait is False else (float("inf") if wait is True else max(float(wait), GRACE))
    warned = False
    while True:
        fd = _try(path)
        if fd is not None:
            record(fd, info)
            return fd
        elapsed = time.monotonic() - start
        if elapsed >= limit:
            advice = (
                "Wait for it to finish (pass wait=True to wait, or a number of seconds), write to another path, "
                "or stop that process; the lock is released as soon as it exits, even if it is killed."
            )
            waited = f" after waiting {elapsed:.0f} s" if wait is not False else ""
            raise StoreLockedError(f"{what} is being written by {describe(holder(path))}{waited}. {advice}")
        if wait is not False and not warned and elapsed >= GRACE:
            warnings.warn(f"waiting for {what}: it is being written by {describe(holder(path))}", stacklevel=3)
            warned = True
        time.sleep(0.01 if elapsed < GRACE else POLL)


def record(fd: int | None, info: dict[str, Any]) -> None:
    """Write ``info`` (who holds the lock) into the lock file held through ``fd``."""
    if fd is None:  # pragma: no cover - Windows
        return
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)
    os.fsync(fd)


def release(fd: int | None) -> None:
    """Release a lock taken by :func:`acquire` (closing the descriptor drops it)."""
    if fd is not None:
        try:
            os.close(fd)
        except OSError:  # pragma: no cover - already closed
            pass
