"""Shared input handling for the similarity measures: everything becomes a 2-D torch tensor.

Every measure accepts an :class:`interp.Activations` (rows = ``sample``), a torch tensor or a NumPy
array. Computation happens in torch, in float64 by default (the reference libraries are float64 and
float32 changes CKA in the 4th decimal, see PAPERS.md 3.1); pass ``dtype=torch.float32`` for speed.
The device is the input tensor's device; NumPy inputs go to CUDA when it is available.
"""

from __future__ import annotations

from typing import Any

import torch

from .._matrix import as_matrix as _as_matrix
from ..errors import ConfigError, DimensionError, InputTypeError
from ..tensor import Activations

__all__ = ["as_matrix", "as_pair", "resolve_dtype", "default_device", "to_float"]


def default_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    """``None`` -> float64; strings such as ``"float32"`` are accepted."""
    if dtype is None:
        return torch.float64
    if isinstance(dtype, str):
        try:
            dtype = getattr(torch, dtype)
        except AttributeError as exc:
            raise InputTypeError(f"unknown dtype {dtype!r}; use 'float32' or 'float64'") from exc
    if dtype not in (torch.float32, torch.float64):
        raise InputTypeError(f"similarity measures need float32 or float64, got {dtype}")
    return dtype


def as_matrix(x: Any, *, name: str = "X", dtype: torch.dtype | str | None = None,
              device: str | torch.device | None = None, nan_policy: str = "raise") -> torch.Tensor:
    """Turn ``x`` into a finite 2-D ``(n_samples, n_features)`` tensor: the library's one matrix boundary
    (:func:`interp._matrix.as_matrix`) with each stimulus a row (``features="rest"``: an ``Activations`` has
    ``sample`` as rows and every other dim flattened into columns) and 1-D input as one feature.

    Parameters
    ----------
    x : Activations, torch.Tensor, numpy.ndarray or array-like
        The input.
    name : str, optional
        Its name in error messages.
    dtype : torch.dtype or str, optional
        float32 or float64 (default float64, :func:`resolve_dtype`).
    device : str or torch.device, optional
        None keeps a tensor's device and puts arrays on :func:`default_device`.
    nan_policy : {"raise", "drop"}, optional
        NaN/inf raise :class:`NaNError` (default) or drop the features holding them.
    """
    if nan_policy not in ("raise", "drop"):
        raise ConfigError(f"unknown nan_policy {nan_policy!r}; use 'raise' or 'drop'")
    if device is None and not isinstance(x, (torch.Tensor, Activations)):
        device = default_device()
    return _as_matrix(x, what=name, features="rest", one_d="column", dtype=resolve_dtype(dtype), device=device,
                      nan_policy=nan_policy)


def as_pair(x: Any, y: Any, *, dtype: torch.dtype | str | None = None, device: str | torch.device | None = None,
            nan_policy: str = "raise") -> tuple[torch.Tensor, torch.Tensor]:
    """Two matrices with the same number of rows on the same device (``Activations`` aligned by stimulus)."""
    if isinstance(x, Activations) and isinstance(y, Activations):
        x, y = align_stimuli(x, y)
    tx = as_matrix(x, name="X", dtype=dtype, device=device, nan_policy=nan_policy)
    ty = as_matrix(y, name="Y", dtype=dtype, device=tx.device, nan_policy=nan_policy)
    if tx.shape[0] != ty.shape[0]:
        raise DimensionError(f"X and Y must have the same number of samples (rows), got {tx.shape[0]} and {ty.shape[0]}")
    if tx.shape[0] < 2:
        raise DimensionError(f"need at least 2 samples, got {tx.shape[0]}")
    return tx, ty


def align_stimuli(x: Activations, y: Activations) -> tuple[Activations, Activations]:
    """Align two ``Activations`` on their ``stimulus`` (or ``id``) sample coordinate when both have one."""
    for key in ("stimulus", "id"):
        if key in x.coords.get("sample", {}) and key in y.coords.get("sample", {}):
            return x.align(y, on=key)
    return x, y


def to_float(t: torch.Tensor | float) -> float:
    """A Python float from a 0-d tensor."""
    return float(t.item()) if isinstance(t, torch.Tensor) else float(t)
