"""``interp capture``: stream a zoo model's activations over a text file into an activation store."""

from __future__ import annotations

import argparse
from pathlib import Path

from .errors import DataNotFoundError, InputTypeError

HELP = "capture activations of a zoo model over a text file (one text per line) into an activation store"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``interp capture``."""
    parser.add_argument("model", help="zoo model name, e.g. smollm2-135m")
    parser.add_argument("--texts", required=True, help="a text file, one input per line")
    parser.add_argument("--sites", required=True, nargs="+", help="hook names or globs, e.g. 'blocks.*.mlp.hook_post'")
    parser.add_argument("--store", required=True, help="output store directory (resumes if it exists)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--device", default=None)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing store instead of resuming")


def run(args: argparse.Namespace) -> int:
    """Capture and print the store's summary."""
    import torch

    import interp

    path = Path(args.texts)
    if not path.exists():
        raise DataNotFoundError(f"text file {path} does not exist")
    texts = [line for line in path.read_text().splitlines() if line.strip()]
    if not texts:
        raise InputTypeError(f"{path} holds no non-empty lines: the corpus is empty")
    model, _ = interp.models.load(args.model, device=args.device)
    store = interp.capture(model, texts, args.sites, store=args.store, batch_size=args.batch_size,
                           dtype=getattr(torch, args.dtype), overwrite=args.overwrite)
    print(store)
    return 0
