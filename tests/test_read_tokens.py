"""Patching unembeds only the tokens a logit difference reads (issue 23): columns counted, values unchanged,
and a model whose logits are not per-token dot products keeps every column."""

from __future__ import annotations

import pytest
import torch

import patching
from interp import engine
from patching import metrics


@pytest.fixture(scope="module")
def llama():
    """A random 2-layer Llama bridge with a 128-token vocabulary and a shared prefix of 6 tokens."""
    import transformers

    from interp.models._tokenizers import integer_tokenizer
    from interp.models.hf import bridge_model

    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                   attn_implementation="eager")
    model, _ = bridge_model(transformers.LlamaForCausalLM(cfg).eval(), integer_tokenizer(128))
    gen = torch.Generator().manual_seed(1)
    clean = torch.randint(3, 128, (3, 12), generator=gen)
    corrupted = clean.clone()
    corrupted[:, 6] = (clean[:, 6] + 7) % 125 + 3
    return model, clean, corrupted


def _columns(model, fn):
    """``fn()``'s result and the number of logit columns of every unembedding it computed."""
    cols = []
    count = engine.Hook("unembed.hook_out", lambda x: cols.append(int(x.shape[-1])), engine.Phase.READ)
    with engine.hooked(model, [count]):
        out = fn()
    return out, cols


@pytest.mark.parametrize("kind", ["resid_pre", "attn_out", "z"])
def test_a_logit_difference_sweep_unembeds_only_its_tokens(llama, kind):
    model, clean, corrupted = llama
    metric = metrics.logit_diff(torch.tensor([5, 9, 5]), torch.tensor([17, 9, 40]), pos=torch.tensor([11, 8, 9]))
    assert metric.tokens.tolist() == [5, 9, 17, 40]
    res, cols = _columns(model, lambda: patching.activation_patching(model, clean, corrupted, metric, kind))
    full = patching.activation_patching(model, clean, corrupted, metric, kind, read_positions=False)
    assert res.extra[kind]["unembedded_tokens"] == 4
    assert cols[0] == 128 and cols.count(4) >= res.extra[kind]["forward_calls"] - 1  # the sweep's passes: 4 columns
    torch.testing.assert_close(res.grids[kind].effect, full.grids[kind].effect, atol=1e-5, rtol=0)
    assert res.clean_value == pytest.approx(full.clean_value, abs=1e-6)


def test_normalized_logit_diff_is_cut_and_a_softmax_is_not(llama):
    model, clean, corrupted = llama
    with torch.no_grad():
        lc, lr = model(clean), model(corrupted)
    norm = metrics.normalized_logit_diff(3, 4, lc, lr)
    res, cols = _columns(model, lambda: patching.activation_patching(model, clean, corrupted, norm, "resid_pre"))
    assert res.extra["resid_pre"]["unembedded_tokens"] == 2 and min(cols) == 2
    ref = patching.activation_patching(model, clean, corrupted, norm, "resid_pre", read_positions=False)
    torch.testing.assert_close(res.grids["resid_pre"].effect, ref.grids["resid_pre"].effect, atol=1e-5, rtol=0)
    prob = metrics.probability(3)
    assert prob.tokens is None  # a softmax reads every token
    res, cols = _columns(model, lambda: patching.activation_patching(model, clean, corrupted, prob, "resid_pre"))
    assert res.extra["resid_pre"]["unembedded_tokens"] is None and set(cols) == {128}


def test_logits_that_mix_tokens_keep_every_column(llama):
    """A log-softmax after the unembedding (here a user's hook) makes each logit depend on every token: the
    check pass against the full logits fails, and the sweep unembeds the whole vocabulary."""
    model, clean, corrupted = llama
    metric = metrics.logit_diff(3, 4)
    mix = engine.Hook("unembed.hook_out", lambda x: x - x.logsumexp(-1, keepdim=True))
    with engine.hooked(model, [mix]):
        res, cols = _columns(model, lambda: patching.activation_patching(model, clean, corrupted, metric, "resid_pre"))
        ref = patching.activation_patching(model, clean, corrupted, metric, "resid_pre", read_positions=False)
    assert res.extra["resid_pre"]["unembedded_tokens"] is None
    assert cols.count(2) == 1 and set(cols) == {2, 128}  # the one check pass, then every column
    torch.testing.assert_close(res.grids["resid_pre"].effect, ref.grids["resid_pre"].effect, atol=1e-5, rtol=0)


def test_metric_token_columns():
    m = metrics.logit_diff([7, 3], [3, 11])
    tokens = m.tokens
    assert tokens.tolist() == [3, 7, 11]
    narrowed = m.at_tokens(tokens)
    logits = torch.randn(2, 5, 20)
    torch.testing.assert_close(narrowed(logits[..., tokens]), m(logits))
    with pytest.raises(Exception, match="not all among the columns"):
        m.at_tokens(torch.tensor([3, 7]))
    assert metrics.kl_divergence(torch.randn(2, 5, 20)).tokens is None
