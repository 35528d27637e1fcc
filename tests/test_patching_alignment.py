"""patching.alignment: causal brain alignment on a small model built so that one channel group carries the
"brain's" representational geometry (planted answer), block replay equals full passes, latent (SAE) ablation
subtracts the decoder contribution, and the result contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import patching
from interp import engine
from interp.errors import ConfigError, MismatchError
from interp.similarity import rdm
from patching.alignment import Ablation, brain_alignment, channel_groups, latent_ablations

pytestmark = pytest.mark.usefixtures("one_thread")

N_STIM, D = 40, 6


class Planted(nn.Module):
    """blocks[0]: identity on the stimulus codes [brain latent | latent 1 | latent 2]; blocks[1]: three channel
    groups of 8, each reading one latent; blocks[2]: a random mixing of all 24 channels (the read-out)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        pre = nn.Linear(3 * D, 3 * D, bias=False)
        pre.weight.data = torch.eye(3 * D)
        groups = nn.Linear(3 * D, 24)
        w = torch.zeros(24, 3 * D)
        for k in range(3):
            w[8 * k:8 * (k + 1), D * k:D * (k + 1)] = torch.randn(8, D, generator=g)
        groups.weight.data, groups.bias.data = w, torch.randn(24, generator=g) * 0.1
        mix = nn.Linear(24, 24)
        mix.weight.data = torch.linalg.qr(torch.randn(24, 24, generator=g))[0]
        self.blocks = nn.ModuleList([pre, nn.Sequential(groups, nn.Tanh()), mix])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


def _planted(seed=0, n_subjects=4):
    rng = np.random.default_rng(seed)
    latents = rng.normal(size=(N_STIM, 3 * D))
    brain = latents[:, :D] @ rng.normal(size=(D, 50))  # the brain carries latent 0's geometry
    rdms = np.stack([rdm(torch.as_tensor(brain + 2.0 * rng.normal(size=brain.shape))).numpy()
                     for _ in range(n_subjects)])
    return Planted(seed), torch.as_tensor(latents, dtype=torch.float32), rdms


def test_planted_group_carries_the_brain_geometry():
    model, x, rdms = _planted()
    abl = channel_groups(model, "blocks.1", n_groups=3)
    res = brain_alignment(model, x, rdms, abl, readout="blocks.2", n_bootstraps=200, progress=False)
    f = res.to_frame().set_index("ablation")
    brain_group, others = "blocks.1[1/3]", ["blocks.1[2/3]", "blocks.1[3/3]"]
    assert f.loc[brain_group, "intact"] > 0.2
    assert f.loc[brain_group, "delta"] < -0.2 and f.loc[brain_group, "high"] < 0 and f.loc[brain_group, "significant"]
    for o in others:  # ablating another group does not lower it (here it even raises it: less competing geometry)
        assert f.loc[o, "high"] > 0 and f.loc[o, "delta"] > -0.05
    assert res.rank().loc[0, "ablation"] == brain_group
    assert res.attrs["replay"] is True  # blocks[0] was replayed, checked against a full pass
    full = brain_alignment(model, x, rdms, abl, readout="blocks.2", n_bootstraps=0, progress=False, replay=False)
    assert full.attrs["replay"] is False
    np.testing.assert_allclose(res.to_frame()[["intact", "ablated"]].to_numpy(),
                               full.to_frame()[["intact", "ablated"]].to_numpy(), atol=1e-6)
    assert "lower it" in res.summary() and res.plot().data and res._repr_html_().startswith("<div")


def test_zero_mean_channels_and_interventions_agree_with_manual_edits():
    model, x, rdms = _planted(1)
    with torch.no_grad():
        hidden = model.blocks[1](model.blocks[0](x))
        mean = hidden.mean(0, keepdim=True)
        manual = {"zero": model.blocks[2](torch.cat([torch.zeros(N_STIM, 8), hidden[:, 8:]], 1)),
                  "mean": model.blocks[2](torch.cat([mean[:, :8].expand(N_STIM, 8), hidden[:, 8:]], 1))}
    for kind in ("zero", "mean"):
        res = brain_alignment(model, x, rdms, {"a": Ablation("blocks.1", kind, channels=range(8))}, "blocks.2",
                              n_bootstraps=0, progress=False)
        ref = np.mean([np.corrcoef(*[np.argsort(np.argsort(v)) for v in (rdm(manual[kind].double())[np.triu_indices(N_STIM, 1)],
                                                                          torch.as_tensor(r)[np.triu_indices(N_STIM, 1)])])[0, 1]
                       for r in rdms])
        assert res.frame.loc[0, "ablated"] == pytest.approx(ref, abs=1e-6)
    # a plain patching intervention is accepted as an ablation too
    spec = patching.zero("blocks.1")
    with pytest.raises(ConfigError, match="constant"):  # zeroing everything leaves one pattern for all stimuli
        brain_alignment(model, x, rdms, {"all": spec}, "blocks.2", n_bootstraps=0, progress=False)


