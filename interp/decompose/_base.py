"""Shared machinery of the decomposition estimators: parameters, save/load, errors."""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import Any

import torch
from sklearn.base import BaseEstimator, TransformerMixin

from .._integrity import read_safetensors, tensor_checksum
from ..checks import reading
from ..errors import ConfigError, InputTypeError, SchemaError
from ..tensor import atomic_write

_FORMAT = "interp.decompose/1"

#: Parameter names of files saved before the vocabulary of CONTRIBUTING.md (``random_state`` -> ``seed``,
#: ``verbose`` -> ``progress``); :meth:`Decomposition.load` reads them under the current names.
_RENAMED_PARAMS = {"random_state": "seed", "verbose": "progress"}


class NegativeValueError(InputTypeError, ValueError):
    """Negative values given to an estimator that needs non-negative data (e.g. :class:`NMF`)."""


class NotFittedError(ConfigError):
    """An estimator used before ``fit``."""


_REGISTRY: dict[str, type] = {}


def registry() -> dict[str, type]:
    """Every estimator class by name (classes register themselves when defined; see ``__init_subclass__``)."""
    return dict(_REGISTRY)


class Decomposition(TransformerMixin, BaseEstimator):
    """Base class: a scikit-learn transformer (``get_params``/``set_params``, ``clone``, tags) plus safetensors +
    JSON persistence. Outputs keep the library's types (tensors, :class:`~interp.Activations`), so scikit-learn's
    ``set_output`` wrapping is off.

    Subclasses list their learned tensors in ``_tensor_attrs`` and their learned scalars/lists in
    ``_meta_attrs``; parameters are the ``__init__`` arguments, stored under the same names. Every subclass
    registers itself by name (for :meth:`load`), so this module imports none of them.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        kwargs.setdefault("auto_wrap_output_keys", None)  # no set_output wrapping of transform/fit_transform
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            _REGISTRY[cls.__name__] = cls

    def __sklearn_tags__(self) -> Any:
        """scikit-learn tags: outputs have the estimator's ``dtype`` parameter, not the input's (no dtype kept)."""
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []
        return tags

    _tensor_attrs: tuple[str, ...] = ()
    _per_sample_attrs: tuple[str, ...] = ()  # learned tensors whose first axis is the fitted samples
    _meta_attrs: tuple[str, ...] = ()

    # ------------------------------------------------------------ parameters
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def set_params(self, **params: Any) -> Decomposition:
        """Set constructor arguments (scikit-learn's ``set_params``); unknown names raise :class:`ConfigError`."""
        valid = self._param_names()
        for key in params:
            if key not in valid:
                raise ConfigError(f"{type(self).__name__} has no parameter {key!r}; parameters are {valid}")
        return super().set_params(**params)

    def __repr__(self) -> str:
        defaults = {k: p.default for k, p in inspect.signature(type(self).__init__).parameters.items()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if defaults.get(k) is not v and defaults.get(k) != v]
        return f"{type(self).__name__}({', '.join(changed)})"

    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X) first")

    # -------------------------------------------------------------- persistence
    def _state_tensors(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name).detach().cpu().contiguous() for name in self._tensor_attrs
                if getattr(self, name, None) is not None}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted estimator to ``path`` (safetensors; parameters and scalars as JSON metadata), atomically.

        >>> sae.save("sae.safetensors"); sae2 = TopKSAE.load("sae.safetensors")  # doctest: +SKIP
        """
        from safetensors.torch import save_file

        self._check_fitted()
        params = {k: (str(v) if isinstance(v, torch.dtype) else v) for k, v in self.get_params().items()}
        meta = {
            "format": _FORMAT,
            "class": type(self).__name__,
            "params": params,
            "learned": {name: getattr(self, name) for name in self._meta_attrs if hasattr(self, name)},
        }
        try:
            text = json.dumps(meta)
        except TypeError as exc:
            raise ConfigError(f"cannot save {type(self).__name__}: a parameter is not JSON-serialisable ({exc})") from exc
        tensors = self._state_tensors()
        path = Path(path)
        metadata = {"interp.decompose": text, "interp.checksum": tensor_checksum(tensors, text)}
        atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> Decomposition:
        """Read an estimator written by :meth:`save` (``Decomposition.load`` picks the right class).

        A corrupt or truncated file, or one whose metadata disagrees with its tensors (say
        ``n_components = 99`` over 8 latents), raises :class:`~interp.errors.SchemaError`.
        """
        with reading(path, "saved estimator file", "fit and save the estimator again (an edited or cut-short file "
                     "cannot be repaired)"):
            return cls._load(path, device)

    @classmethod
    def _load(cls, path: str | os.PathLike, device: str | torch.device) -> Decomposition:
        if not Path(path).exists():
            from ..errors import DataNotFoundError

            raise DataNotFoundError(f"no such file: {path}")
        text, tensors = read_safetensors(path, "interp.decompose", "an interp.decompose estimator",
                                         "fit and save the estimator again")
        tensors = {k: v.to(device) for k, v in tensors.items()}
        meta = json.loads(text)
        classes = registry()
        if meta.get("class") not in classes:
            raise SchemaError(f"{path} holds an unknown estimator class {meta.get('class')!r}")
        target = classes[meta["class"]]
        if cls is not Decomposition and not issubclass(target, cls):
            raise SchemaError(f"{path} holds a {meta['class']}, not a {cls.__name__}")
        params = {_RENAMED_PARAMS.get(k, k): v for k, v in meta["params"].items()}
        if isinstance(params.get("dtype"), str):
            params["dtype"] = getattr(torch, params["dtype"].replace("torch.", ""))
        est = target(**params)
        for name, value in meta.get("learned", {}).items():
            setattr(est, name, value)
        for name, value in tensors.items():
            setattr(est, name, value)
        est._check_loaded(path)
        est._after_load()
        return est

    def _check_loaded(self, path: str | os.PathLike) -> None:
        """Parameters and learned tensors of a loaded estimator must agree (else :class:`SchemaError`)."""
        comps = getattr(self, "components_", None)
        if not isinstance(comps, torch.Tensor):
            return
        m, f = getattr(self, "n_components", None), getattr(self, "n_features_in_", None)
        if comps.ndim != 2 or comps.shape[0] != (m if m is not None else comps.shape[0]) or \
                comps.shape[1] != (f if f is not None else comps.shape[1]):
            raise SchemaError(f"{path}: its metadata says n_components={m}, n_features_in_={f}, but components_ has "
                              f"shape {tuple(comps.shape)}; the file was edited or damaged: fit and save it again")
        m, f = comps.shape
        for name in self._tensor_attrs:
            t = getattr(self, name, None)
            shape = t.shape[1:] if name in self._per_sample_attrs and isinstance(t, torch.Tensor) else \
                getattr(t, "shape", ())
            if isinstance(t, torch.Tensor) and t.numel() > 1 and any(d not in (m, f) for d in shape):
                raise SchemaError(f"{path}: {name} has shape {tuple(t.shape)}, which does not fit {m} components "
                                  f"of {f} features; the file was edited or damaged: fit and save it again")
        if hasattr(self, "_check_params"):
            try:
                self._check_params(f)
            except ConfigError as exc:
                raise SchemaError(f"{path}: its parameters are invalid ({exc}); fit and save it again") from exc

    def _after_load(self) -> None:
        """Hook for subclasses to rebuild derived state after :meth:`load`."""


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> Decomposition:
    """Load any estimator saved with ``.save(path)``."""
    return Decomposition.load(path, device=device)


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def rng(seed: int | None) -> torch.Generator:
    return torch.Generator().manual_seed(0 if seed is None else int(seed))


def check_int(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return value
