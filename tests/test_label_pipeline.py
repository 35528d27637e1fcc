"""Labeling pipelines, detectors, vocabulary projection, explainers and scoring."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from interp.errors import ConfigError, InputTypeError, SiteError
from interp.label.explain import (
    ExplainerError,
    Explanation,
    OpenAIExplainer,
    TemplatedExplainer,
    UnitEvidence,
    keyword_predicate,
)
from interp.label.heads import head_scores, pattern_scores
from interp.label.phenomena import enrichment_depletion, massive_units, universal_units, vocab_neuron_classes
from interp.label.pipeline import label_neurons, stream_site, text_corpus
from interp.label.report import build_label_report
from interp.label.scoring import auroc, detection_auroc, simulation_correlation
from interp.label.stats import UnitStats
from interp.label.vocab import vocab_projection


@pytest.fixture(scope="module")
def tiny():
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    return TransformerBridge.boot_native(TransformerBridgeConfig(
        d_model=32, n_layers=2, n_heads=2, d_head=16, n_ctx=32, d_vocab=64, d_mlp=64, act_fn="gelu",
        normalization_type="LN", seed=0))


@pytest.fixture(scope="module")
def tokens():
    return torch.randint(0, 64, (24, 32), generator=torch.Generator().manual_seed(0))


def test_stream_site_matches_run_with_cache(tiny, tokens):
    site = "blocks.1.mlp.hook_post"
    _, cache = tiny.run_with_cache(tokens[:8], names_filter=lambda n: n == site)
    start, batch, acts = next(iter(stream_site(tiny, tokens, site, batch_size=8)))
    assert start == 0 and torch.equal(batch, tokens[:8])
    torch.testing.assert_close(acts, cache[site].float())
    with pytest.raises(SiteError, match="closest"):
        next(iter(stream_site(tiny, tokens, "blocks.1.mlp.hook_pots")))


def _ln_readout(model, x):
    """Reference read-out of a LayerNorm model, by hand: centre, scale, gain and bias, then W_U and b_U."""
    ln = model.ln_final
    centred = x - x.mean(-1, keepdim=True)
    normed = centred / torch.sqrt(centred.pow(2).mean(-1, keepdim=True) + model.cfg.eps) * ln.w + ln.b
    return (normed @ model.W_U + model.b_U).detach()


def test_vocab_projection_matches_manual(tiny):
    tiny = copy.deepcopy(tiny)  # the weights change below
    with torch.no_grad():  # non-trivial final-norm gain and bias and unembedding bias
        gen = torch.Generator().manual_seed(1)
        tiny.ln_final.w.add_(0.5 * torch.randn(tiny.ln_final.w.shape, generator=gen))
        tiny.ln_final.b.add_(0.3 * torch.randn(tiny.ln_final.b.shape, generator=gen))
        tiny.unembed.b_U.add_(0.3 * torch.randn(tiny.unembed.b_U.shape, generator=gen))
    proj = vocab_projection(tiny, 1, "out", k=3)
    logits = _ln_readout(tiny, tiny.blocks[1].mlp.W_out.detach()[5])
    assert proj.top_ids[5].tolist() == logits.topk(3).indices.tolist()
    assert proj.bottom_ids[5].tolist() == (-logits).topk(3).indices.tolist()
    np.testing.assert_allclose(proj.top_logits[5], logits.topk(3).values.numpy(), atol=1e-5)
    from scipy.stats import kurtosis, skew

    assert proj.kurtosis[5] == pytest.approx(kurtosis(logits.numpy(), fisher=False), rel=1e-4)
    assert proj.skew[5] == pytest.approx(skew(logits.numpy()), rel=1e-4, abs=1e-5)
    proj_in = vocab_projection(tiny, 1, "in", k=3, units=[2, 7], final_norm=True)
    logits_in = _ln_readout(tiny, tiny.blocks[1].mlp.W_in.detach()[:, 7])
    assert proj_in.top_ids[1].tolist() == logits_in.topk(3).indices.tolist()
    assert proj_in.top_prob[1] == pytest.approx(torch.softmax(logits_in, 0).max().item(), rel=1e-5)
    assert "VocabProjection" in proj.summary() and len(proj.plot(5).data) == 1
    with pytest.raises(ConfigError):
        vocab_projection(tiny, 5)


def test_vocab_classes_and_enrichment_criteria(tiny):
    kurt = np.array([3.0, 30.0, 30.0])
    skew = np.array([0.0, 2.0, -2.0])
    cls = vocab_neuron_classes(kurt, skew)
    assert cls["prediction"].tolist() == [False, True, False]
    assert cls["suppression"].tolist() == [False, False, True]
    with torch.no_grad():  # make neuron 0 an enrichment and neuron 1 a depletion neuron
        mlp = tiny.blocks[0].mlp
        mlp.W_out[0] = mlp.W_in[:, 0]
        mlp.W_out[1] = -mlp.W_in[:, 1]
    ed = enrichment_depletion(tiny, 0)
    assert ed.loc[0, "enrichment"] and ed.loc[1, "depletion"]
    assert ed.loc[0, "cos_in_out"] == pytest.approx(1.0, abs=1e-5)


def test_massive_and_universal_units():
    stats = UnitStats(4, k=2, window=(0, 0))
    acts = torch.randn(200, 4) * 0.1
    acts[17, 2] = 500.0
    stats.update(acts)
    assert massive_units(stats.result()).tolist() == [False, False, True, False]
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3000, 40, generator=g)
    b = torch.cat([a[:, [3, 1]] + 0.1 * torch.randn(3000, 2, generator=g), torch.randn(3000, 38, generator=g)], 1)
    uni = universal_units(a, b)
    assert np.flatnonzero(uni["universal"]).tolist() == [1, 3]
    assert uni.loc[3, "partner"] == 0 and uni.loc[1, "partner"] == 1


def test_head_scores_on_hand_made_patterns():
    tokens = torch.tensor([[0, 5, 6, 7, 5, 6, 7]])
    T = tokens.shape[1]
    prev = torch.zeros(T, T)
    prev[0, 0] = 1
    prev[torch.arange(1, T), torch.arange(T - 1)] = 1
    induction = torch.eye(T)
    for dst, src in [(4, 2), (5, 3), (6, 4)]:  # token after the earlier occurrence
        induction[dst] = 0
        induction[dst, src] = 1
    pattern = torch.stack([prev, induction])[None]  # (1, 2 heads, T, T)
    s = pattern_scores(pattern, tokens)
    assert s["previous_token"].tolist() == [1.0, 0.0]
    assert s["duplicate_token"].tolist() == [0.0, 0.0]
    assert s["induction"][1] == 1.0 and s["induction"][0] == 0.0


@pytest.mark.slow
def test_induction_2l_heads_are_flagged():
    """Acceptance: the head detectors flag induction-2l's previous-token head and induction heads."""
    import interp
    from interp.models.induction import induction_head_scores, make_repeated_tokens

    model, _ = interp.models.load("induction-2l")
    scores = head_scores(model, make_repeated_tokens(32, seq_len=64, seed=5).tokens)
    reference = induction_head_scores(model)  # the model's own training-time criterion (threshold 0.5)
    truth_induction = set(reference.heads("induction", threshold=0.5))
    truth_prev = set(reference.heads("previous_token", threshold=0.5))
    if not truth_prev:  # a model whose previous-token head is just below 0.5: take the strongest one
        truth_prev = {tuple(int(i) for i in np.unravel_index(int(np.argmax(reference.previous_token)), reference.previous_token.shape))}
    assert truth_induction and truth_induction <= set(scores.flagged("induction"))
    assert truth_prev <= set(scores.flagged("previous_token"))
    assert all(layer == 1 for layer, _ in scores.flagged("induction"))
    assert all(layer == 0 for layer, _ in scores.flagged("previous_token"))
    np.testing.assert_allclose(scores.previous_token, reference.previous_token, atol=0.05)


