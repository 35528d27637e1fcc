"""Bring your own model: a local Hugging Face directory, a Hugging Face model object, or a hub name.

:func:`interp.models.load` sends everything that is not a zoo name here. Language models whose
architecture TransformerLens bridges come back as a ``TransformerBridge`` (hook names such as
``"blocks.3.mlp.hook_post"``) with the bridge's tokenizer, exactly like the zoo models:

* :func:`load_directory`: a folder written by ``model.save_pretrained(dir)`` and
  ``tokenizer.save_pretrained(dir)`` (``config.json``, weights, tokenizer files);
* :func:`bridge_model`: a ``transformers`` model object that is already in memory, with its tokenizer;
* :func:`load_hub`: a Hugging Face hub / TransformerLens model name. That needs the network (or the
  local Hugging Face cache); offline it raises :class:`~interp.errors.DataNotFoundError` saying how to
  copy the model into a local directory instead.

TransformerLens reloads the tokenizer from disk while it boots (to turn on ``add_bos_token``), so a
tokenizer built in memory fails inside it with ``KeyError: 'name_or_path'``; :func:`disk_tokenizer`
saves such a tokenizer to a temporary folder and loads it back first. Nothing here touches the network
unless a hub name is asked for while the process is online.

>>> model, tokenizer = load_directory("path/to/my_checkpoint")          # doctest: +SKIP
>>> model, tokenizer = bridge_model(my_hf_model, my_tokenizer)           # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, DataNotFoundError, InputTypeError

__all__ = ["load_directory", "bridge_model", "load_hub", "disk_tokenizer", "supported_architecture",
           "is_hf_model", "is_offline"]

_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "tokenizer.model")


def is_hf_model(obj: Any) -> bool:
    """True for ``transformers.PreTrainedModel`` instances (checked without importing transformers).

    Parameters
    ----------
    obj : object
        Any object.
    """
    transformers = sys.modules.get("transformers")
    return transformers is not None and isinstance(obj, transformers.PreTrainedModel)


def is_offline() -> bool:
    """Whether the Hugging Face libraries are in offline mode (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``)."""
    flags = [os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", "")]
    if any(f.strip().lower() in {"1", "true", "yes", "on"} for f in flags):
        return True
    constants = sys.modules.get("huggingface_hub.constants")
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def supported_architecture(config: Any) -> str | None:
    """The TransformerLens architecture name for a Hugging Face config, or None when TL has no adapter.

    Parameters
    ----------
    config : transformers.PretrainedConfig
        The model's config (its ``architectures`` list is what is looked up).
    """
    from transformer_lens.model_bridge.sources._hf_format import determine_architecture_from_hf_config

    try:
        return determine_architecture_from_hf_config(config)
    except ValueError:
        return None


def _unsupported(config: Any, what: str) -> ConfigError:
    archs = getattr(config, "architectures", None) or [getattr(config, "model_type", "?")]
    return ConfigError(
        f"TransformerLens has no bridge for {what} (architecture {', '.join(map(str, archs))}), so it cannot be "
        "loaded with hook names. Use it as a plain nn.Module instead: load it with transformers "
        "(e.g. AutoModel.from_pretrained(dir)) and capture or patch module paths, "
        "e.g. interp.capture(model, inputs, 'model.layers.*.mlp')"
    )


@contextlib.contextmanager
def disk_tokenizer(tokenizer: Any) -> Iterator[Any]:
    """Yield a tokenizer TransformerLens can boot with: one loaded from a local folder.

    TransformerLens reloads a tokenizer from its ``name_or_path`` with ``add_bos_token=True`` (unless it
    already adds BOS or has no BOS token) and probes it with plain text. A tokenizer built in memory has no
    such path (``KeyError: 'name_or_path'``), one loaded from the hub needs the network to be reloaded, and a
    custom subclass may refuse the probe; so any tokenizer not loaded from a local folder is saved to a
    temporary folder and loaded back from there with ``AutoTokenizer`` (the folder is removed when the
    block ends: booting reads it only once). Tokenizers loaded from a local folder pass through unchanged.

    Parameters
    ----------
    tokenizer : transformers.PreTrainedTokenizerBase
        The tokenizer to boot with.
    """
    path = str(tokenizer.init_kwargs.get("name_or_path") or "")
    if path and Path(path).is_dir():
        yield tokenizer
        return
    from transformers import AutoTokenizer

    folder = tempfile.mkdtemp(prefix="interp-tokenizer-")
    try:
        tokenizer.save_pretrained(folder)
        yield AutoTokenizer.from_pretrained(folder, local_files_only=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _tokenizer_from(path: Path) -> Any:
    from transformers import AutoTokenizer

    if not any((path / f).is_file() for f in _TOKENIZER_FILES):
        raise DataNotFoundError(
            f"{path} holds no tokenizer (none of {list(_TOKENIZER_FILES)}); save it there with "
            "tokenizer.save_pretrained(dir), or pass tokenizer= to interp.models.load"
        )
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def bridge_model(hf_model: Any, tokenizer: Any = None, device: str | torch.device | None = None) -> tuple[Any, Any]:
    """Wrap a ``transformers`` model object in a ``TransformerBridge``; returns ``(bridge, tokenizer)``.

    The model is wrapped **in place**: the bridge replaces its submodules with hooked ones, and
    afterwards ``hf_model.save_pretrained`` no longer works (save it first). ``tokenizer`` defaults to
    the one saved beside the model (``hf_model.name_or_path``, when that is a local directory). The
    returned tokenizer is the bridge's copy (it prepends BOS when the tokenizer has one). Eval mode.

    Parameters
    ----------
    hf_model : transformers.PreTrainedModel
        The model object, wrapped in place.
    tokenizer : transformers.PreTrainedTokenizerBase, optional
        Its tokenizer; None: loaded from ``hf_model.name_or_path`` when that is a local folder, else
        :class:`ConfigError`.
    device : str or torch.device, optional
        Move the model there first; None: where its parameters are.

    >>> model, tok = bridge_model(GPT2LMHeadModel(GPT2Config(n_layer=2)), my_tokenizer)   # doctest: +SKIP
    """
    from transformer_lens.model_bridge import TransformerBridge

    config = hf_model.config
    if not getattr(config, "architectures", None):  # a model built from a config in code has none yet
        config.architectures = [type(hf_model).__name__]
    if supported_architecture(config) is None:
        raise _unsupported(config, f"this {type(hf_model).__name__}")
    if tokenizer is None:
        source = Path(str(getattr(hf_model, "name_or_path", "") or "."))
        if not str(getattr(hf_model, "name_or_path", "")) or not source.is_dir():
            raise ConfigError(
                f"a {type(hf_model).__name__} object needs its tokenizer: interp.models.load(model, tokenizer=tok) "
                "(TransformerBridge needs one for texts, BOS handling and token strings)"
            )
        tokenizer = _tokenizer_from(source)
    if device is not None:
        hf_model = hf_model.to(device)
    try:
        device_name = str(device) if device is not None else str(next(hf_model.parameters()).device)
    except StopIteration:
        device_name = "cpu"
    with disk_tokenizer(tokenizer) as tok:
        bridge = TransformerBridge.boot_transformers(
            str(getattr(hf_model, "name_or_path", "") or type(hf_model).__name__), hf_model=hf_model, tokenizer=tok,
            device=device_name,
        )
    bridge.eval()
    return bridge, bridge.tokenizer


def load_directory(path: str | os.PathLike, device: str | torch.device | None = None, tokenizer: Any = None,
                   dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """A local Hugging Face checkpoint folder as ``(TransformerBridge, tokenizer)``; nothing is downloaded.

    The folder holds ``config.json``, the weights (``model.safetensors`` or ``pytorch_model.bin``, sharded
    or not) and the tokenizer files, as written by ``save_pretrained``; ``tokenizer=`` overrides the
    tokenizer. TransformerLens picks the model class from the config (e.g. ``GPT2LMHeadModel``,
    ``LlamaForCausalLM``, ``BertForMaskedLM``) and loads it with eager attention in ``dtype``. Eval mode.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint folder.
    device : str or torch.device, optional
        Where to load the model; None: TransformerLens' default.
    tokenizer : transformers.PreTrainedTokenizerBase, optional
        Overrides the folder's tokenizer; None: loaded from the folder.
    dtype : torch.dtype, optional
        Dtype of the weights (default ``torch.float32``).

    >>> model, tokenizer = load_directory("checkpoints/my-gpt2")   # doctest: +SKIP
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataNotFoundError(f"{str(path)!r} is not a directory")
    if not (folder / "config.json").is_file():
        raise DataNotFoundError(
            f"{folder} holds no config.json: expected a folder written by model.save_pretrained(dir) "
            "(config.json + weights) and tokenizer.save_pretrained(dir)"
        )
    if not any((folder / f).is_file() for f in _WEIGHT_FILES):
        raise DataNotFoundError(f"{folder} holds a config.json but no weights (none of {list(_WEIGHT_FILES)})")
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    if supported_architecture(config) is None:
        raise _unsupported(config, f"the checkpoint in {folder}")
    tokenizer = tokenizer if tokenizer is not None else _tokenizer_from(folder)
    with disk_tokenizer(tokenizer) as tok:
        bridge = TransformerBridge.boot_transformers(str(folder), tokenizer=tok, device=device, dtype=dtype)
    bridge.eval()
    return bridge, bridge.tokenizer


