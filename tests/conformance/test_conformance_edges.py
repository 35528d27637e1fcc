"""Edge attribution on tiny models of real architectures, against references: TransformerLens's own edge
attribution patching (MHA), EAP computed by hand from the engine's reader gradients (GQA), a hand-written
path-patching loop (exact), TransformerLens's circuit faithfulness, and refusals where the residual stream is
not a sum of the writers."""

from __future__ import annotations

import pytest
import torch

from interp import engine
from interp.engine import Hook
from interp.errors import ConfigError
from patching.edges import build_graph, circuit_faithfulness, edge_attribution, mib_scores

from .conftest import make_example

pytestmark = pytest.mark.usefixtures("one_thread")


def _tl_name(node) -> str:
    kind = node.kind
    if kind == "embed":
        return "input"
    if kind in ("attn_head_out", "q_input", "k_input", "v_input"):
        base = f"a{node.layer}.h{node.head}"
        return base if kind == "attn_head_out" else f"{base}<{kind[0]}>"
    if kind in ("mlp_out", "mlp_in"):
        return f"m{node.layer}"
    return "logits"


@pytest.mark.parametrize("name", ["gpt2", "neox"])
def test_eap_equals_transformer_lens_edge_attribution(built, name):
    from transformer_lens.tools.analysis.attribution_patching import EdgeAttributionConfig, attribution_patch

    b = built(name)
    ex = make_example(b, n=3)
    res = edge_attribution(b.model, ex.clean, ex.corrupted, ex.metric, method="eap")
    tl = attribution_patch(b.model, ex.clean, ex.corrupted, ex.metric, EdgeAttributionConfig(granularity="edge"))
    ref: dict[str, float] = {}
    for (w, r), v in tl.edge_scores.items():  # TL keeps positions: sum them
        key = f"{_tl_name(w)}->{_tl_name(r)}"
        ref[key] = ref.get(key, 0.0) + v
    mine = dict(zip(res.edges, res.scores.tolist()))
    assert set(mine) == set(ref) and len(mine) == res.graph.n_edges
    assert max(abs(mine[k] - ref[k]) for k in ref) < 1e-5
    assert max(abs(v) for v in ref.values()) > 0.05  # not vacuous


def _hand_eap(model, graph, base, other, metric, by_pos=False):
    """delta_u . dmetric/d(input of v), from engine.record / engine.gradients at the split reader hooks."""
    sites = [s.site for s in graph.sites]
    writer_sites = graph.writer_sites()
    with engine.split_inputs(model):
        o = engine.record(model, other, writer_sites).acts
        got = engine.gradients(model, base, list(dict.fromkeys(writer_sites + sites)), metric)
    scores = []
    for site in graph.sites:
        grad = got.grads[site.site]
        for j in range(len(site.names)):
            g = grad[:, :, j] if site.heads is not None else grad
            for u in range(site.n_up):
                w = graph.writers[u]
                delta = o[w.site] - got.acts[w.site]
                delta = delta[:, :, w.head] if w.head is not None else delta
                cell = (delta * g).sum(dim=(0, 2)) if by_pos else (delta * g).sum()
                scores.append(cell.double())
    return torch.stack(scores)


def test_moe_block_is_one_node_and_eap_equals_eap_by_hand(built):
    b = built("mixtral")
    ex = make_example(b, n=2)
    graph = build_graph(b.model)
    res = edge_attribution(b.model, ex.clean, ex.corrupted, ex.metric, method="eap")
    torch.testing.assert_close(res.scores, _hand_eap(b.model, graph, ex.corrupted, ex.clean, ex.metric), atol=1e-5,
                               rtol=0)
    assert "m0->m1" in res.edges and "m1->logits" in res.edges


