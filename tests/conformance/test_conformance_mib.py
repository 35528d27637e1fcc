"""Our circuits against a re-implementation of MIB's own code (hannamw/EAP-IG ``src/eap/graph.py`` and
``evaluate.py``, hannamw/MIB-circuit-track ``MIB_circuit_track/evaluation.py``; neither installable offline).

The reference below follows their code, not ours: the ``(n_forward, n_backward)`` score / ``in_graph``
matrices of ``Graph.from_model``, ``Graph.from_json``, ``apply_topn`` (argsort over the matrix),
``apply_greedy`` (``heapq.merge`` from the logits), ``prune`` (iterated in/out-edge counts through
``forward_to_backward``), ``evaluate_graph``'s input-construction hooks (the input node read at
``hook_embed``, the corrupted-minus-live writer outputs summed into each reader input through
``1 - in_graph``) and ``evaluate_area_under_curve``'s trapezoids. Checked: our graph file loads into it
(every node and edge name exists), our ``topn``/``greedy`` circuits are theirs, our faithfulness equals
their ``evaluate_graph`` and our CPR/CMD equal theirs on the same curve.
"""

from __future__ import annotations

import heapq
import json

import pytest
import torch

from interp import engine
from interp.engine import Hook, Phase
from patching.edges import circuit_faithfulness, edge_attribution, mib_scores

from .conftest import make_example

pytestmark = pytest.mark.usefixtures("one_thread")


class RefGraph:
    """``eap.graph.Graph`` (attention heads + MLPs, positions summed, edge level), re-implemented."""

    def __init__(self, cfg: dict) -> None:
        L, H = cfg["n_layers"], cfg["n_heads"]  # noqa: N806
        self.cfg, self.L, self.H = cfg, L, H
        self.fwd = ["input"] + [n for layer in range(L) for n in [f"a{layer}.h{h}" for h in range(H)] + [f"m{layer}"]]
        self.bwd = []
        for layer in range(L):  # _backward_index: a layer's q inputs, then k, then v, then its MLP
            self.bwd += [f"a{layer}.h{h}<{x}>" for x in "qkv" for h in range(H)] + [f"m{layer}"]
        self.bwd.append("logits")
        nf, nb = len(self.fwd), len(self.bwd)
        self.scores = torch.zeros(nf, nb)
        self.in_graph = torch.zeros(nf, nb, dtype=torch.bool)
        self.real = torch.zeros(nf, nb, dtype=torch.bool)
        self.nodes_in_graph = torch.zeros(nf, dtype=torch.bool)
        self.f2b = torch.zeros(nf, nb, dtype=torch.bool)
        self.edges: dict[str, tuple[int, int]] = {}
        self.parent_edges: dict[str, list[str]] = {n: [] for n in self.fwd + ["logits"]}
        stream = ["input"]
        for layer in range(L):
            heads = [f"a{layer}.h{h}" for h in range(H)]
            for h in heads:
                for x in "qkv":
                    self.f2b[self.fwd.index(h), self.bwd.index(f"{h}<{x}>")] = True
            self.f2b[self.fwd.index(f"m{layer}"), self.bwd.index(f"m{layer}")] = True
            for parent in stream:
                for h in heads:
                    for x in "qkv":
                        self._add(parent, h, x)
            stream += heads
            for parent in stream:
                self._add(parent, f"m{layer}")
            stream.append(f"m{layer}")
        for parent in stream:
            self._add(parent, "logits")

    def _add(self, parent: str, child: str, qkv: str | None = None) -> None:
        name = f"{parent}->{child}" + (f"<{qkv}>" if qkv else "")
        idx = (self.fwd.index(parent), self.bwd.index(f"{child}<{qkv}>" if qkv else child))
        self.real[idx] = True
        self.edges[name] = idx
        self.parent_edges[child].append(name)

    @classmethod
    def from_json(cls, path) -> RefGraph:
        d = json.loads(open(path).read())
        assert all(k in d for k in ("cfg", "nodes", "edges")), "Bad input JSON format - Missing keys"
        g = cls(d["cfg"])
        for name, node in d["nodes"].items():
            if name != "logits":
                g.nodes_in_graph[g.fwd.index(name)] = node["in_graph"]  # KeyError/ValueError: unknown node
        for name, info in d["edges"].items():
            g.scores[g.edges[name]] = info["score"]
            g.in_graph[g.edges[name]] = info["in_graph"]
        return g

    def prune(self) -> None:
        while True:
            out = self.in_graph.any(dim=1)
            inc = (self.in_graph.any(dim=0).float() @ self.f2b.float().T) > 0
            inc[0] = True
            old_nodes, old_edges = self.nodes_in_graph.clone(), self.in_graph.clone()
            self.nodes_in_graph[:] = out & inc
            back = self.nodes_in_graph.float() @ self.f2b.float()
            back[-1] = 1
            self.in_graph &= (self.nodes_in_graph.float()[:, None] * back[None, :]) > 0
            if torch.equal(old_nodes, self.nodes_in_graph) and torch.equal(old_edges, self.in_graph):
                return

    def apply_topn(self, n: int, absolute: bool = True) -> None:
        self.nodes_in_graph[:] = False
        s = self.scores.abs() if absolute else self.scores.clone()
        s[~self.real] = -torch.inf
        order = torch.argsort(s.view(-1), descending=True)
        self.in_graph.view(-1)[:] = False
        self.in_graph.view(-1)[order[:n]] = True
        self.nodes_in_graph |= self.in_graph.any(dim=1)
        self.prune()

    def apply_greedy(self, n: int, absolute: bool = True) -> None:
        self.nodes_in_graph[:] = False
        self.in_graph[:] = False
        key = lambda e: abs(float(self.scores[self.edges[e]])) if absolute else float(self.scores[self.edges[e]])  # noqa: E731
        edges = heapq.merge(sorted(self.parent_edges["logits"], key=key, reverse=True), key=key, reverse=True)
        for _ in range(n):
            top = next(edges)
            self.in_graph[self.edges[top]] = True
            parent = top.split("->")[0]
            if parent != "input" and not self.nodes_in_graph[self.fwd.index(parent)]:
                self.nodes_in_graph[self.fwd.index(parent)] = True
                edges = heapq.merge(edges, sorted(self.parent_edges[parent], key=key, reverse=True), key=key,
                                    reverse=True)
        self.prune()

    def kept(self) -> set[str]:
        return {name for name, idx in self.edges.items() if self.in_graph[idx]}


