"""capture(): equality with run_with_cache / plain forward hooks, positions, padding, grads, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import interp


def test_bridge_capture_equals_run_with_cache(tiny_bridge):
    x = torch.randint(0, 50, (10, 12), generator=torch.Generator().manual_seed(0))
    _, cache = tiny_bridge.run_with_cache(x)
    got = interp.capture(tiny_bridge, x, ["blocks.*.mlp.hook_post", "blocks.1.attn.hook_z"], batch_size=3, progress=False)
    assert list(got) == ["blocks.0.mlp.hook_post", "blocks.1.mlp.hook_post", "blocks.1.attn.hook_z"]
    for site, acts in got.items():
        assert torch.equal(acts.data, cache[site]), site
    assert got["blocks.1.attn.hook_z"].dims == ("sample", "pos", "head", "unit")
    assert got["blocks.0.mlp.hook_post"].coord("name")[3] == "blocks.0.mlp.hook_post[3]"


def test_positions_last_mean_tokens_with_padding(tiny_bridge):
    x = torch.randint(0, 50, (6, 10), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(x)
    mask[2, 4:] = 0
    mask[5, 7:] = 0
    _, cache = tiny_bridge.run_with_cache(x)
    ref = cache["blocks.0.hook_resid_post"]
    last = interp.capture(tiny_bridge, x, "blocks.0.hook_resid_post", positions="last", attention_mask=mask, progress=False)
    assert torch.allclose(last.data[2], ref[2, 3], atol=1e-6) and torch.allclose(last.data[0], ref[0, 9], atol=1e-6)
    mean = interp.capture(tiny_bridge, x, "blocks.0.hook_resid_post", positions="mean", attention_mask=mask, progress=False)
    assert torch.allclose(mean.data[5], ref[5, :7].mean(0), atol=1e-5)
    tokens = interp.capture(tiny_bridge, x, "blocks.0.hook_resid_post", positions="tokens", attention_mask=mask, progress=False)
    assert tokens.shape[0] == int(mask.sum())
    row = np.flatnonzero((tokens.coord("sample_index") == 5) & (tokens.coord("pos") == 6))[0]
    assert torch.allclose(tokens.data[row], ref[5, 6], atol=1e-6)
    assert tokens.coord("token")[row] == x[5, 6]
    idx = interp.capture(tiny_bridge, x, "blocks.0.hook_resid_post", positions=torch.arange(6), progress=False)
    assert torch.allclose(idx.data[4], ref[4, 4], atol=1e-6)


def test_attention_pattern_layout(tiny_bridge):
    x = torch.randint(0, 50, (3, 8))
    _, cache = tiny_bridge.run_with_cache(x)
    pat = interp.capture(tiny_bridge, x, "blocks.1.attn.hook_pattern", progress=False)
    assert pat.dims == ("sample", "pos", "head", "key_pos")
    assert torch.equal(pat.data, cache["blocks.1.attn.hook_pattern"].permute(0, 2, 1, 3))


def test_grads_match_autograd(tiny_bridge):
    x = torch.randint(0, 50, (4, 8), generator=torch.Generator().manual_seed(2))

    def metric(out, batch):
        return out[:, -1, 3].sum()

    got = interp.capture(tiny_bridge, x, ["blocks.0.hook_resid_post"], grads=metric, batch_size=4, progress=False)
    store = {}

    def keep(value, hook):
        value.retain_grad()
        store["v"] = value
        return value

    with tiny_bridge.hooks(fwd_hooks=[("blocks.0.hook_resid_post", keep)]):
        metric(tiny_bridge(x), None).backward()
    tiny_bridge.zero_grad()
    assert torch.allclose(got.grads["blocks.0.hook_resid_post"].data, store["v"].grad, atol=1e-6)
    with pytest.raises(interp.DimensionError, match="scalar"):
        interp.capture(tiny_bridge, x, ["blocks.0.hook_resid_post"], grads=lambda o, b: o[:, -1, 0], progress=False)


def test_module_capture_outputs_inputs_and_spatial(tiny_cnn):
    images = torch.randn(7, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    got = interp.capture(tiny_cnn, images, ["0", "3:input", "3"], batch_size=3, progress=False)
    conv = tiny_cnn[0](images)
    assert torch.allclose(got["0"].data, conv, atol=1e-6)
    assert got["0"].dims == ("sample", "unit", "height", "width")
    assert torch.allclose(got["3:input"].data, torch.relu(conv).flatten(1), atol=1e-6)
    assert torch.allclose(got["3"].data, tiny_cnn(images), atol=1e-5)
    pooled = interp.capture(tiny_cnn, images, "0", spatial="mean", progress=False)
    assert torch.allclose(pooled.data, conv.mean((2, 3)), atol=1e-6)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, torch.zeros(7)), batch_size=2)
    from_loader = interp.capture(tiny_cnn, loader, "3", progress=False)
    assert torch.allclose(from_loader.data, got["3"].data, atol=1e-6)


def test_bad_input_errors(tiny_bridge, tiny_cnn):
    x = torch.randint(0, 50, (2, 5))
    with pytest.raises(interp.SiteError, match="blocks.0.mlp.hook_post"):
        interp.capture(tiny_bridge, x, "blocks.0.mlp.hook_pots", progress=False)
    with pytest.raises(interp.SiteError, match="module paths"):
        interp.capture(tiny_cnn, torch.zeros(1, 3, 8, 8), "conv1", progress=False)
    with pytest.raises(interp.InputTypeError, match="token ids"):
        interp.capture(tiny_bridge, torch.randn(2, 5), "blocks.0.hook_resid_post", progress=False)
    with pytest.raises(interp.InputTypeError, match="cannot run a model on inputs of type dict"):
        interp.capture(tiny_cnn, {"a": 1}, "0", progress=False)
    with pytest.raises(interp.DimensionError, match="attention_mask"):
        interp.capture(tiny_bridge, x, "blocks.0.hook_resid_post", attention_mask=torch.ones(2, 4), progress=False)
    with pytest.raises(interp.ConfigError, match="positions"):
        interp.capture(tiny_bridge, x, "blocks.0.hook_resid_post", positions="middle", progress=False)
    with pytest.raises(interp.InputTypeError):
        interp.capture("not a model", x, "a")


def test_forward_stops_after_the_last_site_unless_outputs_are_needed(tiny_bridge):
    x = torch.randint(0, 50, (2, 6))
    fired = []
    tiny_bridge.hook_dict["blocks.1.hook_resid_post"].add_hook(lambda v, hook: fired.append(1))
    try:
        early = interp.capture(tiny_bridge, x, "blocks.0.hook_resid_post", progress=False)
        assert fired == []
        full = interp.capture(tiny_bridge, x, ["blocks.0.hook_resid_post"], keep_outputs=True, progress=False)
        assert fired == [1]
        assert torch.equal(early.data, full["blocks.0.hook_resid_post"].data)
        assert torch.allclose(full.outputs, tiny_bridge(x), atol=1e-6)
    finally:
        tiny_bridge.hook_dict["blocks.1.hook_resid_post"].remove_hooks("fwd")


def test_glob_stays_within_one_component_when_it_can(tiny_cnn, tiny_bridge):
    nested = torch.nn.Sequential(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU()), torch.nn.Linear(2, 1))
    assert interp.capture.__module__ == "interp.capture"
    from interp.engine import resolve_sites

    assert resolve_sites(nested, "*") == ["0", "1"]
    assert resolve_sites(nested, "0.*") == ["0.0", "0.1"]
    assert resolve_sites(tiny_bridge, "*hook_resid_pre") == ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre"]
