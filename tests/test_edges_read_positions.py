"""The edge methods and the circuit evaluation unembed only the positions the metric reads (issue 23): rows
counted at ``unembed.hook_out``, values equal to those of the full unembedding (a plain callable metric, which
declares nothing, gets every position)."""

from __future__ import annotations

import pytest
import torch

import interp
from patching import metrics
from patching.edges import EDGE_METHODS, circuit_faithfulness, edge_attribution, mib_scores

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def gpt2():
    """A random 2-layer GPT-2 bridge (Hugging Face-backed, split layout); one read position per example."""
    import transformers

    from interp.models._tokenizers import integer_tokenizer
    from interp.models.hf import bridge_model

    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=64, n_layer=2, n_embd=32, n_head=4, n_positions=32,
                                  initializer_range=0.2, bos_token_id=1, eos_token_id=2)
    model, _ = bridge_model(transformers.GPT2LMHeadModel(cfg).eval(), integer_tokenizer(64))
    gen = torch.Generator().manual_seed(1)
    clean = torch.randint(3, 64, (3, 8), generator=gen)
    corrupted = clean.clone()
    corrupted[:, 3] = (clean[:, 3] + 7) % 61 + 3
    metric = metrics.logit_diff(torch.tensor([5, 6, 7]), torch.tensor([9, 10, 11]), pos=torch.tensor([7, 5, 6]))
    return model, clean, corrupted, metric


@pytest.fixture(scope="module")
def induction():
    """induction-2l on BOS A A vs BOS R A; the metric reads the last position (an int)."""
    model, _ = interp.models.load("induction-2l")
    g = torch.Generator().manual_seed(0)
    a = torch.stack([torch.randperm(127, generator=g)[:4] + 1 for _ in range(3)])
    r = torch.stack([torch.randperm(127, generator=g)[:4] + 1 for _ in range(3)])
    bos = torch.zeros(3, 1, dtype=torch.long)
    return model, torch.cat([bos, a, a], 1), torch.cat([bos, r, a], 1), metrics.log_probability(a[:, 0], pos=-1)


def _plain(metric):
    return lambda logits: metric(logits)  # a user's callable: says nothing about what it reads


@pytest.mark.parametrize("name", ["gpt2", "induction"])
@pytest.mark.parametrize("method", EDGE_METHODS)
def test_each_edge_method_unembeds_only_the_read_positions(request, name, method, unembedded):
    model, clean, corrupted, metric = request.getfixturevalue(name)
    kwargs = {"steps": 3} if method.startswith("eap-ig") else {}
    edge_attribution(model, clean[:1], corrupted[:1], metric.select(slice(0, 1)))  # the once-per-model check
    cut, rows = unembedded(model, lambda: edge_attribution(model, clean, corrupted, metric, method=method, **kwargs))
    full, rows_full = unembedded(model, lambda: edge_attribution(model, clean, corrupted, _plain(metric),
                                                                  method=method, **kwargs))
    t = clean.shape[1]
    assert rows and all(p == 1 for _, p in rows), rows  # every pass: one position per row
    assert all(p == t for _, p in rows_full), rows_full  # without a declaration: every position, as before
    assert [r for r, _ in rows] == [r for r, _ in rows_full]  # the same passes of the same rows
    assert cut.n_forward == full.n_forward and cut.n_backward == full.n_backward
    scale = float(full.effect.abs().max())
    assert scale > 0
    torch.testing.assert_close(cut.effect, full.effect, atol=1e-5 * max(scale, 1.0), rtol=1e-4)
    assert cut.clean_value == pytest.approx(full.clean_value, abs=1e-5)
    assert cut.corrupted_value == pytest.approx(full.corrupted_value, abs=1e-5)


def test_by_position_batches_and_chosen_edges_agree(gpt2, unembedded):
    """Per-position scores, prompt batches (each its slice of the per-example positions) and a few exact
    edges at every position (several copies per pass: the cut repeats the positions copy by copy)."""
    model, clean, corrupted, metric = gpt2
    for kwargs in ({"by": "position"}, {"batch_size": 2}, {"method": "eap-ig", "steps": 2, "batch_size": 2}):
        cut, rows = unembedded(model, lambda kw=kwargs: edge_attribution(model, clean, corrupted, metric, **kw))
        whole = {k: v for k, v in kwargs.items() if k != "batch_size"}  # batch means weighted: the same scores
        full = edge_attribution(model, clean, corrupted, _plain(metric), **whole)
        assert all(p == 1 for _, p in rows)
        torch.testing.assert_close(cut.effect, full.effect, atol=1e-5, rtol=1e-4)
    names = cut.top(3).edge.tolist()
    cut, rows = unembedded(model, lambda: edge_attribution(model, clean, corrupted, metric, method="exact",
                                                            by="position", edges=names, max_rows=12))
    full = edge_attribution(model, clean, corrupted, _plain(metric), method="exact", by="position", edges=names,
                            max_rows=12)
    assert all(p == 1 for _, p in rows) and max(r for r, _ in rows) == 12  # four copies of three prompts
    torch.testing.assert_close(cut.effect, full.effect, atol=1e-5, rtol=1e-4, equal_nan=True)


@pytest.mark.parametrize("name", ["gpt2", "induction"])
def test_faithfulness_and_mib_scores_unembed_only_the_read_positions(request, name, unembedded):
    model, clean, corrupted, metric = request.getfixturevalue(name)
    res = edge_attribution(model, clean, corrupted, metric)
    circuit = res.circuit(fraction=0.3)
    f_cut, rows = unembedded(model, lambda: circuit_faithfulness(model, clean, corrupted, metric, circuit))
    f_full, rows_full = unembedded(model, lambda: circuit_faithfulness(model, clean, corrupted, _plain(metric),
                                                                        circuit))
    assert rows and all(p == 1 for _, p in rows) and all(p == clean.shape[1] for _, p in rows_full)
    assert len(rows) == len(rows_full) == 4  # clean, corrupted, the circuit, the empty circuit
    assert f_cut == pytest.approx(f_full, abs=1e-5)
    for ablation in ("patching", "mean"):
        c_cut, rows = unembedded(model, lambda a=ablation: mib_scores(model, clean, corrupted, metric, res,
                                                                       ablation=a))
        c_full = mib_scores(model, clean, corrupted, _plain(metric), res, ablation=ablation)
        assert all(p == 1 for _, p in rows)
        assert c_cut.faithfulness == pytest.approx(c_full.faithfulness, abs=1e-5)
        assert c_cut.cpr == pytest.approx(c_full.cpr, abs=1e-6)
