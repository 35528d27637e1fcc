"""``interp label MODEL_OR_DATA ... --out labels.html``: label units and write a self-contained HTML report.

MODEL_OR_DATA is a model (zoo name or Hugging Face directory; give ``--sites``), a recording file
(``.safetensors`` written by ``Activations.save``, ``.nwb``, ``.mat``) or folder (suite2p plane folder,
Kilosort/phy folder; behaviour from ``--behavior TABLE``); give ``--annotations``, the sample
coordinates that hold the behaviour), or a bundled data set (``celegans``, ``hippocampus``). Each unit
keeps its own index and name; annotation kinds are declared (``--kinds``, ``--categorical``) or
inferred and reported; ``--intervals``/``--epochs`` restricts to trials, ``--nan-policy drop`` leaves
missing values out.
Recorded units are labelled by concept tests against circular shifts of the behaviour, fitted on the
first 60% of the recording and scored on the rest.

Examples::

    interp label smollm2-135m --sites blocks.6.mlp.hook_post --n-tokens 20000 --out labels.html
    interp label induction-2l --sites heads --out heads.html
    interp label my_recording.safetensors --annotations running speed --out units.html --csv units.csv
    interp label session.mat --variable spikes --annotations velocity target --out units.html
    interp label cells.mat --variable dff --dims unit time --annotations speed --out cells.html
    interp label session.nwb --series units --bin-size 0.05 --annotations speed --out units.html
    interp label session.nwb --series units --bin-size 0.05 --annotations target --groups trial --out units.html
    interp label reach.mat --variable trials --field rates --dims time unit --annotations target velocity \
        --categorical target --groups trial --out reach.html
    interp label suite2p/plane0 --behavior frames.csv --annotations running --out cells.html
    interp label kilosort_out --bin-size 0.05 --behavior bins.csv --annotations speed --unit-names index
    interp label celegans --annotations reversal velocity head_angle --out worms.html
    interp label hippocampus --out place_cells.html
    interp label smollm2-135m --sites blocks.6.mlp.hook_post --explainer openai --endpoint http://localhost:8000/v1
"""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from . import flags

HELP = "label units (model neurons, attention heads, recorded neurons) and write a self-contained HTML report"

