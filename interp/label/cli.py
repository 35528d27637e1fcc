"""``interp label MODEL_OR_DATA --sites ... --report out.html``: label units and write an HTML report.

Examples::

    interp label smollm2-135m --sites blocks.6.mlp.hook_post --n-tokens 20000 --report labels.html
    interp label induction-2l --sites heads --report heads.html
    interp label celegans --annotations reversal,velocity,head_angle --report worms.html
    interp label hippocampus --report place_cells.html
    interp label smollm2-135m --sites blocks.6.mlp.hook_post --explainer openai --endpoint http://localhost:8000/v1
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError

HELP = "label units (model neurons, attention heads, recorded neurons) and write a self-contained HTML report"

RECORDINGS = {"celegans", "hippocampus"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="MODEL_OR_DATA",
                        help="a zoo model (smollm2-135m, induction-2l, ...) or a recording (celegans, hippocampus)")
    parser.add_argument("--sites", nargs="+", default=None,
                        help="hook names of the units to label, e.g. blocks.6.mlp.hook_post; 'heads' for attention heads")
    parser.add_argument("--report", type=Path, default=Path("labels.html"), help="output HTML file (default labels.html)")
    parser.add_argument("--csv", type=Path, default=None, help="also write the index table as CSV")
    parser.add_argument("--n-tokens", type=int, default=20_000, help="corpus tokens for model neurons (default 20000)")
    parser.add_argument("--seq-len", type=int, default=64, help="tokens per corpus sequence (default 64)")
    parser.add_argument("--text", type=Path, default=None, help="a text file to use as corpus (default: offline Python docs)")
    parser.add_argument("--k", type=int, default=12, help="exemplars per unit (default 12)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--units", default=None, help="unit range to label, e.g. 0:256 (default: all)")
    parser.add_argument("--explainer", choices=["templated", "local", "openai"], default="templated",
                        help="who writes the labels (default templated; local = smollm2-135m; openai = --endpoint)")
    parser.add_argument("--endpoint", default="http://localhost:8000/v1", help="OpenAI-compatible base URL")
    parser.add_argument("--api-model", default="gpt-4o-mini", help="model name sent to the endpoint")
    parser.add_argument("--simulate", type=int, default=0, help="units scored by simulation (explainers that simulate)")
    parser.add_argument("--annotations", default="reversal,velocity,head_angle",
                        help="comma-separated behaviour annotations for recordings (default for celegans)")
    parser.add_argument("--by", default="canonical", help="unit coordinate that pools recordings (default canonical)")
    parser.add_argument("--n-perm", type=int, default=1000, help="circular shifts / shuffles (default 1000)")
    parser.add_argument("--max-cards", type=int, default=None, help="at most this many unit cards (best scores first)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


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
    from .explain import LocalModelExplainer, OpenAIExplainer, TemplatedExplainer

    if args.explainer == "local":
        return LocalModelExplainer("smollm2-135m")
    if args.explainer == "openai":
        import os

        return OpenAIExplainer(args.endpoint, args.api_model, api_key=os.environ.get("OPENAI_API_KEY"))
    return TemplatedExplainer()


def run(args: argparse.Namespace) -> int:
    from .. import data, models
    from .pipeline import label_heads, label_neurons, label_place_cells, label_recordings
    from .report import build_label_report

    results = []
    if args.target in RECORDINGS:
        if args.target == "celegans":
            worms = data.load("celegans")
            results.append(label_recordings(worms, [a for a in args.annotations.split(",") if a], by=args.by,
                                            n_perm=args.n_perm, title="C. elegans neurons"))
        else:
            rec = data.load("hippocampus", environment="linear-track", bin_size=0.1)
            results.append(label_place_cells(rec, n_shuffle=min(args.n_perm, 1000), title="hippocampus place cells"))
    else:
        sites = args.sites or []
        if not sites:
            raise ConfigError("give --sites (e.g. blocks.6.mlp.hook_post, or 'heads' for attention heads)")
        units = _units(args.units)
        model, _ = models.load(args.target)
        for site in sites:
            if site == "heads" or site.endswith("hook_pattern"):
                from ..models.induction import make_repeated_tokens

                vocab = int(model.cfg.d_vocab)
                fit = make_repeated_tokens(32, seq_len=min(64, int(model.cfg.n_ctx)), d_vocab=vocab, seed=11).tokens
                held = make_repeated_tokens(32, seq_len=min(64, int(model.cfg.n_ctx)), d_vocab=vocab, seed=12).tokens
                results.append(label_heads(model, fit, held, title=f"{args.target} heads"))
                continue
            text = args.text.read_text() if args.text else None
            results.append(label_neurons(model, site, n_tokens=args.n_tokens, seq_len=args.seq_len, text=text, k=args.k,
                                         batch_size=args.batch_size, units=units,
                                         explainer=_explainer(args), simulate_units=args.simulate,
                                         title=f"{args.target} {site}", progress=not args.no_progress))
    path = build_label_report(results, args.report, title=f"interp label {args.target}", max_cards=args.max_cards)
    if args.csv:
        import pandas as pd

        from ..tensor import atomic_write

        frame = pd.concat([r.to_frame().assign(result=r.title) for r in results], ignore_index=True)
        atomic_write(args.csv, lambda tmp: frame.to_csv(tmp, index=False))
    for r in results:
        for note in r.notes:
            print(f"note: {note}")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0
