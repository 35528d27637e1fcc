"""The fast TopK training step (sparse pairs, embedding_bag segment sums, SDDMM, fused Adam) equals the plain
dense autograd step with torch's default Adam, step after step."""

from __future__ import annotations

import pytest
import torch

from interp.decompose import BatchTopKSAE, TopKSAE, planted_features
from interp.decompose._autograd import Pairs
from interp.decompose._distributed import Parallel
from interp.decompose._sae_base import SparseAutoencoder
from interp.decompose._training import batch_moments, train_step

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data():
    return planted_features(n_samples=1024, n_units=48, n_features=24, active=3, seed=1).X.data


def _train(cls, x, reference: bool, steps: int = 10):
    sae = cls(n_components=64, k=4, batch_size=128, lr=1e-2, warmup_steps=1, dead_after=10**9, progress=False)
    sae._init_state(batch_moments(x[:128]))
    if reference:  # the dense forward through autograd, torch's default (unfused, per-op) Adam
        sae._train_forward = lambda xb, fraction, n, par: SparseAutoencoder._train_forward(sae, xb, fraction, n, par)
        sae._optimizer = torch.optim.Adam(sae._parameters(), lr=sae.lr, foreach=False)
    else:
        assert sae._optimizer.defaults.get("fused"), "the fast step should use the fused Adam kernel"
    for i in range(steps):
        train_step(sae, x[i * 128 % x.shape[0]:][:128], 128, None, Parallel())
    return sae


def test_fast_topk_steps_equal_dense_autograd_with_default_adam(data):
    fast, ref = _train(TopKSAE, data, False), _train(TopKSAE, data, True)
    for name in ("W_enc_", "b_enc_", "components_", "b_dec_"):
        a, b = getattr(fast, name).detach(), getattr(ref, name).detach()
        assert a.shape == b.shape and a.stride() == b.stride()
        assert torch.allclose(a, b, rtol=1e-4, atol=2e-6), (name, float((a - b).abs().max()))
    init = _train(TopKSAE, data, False, steps=0)  # the comparison has teeth: training moved the weights
    assert float((fast.components_ - init.components_).detach().abs().max()) > 1e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_pairs_products_equal_dense(dtype):
    gen = torch.Generator().manual_seed(0)
    n, m, d = 12, 20, 7
    mask = torch.rand(n, m, generator=gen) < 0.3
    mask[3] = False  # a row without pairs
    rows, lats = mask.nonzero(as_tuple=True)
    values = torch.randn(rows.numel(), generator=gen).to(dtype)
    dense = torch.zeros(n, m, dtype=dtype)
    dense[rows, lats] = values
    table_lat, table_row = torch.randn(m, d, generator=gen).to(dtype), torch.randn(n, d, generator=gen).to(dtype)
    p = Pairs(rows, lats, n, m)
    tol = dict(rtol=2e-2, atol=2e-2) if dtype == torch.bfloat16 else dict(rtol=1e-5, atol=1e-6)
    assert torch.allclose(p.row_sum(table_lat, values).float(), (dense.float() @ table_lat.float()), **tol)
    assert torch.allclose(p.latent_sum(table_row, values).float(), (dense.float().T @ table_row.float()), **tol)
    full = table_row.float() @ table_lat.float().T
    assert torch.allclose(p.sampled_dot(table_row, table_lat).float(), full[rows, lats], **tol)


def test_batchtopk_trains_with_the_fast_step(data):
    sae = _train(BatchTopKSAE, data, False)
    assert sae.n_steps_ == 10 and float(sae.threshold_) > 0


def test_gradients_take_their_parameters_layout_before_the_fused_step():
    """A row-major gradient of a column-major parameter is re-laid out, so fused Adam equals default Adam."""
    from interp.decompose._sae_base import make_adam
    from interp.decompose._training import grads_in_param_layout

    gen = torch.Generator().manual_seed(0)
    start, g0 = torch.randn(50, 30, generator=gen).T, torch.randn(30, 50, generator=gen)
    out = []
    for fused in (True, False):
        p = start.clone().requires_grad_(True)  # (30, 50), column-major
        opt = make_adam([p], 0.1) if fused else torch.optim.Adam([p], lr=0.1, foreach=False)
        for i in range(3):
            p.grad = (g0 * (i + 1) + i).contiguous()  # row-major
            grads_in_param_layout([p])
            assert p.grad.stride() == p.stride()
            opt.step()
        out.append(p.detach())
    assert torch.allclose(out[0], out[1], atol=1e-6)