#: Bundled data sets with their own labelling pipeline.
DATASETS = ("celegans", "hippocampus")
CELEGANS_ANNOTATIONS = ["reversal", "velocity", "head_angle"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``interp label``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser, which receives the flags.
    """
    flags.add_model(parser, metavar="MODEL_OR_DATA",
                    help="a zoo model or Hugging Face model directory (needs --sites); a recording file "
                         "(.safetensors from Activations.save, .nwb, .mat) or folder (suite2p, Kilosort/phy; needs "
                         "--annotations, e.g. from --behavior); or a data set "
                         f"({', '.join(DATASETS)})")
    flags.add_sites(parser, help="model units to label: hook names, globs allowed, e.g. blocks.6.mlp.hook_post; "
                                 "'heads' for the attention heads")
    flags.add_out(parser, "the HTML report", default="labels.html")
    flags.add_csv(parser, "the index table (one row per unit)")
    flags.add_recording(parser, annotations_help="behaviour variables to label recorded units by: sample "
                                                 "coordinates of the recording (for a .mat file, its variables "
                                                 "with one value per sample); celegans default: "
                                                 + " ".join(CELEGANS_ANNOTATIONS))
    parser.add_argument("--by", default=None,
                        help="unit coordinate that names units (and pools recordings); default: canonical for "
                             "celegans, else the recording's 'name' coordinate, else 'index'")
    flags.add_groups(parser, help="recording files: the sample coordinate naming trials (e.g. trial); the tests "
                                  "then swap whole trials and the labels are scored on held-out trials (default: "
                                  "none, circular shifts on the time series)")
    parser.add_argument("--null", default="auto", choices=["auto", "group", "circular", "block", "permutation"],
                        help="recordings: the null of the concept tests (default auto: whole trials with --groups, "
                             "circular shifts of a time series; circular with --groups shifts within each trial)")
    parser.add_argument("--kinds", nargs="+", default=None, metavar="NAME=KIND",
                        help="annotation kinds: binary, categorical, continuous or circular, e.g. --kinds "
                             "target=categorical (default: inferred; whole-number floats with few levels are "
                             "categorical; a 2-column annotation is a direction)")
    parser.add_argument("--categorical", nargs="+", default=None, metavar="NAME",
                        help="annotations that are categories (short for --kinds NAME=categorical)")
    flags.add_n_permutations(parser, 1000, "draws of the null (circular shifts or trial swaps)")
    parser.add_argument("--alpha", type=flags.fraction, default=0.05,
                        help="recordings: significance level of the concept / place-field tests, after BH-FDR "
                             "(default 0.05)")
    models = parser.add_argument_group("model neurons")
    models.add_argument("--n-tokens", type=flags.count(1), default=20_000, help="corpus tokens for model neurons (default 20000)")
    models.add_argument("--seq-len", type=flags.count(1, 10**7), default=64, help="tokens per corpus sequence (default 64)")
    models.add_argument("--text", default=None, help="a text file to use as corpus (default: offline Python docs)")
    models.add_argument("--k", type=flags.count(1, 10**6), default=12, help="exemplars per unit (default 12)")
    models.add_argument("--units", default=None, help="unit range to label, e.g. 0:256 or 1,5,9 (default: all)")
    models.add_argument("--explainer", choices=["templated", "local", "openai"], default="templated",
                        help="who writes the labels (default templated; local = smollm2-135m; openai = --endpoint)")
    models.add_argument("--endpoint", default="http://localhost:8000/v1", help="OpenAI-compatible base URL")
    models.add_argument("--api-model", default="gpt-4o-mini", help="model name sent to the endpoint")
    models.add_argument("--simulate", type=flags.count(0), default=0, help="units scored by simulation (explainers that simulate)")
    flags.add_batch_size(parser, 8)
    parser.add_argument("--max-cards", type=flags.count(1), default=None, help="at most this many unit cards (best scores first)")
    flags.add_seed(parser)
    flags.add_device(parser)
    flags.add_progress(parser)


def _units(spec: str | None):
    if spec is None:
        return None
    try:
        if ":" in spec:
            a, b = spec.split(":")
            return range(int(a or 0), int(b))
        return [int(x) for x in spec.split(",")]
    except ValueError as exc:
        raise ConfigError(f"--units must look like 0:256 or 1,5,9, got {spec!r}") from exc


def _explainer(args):
    from ..label.explain import LocalModelExplainer, OpenAIExplainer, TemplatedExplainer

    if args.explainer == "local":
        return LocalModelExplainer("smollm2-135m")
    if args.explainer == "openai":
        import os

        return OpenAIExplainer(args.endpoint, args.api_model, api_key=os.environ.get("OPENAI_API_KEY"))
    return TemplatedExplainer()


def _unit_key(rec, by: str | None) -> str:
    """The unit coordinate that names units: ``by`` if given, else ``name``, else ``index`` (added)."""
    unit = rec.coords[rec.dims[1]]
    if by is not None:
        if by not in unit.columns:
            raise ConfigError(f"--by {by!r} is not a unit coordinate of the recording; it has {list(unit.columns)}")
        return by
    if "name" in unit.columns:
        return "name"
    if "index" not in unit.columns:
        unit["index"] = range(len(unit))
    return "index"


def label_recording_file(target, args) -> list:
    """Label the units of a recording file against its ``--annotations``.

    Parameters
    ----------
    target : Target
        The classified recording argument.
    args : argparse.Namespace
        The parsed flags of ``interp label`` (``--annotations`` is required; ``--sites`` is refused).
    """
    from ..label.kinds import parse_kinds
    from ..label.recordings import label_recordings
    from .inputs import UNIT_NAME_POLICIES, load_recording, require_matrix

    if not args.annotations:
        rec = load_recording(target, argparse.Namespace(**{**vars(args), "annotations": None}))
        raise ConfigError(f"give --annotations: the behaviour variables to label the units of {target.value} by; "
                          f"its sample coordinates are {list(rec.coords[rec.dims[0]].columns) or 'none'}")
    if args.sites:
        raise ConfigError("--sites selects model units; a recording file is labelled as a whole")
    rec = load_recording(target, args)
    require_matrix(rec, target.value)
    by = _unit_key(rec, args.by)
    title = f"{rec.attrs.get('source') or target.path.stem} units"
    kinds = {**parse_kinds(args.kinds), **{a: "categorical" for a in args.categorical or []}}
    return [label_recordings(rec, args.annotations, by=by, groups=args.groups, n_permutations=args.n_permutations,
                             alpha=args.alpha, seed=args.seed, title=title, kinds=kinds, null=args.null,
                             unit_names=args.unit_names if args.unit_names in UNIT_NAME_POLICIES else "error",
                             nan_policy=args.nan_policy)]


def _label_dataset(name: str, args) -> list:
    from .. import data
    from ..label.recordings import label_place_cells, label_recordings

    if args.sites:
        raise ConfigError(f"--sites selects model units; the data set {name!r} is labelled as a whole")
    if args.groups or args.kinds or args.categorical:
        raise ConfigError(f"--groups, --kinds and --categorical are for recording files; the data set {name!r} has no "
                          "trials and is labelled with its own settings")
    if name == "celegans":
        worms = data.load("celegans")
        return [label_recordings(worms, args.annotations or CELEGANS_ANNOTATIONS, by=args.by or "canonical",
                                 n_permutations=args.n_permutations, alpha=args.alpha, seed=args.seed,
                                 title="C. elegans neurons")]
    if args.annotations or args.by:
        raise ConfigError("hippocampus units are labelled as place cells against their position; drop --annotations "
                          "and --by")
    rec = data.load("hippocampus", environment="linear-track", bin_size=0.1)
    return [label_place_cells(rec, n_permutations=min(args.n_permutations, 1000), alpha=args.alpha, seed=args.seed,
                              title="hippocampus place cells")]


def _read_text(path: str | None) -> str | None:
    if path is None:
        return None
    from pathlib import Path

    from ..errors import DataNotFoundError

    if not Path(path).is_file():
        raise DataNotFoundError(f"--text {path}: no such file")
    return Path(path).read_text()


def _label_model(target, args) -> list:
    from ..label.pipeline import label_heads, label_neurons
    from .inputs import load_model

    if not args.sites:
        raise ConfigError("give --sites for a model (e.g. blocks.6.mlp.hook_post, or 'heads' for attention heads)")
    units = _units(args.units)
    model, _ = load_model(target, device=args.device)
    results = []
    for site in args.sites:
        if site == "heads" or site.endswith("hook_pattern"):
            from ..models.induction import make_repeated_tokens

            vocab, n = int(model.cfg.d_vocab), min(64, int(model.cfg.n_ctx))
            fit = make_repeated_tokens(32, seq_len=n, d_vocab=vocab, seed=args.seed + 11).tokens
            held = make_repeated_tokens(32, seq_len=n, d_vocab=vocab, seed=args.seed + 12).tokens
            results.append(label_heads(model, fit, held, title=f"{args.model} heads"))
            continue
        text = _read_text(args.text)
        results.append(label_neurons(model, site, n_tokens=args.n_tokens, seq_len=args.seq_len, text=text, k=args.k,
                                     batch_size=args.batch_size, units=units, explainer=_explainer(args),
                                     simulate_units=args.simulate, title=f"{args.model} {site}",
                                     progress=args.progress))
    return results


def run(args: argparse.Namespace) -> int:
    """Label, write ``--out`` (and ``--csv``), print the notes.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed flags of ``interp label`` (see :func:`add_arguments`).
    """
    from ..label.report import build_label_report
    from .inputs import classify, reject_file_flags

    target = classify(args.model, accept=("model", "recording", "dataset"), datasets=DATASETS)
    if target.kind != "recording":
        reject_file_flags(args, f"{args.model!r} is a {'data set' if target.kind == 'dataset' else 'model'}",
                          annotations=False)
    if target.kind == "model" and (args.annotations or args.by or args.groups or args.kinds or args.categorical):
        raise ConfigError("--annotations, --by, --groups, --kinds and --categorical label recorded units; for a model "
                          "give --sites")
    if target.kind == "recording":
        results = label_recording_file(target, args)
    elif target.kind == "dataset":
        results = _label_dataset(target.value, args)
    else:
        results = _label_model(target, args)
    path = build_label_report(results, args.out, title=f"interp label {args.model}", max_cards=args.max_cards)
    if args.csv:
        import pandas as pd

        from ..tensor import atomic_write

        frame = pd.concat([r.to_frame().assign(result=r.title) for r in results], ignore_index=True)
        atomic_write(args.csv, lambda tmp: frame.to_csv(tmp, index=False))
        print(f"wrote {args.csv}")
    for r in results:
        for note in r.notes:
            print(f"note: {note}")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0
