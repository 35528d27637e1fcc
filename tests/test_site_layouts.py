"""Site layouts are derived and checked, never assumed (issue 18, items 1, 3 and 4).

Every number here is compared with a manual computation that uses plain torch hooks on the wrapped
modules (never the engine): per-head patches of multi-head latent attention (DeepSeek-V2/V3) and of
grouped-query keys, an element of a structured output (a GRU's and an LSTM's ``h_n``, whose batch axis is
not first), and one call of a module that runs twice per forward pass (a ResNet ``BasicBlock``'s ReLU).
"""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from conformance.conftest import ARCHITECTURES, word_tokenizer
from torch import nn

import interp
import patching
from interp import engine
from interp.engine import Hook
from interp.errors import SiteError

METHODS = [patching.activation_patching, patching.attribution_patching, patching.integrated_gradients,
           patching.relevance_patching]


# ------------------------------------------------------------------------------------------ manual hooks
def _patched_metric(model, module, inputs, metric, edit, pre=False):
    """Metric of ``model(inputs)`` with ``edit`` applied by a plain torch hook on ``module``."""
    if pre:
        handle = module.register_forward_pre_hook(lambda m, args: (edit(args[0]),) + tuple(args[1:]))
    else:
        handle = module.register_forward_hook(lambda m, args, out: edit(out))
    try:
        with torch.no_grad():
            return float(metric(model(inputs)))
    finally:
        handle.remove()


def _outputs(model, module, inputs, pre=False):
    """Every value ``module`` receives (pre) or returns in one forward pass, in call order (plain hooks)."""
    seen = []
    if pre:
        handle = module.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    else:
        handle = module.register_forward_hook(lambda m, args, out: seen.append(out))
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        handle.remove()
    return seen


def _slice_patch(source, sl):
    def edit(value):
        value = value.clone()
        value[..., sl] = source[..., sl]
        return value
    return edit


# ------------------------------------------------------------------- item 1: multi-head latent attention
def _deepseek(version: int):
    import transformers

    common = dict(vocab_size=128, num_hidden_layers=2, hidden_size=32, num_attention_heads=4, num_key_value_heads=4,
                  intermediate_size=64, moe_intermediate_size=32, max_position_embeddings=64, kv_lora_rank=16,
                  qk_rope_head_dim=4, qk_nope_head_dim=8, v_head_dim=8, n_routed_experts=4, num_experts_per_tok=2,
                  n_shared_experts=1, first_k_dense_replace=1, initializer_range=0.2)
    if version == 2:
        cfg, cls = transformers.DeepseekV2Config(q_lora_rank=None, **common), transformers.DeepseekV2ForCausalLM
    else:
        cfg, cls = transformers.DeepseekV3Config(q_lora_rank=16, n_group=1, topk_group=1, **common), \
            transformers.DeepseekV3ForCausalLM
    torch.manual_seed(0)
    hf = cls(cfg).eval()
    model, _ = interp.models.load(hf, tokenizer=word_tokenizer())
    return model, hf


@functools.cache
def _mla(version: int):
    return _deepseek(version)


def _pair():
    gen = torch.Generator().manual_seed(1)
    clean = torch.randint(4, 128, (2, 6), generator=gen)
    corrupted = clean.clone()
    corrupted[:, 3:] = torch.randint(4, 128, (2, 3), generator=gen)
    return clean, corrupted


def _logit(out):
    return out[:, -1, 5].mean()


