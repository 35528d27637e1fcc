"""SAEs in the formats researchers share: SAELens and sparsify folders.

* **SAELens** (``sae_lens`` 6.x, ``SAE.save_model`` / ``SAE.load_from_disk``): a folder with ``cfg.json``
  (``architecture`` ``"standard" | "topk" | "jumprelu"``, ``d_in``, ``d_sae``, ``dtype``,
  ``apply_b_dec_to_input``, ``normalize_activations``, ``metadata.hook_name`` ...) and
  ``sae_weights.safetensors`` holding ``W_enc`` ``(d_in, d_sae)``, ``b_enc`` ``(d_sae,)``, ``W_dec``
  ``(d_sae, d_in)``, ``b_dec`` ``(d_in,)`` and, for JumpReLU, ``threshold`` ``(d_sae,)``. Encoding is
  ``act((x - b_dec) @ W_enc + b_enc)`` (``b_dec`` subtracted when ``apply_b_dec_to_input``), decoding
  ``codes @ W_dec + b_dec``; TopK keeps the ``k`` largest pre-activations and applies ReLU to them.
* **sparsify** (EleutherAI): a folder with ``cfg.json`` (``num_latents``, ``k``, ``d_in`` ...) and
  ``sae.safetensors`` holding ``encoder.weight`` ``(num_latents, d_in)``, ``encoder.bias``, ``W_dec``
  ``(num_latents, d_in)`` and ``b_dec``; encoding is TopK of ``relu((x - b_dec) @ encoder.weight.T +
  encoder.bias)``.

Our SAEs scale their input by ``input_scale_`` before encoding; the scale is folded into the weights on
export (``W_enc * s``, ``W_dec / s``, ``b_dec / s``), so the exported SAE computes the same codes and
reconstructions on unscaled activations. Settings these formats can express but our SAEs cannot
(``normalize_activations`` other than ``"none"``, ``rescale_acts_by_decoder_norm``, ``hook_z`` reshaping,
sparsify's skip connection or multi-TopK) are refused by name rather than read approximately.

>>> from interp.decompose.formats import save_saelens, load_saelens
>>> save_saelens(sae, "my_sae", hook_name="blocks.6.hook_resid_post")   # doctest: +SKIP
>>> same = load_saelens("my_sae")                                        # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, DataNotFoundError, SchemaError
from .sae import BatchTopKSAE, JumpReLUSAE, ReLUSAE, SparseAutoencoder, TopKSAE

__all__ = ["save_saelens", "load_saelens", "save_sparsify", "load_sparsify"]

SAELENS_WEIGHTS = "sae_weights.safetensors"
SPARSIFY_WEIGHTS = "sae.safetensors"
CFG = "cfg.json"


def _folded(sae: SparseAutoencoder) -> dict[str, torch.Tensor]:
    """The SAE's weights with ``input_scale_`` folded in (float32 CPU copies)."""
    sae._check_fitted()
    s = float(sae.input_scale_)
    return {"W_enc": (sae.W_enc_.detach() * s).cpu().contiguous(),
            "b_enc": sae.b_enc_.detach().cpu().contiguous(),
            "W_dec": (sae.components_.detach() / s).cpu().contiguous(),
            "b_dec": (sae.b_dec_.detach() / s).cpu().contiguous()}


