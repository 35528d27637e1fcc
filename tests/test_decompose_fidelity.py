"""Fidelity to the references: NMF stops where scikit-learn's solver stops; SNMF.paper() is the authors' SNMF.

References: sklearn.decomposition.NMF (solver="cd") from the same start; a line-by-line re-implementation
of ``NMFSemiNMF.fit`` in ``ordavid-s/snmf-mlp-decomposition`` (``factorization/seminmf.py``), and of
``get_top_activating_indices`` (``experiments/snmf_interp/generate_concept_context.py``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import interp
from interp import ConfigError
from interp.decompose import NMF, SNMF, planted_features, top_activating
from interp.decompose.nmf import snmf_step


# ------------------------------------------------------------------------------------ NMF
@pytest.mark.parametrize("k,tol", [(5, 1e-4), (10, 1e-4), (5, 1e-5)])
def test_nmf_stops_where_sklearn_stops_from_the_same_start(k, tol):
    from sklearn.decomposition import NMF as SklearnNMF

    rs = np.random.RandomState(0)
    X = (np.abs(rs.randn(300, 40)) @ np.abs(rs.randn(40, 50))) * (rs.rand(300, 50) > 0.3)
    ours = NMF(n_components=k, tol=tol, max_iter=2000)
    W0, H0 = (m.numpy().copy() for m in ours._initial(torch.from_numpy(X), k))
    ours.fit(X)
    ref = SklearnNMF(n_components=k, init="custom", tol=tol, max_iter=2000)
    ref.fit_transform(X, W=W0, H=H0)
    assert ours.n_iter_ == ref.n_iter_
    assert abs(ours.reconstruction_err_ / ref.reconstruction_err_ - 1) < 1e-3
    np.testing.assert_allclose(ours.components_.numpy(), ref.components_, atol=1e-8)


# ------------------------------------------------------------------------ the authors' SNMF
def _pos(x):
    return (x.abs() + x) * 0.5


def _neg(x):
    return (x.abs() - x) * 0.5


def _authors_step(A, F, G, pct_keep, reg, eps=0.0):
    """One iteration of NMFSemiNMF.fit, written from their code (inv, threshold WTA, fix_hoyer_scale).

    ``eps=0.0``: their first commit f1f7a5b; ``eps=1e-6``: ``denom + 1e-6`` since 3db345d ("fixed nan issue"),
    kept at HEAD ab58c78.
    """
    K = G.shape[1]
    inv = torch.linalg.inv(G.T @ G + torch.eye(K, dtype=A.dtype) * reg)
    F = A @ G @ inv
    d = F.shape[0]
    keep = max(1, math.ceil(pct_keep * d))
    thresh = torch.topk(F.abs(), keep, dim=0, sorted=True).values[-1, :]
    F = F * (F.abs() >= thresh.unsqueeze(0))
    norms = G.norm(dim=0, keepdim=True).clamp_min(1e-8)
    G = G / norms
    F = F * norms.squeeze(0)
    P, Q = A.T @ F, F.T @ F
    G = G * torch.sqrt((_pos(P) + G @ _neg(Q)) / (_neg(P) + G @ _pos(Q) + eps))
    return F, G


def _authors_fit(A, K, sparsity, max_iter, tol, reg, patience, seed, eps=0.0):
    torch.manual_seed(seed)
    d, n = A.shape
    G = torch.rand(n, K).clamp_min(1e-6).to(A.dtype)   # drawn in float32 as theirs (default dtype), then cast
    F = torch.randn(d, K).to(A.dtype)
    best_loss, best_F, best_G, wait, it = float("inf"), None, None, 0, 0
    for it in range(max_iter):  # noqa: B007
        F, G = _authors_step(A, F, G, sparsity, reg, eps)
        loss = torch.norm(A - F @ G.T, p="fro") ** 2
        if loss.item() < best_loss - tol:
            best_loss, best_F, best_G, wait = loss.item(), F.clone(), G.clone(), 0
        else:
            wait += 1
        if wait >= patience:
            break
    return best_F, best_G, it + 1, best_loss


def test_snmf_step_equals_the_authors_update_equations():
    gen = torch.Generator().manual_seed(0)
    A = torch.randn(12, 40, generator=gen, dtype=torch.float64)
    G = torch.rand(40, 3, generator=gen, dtype=torch.float64)
    F = torch.zeros(12, 3, dtype=torch.float64)
    Fa, Ga = F, G
    for _ in range(25):
        F, G, _, _ = snmf_step(A, F, G, keep=math.ceil(0.25 * 12), reg=1e-6, eps=0.0)
        Fa, Ga = _authors_step(A, Fa, Ga, 0.25, 1e-6)
        torch.testing.assert_close(F, Fa, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(G, Ga, rtol=1e-9, atol=1e-12)


def _gelu_acts(seed, n=300, d=48):
    """GELU-shaped MLP activations: ~85% of the entries small negatives, a few large positives."""
    gen = torch.Generator().manual_seed(seed)
    W = torch.randn(d, 16, generator=gen, dtype=torch.float64)
    Z = torch.randn(n, 16, generator=gen, dtype=torch.float64)
    return torch.nn.functional.gelu(Z @ W.T / 4 - 1.0)


def test_snmf_paper_is_the_authors_current_code_and_runs_where_it_runs():
    """SNMF.paper() = NMFSemiNMF.fit at HEAD ab58c78 (eps 1e-6) to 1e-12 in float64 from the same start."""
    X = _gelu_acts(0)
    snmf = SNMF.paper(n_components=8, sparsity=0.1, max_iter=150, patience=40, seed=3, dtype=torch.float64).fit(X)
    F, G, n_iter, best = _authors_fit(X.T.contiguous(), 8, 0.1, 150, 1e-4, 1e-6, 40, seed=3, eps=1e-6)
    assert snmf.n_iter_ == n_iter and snmf.eps == 1e-6
    scale = float(F.abs().max())
    torch.testing.assert_close(snmf.components_, F.T, rtol=1e-12, atol=1e-12 * scale)
    torch.testing.assert_close(snmf.codes_, G, rtol=1e-12, atol=1e-12)
    assert snmf.reconstruction_err_ ** 2 == pytest.approx(best, rel=1e-12)
    # the authors' first commit (no eps) divides 0 by 0 on this GELU-shaped matrix: said, not hidden
    with pytest.raises(interp.NaNError, match="3db345d"):
        SNMF.paper(version="first_commit", n_components=8, sparsity=0.1, max_iter=150, seed=3,
                   dtype=torch.float64).fit(X)
    assert SNMF.PAPER_VERSIONS["first_commit"]["commit"].startswith("f1f7a5b")
    with pytest.raises(ConfigError, match="version"):
        SNMF.paper(version="v2")


def test_snmf_paper_preset_reproduces_the_authors_fit():
    planted = planted_features(n_samples=300, n_units=32, n_features=12, noise=0.3, seed=2)  # dense, like MLP activations
    X = planted.X.data.float()
    snmf = SNMF.paper(version="first_commit", n_components=12, sparsity=0.25, max_iter=300, patience=15, seed=7).fit(X)
    F, G, n_iter, best = _authors_fit(X.T.contiguous(), 12, 0.25, 300, 1e-4, 1e-6, 15, seed=7)
    assert snmf.n_iter_ == n_iter and 100 < n_iter < 300  # the absolute-tolerance patience rule stopped both together
    torch.testing.assert_close(snmf.components_, F.T, rtol=2e-3, atol=2e-4)
    torch.testing.assert_close(snmf.codes_, G, rtol=2e-3, atol=2e-4)
    assert snmf.reconstruction_err_ ** 2 == pytest.approx(best, rel=1e-4)
    p = snmf.get_params()
    assert (p["init"], p["tol_mode"], p["tol"], p["eps"], p["keep_codes"]) == ("random", "absolute", 1e-4, 0.0, True)
    assert SNMF.paper().eps == 1e-6
    assert SNMF.paper().get_params()["max_iter"] == 2000 and SNMF.paper().patience == 1500
    assert SNMF.paper().n_components == 50 and SNMF.paper().sparsity == 0.01
    # on sparse data a row of G reaches 0 and the authors' update (no eps) divides 0 by 0: said, not hidden
    sparse = planted_features(n_samples=300, n_units=24, n_features=6, seed=1).X.data.float()
    with pytest.raises(interp.NaNError, match="eps=1e-6"):
        SNMF.paper(version="first_commit", n_components=6, sparsity=0.25, max_iter=50, seed=7).fit(sparse)
    assert SNMF.paper(n_components=6, sparsity=0.25, max_iter=50, seed=7).fit(sparse).n_iter_ > 20
    with pytest.raises(ConfigError, match="no parameters"):
        SNMF.paper(n_iter=3)
    with pytest.raises(ConfigError, match="tol_mode"):
        SNMF(n_components=2, tol_mode="abs").fit(X)


class _Tokenizer:
    bos_token_id, pad_token_id = 0, 0


def test_snmf_paper_drops_bos_and_ranks_contexts_by_fitted_codes(tmp_path):
    planted = planted_features(n_samples=240, n_units=24, n_features=6, seed=2)
    tokens = np.tile(np.array([0, 5, 6, 7, 8, 9, 10, 11]), 30)   # BOS (id 0) opens every 8-token context
    acts = interp.Activations(planted.X.data, ("sample", "unit"),
                              {"sample": pd.DataFrame({"token": tokens, "context": np.repeat(np.arange(30), 8)})})
    snmf = SNMF.paper(_Tokenizer(), n_components=6, sparsity=0.25, max_iter=60, patience=10).fit(acts)
    assert snmf.drop_tokens == [0] and snmf.codes_.shape == (210, 6) and snmf.n_samples_in_ == 240
    assert (tokens[snmf.fitted_rows_.numpy()] != 0).all() and len(snmf.fitted_rows_) == 210
    top = top_activating(snmf, acts, n=5, codes="fitted")
    assert (top["token"] != 0).all() and set(top.columns) >= {"component", "rank", "sample", "activation", "context"}
    G = snmf.codes_.numpy()
    for comp, rows in top.groupby("component"):
        column = G[:, comp]
        order = np.argsort(column)[-5:][::-1]                # get_top_activating_indices, best first
        expected = [int(snmf.fitted_rows_[i]) for i in order if column[i] > 0]
        assert rows.sort_values("rank")["sample"].tolist() == expected
        np.testing.assert_allclose(rows.sort_values("rank")["activation"], column[order][column[order] > 0], rtol=1e-6)
    codes = snmf.fit_transform(acts)
    assert codes.shape == (210, 6) and (codes.coords["sample"]["token"] != 0).all()
    again = interp.decompose.load(snmf.save(tmp_path / "snmf.safetensors"))
    torch.testing.assert_close(again.codes_, snmf.codes_)
    assert again.drop_tokens == [0]
    with pytest.raises(ConfigError, match="keep_codes=True"):
        top_activating(SNMF(n_components=3, max_iter=5).fit(planted.X), planted.X, codes="fitted")
    with pytest.raises(ConfigError, match="positions='tokens'"):
        SNMF(n_components=3, drop_tokens=[0]).fit(planted.X)
    with pytest.raises(interp.DimensionError, match="fitted on"):
        top_activating(snmf, acts.isel(sample=slice(0, 100)), codes="fitted")


def test_hierarchical_snmf_is_the_authors_train_hierarchical_nmf():
    """train_hierarchical_nmf (factorization/hierchichal_snmf.py, ab58c78): greedy levels + Adam fine-tuning."""
    from interp.decompose import HierarchicalSNMF

    X = _gelu_acts(1, n=200, d=40)
    ranks, kw = [8, 3], dict(sparsity=0.2, max_iter=60, patience=60, tol=1e-4, dtype=torch.float64)
    h = HierarchicalSNMF(ranks, n_fine_tune_steps=30, seed=5, snmf_params=kw).fit(X)
    # the authors' greedy pass: level i factors the previous H (one "sample" per feature), from seed 5 + i
    current, Ws = X, []
    for i, r in enumerate(ranks):
        F, G, _, _ = _authors_fit(current.T.contiguous(), r, 0.2, 60, 1e-4, 1e-6, 60, seed=5 + i, eps=1e-6)
        Ws.append(G.clone())
        current = F.T.clone()
    H = current
    torch.testing.assert_close(h.levels_[1].components_, H, rtol=1e-10, atol=1e-10)
    # HierarchicalNMFModule + Adam(lr 1e-3) on MSELoss(W1 W2 H, A)
    params = [torch.nn.Parameter(w) for w in Ws] + [torch.nn.Parameter(H)]
    opt = torch.optim.Adam(params, lr=1e-3)
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.MSELoss()(params[0] @ params[1] @ params[2], X)
        loss.backward()
        opt.step()
    torch.testing.assert_close(h.components_, params[2].detach(), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(h.weights_[0], params[0].detach(), rtol=1e-9, atol=1e-9)
    assert h.loss_curve_[-1] < h.loss_curve_[0] and h.level_components(0).shape == (8, 40)
    torch.testing.assert_close(h.reconstruct(), params[0].detach() @ params[1].detach() @ params[2].detach())
    tree = h.tree()
    assert len(tree) == 8 and tree.parent.between(0, 2).all()
    with pytest.raises(ConfigError, match="must not grow"):
        HierarchicalSNMF([3, 8]).fit(X)