@pytest.mark.parametrize("version", [2, 3])
def test_mla_heads_are_the_config_heads_and_match_a_manual_per_head_patch(version):
    """DeepSeek-V2's bridge reshapes hook_z by a wrong d_head: 8 half-heads for 4 heads. The engine hands
    over the 4 real heads (v_head_dim 8), and patching head h equals patching o_proj's input slice h."""
    model, hf = _mla(version)
    clean, corrupted = _pair()
    got = patching.activation_patching(model, clean, corrupted, _logit, sites="heads", layers=[1]).grids["heads"]
    assert got.coords["head"] == [0, 1, 2, 3]
    o_proj = hf.model.layers[1].self_attn.o_proj
    source = _outputs(model, o_proj, clean, pre=True)[0]
    with torch.no_grad():
        base = float(_logit(model(corrupted)))
    manual = [_patched_metric(model, o_proj, corrupted, _logit, _slice_patch(source, slice(8 * h, 8 * h + 8)), pre=True)
              - base for h in range(4)]
    torch.testing.assert_close(got.effect[0], torch.tensor(manual, dtype=torch.float64), atol=1e-5, rtol=1e-4)
    with torch.no_grad(), patching.intervene(model, patching.zero("blocks.1.attn.hook_z", heads=[2])):
        ablated = float(_logit(model(corrupted)))
    zeroed = _patched_metric(model, o_proj, corrupted, _logit,
                             _slice_patch(torch.zeros_like(source), slice(16, 24)), pre=True)
    assert abs(ablated - zeroed) < 1e-5
    z = interp.capture(model, clean, "blocks.1.attn.hook_z", progress=False)
    assert z.dims == ("sample", "pos", "head", "unit") and tuple(z.data.shape[2:]) == (4, 8)
    torch.testing.assert_close(z.data.flatten(2), source)


@pytest.mark.parametrize("site,width,offset,size", [("q", 12, 0, 12), ("v", 16, 8, 8)])
def test_mla_q_and_v_index_heads_not_positions(site, width, offset, size):
    """DeepSeek-V2's hook_q/k/v are (batch, head, pos, d); reading them as (batch, pos, head, d) was an
    IndexError (prefix reuse) or a grid over positions. Each head now equals a manual patch of the projection."""
    model, hf = _mla(2)
    clean, corrupted = _pair()
    attn = hf.model.layers[1].self_attn
    module = attn.q_proj if site == "q" else attn.kv_b_proj
    source = _outputs(model, module, clean)[0]
    with torch.no_grad():
        base = float(_logit(model(corrupted)))
    manual = [_patched_metric(model, module, corrupted, _logit,
                              _slice_patch(source, slice(h * width + offset, h * width + offset + size))) - base
              for h in range(4)]
    for reuse_prefix in (True, False):
        got = patching.activation_patching(model, clean, corrupted, _logit, sites=site, layers=[1],
                                           reuse_prefix=reuse_prefix).grids[site]
        torch.testing.assert_close(got.effect[0], torch.tensor(manual, dtype=torch.float64), atol=1e-5, rtol=1e-4)
    q = interp.capture(model, clean, f"blocks.1.attn.hook_{site}", progress=False)
    assert q.data.shape[1:3] == (6, 4)  # (sample, pos, head, unit)


def test_gqa_key_heads_are_the_key_value_heads():
    """Llama with 4 query heads and 2 key/value heads: the head axis of k is the 2 kv heads, each equal to a
    manual patch of k_proj's output slice."""
    built = ARCHITECTURES["llama-gqa"]("llama-gqa")
    model, hf = built.model, built.model.original_model
    clean, corrupted = _pair()
    got = patching.activation_patching(model, clean, corrupted, _logit, sites="k", layers=[1]).grids["k"]
    assert got.coords["head"] == [0, 1]
    k_proj = hf.model.layers[1].self_attn.k_proj
    source = _outputs(model, k_proj, clean)[0]
    with torch.no_grad():
        base = float(_logit(model(corrupted)))
    manual = [_patched_metric(model, k_proj, corrupted, _logit, _slice_patch(source, slice(8 * h, 8 * h + 8))) - base
              for h in range(2)]
    torch.testing.assert_close(got.effect[0], torch.tensor(manual, dtype=torch.float64), atol=1e-5, rtol=1e-4)


