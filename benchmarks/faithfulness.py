"""Faithfulness of attribution methods: Pearson r of AtP, RelP and IG with activation patching.

For every component kind (residual stream, attention output, MLP output by layer x position, and
attention heads by layer x head) the estimates of AtP, RelP (default rules; and with the AH-rule)
and integrated gradients are correlated with the measured effect of activation patching
(denoising: clean activation into the corrupted run), pooled over prompt groups. Cells before the
first token where clean and corrupted differ have zero effect under every method and are left out.
Cost is counted in forward/backward passes over the prompt batch.

    python benchmarks/faithfulness.py                                   # the acceptance configuration
    python benchmarks/faithfulness.py --smollm2-pairs 12 --smollm2-kinds mlp_out,attn_out --ig-steps 4

Data: induction-2l, induction pairs (``patching.datasets.induction_pairs``, key and value
corruptions); smollm2-135m, IOI pairs from templates with the subject name swapped
(``patching.datasets.ioi_pairs``). Reference: RelP paper (arXiv 2508.21258), GPT-2 small IOI,
MLP outputs AtP 0.195 vs RelP 0.992.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

# benchmarks/patching.py would shadow the patching package: keep this folder off the import path
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

import interp  # noqa: E402
import patching  # noqa: E402
from patching import datasets  # noqa: E402

#: the attribution methods compared with activation patching: label -> (patching.METHODS name, kwargs).
#: "RelP w/o identity" is the rule set active in the RelP authors' published usage (rules="published").
ESTIMATES = {"AtP": ("atp", {}), "RelP": ("relp", {}), "RelP+AH": ("relp", {"rules": {"attention": True}}),
             "RelP w/o identity": ("relp", {"rules": "published"})}
#: with --ablate-rules: RelP with one default rule switched off at a time
RULE_ABLATIONS = {"RelP w/o LN": ("relp", {"rules": {"ln": False}}),
                  "RelP w/o half": ("relp", {"rules": {"half": False}})}


def evaluate(model, name: str, groups, kinds, ig_steps: int, ig_groups: int | None = None,
             neurons: int = 64, estimates: dict = ESTIMATES) -> pd.DataFrame:
    """Pearson r (and Spearman rho) per (kind, method): one call of :func:`patching.faithfulness` on the
    prompt groups; IG runs on the first ``ig_groups`` groups only (default all), correlated with activation
    patching on those groups. Neuron kinds (mlp_pre, mlp_post) are scored on ``neurons`` random neurons per
    layer."""
    index = None
    if any(k in ("mlp_pre", "mlp_post") for k in kinds):
        width = int(model.cfg.d_mlp)
        index = {"neuron": sorted(np.random.default_rng(0).choice(width, min(neurons, width), replace=False).tolist())}
    methods = dict(estimates)
    if ig_steps:
        methods[f"IG ({ig_steps} steps)"] = ("ig", {"steps": ig_steps}, ig_groups)
    res = patching.faithfulness(model, list(groups), sites=kinds, methods=methods, index=index)
    table = res.to_frame()
    table.insert(0, "model", name)
    table["pearson_r"] = table["pearson_r"].round(3)
    table["spearman_r"] = table["spearman_r"].round(3)
    table["seconds"] = table["seconds"].round(1)
    return table


def markdown(table: pd.DataFrame) -> str:
    head = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    return "\n".join([head, rule, *("| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/faithfulness.md")
    parser.add_argument("--induction-pairs", type=int, default=64)
    parser.add_argument("--smollm2-pairs", type=int, default=51)
    parser.add_argument("--smollm2-templates", type=int, default=3)
    parser.add_argument("--smollm2-kinds", default="resid_pre,attn_out,mlp_out,heads,mlp_pre,mlp_post")
    parser.add_argument("--neurons", type=int, default=64, help="random neurons per layer for mlp_pre/mlp_post")
    parser.add_argument("--ig-steps", type=int, default=8)
    parser.add_argument("--smollm2-ig-steps", type=int, default=None, help="default: --ig-steps")
    parser.add_argument("--smollm2-ig-groups", type=int, default=1,
                        help="IG on smollm2 runs on this many template groups (it costs steps x layers passes)")
    parser.add_argument("--skip-smollm2", action="store_true")
    parser.add_argument("--ablate-rules", action="store_true",
                        help="also RelP with the LN rule off, and with the half rule off (one at a time)")
    args = parser.parse_args()
    estimates = {**ESTIMATES, **(RULE_ABLATIONS if args.ablate_rules else {})}
    tables = []

    model, _ = interp.models.load("induction-2l")
    groups = [datasets.induction_pairs(args.induction_pairs // 2, seed=s, corrupt=c)
              for s, c in ((0, "key"), (1, "value"))]
    tables.append(evaluate(model, "induction-2l", groups, ["resid_pre", "attn_out", "heads"], args.ig_steps,
                           estimates=estimates))
    print(markdown(tables[-1]), flush=True)
    if not args.skip_smollm2:
        model, _ = interp.models.load("smollm2-135m")
        groups = datasets.ioi_pairs(model, args.smollm2_pairs, templates=datasets.IOI_TEMPLATES[:args.smollm2_templates])
        steps = args.ig_steps if args.smollm2_ig_steps is None else args.smollm2_ig_steps
        tables.append(evaluate(model, "smollm2-135m", groups, args.smollm2_kinds.split(","), steps,
                               args.smollm2_ig_groups, neurons=args.neurons, estimates=estimates))
        print(markdown(tables[-1]), flush=True)
    table = pd.concat(tables, ignore_index=True)
    command = "python benchmarks/faithfulness.py " + " ".join(
        f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in vars(args).items()
        if k != "out" and v is not False and v is not None)
    load = os.getloadavg()[0]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=_HERE).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "interp", "patching", "benchmarks/faithfulness.py"],
                           capture_output=True, text=True, cwd=_HERE.parent).stdout.strip()
    text = f"""# Faithfulness: Pearson r and Spearman rho of AtP, RelP and IG with activation patching

Commit: `{commit}`{" (with uncommitted changes)" if dirty else ""}

Command: `{command}`

Machine: {os.cpu_count()} CPUs, torch {torch.__version__}; load average {load:.1f} at the end (shared machine).

Per component kind, the estimated effect of each patch (AtP, RelP with the default LN/Identity/Half
rules, RelP plus the AH-rule, RelP without the Identity rule (the rules active in the authors' published
usage, `rules="published"`),{" RelP without the LN rule, RelP without the half rule," if args.ablate_rules else ""} integrated gradients from the corrupted
to the clean activation at one layer at a time; every method called as
`method(model, clean, corrupted, metric, sites=kinds)`, all through one `patching.faithfulness(model, groups,
sites=kinds, methods=...)` call per model) is correlated (Pearson r; Spearman rho beside it) with the measured denoising effect of activation
patching, pooled over the prompt groups (IG on smollm2-135m: over the first
{args.smollm2_ig_groups} template group(s), against activation patching on the same group(s)). Cells at positions before the first differing token are
left out (every method gives exactly 0 there). Cost: forward/backward passes over the batch
(one call scores every kind; its cost is listed on the first kind; IG costs passes per layer and kind).
Neuron kinds (mlp_pre, mlp_post) are scored on {args.neurons} random neurons per layer (the same for every
method), all positions patched at once. `pairs` is the number of clean/corrupted prompt pairs the row
is pooled over. induction-2l is attention-only without normalisation, so its RelP differs from AtP
only through the AH-rule.

{markdown(table)}

Reference (RelP paper, GPT-2 small IOI, MLP outputs): AtP 0.195, RelP 0.992.
"""
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
