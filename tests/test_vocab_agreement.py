"""Davies (arXiv 2501.02688): up-projection rows decoded with the LM head, and top-token agreement of two models.

Reference: the paper's decoding written out here (``softmax(u_i @ W_U)``: the LM head alone, as its abstract and
Fig. 1 describe it; no code was published) and the agreement rate counted by hand.
"""

from __future__ import annotations

import pytest
import torch

from interp import DimensionError
from interp.label import vocab_projection
from interp.label.vocab_agreement import top_token_agreement


def _bridge(seed=0, d_vocab=64):
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    return TransformerBridge.boot_native(TransformerBridgeConfig(
        d_model=32, n_layers=2, n_heads=2, d_head=16, n_ctx=32, d_vocab=d_vocab, d_mlp=64, act_fn="gelu",
        normalization_type="LN", seed=seed))


def test_up_projection_rows_decode_through_the_lm_head_and_agreement_counts_same_top_tokens():
    a, b = _bridge(0), _bridge(0)
    W_U, b_U = a.W_U.detach(), a.b_U.detach()
    proj = vocab_projection(a, 1, "in", k=2)
    rows = a.blocks[1].mlp.W_in.detach().T           # (d_mlp, d_model): u_i
    expected = (rows @ W_U + b_U).topk(2, dim=1).indices
    assert proj.top_ids.tolist() == expected.tolist()  # the default for "in": the LM head alone
    assert top_token_agreement(a, b).rate == 1.0
    with torch.no_grad():                             # replace half of layer 1's up-projection rows
        gen = torch.Generator().manual_seed(1)
        b.blocks[1].mlp.W_in[:, :32] = torch.randn(32, 32, generator=gen)
    res = top_token_agreement(a, b, layer=[0, 1])
    new = (b.blocks[1].mlp.W_in.detach().T @ W_U + b_U).argmax(1)
    same = (new == expected[:, 0]).float().mean().item()
    frame = res.to_frame().set_index("layer")
    assert frame.loc[0, "agreement"] == 1.0 and frame.loc[1, "agreement"] == pytest.approx(same)
    assert 0.5 <= same < 1.0 and "Top-token agreement" in res.summary() and len(res.plot().data) == 1
    # with the model's own read-out (final LayerNorm) the decoded tokens can differ
    normed = top_token_agreement(a, b, layer=1, final_norm=True)
    assert normed.units.token_a.tolist() == vocab_projection(a, 1, "in", k=1, final_norm=True).top_ids[:, 0].tolist()
    with pytest.raises(DimensionError, match="d_vocab"):
        top_token_agreement(a, _bridge(0, d_vocab=50))