def test_a_layout_the_config_contradicts_is_refused(monkeypatch):
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(d_model=32, n_layers=1, n_heads=4, d_head=8, n_ctx=16, d_vocab=20, attn_only=True,
                                  act_fn=None, normalization_type=None, seed=0)
    model = TransformerBridge.boot_native(cfg)
    monkeypatch.setattr(engine.hooks, "head_expectations", lambda m, layer=None: {k: (3, 8) for k in "qkvz"})
    with pytest.raises(SiteError, match="3 attention heads of d_head 8"):
        engine.record(model, torch.randint(0, 20, (1, 4)), ["blocks.0.attn.hook_z"])
    def boot():
        return TransformerBridge.boot_native(TransformerBridgeConfig(
            d_model=32, n_layers=1, n_heads=4, d_head=8, n_ctx=16, d_vocab=20, d_mlp=64, act_fn="gelu",
            normalization_type="LN", seed=0))

    mlp = boot()
    mlp.cfg.d_mlp = 48  # a config the MLP's weights contradict: the weights (the output projection's input) win
    assert engine.sites.mlp_width(mlp, 0) == 64
    rec = engine.record(mlp, torch.randint(0, 20, (1, 4)), ["blocks.0.mlp.hook_post"])
    assert rec.acts["blocks.0.mlp.hook_post"].shape[-1] == 64
    monkeypatch.setattr(engine.hooks, "mlp_width", lambda m, layer, mlp=None: 48)  # a hook the MLP's width contradicts
    with pytest.raises(SiteError, match="d_mlp = 48"):
        engine.record(boot(), torch.randint(0, 20, (1, 4)), ["blocks.0.mlp.hook_post"])
    monkeypatch.setattr(engine.hooks, "mlp_width", lambda m, layer, mlp=None: None)  # no single width: refused by name
    with pytest.raises(SiteError, match="cannot tell the MLP's width"):
        engine.record(boot(), torch.randint(0, 20, (1, 4)), ["blocks.0.mlp.hook_pre"])
    assert engine.views.head_view("z", (1, 7, 4, 8), 7, (4, 8), "attention").kind == "identity"
    assert engine.views.head_view("q", (1, 4, 7, 8), 7, (4, 8), "attention").kind == "swap"
    assert engine.views.head_view("z", (1, 7, 8, 4), 7, (4, 8), "attention").heads == 4


# ------------------------------------------------------------------------- item 3: structured outputs
class RNNClassifier(nn.Module):
    """Embeds tokens, runs a GRU or LSTM and classifies from the last layer's final hidden state h_n."""

    def __init__(self, cell: type = nn.GRU) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.rnn = cell(8, 6, num_layers=2, batch_first=True)
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h = self.rnn(self.emb(x))
        h = h[0] if isinstance(h, tuple) else h
        return self.head(h[-1])


def _rnn(cell=nn.GRU):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(2)
    return RNNClassifier(cell).eval(), torch.randint(0, 20, (4, 5), generator=gen), torch.randint(0, 20, (4, 5),
                                                                                                  generator=gen)


def _class1(out):
    return out[:, 1].mean()


def test_a_structured_output_must_name_its_element():
    """The GRU returns (output, h_n); reading 'rnn' as element 0 made every patch there 0.0."""
    model, clean, _ = _rnn()
    with pytest.raises(SiteError, match=r"rnn:output\[0\] Tensor\(4, 5, 6\), rnn:output\[1\] Tensor\(2, 4, 6\)"):
        interp.capture(model, clean, "rnn", progress=False)
    with pytest.raises(SiteError, match=r"rnn:output\[1\]\[0\]"):
        interp.capture(_rnn(nn.LSTM)[0], clean, "rnn:output[1]", progress=False)
    with pytest.raises(SiteError, match="no element"):
        interp.capture(model, clean, "rnn:output[2]", progress=False)


