"""Tests for patching.paths: JAS neuron paths (Wang et al. 2025) on a tiny ViT, a tiny TransformerBridge,
and (acceptance) on the zoo's digits-vit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_paths_protocol import _authors_influence_pattern
from torch import nn

from interp.errors import ConfigError, DimensionError, InterpError, SiteError
from patching import paths as P

pytestmark = pytest.mark.usefixtures("one_thread")  # small torch ops: one thread is faster on 2 cores

# ------------------------------------------------------------------------------------------------
# A tiny ViT on scikit-learn digits (8x8, 2x2 patches, CLS at position 0), trained in ~2 s
# ------------------------------------------------------------------------------------------------


class _MLP(nn.Module):
    def __init__(self, d, d_mlp):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(d, d_mlp), nn.GELU(), nn.Linear(d_mlp, d)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, d, heads, d_mlp):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.mlp = _MLP(d, d_mlp)

    def forward(self, x):
        y = self.ln1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class TinyViT(nn.Module):
    def __init__(self, d=32, heads=2, d_mlp=64, depth=3, n_classes=10):
        super().__init__()
        self.patch = nn.Linear(4, d)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.pos = nn.Parameter(torch.randn(1, 17, d) * 0.02)
        self.blocks = nn.ModuleList([_Block(d, heads, d_mlp) for _ in range(depth)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, n_classes)

    def forward(self, x):  # x: (B, 1, 8, 8)
        b = x.shape[0]
        p = x.reshape(b, 4, 2, 4, 2).permute(0, 1, 3, 2, 4).reshape(b, 16, 4)
        z = torch.cat([self.cls.expand(b, -1, -1), self.patch(p)], 1) + self.pos
        for blk in self.blocks:
            z = blk(z)
        return self.head(self.norm(z)[:, 0])


@pytest.fixture(scope="module")
def tiny_vit():
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32)[:, None]
    y = torch.tensor(d.target)
    model = TinyViT()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        idx = torch.randint(0, 1400, (64,))
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model, x[1400:], y[1400:]


SITES = [f"blocks.{i}.mlp.act" for i in range(3)]


def _cls_activations(model, x):
    """Independent capture of the CLS MLP hidden activations of every block (list of (B, d))."""
    acts = []
    hs = [b.mlp.act.register_forward_hook(lambda m, i, o: acts.append(o[:, 0].detach().clone())) for b in model.blocks]
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        for h in hs:
            h.remove()
    return acts, logits


def _reference_jas(model, x, y, path, steps):
    """JAS from Captum's IntegratedGradients on a function of the path neurons (our own hooks).

    Every CLS hidden vector is frozen at its clean value except the path neurons, which Captum
    interpolates from 0 (riemann_left = alpha k/m). IG_i = h_i * mean_k g_i, so sum_k g_i = m IG_i / h_i.
    """
    from captum.attr import IntegratedGradients

    clean, _ = _cls_activations(model, x)
    b, n_layers = path.shape
    rows = torch.arange(b)

    def f(v, images):
        r = v.shape[0] // b

        def hook(layer):
            def fn(mod, inp, out):
                out = out.clone()
                cls = clean[layer].repeat(r, 1).clone()
                cls[torch.arange(len(cls)), path[:, layer].repeat(r)] = v[:, layer]
                out[:, 0] = cls
                return out
            return fn

        hs = [blk.mlp.act.register_forward_hook(hook(layer)) for layer, blk in enumerate(model.blocks)]
        try:
            return torch.softmax(model(images), -1)
        finally:
            for h in hs:
                h.remove()

    h_path = torch.stack([clean[layer][rows, path[:, layer]] for layer in range(n_layers)], 1)
    ig = IntegratedGradients(f).attribute(h_path, baselines=torch.zeros_like(h_path), target=y,
                                          additional_forward_args=(x,), n_steps=steps, method="riemann_left")
    grad_sums = steps * ig / h_path
    return grad_sums.sum(1) * h_path.sum(1) / steps


def test_jas_matches_captum_integrated_gradients(tiny_vit):
    model, x, y = tiny_vit
    x, y = x[:6], y[:6]
    acts, _ = _cls_activations(model, x)
    path = torch.stack([a.argmax(1) for a in acts], 1)  # argmax-activation path: h > 0, safe to divide
    ours = P.joint_attribution_score(model, x, y, path, SITES, position=0, steps=8)
    ref = _reference_jas(model, x, y, path, steps=8)
    torch.testing.assert_close(ours, ref.float(), rtol=1e-4, atol=1e-6)


def test_activation_path_is_argmax_of_clean_cls_activation(tiny_vit):
    model, x, y = tiny_vit
    acts, _ = _cls_activations(model, x[:5])
    paths = P.find_paths(model, x[:5], y[:5], SITES, method="activation", score=False)
    assert torch.equal(paths.indices[:, :, 0], torch.stack([a.argmax(1) for a in acts], 1))


def test_batched_ig_equals_per_step_loop(tiny_vit):
    model, x, y = tiny_vit
    x, y = x[:4], y[:4]
    batched = P.find_paths(model, x, y, SITES, steps=8)
    loop = P.find_paths(model, x, y, SITES, steps=8, ig_batch=1)
    chunked = P.find_paths(model, x, y, SITES, steps=8, ig_batch=3)
    assert torch.equal(batched.indices, loop.indices) and torch.equal(batched.indices, chunked.indices)
    torch.testing.assert_close(batched.jas, loop.jas, rtol=1e-4, atol=1e-6)
    # search: L passes + 1 capture; JAS: 1 + 1 capture -> batched uses m times fewer gradient passes
    assert batched.passes.backward == len(SITES) + 1
    assert loop.passes.backward == 8 * (len(SITES) + 1)


def test_first_layer_choice_is_the_top_captum_ig_neuron(tiny_vit):
    """With an empty path, the layer-0 candidate score is plain IG of the CLS vector from a zero baseline."""
    from captum.attr import IntegratedGradients

    model, x, y = tiny_vit
    x, y = x[:3], y[:3]
    clean, _ = _cls_activations(model, x)

    def f(v, images):
        def fn(mod, inp, out):
            out = out.clone()
            out[:, 0] = v
            return out
        h = model.blocks[0].mlp.act.register_forward_hook(fn)
        try:
            return torch.softmax(model(images), -1)
        finally:
            h.remove()

    ig = IntegratedGradients(f).attribute(clean[0], baselines=torch.zeros_like(clean[0]), target=y,
                                          additional_forward_args=(x,), n_steps=12, method="riemann_left")
    top3 = P.find_paths(model, x, y, SITES, steps=12, top_k=3, score=False)
    assert torch.equal(top3.indices[:, 0, :], torch.topk(ig, 3, dim=1).indices)
    top1 = P.find_paths(model, x, y, SITES, steps=12, score=False)
    assert torch.equal(top1.indices[:, 0, 0], ig.argmax(1))
    # top-K paths hold K distinct neurons per layer
    assert all(len(set(row.tolist())) == 3 for row in top3.indices.reshape(-1, 3))


def test_manipulate_matches_manual_hooks(tiny_vit):
    """Every column against numbers computed here: the clean and the hand-edited model's P(target), and the
    difference and ratio of those (not of the result's own columns, which would restate the formula)."""
    model, x, y = tiny_vit
    x, y = x[:5], y[:5]
    paths = P.find_paths(model, x, y, SITES, method="random", seed=3, top_k=2, score=False)
    with torch.no_grad():
        clean = torch.softmax(model(x), -1)[torch.arange(5), y].numpy()
    for op, factor in (("remove", 0.0), ("enhance", 2.0)):
        frame = P.manipulate(model, x, y, paths, op=op)

        def hook(layer, factor=factor):
            def fn(mod, inp, out):
                out = out.clone()
                for b in range(len(out)):
                    out[b, 0, paths.indices[b, layer]] *= factor
                return out
            return fn

        hs = [blk.mlp.act.register_forward_hook(hook(layer)) for layer, blk in enumerate(model.blocks)]
        with torch.no_grad():
            probs = torch.softmax(model(x), -1)[torch.arange(5), y]
        for h in hs:
            h.remove()
        np.testing.assert_allclose(frame["p_clean"].to_numpy(), clean, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(frame["p_edit"].to_numpy(), probs.numpy(), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(frame["delta_p"].to_numpy(), probs.numpy() - clean, atol=1e-6)
        np.testing.assert_allclose(frame["ratio_p"].to_numpy(), probs.numpy() / clean, rtol=1e-4)
        correct = (model(x).argmax(-1) == y).numpy()
        assert (frame["correct_clean"].to_numpy() == correct).all()


def test_mean_gradient_baseline_is_the_authors_influence_pattern(tiny_vit):
    """NeuronPath's ``path/influence_pattern.py``: input scaled by k/m (k = 0..m-1); per layer, argmax of
    dP(target)/d(CLS neurons) averaged over the steps and over all samples of a class; one path per class.
    Checked against a direct re-implementation with forward hooks (one pass per layer, as the authors)."""
    model, x, y = tiny_vit
    x, y = x[:12], y[:12]
    m = 5
    paths = P.find_paths(model, x, y, SITES, method="mean_gradient", steps=m, score=False)
    expected = _authors_influence_pattern(model, x, y, m)
    for b in range(len(y)):
        for layer in range(3):
            assert int(paths.indices[b, layer, 0]) == expected[(int(y[b]), layer)]


def test_our_paths_beat_baselines_on_tiny_vit(tiny_vit):
    """The issue's acceptance criteria, on the tiny ViT (digits-vit below when the zoo has it)."""
    model, x, y = tiny_vit
    keep = model(x).argmax(-1) == y  # paths of correctly classified images
    x, y = x[keep][:24], y[keep][:24]
    cmp = P.compare_paths(model, x, y, SITES, steps=10, n_random=2)
    jas = cmp.contrast("jas", op="remove", column="jas").set_index("other")
    assert (jas["lo"] > 0).all(), jas  # higher JAS than activation, the authors' influence pattern and random paths
    drop = cmp.contrast("jas", op="remove").set_index("other")
    assert drop.loc["random", "hi"] < 0 and drop.loc["activation", "hi"] < 0, drop
    s = cmp.means().set_index(["op", "method"])
    assert s.loc[("remove", "jas"), "delta_p_hi"] < 0  # removing our path lowers P(target)
    fig = cmp.plot()
    assert len(fig.data) == 2


# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------


def test_sites_not_in_layer_order(tiny_vit):
    model, x, y = tiny_vit
    with pytest.raises(ConfigError, match="layer order"):
        P.find_paths(model, x[:2], y[:2], SITES[::-1])


def test_target_class_out_of_range(tiny_vit):
    model, x, y = tiny_vit
    with pytest.raises(ConfigError, match="out of range.*10 classes"):
        P.find_paths(model, x[:2], torch.tensor([3, 10]), SITES)
    with pytest.raises(ConfigError, match="out of range"):
        P.manipulate(model, x[:2], torch.tensor([-1, 0]), torch.zeros(2, 3, dtype=torch.long), SITES)
    with pytest.raises(DimensionError, match="targets"):
        P.find_paths(model, x[:3], torch.tensor([1, 2]), SITES)


def test_model_without_the_listed_sites(tiny_vit):
    model, x, y = tiny_vit
    with pytest.raises(SiteError, match="no site matching 'blocks.0.mlp.gelu'.*blocks.0.mlp"):
        P.find_paths(model, x[:2], y[:2], ["blocks.0.mlp.gelu", "blocks.1.mlp.act"])
    with pytest.raises(ConfigError, match="distinct"):
        P.find_paths(model, x[:2], y[:2], [SITES[0], SITES[0]])
    with pytest.raises(ConfigError, match="cannot guess"):
        P.mlp_sites(nn.Linear(3, 3))
    with pytest.raises(ConfigError, match="unknown path method"):
        P.find_paths(model, x[:2], y[:2], SITES, method="jaz")
    with pytest.raises(InterpError):
        P.find_paths(model, x[:2], y[:2], SITES, steps=0)


# ------------------------------------------------------------------------------------------------
# Language models: a tiny TransformerBridge, last position, token targets
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_bridge():
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(d_model=32, n_layers=2, n_heads=4, d_head=8, n_ctx=16, d_vocab=20, d_mlp=48,
                                  act_fn="gelu", normalization_type="LN", seed=0)
    model = TransformerBridge.boot_native(cfg)
    model.eval()
    return model


def test_bridge_paths_last_position(tiny_bridge):
    model = tiny_bridge
    tokens = torch.randint(0, 20, (3, 6), generator=torch.Generator().manual_seed(0))
    target = torch.tensor([4, 7, 11])
    sites = P.mlp_sites(model)
    assert sites == ["blocks.0.mlp.hook_post", "blocks.1.mlp.hook_post"]
    batched = P.find_paths(model, tokens, target, position=-1, steps=6)
    loop = P.find_paths(model, tokens, target, position=-1, steps=6, ig_batch=1)
    assert batched.indices.shape == (3, 2, 1) and torch.equal(batched.indices, loop.indices)
    torch.testing.assert_close(batched.jas, loop.jas, rtol=1e-4, atol=1e-7)
    infl = P.find_paths(model, tokens, target, method="influence", position=-1, steps=4)
    assert infl.indices.shape == (3, 2, 1)
    # removal equals zeroing by hand at the last position with run_with_hooks
    frame = P.manipulate(model, tokens, target, batched, position=-1)

    def zero(layer):
        def fn(act, hook):
            act = act.clone()
            act[torch.arange(3), -1, batched.indices[:, layer, 0]] = 0
            return act
        return fn

    with torch.no_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=[(s, zero(i)) for i, s in enumerate(sites)])
    p = torch.softmax(logits[:, -1], -1)[torch.arange(3), target]
    np.testing.assert_allclose(frame["p_edit"].to_numpy(), p.numpy(), rtol=1e-5, atol=1e-7)


def test_bridge_bad_sites_and_targets(tiny_bridge):
    tokens = torch.randint(0, 20, (1, 5))
    with pytest.raises(SiteError, match="hook_post"):
        P.find_paths(tiny_bridge, tokens, 3, ["blocks.0.mlp.hook_posst"], position=-1)
    with pytest.raises(ConfigError, match="layer order"):
        P.find_paths(tiny_bridge, tokens, 3, ["blocks.1.mlp.hook_post", "blocks.0.mlp.hook_post"], position=-1)
    with pytest.raises(ConfigError, match="20 classes"):
        P.find_paths(tiny_bridge, tokens, 20, position=-1)


# ------------------------------------------------------------------------------------------------
# Similarity within vs across classes, diagram, frames
# ------------------------------------------------------------------------------------------------


def test_path_similarity_hand_computed_and_planted():
    idx = torch.tensor([[[1, 2], [3, 4]], [[1, 5], [3, 4]], [[7, 8], [9, 0]]])  # 3 paths, 2 layers, K=2
    sim = P.path_similarity(idx, ["a", "a", "b"], n_permutations=50)
    # pair (0,1): layer 0 Jaccard 1/3, layer 1 Jaccard 1 -> 2/3; pairs with path 2: 0
    np.testing.assert_allclose(sim.pairwise[0, 1], 2 / 3)
    assert sim.within == pytest.approx(2 / 3) and sim.across == 0.0
    # planted structure: each class mostly uses its own neuron per layer
    g = torch.Generator().manual_seed(0)
    labels = np.repeat(np.arange(4), 10)
    base = torch.tensor(labels)[:, None].repeat(1, 5) * 10
    noise = torch.randint(0, 40, base.shape, generator=g)
    use_noise = torch.rand(base.shape, generator=g) < 0.4
    planted = torch.where(use_noise, noise, base)
    sim = P.path_similarity(planted, labels, n_permutations=200)
    assert sim.within > sim.across + 0.2 and sim.p_value < 0.01
    shuffled = P.path_similarity(planted, np.random.default_rng(0).permutation(labels), n_permutations=200)
    assert shuffled.p_value > 0.05
    assert sim.class_matrix.shape == (4, 4) and len(sim.plot().data) == 1


def test_path_diagram_and_frame():
    idx = torch.tensor([[[1], [3], [5]], [[1], [4], [5]], [[2], [3], [5]]])
    paths = P.NeuronPaths(indices=idx, sites=SITES, method="jas", targets=torch.tensor([0, 0, 1]),
                          jas=torch.tensor([0.1, 0.2, 0.3]))
    fig = paths.plot()
    nodes = fig.data[-1]
    assert len(nodes.x) == 5  # neurons {1,2}, {3,4}, {5}
    edges = fig.data[:-1]
    assert len(edges) == 5  # layer 0->1: (1,3), (1,4), (2,3); layer 1->2: (3,5), (4,5)
    frame = paths.to_frame()
    assert len(frame) == 9 and set(frame.columns) >= {"sample", "layer", "site", "neuron", "jas"}
    assert paths.frequency()[2].to_dict() == {5: 3}


# ------------------------------------------------------------------------------------------------
# Acceptance on the zoo's digits-vit (trained once and cached by interp.models.digits)
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_vit():
    import interp.models
    from interp.models.digits import load_digits_split

    model, preprocess = interp.models.load("digits-vit")
    split = load_digits_split()
    x = preprocess(split.test_images[:40])
    y = torch.tensor(split.test_labels[:40])
    return model, x, y


def test_digits_vit_acceptance(digits_vit):
    """Issue 6 acceptance: higher JAS than both baselines; removing our paths lowers P(target) more than
    removing random paths and the argmax-activation path (mean over 40 test images, 95% CI excludes 0)."""
    model, x, y = digits_vit
    cmp = P.compare_paths(model, x, y, P.mlp_sites(model), position=0, steps=20, n_random=3)
    jas = cmp.contrast("jas", op="remove", column="jas").set_index("other")
    assert jas.loc["activation", "lo"] > 0 and jas.loc["mean_gradient", "lo"] > 0, jas
    drop = cmp.contrast("jas", op="remove").set_index("other")
    assert drop.loc["random", "hi"] < 0 and drop.loc["activation", "hi"] < 0, drop
    enhance = cmp.contrast("jas", op="enhance").set_index("other")
    assert enhance.loc["random", "lo"] > 0, enhance  # enhancing our path raises P(target) more than random
    # issue 21: the authors' headline, p_edit / p_clean averaged per class, for JAS and both baselines (the
    # authors' influence pattern and the argmax activation), per class and contrasted with JAS
    means = cmp.means().set_index(["op", "method"])
    per_class = cmp.by_class()
    for method in ("jas", "activation", "mean_gradient"):
        assert means.loc[("remove", method), "n_classes"] == y.unique().numel()
        rows = per_class[(per_class.op == "remove") & (per_class.method == method)]
        assert len(rows) == y.unique().numel()
        assert means.loc[("remove", method), "ratio_p_class"] == pytest.approx(rows.ratio_p.mean(), rel=1e-9)
    ratio = cmp.contrast("jas", op="remove", column="ratio_p").set_index("other")
    assert {"activation", "mean_gradient", "random"} <= set(ratio.index)
    assert ratio.loc["activation", "hi"] < 0, ratio  # removing our path lowers the ratio more than activation's
    assert "ratio" in cmp.summary()
    # paths of the same digit overlap more than paths of different digits
    sim = P.path_similarity(cmp.paths["jas"], y.numpy(), n_permutations=200)
    assert sim.within > sim.across and sim.p_value < 0.05


def test_cli_paths_digits_vit(digits_vit, tmp_path, capsys):
    from interp.cli import main

    out, csv = tmp_path / "paths.html", tmp_path / "paths.csv"
    assert main(["paths", "digits-vit", "--n", "6", "--steps", "4", "--compare", "--n-random", "1", "--quiet",
                 "--out", str(out), "--csv", str(csv)]) == 0
    text = capsys.readouterr().out
    assert "jas paths (6 samples, 4 layers" in text and "activation" in text
    html = out.read_text()
    assert "Path diagram" in html and "plotly" in html.lower()
    import pandas as pd

    frame = pd.read_csv(csv)
    assert len(frame) == 6 * 4 and frame["neuron"].between(0, 127).all()
