"""SAEs in SAELens's and sparsify's folder layouts: written, read by an independent implementation of each
library's encode/decode (from their published code), and read back with equal reconstructions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from interp.decompose import BatchTopKSAE, JumpReLUSAE, ReLUSAE, TopKSAE
from interp.decompose.formats import load_saelens, load_sparsify, save_saelens, save_sparsify
from interp.errors import ConfigError, DataNotFoundError, SchemaError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 16)).astype(np.float32) * 3.0 + 1.0  # far from unit norm: input_scale_ != 1
    return torch.from_numpy(x)


def _fit(cls, data, **kw):
    sae = cls(n_components=48, batch_size=128, n_epochs=2, seed=0, progress=False, **kw).fit(data)
    assert abs(float(sae.input_scale_) - 1.0) > 1e-3  # the scale folding is exercised
    return sae


def _saelens_forward(folder, x):
    """SAELens 6.x encode/decode (sae_lens/saes/{sae,standard_sae,topk_sae,jumprelu_sae}.py), re-written."""
    cfg = json.loads((folder / "cfg.json").read_text())
    w = load_file(str(folder / "sae_weights.safetensors"))
    sae_in = x - w["b_dec"] * cfg["apply_b_dec_to_input"]
    pre = sae_in @ w["W_enc"] + w["b_enc"]
    if cfg["architecture"] == "topk":
        vals, idx = torch.topk(pre, k=cfg["k"], dim=-1, sorted=False)
        acts = torch.zeros_like(pre).scatter_(-1, idx, vals.relu())
    elif cfg["architecture"] == "jumprelu":
        acts = torch.relu(pre) * (pre > w["threshold"]).to(pre)
    else:
        acts = torch.relu(pre)
    return acts, acts @ w["W_dec"] + w["b_dec"]


@pytest.mark.parametrize("cls, kw", [(TopKSAE, {"k": 4}), (ReLUSAE, {}), (JumpReLUSAE, {"initial_threshold": 0.05}),
                                     (BatchTopKSAE, {"k": 4})])
def test_saelens_layout_equals_our_sae_and_round_trips(cls, kw, data, tmp_path):
    sae = _fit(cls, data, **kw)
    folder = save_saelens(sae, tmp_path / "sae", hook_name="blocks.0.hook_resid_post", model_name="tiny")
    cfg = json.loads((folder / "cfg.json").read_text())
    assert cfg["d_in"] == 16 and cfg["d_sae"] == 48 and cfg["metadata"]["hook_name"] == "blocks.0.hook_resid_post"
    codes, recon = _saelens_forward(folder, data)
    ours_codes = torch.as_tensor(sae.transform(data))
    ours_recon = torch.as_tensor(sae.reconstruct(data))
    assert (ours_codes > 0).any()
    torch.testing.assert_close(codes, ours_codes, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(recon, ours_recon, atol=2e-5, rtol=1e-4)
    again = load_saelens(folder)
    assert again.site_ == "blocks.0.hook_resid_post"
    torch.testing.assert_close(torch.as_tensor(again.reconstruct(data)), ours_recon, atol=2e-5, rtol=1e-4)


def test_sparsify_layout_equals_our_sae_and_round_trips(data, tmp_path):
    sae = _fit(TopKSAE, data, k=4)
    folder = save_sparsify(sae, tmp_path / "layers.0")
    w = load_file(str(folder / "sae.safetensors"))
    k = json.loads((folder / "cfg.json").read_text())["k"]
    # sparsify's SparseCoder: pre_acts = relu(encoder(x - b_dec)); top-k; decode = W_dec[idx] weighted + b_dec
    pre = torch.relu((data - w["b_dec"]) @ w["encoder.weight"].T + w["encoder.bias"])
    vals, idx = pre.topk(k, sorted=False)
    recon = torch.einsum("nk,nkd->nd", vals, w["W_dec"][idx]) + w["b_dec"]
    torch.testing.assert_close(recon, torch.as_tensor(sae.reconstruct(data)), atol=2e-5, rtol=1e-4)
    again = load_sparsify(folder)
    assert again.site_ == "layers.0" and again.k == k
    torch.testing.assert_close(torch.as_tensor(again.reconstruct(data)), recon, atol=2e-5, rtol=1e-4)


def _write_saelens(folder, cfg, tensors):
    folder.mkdir()
    (folder / "cfg.json").write_text(json.dumps(cfg))
    save_file(tensors, str(folder / "sae_weights.safetensors"))


def test_a_saelens_sae_without_b_dec_on_the_input_is_read_exactly(data, tmp_path):
    g = torch.Generator().manual_seed(1)
    w = {"W_enc": torch.randn(16, 32, generator=g), "b_enc": torch.randn(32, generator=g),
         "W_dec": torch.randn(32, 16, generator=g), "b_dec": torch.randn(16, generator=g)}
    _write_saelens(tmp_path / "s", {"architecture": "standard", "d_in": 16, "d_sae": 32,
                                    "apply_b_dec_to_input": False, "hook_name": "h"}, w)
    codes, recon = _saelens_forward(tmp_path / "s", data)
    sae = load_saelens(tmp_path / "s")
    torch.testing.assert_close(torch.as_tensor(sae.transform(data)), codes, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(torch.as_tensor(sae.reconstruct(data)), recon, atol=1e-4, rtol=1e-4)
    assert sae.site_ == "h"


@pytest.mark.parametrize("change, match", [
    ({"normalize_activations": "expected_average_only_in"}, "normalize_activations"),
    ({"rescale_acts_by_decoder_norm": True}, "rescale_acts"),
    ({"reshape_activations": "hook_z"}, "hook_z"),
    ({"architecture": "gated"}, "gated"),
])
def test_saelens_settings_we_cannot_reproduce_are_refused(change, match, tmp_path):
    w = {"W_enc": torch.zeros(4, 8), "b_enc": torch.zeros(8), "W_dec": torch.zeros(8, 4), "b_dec": torch.zeros(4)}
    _write_saelens(tmp_path / "s", {"architecture": "topk", "k": 2, "d_in": 4, "d_sae": 8, **change}, w)
    with pytest.raises(SchemaError, match=match):
        load_saelens(tmp_path / "s")


def test_bad_folders_get_named_errors(data, tmp_path):
    with pytest.raises(DataNotFoundError):
        load_saelens(tmp_path)
    (tmp_path / "not_an_sae").mkdir()
    (tmp_path / "not_an_sae" / "notes.txt").write_text("mine")
    sae = _fit(TopKSAE, data, k=4)
    with pytest.raises(ConfigError, match="overwrite"):
        save_saelens(sae, tmp_path / "not_an_sae")
    with pytest.raises(ConfigError, match="not an SAE folder"):
        save_saelens(sae, tmp_path / "not_an_sae", overwrite=True)
    assert (tmp_path / "not_an_sae" / "notes.txt").read_text() == "mine"
    with pytest.raises(ConfigError, match="TopK"):
        save_sparsify(_fit(ReLUSAE, data), tmp_path / "r")
