"""Progress bars: tqdm's (widgets in Jupyter, a bar in a terminal), quiet in logs.

In a terminal or a notebook a bar updates as tqdm does; when the output goes to a file or a CI log (not a
terminal) it writes at most one update every :data:`LOG_INTERVAL` seconds, so a long job's log holds a
few lines per bar instead of one per step. Every module of the library takes its bars from here.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["tqdm", "LOG_INTERVAL"]

#: Seconds between two updates of a bar whose output is not a terminal.
LOG_INTERVAL = 5.0


def interactive() -> bool:
    """True in a terminal or a Jupyter kernel, where a bar can redraw in place."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty()) or "ipykernel" in sys.modules


def tqdm(*args: Any, **kwargs: Any) -> Any:
    """``tqdm.auto.tqdm(*args, **kwargs)``, updating at most every :data:`LOG_INTERVAL` s outside a terminal."""
    from tqdm.auto import tqdm as auto_tqdm

    if not interactive():
        kwargs.setdefault("mininterval", LOG_INTERVAL)
    return auto_tqdm(*args, **kwargs)