def test_gqa_eap_equals_eap_by_hand(built):
    b = built("llama-gqa")
    ex = make_example(b, n=3)
    graph = build_graph(b.model)
    assert graph.n_kv_heads == 2 and graph.n_heads == 4
    res = edge_attribution(b.model, ex.clean, ex.corrupted, ex.metric, method="eap")
    hand = _hand_eap(b.model, graph, ex.corrupted, ex.clean, ex.metric)
    torch.testing.assert_close(res.scores, hand, atol=1e-5, rtol=0)
    assert "a1.h3->m1" in res.edges and "a0.h2->a1.kv1<k>" in res.edges and "a0.h0->a1.h3<k>" not in res.edges
    assert "kv_heads" in res.extra and "kv" in res.summary()
    by_pos = edge_attribution(b.model, ex.clean, ex.corrupted, ex.metric, method="eap", by="position")
    torch.testing.assert_close(by_pos.effect, _hand_eap(b.model, graph, ex.corrupted, ex.clean, ex.metric, True),
                               atol=1e-5, rtol=0)
    noise = edge_attribution(b.model, ex.clean, ex.corrupted, ex.metric, method="eap", direction="noise")
    torch.testing.assert_close(noise.scores, _hand_eap(b.model, graph, ex.clean, ex.corrupted, ex.metric),
                               atol=1e-5, rtol=0)


def test_shared_prefix_positions_are_skipped_exactly(built, monkeypatch):
    """Prompts that differ late only: the gradient products run over the differing positions (the deltas
    before them are zero) and every score still equals EAP by hand, summed and by position."""
    from patching.edges import _compute

    b = built("llama-gqa")
    ex = make_example(b, n=2)
    corrupted = ex.clean.clone()
    corrupted[:, -2] = ex.corrupted[:, -2]
    graph = build_graph(b.model)
    firsts = []
    trim = _compute._trim
    monkeypatch.setattr(_compute, "_trim", lambda box: (trim(box), firsts.append(box[1] if len(box) > 1 else 0)))
    for by in (None, "position"):
        res = edge_attribution(b.model, ex.clean, corrupted, ex.metric, method="eap", by=by)
        hand = _hand_eap(b.model, graph, corrupted, ex.clean, ex.metric, by is not None)
        torch.testing.assert_close(res.effect, hand, atol=1e-5, rtol=0)
        assert float(hand.abs().max()) > 1e-3
    assert firsts == [ex.clean.shape[1] - 2] * 2


def _hand_path_patching(model, graph, base, other, metric):
    """One forward pass per edge: reader v's input (its head slot) gets writer u's other-run minus base value."""
    with engine.split_inputs(model):
        o = engine.record(model, other, graph.writer_sites()).acts
        rec = engine.record(model, base, graph.writer_sites())
        b_acts, base_value = rec.acts, float(metric(rec.output))
        out = []
        for u, s, j in graph.edges:
            w, site = graph.writers[u], graph.sites[s]
            delta = o[w.site] - b_acts[w.site]
            delta = delta[:, :, w.head] if w.head is not None else delta

            def patch(act, delta=delta, j=j, heads=site.heads):
                act = act.clone()
                if heads is None:
                    act += delta
                else:
                    act[:, :, j] += delta
                return act
            with torch.no_grad():
                out.append(float(metric(engine.run(model, base, [Hook(site.site, patch)]))) - base_value)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa"])
def test_exact_equals_a_hand_written_path_patching_loop(built, name):
    b = built(name)
    ex = make_example(b, n=2)
    graph = build_graph(b.model)
    res = edge_attribution(b.model, ex.clean, ex.corrupted, ex.metric, method="exact", max_rows=32)
    torch.testing.assert_close(res.scores, _hand_path_patching(b.model, graph, ex.corrupted, ex.clean, ex.metric),
                               atol=2e-5, rtol=0)
    assert res.n_backward == 0 and res.scores.abs().max() > 0.05


