"""``interp compare MODEL --data DATA ...``: layer-by-layer similarity of a model with a recording.

MODEL is a zoo model or Hugging Face model directory (captured at ``--sites`` on the data set's stimuli),
or an Activations file (``.safetensors`` written by ``Activations.save``) of a model captured earlier on the
recording's stimuli. DATA is a bundled data set (``kriegeskorte92``, with ``--rdms`` choosing its RDMs) or
a recording file (``.safetensors``, ``.nwb``, ``.mat``): an RDM stack or response patterns (samples x
units). A recording file holds no stimuli to show a model, so pair it with an Activations file as MODEL.
Rows are matched by the ``stimulus`` (or ``id``) sample coordinate when both sides have one, else by order.

Examples::

    interp compare efficientnet-lite0 --data kriegeskorte92 --rdms "human_IT_s*" --sites "_blocks.*" \\
        --method rsa:spearman --random-weights --out k92_effnet.html --csv k92_effnet.csv
    interp compare layer4.safetensors --data v4_responses.mat --variable responses --annotations image_id \\
        --method cka --out layer4_vs_v4.html
"""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from . import flags

HELP = "compare a model's layers with brain recordings (RSA/CKA/CCA/...), with bootstrap CIs and noise ceiling"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``interp compare``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser, which receives the flags.
    """
    flags.add_model(parser, metavar="MODEL",
                    help="a zoo model or Hugging Face model directory (captured at --sites), or an Activations file "
                         "(.safetensors) of model activations on the recording's stimuli")
    parser.add_argument("--data", required=True,
                        help="a data set (e.g. kriegeskorte92; interp.data.available()) or a recording file "
                             "(.safetensors from Activations.save, .nwb, .mat)")
    parser.add_argument("--rdms", default=None,
                        help="data sets with RDMs: which RDMs (glob on their names), e.g. 'human_IT_s*' "
                             "(default: all)")
    flags.add_sites(parser, help="model sites to compare (module paths or hook names, globs allowed), e.g. "
                                 "--sites '_blocks.*'; needed for a model, not for an Activations file")
    parser.add_argument("--method", default="rsa:spearman",
                        help="rsa[:comparator], cka[:estimator], rbf_cka, cca, svcca, pwcca or procrustes "
                             "(default rsa:spearman)")
    parser.add_argument("--rdm-method", default="correlation", help="dissimilarity of model RDMs (default correlation)")
    parser.add_argument("--n-bootstraps", type=flags.count(0, 10**7), default=1000, help="bootstrap resamples over stimuli and "
                                                                       "subjects (default 1000; 0: none)")
    flags.add_n_permutations(parser, 0, "stimulus-label permutations per site for p-values")
    parser.add_argument("--spatial", default="all", choices=["all", "mean", "max"],
                        help="conv feature maps: keep all positions or pool over space (default all)")
    parser.add_argument("--random-weights", action="store_true",
                        help="also score the same architecture with re-initialised weights (paired bootstrap)")
    flags.add_out(parser, "the HTML report")
    flags.add_csv(parser, "the profile table (one row per model and site)")
    flags.add_recording(parser, annotations_help="the sample coordinate of the recording file that holds stimulus "
                                                 "ids (for a .mat file, the variable), matched to the MODEL file's "
                                                 "'stimulus' or 'id' coordinate")
    flags.add_groups(parser, help="the sample coordinate of the recording (or MODEL file) naming the trial/session "
                                  "each stimulus came from: bootstraps and permutations resample whole groups")
    flags.add_batch_size(parser, 16)
    flags.add_seed(parser)
    flags.add_device(parser)
    flags.add_progress(parser)


def _data_set(name: str, pattern: str | None):
    from .. import data

    ds = data.load(name)
    rdms = getattr(ds, "rdms", None)
    images = getattr(ds, "images", None)
    if rdms is None or images is None:
        raise ConfigError(f"data set {name!r} has no RDMs and stimulus images; `interp compare` takes an RDM data set "
                          "(kriegeskorte92) or a recording file (use interp.compare() in Python for the others)")
    return (rdms.sel(name=pattern) if pattern else rdms), list(images), f"{name}:{pattern or 'all'}"


def _recording_file(target, args):
    from .inputs import load_recording

    if args.rdms is not None:
        raise ConfigError("--rdms selects RDMs of a data set; a recording file is used as a whole")
    if args.annotations and len(args.annotations) != 1:
        raise ConfigError("give one --annotations name for compare: the sample coordinate holding stimulus ids")
    rec = load_recording(target, args)
    if args.annotations:
        frame = rec.coords[rec.dims[0]]
        frame["stimulus"] = frame[args.annotations[0]].to_numpy()
    return rec, str(rec.attrs.get("source") or target.path.stem)


def run(args: argparse.Namespace) -> int:
    """Score every site, print the profile, write ``--out`` / ``--csv``.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed flags of ``interp compare`` (see :func:`add_arguments`).
    """
    from ..similarity.compare import compare, random_weights
    from ..similarity.profile import SimilarityProfiles
    from ..tensor import Activations, atomic_write
    from .inputs import classify, load_model, reject_file_flags

    model_target = classify(args.model, accept=("model", "recording"))
    data_target = classify(args.data, accept=("recording", "dataset"), datasets=_rdm_data_sets())
    if data_target.kind == "dataset":
        reject_file_flags(args, f"{args.data!r} is a data set")
        recording, stimuli, recording_name = _data_set(args.data, args.rdms)
    else:
        recording, recording_name = _recording_file(data_target, args)
        stimuli = None
    kwargs = dict(method=args.method, rdm_method=args.rdm_method, n_bootstraps=args.n_bootstraps,
                  n_permutations=args.n_permutations, seed=args.seed, spatial=args.spatial,
                  batch_size=args.batch_size, recording_name=recording_name, progress=args.progress,
                  groups=args.groups, nan_policy=args.nan_policy)
    if model_target.kind == "recording":
        if args.sites or args.random_weights:
            raise ConfigError("--sites and --random-weights need a model; an Activations file is one site already")
        acts = Activations.load(model_target.path)
        acts.attrs.setdefault("site", model_target.path.stem)
        profiles = [compare(acts, None, recording, model_name=args.model, **kwargs)]
        names = [args.model]
    else:
        if stimuli is None:
            raise ConfigError(f"{args.data} is a recording file, which holds no stimuli to show the model. Capture the "
                              "model on the recording's stimuli (acts = interp.capture(model, stimuli, site); "
                              "acts.save('acts.safetensors')) and pass that file as MODEL")
        if not args.sites:
            raise ConfigError("give --sites: the module paths or hook names (globs allowed) to compare")
        model, preprocess = load_model(model_target, device=args.device)
        profiles = [compare(model, stimuli, recording, args.sites, model_name=args.model, preprocess=preprocess,
                            **kwargs)]
        names = [args.model]
        if args.random_weights:
            name = f"{args.model} (random weights)"
            profiles.append(compare(random_weights(model, args.seed), stimuli, recording, args.sites, model_name=name,
                                    preprocess=preprocess, **kwargs))
            names.append(name)
    result = SimilarityProfiles(profiles, names)
    table = result.to_frame().round(4)
    print(table.to_string(index=False))
    print(result.summary())
    if args.csv:
        atomic_write(args.csv, lambda tmp: table.to_csv(tmp, index=False))
        print(f"wrote {args.csv}")
    if args.out:
        from ..report.html import Report

        rep = Report(f"{args.model} vs {args.data}", subtitle=f"{args.method}; {recording_name}"
                     + (f"; sites {' '.join(args.sites)}" if args.sites else ""))
        rep.add(result, title="Brain similarity by layer")
        print(f"wrote {rep.write(args.out)}")
    return 0


def _rdm_data_sets() -> list[str]:
    from .. import data

    return data.available()