def _write_folder(path: str | os.PathLike, files: dict[str, Any], overwrite: bool) -> Path:
    """Write ``{name: bytes-writer}`` into a new folder at ``path`` atomically (temp folder + rename)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} exists; pass overwrite=True to replace it")
    if path.exists() and not (path / CFG).exists():
        raise ConfigError(f"{path} exists and holds no {CFG}: it is not an SAE folder, so it is not replaced")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        for name, write in files.items():
            write(tmp / name)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def _architecture(sae: SparseAutoencoder) -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
    """SAELens architecture name, extra config and extra tensors for ``sae``."""
    n = sae.components_.shape[0]
    if isinstance(sae, BatchTopKSAE):  # SAELens saves BatchTopK for inference as JumpReLU with one threshold
        return "jumprelu", {}, {"threshold": sae.threshold_.detach().cpu().float().expand(n).contiguous()}
    if isinstance(sae, TopKSAE):
        return "topk", {"k": int(sae.k), "rescale_acts_by_decoder_norm": False}, {}
    if isinstance(sae, JumpReLUSAE):
        return "jumprelu", {}, {"threshold": sae.threshold_.detach().cpu().contiguous()}
    if isinstance(sae, ReLUSAE):
        return "standard", {}, {}
    raise ConfigError(f"no SAELens architecture for a {type(sae).__name__}; ReLUSAE, TopKSAE, BatchTopKSAE and "
                      "JumpReLUSAE are exported")


def save_saelens(sae: SparseAutoencoder, path: str | os.PathLike, *, hook_name: str | None = None,
                 model_name: str | None = None, overwrite: bool = False) -> Path:
    """Write ``sae`` as a SAELens folder (``cfg.json`` + ``sae_weights.safetensors``) that ``SAE.load_from_disk`` reads.

    Parameters
    ----------
    sae
        A fitted :class:`ReLUSAE`, :class:`TopKSAE`, :class:`BatchTopKSAE` (saved as JumpReLU with its
        inference threshold, as SAELens does) or :class:`JumpReLUSAE`.
    path
        The folder to write; written atomically (a temporary folder renamed into place).
    hook_name, model_name
        Where the SAE reads (a hook name such as ``"blocks.6.hook_resid_post"``) and of which model,
        stored in ``metadata``; ``hook_name`` defaults to the site the SAE was fitted on, when known.
    overwrite
        Replace an existing SAE folder (a folder without ``cfg.json`` is never replaced).

    Returns
    -------
    pathlib.Path
        The folder.
    """
    from safetensors.torch import save_file

    arch, extra_cfg, extra = _architecture(sae)
    tensors = {**_folded(sae), **extra}
    d_sae, d_in = tensors["W_dec"].shape
    site = hook_name or getattr(sae, "site_", None)
    cfg = {"architecture": arch, "d_in": int(d_in), "d_sae": int(d_sae), "dtype": "float32", "device": "cpu",
           "apply_b_dec_to_input": True, "normalize_activations": "none", "reshape_activations": "none",
           **extra_cfg, "metadata": {"hook_name": site, "model_name": model_name, "exported_by": "interp"}}
    tensors = {k: v.float() for k, v in tensors.items()}
    return _write_folder(path, {SAELENS_WEIGHTS: lambda p: save_file(tensors, str(p)),
                                CFG: lambda p: p.write_text(json.dumps(cfg, indent=2))}, overwrite)


def _read(path: str | os.PathLike, weights: str, what: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / CFG).is_file() or not (path / weights).is_file():
        raise DataNotFoundError(f"{path} is not a {what} folder: it needs {CFG} and {weights}")
    try:
        cfg = json.loads((path / CFG).read_text())
        tensors = load_file(str(path / weights))
    except Exception as exc:  # noqa: BLE001 - any parse failure is a damaged file
        raise SchemaError(f"{path}: cannot read the {what} files ({exc}); export the SAE again") from exc
    if not isinstance(cfg, dict):
        raise SchemaError(f"{path / CFG} is not a JSON object")
    return cfg, {k: v.to(torch.float32) for k, v in tensors.items()}


def _need(tensors: dict[str, torch.Tensor], names: tuple[str, ...], path: Any) -> None:
    missing = [n for n in names if n not in tensors]
    if missing:
        raise SchemaError(f"{path}: the weights file lacks {missing} (has {sorted(tensors)})")


def _fitted(sae: SparseAutoencoder, W_enc: torch.Tensor, b_enc: torch.Tensor, W_dec: torch.Tensor,
            b_dec: torch.Tensor, site: str | None, path: Any) -> SparseAutoencoder:
    """Give ``sae`` the learned state of an SAE with these weights (input scale 1)."""
    d_in, d_sae = W_enc.shape
    if W_dec.shape != (d_sae, d_in) or b_enc.shape != (d_sae,) or b_dec.shape != (d_in,):
        raise SchemaError(f"{path}: inconsistent shapes W_enc {tuple(W_enc.shape)}, W_dec {tuple(W_dec.shape)}, "
                          f"b_enc {tuple(b_enc.shape)}, b_dec {tuple(b_dec.shape)}")
    for name, t in (("W_enc", W_enc), ("b_enc", b_enc), ("W_dec", W_dec), ("b_dec", b_dec)):
        if not torch.isfinite(t).all():
            raise SchemaError(f"{path}: {name} holds NaN or infinite values")
    sae.W_enc_, sae.b_enc_ = W_enc.contiguous(), b_enc.contiguous()
    sae.components_, sae.b_dec_ = W_dec.contiguous(), b_dec.contiguous()
    sae.input_scale_ = torch.tensor(1.0)
    sae.n_features_in_, sae.n_steps_, sae.n_samples_seen_, sae.history_ = int(d_in), 0, 0, []
    if site:
        sae.site_ = site
    sae._after_load()
    return sae


def load_saelens(path: str | os.PathLike) -> SparseAutoencoder:
    """Read a SAELens SAE folder (``cfg.json`` + ``sae_weights.safetensors``) as one of our SAEs.

    Parameters
    ----------
    path
        A folder written by SAELens's ``SAE.save_model`` (or :func:`save_saelens`).

    Returns
    -------
    SparseAutoencoder
        :class:`ReLUSAE` (``"standard"``), :class:`TopKSAE` (``"topk"``) or :class:`JumpReLUSAE`
        (``"jumprelu"``), whose ``transform``/``reconstruct`` equal SAELens's ``encode``/``forward``. The
        hook it reads is in ``site_`` when the folder names one.

    Raises
    ------
    SchemaError
        A damaged folder, or a setting our SAEs cannot reproduce exactly (``normalize_activations`` other
        than ``"none"``, ``rescale_acts_by_decoder_norm``, ``reshape_activations="hook_z"``, another
        architecture), named with what to do.
    """
    cfg, t = _read(path, SAELENS_WEIGHTS, "SAELens")
    _need(t, ("W_enc", "b_enc", "W_dec", "b_dec"), path)
    arch = cfg.get("architecture", "standard")
    if cfg.get("normalize_activations", "none") not in ("none", None):
        raise SchemaError(f"{path}: normalize_activations={cfg['normalize_activations']!r} rescales inputs at run "
                          "time; fold the scaling into the weights in SAELens (e.g. fold_activation_norm_scaling_"
                          "factor) and save again")
    if cfg.get("rescale_acts_by_decoder_norm"):
        raise SchemaError(f"{path}: rescale_acts_by_decoder_norm=True is not supported; fold the decoder norms "
                          "in SAELens first")
    if cfg.get("reshape_activations", "none") not in ("none", None):
        raise SchemaError(f"{path}: reshape_activations={cfg['reshape_activations']!r} (per-head hook_z SAEs) is "
                          "not supported; flatten the heads into one feature axis first")
    W_enc, b_enc, W_dec, b_dec = t["W_enc"], t["b_enc"], t["W_dec"], t["b_dec"]
    if not cfg.get("apply_b_dec_to_input", True):  # x @ W + b == (x - b_dec) @ W + (b + b_dec @ W)
        b_enc = b_enc + b_dec @ W_enc
    d_sae = W_enc.shape[1]
    if arch == "topk":
        sae: SparseAutoencoder = TopKSAE(n_components=d_sae, k=int(cfg.get("k", 100)), progress=False)
    elif arch == "jumprelu":
        _need(t, ("threshold",), path)
        sae = JumpReLUSAE(n_components=d_sae, progress=False)
        # relu(z) * (z > theta) is relu(z) for any theta <= 0: the smallest positive float stands in for those
        theta = t["threshold"].clamp_min(torch.finfo(torch.float32).tiny)
        sae.log_threshold_ = theta.log()
    elif arch == "standard":
        sae = ReLUSAE(n_components=d_sae, progress=False)
    else:
        raise SchemaError(f"{path}: SAELens architecture {arch!r} is not supported (standard, topk, jumprelu)")
    meta = cfg.get("metadata") if isinstance(cfg.get("metadata"), dict) else {}
    return _fitted(sae, W_enc, b_enc, W_dec, b_dec, meta.get("hook_name") or cfg.get("hook_name"), path)


def save_sparsify(sae: TopKSAE, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a :class:`TopKSAE` as a sparsify folder (``cfg.json`` + ``sae.safetensors``).

    Parameters
    ----------
    sae
        A fitted :class:`TopKSAE` (sparsify's SAEs are TopK).
    path
        The folder to write, atomically.
    overwrite
        Replace an existing SAE folder.

    Returns
    -------
    pathlib.Path
        The folder.
    """
    from safetensors.torch import save_file

    if not isinstance(sae, TopKSAE) or isinstance(sae, BatchTopKSAE):
        raise ConfigError(f"sparsify stores TopK SAEs; got a {type(sae).__name__} (use save_saelens)")
    w = _folded(sae)
    d_sae, d_in = w["W_dec"].shape
    tensors = {"encoder.weight": w["W_enc"].T.contiguous().float(), "encoder.bias": w["b_enc"].float(),
               "W_dec": w["W_dec"].float(), "b_dec": w["b_dec"].float()}
    cfg = {"expansion_factor": max(1, round(d_sae / d_in)), "normalize_decoder": False, "num_latents": int(d_sae),
           "k": int(sae.k), "multi_topk": False, "skip_connection": False, "d_in": int(d_in)}
    return _write_folder(path, {SPARSIFY_WEIGHTS: lambda p: save_file(tensors, str(p)),
                                CFG: lambda p: p.write_text(json.dumps(cfg, indent=2))}, overwrite)


