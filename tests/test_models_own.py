"""Bring your own model: interp.models.load with local Hugging Face directories, model objects, bridges,
plain nn.Modules and hub names (offline), and the README's example."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import torch

import interp
from interp.errors import ConfigError, DataNotFoundError, InputTypeError

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_gpt2(seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, n_positions=64, vocab_size=128,
                                      initializer_range=0.2)).eval()


def _memory_tokenizer():
    """A word-level tokenizer built in memory (no name_or_path), BOS not added by the tokenizer itself."""
    import tokenizers
    import transformers

    vocab = {t: i for i, t in enumerate(["<pad>", "<bos>", "<eos>", "<unk>"] + [f"w{i}" for i in range(124)])}
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", bos_token="<bos>",
                                                eos_token="<eos>", unk_token="<unk>")


@pytest.fixture()
def checkpoint(tmp_path):
    """A saved tiny GPT-2 with its tokenizer, and an untouched copy of the model."""
    model = _tiny_gpt2()
    model.save_pretrained(tmp_path / "ckpt")
    _memory_tokenizer().save_pretrained(tmp_path / "ckpt")
    return tmp_path / "ckpt", model


def test_load_a_local_directory(checkpoint):
    folder, reference = checkpoint
    for name in (str(folder), folder):
        model, tokenizer = interp.models.load(name)
        assert interp.capture.__module__ and hasattr(model, "hook_dict") and tokenizer is model.tokenizer
        tokens = model.to_tokens(["w1 w2 w3", "w4 w5 w6"])
        assert tokens[:, 0].tolist() == [1, 1]  # the bridge prepends BOS
        with torch.no_grad():
            torch.testing.assert_close(model(tokens), reference(tokens).logits, atol=1e-5, rtol=0)
        acts = interp.capture(model, ["w1 w2 w3"], "blocks.1.mlp.hook_post", positions="last", progress=False)
        assert acts.data.shape == (1, 128)


def test_directory_errors_say_what_is_missing(checkpoint, tmp_path):
    folder, _ = checkpoint
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataNotFoundError, match="config.json"):
        interp.models.load(empty)
    (empty / "config.json").write_text((folder / "config.json").read_text())
    with pytest.raises(DataNotFoundError, match="no weights"):
        interp.models.load(empty)
    no_tok = tmp_path / "no_tok"
    _tiny_gpt2().save_pretrained(no_tok)
    with pytest.raises(DataNotFoundError, match="tokenizer="):
        interp.models.load(no_tok)
    model, _ = interp.models.load(no_tok, tokenizer=_memory_tokenizer())  # the in-memory tokenizer works too
    assert model.to_tokens("w1").tolist() == [[1, 5]]
    with pytest.raises(ConfigError, match="unexpected options"):
        interp.models.load(folder, seed=3)
    with pytest.raises(DataNotFoundError, match="no such directory"):
        interp.models.load(str(tmp_path / "missing" / "dir"))


def test_load_a_model_object_with_an_in_memory_tokenizer():
    from transformer_lens.model_bridge import TransformerBridge

    tokenizer = _memory_tokenizer()
    with pytest.raises(KeyError, match="name_or_path"):  # what TransformerLens does with it on its own
        TransformerBridge.boot_transformers("x", hf_model=_tiny_gpt2(), tokenizer=tokenizer)
    hf_model = _tiny_gpt2()
    reference = copy.deepcopy(hf_model)
    model, tok = interp.models.load(hf_model, tokenizer=tokenizer)
    tokens = model.to_tokens("w1 w2 w3 w4")
    assert tokens.tolist() == [[1, 5, 6, 7, 8]] and tok.decode([4, 5]) == "w0 w1"
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), reference(tokens).logits, atol=1e-5, rtol=0)
    assert model.training is False


def test_model_object_tokenizer_from_its_folder_or_an_error(checkpoint):
    from transformers import AutoModelForCausalLM

    folder, _ = checkpoint
    model, tokenizer = interp.models.load(AutoModelForCausalLM.from_pretrained(folder))  # tokenizer saved beside it
    assert model.to_tokens("w1").tolist() == [[1, 5]]
    with pytest.raises(ConfigError, match="tokenizer="):
        interp.models.load(_tiny_gpt2())


def test_unsupported_architecture_says_to_use_module_paths():
    from transformers import ElectraConfig, ElectraForMaskedLM

    electra = ElectraForMaskedLM(ElectraConfig(vocab_size=64, embedding_size=16, hidden_size=16, num_hidden_layers=1,
                                               num_attention_heads=2, intermediate_size=32))
    with pytest.raises(ConfigError, match="module paths"):
        interp.models.load(electra, tokenizer=_memory_tokenizer())


def test_plain_modules_and_bridges_come_back_as_they_are(tiny_cnn, tiny_bridge):
    model, preprocess = interp.models.load(tiny_cnn)
    assert model is tiny_cnn and preprocess is None
    bridge, tokenizer = interp.models.load(tiny_bridge)
    assert bridge is tiny_bridge and tokenizer is tiny_bridge.tokenizer
    with pytest.raises(ConfigError, match="tokenizer="):
        interp.models.load(tiny_cnn, tokenizer=_memory_tokenizer())
    with pytest.raises(InputTypeError, match="zoo name"):
        interp.models.load(42)


def test_hub_names_offline_say_how_to_load_from_a_directory(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataNotFoundError, match=r"save_pretrained\('my_model'\)") as info:
        interp.models.load("EleutherAI/pythia-14m-not-cached")
    assert "interp.models.load('my_model')" in str(info.value) and "HF_HUB_OFFLINE" in str(info.value)
    with pytest.raises(DataNotFoundError, match="did you mean the zoo model 'smollm2-135m'"):
        interp.models.load("smolm2-135m")


def test_readme_bring_your_own_model_runs(tmp_path, monkeypatch):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Bring your own model", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "the README section has no python example"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["acts"]["blocks.1.mlp.hook_post"].data.shape == (2, 256)
