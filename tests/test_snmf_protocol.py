"""SNMF's steering and detection protocol against the authors' code (ordavid-s/snmf-mlp-decomposition, ab58c78).

References re-implemented here from their published code: ``Intervener.find_alpha_for_kl_targets`` and
``generate_with_manipulation_sampling`` (``intervention/intervener.py``; the sampling is TransformerLens's
own ``sample_logits``, called as they call it), ``DiffMean.fit`` (``experiments/baselines/diffmean.py``),
``ConceptEvaluator.evaluate_tensor`` / ``explanation_score`` (``experiments/evaluation/concept_evaluator.py``)
and ``extract_rating`` / ``harmonic_mean`` (``experiments/causal/output_score_llm_judge.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp import ConfigError
from interp.decompose import SNMF, TopKSAE, find_strength
from interp.decompose._judge import harmonic_mean, judge_sentence, parse_rating
from interp.decompose.steering import (
    PAPER_KL_TARGETS,
    concept_detection,
    diffmeans_directions,
    sampled_generate,
    snmf_evaluation,
)

pytestmark = pytest.mark.usefixtures("one_thread")

SITE = "blocks.0.mlp.hook_post"


@pytest.fixture(scope="module")
def lm():
    """A random 2-layer GELU-MLP bridge with an integer tokenizer (BOS id 0)."""
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    from interp.models._tokenizers import integer_tokenizer
    from interp.models.induction import attach_tokenizer

    cfg = TransformerBridgeConfig(d_model=32, n_layers=2, n_heads=4, d_head=8, n_ctx=64, d_vocab=50, attn_only=False,
                                  d_mlp=64, act_fn="gelu", normalization_type="LN", seed=1)
    return attach_tokenizer(TransformerBridge.boot_native(cfg), integer_tokenizer(vocab_size=50))


def _hook(direction, strength):
    direction = direction / (torch.norm(direction) + 1e-8)

    def mlp_post_hook(value, hook):
        value[:, :, :] = value[:, :, :].clone() + strength * direction.view(1, 1, -1)
        return value
    return mlp_post_hook


def _authors_find_alpha(model, prompt, direction, target_kls, tol=0.01, max_iter=20):
    """``find_alpha_for_kl_targets`` (intervener.py), with the bridge's run_with_hooks."""
    tokens = model.to_tokens(prompt)
    with torch.no_grad():
        baseline_probs = torch.softmax(model.run_with_hooks(tokens)[:, -1, :], dim=-1)

    def compute_kl(alpha):
        with torch.no_grad():
            logits = model.run_with_hooks(tokens, fwd_hooks=[(SITE, _hook(direction, alpha))])
        q = torch.softmax(logits[:, -1, :], dim=-1)
        return torch.sum(baseline_probs * (torch.log(baseline_probs + 1e-8) - torch.log(q + 1e-8))).item()

    results = {}
    for target in target_kls:
        low, high = 1, 2000
        for _ in range(max_iter):
            mid = (low + high) / 2.0
            kl_mid = compute_kl(mid)
            if abs(kl_mid - target) < tol:
                results[target] = mid
            if kl_mid < target:
                low = mid
            else:
                high = mid
    return results


def test_find_strength_is_the_authors_bisection(lm):
    direction = torch.randn(64, generator=torch.Generator().manual_seed(5))
    prompt = "3 7 11 4"
    theirs = _authors_find_alpha(lm, prompt, direction, PAPER_KL_TARGETS)
    assert len(theirs) >= 4  # most targets are reached on this model
    for target in PAPER_KL_TARGETS:
        ours = find_strength(lm, prompt, SITE, direction, target)
        assert ours.n_evaluations == 20 and (ours.trace[0][0] == 1000.5)
        assert ours.converged == (target in theirs)
        if target in theirs:
            assert ours.strength == theirs[target] and abs(ours.kl - target) < 0.01
    with pytest.raises(ConfigError, match="bisect"):
        find_strength(lm, prompt, SITE, direction, 0.1, search="binary")


def test_sampled_generation_is_transformer_lens_sampling(lm):
    from transformer_lens.utilities.logits_utils import sample_logits

    direction = torch.randn(64, generator=torch.Generator().manual_seed(2))
    ours = sampled_generate(lm, "5 6 7", SITE, direction, 30.0, max_new_tokens=6, n_samples=3, seed=11)
    torch.manual_seed(11)
    tokens = lm.to_tokens("5 6 7").repeat(3, 1)
    for _ in range(6):  # generate_with_manipulation_sampling without the KV cache
        with torch.no_grad():
            logits = lm.run_with_hooks(tokens, fwd_hooks=[(SITE, _hook(direction, 30.0))])
        nxt = sample_logits(logits[:, -1, :], top_k=30, top_p=0.3, temperature=1.0, tokens=tokens)
        tokens = torch.cat([tokens, nxt.unsqueeze(1)], dim=1)
    assert ours == [lm.tokenizer.decode(t) for t in tokens.tolist()]


def _texts(seed, n, lo, hi):
    rs = np.random.RandomState(seed)
    return [" ".join(str(t) for t in rs.randint(lo, hi, size=6)) for _ in range(n)]


