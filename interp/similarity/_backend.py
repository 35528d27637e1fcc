"""Shared input handling for the similarity measures: everything becomes a 2-D torch tensor.

Every measure accepts an :class:`interp.Activations` (rows = ``sample``), a torch tensor or a NumPy
array. Computation happens in torch, in float64 by default (the reference libraries are float64 and
float32 changes CKA in the 4th decimal, see PAPERS.md 3.1); pass ``dtype=torch.float32`` for speed.
The device is the input tensor's device; NumPy inputs go to CUDA when it is available.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import DimensionError, InputTypeError, NaNError
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
    """Turn ``x`` into a finite 2-D ``(n_samples, n_features)`` tensor.

    ``Activations`` are flattened with ``sample`` as rows. 1-D input becomes one feature.
    ``nan_policy``: ``"raise"`` (:class:`NaNError`) or ``"drop"`` (drop features holding a NaN).
    """
    if isinstance(x, Activations):
        t = x.matrix("sample") if "sample" in x.dims else x.data.reshape(x.shape[0], -1)
    elif isinstance(x, torch.Tensor):
        t = x.detach()
    elif isinstance(x, (np.ndarray, list, tuple)):
        arr = np.asarray(x)
        if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
            raise InputTypeError(f"{name} must be numeric, got an array of dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
        if device is None:
            device = default_device()
    else:
        raise InputTypeError(f"{name} must be an Activations, a torch.Tensor or a NumPy array, got {type(x).__name__}")
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2:
        raise DimensionError(f"{name} must be 2-D (samples x features), got shape {tuple(t.shape)}")
    t = t.to(device=device if device is not None else t.device, dtype=resolve_dtype(dtype))
    if bool(torch.isfinite(t.sum(0)).all()):  # one pass, no (n x p) mask: a NaN/inf makes its column's sum so
        return t
    bad = ~torch.isfinite(t)  # (or finite values overflowed the sum: then nothing is bad below)
    if bad.any():
        cols = bad.any(0)
        if nan_policy == "drop":
            t = t[:, ~cols]
            if t.shape[1] == 0:
                raise NaNError(f"every feature of {name} holds a NaN/inf; nothing left after nan_policy='drop'")
        elif nan_policy == "raise":
            raise NaNError(f"{name} has {int(bad.sum())} NaN/inf values in {int(cols.sum())} of {t.shape[1]} "
                           "features; pass nan_policy='drop' to drop those features")
        else:
            raise NaNError(f"unknown nan_policy {nan_policy!r}; use 'raise' or 'drop'")
    return t


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
