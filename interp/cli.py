"""The ``interp`` command.

Each subcommand lives in its own module, which exposes ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only when their subcommand
runs, so a missing optional dependency of one command does not break the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import InterpError

SUBCOMMANDS: dict[str, str] = {
    "demo": "interp.demo",
    "capture": "interp.capture_cli",
    "label": "interp.label.cli",
    "compare": "interp.similarity.cli",
    "decompose": "interp.decompose.cli",
    "study": "patching.study",
    "paths": "patching.paths_cli",
}


def _load(name: str):
    try:
        return importlib.import_module(SUBCOMMANDS[name])
    except ModuleNotFoundError as exc:
        if exc.name and SUBCOMMANDS[name].startswith(exc.name):
            return None
        raise


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser (with every subcommand whose module is present, or just ``only``)."""
    parser = argparse.ArgumentParser(prog="interp", description="Mechanistic interpretability for networks and brains.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        if only is not None and name != only:
            sub.add_parser(name)
            continue
        module = _load(name)
        if module is None:
            continue
        p = sub.add_parser(name, help=getattr(module, "HELP", ""), description=getattr(module, "HELP", ""))
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``interp`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    only = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    args = build_parser(only).parse_args(argv)
    try:
        return int(args._module.run(args) or 0)
    except InterpError as exc:
        print(f"interp {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
