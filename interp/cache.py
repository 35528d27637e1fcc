"""Where interp keeps what it trains or converts locally (``$INTERP_CACHE``, default ``~/.cache/interp``)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """The cache directory (created), optionally a sub-directory of it."""
    root = Path(os.environ.get("INTERP_CACHE", Path.home() / ".cache" / "interp")).expanduser()
    from .checks import make_dir

    return make_dir(root.joinpath(*parts), "set INTERP_CACHE to a folder you can write to")


def shared_dir(*parts: str) -> Path:
    """The project's ``shared/`` folder (``$INTERP_SHARED``, default ``../shared`` beside the repo)."""
    env = os.environ.get("INTERP_SHARED")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / "shared"
    return root.joinpath(*parts)