def test_eap_ig_with_one_step_is_eap_and_input_edges_are_complete(built):
    b = built("llama-gqa")
    ex = make_example(b, n=2)
    eap = edge_attribution(b.model, ex.clean, ex.corrupted, ex.metric, method="eap")
    one = edge_attribution(b.model, ex.clean, ex.corrupted, ex.metric, method="eap-ig", steps=1)
    torch.testing.assert_close(one.scores, eap.scores, atol=1e-5, rtol=0)
    # integrated along the input path, the input's outgoing edges add up to the whole clean - corrupted gap
    ig = edge_attribution(b.model, ex.clean, ex.corrupted, ex.metric, method="eap-ig", steps=24,
                          integration="gausslegendre")
    inputs = ig.scores[[s == "input" for s in ig.graph.sources()]].sum()
    gap = ig.clean_value - ig.corrupted_value
    assert abs(float(inputs) - gap) < 0.02 * abs(gap) + 1e-4
    act = edge_attribution(b.model, ex.clean, ex.corrupted, ex.metric, method="eap-ig-activations", steps=2)
    assert act.n_backward == 2 * (1 + 2 * 2) and torch.isfinite(act.scores).all()


def test_relp_edges_add_up_to_node_level_relp(built):
    """A writer's outgoing edges carry its whole delta: their RelP scores sum to RelP at the writer's output."""
    import patching

    b = built("gpt2")
    ex = make_example(b, n=2)
    res = edge_attribution(b.model, ex.clean, ex.corrupted, ex.metric, method="relp")
    assert res.extra["rules"]
    with engine.split_inputs(b.model):
        node = patching.relevance_patching(b.model, ex.clean, ex.corrupted, ex.metric, sites=["mlp_out"], by=())
    sources = res.graph.sources()
    for layer in range(2):
        total = res.scores[[s == f"m{layer}" for s in sources]].sum()
        assert abs(float(total) - float(node["mlp_out"].effect[layer])) < 1e-4


def test_faithfulness_equals_transformer_lens(built):
    from transformer_lens.tools.analysis.attribution_patching import faithfulness

    b = built("gpt2")
    ex = make_example(b, n=1)
    res = edge_attribution(b.model, ex.clean, ex.corrupted, ex.metric, method="eap")
    circuit = res.circuit(n_edges=25)
    mine = circuit_faithfulness(b.model, ex.clean, ex.corrupted, ex.metric, circuit)
    tl_edges = {}
    from transformer_lens.tools.analysis.attribution_patching import EdgeAttributionConfig, attribution_patch
    tl = attribution_patch(b.model, ex.clean, ex.corrupted, ex.metric, EdgeAttributionConfig(granularity="edge"))
    for w, r in tl.edge_scores:
        tl_edges.setdefault(f"{_tl_name(w)}->{_tl_name(r)}", []).append((w, r))
    kept = [pair for e in circuit.edges for pair in tl_edges[e]]
    ref = faithfulness(b.model, ex.clean, ex.corrupted, ex.metric, kept).recovered
    assert abs(mine - ref) < 1e-4
    everything = res.circuit(fraction=1.0)
    assert abs(circuit_faithfulness(b.model, ex.clean, ex.corrupted, ex.metric, everything) - 1) < 1e-5
    curve = mib_scores(b.model, ex.clean, ex.corrupted, ex.metric, res, fractions=(0.0, 0.1, 1.0))
    assert abs(curve.faithfulness[0]) < 1e-5 and abs(curve.faithfulness[-1] - 1) < 1e-5
    f = curve.faithfulness
    assert abs(curve.cpr - (0.1 * (f[0] + f[1]) / 2 + 0.9 * (f[1] + f[2]) / 2)) < 1e-12


@pytest.mark.parametrize("name", ["gemma2", "olmo2", "bert", "phi"])
def test_models_whose_residual_is_not_a_sum_of_writers_are_refused(built, name):
    b = built(name)
    ex = make_example(b, n=1)
    with pytest.raises(ConfigError):
        edge_attribution(b.model, ex.clean, ex.corrupted, ex.metric)