def test_label_neurons_end_to_end(tiny, tokens):
    res = label_neurons(tiny, "blocks.1.mlp.hook_post", tokens, k=6, window=(4, 2), n_random=100, units=range(10))
    t = res.to_frame()
    assert len(t) == 10 and set(t.columns) >= {"label", "score", "phenomena", "explainer"}
    assert t["score"].between(0, 1).all()
    assert (t["explainer"] == "templated").all() and not t["error"].astype(bool).any()
    assert res.stats.count == 19 * 32  # 5 of 24 sequences are held out


def test_label_score_detects_a_planted_token_detector():
    """A unit that fires exactly on token 7 gets a label naming token 7 and a detection AUROC near 1."""
    from torch import nn

    class Planted(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(50, 4)
            self.neurons = nn.Identity()

        def forward(self, x):
            h = torch.zeros(*x.shape, 3)
            h[..., 0] = (x == 7).float() * 3
            h[..., 1] = torch.randn(*x.shape) * 0.1
            h[..., 2] = self.embed(x)[..., 0]
            return self.neurons(h)

    g = torch.Generator().manual_seed(0)
    toks = torch.randint(0, 50, (60, 20), generator=g)
    res = label_neurons(Planted(), "neurons", toks, k=8, window=(3, 1), n_random=150)
    row = res.table.iloc[0]
    assert "'<7>'" in row["label"] and row["score"] > 0.95
    assert "token-detector" in row["phenomena"]
    assert res.table.iloc[1]["score"] < 0.75


def test_bad_inputs(tiny, tokens):
    with pytest.raises(InputTypeError, match="empty"):
        text_corpus(tiny.tokenizer or _WordTok(), text="   ")
    with pytest.raises(InputTypeError):
        label_neurons(tiny, "blocks.1.mlp.hook_post", torch.zeros(0, 8, dtype=torch.long))
    with pytest.raises(InputTypeError, match="at least 2"):
        label_neurons(tiny, "blocks.1.mlp.hook_post", tokens[:1])
    with pytest.raises(ConfigError):
        label_neurons(tiny, "blocks.1.mlp.hook_post", tokens, holdout=1.5)


class _WordTok:
    bos_token_id = None

    def encode(self, text, add_special_tokens=False):
        return [hash(w) % 60 for w in text.split()]

    def decode(self, ids):
        return f"w{ids[0]}"


def test_text_corpus_shapes():
    rows = text_corpus(_WordTok(), n_tokens=500, seq_len=16)
    assert rows.shape == (32, 16)
    rows = text_corpus(_WordTok(), n_tokens=100, seq_len=10, bos=99)
    assert (rows[:, 0] == 99).all()


def test_explainer_endpoint_down_still_builds_report(tiny, tokens, tmp_path):
    down = OpenAIExplainer(base_url="http://127.0.0.1:9/v1", timeout=0.5)
    with pytest.raises(ExplainerError, match="failed"):
        down.explain(UnitEvidence(unit=0, exemplars=[("a [b] c", "b", 1.0)]))
    res = label_neurons(tiny, "blocks.1.mlp.hook_post", tokens, k=4, window=(2, 1), n_random=50, units=range(3),
                        explainer=down)
    assert res.table["error"].str.contains("openai explainer failed").all()
    assert (res.table["explainer"] == "templated").all()  # fallback labels
    assert any("explainer failed for 3 unit(s)" in n for n in res.notes)
    path = build_label_report(res, tmp_path / "r.html")
    text = path.read_text()
    assert "explainer failed" in text and text.count('<details class="card"') == 3


def test_templated_explainer_and_predicate():
    ev = UnitEvidence(unit=1, exemplars=[("x [ cat] y", " cat", 3.0), ("[ cat]", " cat", 2.0), ("[dog]", "dog", 1.0)],
                      top_tokens_out=["cats"], phenomena=["token-detector"])
    exp = TemplatedExplainer().explain(ev)
    assert exp.tokens == [" cat"] and "token-detector" in exp.text and "promotes 'cats'" in exp.text
    assert keyword_predicate(exp, [" cat", "cat", "dog"]).tolist() == [1, 1, 0]
    assert keyword_predicate(Explanation("fires on 'dog'", "x"), ["dog", " Dog", "cat"]).tolist() == [1, 1, 0]


def test_scores_against_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    s, y = rng.normal(size=40).round(1), rng.random(40) < 0.4
    assert auroc(s, y) == pytest.approx(roc_auc_score(y, s))
    assert detection_auroc([1, 1, 0], [0, 0, 0, 1]) == pytest.approx(roc_auc_score([1, 1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 1]))
    assert np.isnan(simulation_correlation([1, 1, 1], [1, 2, 3]))
    assert simulation_correlation([1, 2, 3, 4], [2, 4, 6, 8]) == pytest.approx(1.0)


@pytest.mark.slow
def test_local_explainer_runs_offline():
    """smollm2-135m explains a unit and simulates its activations with no network (weak, but it runs)."""
    import interp
    from interp.label.explain import LocalModelExplainer

    model, _ = interp.models.load("smollm2-135m")
    local = LocalModelExplainer(model, model.tokenizer, max_new_tokens=4)
    ev = UnitEvidence(unit=0, exemplars=[("the [cat] sat", " cat", 3.0), ("a [cat] ran", " cat", 2.5)])
    exp = local.explain(ev)
    assert exp.source == "local" and exp.text
    sim = local.simulate(exp, [" the", " cat", " sat"])
    assert sim.shape == (3,) and np.all((sim >= 0) & (sim <= 9))


def test_cli_errors_and_heads_report(tmp_path, capsys):
    from interp.cli import main

    assert main(["label", "induction-2l", "--out", str(tmp_path / "x.html")]) == 2
    assert "give --sites" in capsys.readouterr().err
    assert main(["label", "induction-2l", "--sites", "blocks.0.mlp.hook_post", "--units", "a:b"]) == 2
    assert "--units must look like" in capsys.readouterr().err
