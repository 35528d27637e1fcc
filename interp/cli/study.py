"""``interp study run STUDY.toml --out DIR [--resume]``: run a scripted ablation / activation-patching study;
``interp study check STUDY.toml`` validates the file without running it.

A study file names a model, the prompts (or a generated data set), a metric, and a grid of interventions
and/or activation-patching sweeps (the schema is in the docstring of :mod:`patching.study`; examples in
``examples/*.toml``). ``run`` writes ``results.csv``, ``results.parquet``, ``summary.html``,
``progress.csv`` and ``study.json`` into the output folder; ``--resume`` continues an interrupted run
without recomputing finished rows.

Examples::

    interp study check examples/induction_heads.toml
    interp study run examples/induction_heads.toml --out runs/induction_heads
    interp study run examples/induction_heads.toml --out runs/induction_heads --resume
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import flags

HELP = "run a scripted ablation / activation-patching study from a TOML file (or check the file)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``interp study``: the actions ``run`` and ``check``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser, which receives the flags.
    """
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    run_p = sub.add_parser("run", help="run a study file", description="Run a study file and write its outputs.")
    run_p.add_argument("study", metavar="STUDY", help="the study TOML file")
    flags.add_out(run_p, "output folder (default: the file's 'output' key, else the file's path without .toml)")
    run_p.add_argument("--resume", action="store_true", help="continue an interrupted run in the same folder")
    flags.add_progress(run_p)
    check_p = sub.add_parser("check", help="validate a study file without running it",
                             description="Validate a study file (unknown or missing keys are errors).")
    check_p.add_argument("study", metavar="STUDY", help="the study TOML file")


def run(args: argparse.Namespace) -> int:
    """Run or check the study.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed flags of ``interp study`` (see :func:`add_arguments`).
    """
    from patching.study import check_study, load_config, run_study

    if args.action == "check":
        check_study(args.study)  # the file, then its model and inputs: every index is in range
        print(f"{args.study}: ok")
        return 0
    result = run_study(args.study, args.out, resume=args.resume, progress=args.progress)
    out = Path(args.out or load_config(args.study).get("output") or Path(args.study).with_suffix(""))
    print(result.summary())
    print(f"{len(result.to_frame())} rows -> {out / 'results.csv'}, {out / 'results.parquet'}, {out / 'summary.html'}")
    return 0
