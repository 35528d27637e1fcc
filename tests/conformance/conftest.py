"""Architecture conformance suite: tiny random-initialised models of real architectures, built offline.

Every model here is built from a ``transformers`` config class (2 layers, d_model 32, vocabulary 128)
or written as a plain ``nn.Module``, and loaded the way a user brings one: ``interp.models.load(model,
tokenizer=tok)``. A new architecture is one line in :data:`ARCHITECTURES`.

Each builder returns ``Built(model, tokenizer, info)``:

* ``model``: a ``TransformerBridge`` (eval mode) or a plain ``nn.Module``;
* ``tokenizer``: the bridge's tokenizer (None for plain modules);
* ``info`` (:class:`Info`): which site kinds the model has (``info.sites[kind]`` lists the hook names or
  module paths per layer), whether it is a mixture of experts, gated, RMSNorm with ``1 + w`` (Gemma),
  encoder-only, with parallel attention and MLP, with norms on the sublayer outputs, plus an untouched
  copy of the Hugging Face model (``info.reference``) for reference computations.

Weights are initialised with standard deviation 0.2 (not the usual 0.02), so that logits and patching
effects are of order one and comparisons to 1e-4 mean something. Every 1-D parameter (norm gains, biases, ``b_U``) gets seeded noise on top of its initialisation, so
that code which forgets a gain offset, a centring or a bias gives a different number (pass
``perturb=False`` for the untouched initialisation). Models are built once per session (``built``);
do not change their weights in a test (use ``copy.deepcopy``).

Fixtures: ``built(name)`` (session cache), ``lm`` (parametrised over the language models), ``module``
(over the plain modules), ``example`` (clean/corrupted inputs and a metric for the model under test).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from torch import nn

import interp
from interp import engine
from interp.engine import SITE_KINDS
from interp.errors import SiteError

VOCAB = 128
SEQ_LEN = 6

@dataclass(frozen=True)
class Info:
    """What a conformance model has. ``sites[kind]`` = site names (hook names or module paths) per layer."""

    name: str
    kind: str  # "bridge" or "module"
    sites: dict[str, tuple[str, ...]]
    architecture: str = ""
    moe: bool = False  # mixture of experts: no mlp_pre/mlp_post kinds (the hooks are the whole block's in/out)
    gated: bool = False  # gated MLP (W_gate)
    norm: str | None = None  # "LN" or "RMS"
    norm_offset: bool = False  # Gemma: RMSNorm applies 1 + w
    encoder_only: bool = False  # bidirectional attention (BERT)
    parallel: bool = False  # attention and MLP read the same residual stream (no resid_mid)
    post_norms: bool = False  # a norm on each sublayer's output (Gemma-2/3, OLMo-2): hook_mlp_out is after it
    n_layers: int = 2
    reference: Any = field(default=None, repr=False, compare=False)  # untouched copy of the wrapped model


@dataclass
class Built:
    model: Any
    tokenizer: Any
    info: Info


@dataclass
class Example:
    """Clean and corrupted inputs of equal shape and a scalar metric on the model's output."""

    clean: torch.Tensor
    corrupted: torch.Tensor
    metric: Callable[[torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------------------------- tokenizers


def word_tokenizer(vocab_size: int = VOCAB, encoder: bool = False) -> Any:
    """An in-memory word-level tokenizer (words ``w0``, ``w1`` ...), like one a user builds for a toy model.

    Decoder style: ``<pad> <bos> <eos> <unk>`` then words, BOS not added by the tokenizer itself;
    encoder style (BERT): ``[PAD] [UNK] [CLS] [SEP] [MASK]``, ``[CLS] ... [SEP]`` around every text.
    It is never saved: ``interp.models.load`` has to do TransformerLens's save-and-reload itself.
    """
    import tokenizers
    import transformers

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] if encoder else ["<pad>", "<bos>", "<eos>", "<unk>"]
    vocab = {t: i for i, t in enumerate(specials + [f"w{i}" for i in range(vocab_size - len(specials))])}
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token=specials[1] if encoder else "<unk>"))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    backend.decoder = tokenizers.decoders.WordPiece(prefix="##", cleanup=False)
    if encoder:
        backend.post_processor = tokenizers.processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
        names = dict(pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    else:
        names = dict(pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", unk_token="<unk>")
    return transformers.PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=64, **names)


# --------------------------------------------------------------------------------------------- builders


def _perturb(model: nn.Module, seed: int) -> None:
    """Seeded noise on every 1-D parameter (norm gains, biases) so gains, offsets and biases all matter."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            if p.ndim == 1:
                p.add_(0.3 * torch.randn(p.shape, generator=gen).to(p))


def _bridge_info(name: str, bridge: Any, reference: Any) -> Info:
    n = int(bridge.cfg.n_layers)
    sites = {}
    for kind in SITE_KINDS:  # the kinds the engine accepts (MoE blocks refuse mlp_pre/mlp_post: not neurons)
        try:
            sites[kind] = tuple(engine.kind_sites(bridge, kind))
        except SiteError:
            pass
    blocks = getattr(bridge, "blocks", None)  # encoder-decoders have encoder_blocks / decoder_blocks instead
    block = blocks[0] if blocks is not None else None
    final = getattr(bridge, "ln_final", None)  # GPT-1 has no final norm
    return Info(
        name=name, kind="bridge", sites=sites, architecture=str(getattr(bridge.cfg, "architecture", "")),
        moe=any(engine.is_moe(bridge, layer) for layer in range(n)), gated=bool(getattr(bridge.cfg, "gated_mlp", False)),
        norm=None if final is None else "RMS" if getattr(final, "uses_rms_norm", False) else "LN",
        norm_offset=bool(getattr(final, "uses_weight_offset", False)),
        encoder_only=getattr(bridge.cfg, "attention_dir", "causal") == "bidirectional",
        parallel="resid_mid" not in sites, post_norms=block is not None and hasattr(block, "ln2_post"), n_layers=n, reference=reference,
    )


def hf_lm(config_class: str, model_class: str, *, encoder: bool = False, **config: Any) -> Callable[..., Built]:
    """Builder of a tiny Hugging Face language model: ``transformers.<config_class>(vocab_size=128, **config)``."""

    def build(name: str, perturb: bool = True, seed: int = 0) -> Built:
        import transformers

        cfg = getattr(transformers, config_class)(vocab_size=VOCAB, **config)
        torch.manual_seed(seed)
        hf_model = getattr(transformers, model_class)(cfg).eval()
        if perturb:
            _perturb(hf_model, seed)
        reference = copy.deepcopy(hf_model)  # the bridge wraps hf_model in place
        model, tokenizer = interp.models.load(hf_model, tokenizer=word_tokenizer(encoder=encoder))
        return Built(model, tokenizer, _bridge_info(name, model, reference))

    return build


_DECODER = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, intermediate_size=64,
                max_position_embeddings=64, initializer_range=0.2)
_GQA = dict(_DECODER, num_key_value_heads=2)


class TinyCNN(nn.Module):
    """3 x 8 x 8 images -> 5 classes: two conv-BN-ReLU stages, global average pool, linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


def build_cnn(name: str, perturb: bool = True, seed: int = 0) -> Built:
    torch.manual_seed(seed)
    net = TinyCNN()
    if perturb:
        _perturb(net, seed)
        with torch.no_grad():  # non-trivial BatchNorm statistics
            gen = torch.Generator().manual_seed(seed + 1)
            for bn in (net.features[1], net.features[4]):
                bn.running_mean.copy_(0.2 * torch.randn(8, generator=gen))
                bn.running_var.copy_(0.5 + torch.rand(8, generator=gen))
    model, preprocess = interp.models.load(net.eval())
    sites = {"conv": ("features.0", "features.3"), "norm": ("features.1", "features.4"),
             "act": ("features.2", "features.5"), "head": ("head",)}
    return Built(model, preprocess, Info(name=name, kind="module", sites=sites, norm="BN",
                                         reference=copy.deepcopy(model)))


def build_vit(name: str, perturb: bool = True, seed: int = 0) -> Built:
    from interp.models.digits import DigitsViT, DigitsViTConfig

    torch.manual_seed(seed)
    net = DigitsViT(DigitsViTConfig(d_model=32, n_layers=2, n_heads=4, d_mlp=64))
    if perturb:
        _perturb(net, seed)
    model, preprocess = interp.models.load(net.eval())
    blocks = range(2)
    sites = {"resid_post": tuple(f"blocks.{i}" for i in blocks), "ln": tuple(f"blocks.{i}.ln1" for i in blocks),
             "attn_out": tuple(f"blocks.{i}.attn" for i in blocks),
             "pattern": tuple(f"blocks.{i}.attn.pattern" for i in blocks),
             "mlp_pre": tuple(f"blocks.{i}.mlp.fc1" for i in blocks),
             "mlp_post": tuple(f"blocks.{i}.mlp.act" for i in blocks),
             "mlp_out": tuple(f"blocks.{i}.mlp" for i in blocks)}
    return Built(model, preprocess, Info(name=name, kind="module", sites=sites, norm="LN",
                                         reference=copy.deepcopy(model)))


#: name -> builder(name, perturb=True, seed=0) -> Built. One line per architecture.
ARCHITECTURES: dict[str, Callable[..., Built]] = {
    "gpt2": hf_lm("GPT2Config", "GPT2LMHeadModel", n_layer=2, n_embd=32, n_head=4, n_positions=64,
                  initializer_range=0.2, bos_token_id=1, eos_token_id=2),
    "neox": hf_lm("GPTNeoXConfig", "GPTNeoXForCausalLM", **_DECODER),
    "llama-gqa": hf_lm("LlamaConfig", "LlamaForCausalLM", **_GQA),
    "gemma2": hf_lm("Gemma2Config", "Gemma2ForCausalLM", **_GQA, head_dim=8, sliding_window=16),
    "gemma3": hf_lm("Gemma3TextConfig", "Gemma3ForCausalLM", **_GQA, head_dim=8, sliding_window=16),
    "qwen2": hf_lm("Qwen2Config", "Qwen2ForCausalLM", **_GQA),
    "olmo": hf_lm("OlmoConfig", "OlmoForCausalLM", **_DECODER),
    "olmo2": hf_lm("Olmo2Config", "Olmo2ForCausalLM", **_DECODER),
    "phi": hf_lm("PhiConfig", "PhiForCausalLM", **_DECODER),
    "phi3": hf_lm("Phi3Config", "Phi3ForCausalLM", **_GQA, pad_token_id=0),
    "mixtral": hf_lm("MixtralConfig", "MixtralForCausalLM", **_GQA, num_local_experts=4, num_experts_per_tok=2),
    "qwen2-moe": hf_lm("Qwen2MoeConfig", "Qwen2MoeForCausalLM", **_GQA, moe_intermediate_size=32,
                       shared_expert_intermediate_size=64, num_experts=4, num_experts_per_tok=2),
    "bert": hf_lm("BertConfig", "BertForMaskedLM", encoder=True, **_DECODER),
    "cnn": build_cnn,
    "vit": build_vit,
}
LANGUAGE_MODELS = [name for name, builder in ARCHITECTURES.items() if builder not in (build_cnn, build_vit)]
MODULES = ["cnn", "vit"]


@functools.cache
def _build(name: str) -> Built:
    return ARCHITECTURES[name](name)


@pytest.fixture(scope="session")
def built() -> Callable[[str], Built]:
    """``built(name)``: the model of ``name``, built once per session (shared: do not change its weights)."""
    return _build


@pytest.fixture(scope="module", params=LANGUAGE_MODELS)
def lm(request: Any, built: Callable[[str], Built]) -> Built:
    """Each language model of the suite (TransformerBridge)."""
    return built(request.param)


@pytest.fixture(scope="module", params=MODULES)
def module(request: Any, built: Callable[[str], Built]) -> Built:
    """Each plain nn.Module of the suite (CNN, ViT)."""
    return built(request.param)


def make_example(b: Built, n: int = 2, seed: int = 0) -> Example:
    """Clean inputs, corrupted inputs differing in a few places, and a logit-difference metric."""
    gen = torch.Generator().manual_seed(seed)
    if b.info.kind == "bridge":
        words = torch.randint(0, VOCAB - 8, (n, SEQ_LEN - 1), generator=gen)
        swapped = words.clone()
        swapped[:, 1] = (words[:, 1] + 7) % (VOCAB - 8)
        swapped[:, -2] = (words[:, -2] + 11) % (VOCAB - 8)
        clean = b.model.to_tokens([" ".join(f"w{i}" for i in row) for row in words.tolist()])
        corrupted = b.model.to_tokens([" ".join(f"w{i}" for i in row) for row in swapped.tolist()])

        def metric(logits: torch.Tensor) -> torch.Tensor:
            return (logits[:, -1, 9] - logits[:, -1, 10]).mean()

        return Example(clean, corrupted, metric)
    channels = 1 if b.info.name == "vit" else 3
    clean = torch.randn(n, channels, 8, 8, generator=gen)
    corrupted = clean.clone()
    corrupted[:, :, 2:6, 2:6] = torch.randn(n, channels, 4, 4, generator=gen)

    def class_metric(out: torch.Tensor) -> torch.Tensor:
        return (out[:, 1] - out[:, 2]).mean()

    return Example(clean, corrupted, class_metric)


@pytest.fixture(scope="module")
def example() -> Callable[..., Example]:
    """``example(built)``: clean/corrupted inputs and a metric for a suite model."""
    return make_example