def evaluate_graph(model, g: RefGraph, clean, corrupted, metric) -> float:
    """``eap.evaluate.evaluate_graph`` (patching, non-Gemma branch), on the TransformerBridge's TL hook names."""
    g.prune()
    ablate = 1 - g.in_graph.float()
    b, p = clean.shape
    diff = torch.zeros(b, p, len(g.fwd), model.cfg.d_model)
    out_hooks = [("hook_embed", 0, None)]
    for layer in range(g.L):
        out_hooks.append((f"blocks.{layer}.attn.hook_result", 1 + layer * (g.H + 1), g.H))
        out_hooks.append((f"blocks.{layer}.hook_mlp_out", 1 + layer * (g.H + 1) + g.H, None))

    def writers(sign: float) -> list[Hook]:
        def make(i, h):
            def hook(act):
                if h is None:
                    diff[:, :, i] += sign * act.detach()
                else:
                    diff[:, :, i:i + h] += sign * act.detach()
            return hook
        return [Hook(site, make(i, h), Phase.READ) for site, i, h in out_hooks]

    def construct(prev: int, cols) -> callable:
        def hook(act):
            if isinstance(cols, list):  # one column per head: [b, p, H, d]
                return act + torch.einsum("bpfd,fh->bphd", diff[:, :, :prev], ablate[:prev, cols]).to(act.dtype)
            return act + torch.einsum("bpfd,f->bpd", diff[:, :, :prev], ablate[:prev, cols]).to(act.dtype)
        return hook
    inputs = []
    for layer in range(g.L):
        prev = 1 + layer * (g.H + 1)  # prev_index of an attention node
        for x in "qkv":
            cols = [g.bwd.index(f"a{layer}.h{h}<{x}>") for h in range(g.H)]
            inputs.append(Hook(f"blocks.{layer}.hook_{x}_input", construct(prev, cols), Phase.EDIT))
        inputs.append(Hook(f"blocks.{layer}.hook_mlp_in", construct(prev + g.H, g.bwd.index(f"m{layer}")), Phase.EDIT))
    inputs.append(Hook(f"blocks.{g.L - 1}.hook_resid_post", construct(len(g.fwd), len(g.bwd) - 1), Phase.EDIT))
    with torch.no_grad(), engine.split_inputs(model):
        engine.run(model, corrupted, writers(+1.0))
        logits = engine.run(model, clean, writers(-1.0) + inputs)
    return float(metric(logits))


