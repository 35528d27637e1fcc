"""interp.decompose: SAEs and SNMF recover planted features, NMF matches scikit-learn, I/O, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import interp
from interp.decompose import (
    NMF,
    SNMF,
    BatchTopKSAE,
    JumpReLUSAE,
    NegativeValueError,
    ReLUSAE,
    TopKSAE,
    best_match_cosine,
    load,
    planted_features,
    reconstruction_metrics,
)
from interp.decompose.metrics import ReconstructionAccumulator

pytestmark = pytest.mark.usefixtures("one_thread")  # small torch ops: one thread is faster on 2 cores


COMMON = dict(n_components=32, lr=3e-3, batch_size=256, n_epochs=20, dead_after=2000, progress=False)


@pytest.fixture(scope="module")
def planted():
    return planted_features(n_samples=4000, n_units=64, n_features=16, active=3, unit_fraction=0.25, seed=0)


# ---------------------------------------------------------------- acceptance: recovery

@pytest.mark.parametrize("make", [
    lambda: TopKSAE(k=4, **COMMON),
    lambda: BatchTopKSAE(k=4, **COMMON),
    lambda: ReLUSAE(l1_coefficient=1.0, resample_every=200, **COMMON),
    lambda: JumpReLUSAE(sparsity_coefficient=3.0, bandwidth=1.0, initial_threshold=1.0, **COMMON),
], ids=["topk", "batchtopk", "relu", "jumprelu"])
def test_sae_recovers_planted_features(planted, make):
    sae = make().fit(planted.X)
    cos = best_match_cosine(planted.features, sae.components_)
    assert cos.mean() >= 0.9, f"mean best-match cosine {cos.mean():.3f}"
    metrics = sae.evaluate(planted.X)
    assert metrics.fvu < 0.1 and metrics.l0 < 8
    # decoder rows stay at unit norm
    assert torch.allclose(sae.components_.norm(dim=1), torch.ones(32), atol=1e-4)


@pytest.mark.parametrize("init", ["kmeans", "random", "svd"])
def test_snmf_recovers_planted_features(planted, init):
    snmf = SNMF(n_components=16, sparsity=0.25, init=init, max_iter=800, patience=100).fit(planted.X)
    cos = best_match_cosine(planted.features, snmf.components_)
    assert cos.mean() >= 0.9, f"{init}: mean best-match cosine {cos.mean():.3f}"
    # winner-take-all: each feature keeps ceil(0.25 * 64) = 16 neuron weights
    assert ((snmf.components_ != 0).sum(1) <= 16).all()
    codes = snmf.transform(planted.X)
    assert codes.dims == ("sample", "unit") and float(codes.data.min()) >= 0


def test_snmf_loss_decreases_and_early_stops(planted):
    snmf = SNMF(n_components=16, sparsity=None, init="svd", max_iter=2000, patience=5, tol=1e-3).fit(planted.X)
    assert snmf.n_iter_ < 2000  # patience stopped it
    best = min(snmf.loss_curve_)
    assert snmf.reconstruction_err_ ** 2 == pytest.approx(best, rel=1e-6)
    assert snmf.loss_curve_[-1] <= snmf.loss_curve_[0]
    # the best iterate's loss matches the explicit Frobenius error of the stored factors
    X = planted.X.data
    G = snmf.fit_transform(planted.X).data
    direct = float(((X - G @ snmf.components_) ** 2).sum())
    assert direct == pytest.approx(snmf.reconstruction_err_ ** 2, rel=1e-3)


@pytest.mark.parametrize("k", [5, 10])
def test_nmf_matches_sklearn(k):
    from sklearn.decomposition import NMF as SklearnNMF

    rs = np.random.RandomState(0)
    X = (np.abs(rs.randn(300, 40)) @ np.abs(rs.randn(40, 50))) * (rs.rand(300, 50) > 0.3)
    ours = NMF(n_components=k).fit(X)
    ref = SklearnNMF(n_components=k, init="nndsvda", max_iter=500, tol=1e-4).fit(X)
    assert abs(ours.reconstruction_err_ / ref.reconstruction_err_ - 1) < 0.01
    W = ours.transform(X)
    assert W.min() >= 0 and ours.components_.min() >= 0
    direct = np.linalg.norm(X - ours.inverse_transform(W))
    assert direct == pytest.approx(ours.reconstruction_err_, rel=0.02)


# ---------------------------------------------------------------- metrics


def test_metrics_match_hand_computation():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(200, 8, generator=gen)
    x_hat = x + 0.3 * torch.randn(200, 8, generator=gen)
    codes = torch.zeros(200, 5)
    codes[:, 0] = 1.0
    codes[::2, 1] = 2.0
    acc = ReconstructionAccumulator(dense_threshold=0.4)
    for i in range(0, 200, 64):  # streaming equals one-shot
        acc.add(x[i:i + 64], x_hat[i:i + 64], codes[i:i + 64])
    m = acc.result()
    xd, hd = x.double(), x_hat.double()
    fvu = float(((xd - hd) ** 2).sum() / ((xd - xd.mean(0)) ** 2).sum())
    assert m.fvu == pytest.approx(fvu, rel=1e-9)
    assert m.l0 == pytest.approx(1.5)
    assert m.dead_fraction == pytest.approx(3 / 5)
    assert m.dense_fraction == pytest.approx(2 / 5)
    cos = float(torch.nn.functional.cosine_similarity(x, x_hat, dim=1).mean())
    assert m.cosine == pytest.approx(cos, rel=1e-6)
    assert m.to_frame().shape == (1, 7)


def test_sae_api_roundtrip(planted, tmp_path):
    sae = TopKSAE(k=4, **{**COMMON, "n_epochs": 2}).fit(planted.X)
    codes = sae.transform(planted.X)
    assert codes.dims == ("sample", "unit") and codes.shape == (4000, 32)
    assert int((codes.data != 0).sum(1).max()) <= 4
    recon = sae.inverse_transform(codes)
    assert recon.coord("name").tolist()[:2] == ["u0", "u1"]  # unit names come back
    # tensor in, tensor out; numpy in, numpy out
    assert isinstance(sae.transform(planted.X.data), torch.Tensor)
    assert isinstance(sae.transform(planted.X.numpy()), np.ndarray)
    path = sae.save(tmp_path / "sae.safetensors")
    again = load(path)
    assert type(again) is TopKSAE and again.k == 4
    assert torch.equal(again.transform(planted.X.data), sae.transform(planted.X.data))
    assert reconstruction_metrics(again, planted.X).fvu == pytest.approx(sae.evaluate(planted.X).fvu)
    for est in (BatchTopKSAE(k=4, **{**COMMON, "n_epochs": 1}), JumpReLUSAE(**{**COMMON, "n_epochs": 1}),
                SNMF(n_components=4, max_iter=20), NMF(n_components=3, max_iter=20)):
        data = planted.X if not isinstance(est, NMF) else planted.X.replace(data=planted.X.data.abs())
        est.fit(data)
        back = est.save(tmp_path / f"{type(est).__name__}.safetensors")
        restored = type(est).load(back)
        assert torch.allclose(torch.as_tensor(restored.transform(data.data)), torch.as_tensor(est.transform(data.data)))


def test_files_saved_with_the_old_parameter_names_load(tmp_path):
    """Files written before the rename random_state -> seed, verbose -> progress read back under the new names."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    X = torch.rand(60, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    est = NMF(n_components=3, max_iter=20, seed=5, progress=False).fit(X)
    path = est.save(tmp_path / "new.safetensors")
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["interp.decompose"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta["params"]["random_state"] = meta["params"].pop("seed")
    meta["params"]["verbose"] = meta["params"].pop("progress")
    save_file(tensors, str(tmp_path / "old.safetensors"), metadata={"interp.decompose": json.dumps(meta)})
    old = load(tmp_path / "old.safetensors")
    assert old.seed == 5 and old.progress is False and "random_state" not in old.get_params()
    assert torch.allclose(torch.as_tensor(old.transform(X)), torch.as_tensor(est.transform(X)))


def test_fit_on_store_and_iterable(planted, tmp_path):
    from interp.store import ActivationStore

    X = planted.X.data.reshape(200, 20, 64)  # (sample, pos, unit)
    store = ActivationStore.create(tmp_path / "s", {"mlp": (20, 64)}, dims={"mlp": ("sample", "pos", "unit")})
    for i in range(0, 200, 50):
        store.append({"mlp": X[i:i + 50]}, inputs_done=i + 50)
    a = TopKSAE(k=4, **{**COMMON, "n_epochs": 3, "batch_size": 16}).fit(store)  # 16 stored rows = 320 vectors
    assert a.n_features_in_ == 64 and a.n_samples_seen_ == 3 * 4000
    b = TopKSAE(k=4, **{**COMMON, "n_epochs": 3}).fit([planted.X.data[i:i + 256] for i in range(0, 4000, 256)])
    assert b.n_samples_seen_ == 3 * 4000
    snmf = SNMF(n_components=8, sparsity=0.25, max_iter=50).fit((store, "mlp"))
    assert snmf.components_.shape == (8, 64)
    # (sample, pos, unit) Activations are flattened into rows
    acts = interp.Activations(X, ("sample", "pos", "unit"))
    assert TopKSAE(k=4, **{**COMMON, "n_epochs": 1}).fit(acts).transform(acts).shape == (4000, 32)


# ---------------------------------------------------------------- bad input


def test_nmf_rejects_negative_data():
    X = np.abs(np.random.RandomState(0).randn(30, 5))
    X[3, 2] = -0.5
    with pytest.raises(NegativeValueError, match="non-negative"):
        NMF(n_components=2).fit(X)
    with pytest.raises(interp.InterpError):
        NMF(n_components=2).fit(X)


def test_topk_rejects_k_larger_than_latents(planted):
    with pytest.raises(interp.ConfigError, match="k=40 is larger than the number of latents n_components=32"):
        TopKSAE(k=40, **COMMON).fit(planted.X)
    with pytest.raises(interp.ConfigError, match="k"):
        BatchTopKSAE(k=0, **COMMON).fit(planted.X)


def test_store_with_wrong_dims(tmp_path):
    from interp.store import ActivationStore

    store = ActivationStore.create(tmp_path / "p", {"pattern": (4, 8, 8)},
                                   dims={"pattern": ("sample", "head", "query", "key")})
    store.append({"pattern": torch.rand(3, 4, 8, 8)}, inputs_done=3)
    with pytest.raises(interp.DimensionError, match="dims ending in 'unit'"):
        TopKSAE(k=2, **COMMON).fit(store)
    with pytest.raises(interp.DimensionError, match="'unit' dim"):
        SNMF(n_components=2).fit(interp.Activations(torch.rand(5, 3), ("sample", "time")))
    two = ActivationStore.create(tmp_path / "two", {"a": (4,), "b": (4,)},
                                 dims={"a": ("sample", "unit"), "b": ("sample", "unit")})
    two.append({"a": torch.rand(3, 4), "b": torch.rand(3, 4)})
    with pytest.raises(interp.ConfigError, match="several arrays"):
        TopKSAE(k=2, **COMMON).fit(two)


def test_nan_input_raises(planted, tmp_path):
    X = planted.X.data.clone()
    X[10, 3] = float("nan")
    for est in (TopKSAE(k=4, **COMMON), ReLUSAE(**COMMON), SNMF(n_components=4), NMF(n_components=4)):
        with pytest.raises(interp.NaNError, match="NaN"):
            est.fit(X.abs() if isinstance(est, NMF) else X)
    fitted = TopKSAE(k=4, **{**COMMON, "n_epochs": 1}).fit(planted.X)
    with pytest.raises(interp.NaNError):
        fitted.transform(X)
    with pytest.raises(interp.DimensionError, match="features"):
        fitted.transform(planted.X.data[:, :10])


def test_unfitted_and_bad_params():
    with pytest.raises(interp.ConfigError, match="not fitted"):
        TopKSAE().transform(torch.rand(3, 4))
    with pytest.raises(interp.ConfigError, match="init"):
        SNMF(n_components=2, init="nope").fit(torch.rand(10, 4))
    with pytest.raises(interp.ConfigError, match="sparsity"):
        SNMF(n_components=2, sparsity=2.0).fit(torch.rand(10, 4))
    with pytest.raises(interp.ConfigError, match="no parameter"):
        TopKSAE().set_params(kk=3)
    with pytest.raises(interp.InputTypeError):
        TopKSAE().fit("not data")


def _dense_auxk(sae, xs, x_hat, pre):
    """Reference AuxK loss (Gao et al. 2024) written densely: the top k_aux dead latents reconstruct the residual."""
    dead = sae.dead_latents_
    n_dead = int(dead.sum())
    k_aux = min(xs.shape[1] // 2, n_dead)
    vals, idx = torch.where(dead, pre, torch.full_like(pre, -torch.inf)).topk(k_aux, dim=1)
    recon = torch.zeros_like(pre).scatter(1, idx, torch.relu(vals)) @ sae.components_
    scale = min(n_dead / (xs.shape[1] // 2), 1.0)
    return sae.aux_coefficient * scale * ((recon - (xs - x_hat).detach()) ** 2).sum(1).mean()


@pytest.mark.parametrize("cls", [TopKSAE, BatchTopKSAE])
def test_sparse_training_pass_matches_dense_gradients(planted, cls):
    """The O(batch x k x d) training pass gives the same loss and gradients as the dense reference."""
    from interp.decompose._distributed import Parallel
    from interp.decompose._training import batch_moments

    x = planted.X.data[:128]
    sae = cls(n_components=32, k=4, dead_after=1, progress=False)
    sae._init_state(batch_moments(x))
    with torch.no_grad():
        sae.b_enc_ += 0.05 * torch.randn(32, generator=torch.Generator().manual_seed(0))
    sae._samples_since_fired[:10] = 5  # 10 dead latents: AuxK is active

    def grads(sparse: bool):
        for p in sae._parameters():
            p.grad = None
        if sparse:
            xs, x_hat, extra, _ = sae._train_forward(x, 1.0, x.shape[0], Parallel())
        else:
            xs, pre, codes, x_hat = sae._forward(x, training=True)
            extra = _dense_auxk(sae, xs, x_hat, pre)
        loss = ((x_hat - xs) ** 2).sum(1).mean() + extra
        loss.backward()
        return float(loss.detach()), [p.grad.clone() for p in sae._parameters()]

    loss_sparse, g_sparse = grads(True)
    loss_dense, g_dense = grads(False)
    assert loss_sparse == pytest.approx(loss_dense, rel=1e-5)
    for a, b in zip(g_sparse, g_dense):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def test_cli_decompose(planted, tmp_path, capsys):
    from interp.cli import main

    path = planted.X.save(tmp_path / "acts.safetensors")
    out = tmp_path / "snmf.safetensors"
    assert main(["decompose", str(path), "--method", "snmf", "--n-components", "16",
                 "--sparsity", "0.25", "--max-iter", "200", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert '"method": "snmf"' in printed and out.exists()
    assert isinstance(load(out), SNMF)
    bad = main(["decompose", str(path), "--method", "topk", "--n-components", "8", "--k", "16",
                "--out", str(tmp_path / "x.safetensors")])
    assert bad == 2 and "k=16 is larger" in capsys.readouterr().err


def test_dead_latent_handling(planted):
    """ReLU: dead latents are resampled towards badly reconstructed inputs; BatchTopK: the inference
    threshold keeps about k latents active per row."""
    x = planted.X.data
    relu = ReLUSAE(n_components=16, l1_coefficient=1.0, resample_every=0, dead_after=256, lr=3e-3, batch_size=256,
                   n_epochs=2, progress=False).fit(x)
    with torch.no_grad():  # kill latent 3: it can never fire again on its own
        relu.b_enc_[3] = -1e3
    relu._samples_since_fired[3] = 10**6
    relu._last_batch = (x[:256] * relu.input_scale_, torch.zeros(256, 64))
    assert relu.dead_latents_[3]
    n = relu.resample_dead()
    assert n >= 1 and relu.b_enc_[3] == 0 and not relu.dead_latents_[3]
    assert float(relu.components_[3].norm()) == pytest.approx(1.0, abs=1e-5)
    cos = torch.nn.functional.cosine_similarity(relu.components_[3:4], x[:256] * relu.input_scale_ - relu.b_dec_)
    assert float(cos.max()) == pytest.approx(1.0, abs=1e-4)  # the new direction is one of the inputs
    btk = BatchTopKSAE(k=4, **COMMON).fit(planted.X)
    assert float(btk.threshold_) > 0
    assert 2 <= btk.evaluate(planted.X).l0 <= 6
