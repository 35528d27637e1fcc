"""RelP's rules on every family that builds offline: dense layers inside MoE stacks, shared experts, smooth
activations found by what they compute, conservation reported by every call (issue 18, items 2 and 5).

Tiny random-initialised models from ``transformers`` config classes (2 layers, d_model 32), loaded the way a
user brings one. The reference is conservation of relevance: with every rule on and no biases, the relevance at
the first residual stream equals the metric (``patching.relevance_conservation``), and the model's own logits.
"""

from __future__ import annotations

import copy
import functools
import warnings

import pytest
import torch
from torch import nn

import interp
import patching
from interp import engine
from interp.errors import SiteError
from patching.conservation import relevance_conservation
from patching.relp_check import ConservationWarning
from patching.rules import RuleError

_GQA = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
            max_position_embeddings=64, initializer_range=0.2)
#: name -> (config class, model class, config); the dense-in-MoE stacks put their dense MLP at block 0
FAMILIES = {
    "deepseek-v2": ("DeepseekV2Config", "DeepseekV2ForCausalLM",
                    dict(_GQA, first_k_dense_replace=1, n_shared_experts=1, n_routed_experts=4, num_experts_per_tok=2,
                         moe_intermediate_size=32, kv_lora_rank=16, q_lora_rank=None, qk_rope_head_dim=4,
                         qk_nope_head_dim=8, v_head_dim=8)),
    "qwen2-moe": ("Qwen2MoeConfig", "Qwen2MoeForCausalLM",
                  dict(_GQA, moe_intermediate_size=32, shared_expert_intermediate_size=64, num_experts=4,
                       num_experts_per_tok=2, mlp_only_layers=[0])),
    "qwen3-moe": ("Qwen3MoeConfig", "Qwen3MoeForCausalLM",
                  dict(_GQA, moe_intermediate_size=32, num_experts=4, num_experts_per_tok=2, decoder_sparse_step=2)),
    "olmoe": ("OlmoeConfig", "OlmoeForCausalLM", dict(_GQA, num_experts=4, num_experts_per_tok=2)),
    "mixtral": ("MixtralConfig", "MixtralForCausalLM", dict(_GQA, num_local_experts=4, num_experts_per_tok=2)),
}
DENSE_IN_MOE = ["deepseek-v2", "qwen2-moe", "qwen3-moe"]
TOKENS = torch.tensor([[1, 5, 9, 17, 33, 40], [1, 7, 9, 21, 33, 41]])


def metric(logits: torch.Tensor) -> torch.Tensor:
    return (logits[:, -1, 9] - logits[:, -1, 10]).mean()


def tokenizer(vocab_size: int = 128):
    from conformance.conftest import word_tokenizer

    return word_tokenizer(vocab_size)


@functools.cache
def build(name: str):
    """(bridge, untouched Hugging Face copy) of a family of :data:`FAMILIES` (built once; do not edit weights)."""
    import transformers
    from conformance.conftest import _perturb

    config_class, model_class, config = FAMILIES[name]
    torch.manual_seed(0)
    hf = getattr(transformers, model_class)(getattr(transformers, config_class)(vocab_size=128, **config)).eval()
    _perturb(hf, 0)
    reference = copy.deepcopy(hf)
    model, _ = interp.models.load(hf, tokenizer=tokenizer())
    return model, reference


# --------------------------------------------------------------------------------------------- item 2: MoE per layer
@pytest.mark.parametrize("name", DENSE_IN_MOE)
def test_dense_layers_of_moe_stacks_are_not_moe(name):
    """Block 0 is a dense MLP (first_k_dense_replace / mlp_only_layers / decoder_sparse_step), block 1 experts."""
    model, reference = build(name)
    layers = reference.model.layers
    assert not hasattr(layers[0].mlp, "experts") and hasattr(layers[1].mlp, "experts")  # the ground truth
    assert [engine.is_moe(model, layer) for layer in range(2)] == [False, True]
    assert engine.kind_sites(model, "mlp_post", [0]) == ["blocks.0.mlp.hook_post"]
    with pytest.raises(SiteError, match="mixture of experts"):
        engine.kind_sites(model, "mlp_post", [1])
    # the dense layer's neurons: mlp_post is the input of down_proj, and the vocabulary read-out takes its rows
    rec = engine.record(model, TOKENS, ["blocks.0.mlp.hook_post"])
    assert rec.acts["blocks.0.mlp.hook_post"].shape[-1] == layers[0].mlp.down_proj.in_features
    weights = interp.label.vocab.mlp_weights(model, 0)
    torch.testing.assert_close(weights["out"], layers[0].mlp.down_proj.weight.detach().T)
    assert interp.label.vocab.mlp_experts(model, 0) is None


