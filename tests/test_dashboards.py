"""Feature dashboards: every number checked against a direct computation, and the Neuronpedia batch layout
(SAEDashboard's ``NeuronpediaDashboardBatch.to_dict`` keys)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from interp import engine
from interp.decompose import TopKSAE
from interp.errors import ConfigError, DimensionError
from interp.label.dashboards import feature_dashboards

pytestmark = pytest.mark.usefixtures("one_thread")
SITE = "blocks.1.hook_resid_post"


@pytest.fixture(scope="module")
def setup():
    from test_result_contract import bridge, tokens

    model, toks = bridge(), tokens(16, 10, seed=3)
    acts = engine.record(model, toks, [SITE]).acts[SITE]
    sae = TopKSAE(n_components=24, k=3, batch_size=40, progress=False, seed=1).fit(acts.reshape(-1, 32))
    codes = torch.as_tensor(sae.transform(acts.reshape(-1, 32))).reshape(16, 10, 24).double().numpy()
    return model, toks, sae, codes


def test_dashboard_numbers_equal_a_direct_computation(setup):
    model, toks, sae, codes = setup
    dash = feature_dashboards(model, sae, toks, SITE, features=[0, 5, 7], n_top=4, n_logits=3, batch_size=5)
    W_dec = sae.components_.detach().double() / float(sae.input_scale_)
    W_U = model.W_U.detach().double()
    for j, f in enumerate(dash.features):
        assert f["feature_index"] == [0, 5, 7][j]
        a = codes[..., f["feature_index"]]
        assert f["frac_nonzero"] == pytest.approx((a > 0).mean(), abs=1e-6)
        peaks = np.sort(a.max(1))[::-1]
        assert [c["bin_max"] for c in f["activations"]] == pytest.approx(peaks[peaks > 0][:4], abs=1e-4)
        for c in f["activations"]:
            i = int(np.argmax([abs(a[p].max() - c["bin_max"]) < 1e-4 for p in range(16)]))
            assert c["values"] == pytest.approx(a[i], abs=1e-4) and c["qualifying_token_index"] == int(a[i].argmax())
        logits = (W_dec[f["feature_index"]] @ W_U).numpy()
        assert f["pos_values"] == pytest.approx(np.sort(logits)[::-1][:3], abs=1e-4)
        assert f["neg_values"] == pytest.approx(np.sort(logits)[:3], abs=1e-4)
        assert sum(f["freq_hist_data_bar_heights"]) == (a > 0).sum()
        assert sum(f["logits_hist_data_bar_heights"]) == model.cfg.d_vocab


def test_neuronpedia_batch_has_saedashboards_layout(setup, tmp_path):
    model, toks, sae, _ = setup
    dash = feature_dashboards(model, sae, toks, SITE, features=[1, 2], n_top=2, dataset="synthetic")
    batch = json.loads(dash.to_neuronpedia(tmp_path / "batch-0.json", model_id="tiny", layer=1,
                                           sae_set="res-topk").read_text())
    assert set(batch) == {"model_id", "layer", "sae_set", "sae_id_suffix", "features"}
    feature = batch["features"][0]
    assert {"feature_index", "pos_str", "pos_values", "neg_str", "neg_values", "frac_nonzero",
            "freq_hist_data_bar_values", "freq_hist_data_bar_heights", "logits_hist_data_bar_values",
            "logits_hist_data_bar_heights", "n_prompts_total", "n_tokens_in_prompt", "dataset",
            "activations"} <= set(feature)
    assert feature["n_prompts_total"] == 16 and feature["dataset"] == "synthetic"
    for act in feature["activations"]:
        assert {"bin_min", "bin_max", "bin_contains", "tokens", "values", "qualifying_token_index"} <= set(act)
        assert len(act["tokens"]) == len(act["values"]) == 10


def test_bad_inputs_are_refused(setup):
    model, toks, sae, _ = setup
    with pytest.raises(ConfigError, match="features"):
        feature_dashboards(model, sae, toks, SITE, features=[99])
    with pytest.raises(DimensionError):
        feature_dashboards(model, sae, toks[0], SITE)
    mlp = "blocks.1.mlp.hook_post"
    wide = TopKSAE(n_components=8, k=2, batch_size=40, progress=False).fit(
        engine.record(model, toks, [mlp]).acts[mlp].reshape(-1, 64))
    with pytest.raises(ConfigError, match="logits=False"):
        feature_dashboards(model, wide, toks, mlp)
    assert feature_dashboards(model, wide, toks, mlp, logits=False, features=[0]).features[0]["pos_str"] == []
