"""Atomic file writes and JSON-safe values (used by the tensor, the store, reports and estimators)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ._integrity import fsync_dir, fsync_file
from .checks import named_os_errors

__all__ = ["atomic_write"]


@named_os_errors
def atomic_write(path: str | os.PathLike, write: Callable[[str], None], *, sync: bool = True) -> None:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path`` (never half-written).

    With ``sync`` (the default) the data are fsynced before the rename and the directory after it, so
    that once this returns the new file survives an OS crash or power loss, not only a killed process.
    A full disk or an unwritable location raises :class:`~interp.errors.StorageError` naming ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The destination file; its parent folders are created.
    write : callable
        ``write(tmp_path)`` writes the whole file at the temporary path it is given (same folder as ``path``).
    sync : bool, optional
        Fsync the file before the rename and the folder after it (default True).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file owner-only; give it a normal file's mode
        if sync:
            fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    if sync:
        fsync_dir(path.parent)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