@pytest.mark.parametrize("name", list(FAMILIES))
def test_relp_conserves_relevance_on_every_moe_family(name):
    """Every rule on, no biases: relevance at the residual stream = the metric (float32, <= 1e-4 relative).
    Before, the dense MLP (and DeepSeek's shared_experts) got no rule: errors 0.3 to 0.95."""
    model, _ = build(name)
    res = relevance_conservation(model, TOKENS, metric)
    assert res.relative_error <= 1e-4, (name, res.relative_error, res.rules)
    if name in DENSE_IN_MOE:
        assert "blocks.0.mlp.hook_post" in res.rules["identity"] and "blocks.0.mlp.hook_post" in res.rules["half"]
    if name == "deepseek-v2":
        assert "blocks.1.mlp.shared_experts.hook_post" in res.rules["half"]


def test_shared_experts_rows_in_the_vocabulary_projection():
    """DeepSeek's shared_experts rows follow the routed experts' rows (expert -1), like Qwen2-MoE's shared_expert."""
    model, reference = build("deepseek-v2")
    experts = interp.label.vocab.mlp_experts(model, 1)
    shared = reference.model.layers[1].mlp.shared_experts.down_proj.weight
    assert (experts == -1).sum() == shared.shape[1]
    torch.testing.assert_close(interp.label.vocab.mlp_weights(model, 1)["out"][experts == -1], shared.detach().T)


# --------------------------------------------------------------------------------------------- item 5: never silent AtP
class Swish17(nn.Module):
    """A user's own activation, under no known class name."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.7 * x)


class FunctionalTanh(nn.Module):
    """An MLP whose non-linearity is a function call inside forward(): no module for a rule to go on."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.act = nn.Linear(6, 16), nn.Linear(16, 3), nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.tanh(self.act(self.fc1(x))))


class GRUClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed, self.rnn, self.head = nn.Embedding(50, 16), nn.GRU(16, 16, batch_first=True), nn.Linear(16, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(self.embed(tokens))[0][:, -1])


def test_activations_are_found_by_what_they_compute():
    from transformers.activations import GELUActivation

    from patching.relp_probe import activation_kind

    smooth = [nn.GELU(), nn.SiLU(), nn.Tanh(), GELUActivation(), Swish17(), nn.Hardtanh(), nn.Softplus()]
    assert [activation_kind(m) for m in smooth] == ["smooth"] * len(smooth)
    assert [activation_kind(m) for m in (nn.ReLU(), nn.LeakyReLU(0.1), nn.Identity())] == ["homogeneous"] * 3
    assert [activation_kind(m) for m in (nn.Softmax(-1), nn.LayerNorm(4), nn.Linear(4, 4), nn.Flatten())] == [None] * 4
    net = nn.Sequential(nn.Linear(6, 16), Swish17(), nn.Linear(16, 3))
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    res = patching.relevance_patching(net, x, x.flip(0), lambda out: out[:, 0].mean(), sites=["0"], rules=["identity"])
    assert res.extra["rules"]["identity"] == ["1"]
    assert res.extra["conservation"]["relative_error"] <= 1e-4


def test_distilbert_as_a_plain_module_gets_every_rule_and_conserves_relevance():
    """transformers' GELUActivation (no class-name list has it) takes the Identity rule; its attention goes through
    the AttentionInterface. Before: rules=['identity'] raised 'no smooth activation modules'."""
    import transformers

    torch.manual_seed(0)
    cfg = transformers.DistilBertConfig(vocab_size=128, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                                        max_position_embeddings=64, initializer_range=0.2)
    model = transformers.DistilBertForMaskedLM(cfg).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConservationWarning)
        res = patching.relevance_patching(model, TOKENS, TOKENS.flip(1), metric,
                                          sites=["distilbert.transformer.layer.0.ffn"])
    assert "distilbert.transformer.layer.1.ffn.activation" in res.extra["rules"]["identity"]
    assert res.extra["conservation"]["relative_error"] <= 1e-4, res.extra["conservation"]
    assert "relevance conserved" in res.summary() and "identity at 3 sites" in res.summary()
    only = patching.relevance_patching(model, TOKENS, TOKENS.flip(1), metric,
                                       sites=["distilbert.transformer.layer.0.ffn"], rules=["identity"])
    assert len(only.extra["rules"]["identity"]) == 3


