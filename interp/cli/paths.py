"""``interp paths MODEL ...``: neuron-path search (Joint Attribution Score, Wang et al. ICLR 2025) from the command
line: one neuron per layer whose joint attribution to the target is largest, validated by removing and
enhancing the path's neurons.

A vision model (``digits-vit``) runs on ``--n`` test images at the CLS token; a language model on
``--prompt``/``--answer`` pairs (or ``--facts``) at the last position.

Examples::

    interp paths digits-vit --n 20 --compare --out paths.html
    interp paths smollm2-135m --prompt "The capital of France is" --answer " Paris"
    interp paths smollm2-135m --facts --compare --out lm_paths.html --csv lm_paths.csv
"""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from . import flags

HELP = "find influential neuron paths (layer-progressive Joint Attribution Score) and validate them by ablation"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``interp paths``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser, which receives the flags.
    """
    flags.add_model(parser, help="a zoo model: digits-vit (vision, test images) or a language model "
                                 "(smollm2-135m, ...; with --prompt/--answer or --facts)")
    flags.add_sites(parser, help="one site per layer in layer order (default: the MLP hidden neurons of every "
                                 "block)")
    parser.add_argument("--method", default="jas", choices=["jas", "activation", "influence", "random", "mean_gradient"],
                        help="how a layer's neuron is chosen (default jas, the Joint Attribution Score)")
    parser.add_argument("--n", type=flags.count(1, 10**6), default=16, help="vision: number of test images (default 16)")
    parser.add_argument("--prompt", action="append", default=None, help="LM prompt (repeat for several)")
    parser.add_argument("--answer", action="append", default=None, help="LM answer for each --prompt (its first "
                                                                        "token is the target)")
    parser.add_argument("--facts", action="store_true", help="LM: use the built-in factual prompts")
    parser.add_argument("--steps", type=flags.count(1, 10**5), default=20, help="Riemann steps m of the joint IG (default 20)")
    parser.add_argument("--top-k", type=flags.count(1, 10**6), default=1, help="neurons per layer (default 1)")
    parser.add_argument("--position", type=int, default=None, help="token position (default: 0 for vision, -1 for LMs)")
    parser.add_argument("--compare", action="store_true",
                        help="also run the baselines and remove/enhance every method's path neurons")
    parser.add_argument("--n-random", type=flags.count(1, 10**5), default=5, help="random paths per sample with --compare (default 5)")
    flags.add_out(parser, "the HTML report")
    flags.add_csv(parser, "the paths (one row per sample x layer)")
    flags.add_seed(parser)
    flags.add_device(parser)
    flags.add_progress(parser)


def _vision_inputs(args, preprocess):
    import numpy as np
    import torch

    from ..models import digits

    if args.model != "digits-vit":
        raise ConfigError(f"vision inputs are available for digits-vit only; got {args.model!r}")
    split = digits.load_digits_split()
    images, labels = split.test_images[: args.n], split.test_labels[: args.n]
    x = preprocess(images) if preprocess is not None else torch.as_tensor(images)
    return x, torch.tensor(np.asarray(labels), dtype=torch.long), [str(int(v)) for v in labels]


def run(args: argparse.Namespace) -> int:
    """Find (and with ``--compare`` validate) the paths; print them; write ``--out`` / ``--csv``.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed flags of ``interp paths`` (see :func:`add_arguments`).
    """
    import patching.paths as P

    from ..engine import is_bridge
    from .inputs import classify, load_model

    model, preprocess = load_model(classify(args.model, accept=("model",)), device=args.device)
    is_lm = is_bridge(model)
    if is_lm:
        if args.facts:
            pairs = P.FACTUAL_PROMPTS
        elif args.prompt:
            answers = args.answer or []
            if len(answers) != len(args.prompt):
                raise ConfigError("give one --answer per --prompt (the answer's first token is the target)")
            pairs = list(zip(args.prompt, answers))
        else:
            raise ConfigError("for a language model give --prompt/--answer pairs or --facts")
        inputs, targets = P.lm_inputs(model, preprocess, [p for p, _ in pairs], [a for _, a in pairs])
        labels = [p for p, _ in pairs]
        position = -1 if args.position is None else args.position
    else:
        inputs, targets, labels = _vision_inputs(args, preprocess)
        position = 0 if args.position is None else args.position
    sites = args.sites or P.mlp_sites(model)
    common = dict(position=position, steps=args.steps, top_k=args.top_k, seed=args.seed, progress=args.progress)
    comparison = similarity = None
    if args.compare:
        comparison = P.compare_paths(model, inputs, targets, sites, n_random=args.n_random, **common)
        paths = comparison.paths["jas"]
        print(comparison.means().round(4).to_string(index=False))
        print()
        print(comparison.contrast("jas", op="remove").round(4).to_string(index=False))
    else:
        paths = P.find_paths(model, inputs, targets, sites, method=args.method, **common)
    paths.labels = labels
    frame = paths.to_frame()
    wide = frame.pivot_table(index="sample", columns="layer", values="neuron", aggfunc=lambda v: ",".join(map(str, v)))
    print(f"\n{paths.method} paths ({paths.n_samples} samples, {len(sites)} layers; "
          f"{paths.passes.forward} forward / {paths.passes.backward} backward passes, {paths.seconds:.1f} s)")
    print(wide.to_string(max_cols=12))
    if not is_lm and paths.n_samples > 2:
        similarity = P.path_similarity(paths, labels)
        print(f"\npath overlap within classes {similarity.within:.3f} vs across {similarity.across:.3f} "
              f"(permutation p = {similarity.p_value:.3g})")
    if args.csv:
        from ..tensor import atomic_write

        atomic_write(args.csv, lambda tmp: frame.to_csv(tmp, index=False))
        print(f"wrote {args.csv}")
    if args.out:
        from ..report.html import Report

        rep = Report(f"Neuron paths: {args.model}",
                     subtitle="Layer-progressive Joint Attribution paths (Wang et al., ICLR 2025)")
        rep.add(paths, title=f"{paths.method} paths")
        if comparison is not None:
            rep.add(comparison, title="Remove / enhance path neurons")
        if similarity is not None:
            rep.add(similarity, title="Path similarity within vs across classes")
        print(f"wrote {rep.write(args.out)}")
    return 0
