"""Vocabulary projection on every architecture equals the model's own read-out of the vector.

The reference is the forward pass itself: the vectors are written into the last block's output
(``hook_resid_post``) and the logits are whatever the model computes from there (final norm as the
model applies it, biases, BERT's MLM head, Gemma-2's soft cap). For Gemma-2 the read-out is also
written out by hand from the untouched Hugging Face copy's parameters (``1 + w`` RMSNorm).
"""

from __future__ import annotations

import pytest
import torch

from interp.label.vocab import logit_lens, mlp_experts, mlp_weights, unembedding, vocab_projection

from .checks import forward_readout
from .conftest import ARCHITECTURES, make_example


def _post_norm(model, layer, rows):
    post = getattr(model.blocks[layer], "ln2_post", None)
    if post is None:
        return rows
    with torch.no_grad():
        return post(rows[:, None])[:, 0]


def test_logit_lens_reproduces_the_logits(lm):
    ex = make_example(lm)
    site = f"blocks.{lm.info.n_layers - 1}.hook_resid_post"
    with torch.no_grad():
        logits, cache = lm.model.run_with_cache(ex.clean)
    got = logit_lens(lm.model, cache[site].reshape(-1, lm.model.cfg.d_model))
    torch.testing.assert_close(got, logits.reshape(-1, logits.shape[-1]).float(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("which", ["out", "in"])
def test_vocab_projection_equals_the_forward_pass(lm, which):
    units = list(range(0, mlp_weights(lm.model, 1)["out"].shape[0], 7))
    proj = vocab_projection(lm.model, 1, which, units=units, k=5, final_norm=True)  # the model's own read-out
    rows = mlp_weights(lm.model, 1)[which][units]
    vectors = _post_norm(lm.model, 1, rows) if which == "out" else rows
    reference = forward_readout(lm.model, vectors)
    top = reference.topk(5, dim=1)
    torch.testing.assert_close(torch.as_tensor(proj.top_logits), top.values, atol=1e-5, rtol=1e-5)
    assert (torch.as_tensor(proj.top_ids) == top.indices).float().mean() > 0.95  # ties aside
    torch.testing.assert_close(torch.as_tensor(proj.top_prob), reference.softmax(1).max(1).values, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(torch.as_tensor(proj.mean), reference.mean(1), atol=1e-5, rtol=1e-5)


def test_gemma2_projection_is_the_hand_written_readout(built):
    """Gemma-2: x -> RMSNorm with (1 + w) (post-MLP norm, then final norm) -> lm_head -> soft cap, by hand."""
    b = built("gemma2")
    hf = b.info.reference
    cfg = hf.config

    def rms(x, w):
        return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + cfg.rms_norm_eps) * (1.0 + w)

    layer = 1
    rows = hf.model.layers[layer].mlp.down_proj.weight.T.detach()  # (d_mlp, d_model): W_out rows
    x = rms(rows, hf.model.layers[layer].post_feedforward_layernorm.weight.detach())
    logits = rms(x, hf.model.norm.weight.detach()) @ hf.lm_head.weight.detach().T
    logits = cfg.final_logit_softcapping * torch.tanh(logits / cfg.final_logit_softcapping)
    proj = vocab_projection(b.model, layer, "out", k=8)
    torch.testing.assert_close(torch.as_tensor(proj.top_logits), logits.topk(8, dim=1).values, atol=1e-5, rtol=0)
    # what the old projection did (W_U scaled by w, no 1 + w, no normalisation) is far off
    old = rows @ (hf.lm_head.weight.detach().T * hf.model.norm.weight.detach()[:, None])
    assert (old.topk(8, dim=1).values - logits.topk(8, dim=1).values).abs().max() > 0.1


def test_untouched_gemma_is_not_all_zero():
    """An untouched Gemma checkpoint stores RMSNorm weights as 0 (applied as 1 + 0): projections are not zero."""
    b = ARCHITECTURES["gemma2"]("gemma2", perturb=False)
    assert float(b.model.ln_final.w.abs().max()) == 0.0
    proj = vocab_projection(b.model, 0, "out", units=range(8), k=3)
    assert (abs(proj.top_logits) > 1e-2).all()
    torch.testing.assert_close(unembedding(b.model), b.model.W_U.detach().float())  # gain 1 + 0
    vectors = _post_norm(b.model, 0, mlp_weights(b.model, 0)["out"][:8])
    torch.testing.assert_close(torch.as_tensor(proj.top_logits), forward_readout(b.model, vectors).topk(3, 1).values,
                               atol=1e-5, rtol=1e-5)


def test_layernorm_readout_centres_and_adds_biases(built):
    """GPT-2: LN(x) = (x - mean) / std * w + b, then W_U; the gain-only map is a different (wrong) projection."""
    b = built("gpt2")
    hf = b.info.reference
    ln = hf.transformer.ln_f
    rows = hf.transformer.h[1].mlp.c_proj.weight.detach()  # Conv1D: (d_mlp, d_model) = W_out rows
    centred = rows - rows.mean(-1, keepdim=True)
    normed = centred / torch.sqrt(centred.pow(2).mean(-1, keepdim=True) + ln.eps) * ln.weight + ln.bias
    logits = normed.detach() @ hf.lm_head.weight.detach().T
    proj = vocab_projection(b.model, 1, "out", k=6)
    torch.testing.assert_close(torch.as_tensor(proj.top_logits), logits.topk(6, dim=1).values, atol=1e-5, rtol=0)
    gain_only = rows @ unembedding(b.model)
    assert (gain_only.topk(6, 1).indices != logits.topk(6, 1).indices).any()


def test_unembedding_bias_is_applied(built):
    """Phi has an lm_head bias (b_U): logit_lens adds it, with and without the final norm."""
    b = built("phi")
    b_U = b.model.b_U.detach().float()
    assert float(b_U.abs().max()) > 0.05
    v = torch.randn(3, b.model.cfg.d_model, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(logit_lens(b.model, v, final_norm=False), v @ b.model.W_U.detach().float() + b_U)
    torch.testing.assert_close(logit_lens(b.model, v), forward_readout(b.model, v), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["mixtral", "qwen2-moe"])
def test_moe_weight_rows_are_each_experts_neurons(built, name):
    """Stacked expert rows reproduce every expert's own forward pass (and the shared expert's)."""
    b = built(name)
    hf_block = b.info.reference.model.layers[0].mlp
    weights, experts = mlp_weights(b.model, 0), mlp_experts(b.model, 0)
    assert experts is not None and len(experts) == weights["out"].shape[0]
    x = torch.randn(5, b.model.cfg.d_model, generator=torch.Generator().manual_seed(1))
    act = torch.nn.functional.silu
    for e in sorted(set(experts.tolist())):
        rows = torch.as_tensor(experts == e)
        ours = (act(x @ weights["gate"][rows].T) * (x @ weights["in"][rows].T)) @ weights["out"][rows]
        with torch.no_grad():
            if e < 0:
                theirs = hf_block.shared_expert(x)
            else:
                index = torch.full((5, 1), e, dtype=torch.long)
                theirs = hf_block.experts(x, index, torch.ones(5, 1))
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    proj = vocab_projection(b.model, 0, "out", k=3)
    assert list(proj.expert) == experts.tolist() and "expert" in proj.to_frame()


def test_directions_in_mlp_space_go_through_w_out(built):
    b = built("llama-gqa")
    d = torch.randn(3, mlp_weights(b.model, 1)["out"].shape[0], generator=torch.Generator().manual_seed(2))
    proj = vocab_projection(b.model, 1, directions=d, k=4)
    unit = torch.nn.functional.normalize(d, dim=1)
    reference = forward_readout(b.model, unit @ mlp_weights(b.model, 1)["out"])
    torch.testing.assert_close(torch.as_tensor(proj.top_logits), reference.topk(4, 1).values, atol=1e-5, rtol=1e-5)
    frame = proj.tokens()
    assert set(frame.columns) >= {"unit", "side", "rank", "token_id", "token", "logit"} and len(frame) == 3 * 2 * 4
    with pytest.raises(Exception, match="mixture-of-experts"):
        vocab_projection(built("mixtral").model, 0, directions=torch.randn(2, 32))


def test_input_side_decodes_through_the_lm_head_alone_by_default(lm):
    """Davies et al.: W_up rows decoded with the LM head (``u @ W_U + b_U``), no final norm, unless asked."""
    units = list(range(0, mlp_weights(lm.model, 1)["in"].shape[0], 7))
    proj = vocab_projection(lm.model, 1, "in", units=units, k=5)
    rows = mlp_weights(lm.model, 1)["in"][units].float()
    reference = rows @ lm.model.W_U.detach().float()
    if isinstance(getattr(lm.model, "b_U", None), torch.Tensor):
        reference = reference + lm.model.b_U.detach().float()
    torch.testing.assert_close(torch.as_tensor(proj.top_logits), reference.topk(5, dim=1).values, atol=1e-4, rtol=1e-4)
