"""``interp demo --out reports/demo.html``: the main job on the built-in models and data, written as one
HTML report (what ``make demo`` runs).

Each section is a function ``(report, args) -> None`` that adds to the report; a section that
fails is recorded in the report (with the error) instead of stopping the others, and the command
exits non-zero at the end so that a broken section is never silent.

Examples::

    interp demo --out reports/demo.html
    interp demo --sections induction,patching --quick --out /tmp/demo.html
"""

from __future__ import annotations

import argparse
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..results import themed
from . import flags

HELP = "run the main job on the built-in models and data and write a self-contained HTML report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``interp demo``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser, which receives the flags.
    """
    flags.add_out(parser, "the HTML report (the label report goes beside it as labels.html)",
                  default="reports/demo.html")
    parser.add_argument("--sections", default="all",
                        help="comma-separated sections, or 'all' (default): " + ", ".join(SECTIONS))
    parser.add_argument("--quick", action="store_true", help="smaller corpora and fewer resamples (for tests)")


def _section_capture_induction(report, args) -> None:
    import plotly.express as px

    import interp
    from interp.models.induction import induction_head_scores, make_repeated_tokens

    model, _ = interp.models.load("induction-2l")
    data = make_repeated_tokens(64 if not args.quick else 16, seq_len=48, seed=123, tiled_fraction=1.0, min_period=12, max_period=12)
    pattern = interp.capture(model, data.tokens, "blocks.*.attn.hook_pattern", progress=False)
    scores = induction_head_scores(model, make_repeated_tokens(128, seq_len=64, seed=321)).to_frame()
    best = scores[scores["layer"] == 1].sort_values("induction").iloc[-1]
    one = pattern["blocks.1.attn.hook_pattern"].data[0, :, int(best["head"])]  # (pos, key_pos) of one sequence
    heat = themed(px.imshow(one.numpy(), color_continuous_scale="Blues",
                            labels={"x": "key position", "y": "query position"},
                            title=f"L1H{int(best['head'])} on a sequence whose 12-token block repeats: the stripe is "
                                  "induction"))
    fig = px.scatter(scores, x="previous_token", y="induction", color=scores["layer"].astype(str), labels={"color": "layer"},
                     text=[f"L{r.layer}H{r.head}" for r in scores.itertuples()],
                     title="induction-2l heads on unseen repeated sequences")
    themed(fig).update_traces(textposition="top center")
    report.add_section("induction-2l: heads found by capture", [
        "<p>Attention patterns captured with <code>interp.capture(model, tokens, 'blocks.*.attn.hook_pattern')</code> "
        "on unseen repeated random sequences. The layer-0 previous-token head and the layer-1 induction heads stand out.</p>",
        fig, heat,
    ])
    report.add_table("induction-2l head scores", scores.round(3))


def _section_smollm2_units(report, args) -> None:
    import plotly.express as px

    import interp

    model, tok = interp.models.load("smollm2-135m")
    texts = DEMO_TEXTS[: 8 if args.quick else len(DEMO_TEXTS)]
    site = "blocks.10.mlp.hook_post"
    acts = interp.capture(model, texts, site, positions="tokens", batch_size=8, progress=False)
    x = acts.data
    stats = pd.DataFrame({
        "unit": np.arange(x.shape[1]),
        "mean": x.mean(0).numpy(),
        "std": x.std(0).numpy(),
        "max": x.amax(0).numpy(),
        "frequency_gt_0.1": (x > 0.1).float().mean(0).numpy(),
    })
    top = stats.sort_values("max", ascending=False).head(20)
    toks = acts.coord("token")
    words = [tok.decode([int(t)]) for t in toks]
    examples = []
    for unit in top["unit"].head(10):
        best = int(x[:, unit].argmax())
        examples.append(f"unit {unit}: max {float(x[best, unit]):.2f} on token {words[best]!r}")
    fig = themed(px.histogram(stats, x="std", nbins=60,
                              title=f"smollm2-135m {site}: spread of the 1,536 units over {x.shape[0]} tokens"))
    report.add_section(f"smollm2-135m: unit statistics at {site}", [
        f"<p>{x.shape[0]} tokens from {len(texts)} texts, captured with <code>positions='tokens'</code>.</p>", fig,
        "<ul>" + "".join(f"<li>{e}</li>" for e in examples) + "</ul>",
    ])
    report.add_table("smollm2-135m: the 20 units with the largest activation", top.round(3))


def _section_patching(report, args) -> None:
    import interp
    import patching
    from patching.datasets import induction_pairs

    model, _ = interp.models.load("induction-2l")
    pairs = induction_pairs(n=16 if args.quick else 32, corrupt="key", seed=0)
    res = patching.activation_patching(model, pairs.clean, pairs.corrupted, pairs.metric(), ["heads", "resid_pre"])
    report.add_section("patching: the induction circuit of induction-2l", [
        "<p>Denoising activation patching (clean activations into the corrupted run) on repeated sequences whose "
        "key token is corrupted. Metric: logit difference of the induced token. The previous-token head in layer 0 and "
        "the induction heads in layer 1 carry the effect.</p>",
        res.plot(title="per head (hook_z) and residual stream by layer and position"),
    ])


def _section_labels(report, args) -> None:
    out = Path(args.out).with_name("labels.html")
    path = build_demo_report(out, n_tokens=2_000 if args.quick else 6_000, n_permutations=100 if args.quick else 300,
                             progress=False)
    report.add_section("neuron labels", f'<p>The neuron-label report (induction-2l heads, a smollm2-135m MLP layer and '
                       f'C. elegans neurons) is a separate page: <a href="{path.name}">{path.name}</a> '
                       f'({path.stat().st_size / 1e6:.1f} MB).</p>')


def _section_similarity(report, args) -> None:
    import interp
    from interp.similarity import SimilarityProfiles
    from interp.similarity.compare import expand_sites, random_weights

    k92 = interp.data.load("kriegeskorte92")
    human = k92.rdms.sel(name="human_IT_s*")  # 4 subjects x 2 sessions
    model, preprocess = interp.models.load("efficientnet-lite0")
    sites = expand_sites(model, "_blocks.*")
    ids = k92.stimuli["stimulus"].tolist()
    kw = dict(method="rsa:spearman", n_bootstraps=100 if args.quick else 300, seed=0, progress=False)
    profiles = []
    for name, net in (("efficientnet-lite0 (ImageNet)", model), ("same architecture, random weights", random_weights(model, seed=0))):
        acts = interp.capture(net, list(k92.images), sites, preprocess=preprocess, sample_ids=ids, progress=False)
        profiles.append(interp.compare(acts, None, human, model_name=name, **kw))
    report.add(SimilarityProfiles(profiles), title="brain similarity: efficientnet-lite0 blocks vs human IT "
                                                   "(kriegeskorte92)")
    from patching.alignment import k92_it_alignment

    out = k92_it_alignment(model=model, preprocess=preprocess, readout=str(profiles[0].best()["site"]),
                           quick=args.quick)
    report.add_section("causal brain alignment: which blocks and channels carry the IT-likeness",
                       "<p>The read-out's similarity to human IT (RSA, Spearman over the 8 subject-session RDMs) "
                       "with parts of the network mean-ablated, and its change with a stimulus-bootstrap CI: a CI "
                       "below zero means the ablated part carries IT-like geometry.</p>")
    report.add(out["blocks"], title="ablating half of each block's channels")
    report.add(out["channels"], title="ablating channel groups of the most important blocks")


def _section_decompose(report, args) -> None:
    import interp
    from interp.decompose import NMF
    from interp.decompose.recordings import behaviour_components

    worm = interp.data.load("celegans", worm=0, trace="F_F20")
    nmf = NMF(n_components=8, seed=0).fit(worm)
    comps = behaviour_components(nmf, worm, n_permutations=200 if args.quick else 1000)
    frame = comps.to_frame()
    report.add_section("decomposition: behaviour components of a C. elegans recording", [
        "<p>NMF (8 components) on one worm's calcium traces; each component's correlation with reversal and velocity "
        "against a circular-shift null, and the named neurons that load on it most.</p>",
        comps.plot(),
    ])
    report.add_table("celegans NMF components", frame)


def _section_paths(report, args) -> None:
    import interp
    from interp.models.digits import load_digits_split
    from patching.paths import find_paths, path_diagram

    model, preprocess = interp.models.load("digits-vit")
    split = load_digits_split()
    images = preprocess(split.test_images[:8])
    targets = split.test_labels[:8]
    paths = find_paths(model, images, targets, steps=10)
    report.add_section("neuron paths in digits-vit", [
        "<p>Layer-progressive joint-attribution paths (Wang et al., ICLR 2025): one MLP neuron per block at the CLS "
        "token, for 8 test digits.</p>", path_diagram(paths),
    ])


SECTIONS: dict[str, Callable] = {
    "induction": _section_capture_induction,
    "smollm2": _section_smollm2_units,
    "patching": _section_patching,
    "similarity": _section_similarity,
    "decompose": _section_decompose,
    "paths": _section_paths,
    "labels": _section_labels,
}

DEMO_TEXTS = [
    "The capital of France is Paris, and the capital of Italy is Rome.",
    "Whole-brain calcium imaging records neurons in freely moving worms.",
    "def add(a, b):\n    return a + b",
    "She walked to the market on Monday and bought apples, pears and bread.",
    "In 1969, astronauts landed on the Moon for the first time.",
    "The mitochondria is the powerhouse of the cell.",
    "Prices rose by 3.5% in March, according to the report.",
    "Once upon a time there was a little fox who lived in the forest.",
    "To be or not to be, that is the question.",
    "The quick brown fox jumps over the lazy dog.",
    "Neurons in the hippocampus fire when the animal is at a particular place.",
    "Tuesday, Wednesday, Thursday, Friday, Saturday and Sunday.",
]


def run(args: argparse.Namespace) -> int:
    """Build the report; returns 1 if any section failed.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed flags of ``interp demo`` (see :func:`add_arguments`).
    """
    from interp.report.html import Report

    chosen = list(SECTIONS) if args.sections == "all" else [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        raise ConfigError(f"unknown demo sections {unknown}; choose from {list(SECTIONS)} or 'all'")
    report = Report("interp demo", subtitle="capture, labels, similarity, decomposition and patching on the built-in models and data")
    failures = []
    for name in chosen:
        start = time.perf_counter()
        try:
            SECTIONS[name](report, args)
            print(f"demo: section {name} done in {time.perf_counter() - start:.1f}s", flush=True)
        except Exception:  # noqa: BLE001 - a failing section is reported, and the exit code says so
            failures.append(name)
            report.add_section(f"{name}: failed", f"<pre>{traceback.format_exc()}</pre>")
            print(f"demo: section {name} FAILED\n{traceback.format_exc()}", flush=True)
    path = report.write(Path(args.out))
    print(f"demo: wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 1 if failures else 0


def build_demo_report(path: str | os.PathLike = "reports/labels.html", n_tokens: int = 6_000, layer: int = 6,
                      n_permutations: int = 300, progress: bool = True) -> Path:
    """The ``make demo`` label report: induction-2l heads, one smollm2-135m MLP layer, C. elegans neurons.

    Small settings (a few thousand tokens, a few hundred circular shifts) keep it to a few minutes on
    2 CPU cores. A part whose model or data is missing is replaced by a note, the rest still builds.

    Parameters
    ----------
    path : str or os.PathLike, optional
        The HTML file to write (default ``"reports/labels.html"``).
    n_tokens : int, optional
        Tokens read to label the smollm2-135m MLP neurons (default 6000).
    layer : int, optional
        The smollm2-135m block whose MLP neurons are labelled (default 6).
    n_permutations : int, optional
        Circular shifts of the null for the C. elegans neurons (default 300).
    progress : bool, optional
        Show progress bars while capturing smollm2-135m (default True).
    """
    import torch

    from .. import data, models
    from ..errors import InterpError
    from ..label import LabelResult, build_label_report, label_heads, label_neurons, label_recordings

    results: list[LabelResult] = []
    notes: list[str] = []
    try:
        from ..models.induction import make_repeated_tokens

        model, _ = models.load("induction-2l")
        results.append(label_heads(model, make_repeated_tokens(32, seq_len=64, seed=11).tokens,
                                   make_repeated_tokens(32, seq_len=64, seed=12).tokens, title="induction-2l heads"))
    except (InterpError, ImportError) as exc:
        notes.append(f"induction-2l heads skipped: {exc}")
    try:
        model, _ = models.load("smollm2-135m")
        torch.manual_seed(0)
        results.append(label_neurons(model, f"blocks.{layer}.mlp.hook_post", n_tokens=n_tokens, seq_len=64,
                                     title=f"smollm2-135m layer {layer} MLP", progress=progress))
    except (InterpError, ImportError) as exc:
        notes.append(f"smollm2-135m layer skipped: {exc}")
    try:
        worms = data.load("celegans")
        results.append(label_recordings(worms, ["reversal", "velocity", "head_angle"], by="canonical",
                                        n_permutations=n_permutations,
                                        title="C. elegans neurons (7 worms)"))
    except (InterpError, ImportError) as exc:
        notes.append(f"celegans skipped: {exc}")
    return build_label_report(results, path, title="interp demo: neuron labels", notes=notes)
