"""Patching on the zoo models: the four attribution methods through one loop (one signature, one result
type), equality with transformer_lens.patching, the planted induction circuit, and RelP rules on a real
Llama-architecture model (SmolLM2-135M, marked slow)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import interp
import patching
from patching import datasets
from patching.relp import relp_rules


@pytest.fixture(scope="module")
def induction():
    model, _ = interp.models.load("induction-2l")
    return model


@pytest.fixture(scope="module")
def smollm2():
    model, _ = interp.models.load("smollm2-135m")
    return model


def test_induction_circuit_is_found_by_activation_patching(induction):
    from interp.models.induction import induction_head_scores

    scores = induction_head_scores(induction)
    key = datasets.induction_pairs(32, seed=1, corrupt="key")
    value = datasets.induction_pairs(32, seed=1, corrupt="value")
    by_key = patching.activation_patching(induction, key.clean, key.corrupted, key.metric(), "heads").normalized()
    by_value = patching.activation_patching(induction, value.clean, value.corrupted, value.metric(),
                                            "heads").normalized()
    # layer 0: only the previous-token head matters, and only when the key (previous token) is corrupted
    prev_head = int(scores.previous_token[0].argmax())
    assert int(by_key[0].argmax()) == prev_head
    assert by_key[0, prev_head] > 0.1
    assert by_key[0].abs().sort().values[-2] < 0.05
    assert by_value[0].abs().max() < 0.05
    # layer 1: the induction heads carry the effect under both corruptions; together most of it
    induction_heads = scores.induction[1] > 0.3
    assert induction_heads.any()
    for effects in (by_key, by_value):
        assert (effects[1][induction_heads] > 0.1).all()
        assert effects[1][induction_heads].sum() > 0.5


@pytest.mark.parametrize("kind", ["resid_pre", "attn_out", "z"])
def test_induction_matches_transformer_lens(induction, kind):
    import transformer_lens.patching as tlp

    pairs = datasets.induction_pairs(8, seed=2)
    metric = pairs.metric()
    _, cache = induction.run_with_cache(pairs.clean)
    fn = {"resid_pre": tlp.get_act_patch_resid_pre, "attn_out": tlp.get_act_patch_attn_out,
          "z": tlp.get_act_patch_attn_head_out_all_pos}[kind]
    reference = fn(induction, pairs.corrupted, cache, metric)
    ours = patching.activation_patching(induction, pairs.clean, pairs.corrupted, metric, kind)
    torch.testing.assert_close(ours.values, reference.double(), atol=1e-4, rtol=0)


@pytest.mark.slow
def test_smollm2_matches_transformer_lens_on_selected_cells(smollm2):
    """TL's generic_activation_patch with an explicit index_df (a full 30-layer sweep is too slow for CI)."""
    import transformer_lens.patching as tlp

    pairs = datasets.ioi_pairs(smollm2, 2, templates=datasets.IOI_TEMPLATES[:1])[0]
    metric = pairs.metric()
    first = pairs.first_difference()
    _, cache = smollm2.run_with_cache(pairs.clean)
    layers, positions = [0, 29], [first, pairs.clean.shape[1] - 1]
    cells = pd.DataFrame([(layer, pos) for layer in layers for pos in positions], columns=["layer", "pos"])
    for kind in ("resid_pre",):
        reference = tlp.generic_activation_patch(smollm2, pairs.corrupted, cache, metric, tlp.layer_pos_patch_setter,
                                                 kind, index_df=cells)
        ours = patching.activation_patching(smollm2, pairs.clean, pairs.corrupted, metric, kind, layers=layers,
                                            index={"pos": positions})
        assert ours.extra[kind]["shared_prefix"] == first  # the KV-cache path was used and checked
        assert ours.extra[kind]["blocks_replayed"] == 29 * 2  # layer-29 patches did not recompute blocks 0-28
        torch.testing.assert_close(ours.values.reshape(-1), reference.double(), atol=1e-4, rtol=0)
    heads = pd.DataFrame([(20, h) for h in (0, 5)], columns=["layer", "head_index"])
    reference = tlp.generic_activation_patch(smollm2, pairs.corrupted, cache, metric,
                                             tlp.layer_head_vector_patch_setter, "z", index_df=heads)
    ours = patching.activation_patching(smollm2, pairs.clean, pairs.corrupted, metric, "z", layers=[20],
                                        index={"head": [0, 5]})
    torch.testing.assert_close(ours.values.reshape(-1), reference.double(), atol=1e-4, rtol=0)
    plain = patching.activation_patching(smollm2, pairs.clean, pairs.corrupted, metric, "z", layers=[20],
                                         index={"head": [0, 5]}, replay_blocks=False, reuse_prefix=False)
    assert plain.extra["z"]["blocks_replayed"] == 0 and ours.extra["z"]["blocks_replayed"] == 20 * 2
    torch.testing.assert_close(ours.values, plain.values, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_smollm2_relp_rules_keep_logits_and_change_gradients(smollm2):
    pairs = datasets.ioi_pairs(smollm2, 1, templates=datasets.IOI_TEMPLATES[:1])[0]
    with torch.no_grad():
        base = smollm2(pairs.clean)
        with relp_rules(smollm2, {"attention": True}):
            ruled = smollm2(pairs.clean)
    assert torch.equal(base, ruled)
    scores = patching.relevance_patching(smollm2, pairs.clean, pairs.corrupted, pairs.metric(), ["mlp_out"])
    plain = patching.attribution_patching(smollm2, pairs.clean, pairs.corrupted, pairs.metric(), ["mlp_out"])
    assert scores["mlp_out"].values.shape == (30, pairs.clean.shape[1])
    assert not torch.allclose(scores["mlp_out"].values, plain["mlp_out"].values)


def _four_methods(model, pairs, sites, tl_reference, **kwargs):
    """Run all four attribution methods through one loop: same call, same result type, same cells."""
    results = {}
    for name, method in patching.METHODS.items():
        extra = {"steps": 4} if name == "ig" else {}
        res = method(model, pairs.clean, pairs.corrupted, pairs.metric(), sites=sites, **kwargs, **extra)
        assert isinstance(res, patching.AttributionResult) and res.method == name and res.sites == list(sites)
        assert res.clean_value == pytest.approx(results["activation"].clean_value if results else res.clean_value)
        results[name] = res
    truth = results["activation"]
    for site, reference in tl_reference.items():
        torch.testing.assert_close(truth[site].values.reshape(-1), reference.double().reshape(-1), atol=1e-4, rtol=0)
    for res in results.values():
        frame = res.to_frame()
        assert set(frame["site"]) == set(sites) and np.isfinite(frame["effect"]).all()
        for site in sites:
            assert res[site].effect.shape == truth[site].effect.shape
    return results


def test_four_methods_one_contract_induction(induction):
    import transformer_lens.patching as tlp

    pairs = datasets.induction_pairs(8, seed=2)
    _, cache = induction.run_with_cache(pairs.clean)
    reference = {"resid_pre": tlp.get_act_patch_resid_pre(induction, pairs.corrupted, cache, pairs.metric()),
                 "heads": tlp.get_act_patch_attn_head_out_all_pos(induction, pairs.corrupted, cache, pairs.metric())}
    results = _four_methods(induction, pairs, ["resid_pre", "heads"], reference)
    for name in ("atp", "relp", "ig"):  # every estimate tracks the measured effect
        r = np.corrcoef(results[name]["resid_pre"].effect.flatten(), results["activation"]["resid_pre"].effect.flatten())
        assert r[0, 1] > 0.8, (name, r[0, 1])


@pytest.mark.slow
def test_four_methods_one_contract_smollm2(smollm2):
    import transformer_lens.patching as tlp

    pairs = datasets.ioi_pairs(smollm2, 2, templates=datasets.IOI_TEMPLATES[:1])[0]
    _, cache = smollm2.run_with_cache(pairs.clean)
    layers, positions = [0, 29], [pairs.first_difference(), pairs.clean.shape[1] - 1]
    cells = pd.DataFrame([(layer, pos) for layer in layers for pos in positions], columns=["layer", "pos"])
    reference = {"resid_pre": tlp.generic_activation_patch(smollm2, pairs.corrupted, cache, pairs.metric(),
                                                           tlp.layer_pos_patch_setter, "resid_pre", index_df=cells)}
    results = _four_methods(smollm2, pairs, ["resid_pre", "mlp_post"], reference, layers=layers,
                            index={"pos": positions, "neuron": list(range(0, 1536, 96))})
    assert results["relp"].extra["rules"]["ln"] and results["relp"].extra["rules"]["half"]
