"""``interp decompose DATA --out F``: fit an SAE, SNMF or NMF on activations or a recording and save it.

DATA is an activation store folder (written by ``interp capture``; ``--sites`` picks the array when it
holds several), or a recording file: ``.safetensors`` written by ``Activations.save``, ``.nwb`` or ``.mat``.
The command prints the reconstruction metrics of the fitted estimator on the same data as JSON.

Examples::

    interp decompose runs/smollm2 --sites blocks.3.mlp.hook_post --method topk --n-components 4096 --k 32 \\
        --out sae.safetensors
    interp decompose worm0.safetensors --method nmf --n-components 8 --out nmf.safetensors
    interp decompose session.mat --variable dff --dims unit time --method nmf --n-components 10 --negative shift \\
        --out nmf.safetensors
    interp decompose suite2p/plane0 --method assemblies --out assemblies.html --csv assemblies.csv
    torchrun --nproc-per-node 2 -m interp decompose runs/smollm2 --method topk --out sae.safetensors [--shard-latents]

Under ``torchrun`` the SAE kinds train data-parallel (or with ``--shard-latents`` with their latents split over
the ranks); every rank ends with the whole SAE, rank 0 saves it and prints the metrics.
"""

from __future__ import annotations

import argparse
import fnmatch
import json

from ..errors import ConfigError
from . import flags

HELP = ("fit a sparse autoencoder (ReLU/TopK/BatchTopK/JumpReLU), SNMF or NMF on activations and save it, or find "
        "cell assemblies in a recording")

