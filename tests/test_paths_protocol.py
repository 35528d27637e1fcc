"""NeuronPath's evaluation as the authors run it (foundation-model-research/NeuronPath, commit 5f93d0b).

References re-implemented here from their code: the influence-pattern baseline (``path/influence_pattern.py``:
input scaled by k/m, per-layer argmax of the step- and class-averaged gradient at CLS), the probability
deviation (``analysis/plot_probability_deviation.ipynb``: p_edit / p_base per image, averaged per class),
the class similarity (``experiments/similarity/pair-sim.py``: ``sklearn`` cosine of the class x neuron
frequency matrix) and pruning (``topk/.../modeling_VIT_edit.py``, ``edit_operation="prune"``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import patching.paths as P
from interp import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits_vit():
    import interp.models
    from interp.models.digits import load_digits_split

    model, preprocess = interp.models.load("digits-vit")
    split = load_digits_split()
    return model, preprocess(split.test_images[:30]), torch.tensor(split.test_labels[:30])


def _authors_influence_pattern(model, x, y, m):
    """path/influence_pattern.py: for each class, scaled inputs k/m x (k = 0..m-1) of all its images, then per
    layer the argmax over neurons of the CLS gradient of P(class) averaged over steps and images."""
    expected = {}
    for cls in torch.unique(y).tolist():
        scaled = torch.cat([x[y == cls] * (k / m) for k in range(m)])
        for layer, block in enumerate(model.blocks):
            kept = {}

            def keep(mod, inp, out, kept=kept):
                out.retain_grad()
                kept["a"] = out

            handle = block.mlp.act.register_forward_hook(keep)
            prob = torch.softmax(model(scaled), -1)[:, cls].sum()
            handle.remove()
            prob.backward()
            model.zero_grad(set_to_none=True)
            expected[(cls, layer)] = int(kept["a"].grad[:, 0].mean(0).argmax())
    return expected


def test_mean_gradient_is_the_authors_influence_pattern_on_digits_vit(digits_vit):
    model, x, y = digits_vit
    assert "mean_gradient" in P.METHODS and "influence" not in P.METHODS  # the authors' baseline is the default
    paths = P.find_paths(model, x, y, P.mlp_sites(model), method="mean_gradient", steps=20, score=False)
    expected = _authors_influence_pattern(model, x, y, 20)
    got = {(int(y[b]), li): int(paths.indices[b, li, 0]) for b in range(len(y)) for li in range(len(model.blocks))}
    assert got == expected


def test_ratio_per_class_frequency_cosine_and_pruning(digits_vit):
    from sklearn.metrics.pairwise import cosine_similarity

    model, x, y = digits_vit
    sites = P.mlp_sites(model)
    cmp = P.compare_paths(model, x, y, sites, methods=("jas", "mean_gradient"), ops=("remove",), steps=4, n_random=1)
    frame = cmp.frame
    means = cmp.means().set_index(["op", "method"])
    for method in ("jas", "mean_gradient"):  # plot_probability_deviation: ratio per image, mean per class
        f = frame[frame.method == method]
        per_class = (f.p_edit / f.p_clean).groupby(f.target).mean()
        assert means.loc[("remove", method), "ratio_p_class"] == pytest.approx(per_class.mean(), rel=1e-6)
        assert means.loc[("remove", method), "n_classes"] == y.unique().numel()
    assert "ratio" in cmp.summary() and len(cmp.by_class()) == 2 * y.unique().numel()
    # pair-sim.py: cosine_similarity(freq.reshape(n_classes, -1)) of per-class neuron counts on the paths
    paths = cmp.paths["jas"]
    sim = P.frequency_similarity(paths, y.numpy(), n_units=128, n_permutations=50)
    freq = np.zeros((len(sim.classes), len(sites), 128))
    for ci, c in enumerate(sim.classes):
        for b in np.flatnonzero(y.numpy() == c):
            for li in range(len(sites)):
                freq[ci, li, int(paths.indices[b, li, 0])] += 1
    np.testing.assert_allclose(sim.class_matrix.to_numpy(), cosine_similarity(freq.reshape(len(sim.classes), -1)),
                               atol=1e-12)
    assert len(sim.most_similar(2)) == 2 * len(sim.classes) and 0 < sim.p_value <= 1
    # pruning: keep the class's modal path neurons, zero each other neuron with probability `fraction`
    pruned = P.prune(model, x, y, paths, fraction=0.0)
    np.testing.assert_allclose(pruned.ratio_p, 1.0, rtol=1e-5)  # nothing pruned
    full = P.prune(model, x, y, paths, fraction=1.0)
    cls0 = int(y[0])
    members = paths.indices[y == cls0][:40, :, 0]
    modal = [int(torch.bincount(members[:, li]).argmax()) for li in range(len(sites))]
    handles = []
    for li, block in enumerate(model.blocks):   # modeling_VIT_edit: x[b, 0, mask] = 0 with every non-path neuron
        def edit(mod, inp, out, keep=modal[li]):
            out = out.clone()
            mask = torch.ones(out.shape[-1], dtype=torch.bool)
            mask[keep] = False
            out[:, 0, mask] = 0.0
            return out
        handles.append(block.mlp.act.register_forward_hook(edit))
    with torch.no_grad():
        p = torch.softmax(model(x[:1]), -1)[0, cls0]
    for h in handles:
        h.remove()
    assert full.p_edit[0] == pytest.approx(float(p), rel=1e-5)
    assert (full.op == "prune").all()
    with pytest.raises(ConfigError, match="fraction"):
        P.prune(model, x, y, paths, fraction=1.5)


def test_mean_gradient_on_a_language_model_scales_the_embedding(tiny_bridge):
    """The authors' influence pattern on token inputs: the embedding output is scaled by k/m (hook_embed)."""
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 50, (3, 6), generator=gen)
    targets = torch.tensor([7, 7, 9])
    m = 3
    paths = P.find_paths(tiny_bridge, tokens, targets, method="mean_gradient", position=-1, steps=m, score=False)
    for cls in (7, 9):
        rows = tokens[targets == cls]
        for layer in range(2):
            site, grads = f"blocks.{layer}.mlp.hook_post", []
            for k in range(m):
                kept = {}

                def keep(act, hook, kept=kept):
                    act.retain_grad()
                    kept["a"] = act
                    return act

                logits = tiny_bridge.run_with_hooks(rows, fwd_hooks=[("hook_embed", lambda e, hook, k=k: e * (k / m)),
                                                                     (site, keep)])
                torch.softmax(logits[:, -1], -1)[:, cls].sum().backward()
                grads.append(kept["a"].grad[:, -1])
            expected = int(torch.cat(grads).mean(0).argmax())
            assert all(int(paths.indices[b, layer, 0]) == expected for b in (targets == cls).nonzero().reshape(-1))
