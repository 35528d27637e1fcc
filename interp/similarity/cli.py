"""``interp compare``: layer-by-layer similarity of a zoo model with a recorded data set.

Example::

    interp compare --model efficientnet-lite0 --data kriegeskorte92 --rdms "human_IT_s*" \\
        --sites "blocks.*" --method rsa:spearman --random-weights --out k92_effnet.html --csv k92_effnet.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError

HELP = "Compare a model's layers with brain recordings (RSA/CKA/...), with bootstrap CIs and noise ceiling"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="zoo model name (see interp.models.available())")
    parser.add_argument("--data", default="kriegeskorte92", help="data set name (interp.data.available())")
    parser.add_argument("--rdms", default="human_IT_s*",
                        help="RDM names (glob) of the data set to compare with, e.g. 'human_IT_s*' or 'monkey_IT'")
    parser.add_argument("--sites", required=True, help="comma-separated module paths / hook names (globs allowed)")
    parser.add_argument("--method", default="rsa:spearman", help="rsa[:comparator] (default rsa:spearman)")
    parser.add_argument("--rdm-method", default="correlation", help="dissimilarity of model RDMs")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (stimuli and subjects)")
    parser.add_argument("--n-permutations", type=int, default=0, help="stimulus-label permutations per site")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spatial", default="all", choices=["all", "mean", "max"],
                        help="conv feature maps: keep all positions or pool over space")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--random-weights", action="store_true",
                        help="also score the same architecture with re-initialised weights (paired bootstrap)")
    parser.add_argument("--out", type=Path, default=None, help="write an HTML report here")
    parser.add_argument("--csv", type=Path, default=None, help="write the profile table here")
    parser.add_argument("--device", default=None)


def _recording(data_name: str, pattern: str):
    from .. import data as data_mod

    ds = data_mod.load(data_name)
    rdms = getattr(ds, "rdms", None)
    if rdms is None:
        raise ConfigError(f"data set {data_name!r} has no RDMs; `interp compare` needs an RDM data set "
                          "(use interp.compare() in Python for response patterns)")
    return ds, rdms.sel(name=pattern)


def _stimuli(ds):
    if hasattr(ds, "images"):
        return list(ds.images)
    raise ConfigError("this data set has no images to show the model")


def run(args: argparse.Namespace) -> int:
    from .. import models
    from ..tensor import atomic_write
    from .compare import compare, random_weights
    from .report import add_profile_section, profiles_frame

    ds, recording = _recording(args.data, args.rdms)
    model, preprocess = models.load(args.model, device=args.device)
    sites = [s.strip() for s in args.sites.split(",") if s.strip()]
    kwargs = dict(method=args.method, rdm_method=args.rdm_method, preprocess=preprocess, n_boot=args.n_boot,
                  n_permutations=args.n_permutations, seed=args.seed, spatial=args.spatial,
                  batch_size=args.batch_size, recording_name=f"{args.data}:{args.rdms}")
    stimuli = _stimuli(ds)
    profiles = [compare(model, stimuli, recording, sites, model_name=args.model, **kwargs)]
    names = [args.model]
    if args.random_weights:
        profiles.append(compare(random_weights(model, args.seed), stimuli, recording, sites,
                                model_name=f"{args.model} (random weights)", **kwargs))
        names.append(f"{args.model} (random weights)")
    table = profiles_frame(profiles, names)
    print(table.to_string(index=False))
    if profiles[0].ceiling is not None:
        c = profiles[0].ceiling
        print(f"noise ceiling ({c.method}): lower {c.lower:.4f} upper {c.upper:.4f}")
    if len(profiles) == 2:
        d = profiles[0].difference(profiles[1])
        print(f"best trained - best random: {d.estimate:.4f} [{d.low:.4f}, {d.high:.4f}] ({int(100 * d.level)}% CI)")
    if args.csv:
        atomic_write(args.csv, lambda tmp: table.to_csv(tmp, index=False))
        print(f"wrote {args.csv}")
    if args.out:
        from ..report.html import Report

        rep = Report(f"{args.model} vs {args.data}", subtitle=f"{args.method}; RDMs {args.rdms}; sites {args.sites}")
        add_profile_section(rep, profiles, names)
        rep.write(args.out)
        print(f"wrote {args.out}")
    return 0
