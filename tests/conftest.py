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
