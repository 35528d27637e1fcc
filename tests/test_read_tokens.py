"""Patching unembeds only the tokens a logit difference reads (issue 23): columns counted, values unchanged,
and a model whose logits are not per-token dot products keeps every column."""

from __future__ import annotations

import pytest
import torch

import patching
from interp import engine
from patching import metrics


@pytest.fixture
def unembed_columns(unembed_shapes):
    """``(fn(), [logit columns of every unembedding it computed])``."""
    def columns(model, fn):
        out, shapes = unembed_shapes(model, fn)
        return out, [shape[-1] for shape in shapes]
    return columns


@pytest.mark.parametrize("kind", ["resid_pre", "attn_out", "z"])
def test_a_logit_difference_sweep_unembeds_only_its_tokens(llama_pair, unembed_columns, kind):
    model, clean, corrupted = llama_pair
    metric = metrics.logit_diff(torch.tensor([5, 9, 5]), torch.tensor([17, 9, 40]), pos=torch.tensor([11, 8, 9]))
    assert metric.tokens.tolist() == [5, 9, 17, 40]
    res, cols = unembed_columns(model, lambda: patching.activation_patching(model, clean, corrupted, metric, kind))
    full = patching.activation_patching(model, clean, corrupted, metric, kind, read_positions=False)
    assert res.extra[kind]["unembedded_tokens"] == 4
    assert cols[0] == 128 and cols.count(4) >= res.extra[kind]["forward_calls"] - 1  # the sweep's passes: 4 columns
    torch.testing.assert_close(res.grids[kind].effect, full.grids[kind].effect, atol=1e-5, rtol=0)
    assert res.clean_value == pytest.approx(full.clean_value, abs=1e-6)


def test_normalized_logit_diff_is_cut_and_a_softmax_is_not(llama_pair, unembed_columns):
    model, clean, corrupted = llama_pair
    with torch.no_grad():
        lc, lr = model(clean), model(corrupted)
    norm = metrics.normalized_logit_diff(3, 4, lc, lr)
    res, cols = unembed_columns(model, lambda: patching.activation_patching(model, clean, corrupted, norm, "resid_pre"))
    assert res.extra["resid_pre"]["unembedded_tokens"] == 2 and min(cols) == 2
    ref = patching.activation_patching(model, clean, corrupted, norm, "resid_pre", read_positions=False)
    torch.testing.assert_close(res.grids["resid_pre"].effect, ref.grids["resid_pre"].effect, atol=1e-5, rtol=0)
    prob = metrics.probability(3)
    assert prob.tokens is None  # a softmax reads every token
    res, cols = unembed_columns(model, lambda: patching.activation_patching(model, clean, corrupted, prob, "resid_pre"))
    assert res.extra["resid_pre"]["unembedded_tokens"] is None and set(cols) == {128}


def test_logits_that_mix_tokens_keep_every_column(llama_pair, unembed_columns):
    """A log-softmax after the unembedding (here a user's hook) makes each logit depend on every token: the
    check pass against the full logits fails, and the sweep unembeds the whole vocabulary."""
    model, clean, corrupted = llama_pair
    metric = metrics.logit_diff(3, 4)
    mix = engine.Hook("unembed.hook_out", lambda x: x - x.logsumexp(-1, keepdim=True))
    with engine.hooked(model, [mix]):
        res, cols = unembed_columns(model, lambda: patching.activation_patching(model, clean, corrupted, metric, "resid_pre"))
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
