"""Streaming unit statistics agree with statistics computed on all activations at once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.errors import DimensionError, InputTypeError, NaNError
from interp.label.stats import UnitStats


def _batches(seed=0, n_batches=6, B=4, T=20, U=7):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n_batches):
        scale = 1.0 + 3 * i  # later batches widen the range: the histogram must grow without clipping
        acts = torch.randn(B, T, U, generator=g) * scale + (i - 3)
        toks = torch.randint(0, 30, (B, T), generator=g)
        out.append((acts, toks))
    return out


def test_streaming_matches_full_pass():
    batches = _batches()
    stats = UnitStats(n_units=7, k=5, window=(2, 1), n_bins=16, max_token_types=100, n_positions=20)
    for acts, toks in batches:
        stats.update(acts, tokens=toks)
    res = stats.result()
    full = torch.cat([a for a, _ in batches]).reshape(-1, 7).double().numpy()
    tokens = torch.cat([t for _, t in batches])
    np.testing.assert_allclose(res.mean, full.mean(0), rtol=1e-10)
    np.testing.assert_allclose(res.var, full.var(0, ddof=1), rtol=1e-9)
    np.testing.assert_allclose(res.frequency, (full > 0).mean(0))
    np.testing.assert_allclose(res.maximum, full.max(0), rtol=1e-6)
    np.testing.assert_allclose(np.sort(full, 0)[::-1][:5].T, res.top_values, rtol=1e-6)
    np.testing.assert_allclose(np.sort(full, 0)[:5].T, res.bottom_values, rtol=1e-6)
    for u in range(7):
        counts, _ = np.histogram(full[:, u], bins=res.hist_edges(u))
        assert counts.sum() == len(full)
        assert np.abs(counts - res.hist_counts[u]).sum() <= 2  # identical up to float ties at an edge
        # exemplar context: the window's centre is the exemplar itself and tokens match the corpus
        s, p = res.top_sample[u, 0], res.top_pos[u, 0]
        assert res.top_window[u, 0, 2] == pytest.approx(res.top_values[u, 0], rel=1e-2)
        assert res.top_tokens[u, 0, 2] == tokens[s, p]
        assert res.top_tokens[u, 0, 0] == (tokens[s, p - 2] if p >= 2 else -1)
    # token identity: eta² equals a direct group-means computation
    flat_tok = tokens.reshape(-1).numpy()
    u = 3
    groups = [full[flat_tok == t, u] for t in np.unique(flat_tok)]
    between = sum(len(g) * (g.mean() - full[:, u].mean()) ** 2 for g in groups)
    total = ((full[:, u] - full[:, u].mean()) ** 2).sum()
    k, n = len(groups), len(full)
    epsilon2 = (between - (k - 1) * (total - between) / (n - k)) / total  # Kelley's epsilon-squared
    assert res.token_eta2()[u] == pytest.approx(max(epsilon2, 0.0), rel=1e-8, abs=1e-12)


def test_eta2_is_not_inflated_by_many_token_types():
    """Pure noise over 2,000 token types seen ~2 times each: plain eta² would be ~0.5, epsilon² ~0."""
    g = torch.Generator().manual_seed(0)
    toks = torch.randint(0, 2000, (64, 64), generator=g)
    stats = UnitStats(2, k=2, window=(0, 0), max_token_types=4096)
    stats.update(torch.randn(64, 64, 2, generator=g), tokens=toks)
    assert (stats.result().token_eta2() < 0.1).all()


def test_token_and_position_detectors_are_visible_in_eta2():
    torch.manual_seed(0)
    toks = torch.randint(0, 50, (64, 16))
    acts = torch.randn(64, 16, 3) * 0.1
    acts[..., 0] += (toks == 7).float() * 5  # a token detector
    acts[..., 1] += torch.arange(16).float() / 4  # a positional unit
    stats = UnitStats(3, k=4, window=(1, 1))
    stats.update(acts, tokens=toks)
    res = stats.result()
    assert res.token_eta2()[0] > 0.9 and res.token_eta2()[2] < 0.2
    assert res.position_eta2()[1] > 0.9 and res.position_eta2()[0] < 0.2
    assert res.token_means(0, top=1)["token"].iloc[0] == 7
    assert (res.top_tokens[0, :, 1] == 7).all()


def test_padding_mask_excludes_rows():
    acts = torch.zeros(2, 3, 1)
    acts[1, 2, 0] = 100.0  # padding position
    stats = UnitStats(1, k=2, window=(0, 0))
    stats.update(acts, mask=torch.tensor([[1, 1, 1], [1, 1, 0]]))
    assert stats.result().count == 5
    assert stats.result().maximum[0] == 0


def test_bad_input():
    stats = UnitStats(3)
    with pytest.raises(DimensionError, match="acts must be"):
        stats.update(torch.zeros(2, 4))
    with pytest.raises(InputTypeError, match="empty"):
        stats.result()
    with pytest.raises(NaNError):
        stats.update(torch.full((2, 3), float("nan")))
    with pytest.raises(DimensionError, match="tokens"):
        stats.update(torch.zeros(2, 5, 3), tokens=torch.zeros(2, 4, dtype=torch.long))