def test_sae_latent_ablation_subtracts_the_decoder_contribution():
    from interp.decompose import TopKSAE

    model, x, rdms = _planted(2)
    with torch.no_grad():
        hidden = model.blocks[1](model.blocks[0](x))
    g = torch.Generator().manual_seed(0)
    sae = TopKSAE(n_components=12, k=4)  # given weights (no training needed to check the arithmetic)
    dec = torch.randn(12, 24, generator=g)
    sae.components_, sae.W_enc_ = dec / dec.norm(dim=1, keepdim=True), dec.T.clone()
    sae.b_enc_, sae.b_dec_ = torch.zeros(12), hidden.mean(0) * 1.3
    sae.input_scale_, sae.n_features_in_ = torch.tensor(1.3), 24
    k = 3
    codes = sae.transform(hidden)
    expected = hidden - codes[:, k:k + 1] * sae.components_[k].detach() / sae.input_scale_
    from patching._alignment_run import _interventions, _Stats

    stats = _Stats()
    stats.add(hidden, [])
    (spec,) = _interventions(Ablation("blocks.1", "zero", latents=k, decomposition=sae), stats)
    with torch.no_grad(), patching.intervene(model, spec):
        got = engine.record(model, x, ["blocks.1"]).acts["blocks.1"]
    np.testing.assert_allclose(got.numpy(), expected.detach().numpy(), atol=1e-5, rtol=1e-5)
    res = brain_alignment(model, x, rdms, latent_ablations("blocks.1", sae, [0, [1, 2]], kind="mean"), "blocks.2",
                          n_bootstraps=50, progress=False)
    assert list(res.frame["ablation"]) == ["blocks.1:latent 0", "blocks.1:latent [1, 2]"]


def test_pattern_recordings_and_bad_inputs():
    model, x, rdms = _planted(3)
    rng = np.random.default_rng(3)
    patterns = x[:, :D].numpy() @ rng.normal(size=(D, 30)) + rng.normal(size=(N_STIM, 30))
    abl = channel_groups(model, "blocks.1", n_groups=3)
    enc = brain_alignment(model, x, patterns, abl, "blocks.2", method="encoding", n_bootstraps=100, progress=False)
    f = enc.to_frame().set_index("ablation")
    assert f.loc["blocks.1[1/3]", "high"] < 0 and f.loc["blocks.1[2/3]", "high"] > 0
    cka = brain_alignment(model, x, patterns, abl, "blocks.2", method="cka", n_bootstraps=100, progress=False)
    assert cka.rank().loc[0, "ablation"] == "blocks.1[1/3]"
    with pytest.raises(ConfigError, match="stack of RDMs"):
        brain_alignment(model, x, rdms, abl, "blocks.2", method="cka", progress=False)
    with pytest.raises(MismatchError, match="recording has"):
        brain_alignment(model, x[:30], rdms, abl, "blocks.2", progress=False)
    with pytest.raises(ConfigError, match="one of channels"):
        Ablation("blocks.1", channels=[0], heads=[0])
    with pytest.raises(ConfigError, match="decomposition"):
        Ablation("blocks.1", latents=[0])


def test_head_ablations_on_a_bridge(tiny_bridge):
    from patching.alignment import head_ablations

    tokens = torch.randint(0, 50, (12, 8), generator=torch.Generator().manual_seed(0))
    rdms = rdm(torch.randn(12, 5, dtype=torch.float64)).numpy()
    abl = head_ablations(tiny_bridge, "blocks.0.attn.hook_z", kind="zero")
    assert list(abl) == [f"blocks.0.attn.hook_z:H{h}" for h in range(4)]
    res = brain_alignment(tiny_bridge, tokens, rdms, abl, "blocks.1.hook_resid_post", spatial="mean",
                          n_bootstraps=20, progress=False)
    assert res.attrs["replay"] is False and len(res.frame) == 4  # no block replay on a bridge
    # the same head zeroed by hand: the read-out whose RDM gives the reported score
    with torch.no_grad(), patching.intervene(tiny_bridge, patching.zero("blocks.0.attn.hook_z", heads=[2])):
        manual = engine.record(tiny_bridge, tokens, ["blocks.1.hook_resid_post"]).acts["blocks.1.hook_resid_post"]
    from interp.similarity import compare_rdms

    expected = compare_rdms(rdm(manual.double().mean(1)), rdms, "spearman")
    assert res.frame.loc[2, "ablated"] == pytest.approx(expected, abs=1e-6)
    assert (res.frame["ablated"] != res.frame["intact"]).all()
