"""The flags that several ``interp`` subcommands share, each defined once here.

Every subcommand builds its parser from these helpers, so a flag has one spelling, one type and one
help text everywhere:

* ``model`` -- the positional model (a zoo name or a Hugging Face model directory);
* ``--sites`` -- a list (``--sites 'blocks.*.mlp.hook_post' blocks.0.attn.hook_z``), globs allowed;
* ``--out`` -- whatever the command writes (a report, a store, a fitted estimator, a folder);
  ``--csv`` -- the table behind it, for commands that also write one;
* ``--device``, ``--seed``, ``--batch-size``;
* ``--progress`` / ``--quiet`` -- progress bars on (default) or off;
* ``--annotations``, ``--variable``, ``--dims``, ``--field``, ``--series``, ``--bin-size``,
  ``--behavior``, ``--intervals`` (``--epochs`` where the name is free), ``--unit-names``,
  ``--nan-policy`` -- how a recording is read (see :mod:`interp.cli.inputs`); ``--groups`` -- its trials.

>>> import argparse
>>> p = argparse.ArgumentParser()
>>> add_sites(p); add_progress(p)
>>> p.parse_args(["--sites", "blocks.*.mlp.hook_post", "--quiet"]).sites
['blocks.*.mlp.hook_post']
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = [
    "add_model", "add_sites", "add_out", "add_csv", "add_device", "add_seed", "add_batch_size", "add_progress",
    "add_recording", "add_n_permutations", "add_groups", "count", "positive", "fraction", "device",
]

COUNT_LIMIT = 10**12  # no count a command takes is larger (a bigger one is a typo, and would allocate for minutes)


def count(low: int = 1, high: int = COUNT_LIMIT):
    """An argparse ``type``: an integer in ``[low, high]``; anything else is argparse's usage error (exit 2).

    Parameters
    ----------
    low, high : int
        The bounds (inclusive).
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value

    parse.__name__ = "integer"  # what argparse calls the type in its message
    return parse


