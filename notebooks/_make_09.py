"""Write notebooks/09_circuits.ipynb (run: python notebooks/_make_09.py)."""

from pathlib import Path

import nbformat as nbf

cells = [
    ("md", """# 09 — Circuits from edges: EAP, EAP-IG, RelP edges, exact edge patching, and MIB's scores

Node-level attribution (notebook 02) says *which* components matter; edge attribution says *how they talk*:
a score for every edge from a writer into the residual stream (the embeddings `input`, each head `a{L}.h{H}`,
each MLP `m{L}`) to a reader of it (each head's query, key and value input `<q>`, `<k>`, `<v>`, each MLP's
input, the `logits`). Names follow EAP-IG and MIB, so a circuit found here is a graph file their evaluation
code reads.

We look for the induction circuit of `induction-2l`. Clean: `[BOS] A A` (a random block repeated); corrupted:
`[BOS] R A` (the first copy replaced). At the last token `A[-1]`, an induction head can only predict `A[0]`
in the clean run: the previous-token head of layer 0 writes "my previous token was `A[-1]`" at the position
of `A[0]` in the second copy ... and the induction head of layer 1 finds that position through its *key*
(K-composition). Metric: log-probability of `A[0]` at the last position."""),
    ("code", """import torch
import interp, patching

model, tokenizer = interp.models.load("induction-2l")
g = torch.Generator().manual_seed(0)
n, period = 16, 10
A = torch.stack([torch.randperm(127, generator=g)[:period] + 1 for _ in range(n)])
R = torch.stack([torch.randperm(127, generator=g)[:period] + 1 for _ in range(n)])
bos = torch.zeros(n, 1, dtype=torch.long)
clean, corrupted = torch.cat([bos, A, A], 1), torch.cat([bos, R, A], 1)
metric = patching.metrics.log_probability(A[:, 0], pos=-1)
with torch.no_grad():
    print("clean", metric(model(clean)).item(), " corrupted", metric(model(corrupted)).item())"""),
    ("md", """## Edge attribution patching (EAP)
One forward pass of the clean run and one forward and backward pass of the corrupted run score all edges:
`(a_clean[u] - a_corrupted[u]) . d metric / d input(v)` (TransformerLens's denoising convention; on models
TransformerLens's own `attribution_patch(granularity="edge")` accepts, the numbers are equal to 1e-5, tested).
The reader gradients are never stored: each reader input gets a zero-valued term `sum_u S[u] delta_u`, and
the gradient with respect to `S` *is* the edge score."""),
    ("code", """eap = patching.edge_attribution(model, clean, corrupted, metric, method="eap")
eap"""),
    ("code", """eap.plot(n_edges=25)"""),
    ("md", """## EAP-IG and exact edge patching
EAP-IG (Hanna et al. 2024) averages the reader gradients over points on the path from the corrupted to
the clean input embeddings (`steps=5` as MIB); `"eap-ig-activations"` interpolates one layer's output at a
time. `"exact"` patches each edge for real (only the reader sees the writer's clean value), one forward pass
per edge: the ground truth the estimates approximate."""),
    ("code", """import pandas as pd
results = {m: patching.edge_attribution(model, clean, corrupted, metric, method=m)
           for m in ["eap", "eap-ig", "eap-ig-activations", "relp", "exact"]}
exact = results["exact"].scores
pd.DataFrame({m: {"r with exact": float(torch.corrcoef(torch.stack([r.scores, exact]))[0, 1]),
                  "forward passes": r.n_forward, "backward passes": r.n_backward}
              for m, r in results.items()}).T"""),
    ("code", """results["eap-ig"].top(8)"""),
    ("md", """The previous-token head `a0.h0` reads the token values (`input->a0.h0<v>`) and writes into the *keys*
of the induction heads (`a0.h0->a1.h0<k>`, `a0.h0->a1.h1<k>`), which write the answer to the logits: the
K-composition circuit of Elhage et al. (2021), found from edges alone.

## Circuits and faithfulness
`res.circuit(fraction=...)` keeps the top edges by |effect| and prunes the ones off input -> logits paths.
`patching.circuit_faithfulness` runs the clean input with every *other* edge ablated (its reader sees the
corrupted value) and returns the fraction of the gap between the empty circuit and the full model it
recovers. With positions kept (`by="position"`) a circuit can say *where* an edge matters."""),
    ("code", """by_pos = patching.edge_attribution(model, clean, corrupted, metric, method="eap-ig", by="position")
circuit = by_pos.circuit(fraction=0.05)
print(circuit.summary())
print("faithfulness", patching.circuit_faithfulness(model, clean, corrupted, metric, circuit))
circuit.to_frame().sort_values("effect", key=abs, ascending=False).head(10)"""),
    ("code", """circuit.plot()"""),
    ("md", """### Which edges make a circuit: MIB's top-n, EAP-IG's greedy search, connected top edges
With positions summed the graph has 81 edges, and 5% of them is 4. MIB takes the top 4 by |score|
(`selection="topn"`, their `Graph.apply_topn`) and prunes what lies on no input -> logits path; EAP-IG's
`apply_greedy` grows the circuit from the logits (`selection="greedy"`); `"connected"` takes top edges until
the asked number survive pruning. Here the top 4 edges are heads' edges into the logits and `input -> a0`
edges, which form no path: MIB's circuit is empty. One induction head's path alone needs three edges, and
the effect is shared by four heads, so no 4-edge circuit recovers 80% on this task (the best of all 1,509
recovers 0.24, `benchmarks/circuits.py`); the curve below finds the smallest top-n circuit that does."""),
    ("code", """summed = results["eap-ig"]
for selection in ["topn", "greedy", "connected"]:
    c = summed.circuit(fraction=0.05, selection=selection)
    f = patching.circuit_faithfulness(model, clean, corrupted, metric, c) if c.n_edges else 0.0
    print(f"{selection:9s} asked {c.asked}, kept {c.n_edges}: faithfulness {f:.2f}")
sizes = patching.mib_scores(model, clean, corrupted, metric, summed, fractions=[k / 81 for k in range(1, 25)])
print("smallest circuit recovering 80%:",
      next((n, round(f, 3)) for n, f in zip(sizes.n_edges, sizes.faithfulness) if f >= 0.8), "(edges, faithfulness)")"""),
    ("md", """## MIB's circuit scores: CPR and CMD
MIB (Mueller et al. 2025) scores a circuit finder by the faithfulness of its circuits of the top 0.1%, 0.2%,
0.5%, 1%, 2%, 5%, 10%, 20%, 50% and 100% of edges: the area under that curve (CPR, higher is better) and
the area between it and 1 (CMD, lower is better)."""),
    ("code", """curves = {m: patching.mib_scores(model, clean, corrupted, metric, results[m]) for m in ["eap", "eap-ig", "relp", "exact"]}
pd.DataFrame({m: {"CPR": c.cpr, "CMD": c.cmd} for m, c in curves.items()}).T"""),
    ("code", """curves["eap-ig"].plot()"""),
    ("md", """## Hand the circuit to MIB, or put it in a report
`to_json` writes the EAP-IG/MIB graph file (`cfg`, `nodes`, `edges` with `score` and `in_graph`). Under
grouped-query attention a key/value edge goes to the shared key/value head, named `a{L}.kv{G}<k>`."""),
    ("code", """import json, tempfile, pathlib
path = pathlib.Path(tempfile.mkdtemp()) / "induction_circuit.json"
results["eap-ig"].to_json(path, results["eap-ig"].circuit(n_edges=12))
data = json.loads(path.read_text())
print(data["cfg"], sum(e["in_graph"] for e in data["edges"].values()), "edges in the graph")
from interp.report.html import Report
report = Report("induction circuit")
report.add(results["eap-ig"].circuit(n_edges=12))
report.add(curves["eap-ig"])
len(report.to_html()) > 0"""),
    ("md", """On a real model: smollm2-135m (30 layers, GQA) has 70,651 edges; EAP scores them all in under three
forward/backward passes' time, and EAP-IG in `steps` more. The IOI comparison of EAP, EAP-IG, RelP edges and
exact edge patching (r, CPR/CMD, time, peak memory) is too slow for this notebook's test and lives in
`benchmarks/circuits.py` (results in `benchmarks/RESULTS.md`).

From a shell, `interp circuits induction-2l --data induction --metric logit_diff --method eap-ig --top 10%
--out circuit/` writes the same graph file, a CSV of every edge and an HTML report."""),
]

nb = nbf.v4.new_notebook()
nb.cells = [nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src) for kind, src in cells]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, Path(__file__).with_name("09_circuits.ipynb"))
