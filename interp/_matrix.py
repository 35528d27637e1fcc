"""The one input boundary for matrices: anything a user hands an analysis -> a finite 2-D tensor.

Every analysis that reads a ``(sample, feature)`` matrix (similarity, decompositions, probes, concept tests)
converts its input here, so one input means one matrix everywhere. What differs between analyses is declared
by the caller, never guessed:

* ``features=``: what the columns of an :class:`~interp.Activations` are. ``"unit"`` (decompositions, concept
  tests): the ``unit`` dim, every other dim flattened into rows (each token or time point a sample);
  ``"rest"`` (similarity, probes): the ``sample`` dim as rows and every other dim flattened into columns
  (each stimulus one row, all its positions and units its features).
* ``one_d=``: a 1-D input is one feature (``"column"``: a scalar per sample, e.g. a model RDM of one
  variable) or refused (``"refuse"``: scikit-learn's convention for estimators, whose ``X`` must be 2-D).
* ``nan_policy=``: ``"raise"`` (:class:`~interp.errors.NaNError` naming the count), ``"drop"`` (drop the
  columns that hold one) or ``"allow"`` (the caller handles them).

Arrays other than tensors go through scikit-learn's ``check_array`` rules (sparse matrices and strings
refused with its message, as named errors): a NumPy array, a DataFrame, nested lists of numbers.

>>> import numpy as np
>>> as_matrix(np.arange(3.0)).shape
torch.Size([3, 1])
>>> as_matrix(np.arange(3.0), one_d="refuse")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
interp.errors.DimensionError: X must be 2-D (n_samples, n_features); got a 1-D array of 3 values. ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from .errors import ConfigError, DimensionError, InputTypeError, NaNError, named_array_error
from .tensor import Activations

__all__ = ["as_matrix", "activations_matrix"]

FEATURES = ("unit", "rest")
ONE_D = ("column", "refuse")
NAN_POLICIES = ("raise", "drop", "allow")


def activations_matrix(acts: Activations, features: str = "rest") -> torch.Tensor:
    """The 2-D data of ``acts`` with the columns ``features`` declares (see the module docstring).

    Parameters
    ----------
    acts : Activations
        The labeled tensor.
    features : {"rest", "unit"}, optional
        ``"rest"`` (default): rows are the ``sample`` dim (else the first dim), every other dim a column;
        ``"unit"``: columns are the ``unit`` dim, every other dim flattened into rows.
    """
    if features == "unit":
        if "unit" not in acts.dims:
            raise DimensionError(f"features are the 'unit' dim here, but the activations have dims {acts.dims}; "
                                 "rename or transpose so that units are a dim called 'unit'")
        if acts.data.ndim == 1:
            raise DimensionError(f"need at least one sample dim besides 'unit'; got dims {acts.dims}")
        return acts.data.movedim(acts.axis("unit"), -1).reshape(-1, acts.shape[acts.axis("unit")])
    if features != "rest":
        raise ConfigError(f"features must be one of {FEATURES}, got {features!r}")
    if "sample" in acts.dims:
        return acts.matrix("sample")
    return acts.data.reshape(acts.shape[0], -1) if acts.data.ndim else acts.data.reshape(1, 1)


def _from_array(x: Any, what: str, one_d: str) -> torch.Tensor:
    from sklearn.utils.validation import check_array

    if isinstance(x, Mapping):
        raise InputTypeError(f"{what} is a mapping of {len(x)} entries {list(x)[:4]} (what capture returns for "
                             f"several sites); pass one of them, e.g. X[{next(iter(x), 'site')!r}]")
    if isinstance(x, (str, bytes)):
        raise InputTypeError(f"{what} must be numeric, got a {type(x).__name__}")
    ndim = x.ndim if hasattr(x, "ndim") and not hasattr(x, "tocsr") else np.asarray(x, dtype=object).ndim
    if ndim == 1:
        values = np.asarray(x)
        if one_d == "refuse":
            raise DimensionError(f"{what} must be 2-D (n_samples, n_features); got a 1-D array of {len(values)} "
                                 "values. Reshape your data: x[:, None] for one feature, x[None, :] for one sample")
        x = values[:, None]
    try:
        arr = check_array(x, accept_sparse=False, dtype=[np.float64, np.float32], ensure_all_finite=False,
                          input_name=what)
    except (TypeError, ValueError) as exc:
        if "could not convert" in str(exc):
            raise InputTypeError(f"{what} must be numeric: {exc}") from exc
        raise named_array_error(exc) from exc
    arr = np.ascontiguousarray(arr)
    return torch.from_numpy(arr if arr.flags.writeable else arr.copy())


def as_matrix(x: Any, *, what: str = "X", features: str = "rest", one_d: str = "column",
              dtype: torch.dtype | None = None, device: str | torch.device | None = None,
              nan_policy: str = "raise") -> torch.Tensor:
    """``x`` as a 2-D ``(n_samples, n_features)`` float tensor (the one matrix boundary; module docstring).

    Parameters
    ----------
    x : Activations, torch.Tensor, numpy.ndarray, DataFrame or nested lists of numbers
        The input.
    what : str, optional
        Its name in error messages (default ``"X"``).
    features : {"rest", "unit"}, optional
        The columns of an :class:`~interp.Activations` (ignored for other inputs): ``"rest"`` (default) every
        dim but ``sample``; ``"unit"`` the ``unit`` dim, every other dim flattened into rows.
    one_d : {"column", "refuse"}, optional
        A 1-D input is one feature (default) or a :class:`~interp.errors.DimensionError`.
    dtype : torch.dtype, optional
        The result's dtype; None keeps float32/float64 and turns any other dtype into float64.
    device : str or torch.device, optional
        The result's device; None keeps a tensor's device (CPU for arrays).
    nan_policy : {"raise", "drop", "allow"}, optional
        NaN/inf values raise :class:`~interp.errors.NaNError` (default), drop the columns holding them, or
        pass through.
    """
    if one_d not in ONE_D:
        raise ConfigError(f"one_d must be one of {ONE_D}, got {one_d!r}")
    if nan_policy not in NAN_POLICIES:
        raise ConfigError(f"nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
    if isinstance(x, Activations):
        t = activations_matrix(x, features)
    elif isinstance(x, torch.Tensor):
        t = x.detach()
        if t.is_complex():
            raise InputTypeError(f"{what} is complex ({t.dtype}); pass its real part, magnitude or phase")
        if t.ndim == 1:
            if one_d == "refuse":
                raise DimensionError(f"{what} must be 2-D (n_samples, n_features); got a 1-D tensor of "
                                     f"{t.shape[0]} values. Reshape your data: x[:, None] for one feature, x[None, :] "
                                     "for one sample")
            t = t[:, None]
    else:
        t = _from_array(x, what, one_d)
    if t.ndim != 2:
        raise DimensionError(f"{what} must be 2-D (n_samples, n_features); got shape {tuple(t.shape)}")
    for axis, name in ((0, "sample"), (1, "feature")):
        if t.shape[axis] == 0:  # scikit-learn's wording (its estimator checks look for it)
            raise DimensionError(f"Found array with 0 {name}(s) (shape={tuple(t.shape)}) while a minimum of 1 is "
                                 f"required: {what} is empty")
    if dtype is None:
        dtype = t.dtype if t.dtype in (torch.float32, torch.float64) else torch.float64
    t = t.to(device=device if device is not None else t.device, dtype=dtype)
    if nan_policy == "allow" or bool(torch.isfinite(t.sum(0)).all()):  # one pass, no (n x p) mask: a NaN/inf makes
        return t  # its column's sum so (or finite values overflowed the sum: the mask below then finds nothing bad)
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        cols = bad.any(0)
        if nan_policy == "raise":
            raise NaNError(f"{what} has {int(bad.sum())} NaN/inf values in {int(cols.sum())} of {t.shape[1]} "
                           "features; drop or fill them, or pass nan_policy='drop' to drop those features")
        t = t[:, ~cols]
        if t.shape[1] == 0:
            raise NaNError(f"every feature of {what} holds a NaN/inf; nothing is left after nan_policy='drop'")
    return t