def test_a_gru_refuses_relp_unless_rules_are_switched_off():
    model = GRUClassifier().eval()
    x = torch.randint(0, 50, (3, 5), generator=torch.Generator().manual_seed(0))

    def first(out: torch.Tensor) -> torch.Tensor:
        return out[:, 0].mean()

    with pytest.raises(RuleError, match=r"no RelP rule could be placed.*\['rnn'\]"):
        patching.relevance_patching(model, x, x.flip(0), first, sites=["embed"])
    res = patching.relevance_patching(model, x, x.flip(0), first, sites=["embed"], rules=())
    atp = patching.attribution_patching(model, x, x.flip(0), first, sites=["embed"])
    assert torch.equal(res["embed"].effect, atp["embed"].effect)


def test_unconserved_relevance_warns_and_strict_raises():
    """A tanh called as a function takes no rule: the call says so (the GELU module does take one)."""
    torch.manual_seed(0)
    net = FunctionalTanh().eval()
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))

    def first(out: torch.Tensor) -> torch.Tensor:
        return out[:, 0].mean()

    with pytest.warns(ConservationWarning, match="not conserved"):
        res = patching.relevance_patching(net, x, x.flip(0), first, sites=["fc1"])
    assert res.extra["rules"]["identity"] == ["act"] and not res.extra["conservation"]["conserved"]
    assert "NOT conserved" in res.summary()
    with pytest.raises(RuleError, match="not conserved"):
        patching.relevance_patching(net, x, x.flip(0), first, sites=["fc1"], strict=True)


def test_conservation_tolerance_follows_the_dtype():
    """In bfloat16 rounding alone gives a few percent; that is not a missing rule (before: 'NOT conserved')."""
    model, _ = build("qwen3-moe")
    half = copy.deepcopy(model).to(torch.bfloat16)
    res = relevance_conservation(half, TOKENS, lambda logits: metric(logits).float())
    assert res.tolerance == 32 * torch.finfo(torch.bfloat16).eps
    assert res.relative_error > 1e-4 and res.conserved, res.summary()


def test_a_model_with_nothing_for_the_rules_warns_that_relp_is_atp():
    """No rule applies and relevance is conserved without them (here: linear layers only): a warning, not silence."""
    from patching.relp_check import RuleWarning

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 4), nn.Linear(4, 2)).eval()
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(0))
    with pytest.warns(RuleWarning, match="exactly AtP"):
        res = patching.relevance_patching(net, x, x.flip(0), lambda out: out[:, 0].mean(), sites=["0"])
    assert res.extra["conservation"]["conserved"] and not any(res.extra["rules"].values())


def test_phimoe_as_a_plain_module_is_reported_not_conserved():
    """Phi-MoE has no bridge: as a plain module its experts' gated product and router take no rule, and the call
    must say so (the check keeps fused expert weights such as gate_up_proj: they are weights, not constants)."""
    import transformers

    torch.manual_seed(0)
    cfg = transformers.PhimoeConfig(vocab_size=128, **_GQA, num_local_experts=4, num_experts_per_tok=2)
    model = transformers.PhimoeForCausalLM(cfg).eval()
    with pytest.warns(ConservationWarning):
        res = patching.relevance_patching(model, TOKENS, TOKENS.flip(1), metric, sites=["lm_head"])
    assert res.extra["rules"]["identity"] == ["model.layers.0.mlp.experts.act_fn", "model.layers.1.mlp.experts.act_fn"]
    assert res.extra["conservation"]["relative_error"] > 0.1


def test_llama_as_a_plain_module_gets_every_rule_and_conserves_relevance():
    """LlamaRMSNorm (no nn.RMSNorm) is found as a norm by what it computes, the gated product by a probe of
    down(act(gate x) * up x); before: no LN or Half rule on a transformers model used as a plain module."""
    import transformers

    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(vocab_size=128, **_GQA)).eval()
    res = patching.relevance_patching(model, TOKENS, TOKENS.flip(1), metric, sites=["model.layers.0.mlp"])
    assert "model.layers.1.post_attention_layernorm" in res.extra["rules"]["ln"]
    assert res.extra["rules"]["half"] == ["model.layers.0.mlp.down_proj:input", "model.layers.1.mlp.down_proj:input"]
    assert res.extra["conservation"]["relative_error"] <= 1e-4, res.extra["conservation"]
