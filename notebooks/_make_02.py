"""Write notebooks/02_patching.ipynb (run: python notebooks/_make_02.py)."""

from pathlib import Path

import nbformat as nbf

cells = [
    ("md", """# 02 — Patching: interventions, activation patching, AtP, RelP and integrated gradients

We look for the induction circuit of `induction-2l`, a 2-layer attention-only transformer trained on
repeated random tokens. A clean sequence is `[BOS] A A[:8]`: the model should continue with `A[8]`.
The corrupted sequence changes `A[7]` in the first copy (the *key* the induction head looks for), so the
induction mechanism has nothing to latch onto. The metric is the logit difference between the right
token and the replacement token at the last position."""),
    ("code", """import torch
import interp, patching
from patching import datasets, metrics

model, tokenizer = interp.models.load("induction-2l")
pairs = datasets.induction_pairs(32, seed=0, corrupt="key")
metric = pairs.metric()
with torch.no_grad():
    print("clean metric", metric(model(pairs.clean)).item(), " corrupted metric", metric(model(pairs.corrupted)).item())"""),
    ("md", """## Interventions
`patching.intervene` applies composable edits (zero / mean / resample ablation, clamp, scale, steering
vectors, patches from another run) to hook names, optionally on a subset of heads, units or positions."""),
    ("code", """rows = []
with torch.no_grad():
    for layer in range(2):
        for head in range(4):
            with patching.intervene(model, patching.zero(f"blocks.{layer}.attn.hook_z", heads=[head])):
                rows.append((layer, head, metric(model(pairs.clean)).item()))
import pandas as pd
pd.DataFrame(rows, columns=["layer", "head", "metric after zero-ablation"])"""),
    ("md", """## Activation patching
Denoising: run the corrupted input and patch in one clean activation at a time. Many patches share one
forward pass (the batch is repeated and each copy gets a different patch). The values equal
`transformer_lens.patching`'s `get_act_patch_*` functions (tested).

All four attribution methods of the library share one call, `method(model, clean, corrupted, metric,
sites=...)`, and one result type, `AttributionResult`: one grid of cells per site, whose `effect` is the
change of the metric the patch causes (measured here; estimated by AtP, RelP and IG below)."""),
    ("code", """truth = patching.activation_patching(model, pairs.clean, pairs.corrupted, metric, sites=["resid_pre", "heads"])
truth            # Jupyter shows the summary and the table"""),
    ("code", """print(truth["heads"].normalized())
truth.plot()"""),
    ("md", """The previous-token head in layer 0 and the induction heads in layer 1 carry the effect, which is
the planted circuit. Compare with the attention-pattern head scores of the model zoo:"""),
    ("code", """from interp.models.induction import induction_head_scores
induction_head_scores(model)"""),
    ("md", """## Attribution patching (AtP) and relevance patching (RelP)
AtP estimates every patch at once from two forward passes and one backward pass. RelP replaces the
gradient by LRP relevance (rules installed as value-preserving hooks; the AH-rule detaches attention
patterns)."""),
    ("md", """## The four methods through one loop
AtP estimates every patch at once from two forward passes and one backward pass. RelP replaces the
gradient by LRP relevance (rules installed as value-preserving hooks of the engine; `res.extra["rules"]`
lists where each rule was applied). Integrated gradients integrates the gradient along the path from
the corrupted to the clean activation of each site (its attributions sum to the effect of patching the
whole site: `extra["completeness"]`)."""),
    ("code", """import numpy as np
rows = []
for name, method in patching.METHODS.items():
    res = method(model, pairs.clean, pairs.corrupted, metric, sites=["resid_pre", "heads"])
    for site in res.sites:
        r = np.corrcoef(res[site].effect.flatten(), truth[site].effect.flatten())[0, 1]
        rows.append({"method": name, "site": site, "r with activation patching": r,
                     "forward passes": res.n_forward, "backward passes": res.n_backward})
pd.DataFrame(rows)"""),
    ("code", """ig = patching.integrated_gradients(model, pairs.clean, pairs.corrupted, metric, sites="resid_pre", steps=16)
print("completeness error per site", {k: f"{v:.1e}" for k, v in ig.extra["completeness"].items()})
ig.plot()"""),
    ("md", """## A scripted study
The same experiments can be written as a TOML file and run with `interp study run study.toml`
(see `examples/`). Here we run a small one from Python."""),
    ("code", """import tempfile, pathlib
from patching import study
text = '''
title = "zero-ablating heads of induction-2l"
model = "induction-2l"
[data]
kind = "induction"
n = 16
[metric]
name = "logit_diff"
[[grid]]
intervention = "zero"
site = "blocks.{layer}.attn.hook_z"
layer = [0, 1]
head = [0, 1, 2, 3]
'''
folder = pathlib.Path(tempfile.mkdtemp())
(folder / "study.toml").write_text(text)
result = study.run_study(folder / "study.toml", folder / "out", progress=False)
print(sorted(p.name for p in (folder / "out").iterdir()))
print(result.summary())
result.to_frame()[["layer", "head", "metric", "effect"]]"""),
]

nb = nbf.v4.new_notebook()
nb.cells = [nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src) for kind, src in cells]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, Path(__file__).with_name("02_patching.ipynb"))
