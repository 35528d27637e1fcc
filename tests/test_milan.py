"""MILAN (Hernandez et al. 2022; evandez/neuron-descriptions): exemplars with masks, describers, PMI rerank.

Ground truth: a planted conv model whose unit c is the mean of colour channel c over 2x2 cells, on images
with one bright 2x2 patch in the channel of their class; the reference for masks is NetDissect's rule
written out (activation map upsampled bilinearly, cut at the unit's 0.99 quantile over the dataset).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp import ConfigError, DimensionError
from interp.label.milan import CaptionerDescriber, RetrievalDescriber, describe_units, pmi_rerank, unit_exemplars


@pytest.fixture(scope="module")
def planted():
    gen = torch.Generator().manual_seed(0)
    n = 60
    labels = np.repeat([0, 1, 2], n // 3)
    images = 0.05 * torch.rand(n, 3, 8, 8, generator=gen)
    where = torch.randint(0, 4, (n, 2), generator=gen) * 2
    for i in range(n):
        r, c = where[i].tolist()
        images[i, labels[i], r:r + 2, c:c + 2] = 1.0 + 0.01 * i
    conv = torch.nn.Conv2d(3, 3, 1, bias=False)   # unit c reads colour channel c
    with torch.no_grad():
        conv.weight.zero_()
        for ch in range(3):
            conv.weight[ch, ch] = 1.0
    pool = torch.nn.Conv2d(3, 3, 2, stride=2, bias=False)   # a coarser 4x4 map of the same units
    with torch.no_grad():
        pool.weight.zero_()
        for ch in range(3):
            pool.weight[ch, ch] = 0.25
    model = torch.nn.Sequential(conv, torch.nn.ReLU(), pool, torch.nn.Flatten(), torch.nn.Linear(48, 3))
    return model, images, labels, where


def test_exemplars_are_the_top_inputs_and_masks_the_driving_region(planted):
    model, images, labels, where = planted
    ex = unit_exemplars(model, images, "1", k=15)
    maps = torch.nn.functional.conv2d(images, model[0].weight).relu()
    for u in range(3):
        pooled = maps[:, u].reshape(60, -1).amax(1)
        assert ex.indices[u].tolist() == pooled.topk(15).indices.tolist()
        assert (labels[ex.indices[u]] == u).all()               # the 15 brightest patches of colour u
        thr = torch.quantile(maps[:, u].reshape(-1).double(), 0.99).item()
        assert ex.thresholds[u] == pytest.approx(thr)
        i = int(ex.indices[u, 0])
        up = torch.nn.functional.interpolate(maps[i:i + 1, u:u + 1], size=(8, 8), mode="bilinear", align_corners=False)
        np.testing.assert_array_equal(ex.masks[u, 0], (up[0, 0] >= thr).numpy())
        r, c = where[i].tolist()
        assert ex.masks[u, 0, r:r + 2, c:c + 2].all() and ex.masks[u, 0].mean() < 0.25   # the patch, not the image
    coarse = unit_exemplars(model, images, "2", k=15)    # 4x4 maps: masks from the bilinear upsampling
    cmaps = torch.nn.functional.conv2d(maps, model[2].weight, stride=2)
    i = int(coarse.indices[1, 0])
    up = torch.nn.functional.interpolate(cmaps[i:i + 1, 1:2], size=(8, 8), mode="bilinear", align_corners=False)
    np.testing.assert_array_equal(coarse.masks[1, 0], (up[0, 0] >= coarse.thresholds[1]).numpy())
    masked = ex.masked(images, 0)
    assert masked.shape == (15, 3, 8, 8) and float(masked[0][~torch.as_tensor(ex.masks[0, 0]).expand(3, 8, 8)].abs().max()) == 0
    dense = unit_exemplars(model, images, "4", k=5)      # a Linear layer: masks cover the whole input
    assert dense.masks.all() and dense.indices.shape == (3, 5)
    assert len(ex.to_frame()) == 45
    with pytest.raises(DimensionError):
        unit_exemplars(model, images[0], "1")
    with pytest.raises(ConfigError):
        unit_exemplars(model, images, "1", units=[7])


def test_retrieval_describer_and_pmi_rerank(planted, tmp_path):
    from interp.label.report import build_label_report

    model, images, labels, _ = planted
    res = describe_units(model, images, "1", RetrievalDescriber(labels, {0: "red", 1: "green", 2: "blue"}))
    assert res.to_frame().description.tolist() == ["red", "green", "blue"]
    html = build_label_report([], tmp_path / "labels.html", extra=[res]).read_text()
    assert "UnitDescriptions" in html or "MILAN" in html
    assert "green" in html
    assert res.to_frame().log_p_given_exemplars.tolist() == [0.0, 0.0, 0.0] and "unit 0: red" in res.summary()
    # PMI: log p(d|E) - 0.2 log p(d) prefers the rarer label when the exemplars hold both about equally
    ranked = pmi_rerank([("dog", np.log(0.5)), ("grass", np.log(0.5))], np.log([0.01, 0.6]))
    assert ranked.description.tolist() == ["dog", "grass"]
    np.testing.assert_allclose(ranked.score, [np.log(0.5) - 0.2 * np.log(0.01), np.log(0.5) - 0.2 * np.log(0.6)])
    flat = pmi_rerank([("dog", np.log(0.4)), ("grass", np.log(0.6))], np.log([0.01, 0.6]), pmi_weight=0.0)
    assert flat.description.tolist() == ["grass", "dog"]


def test_a_tiny_random_captioner_runs_through_the_describer_interface(planted):
    model, images, _, _ = planted
    torch.manual_seed(0)
    words = ["red", "green", "blue", "patch", "corner", "dark"]
    net = torch.nn.Linear(3, len(words))

    def caption(masked):                 # a tiny random image-to-text model: 3 greedy words, 2 candidates
        with torch.no_grad():
            logp = net(masked.mean((0, 2, 3))).log_softmax(-1)
        top = logp.topk(3)
        return [(" ".join(words[i] for i in top.indices.tolist()), float(top.values.sum())),
                (words[int(top.indices[0])], float(top.values[0]))]

    describer = CaptionerDescriber(caption)
    res = describe_units(model, images, "1", describer, units=[0, 2], k=5)
    frame = res.to_frame()
    assert frame.unit.tolist() == [0, 2] and (frame.n_candidates == 2).all()
    for unit in (0, 2):
        c = res.candidates[unit]
        assert c.description.iloc[0] == frame.set_index("unit").loc[unit, "description"]
        assert (np.diff(c.score) <= 0).all()
    with pytest.raises(ConfigError, match="describer"):
        describe_units(model, images, "1", object())
