"""``interp decompose DATA --out F``: fit an SAE, SNMF or NMF on activations or a recording and save it.

DATA is an activation store folder (written by ``interp capture``; ``--sites`` picks the array when it
holds several), or a recording file: ``.safetensors`` written by ``Activations.save``, ``.nwb`` or ``.mat``.
The command prints the reconstruction metrics of the fitted estimator on the same data as JSON.

Examples::

    interp decompose runs/smollm2 --sites blocks.3.mlp.hook_post --method topk --n-components 4096 --k 32 \\
        --out sae.safetensors
    interp decompose worm0.safetensors --method nmf --n-components 8 --out nmf.safetensors
    interp decompose session.mat --variable dff --dims unit time --method nmf --n-components 10 --out assemblies.safetensors
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

HELP = "fit a sparse autoencoder (ReLU/TopK/BatchTopK/JumpReLU), SNMF or NMF on activations and save it"

METHODS = ("relu", "topk", "batchtopk", "jumprelu", "snmf", "nmf")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``interp decompose``."""
    parser.add_argument("data", metavar="DATA",
                        help="an activation store folder (from interp capture) or a recording file "
                             "(.safetensors from Activations.save, .nwb, .mat)")
    flags.add_sites(parser, help="store: the array to fit, one name or glob (needed when the store holds several)")
    flags.add_out(parser, "where to save the fitted estimator (.safetensors)", required=True)
    parser.add_argument("--method", choices=METHODS, default="topk", help="estimator (default topk)")
    parser.add_argument("--n-components", type=flags.count(1, 10**7), default=1024, help="latents / components (default 1024)")
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
                                                 ".mat file, the variables with one value per sample)")
    flags.add_seed(parser)
    flags.add_device(parser)
    flags.add_progress(parser)


def build(args: argparse.Namespace):
    """The estimator that the arguments describe."""
    from ..decompose import nmf, sae

    common = dict(lr=args.lr, batch_size=args.batch_size, n_epochs=args.epochs, max_seconds=args.max_seconds,
                  seed=args.seed, device=args.device, progress=args.progress)
    if args.method == "topk":
        return sae.TopKSAE(args.n_components, k=args.k, **common)
    if args.method == "batchtopk":
        return sae.BatchTopKSAE(args.n_components, k=args.k, **common)
    if args.method == "relu":
        return sae.ReLUSAE(args.n_components, l1_coefficient=args.l1, **common)
    if args.method == "jumprelu":
        return sae.JumpReLUSAE(args.n_components, sparsity_coefficient=args.sparsity or 1.0, **common)
    if args.method == "snmf":
        return nmf.SNMF(args.n_components, sparsity=args.sparsity if args.sparsity is not None else 0.01,
                        max_iter=args.max_iter, seed=args.seed, device=args.device, progress=args.progress)
    if args.method == "nmf":
        return nmf.NMF(args.n_components, max_iter=args.max_iter, seed=args.seed, device=args.device,
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


def run(args: argparse.Namespace) -> int:
    """Fit, save ``--out``, print the metrics as JSON."""
    from ..decompose.metrics import reconstruction_metrics
    from .inputs import classify, load_recording, reject_file_flags

    target = classify(args.data, accept=("store", "recording"))
    estimator = build(args)
    if target.kind == "store":
        reject_file_flags(args, f"{args.data} is an activation store")
        data = _store_data(target, args.sites)
    else:
        if args.sites:
            raise ConfigError("--sites picks an array of an activation store; a recording file is used as a whole")
        data = load_recording(target, args)
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
    print(json.dumps({"method": args.method, "out": str(args.out), **summary}, default=float))
    return 0
