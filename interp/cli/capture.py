"""``interp capture MODEL --sites ... --texts FILE --out DIR``: stream a language model's activations over a
text file (one input per line) into an activation store; ``--dry-run`` plans the job instead.

The store holds one row per real token of every input (``sample_index``, ``pos``, ``token`` sample
coordinates) and resumes where it stopped when the same command runs again.

Examples::

    interp capture smollm2-135m --sites 'blocks.*.mlp.hook_post' --texts corpus.txt --out runs/smollm2
    interp capture smollm2-135m --sites blocks.6.mlp.hook_post --texts corpus.txt --dry-run
    torchrun --nproc-per-node 2 -m interp capture smollm2-135m --sites 'blocks.*.mlp.hook_post' --texts corpus.txt \
        --out runs/smollm2          # each rank captures a contiguous block of the texts into the one store
    interp capture smollm2-135m --sites 'blocks.*.hook_resid_post' --n-tokens 100000000 --seq-len 256 \\
        --batch-size 32 --dry-run

``--dry-run`` prints bytes per token, the store size and the peak memory (weights, one batch, token ids)
for the given sites, tokens (``--n-tokens``, or counted from ``--texts``) and batch size, after six
probe sequences through the model (see :func:`interp.capture_plan.plan_capture`); nothing is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError, DataNotFoundError, InputTypeError
from . import flags

HELP = "capture a language model's activations over a text file into an activation store (or plan it: --dry-run)"
DTYPES = ("float32", "float16", "bfloat16")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``interp capture``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser, which receives the flags.
    """
    flags.add_model(parser)
    flags.add_sites(parser, required=True)
    parser.add_argument("--texts", type=Path, default=None, help="a text file, one input per line (empty lines skipped)")
    flags.add_out(parser, "the activation store folder to write (an existing one resumes)")
    flags.add_batch_size(parser, 16)
    parser.add_argument("--dtype", default="float32", choices=DTYPES, help="dtype of the stored rows (default float32)")
    flags.add_device(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing store instead of resuming it")
    parser.add_argument("--truncate", action="store_true",
                        help="cut lines longer than the model's context to it (with a warning); without it they are an error")
    flags.add_progress(parser)
    plan = parser.add_argument_group("planning (--dry-run)")
    plan.add_argument("--dry-run", action="store_true",
                      help="print bytes per token, store size and peak memory, then stop (nothing is written)")
    plan.add_argument("--n-tokens", type=flags.count(1), default=None,
                      help="tokens to plan for (default: the tokens of --texts)")
    plan.add_argument("--seq-len", type=flags.count(1, 10**7), default=None,
                      help="tokens per input when planning without --texts (default min(128, context length))")


def _texts(path: Path) -> list[str]:
    if not path.exists():
        raise DataNotFoundError(f"text file {path} does not exist")
    if not path.is_file():
        raise InputTypeError(f"--texts {path} is not a file; pass a text file with one input per line")
    try:
        texts = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as exc:
        raise InputTypeError(f"--texts {path} is not UTF-8 text (byte {exc.start}: {exc.reason}); pass a text file "
                             "with one input per line") from None
    if not texts:
        raise InputTypeError(f"{path} holds no non-empty lines: the corpus is empty")
    return texts


def run(args: argparse.Namespace) -> int:
    """Capture into ``--out`` and print the store, or print the plan with ``--dry-run``.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed flags of ``interp capture`` (see :func:`add_arguments`).
    """
    import torch

    from ..capture import capture
    from .inputs import classify, load_model

    target = classify(args.model, accept=("model",))
    if args.dry_run:
        if args.texts is None and args.n_tokens is None:
            raise ConfigError("--dry-run needs --texts or --n-tokens (how many tokens to plan for)")
    else:
        missing = [f for f, v in (("--texts", args.texts), ("--out", args.out)) if v is None]
        if missing:
            raise ConfigError(f"capture needs {' and '.join(missing)} (or --dry-run to plan only)")
        if args.n_tokens is not None or args.seq_len is not None:
            raise ConfigError("--n-tokens and --seq-len plan a capture; use them with --dry-run")
    texts = _texts(args.texts) if args.texts is not None else None
    if not args.dry_run:  # a file, or a folder that is not a store, is refused before the model loads
        from ..store._manifest import claim

        claim(args.out, overwrite=args.overwrite)
    model, _ = load_model(target, device=args.device)
    dtype = getattr(torch, args.dtype)
    if args.dry_run:
        from ..capture_plan import plan_capture

        plan = plan_capture(model, args.sites, texts=texts, n_tokens=args.n_tokens, seq_len=args.seq_len,
                            batch_size=args.batch_size, dtype=dtype, model_name=args.model, truncate=args.truncate)
        print(plan.summary())
        print(plan.to_frame().to_string(index=False))
        return 0
    store = capture(model, texts, args.sites, store=args.out, batch_size=args.batch_size, dtype=dtype,
                    overwrite=args.overwrite, progress=args.progress, truncate=args.truncate)
    from ..engine.distributed import rank_and_world

    if rank_and_world()[0] == 0:  # under torchrun every rank wrote its block of the inputs; rank 0 committed
        print(store)
    return 0
