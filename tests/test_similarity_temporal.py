"""interp.similarity.temporal: time-resolved RSA with planted answers (which layer's geometry the recording
carries at which time), a null false-positive rate, scipy references and the result contract."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch
from scipy.spatial.distance import pdist

from interp import Activations
from interp.errors import ConfigError, DimensionError, MismatchError
from interp.similarity.temporal import cross_temporal_rsa, sliding_rsa

pytestmark = pytest.mark.usefixtures("one_thread")

N_STIM, N_CH = 24, 32


def _layers(rng):
    return {f"layer{i}": rng.normal(size=(N_STIM, 20)) for i in range(3)}


def _recording(rng, layers, schedule, n_rep=3, n_subjects=1, noise=1.0, n_times=60):
    """Trials (stimulus x repetition x subject) over time; in [start, stop) the channels carry a random linear
    read-out of the scheduled layer's patterns (so the recording's RDM there follows that layer)."""
    rows, data = [], []
    mix = {name: rng.normal(size=(20, N_CH)) / np.sqrt(20) for name in layers}
    for subj in range(n_subjects):
        for rep in range(n_rep):
            x = rng.normal(scale=noise, size=(N_STIM, n_times, N_CH))
            for name, (a, b) in schedule.items():
                x[:, a:b] += (layers[name] @ mix[name])[:, None, :]
            data.append(x)
            rows += [{"stimulus": f"s{k:02d}", "subject": subj, "rep": rep} for k in range(N_STIM)]
    coords = {"sample": pd.DataFrame(rows), "time": {"time": np.arange(n_times) / 100.0}}
    return Activations(torch.from_numpy(np.concatenate(data)), ("sample", "time", "unit"), coords)


SCHEDULE = {"layer0": (0, 20), "layer1": (20, 40), "layer2": (40, 60)}


def test_planted_layer_identified_over_time():
    rng = np.random.default_rng(0)
    layers = _layers(rng)
    rec = _recording(rng, layers, SCHEDULE)
    tc = sliding_rsa(layers, rec, window=5, step=5, conditions="stimulus", n_permutations=200, seed=0)
    truth = np.repeat(["layer0", "layer1", "layer2"], 4)
    assert (tc.best().to_numpy() == truth).all()
    for name, (a, b) in SCHEDULE.items():
        sig = tc.clusters[name].mask
        inside = (tc.times >= a / 100) & (tc.times < b / 100)
        assert sig[inside].all() and not sig[~inside].any(), name
    frame = tc.to_frame()
    assert set(frame.columns) >= {"name", "time", "score", "significant", "p_value"} and len(frame) == 36
    assert tc.plot().data and "peak" in tc.summary()


def test_window_score_matches_scipy():
    rng = np.random.default_rng(1)
    layers = _layers(rng)
    rec = _recording(rng, layers, {"layer1": (10, 30)}, n_times=30)
    tc = sliding_rsa(layers["layer1"], rec, window=4, step=4, conditions="stimulus", rdm_method="euclidean",
                     method="pearson")
    # reference: average the trials per stimulus, then the window, squared Euclidean / n_channels, Pearson r
    X = rec.data.numpy().reshape(3, N_STIM, 30, N_CH).mean(0)
    for j, start in enumerate(range(0, 27, 4)):
        brain = pdist(X[:, start:start + 4].mean(1), "sqeuclidean") / N_CH
        model = pdist(layers["layer1"], "sqeuclidean") / 20
        assert tc.scores[0, j] == pytest.approx(scipy.stats.pearsonr(brain, model)[0], abs=1e-10)
    assert tc.times[0] == pytest.approx(0.015)


def test_groups_give_a_test_over_subjects():
    rng = np.random.default_rng(2)
    layers = _layers(rng)
    rec = _recording(rng, layers, {"layer2": (30, 50)}, n_rep=2, n_subjects=6, noise=2.0)
    tc = sliding_rsa(layers, rec, window=5, step=5, conditions="stimulus", groups="subject", n_permutations=500)
    assert tc.per_group.shape == (6, 3, 12) and tc.groups == list(range(6))
    sig = tc.clusters["layer2"].mask
    assert sig[6:10].all() and not sig[:5].any()
    assert not tc.clusters["layer0"].significant
    assert "sem" in tc.to_frame().columns


def test_null_false_positive_rate():
    """No layer geometry in the recording: a significant cluster in at most alpha + 0.05 of 100 data sets."""
    rng = np.random.default_rng(3)
    layer = rng.normal(size=(16, 10))
    hits = 0
    for k in range(100):
        x = np.random.default_rng(100 + k).normal(size=(16, 40, 12))
        x = (x + np.roll(x, 1, axis=1) + np.roll(x, 2, axis=1)) / np.sqrt(3)  # autocorrelated in time
        tc = sliding_rsa(layer, x, window=2, step=2, n_permutations=99, seed=k)
        hits += bool(tc.clusters["model"].significant)
    assert hits / 100 <= 0.05 + 0.05


def test_cross_temporal_rsa_finds_a_reactivation():
    rng = np.random.default_rng(4)
    layers = _layers(rng)
    rec = _recording(rng, layers, {"layer0": (5, 15)}, n_rep=4, n_times=50)
    x = rec.data.numpy()
    x[:, 35:45] += x[:, 5:15] - rng.normal(size=x[:, 5:15].shape)  # the same geometry again at 35-44
    odd, even = (Activations(torch.from_numpy(x[rec.coord("rep") % 2 == r]), rec.dims,
                             {"sample": rec.coords["sample"][rec.coord("rep") % 2 == r], "time": rec.coords["time"]})
                 for r in (1, 0))
    tg = cross_temporal_rsa(odd, even, window=5, step=5, conditions="stimulus", n_permutations=200)
    assert tg.scores.shape == (10, 10)
    m = tg.cluster.mask
    for i, j in [(1, 1), (1, 7), (7, 1), (7, 7), (2, 8)]:
        assert m[i, j], (i, j)
    assert not m[4, 4] and not m[0, 5] and "diagonal" in tg.summary()
    assert len(tg.to_frame()) == 100 and tg.plot().data
    same = cross_temporal_rsa(odd, window=5, step=5, conditions="stimulus")
    np.testing.assert_allclose(same.diagonal(), 1.0)


def test_model_as_rdms_and_bad_inputs():
    rng = np.random.default_rng(5)
    layers = _layers(rng)
    rec = _recording(rng, layers, {"layer0": (0, 10)}, n_rep=1, n_times=20)
    from interp.similarity import rdm

    rdms = {k: rdm(torch.as_tensor(v)) for k, v in layers.items()}
    a = sliding_rsa(rdms, rec, window=5, step=5)
    b = sliding_rsa(layers, rec, window=5, step=5)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-12)
    rho = sliding_rsa(layers, rec, window=5, step=5, method="rho-a", n_permutations=20)  # comparator without a fast path
    assert rho.clusters["layer0"].n_permutations == 20 and rho.best().iloc[0] == "layer0"
    with pytest.raises(MismatchError, match="has 20 stimuli"):
        sliding_rsa({"x": rng.normal(size=(20, 5))}, rec)
    with pytest.raises(ConfigError, match="window"):
        sliding_rsa(layers, rec, window=50)
    with pytest.raises(DimensionError, match="names no sample coordinate"):
        sliding_rsa(layers, rec, conditions="image")
    with pytest.raises(ConfigError, match="crossnobis"):
        sliding_rsa(layers, rec, rdm_method="crossnobis")
    with pytest.raises(DimensionError, match="'time' dim"):
        sliding_rsa(layers, Activations(torch.zeros(24, 5), ("sample", "unit")))
