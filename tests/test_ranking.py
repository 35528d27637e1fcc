"""Ranks and Spearman's rho from the packed-key sort equal scipy's on generated vectors (ties, signed zeros,
float32 and float64, both code paths)."""
import numpy as np
import pytest
import scipy.stats as sps
import torch

from interp.similarity._ranking import ranks, sort_order, spearman_pair


def _case(seed: int, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    m = int(rng.integers(2, 2000))
    a = rng.standard_normal(m)
    b = a * rng.random() + rng.standard_normal(m)
    if seed % 3:  # coarse values: many ties
        a, b = np.round(a * 3) / 3, np.round(b * 2)
    if seed % 3 == 2:  # signed zeros tie with each other
        a[: m // 3], a[m // 3: m // 2] = -0.0, 0.0
    return a.astype(dtype), b.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(12))
def test_ranks_and_spearman_equal_scipy(seed: int, dtype: type) -> None:
    a, b = _case(seed, dtype)
    r, tied = ranks(torch.from_numpy(a), torch.float64)
    np.testing.assert_array_equal(r.numpy(), sps.rankdata(a))
    assert tied == (len(np.unique(a)) < len(a))
    assert spearman_pair(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(
        sps.spearmanr(a, b).statistic, abs=1e-12)


def test_integer_ranks_without_ties() -> None:
    a = np.random.default_rng(0).permutation(1000).astype(np.float32) - 500
    r, tied = ranks(torch.from_numpy(a), torch.float64, integers=True)
    assert not tied and r.dtype == torch.int32
    np.testing.assert_array_equal(r.numpy(), sps.rankdata(a).astype(np.int32))


def test_packed_and_plain_orders_agree() -> None:
    """float32 on the CPU takes the packed-key sort; a tensor that needs grad takes torch.argsort."""
    a = torch.from_numpy(np.random.default_rng(3).standard_normal(5000).astype(np.float32))
    packed, new_packed = sort_order(a)
    plain, new_plain = sort_order(a.clone().requires_grad_(True))
    torch.testing.assert_close(a[packed], a[plain], rtol=0, atol=0)
    assert torch.equal(new_packed, new_plain)
