"""Benchmark: labeling every MLP neuron of one smollm2-135m layer, streaming vs storing all activations.

* ``ours``: :func:`interp.label.label_neurons` (one streaming pass with :class:`UnitStats`, a held-out
  pass, vocabulary projections, phenomena, templated labels and detection scores), memory O(units x k).
* ``naive``: capture every activation of the layer into memory with :func:`interp.capture`, then
  compute the same statistics (top-k exemplars, histograms, moments, frequencies) on the full matrix.

Each variant runs in its own subprocess so that peak RSS (``ru_maxrss``) is its own; the model's own
memory is measured separately (``baseline``) and subtracted. The two variants' top-k values are
compared for agreement.

    python benchmarks/labels.py --n-tokens 100000          # the target size
    python benchmarks/labels.py --n-tokens 20000           # what fits a shared 2-core machine
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

SITE_TEMPLATE = "blocks.{layer}.mlp.hook_post"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_variant(variant: str, n_tokens: int, layer: int, seq_len: int, batch_size: int) -> dict:
    import numpy as np
    import torch

    import interp
    from interp.label.pipeline import label_neurons, text_corpus
    from interp.label.stats import UnitStats

    torch.set_num_threads(2)
    model, _ = interp.models.load("smollm2-135m")
    tokens = text_corpus(model.tokenizer, n_tokens=n_tokens, seq_len=seq_len)
    site = SITE_TEMPLATE.format(layer=layer)
    base = _rss_mb()
    t0 = time.perf_counter()
    if variant == "baseline":
        out = {"tokens": int(tokens.numel())}
    elif variant == "ours":
        res = label_neurons(model, site, tokens, batch_size=batch_size, k=12)
        out = {"tokens": int(tokens.numel()), "units": len(res.table), "top1": res.stats.top_values[:, 0].tolist()[:64],
               "stat_tokens": res.stats.count}
    elif variant == "stats-only":
        from interp.label.pipeline import stream_site

        stats = None
        for _, batch, acts in stream_site(model, tokens, site, batch_size):
            stats = stats or UnitStats(acts.shape[-1], k=12, window=(10, 3), n_positions=seq_len)
            stats.update(acts, tokens=batch)
        res = stats.result()
        out = {"tokens": int(tokens.numel()), "top1": res.top_values[:, 0].tolist()[:64]}
    elif variant == "naive":
        acts = interp.capture(model, tokens, site, batch_size=batch_size, progress=False)
        X = acts.data.reshape(-1, acts.shape[-1])  # (tokens, units): everything in memory
        top_v, top_i = torch.topk(X, 12, dim=0)
        bot_v, _ = torch.topk(-X, 12, dim=0)
        mean, var = X.double().mean(0), X.double().var(0)
        freq = (X > 0).double().mean(0)
        hist = [np.histogram(X[:, u].numpy(), bins=64) for u in range(X.shape[1])]
        out = {"tokens": int(X.shape[0]), "top1": top_v[0].tolist()[:64], "hist": len(hist),
               "mean0": float(mean[0]), "var0": float(var[0]), "freq0": float(freq[0])}
    else:
        raise SystemExit(f"unknown variant {variant}")
    out.update(variant=variant, seconds=time.perf_counter() - t0, peak_mb=_rss_mb(), start_mb=base)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-tokens", type=int, default=100_000)
    parser.add_argument("--layer", type=int, default=6)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--variants", default="baseline,ours,naive")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_variant(args.child, args.n_tokens, args.layer, args.seq_len, args.batch_size)))
        return
    results = {}
    for variant in args.variants.split(","):
        cmd = [sys.executable, __file__, "--child", variant, "--n-tokens", str(args.n_tokens), "--layer", str(args.layer),
               "--seq-len", str(args.seq_len), "--batch-size", str(args.batch_size)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            print(proc.stderr[-3000:])
            raise SystemExit(f"{variant} failed")
        results[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
        r = results[variant]
        print(f"{variant:>10}: {r['tokens']:,} tokens in {r['seconds']:.1f} s, peak RSS {r['peak_mb']:.0f} MB "
              f"(after model load and corpus {r['start_mb']:.0f} MB)", flush=True)
    base = results.get("baseline", {}).get("peak_mb", 0.0)
    if "ours" in results and "naive" in results:
        o, n = results["ours"], results["naive"]
        agree = max(abs(a - b) for a, b in zip(o["top1"], n["top1"]))
        print(f"time ratio naive/ours: {n['seconds'] / o['seconds']:.2f}; extra memory over the loaded model: "
              f"ours {o['peak_mb'] - base:.0f} MB, naive {n['peak_mb'] - base:.0f} MB")
        print(f"note: ours streams {o['stat_tokens']:,} tokens for statistics and holds out the rest for scoring, so "
              f"top-1 values agree only where the best exemplar is in the statistics part (max diff {agree:.3g})")
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")


if __name__ == "__main__":
    main()
