"""Capture without needless copies (issue 23): one batch kept as is, several written into one buffer per site,
and no two results sharing memory."""

from __future__ import annotations

import torch

import interp

SITES = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_pre", "blocks.1.mlp.hook_post"]


def test_batches_give_the_values_of_one_batch_and_no_result_aliases_another(tiny_bridge):
    tokens = torch.randint(0, 50, (7, 9), generator=torch.Generator().manual_seed(0))
    one = interp.capture(tiny_bridge, tokens, SITES, batch_size=16, progress=False, keep_outputs=True)
    many = interp.capture(tiny_bridge, tokens, SITES, batch_size=3, progress=False, keep_outputs=True)
    for site in SITES:
        torch.testing.assert_close(many[site].data, one[site].data)
        assert many[site].data.is_contiguous() and one[site].data.is_contiguous()
    torch.testing.assert_close(many.outputs, one.outputs)
    # resid_post of block 0 is resid_pre of block 1 (one tensor in the model): each result owns its memory
    for result in (one, many):
        tensors = [result[s].data for s in SITES] + [result.outputs]
        ptrs = {t.untyped_storage().data_ptr() for t in tensors}
        assert len(ptrs) == len(tensors)
    pairs = zip(SITES, (one[s].data.clone() for s in SITES))
    one[SITES[0]].data.zero_()  # writing one result leaves the others alone
    for site, before in pairs:
        if site != SITES[0]:
            torch.testing.assert_close(one[site].data, before)


def test_token_rows_and_last_positions_over_batches(tiny_bridge):
    tokens = torch.randint(0, 50, (5, 6), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(5, 6, dtype=torch.long)
    mask[1, 4:] = 0
    for positions in ("tokens", "last"):
        one = interp.capture(tiny_bridge, tokens, SITES[2], batch_size=8, positions=positions, attention_mask=mask,
                             progress=False)
        many = interp.capture(tiny_bridge, tokens, SITES[2], batch_size=2, positions=positions, attention_mask=mask,
                              progress=False)
        torch.testing.assert_close(many.data, one.data)
        assert len(many.coords["sample"]) == (int(mask.sum()) if positions == "tokens" else 5)