def test_gru_h_n_reads_edits_and_attributions_agree_with_manual_hooks():
    """h_n is (layers, batch, hidden): the engine hands it over as (batch, layers * hidden) and every method
    agrees with a manual hook on the GRU's output tuple."""
    model, clean, corrupted = _rnn()
    site = "rnn:output[1]"
    h_clean, h_corr = _outputs(model, model.rnn, clean)[0][1], _outputs(model, model.rnn, corrupted)[0][1]
    got = interp.capture(model, clean, site, progress=False)
    torch.testing.assert_close(got.data, h_clean.movedim(1, 0).reshape(4, 12))
    with torch.no_grad():
        base = float(_class1(model(corrupted)))

    def put(unit):
        def edit(out):
            h = out[1].clone()
            h[unit // 6, :, unit % 6] = h_clean[unit // 6, :, unit % 6]
            return out[0], h
        return edit

    manual = torch.tensor([_patched_metric(model, model.rnn, corrupted, _class1, put(u)) - base for u in range(12)],
                          dtype=torch.float64)
    assert manual.abs().max() > 1e-3  # the element matters
    # a GRU's gates run inside one kernel, where no RelP rule can go: RelP refuses unless asked with rules=()
    with pytest.raises(patching.RuleError, match="rules=\\(\\)"):
        patching.relevance_patching(model, clean, corrupted, _class1, sites=site)
    results = {f.__name__: f(model, clean, corrupted, _class1, sites=site,
                             **({"rules": ()} if f is patching.relevance_patching else {})).grids[site] for f in METHODS}
    torch.testing.assert_close(results["activation_patching"].effect[0], manual, atol=1e-6, rtol=1e-5)
    frame = results["activation_patching"].frame()  # a grid over named sites used to fail here (two 'site' columns)
    assert list(frame["site"].unique()) == [site] and len(frame) == 12
    # AtP: gradient at h_n of the corrupted run (a manual offset on the output tuple) times the difference
    offset = torch.zeros_like(h_corr, requires_grad=True)
    handle = model.rnn.register_forward_hook(lambda m, a, out: (out[0], out[1] + offset))
    try:
        (grad,) = torch.autograd.grad(_class1(model(corrupted)), offset)
    finally:
        handle.remove()
    atp = (grad * (h_clean - h_corr)).sum(1).reshape(12).double()
    torch.testing.assert_close(results["attribution_patching"].effect[0], atp, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(results["relevance_patching"].effect[0], atp, atol=1e-6, rtol=1e-5)  # rules=(): AtP
    whole = _patched_metric(model, model.rnn, corrupted, _class1, lambda out: (out[0], h_clean)) - base
    assert abs(float(results["integrated_gradients"].effect.sum()) - whole) < 1e-3 * max(abs(whole), 1e-3)


def test_lstm_h_n_and_an_unused_element_give_zero_not_an_autograd_error():
    model, clean, corrupted = _rnn(nn.LSTM)
    got = interp.capture(model, clean, "rnn:output[1][0]", progress=False)
    torch.testing.assert_close(got.data, _outputs(model, model.rnn, clean)[0][1][0].movedim(1, 0).reshape(4, 12))
    ig = patching.integrated_gradients(model, clean, corrupted, _class1, sites="rnn:output[1][1]", steps=4)
    assert float(ig.grids["rnn:output[1][1]"].effect.abs().max()) == 0.0  # c_n never reaches the classifier


def test_a_flattened_batch_axis_is_refused():
    class Flat(nn.Module):
        def forward(self, x):
            return x.reshape(-1, x.shape[-1])

    model = nn.Sequential(Flat(), nn.Linear(3, 2))
    with pytest.raises(SiteError, match="no single axis follows the inputs"):
        engine.record(model, torch.randn(2, 4, 3), ["0"])


# ----------------------------------------------------------------------------- item 4: reused modules
class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock: one ReLU module applied twice."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + x)


class TinyResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(4))
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.layer1(torch.relu(self.stem(x))).mean((2, 3)))


def _resnet():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(3)
    return TinyResNet().eval(), torch.randn(3, 3, 6, 6, generator=gen), torch.randn(3, 3, 6, 6, generator=gen)


def test_a_reused_module_is_refused_without_a_call_and_read_per_call():
    """Capture used to return the first call (it stops early) for 'layer1.0.relu'."""
    model, clean, _ = _resnet()
    with pytest.raises(SiteError, match=r"runs 2 times.*'layer1.0.relu#0', 'layer1.0.relu#1'"):
        interp.capture(model, clean, "layer1.0.relu", progress=False)
    with pytest.raises(SiteError, match="use #0 .. #1"):
        interp.capture(model, clean, "layer1.0.relu#2", progress=False)
    calls = _outputs(model, model.layer1[0].relu, clean)
    for k in (0, 1):
        got = interp.capture(model, clean, f"layer1.0.relu#{k}", progress=False)
        torch.testing.assert_close(got.data, calls[k])
    assert engine.resolve_sites(model, "layer1.*.relu#1") == ["layer1.0.relu#1"]


