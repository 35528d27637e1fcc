"""interp.compare: the layer-by-layer model-vs-brain pipeline, its report section and CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import interp
from interp import Activations
from interp.errors import ConfigError, MismatchError, NaNError
from interp.similarity import RDMs, cka, compare_rdms, rdm, rsa_noise_ceiling
from interp.similarity.compare import SimilarityProfile, random_weights

pytestmark = pytest.mark.usefixtures("one_thread")  # small torch ops: one thread is faster on 2 cores


@pytest.fixture(scope="module")
def synthetic():
    """Three 'layers' of increasing similarity to a latent code, and 4 noisy 'subject' RDMs of it."""
    rng = np.random.default_rng(0)
    n = 30
    ids = [f"s{i:02d}" for i in range(n)]
    latent = rng.normal(size=(n, 10))
    layers = {f"layer{k}": Activations(torch.as_tensor(latent @ rng.normal(size=(10, 20)) * k + rng.normal(size=(n, 20)) * 3),
                                       ("sample", "unit"), coords={"sample": {"id": ids}}) for k in range(3)}
    subj = np.stack([rdm(latent + rng.normal(size=latent.shape) * 0.8).numpy() for _ in range(4)])
    return layers, RDMs(torch.as_tensor(subj), ids), latent, ids


def test_rsa_profile_matches_direct_computation(synthetic):
    layers, subjects, _, _ = synthetic
    prof = interp.compare(layers, None, subjects, method="rsa:spearman", n_bootstraps=100, n_permutations=50, progress=False)
    assert isinstance(prof, SimilarityProfile)
    for k, site in enumerate(layers):
        direct = np.mean([compare_rdms(rdm(layers[site].data), subjects.data[s], "spearman") for s in range(4)])
        assert prof.frame["score"][k] == pytest.approx(direct, abs=1e-12)
        assert prof.frame["low"][k] <= prof.frame["score"][k] <= prof.frame["high"][k]
    nc = rsa_noise_ceiling(subjects, "spearman")
    assert (prof.ceiling.lower, prof.ceiling.upper) == pytest.approx((nc.lower, nc.upper))
    assert prof.best()["site"] == "layer2"
    assert prof.frame["p_value"].iloc[2] == pytest.approx(1 / 51)
    assert prof.attrs["over"] == "stimuli+subjects"
    fig = prof.plot()
    assert len(fig.data) == 1


def test_paired_difference_and_pattern_methods(synthetic):
    layers, subjects, latent, ids = synthetic
    a = interp.compare({"l2": layers["layer2"]}, None, subjects, n_bootstraps=100, progress=False)
    b = interp.compare({"l0": layers["layer0"]}, None, subjects, n_bootstraps=100, progress=False)
    d = a.difference(b)
    assert d.low > 0  # the informative layer beats the noise layer, with a paired bootstrap CI
    c = interp.compare({"l0": layers["layer0"]}, None, subjects, n_bootstraps=100, seed=1, progress=False)
    with pytest.raises(ConfigError, match="not paired"):
        a.difference(c)
    recording = Activations(torch.as_tensor(latent), ("sample", "unit"), coords={"sample": {"stimulus": ids}})
    prof = interp.compare(layers, None, recording, method="cka", n_bootstraps=50, progress=False)
    for k, site in enumerate(layers):
        assert prof.frame["score"][k] == pytest.approx(cka(layers[site].data, latent), abs=1e-10)
    assert prof.ceiling is None
    song = interp.compare(layers, None, recording, method="cka:song", n_bootstraps=20, progress=False)
    assert song.frame["score"][2] == pytest.approx(cka(layers["layer2"].data, latent, estimator="song"), abs=1e-10)
    proc = interp.compare(layers, None, recording, method="procrustes", n_bootstraps=5, progress=False)
    assert proc.frame["score"].is_monotonic_increasing


def test_pipeline_bad_inputs(synthetic):
    layers, subjects, latent, ids = synthetic
    shuffled = {"l": layers["layer1"].isel(sample=list(range(29)))}
    with pytest.raises(MismatchError, match=r"1 only in the recording \['s29'\]"):
        interp.compare(shuffled, None, subjects, n_bootstraps=0, progress=False)
    voxels = latent.copy()
    voxels[:, 3] = np.nan
    rec = Activations(torch.as_tensor(voxels), ("sample", "unit"), coords={"sample": {"stimulus": ids}})
    with pytest.raises(NaNError, match="nan_policy='drop'"):
        interp.compare(layers, None, rec, method="rsa", n_bootstraps=0, progress=False)
    dropped = interp.compare(layers, None, rec, method="rsa", n_bootstraps=0, nan_policy="drop", progress=False)
    clean = Activations(torch.as_tensor(np.delete(latent, 3, axis=1)), ("sample", "unit"),
                        coords={"sample": {"stimulus": ids}})
    ref = interp.compare(layers, None, clean, method="rsa", n_bootstraps=0, progress=False)
    np.testing.assert_allclose(dropped.frame["score"], ref.frame["score"])
    with pytest.raises(ConfigError, match="only method='rsa"):
        interp.compare(layers, None, subjects, method="cka", progress=False)
    with pytest.raises(ConfigError, match="unknown method"):
        interp.compare(layers, None, subjects, method="mutual_info", progress=False)
    from interp.errors import DimensionError

    with pytest.raises(DimensionError, match="square"):
        RDMs(np.zeros((2, 5, 4)))


@pytest.fixture(scope="module")
def k92():
    return interp.data.load("kriegeskorte92")


def test_kriegeskorte92_monkey_vs_human_it(k92):
    assert compare_rdms(k92.rdm("monkey_IT"), k92.rdm("human_IT"), "spearman") == pytest.approx(0.4389, abs=1e-4)
    human = k92.rdms.sel(name="human_IT_s*")
    nc = rsa_noise_ceiling(RDMs(human.data), "spearman")  # PAPERS.md 3.6 B
    assert (nc.lower, nc.upper) == pytest.approx((0.3280, 0.5250), abs=1e-4)


def _tiny_cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, stride=4), torch.nn.ReLU(), torch.nn.Conv2d(8, 16, 3, stride=2),
                               torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten()).eval()


def test_capture_pipeline_on_kriegeskorte92(k92):
    net = _tiny_cnn()
    human = k92.rdms.sel(name="human_IT_s*")
    images = k92.images_tensor()[:, :, ::2, ::2]
    prof = interp.compare(net, images, human, sites=["1", "3", "5"], n_bootstraps=30, progress=False)
    assert prof.frame["site"].tolist() == ["1", "3", "5"]
    assert prof.attrs["stimuli"][0] == "img01"
    assert prof.ceiling.upper == pytest.approx(0.5250, abs=1e-4)
    # the same by hand: hooks, RDMs, mean Spearman over the 8 subject-session RDMs
    acts = {}
    hooks = [net[int(s)].register_forward_hook(lambda m, i, o, s=s: acts.__setitem__(s, o.flatten(1)))
             for s in ["1", "3", "5"]]
    with torch.no_grad():
        net(images)
    for h in hooks:
        h.remove()
    for k, site in enumerate(["1", "3", "5"]):
        direct = np.mean([compare_rdms(rdm(acts[site].double()), human.data[s], "spearman") for s in range(8)])
        assert prof.frame["score"][k] == pytest.approx(direct, abs=1e-5)
    # stimuli listed by id in another order are matched to the recording's order
    order = np.random.default_rng(0).permutation(92)
    ids = np.array(prof.attrs["stimuli"])[order]
    again = interp.compare(net, images[order], human, sites=["5"], stimulus_ids=list(ids), n_bootstraps=0, progress=False)
    assert again.frame["score"][0] == pytest.approx(prof.frame["score"][2], abs=1e-6)
    with pytest.raises(MismatchError, match="img92"):
        interp.compare(net, images[:91], human, sites=["5"], stimulus_ids=list(prof.attrs["stimuli"][:91]),
                       n_bootstraps=0, progress=False)


def test_random_weights_changes_parameters():
    net = _tiny_cnn()
    rnd = random_weights(net, seed=1)
    assert not torch.equal(net[0].weight, rnd[0].weight)
    assert torch.equal(random_weights(net, seed=1)[0].weight, rnd[0].weight)


def test_report_section_and_cli(k92, tmp_path, monkeypatch, synthetic):
    from interp.report.html import Report
    from interp.similarity import SimilarityProfiles

    layers, subjects, _, _ = synthetic
    a = interp.compare(layers, None, subjects, n_bootstraps=20, progress=False)
    b = interp.compare({k: v for k, v in list(layers.items())[:2]}, None, subjects, n_bootstraps=20, progress=False)
    both = SimilarityProfiles([a, b], ["A", "B"])
    text = both.summary()
    assert "noise ceiling" in text.lower() and "paired bootstrap" in text
    d = a.difference(b)
    assert f"{d.estimate:.4f} [{d.low:.4f}, {d.high:.4f}]" in text
    assert len(both.plot().data) == 2 and set(both.to_frame()["model"]) == {"A", "B"}
    rep = Report("t")
    rep.add(both, title="Brain similarity")
    out = rep.write(tmp_path / "r.html")
    assert "layer2" in out.read_text() and "Brain similarity" in out.read_text()

    from interp import cli, models

    monkeypatch.setattr(models, "load", lambda name, device=None: (_tiny_cnn(), lambda x: torch.as_tensor(
        np.stack(x)).permute(0, 3, 1, 2).float()[:, :, ::2, ::2] / 255))
    monkeypatch.setattr(models, "available", lambda: ["tiny"])
    code = cli.main(["compare", "tiny", "--data", "kriegeskorte92", "--rdms", "human_IT_s*", "--sites", "3", "5",
                     "--n-boot", "20", "--random-weights", "--quiet",
                     "--out", str(tmp_path / "k.html"), "--csv", str(tmp_path / "k.csv")])
    assert code == 0
    import pandas as pd

    table = pd.read_csv(tmp_path / "k.csv")
    assert len(table) == 4 and set(table["model"]) == {"tiny", "tiny (random weights)"}
    assert "noise ceiling" in (tmp_path / "k.html").read_text()