METHODS = ("relu", "topk", "batchtopk", "jumprelu", "snmf", "nmf", "assemblies")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``interp decompose``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser, which receives the flags.
    """
    parser.add_argument("data", metavar="DATA",
                        help="an activation store folder (from interp capture) or a recording file "
                             "(.safetensors from Activations.save, .nwb, .mat)")
    flags.add_sites(parser, help="store: the array to fit, one name or glob (needed when the store holds several)")
    flags.add_out(parser, "where to save the fitted estimator (.safetensors)", required=True)
    parser.add_argument("--method", choices=METHODS, default="topk",
                        help="estimator (default topk); assemblies: groups of co-active units of a recording "
                             "(interp.decompose.find_assemblies; --n-components sets how many, default: those above a "
                             "circular-shift null)")
    parser.add_argument("--n-components", type=flags.count(1, 10**7), default=None,
                        help="latents / components (default 1024; assemblies: found from the data)")
    parser.add_argument("--negative", choices=["raise", "shift", "clip"], default=None,
                        help="nmf/assemblies on data with negative values (dF/F below baseline): raise (nmf default), "
                             "shift (subtract each unit's minimum) or clip (set them to 0; assemblies default)")
    parser.add_argument("--assembly-method", choices=["nmf", "ica"], default="nmf",
                        help="assemblies: NMF patterns (default) or ICA patterns (signed)")
    flags.add_csv(parser, "assemblies: one row per assembly")
    parser.add_argument("--k", type=flags.count(1, 10**7), default=32, help="active latents per sample (topk, batchtopk; default 32)")
    parser.add_argument("--l1", type=float, default=5.0, help="L1 coefficient (relu; default 5)")
    parser.add_argument("--sparsity", type=float, default=None,
                        help="SNMF: fraction of weights kept per feature (default 0.01); JumpReLU: L0 coefficient "
                             "(default 1)")
    parser.add_argument("--epochs", type=flags.count(1, 10**6), default=1, help="SAE passes over the data (default 1)")
    flags.add_batch_size(parser, 4096, what="SAE minibatch size")
    parser.add_argument("--lr", type=flags.positive, default=3e-4, help="SAE learning rate (default 3e-4)")
    parser.add_argument("--max-seconds", type=flags.positive, default=None, help="stop SAE training after this long")
    parser.add_argument("--max-iter", type=flags.count(1, 10**7), default=500, help="SNMF/NMF iterations (default 500)")
    parser.add_argument("--shard-latents", action="store_true",
                        help="under torchrun: split the SAE's latents over the ranks (wide SAEs; default: data "
                             "parallel, every rank holds the whole SAE)")
    flags.add_recording(parser, annotations_help="sample coordinates the recording must have (checked; for a "
                                                 ".mat file, the variables with one value per sample)",
                        epochs_alias=False)  # --epochs is the SAE's passes over the data here
    flags.add_groups(parser, help="recording files: the sample coordinate naming trials (e.g. trial); the estimator "
                                  "is fit on four fifths of the trials and the FVU is also reported on the other "
                                  "fifth (every fifth trial, in recording order: heldout_fvu)")
    flags.add_seed(parser)
    flags.add_device(parser)
    flags.add_progress(parser)


def build(args: argparse.Namespace):
    """The estimator that the arguments describe.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed flags: ``--method`` picks the class, ``--n-components`` (default 1024), ``--k``, ``--l1``,
        ``--sparsity``, ``--lr``, ``--batch-size``, ``--epochs``, ``--max-seconds``, ``--max-iter``, ``--seed``,
        ``--device`` and ``--progress`` set its options.
    """
    from ..decompose import nmf, sae

    n = args.n_components if args.n_components is not None else 1024
    common = dict(lr=args.lr, batch_size=args.batch_size, n_epochs=args.epochs, max_seconds=args.max_seconds,
                  seed=args.seed, device=args.device, progress=args.progress)
    if args.method == "topk":
        return sae.TopKSAE(n, k=args.k, **common)
    if args.method == "batchtopk":
        return sae.BatchTopKSAE(n, k=args.k, **common)
    if args.method == "relu":
        return sae.ReLUSAE(n, l1_coefficient=args.l1, **common)
    if args.method == "jumprelu":
        return sae.JumpReLUSAE(n, sparsity_coefficient=args.sparsity if args.sparsity is not None else 1.0, **common)
    if args.method == "snmf":
        return nmf.SNMF(n, sparsity=args.sparsity if args.sparsity is not None else 0.01,
                        max_iter=args.max_iter, seed=args.seed, device=args.device, progress=args.progress)
    if args.method == "nmf":
        return nmf.NMF(n, max_iter=args.max_iter, seed=args.seed, device=args.device,
                       progress=args.progress)
    raise ConfigError(f"unknown method {args.method!r}; choose from {METHODS}")


def _store_data(target, sites):
    from ..store import ActivationStore

    store = ActivationStore.open(target.path)
    if not sites:
        if len(store.arrays) > 1:
            raise ConfigError(f"the store holds {len(store.arrays)} arrays {store.arrays}; pick one with --sites")
        return store
    chosen = [a for a in store.arrays if any(fnmatch.fnmatchcase(a, s) for s in sites)]
    if len(chosen) != 1:
        raise ConfigError(f"--sites {' '.join(sites)} matches {chosen or 'no array'} of the store; decompose fits one "
                          f"array at a time, choose one of {store.arrays}")
    return store, chosen[0]


def _shift_or_clip(data, negative: str | None):
    """Apply ``--negative`` to a recording for NMF; without it, negative values raise with the ways forward."""
    import torch

    from ..decompose import NegativeValueError

    low = float(data.data.min())
    if low >= 0 or negative in (None, "raise"):
        if low < 0:
            raise NegativeValueError(
                f"NMF needs non-negative data but the recording has {int((data.data < 0).sum())} negative values (min "
                f"{low:.4g}; dF/F dips below baseline). Choose: --negative shift (subtract each unit's minimum), "
                "--negative clip (below baseline = silent), --method snmf (signed data), or --method assemblies")
        return data
    x = data.data.double()
    x = x - x.min(0, keepdim=True).values if negative == "shift" else torch.clamp(x, min=0)
    return data.replace(data=x.to(data.data.dtype))


def _split_trials(data, groups: str):
    """``(fit, (held_out, n_held_out_trials))``: every fifth trial (in recording order) is held out."""
    import numpy as np

    from ..stats import resolve_groups

    codes = resolve_groups(groups, data.shape[0], data)
    G = int(codes.max()) + 1
    if G < 5:
        raise ConfigError(f"--groups {groups}: {G} trials; holding out a fifth of them needs at least 5")
    held = codes % 5 == 4  # codes count trials in order of first appearance
    return (data.isel(sample=np.flatnonzero(~held)),
            (data.isel(sample=np.flatnonzero(held)), int(len(np.unique(codes[held])))))


def _assemblies(data, args) -> int:
    from ..decompose.assemblies import find_assemblies
    from ..tensor import atomic_write

    if args.shard_latents:
        raise ConfigError("--shard-latents is for the SAE methods")
    res = find_assemblies(data, args.n_components, method=args.assembly_method, seed=args.seed,
                          negative=args.negative or "clip", progress=args.progress)
    frame = res.to_frame()
    if args.csv:
        atomic_write(args.csv, lambda tmp: frame.to_csv(tmp, index=False))
        print(f"wrote {args.csv}")
    from ..report.html import Report

    rep = Report(f"assemblies of {args.data}")
    rep.add(res, title="Cell assemblies")
    print(json.dumps({"method": "assemblies", "out": str(rep.write(args.out)), "n_assemblies": res.n_assemblies,
                      "sizes": [len(m) for m in res.members]}))
    return 0


def run(args: argparse.Namespace) -> int:
    """Fit, save ``--out``, print the metrics as JSON (assemblies: write a report, print the sizes).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed flags of ``interp decompose`` (see :func:`add_arguments`).
    """
    import sys

    from ..decompose.metrics import reconstruction_metrics
    from .inputs import classify, load_recording, reject_file_flags

    target = classify(args.data, accept=("store", "recording"))
    if args.method == "assemblies" and target.kind != "recording":
        raise ConfigError("--method assemblies finds co-active units of a recording; give a recording file or folder")
    if args.negative is not None and args.method not in ("nmf", "assemblies"):
        raise ConfigError("--negative is for --method nmf and assemblies")
    if args.csv and args.method != "assemblies":
        raise ConfigError("--csv writes the assemblies table; the other methods print their metrics")
    if args.groups is not None and (target.kind != "recording" or args.method == "assemblies"):
        raise ConfigError("--groups holds out whole trials of a recording to report a held-out FVU; it is for recording "
                          "files and the fitted methods (not assemblies, whose null shifts each unit in time)")
    estimator = build(args) if args.method != "assemblies" else None
    heldout = None
    if target.kind == "store":
        reject_file_flags(args, f"{args.data} is an activation store")
        data = _store_data(target, args.sites)
    else:
        if args.sites:
            raise ConfigError("--sites picks an array of an activation store; a recording file is used as a whole")
        data = load_recording(target, args)
        if args.method == "assemblies":
            return _assemblies(data, args)
        if args.method == "nmf":
            data = _shift_or_clip(data, args.negative)
        if args.groups is not None:
            data, heldout = _split_trials(data, args.groups)
    if args.method in ("snmf", "nmf"):
        if args.shard_latents:
            raise ConfigError("--shard-latents is for the SAE methods")
        estimator.fit(data)
    else:
        estimator.fit(data, shard_latents=args.shard_latents)
    from ..engine.distributed import rank_and_world

    if rank_and_world()[0] != 0:  # every rank holds the fitted estimator; one writes and reports it
        return 0
    estimator.save(args.out)
    metrics = reconstruction_metrics(estimator, data)
    summary = dict(metrics.to_frame().iloc[0].to_dict().items())
    if heldout is not None:
        held, n_held = heldout
        summary["heldout_fvu"] = float(reconstruction_metrics(estimator, held).fvu)
        summary["heldout_groups"] = n_held
    print(json.dumps({"method": args.method, "out": str(args.out), **summary}, default=float))
    worst = max(metrics.fvu, summary.get("heldout_fvu", 0.0))
    if worst >= 1:
        print(f"warning: FVU {worst:.3g} >= 1{' (held-out trials)' if worst > metrics.fvu else ''}: the reconstruction is worse than predicting every unit's mean. "
              f"Try more components (--n-components), more iterations (--max-iter / --epochs), or another method; "
              "for NMF on shifted data compare with --method snmf", file=sys.stderr)
    return 0