def load_sparsify(path: str | os.PathLike) -> TopKSAE:
    """Read a sparsify SAE folder (``cfg.json`` + ``sae.safetensors``, one hookpoint) as a :class:`TopKSAE`.

    Parameters
    ----------
    path
        The folder of one hookpoint (sparsify writes one per hookpoint, named after it).

    Returns
    -------
    TopKSAE
        Codes and reconstructions equal sparsify's ``encode``/``decode``; ``site_`` is the folder's name.

    Raises
    ------
    SchemaError
        A damaged folder, or a skip connection / multi-TopK / transcoder, which our SAEs do not have.
    """
    cfg, t = _read(path, SPARSIFY_WEIGHTS, "sparsify")
    _need(t, ("encoder.weight", "encoder.bias", "W_dec", "b_dec"), path)
    if "W_skip" in t or cfg.get("skip_connection") or cfg.get("transcode"):
        raise SchemaError(f"{path}: a skip connection or transcoder is not an autoencoder our SAEs can express")
    if cfg.get("multi_topk"):
        raise SchemaError(f"{path}: multi_topk=True is not supported (its decode mixes several k)")
    k = cfg.get("k")
    if not isinstance(k, int) or k < 1 or not math.isfinite(k):
        raise SchemaError(f"{path}: cfg.json's k is {k!r}; an integer >= 1 is needed")
    W_enc = t["encoder.weight"].T.contiguous()
    sae = TopKSAE(n_components=W_enc.shape[1], k=k, progress=False)
    return _fitted(sae, W_enc, t["encoder.bias"], t["W_dec"], t["b_dec"], Path(path).name, path)
