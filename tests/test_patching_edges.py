"""Edge attribution on induction-2l (the K-composition edge, faithful small circuits, EAP-IG closer to exact
than EAP), the result and circuit objects (frames, pruning, EAP-IG/MIB graph files, plots, reports),
batching, and bad input."""

from __future__ import annotations

import json

import pytest
import torch

import interp
import patching
from interp.errors import ConfigError, InputTypeError
from patching.edges import Circuit, EdgeAttributionResult, circuit_faithfulness, edge_attribution, graph_from_cfg

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def induction():
    """induction-2l on BOS A A (clean) vs BOS R A (corrupted); metric: log-prob of A[0] at the last position."""
    model, _ = interp.models.load("induction-2l")
    g = torch.Generator().manual_seed(0)
    n, period = 8, 6
    a = torch.stack([torch.randperm(127, generator=g)[:period] + 1 for _ in range(n)])
    r = torch.stack([torch.randperm(127, generator=g)[:period] + 1 for _ in range(n)])
    bos = torch.zeros(n, 1, dtype=torch.long)
    clean, corrupted = torch.cat([bos, a, a], 1), torch.cat([bos, r, a], 1)
    return model, clean, corrupted, patching.metrics.log_probability(a[:, 0], pos=-1)


@pytest.fixture(scope="module")
def scores(induction):
    model, clean, corrupted, metric = induction
    out = {m: edge_attribution(model, clean, corrupted, metric, method=m, by="position") for m in ("eap", "eap-ig")}
    out["exact"] = edge_attribution(model, clean, corrupted, metric, method="exact")  # positions summed: fewer passes
    return out


def test_previous_token_head_to_induction_head_k_edge_is_found(induction, scores):
    from interp.models.induction import induction_head_scores

    model = induction[0]
    heads = induction_head_scores(model).to_frame()
    prev = {f"a0.h{h}" for h in heads[(heads.layer == 0) & (heads.previous_token > 0.4)]["head"]}
    ind = {f"a1.h{h}<k>" for h in heads[(heads.layer == 1) & (heads.induction > 0.3)]["head"]}
    assert prev and ind
    for method in ("eap-ig", "exact"):
        top = scores[method].top(10)
        assert any(s in prev and t in ind for s, t in zip(top.source, top.target)), (method, top)
    res = scores["eap-ig"]
    assert res.graph.layout == "projected" and res.graph.n_edges == 1 + 12 * 1 + 4 + 12 * 5 + 4  # q/k/v + logits


def test_top_five_percent_circuit_is_faithful(induction, scores):
    model, clean, corrupted, metric = induction
    circuit = scores["eap-ig"].circuit(fraction=0.05)  # of edge x position cells
    assert 0 < circuit.n_edges <= 0.05 * scores["eap-ig"].effect.numel()
    assert circuit_faithfulness(model, clean, corrupted, metric, circuit) >= 0.8


def test_circuit_selections_mib_topn_greedy_and_connected(induction, scores):
    """MIB's top-5% circuit of induction-2l is empty after pruning (its 4 edges form no input -> logits path);
    the connected selection keeps whole paths; a circuit of ~1/8 of the edges recovers 80%."""
    import dataclasses

    from patching.edges.select import prune

    model, clean, corrupted, metric = induction
    summed = dataclasses.replace(scores["eap-ig"], effect=scores["eap-ig"].scores, positions=None)
    n = summed.graph.n_edges
    top5 = summed.circuit(fraction=0.05)
    assert top5.asked == int(0.05 * n) == 4 and top5.n_edges == 0 and top5.selection == "topn"
    top = summed.top(4)  # heads' edges into the logits and input -> layer-0 edges: no path joins them
    assert not any(src.startswith("a0.") and t.startswith("a1.") for src, t in zip(top.source, top.target))
    assert summed.circuit(fraction=0.05, selection="greedy").n_edges == 0
    conn = summed.circuit(fraction=0.05, selection="connected")
    assert 4 <= conn.n_edges <= 6 and torch.equal(prune(summed.graph, conn.kept), conn.kept)
    assert "a0.h0->a1.h0<k>" in conn or "a0.h0->a1.h1<k>" in conn
    assert 0 < circuit_faithfulness(model, clean, corrupted, metric, conn) < 0.8
    small = summed.circuit(fraction=0.15)
    assert circuit_faithfulness(model, clean, corrupted, metric, small) >= 0.8
    curve = patching.edges.mib_scores(model, clean, corrupted, metric, summed, selection="greedy")
    assert curve.selection == "greedy" and curve.asked[5] == 4 and curve.n_edges[5] == 0
    with pytest.raises(ConfigError, match="selection"):
        summed.circuit(n_edges=3, selection="best")


def test_eap_ig_tracks_exact_better_than_eap(scores):
    def r(a, b):
        return float(torch.corrcoef(torch.stack([a.reshape(-1), b.reshape(-1)]))[0, 1])
    exact = scores["exact"].scores
    assert r(scores["eap-ig"].scores, exact) > r(scores["eap"].scores, exact) > 0.8


