"""Helpers shared by the recorded-data loaders: where data live and argument checks."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..cache import shared_dir
from ..errors import ConfigError, DataNotFoundError, closest

BUNDLED = Path(__file__).resolve().parent / "bundled"


def data_root(name: str, shared_name: str, *, vendored: bool = False, env: str | None = None) -> Path:
    """The folder holding data set ``name``.

    Looked up in order: the environment variable ``env`` (if given and set), the copy vendored in
    ``interp/data/bundled/<name>`` (when ``vendored``), then ``shared/data/<shared_name>``
    (:func:`interp.cache.shared_dir`). Raises :class:`DataNotFoundError` naming every place tried.
    """
    tried: list[Path] = []
    if env and os.environ.get(env):
        tried.append(Path(os.environ[env]).expanduser())
    if vendored:
        tried.append(BUNDLED / name)
    tried.append(shared_dir("data", shared_name))
    for path in tried:
        if path.is_dir():
            return path
    raise DataNotFoundError(
        f"data set {name!r} not found; looked in: {', '.join(str(p) for p in tried)}. "
        f"Put the files there (or set {env or 'INTERP_SHARED'} to the folder that holds them)."
    )


def require_file(path: str | os.PathLike, what: str = "file") -> Path:
    """Return ``path`` as a :class:`Path`, or raise :class:`DataNotFoundError` when it does not exist."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataNotFoundError(f"{what} not found: {path}")
    return path


def check_choice(param: str, value: object, choices: Iterable[str]) -> str:
    """Validate a string option; raise :class:`ConfigError` with a 'did you mean' hint."""
    choices = list(choices)
    if not isinstance(value, str) or value not in choices:
        hint = closest(str(value), choices)
        raise ConfigError(f"{param}={value!r} is not one of {choices}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    return value


def check_positive(param: str, value: float) -> float:
    """Validate a strictly positive number; raise :class:`ConfigError` otherwise."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{param} must be a positive number, got {value!r}") from None
    if not number > 0:
        raise ConfigError(f"{param} must be a positive number, got {value!r}")
    return number
