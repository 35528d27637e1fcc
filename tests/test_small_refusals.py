"""Small bad inputs found by review get a named error, and small numeric slips stay fixed (one test each)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.errors import ConfigError, InputTypeError, NaNError
from interp.tensor import Activations


def test_std_keeps_float64():
    x = torch.randn(50, 3, dtype=torch.float64)
    acts = Activations(x, dims=("sample", "unit"))
    out = acts.std("sample")
    assert out.data.dtype == torch.float64
    assert torch.equal(out.data, x.std(0))


def test_metric_nan_message_names_the_nan_element():
    from interp.checks import check_metric_value

    value = torch.tensor([1.0, 2.0, float("nan"), 4.0])
    with pytest.raises(NaNError, match=r"returned nan \(element 2 of 4; 1 not finite\)"):
        check_metric_value(value, lambda out: out)


@pytest.mark.parametrize("policy", ["omit", None, "Drop"])
def test_nan_policy_is_validated(policy):
    from probes.encoding import encoding_scores
    from probes.ridge import RidgeCV

    X, Y = np.random.default_rng(0).normal(size=(40, 3)), np.random.default_rng(1).normal(size=(40, 2))
    with pytest.raises(ConfigError, match="nan_policy"):
        RidgeCV(nan_policy=policy).fit(X, Y)
    with pytest.raises(ConfigError, match="nan_policy"):
        encoding_scores(X, Y, nan_policy=policy)


@pytest.mark.parametrize("alphas", [[], [1.0, -1.0], [float("nan")], [0.0]])
def test_ridge_alphas_are_validated(alphas):
    from probes.ridge import BandedRidgeCV, RidgeCV

    X, Y = np.random.default_rng(0).normal(size=(40, 4)), np.random.default_rng(1).normal(size=(40, 2))
    with pytest.raises(ConfigError, match="alphas"):
        RidgeCV(alphas=alphas).fit(X, Y)
    with pytest.raises(ConfigError, match="alphas"):
        BandedRidgeCV(bands=[2, 2], alphas=alphas).fit(X, Y)


@pytest.mark.parametrize("bands", [[2.5, 1.5], [0, 4], [-1, 5], [3]])
def test_banded_ridge_bands_are_validated(bands):
    from probes.ridge import BandedRidgeCV

    X, Y = np.random.default_rng(0).normal(size=(40, 4)), np.random.default_rng(1).normal(size=(40, 2))
    with pytest.raises(ConfigError, match="bands"):
        BandedRidgeCV(bands=bands).fit(X, Y)


def test_dashboard_plot_of_an_unknown_feature_is_named():
    from interp.label.dashboards import FeatureDashboards

    feature = {"feature_index": 3, "freq_hist_data_bar_values": [0.1], "freq_hist_data_bar_heights": [1],
               "logits_hist_data_bar_values": [0.0], "logits_hist_data_bar_heights": [1]}
    dash = FeatureDashboards.__new__(FeatureDashboards)
    dash.features = [feature]
    with pytest.raises(ConfigError, match=r"feature 7 has no dashboard here.*\[3\]"):
        dash.plot(feature=7)


def test_head_scores_takes_a_list_of_rows(tiny_bridge):
    from interp.label.heads import head_scores

    rows = [torch.randint(0, 50, (12,), generator=torch.Generator().manual_seed(i)) for i in range(3)]
    a = head_scores(tiny_bridge, rows).to_frame()
    b = head_scores(tiny_bridge, torch.stack(rows)).to_frame()
    assert a.equals(b)
    with pytest.raises(InputTypeError, match="equal-length"):
        head_scores(tiny_bridge, [rows[0], rows[1][:5]])


def test_jumprelu_sparsity_zero_is_kept():
    import argparse

    from interp.cli.decompose import build

    args = argparse.Namespace(method="jumprelu", n_components=8, sparsity=0.0, lr=None, batch_size=None, epochs=None,
                              max_seconds=None, max_iter=None, seed=0, k=None, l1=None, device=None, progress=False)
    est = build(args)
    assert est.sparsity_coefficient == 0.0