def area_under_curve(faithfulnesses, percentages=(.001, .002, .005, .01, .02, .05, .1, .2, .5, 1)):
    """``evaluate_area_under_curve``'s trapezoids (linear scale): (area under, area from 1)."""
    under = from_1 = 0.0
    for i in range(len(faithfulnesses) - 1):
        x1, x2 = percentages[i], percentages[i + 1]
        from_1 += (x2 - x1) * ((abs(1. - faithfulnesses[i]) + abs(1. - faithfulnesses[i + 1])) / 2)
        under += (x2 - x1) * ((faithfulnesses[i] + faithfulnesses[i + 1]) / 2)
    return under, from_1


@pytest.fixture(scope="module")
def case(built):
    b = built("gpt2")
    ex = make_example(b, n=2)
    res = edge_attribution(b.model, ex.clean, ex.corrupted, ex.metric, method="eap")
    return b.model, ex, res


def test_our_graph_file_loads_into_their_graph_and_selections_match(case, tmp_path):
    model, ex, res = case
    ref_all = RefGraph(res.graph.cfg())
    assert set(ref_all.edges) == set(res.edges)  # same names, same edges (MHA with MLPs)
    for n in (3, 10, 25, 60, 100):
        for selection in ("topn", "greedy"):
            ours = res.circuit(n_edges=n, selection=selection)
            res.to_json(tmp_path / "g.json", ours)
            g = RefGraph.from_json(tmp_path / "g.json")
            assert abs(float(g.scores[g.edges[res.edges[7]]]) - float(res.scores[7])) < 1e-6
            assert g.kept() == set(ours.edges)
            getattr(g, f"apply_{selection}")(n)  # their selection on our scores
            assert g.kept() == set(ours.edges), (n, selection)
    assert len(res.circuit(n_edges=60).edges) > 10  # not vacuous: circuits of many edges were compared


def test_faithfulness_and_cpr_cmd_equal_theirs(case, tmp_path):
    model, ex, res = case
    clean, corrupted = ex.clean, ex.corrupted
    g = RefGraph(res.graph.cfg())
    g.in_graph[:] = False
    base = evaluate_graph(model, g, clean, corrupted, ex.metric)  # empty circuit: the corrupted run
    g.in_graph[:] = g.real
    g.nodes_in_graph[:] = True
    full = evaluate_graph(model, g, clean, corrupted, ex.metric)
    with torch.no_grad():
        assert abs(full - float(ex.metric(engine.run(model, clean)))) < 1e-4
    curve = mib_scores(model, ex.clean, ex.corrupted, ex.metric, res)
    theirs = []
    for pct in (.001, .002, .005, .01, .02, .05, .1, .2, .5, 1):
        g.scores[:] = 0
        for name, score in zip(res.edges, res.scores.tolist()):
            g.scores[g.edges[name]] = score
        g.apply_topn(int(pct * len(g.edges)))
        theirs.append((evaluate_graph(model, g, clean, corrupted, ex.metric) - base) / (full - base))
    torch.testing.assert_close(torch.tensor(curve.faithfulness), torch.tensor(theirs), atol=1e-4, rtol=0)
    under, from_1 = area_under_curve(theirs)
    assert abs(curve.cpr - under) < 1e-4 and abs(curve.cmd - from_1) < 1e-4
    assert len({round(f, 3) for f in theirs}) > 3  # the curve moves: not vacuous
    mid = res.circuit(fraction=0.05)
    assert abs(circuit_faithfulness(model, ex.clean, ex.corrupted, ex.metric, mid) - theirs[5]) < 1e-4