def test_batches_equal_one_pass(induction):
    model, clean, corrupted, metric = induction
    whole = edge_attribution(model, clean, corrupted, metric, method="eap-ig", steps=3)
    parts = edge_attribution(model, clean, corrupted, metric, method="eap-ig", steps=3, batch_size=3)
    torch.testing.assert_close(parts.scores, whole.scores, atol=1e-5, rtol=1e-5)
    assert abs(parts.clean_value - whole.clean_value) < 1e-5 and parts.extra["prompt_batches"] == 3


def _planted() -> EdgeAttributionResult:
    graph = graph_from_cfg(2, 2, mlp=True)
    effect = torch.zeros(graph.n_edges, dtype=torch.float64)
    strong = {"input->a0.h1<v>": 3.0, "a0.h1->a1.h0<k>": -2.0, "a1.h0->logits": 2.5, "a0.h0->m1": 4.0,
              "m1->logits": 0.01}
    names = graph.edge_names()
    for e, v in strong.items():
        effect[names.index(e)] = v
    return EdgeAttributionResult("eap", "metric", 1.0, 0.0, "denoise", graph, effect)


def test_circuit_pruning_frames_and_graph_files(tmp_path):
    res = _planted()
    frame = res.to_frame()
    assert list(frame.columns[:4]) == ["edge", "source", "target", "effect"] and len(frame) == res.graph.n_edges
    assert res["a0.h1->a1.h0<k>"] == -2.0
    circuit = res.circuit(n_edges=4)  # a0.h0->m1 is kept by score, but a0.h0 is not reached from the input
    assert isinstance(circuit, Circuit)
    assert set(circuit.edges) == {"input->a0.h1<v>", "a0.h1->a1.h0<k>", "a1.h0->logits"}
    assert "a1.h0" in circuit.nodes() and "a0.h0" not in circuit.nodes()
    signed = res.circuit(n_edges=3, absolute=False)
    assert "a0.h1->a1.h0<k>" not in signed
    res.to_json(tmp_path / "all.json", circuit)
    data = json.loads((tmp_path / "all.json").read_text())
    assert set(data) == {"cfg", "nodes", "edges"} and data["cfg"]["n_layers"] == 2
    assert len(data["edges"]) == res.graph.n_edges
    assert {e for e, v in data["edges"].items() if v["in_graph"]} == set(circuit.edges)
    assert data["edges"]["a0.h0->m1"] == {"score": 4.0, "in_graph": False}
    assert data["nodes"]["a1.h0"]["in_graph"] and not data["nodes"]["a0.h0"]["in_graph"]
    circuit.to_json(tmp_path / "c.json")
    assert json.loads((tmp_path / "c.json").read_text())["edges"] == data["edges"]
    fig = res.plot(n_edges=5)
    assert len(fig.data) >= 3 and "eap" in res.summary()
    with pytest.raises(ConfigError):
        res.circuit()


def test_gqa_graph_names_shared_kv_heads():
    graph = graph_from_cfg(1, 4, 2, mlp=False)
    assert graph.targets().count("a0.kv1<k>") == 1 and graph.sites[1].nodes[1] == ["a0.h2", "a0.h3"]
    assert graph.n_edges == 4 + 2 + 2 + 5  # q, k, v edges from the input; the input and 4 heads into logits
    res = EdgeAttributionResult("eap", "m", 1.0, 0.0, "denoise", graph, torch.ones(graph.n_edges))
    assert "a0.h3" in res.circuit(fraction=1.0).nodes()


def test_bad_input(induction, tiny_cnn):
    model, clean, corrupted, metric = induction
    with pytest.raises(ConfigError, match="method"):
        edge_attribution(model, clean, corrupted, metric, method="acdc")
    with pytest.raises(ConfigError, match="by"):
        edge_attribution(model, clean, corrupted, metric, by="head")
    with pytest.raises(InputTypeError):
        edge_attribution(tiny_cnn, torch.zeros(2, 3, 8, 8), torch.ones(2, 3, 8, 8), lambda out: out.sum())
    with pytest.raises(ConfigError, match="not in this model"):
        circuit_faithfulness(model, clean, corrupted, metric, ["input->a7.h0<q>"])


def test_exact_on_some_edges_leaves_the_others_unmeasured(induction):
    model, clean, corrupted, metric = induction
    some = ["a0.h0->a1.h0<k>", "input->a0.h0<v>"]
    res = edge_attribution(model, clean, corrupted, metric, method="exact", edges=some)
    measured = torch.isfinite(res.scores)
    assert [e for e, m in zip(res.edges, measured.tolist()) if m] == sorted(some, key=res.edges.index)
    assert set(res.circuit(n_edges=2).edges) <= set(some)  # NaN (not measured) is never selected
    with pytest.raises(ConfigError, match="exact"):
        edge_attribution(model, clean, corrupted, metric, method="eap", edges=some)
