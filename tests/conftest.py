"""Shared fixtures: tiny models that build in milliseconds, and paths to the shared data."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_bridge():
    """A random 2-layer LN + GELU-MLP TransformerBridge (d_model 32, vocab 50)."""
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(d_model=32, n_layers=2, n_heads=4, d_head=8, n_ctx=32, d_vocab=50, attn_only=False,
                                  d_mlp=64, act_fn="gelu", normalization_type="LN", seed=0)
    return TransformerBridge.boot_native(cfg)


@pytest.fixture(scope="session")
def tiny_cnn():
    """A small conv net (3x8x8 images -> 5 classes)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5)
    )
    return net.eval()


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's small torch ops on one thread (many times faster on a busy 2-core machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def llama_pair():
    """A random 2-layer Llama bridge (Hugging Face-backed: the shared-prefix KV cache applies; vocabulary 128)
    and (clean, corrupted) token batches of 3 x 12 that share their first 6 tokens."""
    import transformers

    from interp.models._tokenizers import integer_tokenizer
    from interp.models.hf import bridge_model

    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                   attn_implementation="eager")
    model, _ = bridge_model(transformers.LlamaForCausalLM(cfg).eval(), integer_tokenizer(128))
    gen = torch.Generator().manual_seed(1)
    clean = torch.randint(3, 128, (3, 12), generator=gen)
    corrupted = clean.clone()
    corrupted[:, 6] = (clean[:, 6] + 7) % 125 + 3
    return model, clean, corrupted


@pytest.fixture(scope="session")
def unembed_shapes():
    """``record(model, fn) -> (fn(), [shape of every logits tensor the unembedding computed])``: what a method
    unembedded (rows, positions, vocabulary columns), read at a bridge's ``unembed.hook_out``."""
    from interp import engine

    def record(model, fn):
        shapes = []
        count = engine.Hook("unembed.hook_out", lambda x: shapes.append(tuple(x.shape)), engine.Phase.READ)
        with engine.hooked(model, [count]):
            out = fn()
        return out, shapes
    return record


@pytest.fixture(scope="session")
def unembedded(unembed_shapes):
    """``record(model, fn) -> (fn(), [(rows, positions) of every unembedding it computed])``."""
    def rows(model, fn):
        out, shapes = unembed_shapes(model, fn)
        return out, [shape[:2] for shape in shapes]
    return rows
