"""The conformance table generated from TransformerLens's own list of bridged architectures.

``transformer_lens.factories.architecture_adapter_factory.SUPPORTED_ARCHITECTURES`` maps Hugging Face class
names to architecture adapters. One *family* is one adapter (``GemmaForCausalLM`` and ``Gemma1ForCausalLM``
share one); its model class is the first of its names that ``transformers`` has. Every family is built tiny
(2 layers, width 32, 4 heads, vocabulary 128) from its own ``transformers`` config class, offline, by one
generic recipe (:data:`TINY`: the tiny value of every size field the config class has), and booted in the
bridge through ``interp.models.load``. Nothing here says what a family *should* have: the checks ask the model.

A family that is not built gets its reason in :attr:`Family.refused` (it is listed in the report, never
silently dropped):

* its model class is not in ``transformers`` (remote code: Baichuan, InternLM2, OpenELM ...);
* it is not a text language model (multimodal, audio or vision configs: sub-configs or a non-LM head);
* its tiny config does not build or the bridge does not boot it (the exception, in :func:`build`).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import re
from dataclasses import dataclass
from typing import Any

import torch

#: canonical config field -> tiny value; applied to every field of that name a config class has.
TINY: dict[str, Any] = dict(
    vocab_size=128, hidden_size=32, d_model=32, num_hidden_layers=2, num_layers=2, num_attention_heads=4,
    num_heads=4, num_key_value_heads=2, head_dim=8, d_kv=8, intermediate_size=64, ffn_dim=64, d_ff=64,
    max_position_embeddings=64, initializer_range=0.2, initializer_factor=0.2,
    # encoder-decoder
    encoder_layers=2, decoder_layers=2, num_decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
    encoder_ffn_dim=64, decoder_ffn_dim=64, n_inner=64,
    # mixtures of experts
    moe_intermediate_size=32, shared_expert_intermediate_size=64, num_experts=4, num_local_experts=4,
    n_routed_experts=4, num_experts_per_tok=2, n_shared_experts=1, n_group=1, topk_group=1,
    # multi-head latent attention
    kv_lora_rank=16, q_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8, qk_head_dim=16,
    # partial rotary, local attention
    rotary_dim=4, sliding_window=16, attention_window=16,
    # state-space and recurrent blocks
    state_size=8, mamba_d_state=8, mamba_n_heads=4, mamba_d_head=16, mamba_expand=2, ssm_state_size=8,
    n_groups=1, mamba_n_groups=1, time_step_rank=4, conv_kernel=4, lru_width=32,
    # token ids inside the 128-word vocabulary
    bos_token_id=1, eos_token_id=2, pad_token_id=0, decoder_start_token_id=1,
    use_cache=False,
)
#: config fields whose tiny value depends on the family's layout (the recipe, not an expectation)
OVERRIDES: dict[str, dict[str, Any]] = {
    "gpt_neo": dict(attention_types=[[["global", "local"], 1]], window_size=16),
    "mamba2": dict(num_heads=8, head_dim=8),
    "falcon_h1": dict(mamba_d_ssm=64, mamba_n_heads=8, mamba_d_head=8, mamba_d_state=8, mamba_chunk_size=16),
    "gemma4_text": dict(vocab_size_per_layer_input=128, hidden_size_per_layer_input=8),
    "lfm2_moe": dict(layer_types=["conv", "full_attention"], num_dense_layers=1),
    "zamba2": dict(layers_block_type=["linear_attention", "hybrid"]),
    "granitemoehybrid": dict(layer_types=["mamba", "attention"], position_embedding_type="rope"),
}
_MAX_PARAMETERS = 2_000_000  # a tiny config that did not take builds a full-size model: refuse it
#: Hugging Face head classes that are not language-model heads (audio, vision inputs)
_NOT_TEXT = re.compile(r"For(AudioClassification|CTC|PreTraining|ImageClassification)$|^(ViT|DeiT|Hubert|Wav2Vec2)")
_ENCODER_HEADS = re.compile(r"(ForMaskedLM|LMHeadModel)$")


@dataclass(frozen=True)
class Family:
    """One TransformerLens architecture adapter and the ``transformers`` class that builds it."""

    name: str  # the adapter's name without "ArchitectureAdapter", lower case ("llama", "deepseekv2")
    architecture: str  # the TransformerLens key used to build it ("LlamaForCausalLM")
    aliases: tuple[str, ...]  # every TransformerLens key of this adapter
    refused: str | None = None  # why it is not built (None: it is built)

    @property
    def model_class(self) -> Any:
        import transformers

        return getattr(transformers, self.architecture, None)


@functools.cache
def families() -> tuple[Family, ...]:
    """Every architecture adapter TransformerLens registers, in its own order, with the reason a family is not
    built where it is not."""
    import transformers
    from transformer_lens.factories.architecture_adapter_factory import SUPPORTED_ARCHITECTURES

    keys: dict[type, list[str]] = {}
    for key, adapter in SUPPORTED_ARCHITECTURES.items():
        keys.setdefault(adapter, []).append(key)
    out = []
    for adapter, names in keys.items():
        name = adapter.__name__.removesuffix("ArchitectureAdapter").lower()
        found = [k for k in names if hasattr(transformers, k)]
        lm = [k for k in found if not _NOT_TEXT.search(k)]
        if not found:
            out.append(Family(name, names[0], tuple(names), "not in transformers (remote code or a TransformerLens "
                                                            "native model): no config class to build offline"))
            continue
        if not lm:
            out.append(Family(name, found[0], tuple(names), "not a text language model (audio or vision input)"))
            continue
        cls = getattr(transformers, lm[0])
        subs = sorted(k for k in (getattr(cls.config_class, "sub_configs", None) or {})
                      if k in ("vision_config", "audio_config", "vq_config"))
        if subs:
            out.append(Family(name, lm[0], tuple(names), f"multimodal ({', '.join(subs)}): not a text language "
                                                         "model; its text decoder is its own family"))
            continue
        out.append(Family(name, lm[0], tuple(names)))
    return tuple(out)


def family(name: str) -> Family:
    for f in families():
        if f.name == name:
            return f
    raise KeyError(name)


def built_families() -> list[str]:
    """Names of the families with a tiny config to build."""
    return [f.name for f in families() if f.refused is None]


def tiny_config(config_class: Any) -> Any:
    """``config_class`` with every size field of :data:`TINY` it has set to its tiny value (sub-configs, e.g. an
    encoder-decoder's ``encoder`` and ``decoder``, too)."""
    fields = {f.name for f in dataclasses.fields(config_class)} if dataclasses.is_dataclass(config_class) else set()
    reverse = getattr(config_class, "attribute_map", {}) or {}
    kwargs: dict[str, Any] = {}
    for key, value in TINY.items():
        target = reverse.get(key, key)
        if target in fields:
            kwargs[target] = value
    for key, sub in (getattr(config_class, "sub_configs", None) or {}).items():
        if key in fields and isinstance(sub, type):
            kwargs[key] = tiny_config(sub)
    if "kv_lora_rank" in fields and "num_key_value_heads" in kwargs:  # multi-head latent attention: no GQA
        kwargs["num_key_value_heads"] = kwargs.get("num_attention_heads", 4)
    kwargs |= OVERRIDES.get(getattr(config_class, "model_type", ""), {})
    return config_class(**kwargs)


def is_encoder(model_class: Any) -> bool:
    """A masked-LM head (BERT style: bidirectional, [CLS] ... [SEP] inputs)."""
    return bool(_ENCODER_HEADS.search(model_class.__name__)) and "GPT" not in model_class.__name__


def build(name: str, perturb: bool = True, seed: int = 0) -> Any:
    """The tiny model of family ``name`` as the conformance suite's ``Built`` (bridge, tokenizer, info)."""
    import interp

    from .conftest import Built, _bridge_info, _perturb, word_tokenizer

    fam = family(name)
    if fam.refused:
        raise RuntimeError(f"{name}: {fam.refused}")
    cls = fam.model_class
    cfg = tiny_config(cls.config_class)
    if hasattr(cfg, "_attn_implementation"):
        cfg._attn_implementation = "eager"
    with torch.device("meta"):
        size = sum(p.numel() for p in cls(cfg).parameters())
    if size > _MAX_PARAMETERS:
        raise RuntimeError(f"{name}: the tiny config did not take ({size:,} parameters)")
    torch.manual_seed(seed)
    hf_model = cls(cfg).eval()
    if perturb:
        _perturb(hf_model, seed)
    reference = copy.deepcopy(hf_model)
    model, tokenizer = interp.models.load(hf_model, tokenizer=word_tokenizer(encoder=is_encoder(cls)))
    return Built(model, tokenizer, _bridge_info(name, model, reference))
