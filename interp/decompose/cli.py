"""``interp decompose``: fit an SAE, SNMF or NMF on stored activations and save it.

Examples::

    interp decompose --store runs/smollm2 --site blocks.3.mlp.hook_post --method topk --n-components 4096 --k 32 \\
        --out sae.safetensors
    interp decompose --activations worm0.safetensors --method nmf --n-components 8 --out nmf.safetensors
"""

from __future__ import annotations

import argparse
import json

from ..errors import ConfigError

HELP = "fit a sparse autoencoder (ReLU/TopK/BatchTopK/JumpReLU), SNMF or NMF on activations and save it"

METHODS = {
    "relu": "ReLUSAE",
    "topk": "TopKSAE",
    "batchtopk": "BatchTopKSAE",
    "jumprelu": "JumpReLUSAE",
    "snmf": "SNMF",
    "nmf": "NMF",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--store", help="an ActivationStore directory (written by interp capture)")
    src.add_argument("--activations", help="an Activations file (.safetensors written by Activations.save)")
    parser.add_argument("--site", help="which array of the store (needed when it holds several)")
    parser.add_argument("--method", choices=sorted(METHODS), default="topk")
    parser.add_argument("--n-components", type=int, default=1024, help="latents / components")
    parser.add_argument("--k", type=int, default=32, help="active latents per sample (topk, batchtopk)")
    parser.add_argument("--l1", type=float, default=5.0, help="L1 coefficient (relu)")
    parser.add_argument("--sparsity", type=float, default=None,
                        help="SNMF: fraction of weights kept per feature; JumpReLU: L0 coefficient")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--max-seconds", type=float, default=None, help="stop SAE training after this long")
    parser.add_argument("--max-iter", type=int, default=500, help="SNMF/NMF iterations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="where to save the fitted estimator (.safetensors)")


def build(args: argparse.Namespace):
    """The estimator that the arguments describe."""
    from . import nmf, sae

    common = dict(lr=args.lr, batch_size=args.batch_size, n_epochs=args.epochs, max_seconds=args.max_seconds,
                  random_state=args.seed)
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
                        max_iter=args.max_iter, random_state=args.seed, verbose=True)
    if args.method == "nmf":
        return nmf.NMF(args.n_components, max_iter=args.max_iter, random_state=args.seed, verbose=True)
    raise ConfigError(f"unknown method {args.method!r}; choose from {sorted(METHODS)}")


def run(args: argparse.Namespace) -> int:
    from ..tensor import Activations
    from .metrics import reconstruction_metrics

    estimator = build(args)
    if args.store:
        from ..store import ActivationStore

        store = ActivationStore.open(args.store)
        data = (store, args.site) if args.site else store
        estimator.fit(data)
        evaluation = data
    else:
        evaluation = Activations.load(args.activations)
        estimator.fit(evaluation)
    estimator.save(args.out)
    metrics = reconstruction_metrics(estimator, evaluation)
    summary = {k: v for k, v in metrics.to_frame().iloc[0].to_dict().items()}
    print(json.dumps({"method": args.method, "out": args.out, **summary}, default=float))
    return 0
