"""Tests of patching: interventions, metrics, activation patching (vs transformer_lens.patching),
attribution patching, RelP rules, integrated gradients (vs Captum) and bad-input errors.

Tiny random ``TransformerBridge.boot_native`` models keep these fast; the zoo models are in
tests/test_patching_models.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

import patching
from interp import engine
from interp.engine import Hook, Phase
from interp.errors import ConfigError, DimensionError, InputTypeError, InterpError, MismatchError, SiteError
from patching import metrics
from patching.relp import relp_rules
from patching.rules import RuleError


def _boot(**overrides):
    cfg = dict(d_model=32, n_layers=2, n_heads=4, d_head=8, n_ctx=32, d_vocab=64, attn_only=False, act_fn="gelu",
               normalization_type="LN", d_mlp=64, seed=0)
    cfg.update(overrides)
    model = TransformerBridge.boot_native(TransformerBridgeConfig(**cfg))
    model.eval()
    return model


@pytest.fixture(scope="module")
def mlp_model():
    return _boot()


@pytest.fixture(scope="module")
def gated_model():
    return _boot(act_fn="silu", normalization_type="RMS", gated_mlp=True, positional_embedding_type="rotary")


@pytest.fixture(scope="module")
def attn_only():
    return _boot(attn_only=True, act_fn=None, normalization_type=None)


@pytest.fixture(scope="module")
def pair():
    g = torch.Generator().manual_seed(1)
    clean, corrupted = torch.randint(1, 64, (3, 9), generator=g), torch.randint(1, 64, (3, 9), generator=g)
    corrupted[:, :3] = clean[:, :3]  # shared prefix: those patches are no-ops and get skipped
    return clean, corrupted


def _metric():
    return metrics.logit_diff(torch.tensor([5, 6, 7]), torch.tensor([8, 9, 10]))


# ------------------------------------------------------------------ activation patching vs TransformerLens
@pytest.mark.parametrize("kind", ["resid_pre", "attn_out", "mlp_out", "heads", "heads_by_pos"])
def test_activation_patching_matches_transformer_lens(mlp_model, pair, kind):
    import transformer_lens.patching as tlp

    clean, corrupted = pair
    metric = _metric()
    _, cache = mlp_model.run_with_cache(clean)
    reference = {
        "resid_pre": lambda: tlp.get_act_patch_resid_pre(mlp_model, corrupted, cache, metric),
        "attn_out": lambda: tlp.get_act_patch_attn_out(mlp_model, corrupted, cache, metric),
        "mlp_out": lambda: tlp.get_act_patch_mlp_out(mlp_model, corrupted, cache, metric),
        "heads": lambda: tlp.get_act_patch_attn_head_out_all_pos(mlp_model, corrupted, cache, metric),
        "heads_by_pos": lambda: tlp.get_act_patch_attn_head_out_by_pos(mlp_model, corrupted, cache, metric),
    }[kind]()
    site, by = {"heads": ("heads", None), "heads_by_pos": ("heads", ("pos", "head"))}.get(kind, (kind, None))
    ours = patching.activation_patching(mlp_model, clean, corrupted, metric, site, by=by, patches_per_pass=7)
    assert ours.values.shape == reference.shape
    if kind in ("resid_pre", "attn_out", "mlp_out"):
        assert ours.extra[site]["skipped"] == 2 * 3
    torch.testing.assert_close(ours.values, reference.double(), atol=1e-4, rtol=0)
    torch.testing.assert_close(ours.effect, reference.double() - ours.corrupted_value, atol=1e-4, rtol=0)
    assert ours.values.std() > 0  # the sweep is not trivially constant
    assert ours.extra[site]["blocks_replayed"] > 0  # layer-1 patches replayed block 0 instead of computing it


def test_noising_is_denoising_with_roles_swapped(mlp_model, pair):
    clean, corrupted = pair
    metric = _metric()
    noise = patching.activation_patching(mlp_model, clean, corrupted, metric, "resid_pre", direction="noise")
    swapped = patching.activation_patching(mlp_model, corrupted, clean, metric, "resid_pre")
    torch.testing.assert_close(noise.values, swapped.values)
    assert noise.baseline == pytest.approx(noise.clean_value)
    # patching the whole residual stream at layer 0 restores the source run exactly
    assert noise.values[0].min().item() < noise.clean_value


def test_neuron_patching_matches_manual_interventions(mlp_model, pair):
    clean, corrupted = pair
    metric = _metric()
    res = patching.activation_patching(mlp_model, clean, corrupted, metric, "mlp_post", index={"neuron": [3, 40]})
    assert res.values.shape == (2, 2)
    clean_post = engine.record(mlp_model, clean, ["blocks.1.mlp.hook_post"]).acts["blocks.1.mlp.hook_post"]
    with torch.no_grad(), patching.intervene(mlp_model, patching.patch("blocks.1.mlp.hook_post", clean_post, units=[40])):
        manual = float(metric(mlp_model(corrupted)))
    assert res.values[1, 1].item() == pytest.approx(manual, abs=1e-5)
    frame = res.to_frame()
    assert list(frame.columns[:3]) == ["site", "layer", "neuron"] and len(frame) == 4
    assert res.plot().data  # a plotly figure


def test_batched_equals_unbatched(mlp_model, pair):
    clean, corrupted = pair
    kwargs = dict(by=("pos", "head"), layers=[1], index={"pos": [0, 4, -1]})
    one = patching.activation_patching(mlp_model, clean, corrupted, _metric(), "z", patches_per_pass=1, **kwargs)
    many = patching.activation_patching(mlp_model, clean, corrupted, _metric(), "z", **kwargs)
    assert one.values.shape == (1, 3, 4) and one.coords["pos"] == [0, 4, 8]
    torch.testing.assert_close(one.values, many.values, atol=1e-5, rtol=0)
    assert many.extra["z"]["forward_calls"] < one.extra["z"]["forward_calls"]


# ----------------------------------------------------------------------------------------- interventions
def test_zero_head_matches_hand_hook(mlp_model, pair):
    clean, _ = pair

    def hand(z, hook):
        z = z.clone()
        z[:, :, 2] = 0
        return z

    with torch.no_grad():
        expected = mlp_model.run_with_hooks(clean, fwd_hooks=[("blocks.0.attn.hook_z", hand)])
        with patching.intervene(mlp_model, patching.zero("blocks.0.attn.hook_z", heads=[2])):
            got = mlp_model(clean)
        after = mlp_model(clean)
        plain = mlp_model(clean)
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, plain)
    torch.testing.assert_close(after, plain)  # hooks removed on exit


def test_scale_clamp_add_positions(mlp_model, pair):
    clean, _ = pair
    site = "blocks.1.hook_resid_pre"
    vec = torch.randn(32)
    seen = {}
    probe = Hook("blocks.1.hook_resid_pre", lambda a: seen.__setitem__("a", a.detach().clone()), Phase.READ)
    with torch.no_grad():
        base = engine.record(mlp_model, clean, [site]).acts[site]
        for spec, expect in [
            (patching.scale(site, 2.0, positions=[1]), lambda b: torch.cat([b[:, :1], 2 * b[:, 1:2], b[:, 2:]], 1)),
            (patching.clamp(site, 0.5, units=[0, 3]), lambda b: b.index_fill(-1, torch.tensor([0, 3]), 0.5)),
            (patching.add(site, vec, coefficient=3.0), lambda b: b + 3.0 * vec),
        ]:
            with patching.intervene(mlp_model, spec), engine.hooked(mlp_model, [probe]):
                mlp_model(clean)
            torch.testing.assert_close(seen["a"], expect(base))


def test_mean_resample_and_patch_from_inputs(mlp_model, pair):
    clean, corrupted = pair
    site = "blocks.0.hook_mlp_out"
    acts = engine.record(mlp_model, corrupted, [site]).acts[site]
    seen = {}
    probe = [Hook(site, lambda a: seen.__setitem__("a", a.detach().clone()), Phase.READ)]
    with torch.no_grad():
        with patching.intervene(mlp_model, patching.mean(site, corrupted)), engine.hooked(mlp_model, probe):
            mlp_model(clean)
        torch.testing.assert_close(seen["a"], acts.mean(0, keepdim=True).expand_as(acts))
        with patching.intervene(mlp_model, patching.patch(site, corrupted)), engine.hooked(mlp_model, probe):
            mlp_model(clean)
        torch.testing.assert_close(seen["a"], acts)
        with patching.intervene(mlp_model, patching.resample(site, corrupted, seed=3)), \
                engine.hooked(mlp_model, probe):
            mlp_model(clean)
    rows = [int(np.argmin([(seen["a"][i] - acts[j]).abs().max().item() for j in range(3)])) for i in range(3)]
    torch.testing.assert_close(seen["a"], acts[rows])


def test_steering_vector_trains_through_intervention(mlp_model, pair):
    clean, _ = pair
    steer = nn.Parameter(torch.zeros(32))
    opt = torch.optim.SGD([steer], lr=0.5)
    target = metrics.log_probability(torch.tensor([11, 11, 11]))
    values = []
    for _ in range(5):
        with patching.intervene(mlp_model, patching.add("blocks.1.hook_resid_pre", steer)):
            loss = -target(mlp_model(clean))
        opt.zero_grad()
        loss.backward()
        values.append(loss.item())
        opt.step()
    assert steer.grad is not None and steer.grad.abs().sum() > 0
    assert values[-1] < values[0]
    mlp_model.zero_grad(set_to_none=True)


def test_interventions_on_plain_module():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.randn(5, 4)
    with torch.no_grad():
        hidden = net[1](net[0](x))
        with patching.intervene(net, patching.zero("1", units=[2, 5])):
            got = net(x)
        hidden[:, [2, 5]] = 0
        torch.testing.assert_close(got, net[2](hidden))
        source = torch.randn(5, 8)
        with patching.intervene(net, patching.patch("1", source)):
            torch.testing.assert_close(net(x), net[2](source))
        with patching.intervene(net, patching.mean("1", patching.Inputs(x))):
            expected = net[2](net[1](net[0](x)).mean(0, keepdim=True).expand(5, 8))
            torch.testing.assert_close(net(x), expected)


# ------------------------------------------------------------------------------------------------ metrics
def test_metrics_hand_computed():
    logits = torch.zeros(2, 3, 5)
    logits[0, -1, 1], logits[0, -1, 2] = 2.0, 0.5
    logits[1, -1, 1], logits[1, -1, 2] = 1.0, 1.0
    assert metrics.logit_diff(1, 2)(logits).item() == pytest.approx((1.5 + 0.0) / 2)
    torch.testing.assert_close(metrics.logit_diff(1, 2, reduce="none")(logits), torch.tensor([1.5, 0.0]))
    p = torch.softmax(logits[:, -1], -1)[:, 1].mean()
    assert metrics.probability(1)(logits).item() == pytest.approx(p.item())
    assert metrics.kl_divergence(logits)(logits).item() == pytest.approx(0.0, abs=1e-7)
    other = logits.clone()
    other[:, -1, 1] -= 1.0
    assert metrics.kl_divergence(logits)(other).item() > 0
    nld = metrics.normalized_logit_diff(1, 2, logits, other)
    assert nld(logits).item() == pytest.approx(1.0) and nld(other).item() == pytest.approx(0.0, abs=1e-7)


def test_non_scalar_metric_is_rejected(mlp_model, pair):
    clean, corrupted = pair
    bad = metrics.logit_diff(1, 2, reduce="none")
    with pytest.raises(DimensionError, match="scalar"):
        patching.activation_patching(mlp_model, clean, corrupted, bad, "resid_pre")
    with pytest.raises(DimensionError, match="scalar"):
        patching.attribution_patching(mlp_model, clean, corrupted, bad, "resid_pre")
    with pytest.raises(DimensionError, match="scalar"):
        patching.integrated_gradients(mlp_model, clean, corrupted, bad, "resid_pre", steps=2)
    with pytest.raises(InputTypeError, match="torch tensor"):
        patching.activation_patching(mlp_model, clean, corrupted, lambda logits: 1.0, "resid_pre")


# ------------------------------------------------------------------------------------------- bad input
def test_different_token_lengths_are_rejected(mlp_model, pair):
    clean, corrupted = pair
    for fn in patching.METHODS.values():
        with pytest.raises(MismatchError, match="token lengths"):
            fn(mlp_model, clean, corrupted[:, :-1], _metric())


def test_missing_sites_are_rejected(mlp_model, attn_only, pair):
    clean, corrupted = pair
    with pytest.raises(SiteError, match="hook_mlp_outt|closest"):
        with patching.intervene(mlp_model, patching.zero("blocks.0.hook_mlp_outt")):
            pass
    with pytest.raises(SiteError):
        patching.activation_patching(attn_only, clean, corrupted, _metric(), "mlp_out")
    with pytest.raises(SiteError, match="resid_middle"):
        patching.activation_patching(mlp_model, clean, corrupted, _metric(), "resid_middle")
    with pytest.raises(SiteError):
        patching.integrated_gradients(mlp_model, clean, corrupted, _metric(), "blocks.7.hook_resid_pre")
    for fn in patching.METHODS.values():  # a kind asked for by name that the model lacks is an error ...
        with pytest.raises(SiteError, match="mlp_out"):
            fn(attn_only, clean, corrupted, _metric(), sites=["resid_pre", "mlp_out"])
    # ... while the defaults use the kinds the model has
    assert patching.attribution_patching(attn_only, clean, corrupted, _metric()).sites == ["resid_pre", "attn_out",
                                                                                          "heads"]
    with pytest.raises(DimensionError, match="head"):
        patching.activation_patching(mlp_model, clean, corrupted, _metric(), "resid_pre", by=("head",))
    with pytest.raises(ConfigError):
        patching.relevance_patching(mlp_model, clean, corrupted, _metric(), rules={"lnrule": True})
    assert issubclass(SiteError, InterpError)


# ------------------------------------------------------------------------------------------------ AtP
def test_attribution_patching_equals_hand_gradient(mlp_model, pair):
    clean, corrupted = pair
    metric = _metric()
    scores = patching.attribution_patching(mlp_model, clean, corrupted, metric, ["mlp_out", "z"])
    assert scores.n_forward == 2 and scores.n_backward == 1
    site = "blocks.1.hook_mlp_out"
    clean_act = engine.record(mlp_model, clean, [site]).acts[site]
    kept = {}

    def keep(act, hook):
        act.retain_grad()
        kept["a"] = act

    mlp_model.hook_dict[site].add_hook(keep)
    try:
        metric(mlp_model(corrupted)).backward()
    finally:
        mlp_model.reset_hooks()
        mlp_model.zero_grad(set_to_none=True)
    expected = (kept["a"].grad * (clean_act - kept["a"].detach())).sum(dim=(0, 2))
    torch.testing.assert_close(scores["mlp_out"].effect[1].float(), expected, atol=1e-5, rtol=1e-4)
    assert scores["z"].effect.shape == (2, 4)


def test_attribution_tracks_activation_patching(mlp_model, pair):
    clean, corrupted = pair
    metric = _metric()
    atp = patching.attribution_patching(mlp_model, clean, corrupted, metric, ["z"])["z"]
    act = patching.activation_patching(mlp_model, clean, corrupted, metric, "z")
    r = np.corrcoef(atp.effect.flatten(), act.effect.flatten())[0, 1]
    assert r > 0.8


# ----------------------------------------------------------------------------------------------- RelP
@pytest.mark.parametrize("model_name", ["mlp_model", "gated_model"])
@pytest.mark.parametrize("rule", ["ln", "identity", "half", "attention"])
def test_relp_rules_keep_forward_values(request, model_name, rule, pair):
    model = request.getfixturevalue(model_name)
    clean, _ = pair
    if rule == "half" and model_name == "mlp_model":
        with pytest.raises(RuleError, match="gated"):  # asked for by name, applies nowhere: an error
            with relp_rules(model, [rule]):
                pass
        return
    with torch.no_grad():
        base = model(clean)
        with relp_rules(model, [rule]) as applied:
            ruled = model(clean)
    assert applied[rule]
    assert torch.equal(base, ruled)


@pytest.mark.parametrize("model_name", ["mlp_model", "gated_model"])
def test_relp_conserves_relevance(request, model_name, pair):
    """With every rule on and no biases the network is linear in its input given the detached coefficients,
    so LRP relevance (gradient x input) at the embedding sums to the output logit: the public check."""
    model = request.getfixturevalue(model_name)
    clean, _ = pair

    def logit(out):
        return out[:1, -1, 5].sum()

    res = patching.relevance_conservation(model, clean[:1], logit)
    assert res.conserved and res.relative_error < 1e-4, res.summary()
    assert all(res.rules[name] for name in (("ln", "identity", "half", "attention") if model_name == "gated_model"
                                            else ("ln", "identity", "attention")))
    assert "conserved" in res.summary() and len(res.to_frame()) == 2
    # plain gradients do not conserve (the check is not vacuous)
    plain = patching.relevance_conservation(model, clean[:1], logit, rules={"ln": False, "identity": False,
                                                                           "half": False})
    assert not plain.conserved


def test_identity_rule_gradient(mlp_model, pair):
    clean, _ = pair
    kept = {}

    def keep(name):
        def hook(act, hook):
            act.retain_grad()
            kept[name] = act
        return hook

    with relp_rules(mlp_model, ["identity"]):
        mlp_model.hook_dict["blocks.1.mlp.hook_pre"].add_hook(keep("pre"))
        mlp_model.hook_dict["blocks.1.mlp.hook_post"].add_hook(keep("post"))
        mlp_model(clean)[:, -1, 3].sum().backward()
        mlp_model.reset_hooks()
    mlp_model.zero_grad(set_to_none=True)
    pre, post = kept["pre"], kept["post"]
    expected = post.grad * post.detach() / (pre.detach() + 1e-6 * torch.where(pre >= 0, 1.0, -1.0))
    torch.testing.assert_close(pre.grad, expected, atol=1e-6, rtol=1e-4)


def test_relevance_patching_result(gated_model, pair):
    clean, corrupted = pair
    res = patching.relevance_patching(gated_model, clean, corrupted, _metric(), ["mlp_out", "resid_pre"])
    assert res.method == "relp" and res["mlp_out"].values.shape == (2, 9)
    assert {name for name, sites in res.extra["rules"].items() if sites} == {"ln", "identity", "half"}
    atp = patching.attribution_patching(gated_model, clean, corrupted, _metric(), ["mlp_out"])
    assert not torch.allclose(res["mlp_out"].values, atp["mlp_out"].values)  # the rules change the scores


# ---------------------------------------------------------------------------------- integrated gradients
@pytest.mark.parametrize("direction", ["denoise", "noise"])
def test_integrated_gradients_completeness_and_captum(mlp_model, pair, direction):
    """Ours moves the base run's activation towards the source's; Captum's LayerIntegratedGradients with
    ``inputs`` = our base input and ``baselines`` = our source input integrates the same path backwards."""
    from captum.attr import LayerIntegratedGradients

    clean, corrupted = pair
    per_example = metrics.logit_diff(torch.tensor([5, 6, 7]), torch.tensor([8, 9, 10]), reduce="none")
    site = "blocks.1.hook_resid_pre"
    ours = patching.integrated_gradients(mlp_model, clean, corrupted, lambda out: per_example(out).sum(), site,
                                         by=("pos", "unit"), steps=24, direction=direction)
    assert ours.extra["completeness"][site] < 0.01
    base, source = (corrupted, clean) if direction == "denoise" else (clean, corrupted)
    lig = LayerIntegratedGradients(lambda tokens: per_example(mlp_model(tokens)), mlp_model.hook_dict[site])
    reference = -lig.attribute(base, baselines=source, n_steps=24, method="gausslegendre").sum(0)
    torch.testing.assert_close(ours.effect[0], reference.double(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("site", ["heads", "mlp_post", "mlp_pre"])
def test_integrated_gradients_any_site_and_its_whole_site_patch(mlp_model, pair, site):
    clean, corrupted = pair
    res = patching.integrated_gradients(mlp_model, clean, corrupted, _metric(), site, steps=16,
                                        method="riemann_trapezoid")
    assert max(res.extra["completeness"].values()) < 0.01
    whole = patching.activation_patching(mlp_model, clean, corrupted, _metric(), site, by=())
    torch.testing.assert_close(res.effect.sum(1), whole.effect, atol=0.02 * float(whole.effect.abs().max()), rtol=0)


def test_integrated_gradients_plain_module():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2))
    x, y = torch.randn(6, 4), torch.randn(6, 4)
    res = patching.integrated_gradients(net, x, y, lambda out: out[:, 0].sum(), sites="1", steps=32)
    assert res.dims == ("site", "unit") and res.effect.shape == (1, 16)
    assert res.extra["completeness"]["1"] < 0.01


class _Blocks(nn.Module):
    """Embedding, a ModuleList of blocks, a read-out; ``reuse`` runs block 0 again after the last block."""

    def __init__(self, reuse: bool = False) -> None:
        super().__init__()
        self.embed = nn.Linear(4, 8)
        self.blocks = nn.ModuleList([nn.Sequential(nn.Linear(8, 8), nn.Tanh()) for _ in range(3)])
        self.head = nn.Linear(8, 5)
        self.reuse = reuse

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        for block in [*self.blocks, self.blocks[0]] if self.reuse else self.blocks:
            h = block(h)
        return self.head(h)


@pytest.mark.parametrize("reuse", [False, True])
def test_block_replay_on_a_plain_module(reuse):
    """Replay skips the blocks below the patched one and gives the same sweep; in a model that runs block 0
    again after the patched block, replaying it would hide the patch, so replay is refused there."""
    torch.manual_seed(0)
    net = _Blocks(reuse)
    clean, corrupted = torch.randn(3, 4), torch.randn(3, 4)
    metric = metrics.logit_diff(torch.tensor([0, 1, 2]), torch.tensor([3, 4, 0]))

    def sweep(sites="blocks.*#0" if reuse else "blocks.*", **kwargs):  # the first call of every block
        return patching.activation_patching(net, clean, corrupted, lambda out: metric(out[:, None]),
                                            sites, by=("unit",), **kwargs)

    if reuse:  # block 0 runs twice: a site there must say which call (it used to patch both with one source)
        with pytest.raises(SiteError, match="blocks.0#1"):
            sweep("blocks.*")
    fast, plain = sweep(), sweep(replay_blocks=False)
    torch.testing.assert_close(fast.values, plain.values, atol=1e-6, rtol=0)
    assert plain.values.std() > 0
    # 8 units per site: blocks.1 patches skip block 0, blocks.2 patches skip blocks 0 and 1
    assert fast.extra[fast.sites[0]]["blocks_replayed"] == (0 if reuse else 8 * 1 + 8 * 2)


def test_units_are_channels_on_conv_maps_everywhere(tiny_cnn):
    """One axis convention: on a conv feature map (N, C, H, W) ``unit`` is the channel, in capture, in
    interventions and in patching alike."""
    import interp

    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    acts = interp.capture(tiny_cnn, x, "1", progress=False)
    assert acts.dims[1] == "unit" and acts.data.shape[1] == 4
    seen = {}
    with torch.no_grad(), patching.intervene(tiny_cnn, patching.zero("1", units=[1, 3])), \
            engine.hooked(tiny_cnn, [Hook("1", lambda a: seen.__setitem__("a", a.clone()), Phase.READ)]):
        tiny_cnn(x)
    assert (seen["a"][:, [1, 3]] == 0).all() and torch.equal(seen["a"][:, [0, 2]], acts.data[:, [0, 2]])
    res = patching.activation_patching(tiny_cnn, x, x.flip(0), lambda out: out[:, 0].mean(), "1", by=("unit",))
    assert res.dims == ("site", "unit") and res.effect.shape == (1, 4)
