"""Activation patching on every architecture equals ``transformer_lens.patching`` (bridges) or a hand-made
forward-hook patch (plain modules), to 1e-4."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

import patching
from interp import engine
from interp.errors import SiteError

from .conftest import make_example

# our site kind -> (TL function name, TL activation name for generic patches)
TL_SWEEPS = {
    "resid_pre": "get_act_patch_resid_pre",
    "resid_mid": "get_act_patch_resid_mid",
    "attn_out": "get_act_patch_attn_out",
    "mlp_out": "get_act_patch_mlp_out",
    "z": "get_act_patch_attn_head_out_all_pos",
    "q": "get_act_patch_attn_head_q_all_pos",
    "k": "get_act_patch_attn_head_k_all_pos",
    "v": "get_act_patch_attn_head_v_all_pos",
    "pattern": "get_act_patch_attn_head_pattern_all_pos",
}


def _clean_cache(b, clean):
    with torch.no_grad():
        _, cache = b.model.run_with_cache(clean)
    return cache


@pytest.mark.parametrize("kind", list(TL_SWEEPS))
def test_activation_patching_equals_transformer_lens(lm, kind, request):
    import transformer_lens.patching as tlp

    if kind not in lm.info.sites:
        pytest.skip(f"{lm.info.name} has no {kind} (parallel attention and MLP)")
    ex = make_example(lm)
    if not all(engine.edits_reach(lm.model, site, ex.clean[:1]) for site in lm.info.sites[kind]):
        # the model says edits there never reach the forward pass (BERT's hook_pattern): TL's sweep is a silent
        # no-op; ours must refuse by name
        with pytest.raises(SiteError, match="do not reach"):
            patching.activation_patching(lm.model, ex.clean, ex.corrupted, ex.metric, kind)
        return
    reference = getattr(tlp, TL_SWEEPS[kind])(lm.model, ex.corrupted, _clean_cache(lm, ex.clean), ex.metric)
    ours = patching.activation_patching(lm.model, ex.clean, ex.corrupted, ex.metric, kind)
    assert ours.values.shape == reference.shape
    torch.testing.assert_close(ours.values, reference.double(), atol=1e-4, rtol=0)
    assert float(reference.std()) > 1e-3  # the sweep is not flat: the comparison can fail


def _neuron_setter(corrupted, index, clean):
    corrupted[..., index[1]] = clean[..., index[1]]
    return corrupted


@pytest.mark.parametrize("kind", ["mlp_pre", "mlp_post"])
def test_neuron_patching_equals_transformer_lens_generic_patch(lm, kind):
    """Per-neuron patches at mlp.hook_pre / hook_post; refused on MoE blocks (there they are the block's d_model
    input and output, not neurons)."""
    import transformer_lens.patching as tlp

    ex = make_example(lm)
    if lm.info.moe:
        with pytest.raises(SiteError, match="mixture of experts"):
            patching.activation_patching(lm.model, ex.clean, ex.corrupted, ex.metric, kind)
        return
    cache = _clean_cache(lm, ex.clean)
    width = cache[lm.info.sites[kind][0]].shape[-1]
    assert width == lm.model.cfg.d_mlp
    units = [0, 3, width // 2, width - 1]
    cells = pd.DataFrame([(layer, u) for layer in range(lm.info.n_layers) for u in units], columns=["layer", "unit"])
    reference = tlp.generic_activation_patch(lm.model, ex.corrupted, cache, ex.metric, _neuron_setter,
                                             {"mlp_pre": "pre", "mlp_post": "post"}[kind], index_df=cells)
    ours = patching.activation_patching(lm.model, ex.clean, ex.corrupted, ex.metric, kind, index={"neuron": units})
    torch.testing.assert_close(ours.values.reshape(-1), reference.double(), atol=1e-4, rtol=0)


def test_module_patching_equals_a_forward_hook_patch(module):
    """Plain modules: patching a whole site equals replacing that module's output by its clean output."""
    ex = make_example(module)
    names = [name for kind in module.info.sites.values() for name in kind]
    result = patching.activation_patching(module.model, ex.clean, ex.corrupted, ex.metric, names, by=())
    ours = torch.cat([result[name].values.reshape(-1) for name in names])
    modules = dict(module.model.named_modules())
    expected = []
    for name in names:
        seen: dict[str, torch.Tensor] = {}
        handle = modules[name].register_forward_hook(
            lambda m, a, out, seen=seen: seen.__setitem__("clean", out.detach().clone()))
        with torch.no_grad():
            module.model(ex.clean)
        handle.remove()
        handle = modules[name].register_forward_hook(lambda m, a, out, seen=seen: seen["clean"])
        with torch.no_grad():
            expected.append(float(ex.metric(module.model(ex.corrupted))))
        handle.remove()
    torch.testing.assert_close(ours, torch.tensor(expected, dtype=torch.float64), atol=1e-4, rtol=0)
    if module.info.name == "cnn":  # a sequential net: every site is a bottleneck, patching it restores the clean run
        with torch.no_grad():
            clean_value = float(ex.metric(module.model(ex.clean)))
        assert ours.sub(clean_value).abs().max() < 1e-5 and abs(clean_value - result.corrupted_value) > 1e-2
    else:
        assert torch.tensor(expected).std() > 1e-3


def test_vit_token_patching_equals_a_forward_hook_patch(built):
    """ViT residual stream per token: patching token t of blocks.0 equals a hand-made patch of that token."""
    b = built("vit")
    ex = make_example(b)
    ours = patching.activation_patching(b.model, ex.clean, ex.corrupted, ex.metric, ["blocks.0"], by=("pos",))
    block = b.model.blocks[0]
    seen = {}
    handle = block.register_forward_hook(lambda m, a, out: seen.__setitem__("clean", out.detach().clone()))
    with torch.no_grad():
        b.model(ex.clean)
    handle.remove()
    expected = []
    for t in range(seen["clean"].shape[1]):
        def patch(m, a, out, t=t):
            out = out.clone()
            out[:, t] = seen["clean"][:, t]
            return out

        handle = block.register_forward_hook(patch)
        with torch.no_grad():
            expected.append(float(ex.metric(b.model(ex.corrupted))))
        handle.remove()
    torch.testing.assert_close(ours.values.reshape(-1), torch.tensor(expected, dtype=torch.float64), atol=1e-4, rtol=0)


def test_cnn_channel_patching_equals_a_forward_hook_patch(built):
    """Conv feature maps: ``by=("unit",)`` patches one channel (axis 1) at a time."""
    b = built("cnn")
    ex = make_example(b)
    ours = patching.activation_patching(b.model, ex.clean, ex.corrupted, ex.metric, ["features.2"], by=("unit",))
    relu = dict(b.model.named_modules())["features.2"]
    seen = {}
    handle = relu.register_forward_hook(lambda m, a, out: seen.__setitem__("clean", out.detach().clone()))
    with torch.no_grad():
        b.model(ex.clean)
    handle.remove()
    expected = []
    for c in range(seen["clean"].shape[1]):
        def patch(m, a, out, c=c):
            out = out.clone()
            out[:, c] = seen["clean"][:, c]
            return out

        handle = relu.register_forward_hook(patch)
        with torch.no_grad():
            expected.append(float(ex.metric(b.model(ex.corrupted))))
        handle.remove()
    torch.testing.assert_close(ours.values.reshape(-1), torch.tensor(expected, dtype=torch.float64), atol=1e-4, rtol=0)
    assert torch.tensor(expected).std() > 1e-3
