"""The vocabulary read-out on every family that builds offline, encoder-decoder refusals, meta-device models
(issue 18, item 6).

The reference is the untouched Hugging Face model's own logits: ``logit_lens`` of the last residual stream must
equal them on Cohere (``logit_scale``), Granite (``logits_scaling``) and Gemma-2 (``final_logit_softcapping``).
"""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from torch import nn

import interp
import patching
from interp import engine
from interp.errors import ConfigError, InputTypeError, SiteError
from interp.label.vocab import logit_lens, vocab_projection

_GQA = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
            max_position_embeddings=64, initializer_range=0.2)
FAMILIES = {
    "cohere": ("CohereConfig", "CohereForCausalLM", dict(_GQA, logit_scale=0.5, pad_token_id=0, bos_token_id=1,
                                                          eos_token_id=2)),
    "granite": ("GraniteConfig", "GraniteForCausalLM", dict(_GQA, logits_scaling=4.0, residual_multiplier=0.7,
                                                            embedding_multiplier=2.0)),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", dict(_GQA, head_dim=8, sliding_window=16,
                                                         final_logit_softcapping=3.0)),
    "t5": ("T5Config", "T5ForConditionalGeneration", dict(num_layers=2, d_model=32, d_kv=8, num_heads=4, d_ff=64,
                                                          decoder_start_token_id=0)),
    "bart": ("BartConfig", "BartForConditionalGeneration",
             dict(encoder_layers=2, decoder_layers=2, d_model=32, encoder_attention_heads=4, decoder_attention_heads=4,
                  encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64)),
}
TOKENS = torch.tensor([[1, 5, 9, 17, 33, 40], [1, 7, 9, 21, 33, 41]])


@functools.cache
def build(name: str):
    """(bridge, untouched Hugging Face copy) of :data:`FAMILIES` (built once; do not edit weights)."""
    import transformers
    from conformance.conftest import _perturb, word_tokenizer

    config_class, model_class, config = FAMILIES[name]
    torch.manual_seed(0)
    hf = getattr(transformers, model_class)(getattr(transformers, config_class)(vocab_size=128, **config)).eval()
    _perturb(hf, 0)
    reference = copy.deepcopy(hf)
    model, _ = interp.models.load(hf, tokenizer=word_tokenizer())
    return model, reference


@pytest.mark.parametrize("name, transform", [("cohere", [("logit_scale", "multiply", 0.5)]),
                                             ("granite", [("logits_scaling", "divide", 4.0)]),
                                             ("gemma2", [("final_logit_softcapping", "softcap", 3.0)])])
def test_readout_equals_the_models_own_logits(name, transform):
    """Before: Cohere and Granite raised 'cannot reproduce the logits'."""
    from interp.label.vocab import logit_transform

    model, reference = build(name)
    assert logit_transform(model) == transform
    last = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    resid = engine.record(model, TOKENS, [last]).acts[last]
    with torch.no_grad():
        expected = reference(TOKENS).logits
    got = logit_lens(model, resid.reshape(-1, resid.shape[-1])).reshape(expected.shape)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert vocab_projection(model, 0, "out", units=[0, 1], k=3).top_ids.shape == (2, 3)


def test_an_unknown_readout_names_the_class():
    """A logit factor the config does not describe (here: the module's own differs from its config) is refused,
    naming the wrapped class, instead of a wrong projection."""
    model, _ = build("cohere")
    model = copy.deepcopy(model)
    model.original_model.config.logit_scale = 0.25  # the module still multiplies by 0.5
    with pytest.raises(InputTypeError, match=r"CohereForCausalLM\.forward computes its logits differently"):
        vocab_projection(model, 0, "out", units=[0], k=3)


@pytest.mark.parametrize("name", ["t5", "bart"])
def test_encoder_decoder_models_say_what_works(name):
    """Before: site kinds raised about 'attention-only models' and the read-out said 'needs a TransformerBridge;
    got TransformerBridge'."""
    model, _ = build(name)
    assert engine.encoder_decoder_stacks(model) == ["encoder_blocks", "decoder_blocks"]
    with pytest.raises(SiteError, match="encoder-decoder") as info:
        patching.attribution_patching(model, TOKENS, TOKENS.flip(1), lambda out: out[:, -1, 3].mean(), sites="mlp_out")
    assert "attention-only" not in str(info.value) and "encoder_blocks.*.hook_resid_pre" in str(info.value)
    with pytest.raises(InputTypeError, match="encoder-decoder") as info:
        vocab_projection(model, 0)
    assert "no blocks" in str(info.value)
    # what the message names works: explicit hook names of both stacks, and layer_of reads them
    sites = ["encoder_blocks.*.hook_resid_pre", "decoder_blocks.*.hook_mlp_out"]
    res = patching.attribution_patching(model, TOKENS, TOKENS.flip(1), lambda out: out[:, -1, 3].mean(), sites=sites)
    assert set(res.grids) == set(sites)
    assert engine.layer_of("decoder_blocks.1.hook_mlp_out") == 1


def test_meta_device_models_are_refused_at_load():
    with torch.device("meta"):
        net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(ConfigError, match="meta device.*to_empty"):
        interp.models.load(net)
    import transformers

    with torch.device("meta"):
        hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64))
    with pytest.raises(ConfigError, match="meta device"):
        interp.models.load(hf, tokenizer=object())


@pytest.mark.parametrize("name", ["cohere", "granite", "gemma2"])
def test_relp_conserves_relevance_through_the_readout(name):
    """Scalar logit factors are linear; Gemma-2's final soft cap takes the Identity rule (before: not covered)."""
    from patching.conservation import relevance_conservation

    model, _ = build(name)
    res = relevance_conservation(model, TOKENS, lambda logits: (logits[:, -1, 9] - logits[:, -1, 10]).mean())
    assert res.relative_error <= 1e-4, (name, res.relative_error, res.rules)
    if name == "gemma2":
        assert any("soft cap" in site for site in res.rules["identity"])
