"""The ``interp`` command: ``interp SUBCOMMAND ...``, ``python -m interp SUBCOMMAND ...`` or
``torchrun ... -m interp SUBCOMMAND ...``.

Each subcommand is one module of this package with ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``; flags that several subcommands share are defined once in :mod:`interp.cli.flags`,
and what a positional argument names (model, recording file, store, data set) is decided once in
:mod:`interp.cli.inputs`. The modules import heavy dependencies only inside ``run``, so ``--help`` is
fast. This package is the top layer: it may import ``patching`` and ``probes``; nothing in the library
imports it.

>>> from interp.cli import main
>>> main(["capture", "induction-2l", "--sites", "blocks.0.hook_resid_post", "--n-tokens", "1000000",
...       "--dry-run"])                                                     # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import re
import sys
from types import ModuleType

from ..errors import InterpError
from . import capture, circuits, compare, decompose, demo, label, paths, study

__all__ = ["main", "build_parser", "SUBCOMMANDS"]

#: name -> module of every subcommand, in the order ``interp --help`` lists them.
SUBCOMMANDS: dict[str, ModuleType] = {
    "capture": capture,
    "label": label,
    "compare": compare,
    "decompose": decompose,
    "study": study,
    "paths": paths,
    "circuits": circuits,
    "demo": demo,
}


def _plain(doc: str) -> str:
    """A module docstring as terminal text (no reStructuredText markup)."""
    doc = re.sub(r":\w+:`~?([^`]+)`", r"\1", doc)
    return doc.replace("``", "").replace("::\n", ":\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``interp`` command with every subcommand."""
    parser = argparse.ArgumentParser(prog="interp", description="Mechanistic interpretability for networks and brains. "
                                     "Run 'interp SUBCOMMAND --help' for the flags of a subcommand.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    for name, module in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=module.HELP, description=_plain(module.__doc__ or module.HELP),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``interp`` console script and of ``python -m interp``; returns the exit code
    (0 success, 1 a failed part of a run, 2 bad input: an :class:`~interp.errors.InterpError`).

    Parameters
    ----------
    argv : list of str, optional
        The arguments after the program name; None: ``sys.argv[1:]``.
    """
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    from ..engine.distributed import init_from_environment

    init_from_environment()  # under torchrun every subcommand runs as one rank of the job
    try:
        return int(args._run(args) or 0)
    except InterpError as exc:
        print(f"interp {args.command}: error: {exc}", file=sys.stderr)
        return 2