@pytest.mark.parametrize("call", [0, 1])
def test_patching_one_call_of_a_reused_module_matches_a_manual_hook(call):
    """Patching used to edit every call with the last call's source."""
    model, clean, corrupted = _resnet()
    site = f"layer1.0.relu#{call}"
    relu = model.layer1[0].relu
    source, base_calls = _outputs(model, relu, clean)[call], _outputs(model, relu, corrupted)
    metric = _class1
    with torch.no_grad():
        base = float(metric(model(corrupted)))

    def only(edit):
        count = [0]

        def hook(out):
            k, count[0] = count[0], count[0] + 1
            return edit(out) if k == call else out
        return hook

    def channel(c):
        def edit(out):
            out = out.clone()
            out[:, c] = source[:, c]
            return out
        return edit

    manual = torch.tensor([_patched_metric(model, relu, corrupted, metric, only(channel(c))) - base for c in range(4)],
                          dtype=torch.float64)
    results = {f.__name__: f(model, clean, corrupted, metric, sites=site).grids[site] for f in METHODS}
    torch.testing.assert_close(results["activation_patching"].effect[0], manual, atol=1e-6, rtol=1e-5)
    offset = torch.zeros_like(base_calls[call], requires_grad=True)
    shifted = only(lambda o: o + offset)
    handle = relu.register_forward_hook(lambda m, a, out: shifted(out))
    try:
        (grad,) = torch.autograd.grad(metric(model(corrupted)), offset)
    finally:
        handle.remove()
    atp = (grad * (source - base_calls[call])).sum((0, 2, 3)).double()
    torch.testing.assert_close(results["attribution_patching"].effect[0], atp, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(results["relevance_patching"].effect[0], atp, atol=1e-6, rtol=1e-5)  # ReLU: no rule
    whole = _patched_metric(model, relu, corrupted, metric, only(lambda out: source)) - base
    assert abs(float(results["integrated_gradients"].effect.sum()) - whole) < 2e-2 * max(abs(whole), 1e-3)


def test_rules_and_records_at_every_call_still_work_on_reused_modules():
    """RelP's rules run at every call of a reused module (Hook(every_call=True), DEFINE hooks always)."""
    model, clean, _ = _resnet()
    seen = []
    with torch.no_grad(), engine.hooked(model, [Hook("layer1.0.relu", lambda a: seen.append(a.shape),
                                                     every_call=True)]):
        model(clean)
    assert len(seen) == 2


class _Mix(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        return a * b + (0 if scale is None else scale)


class _TwoArgs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.left, self.right, self.mix = nn.Linear(3, 4), nn.Linear(3, 4), _Mix()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mix(self.left(x), self.right(x), scale=x.sum(1, keepdim=True))


def test_input_elements_are_positional_or_keyword_arguments():
    torch.manual_seed(0)
    model, x = _TwoArgs().eval(), torch.randn(5, 3)
    rec = engine.record(model, x, engine.resolve_sites(model, ["mix:input[1]", "mix:input[scale]", "mix:input"]))
    torch.testing.assert_close(rec.acts["mix:input[1]"], model.right(x))
    torch.testing.assert_close(rec.acts["mix:input[scale]"], x.sum(1, keepdim=True))
    torch.testing.assert_close(rec.acts["mix:input"], model.left(x))
    with torch.no_grad():
        edited = engine.run(model, x, [Hook("mix:input[scale]", lambda s: s * 0)])
        torch.testing.assert_close(edited, model.left(x) * model.right(x))
    with pytest.raises(SiteError, match="keywords"):
        engine.record(model, x, ["mix:input[other]"])


def test_the_probe_pass_leaves_no_trace_in_training_mode():
    """The probe runs the model (twice) before the real pass: batch-norm statistics and the random state must be
    as after the real pass alone."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.Linear(4, 2)).train()
    twin = copy.deepcopy(net)
    x = torch.randn(6, 3)
    torch.manual_seed(1)
    plain = twin(x)
    torch.manual_seed(1)
    rec = engine.record(net, x, ["2"])
    torch.testing.assert_close(rec.output, plain.detach())
    torch.testing.assert_close(net[1].running_mean, twin[1].running_mean)
    assert int(net[1].num_batches_tracked) == 1
    calls = []  # the user's own hooks (and block replay's observers) do not see the probe passes
    handle = net[3].register_forward_hook(lambda m, a, out: calls.append(out.shape[0]))
    try:
        engine.record(net, torch.randn(5, 3), ["2"])
    finally:
        handle.remove()
    assert calls == [5]