def positive(text: str) -> float:
    """An argparse ``type``: a finite number above 0.

    Parameters
    ----------
    text : str
        The argument.
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def fraction(text: str) -> float:
    """An argparse ``type``: a number strictly between 0 and 1 (a significance level).

    Parameters
    ----------
    text : str
        The argument.
    """
    value = positive(text)
    if not value < 1:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text}")
    return value


def device(text: str) -> str:
    """An argparse ``type``: a torch device that exists on this machine (``cpu``, ``cuda``, ``cuda:1``, ``mps``).

    Parameters
    ----------
    text : str
        The ``--device`` argument.
    """
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a torch device; use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (dev.index or 0) >= n:
            raise argparse.ArgumentTypeError(f"{text!r}: this machine has {n} CUDA device(s) "
                                             "(torch.cuda.is_available() is False without one); use --device cpu")
    elif dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise argparse.ArgumentTypeError("mps is not available on this machine; use --device cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise argparse.ArgumentTypeError(f"device {text!r} is not supported here; use cpu, cuda, cuda:N or mps")
    return text

SITES_HELP = ("hook names (language models) or module paths (other networks), globs allowed, e.g. "
              "--sites 'blocks.*.mlp.hook_post' blocks.0.attn.hook_z")


def add_model(parser: argparse.ArgumentParser, help: str | None = None, metavar: str = "MODEL") -> None:
    """The positional model: a zoo name (``interp.models.available()``) or a Hugging Face model directory.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser.
    help : str, optional
        Help text; None: the generic zoo-or-directory text.
    metavar : str, optional
        How the usage line names it (default ``"MODEL"``).
    """
    parser.add_argument("model", metavar=metavar,
                        help=help or "a zoo model (smollm2-135m, induction-2l, efficientnet-lite0, ...; "
                                     "see interp.models.available()) or a Hugging Face model directory")


def add_sites(parser: argparse.ArgumentParser, *, required: bool = False, help: str | None = None) -> None:
    """``--sites S [S ...]``: a list of hook names / module paths, globs allowed.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser.
    required : bool, optional
        Make ``--sites`` mandatory (default False: ``args.sites`` is None when absent).
    help : str, optional
        Help text; None: the generic one.
    """
    parser.add_argument("--sites", nargs="+", default=None, required=required, metavar="SITE",
                        help=help or SITES_HELP)


def add_out(parser: argparse.ArgumentParser, help: str, *, required: bool = False, default: str | None = None) -> None:
    """``--out PATH``: what the command writes.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser.
    help : str
        What the command writes there (`` (default ...)`` is appended when there is a default).
    required : bool, optional
        Make ``--out`` mandatory (default False).
    default : str, optional
        Default path; None: ``args.out`` is None when absent. The value is a :class:`~pathlib.Path`.
    """
    parser.add_argument("--out", type=Path, default=Path(default) if default else None, required=required,
                        metavar="PATH", help=help + (f" (default {default})" if default else ""))


def add_csv(parser: argparse.ArgumentParser, what: str = "the result table") -> None:
    """``--csv PATH``: also write the table behind the output as CSV.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser.
    what : str, optional
        What the CSV holds, in the help text (default ``"the result table"``).
    """
    parser.add_argument("--csv", type=Path, default=None, metavar="PATH", help=f"also write {what} as CSV here")


def add_device(parser: argparse.ArgumentParser) -> None:
    """``--device``: where the model (or estimator) runs.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser; ``args.device`` is None when absent, else a device checked by :func:`device`.
    """
    parser.add_argument("--device", default=None, type=device, help="torch device to run on, e.g. cpu, cuda, cuda:1 "
                                                       "(default: where the model loads, normally cpu)")


def add_seed(parser: argparse.ArgumentParser, default: int = 0) -> None:
    """``--seed``: the random seed of everything random in the command.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser.
    default : int, optional
        The default seed (default 0); accepted values are 0 .. 2**32 - 1.
    """
    parser.add_argument("--seed", type=count(0, 2**32 - 1), default=default,
                        help=f"random seed (shuffles, bootstraps, initialisation; default {default})")


def add_batch_size(parser: argparse.ArgumentParser, default: int, what: str = "inputs per forward pass") -> None:
    """``--batch-size``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser.
    default : int
        The default batch size; accepted values are integers >= 1.
    what : str, optional
        What a batch counts, in the help text (default ``"inputs per forward pass"``).
    """
    parser.add_argument("--batch-size", type=count(1), default=default, help=f"{what} (default {default})")


def add_progress(parser: argparse.ArgumentParser) -> None:
    """``--progress`` / ``--quiet``: progress bars on (default) or off.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser; ``args.progress`` is True unless ``--quiet`` is given.
    """
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--progress", dest="progress", action="store_true", default=True,
                       help="show progress bars (default)")
    group.add_argument("--quiet", dest="progress", action="store_false", help="no progress bars")


def add_n_permutations(parser: argparse.ArgumentParser, default: int, what: str) -> None:
    """``--n-permutations``: size of a permutation / shift null.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser.
    default : int
        The default count; 0 also allows ``--n-permutations 0``, otherwise the flag takes 1 .. 10**7.
    what : str
        What the permutations are, in the help text.
    """
    parser.add_argument("--n-permutations", type=count(0 if default == 0 else 1, 10**7), default=default, help=f"{what} (default {default})")


def add_recording(parser: argparse.ArgumentParser, annotations_help: str | None = None, *,
                  epochs_alias: bool = True) -> None:
    """How a recording file is read: ``--annotations`` (its sample coordinates), ``--variable``, ``--dims``
    and ``--field`` (.mat, as :func:`interp.data.load_mat`), ``--series`` and ``--bin-size`` (NWB).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser; the flags go into their own argument group.
    annotations_help : str, optional
        Help text of ``--annotations``; None: the generic one.
    epochs_alias : bool, optional
        Also accept ``--epochs`` as a spelling of ``--intervals`` (default True; False where the subcommand
        uses ``--epochs`` for something else).
    """
    group = parser.add_argument_group("recording files (.safetensors from Activations.save, .nwb, .mat) and folders "
                                      "(suite2p, Kilosort/phy)")
    group.add_argument("--annotations", nargs="+", default=None, metavar="NAME",
                       help=annotations_help or "sample coordinates of the recording to use (behaviour variables, "
                                                "stimulus ids); for a .mat file, the variables that hold them")
    group.add_argument("--variable", default=None,
                       help=".mat file: the variable holding the data, e.g. dff or session.traces (default: the "
                            "file's only matrix)")
    group.add_argument("--dims", nargs="+", default=None, metavar="DIM",
                       help=".mat file: names of the data's axes in MATLAB's order, e.g. --dims unit time for a "
                            "cells x frames matrix (default: samples x units)")
    group.add_argument("--field", default=None,
                       help=".mat file: for a struct array of trials, the field holding each trial's data")
    group.add_argument("--series", default=None,
                       help="NWB file: the time series to read, or 'units' for the spike-sorted units "
                            "(default: the file's only series)")
    group.add_argument("--bin-size", type=positive, default=None,
                       help="NWB units, Kilosort/phy folders: bin width in seconds for spike counts")
    group.add_argument("--behavior", default=None, metavar="TABLE",
                       help="a .csv/.tsv table with one row per sample (e.g. per suite2p frame) whose columns become "
                            "sample coordinates (behaviour for --annotations)")
    names = ["--intervals"] + (["--epochs"] if epochs_alias else [])
    group.add_argument(*names, dest="intervals", default=None, metavar="TABLE",
                       help="restrict to the samples inside trials/epochs: an NWB interval table (default 'trials' "
                            "when the file has one), 'none' (keep every sample), or a .csv/.tsv with start and end "
                            "columns in seconds; samples outside are excluded")
    group.add_argument("--unit-names", default="error", metavar="POLICY_OR_SOURCE",
                       help="the units' names: a .mat variable (cell array of names) or a .txt file (one name per "
                            "line) giving them; or what to do when names repeat (ten 'mua'): error (default), index "
                            "(a unit is its position) or suffix (mua#1, mua#2, ...)")
    group.add_argument("--nan-policy", choices=["raise", "drop"], default="raise",
                       help="missing values: raise (default) or drop them (units whose data hold NaN; samples where "
                            "an annotation is missing)")


def add_groups(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--groups``: the sample coordinate naming trials (resampled / split as whole groups).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser.
    help : str, optional
        Help text; None: the generic trials text.
    """
    parser.add_argument("--groups", default=None,
                        help=help or "recording files: the sample coordinate naming trials (e.g. trial); resampling "
                                     "and splits keep whole trials")