def test_diffmeans_and_detection_are_the_authors(lm):
    concepts = {"low": _texts(0, 4, 1, 20), "high": _texts(1, 4, 30, 50)}
    names, dirs = diffmeans_directions(lm, SITE, concepts)
    acts = {}
    for name, texts in concepts.items():  # DiffMean.fit: valid tokens (here: all but BOS), mean, difference
        rows = []
        for t in texts:
            _, cache = lm.run_with_cache(lm.to_tokens(t))
            rows.append(cache[SITE][0, 1:])
        acts[name] = torch.cat(rows)
    diff = acts["low"].mean(0) - acts["high"].mean(0)
    torch.testing.assert_close(dirs[0], diff / (diff.norm() + 1e-8), rtol=1e-5, atol=1e-6)
    det = concept_detection(lm, SITE, {"DiffMeans": dirs}, {0: concepts["low"], 1: concepts["high"]},
                            _texts(2, 4, 20, 30))
    for text, row in zip(concepts["low"], det.scores.query("component == 0 and group == 'concept'").itertuples()):
        _, cache = lm.run_with_cache(lm.to_tokens(text))
        a, per_token = dirs[0], []
        for b in cache[SITE][0, 1:]:   # explanation_score(concept, token_act, 'cosine' / 'r2'), max over tokens
            per_token.append((torch.nn.functional.cosine_similarity(a[None], b[None]).item(),
                              (1 - ((b - a) ** 2).sum() / (((b - b.mean()) ** 2).sum() + 1e-8)).item()))
        assert row.cosine == pytest.approx(max(c for c, _ in per_token), abs=1e-5)
        assert row.r2 == pytest.approx(max(r for _, r in per_token), abs=1e-4)
    frame = det.to_frame()
    assert set(frame.columns) >= {"auc", "gap"} and frame.auc.between(0, 1).all()


class _ScriptedJudge:
    """A judge whose replies are fixed: concept prompts get ``concept``, fluency prompts ``fluency``."""

    def __init__(self, concept="Rating: [[2]]", fluency="Rating: 1"):
        self.replies, self.prompts = (concept, fluency), []

    def complete(self, prompt):
        self.prompts.append(prompt)
        return self.replies[0] if "[Concept Start]" in prompt else self.replies[1]


def test_judge_prompts_rating_and_harmonic_mean():
    assert parse_rating("blah Rating: [[2]]") == 2 and parse_rating("Rating: 1") == 1 and parse_rating("nope") is None
    assert harmonic_mean([2, 1]) == pytest.approx(4 / 3) and harmonic_mean([0, 2]) == 0.0
    judge = _ScriptedJudge()
    row = judge_sentence(judge, "I think that cats", "cats")
    assert row == {"concept_score": 2, "fluency_score": 1, "score": pytest.approx(4 / 3), "judged": True}
    assert "[Concept Start]\ncats\n[Concept End]" in judge.prompts[0] and "I think that cats" in judge.prompts[1]
    bad = judge_sentence(_ScriptedJudge(concept="no idea"), "x", "cats")
    assert bad["judged"] is False and bad["concept_score"] == 0 and bad["score"] == 0.0
    with pytest.raises(ConfigError, match="complete"):
        judge_sentence(object(), "x", "cats")


def test_a_local_model_judges_through_the_explainer_interface():
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    from interp.label.explain import LocalModelExplainer

    cfg = TransformerBridgeConfig(d_model=16, n_layers=1, n_heads=2, d_head=8, n_ctx=2048, d_vocab=50, attn_only=True,
                                  normalization_type="LN", seed=0)
    lm = TransformerBridge.boot_native(cfg)

    class _Chars:  # a character tokenizer inside the model's 50-token vocabulary, no chat template
        def encode(self, text, add_special_tokens=False, return_tensors=None):
            ids = [ord(c) % 50 for c in text]
            return torch.tensor([ids]) if return_tensors == "pt" else ids

    row = judge_sentence(LocalModelExplainer(model=lm, tokenizer=_Chars()), "3 4 5", "7")
    assert row["judged"] and row["concept_score"] in (0, 1, 2) and row["fluency_score"] in (0, 1, 2)


def test_snmf_evaluation_runs_the_protocol_with_baselines(lm):
    rows = []
    for t in _texts(3, 12, 1, 50):
        _, cache = lm.run_with_cache(lm.to_tokens(t))
        rows.append(cache[SITE][0, 1:])
    X = torch.cat(rows)
    snmf = SNMF.paper(n_components=3, sparsity=0.25, max_iter=40, patience=40).fit(X)
    _, dm = diffmeans_directions(lm, SITE, {"low": _texts(0, 3, 1, 20), "high": _texts(1, 3, 30, 50)})
    sae = TopKSAE(n_components=8, k=2, batch_size=16, n_epochs=2, progress=False).fit(X)
    desc = {"SNMF": ["a", "b", "c"], "DiffMeans": ["low ids", "high ids"], "SAE": [str(i) for i in range(8)]}
    res = snmf_evaluation(lm, SITE, snmf, baselines={"DiffMeans": dm, "SAE": sae}, components=[0], prompt="3 7 11 4",
                          target_kls=(0.25,), n_samples=2, max_new_tokens=2, judge=_ScriptedJudge(),
                          descriptions=desc, concept_texts={0: _texts(0, 2, 1, 20)}, neutral_texts=_texts(2, 2, 20, 30))
    g = res.generations
    assert set(g.method) == {"SNMF", "DiffMeans", "SAE"}
    done = g[g.converged]
    assert len(done) and (done.groupby(["method", "target_kl"]).size() == 4).all()  # 2 signs x 2 sentences
    assert set(done.sign) == {1.0, -1.0} and np.allclose(done.score, 4 / 3)
    assert "SNMF" in res.summary() and res.detection is not None and len(res.to_frame())
    with pytest.raises(ConfigError, match="descriptions"):
        snmf_evaluation(lm, SITE, snmf, judge=_ScriptedJudge(), target_kls=(0.25,))
