"""Bridges whose layout the engine used to read wrongly (issue 18: never a silent wrong number on any model).

* GPT-1's post-LN ``Block`` returns a *list*, so TransformerLens never ran ``blocks.{L}.hook_resid_post``:
  the site was listed, reads were empty and edits were lost. ``engine.repair_block_outputs`` makes it fire.
* Gemma-4's per-layer config refuses ``config.head_dim`` (head_dim 8 on sliding layers, 512 on full ones):
  the per-head views read the value of each layer.
* The MLP's neurons are as many as its output projection reads, not TransformerLens's ``cfg.d_mlp`` (twice that
  on OPT), in decoder-only and encoder-decoder stacks; a fused ``[gate, up]`` ``hook_pre`` (ModernBERT-decoder, 2 x d_mlp) is refused by name.
"""

from __future__ import annotations

import functools
import warnings

import pytest
import torch

import interp
from interp import engine
from interp.errors import SiteError
from tests.conformance.families import build

TOKENS = torch.tensor([[1, 5, 6, 7, 8, 9, 10]])


@functools.cache
def _model(name: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build(name).model


def test_gpt1_resid_post_fires_and_is_the_block_output():
    model = _model("openaigpt")
    logits, cache = model.run_with_cache(TOKENS)  # TransformerLens itself sees the site now
    post0, post1 = cache["blocks.0.hook_resid_post"], cache["blocks.1.hook_resid_post"]
    torch.testing.assert_close(post0, cache["blocks.1.hook_resid_pre"])  # what the next block reads
    torch.testing.assert_close(post1, cache["blocks.1.ln2.hook_out"])  # post-LN: the block ends in ln_2
    torch.testing.assert_close(model.unembed(post1), logits)  # GPT-1 has no final norm
    acts = interp.capture(model, TOKENS, ["blocks.1.hook_resid_post"], progress=False)
    torch.testing.assert_close(acts["blocks.1.hook_resid_post"].data, post1)
    zeroed = engine.run(model, TOKENS, hooks=[engine.Hook("blocks.1.hook_resid_post", torch.zeros_like)])
    torch.testing.assert_close(zeroed, model.unembed(torch.zeros_like(post1)))  # the edit reaches the logits
    assert engine.repair_block_outputs(model) is model  # idempotent: one hook per block
    assert sum(len(b._forward_hooks) for b in model.blocks) == len(model.blocks)


def test_gemma4_per_layer_head_dim():
    model = _model("gemma4text")
    hf = model.original_model.config
    assert [engine.views.layer_config(hf, layer).head_dim for layer in (0, 1)] == [8, 512]
    assert engine.views.head_expectations(model, 1)["q"] == (4, 512)
    assert engine.views.head_expectations(model)["q"] == (4, None)  # no single value: read off the probe
    acts = interp.capture(model, TOKENS, ["blocks.0.attn.hook_q", "blocks.1.attn.hook_k"], progress=False)
    assert acts["blocks.0.attn.hook_q"].data.shape == (1, 7, 4, 8)
    assert acts["blocks.1.attn.hook_k"].data.shape == (1, 7, 2, 512)


def test_mlp_width_from_weights_not_the_config():
    opt = _model("opt")
    assert opt.cfg.d_mlp == 128 and engine.sites.mlp_width(opt, 0) == 64  # fc2 reads 64 neurons
    acts = interp.capture(opt, TOKENS, ["blocks.0.mlp.hook_pre"], progress=False)
    assert acts["blocks.0.mlp.hook_pre"].data.shape[-1] == 64
    bart = _model("bart")  # an encoder-decoder: the MLP is found by the hook's own module, not blocks.{L}
    for site in ("encoder_blocks.0.mlp.hook_pre", "decoder_blocks.1.mlp.hook_post"):
        assert interp.capture(bart, TOKENS, [site], progress=False)[site].data.shape[-1] == 64
    fused = _model("modernbertdecoder")  # Wi: [gate, up], 2 x 64 wide; Wo reads 64
    assert engine.sites.mlp_width(fused, 0) == 64
    with pytest.raises(SiteError, match=r"d_mlp = 64 .*fused \[gate, up\]"):
        interp.capture(fused, TOKENS, ["blocks.0.mlp.hook_pre"], progress=False)
    assert interp.capture(fused, TOKENS, ["blocks.0.mlp.hook_post"], progress=False)[
        "blocks.0.mlp.hook_post"].data.shape[-1] == 64