def _cached_snapshot(name: str) -> Path | None:
    """The local Hugging Face cache's copy of a hub repository, or None."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=name, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached, or not a valid repository id
        return None


def _offline_message(name: str, zoo: list[str], hint: list[str]) -> str:
    guess = f" (did you mean the zoo model {hint[0]!r}?)" if hint else ""
    return (
        f"{name!r} is not a zoo model{guess}, not a local directory, and not in the local Hugging Face cache. "
        f"Zoo models: {zoo}. As a Hugging Face hub / TransformerLens name it needs the network"
        + (", which is off here (HF_HUB_OFFLINE)" if is_offline() else "")
        + ". Load it from a local directory instead: where there is network, run\n"
        f"    from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"    AutoModelForCausalLM.from_pretrained({name!r}).save_pretrained('my_model')\n"
        f"    AutoTokenizer.from_pretrained({name!r}).save_pretrained('my_model')\n"
        "(or `hf download NAME --local-dir my_model`), copy the folder here and call "
        "interp.models.load('my_model')."
    )


def load_hub(name: str, device: str | torch.device | None = None, tokenizer: Any = None,
             dtype: torch.dtype = torch.float32, zoo: list[str] | None = None, hint: list[str] | None = None
             ) -> tuple[Any, Any]:
    """A Hugging Face hub / TransformerLens model name as ``(TransformerBridge, tokenizer)``.

    A copy in the local Hugging Face cache is used without the network. Otherwise, offline (the default
    here: ``HF_HUB_OFFLINE=1``) this raises :class:`~interp.errors.DataNotFoundError` with the commands
    that copy the model into a local directory for :func:`load_directory`; online, TransformerLens
    downloads it.

    Parameters
    ----------
    name : str
        The hub repository / TransformerLens name, e.g. ``"gpt2"``.
    device : str or torch.device, optional
        Where to load the model; None: TransformerLens' default.
    tokenizer : transformers.PreTrainedTokenizerBase, optional
        Overrides the repository's tokenizer.
    dtype : torch.dtype, optional
        Dtype of the weights (default ``torch.float32``).
    zoo : list of str, optional
        Zoo names, listed in the offline error message.
    hint : list of str, optional
        Close zoo names; the first is suggested in the offline error message.
    """
    snapshot = _cached_snapshot(name)
    if snapshot is not None and (snapshot / "config.json").is_file():
        return load_directory(snapshot, device=device, tokenizer=tokenizer, dtype=dtype)
    message = _offline_message(name, zoo or [], hint or [])
    if is_offline():
        raise DataNotFoundError(message)
    from transformer_lens.model_bridge import TransformerBridge

    try:
        if tokenizer is None:
            bridge = TransformerBridge.boot_transformers(name, device=device, dtype=dtype)
        else:
            with disk_tokenizer(tokenizer) as tok:
                bridge = TransformerBridge.boot_transformers(name, tokenizer=tok, device=device, dtype=dtype)
    except OSError as exc:  # no network, unknown repository, gated model without a token
        raise DataNotFoundError(f"{message}\n(the download failed: {exc})") from exc
    except ValueError as exc:  # TransformerLens has no adapter for the architecture
        raise ConfigError(f"TransformerLens cannot bridge {name!r}: {exc}") from exc
    bridge.eval()
    return bridge, bridge.tokenizer


def check_kwargs(kwargs: dict[str, Any], what: str) -> None:
    """Options for zoo loaders do not apply to other sources: say so instead of ignoring them.

    Parameters
    ----------
    kwargs : dict
        The keyword arguments left over; any raises :class:`ConfigError`.
    what : str
        The source they were given for, in the message.
    """
    if kwargs:
        raise ConfigError(f"unexpected options {sorted(kwargs)} for {what}; accepted: device, tokenizer, dtype")


def as_hf_or_module(obj: Any) -> str:
    """Kind of a model object: ``"bridge"``, ``"hf"`` or ``"module"`` (else InputTypeError).

    Parameters
    ----------
    obj : object
        The model object.
    """
    from ..engine import is_bridge

    if is_bridge(obj):
        return "bridge"
    if is_hf_model(obj):
        return "hf"
    if isinstance(obj, torch.nn.Module):
        return "module"
    raise InputTypeError(
        f"interp.models.load takes a zoo name, a local directory, a hub name or a model object "
        f"(TransformerBridge, transformers model, nn.Module); got {type(obj).__name__}"
    )
