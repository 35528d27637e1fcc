"""Patching unembeds only the positions the metric reads (issue 23): rows counted, values unchanged."""

from __future__ import annotations

import pytest
import torch

import interp
import patching
from patching import datasets, metrics


@pytest.fixture(scope="module")
def induction():
    model, _ = interp.models.load("induction-2l")
    return model, datasets.induction_pairs(6, seed=0, corrupt="key")


def test_a_logit_difference_sweep_unembeds_only_the_position_it_reads(induction, unembedded):
    model, pairs = induction
    metric = pairs.metric()
    assert metric.positions == -1
    t = pairs.clean.shape[1]
    for kind in ("resid_pre", "z"):
        cut, rows = unembedded(model, lambda kind=kind: patching.activation_patching(
            model, pairs.clean, pairs.corrupted, metric, kind))
        full, rows_full = unembedded(model, lambda kind=kind: patching.activation_patching(
            model, pairs.clean, pairs.corrupted, metric, kind, read_positions=False))
        assert rows and all(p == 1 for _, p in rows), rows  # one position per row, in every pass
        assert max(p for _, p in rows_full) == t  # before: every position (the suffix's, after a shared prefix)
        passes = [r for r, _ in rows]  # the same passes on the same examples, plus the token cut's one-example check
        assert passes[1] == 1 and passes[:1] + passes[2:] == [r for r, _ in rows_full]
        assert sum(r for r, _ in rows) < sum(r * p for r, p in rows_full)
        torch.testing.assert_close(cut.grids[kind].effect, full.grids[kind].effect, atol=1e-5, rtol=0)
        assert cut.clean_value == pytest.approx(full.clean_value, abs=1e-5)


def test_a_plain_callable_declares_nothing_and_gets_every_position(induction, unembedded):
    model, pairs = induction
    metric = pairs.metric()
    plain = lambda logits: metric(logits)  # noqa: E731 - a user's metric: says nothing about what it reads
    res, rows = unembedded(model, lambda: patching.activation_patching(model, pairs.clean, pairs.corrupted, plain,
                                                                        "resid_pre"))
    assert max(p for _, p in rows) == pairs.clean.shape[1] and min(p for _, p in rows) > 1  # (a prefix: the suffix)
    ref = patching.activation_patching(model, pairs.clean, pairs.corrupted, metric, "resid_pre")
    torch.testing.assert_close(res.grids["resid_pre"].effect, ref.grids["resid_pre"].effect, atol=1e-5, rtol=0)


def test_per_example_positions_and_the_shared_prefix(llama_pair, unembedded):
    model, clean, corrupted = llama_pair
    pos = torch.tensor([11, 8, 9])  # one read position per example, all after the shared prefix
    metric = metrics.logit_diff(torch.tensor([5, 6, 7]), torch.tensor([9, 10, 11]), pos=pos)
    cut, rows = unembedded(model, lambda: patching.activation_patching(model, clean, corrupted, metric, "resid_pre"))
    full = patching.activation_patching(model, clean, corrupted, metric, "resid_pre", read_positions=False)
    assert cut.extra["resid_pre"]["shared_prefix"] == 6
    assert all(p == 1 for _, p in rows)
    torch.testing.assert_close(cut.grids["resid_pre"].effect, full.grids["resid_pre"].effect, atol=1e-5, rtol=0)
    # a read position inside the shared prefix: the prefix cache is refused, the cut still applies
    early = metrics.logit_diff(torch.tensor([5, 6, 7]), torch.tensor([9, 10, 11]), pos=torch.tensor([11, 2, 9]))
    a = patching.activation_patching(model, clean, corrupted, early, "resid_pre")
    b = patching.activation_patching(model, clean, corrupted, early, "resid_pre", read_positions=False)
    torch.testing.assert_close(a.grids["resid_pre"].effect, b.grids["resid_pre"].effect, atol=1e-5, rtol=0)


@pytest.mark.parametrize("method", ["atp", "relp", "ig"])
def test_gradient_methods_differentiate_only_the_read_rows(llama_pair, method, unembedded):
    model, clean, corrupted = llama_pair
    metric = metrics.logit_diff(torch.tensor([5, 6, 7]), torch.tensor([9, 10, 11]), pos=torch.tensor([11, 8, -1]))
    plain = lambda logits: metric(logits)  # noqa: E731 - no declaration: every position, as before
    run = {"atp": patching.attribution_patching, "relp": patching.relevance_patching,
           "ig": lambda *a, **k: patching.integrated_gradients(*a, steps=4, **k)}[method]
    cut, rows = unembedded(model, lambda: run(model, clean, corrupted, metric, "resid_pre"))
    full, rows_full = unembedded(model, lambda: run(model, clean, corrupted, plain, "resid_pre"))
    if method == "relp":  # its conservation check (one sample, before the attribution) reads its own logits
        rows, rows_full = rows[-2:], rows_full[-2:]
    assert all(p == 1 for _, p in rows) and all(p == clean.shape[1] for _, p in rows_full)
    torch.testing.assert_close(cut.grids["resid_pre"].effect, full.grids["resid_pre"].effect, atol=1e-5, rtol=1e-4)


def test_what_each_metric_declares():
    assert metrics.logit_diff(1, 2).positions == -1
    assert metrics.probability(3, pos=4).positions == 4
    assert metrics.loss(torch.zeros(2, 5, dtype=torch.long)).positions is None
    assert metrics.kl_divergence(torch.zeros(2, 5, 7), pos=slice(None)).positions is None
    ref = torch.randn(2, 5, 7)
    kl = metrics.kl_divergence(ref, pos=2)
    logits = torch.randn(2, 5, 7)
    torch.testing.assert_close(kl.at_read_positions()(logits[:, 2:3]), kl(logits))
    ld = metrics.logit_diff(torch.tensor([1, 2]), torch.tensor([3, 4]), pos=torch.tensor([4, 1]))
    torch.testing.assert_close(ld.at_read_positions()(logits[torch.arange(2), torch.tensor([4, 1])][:, None]),
                               ld(logits))
    with pytest.raises(interp.errors.ConfigError):
        metrics.loss(torch.zeros(2, 5, dtype=torch.long)).at_read_positions()


def test_positions_for_another_batch_are_a_named_error(llama_pair):
    model, clean, corrupted = llama_pair
    metric = metrics.logit_diff(5, 9, pos=torch.tensor([11, 8]))  # two positions for three prompts
    with pytest.raises(interp.errors.DimensionError):
        patching.activation_patching(model, clean, corrupted, metric, "resid_pre")
