"""Cross-validation splits shared by the probes (scikit-learn splitters underneath)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from interp._matrix import as_matrix
from interp.errors import ConfigError, DimensionError, InputTypeError, named_array_error
from interp.tensor import Activations

__all__ = ["make_splits", "as_array2d", "group_labels", "validate_X", "check_y_given"]



def group_labels(groups: Any, n_samples: int, *sources: Any) -> np.ndarray | None:
    """``groups=`` as integer labels: one label per sample, or a sample-coordinate name (e.g. ``"trial"``)
    of the first :class:`~interp.Activations` among ``sources`` (see :func:`interp.stats.resolve_groups`)."""
    from interp.stats import resolve_groups

    found = [s for s in sources if isinstance(s, Activations)]
    source = next(iter(found), None)
    if isinstance(groups, str) and found:
        have = [a for a in found if groups in a.coords.get(a.dims[0], {})]
        if not have:
            coords = sorted({c for a in found for c in a.coords.get(a.dims[0], {}).columns})
            raise ConfigError(f"groups={groups!r} names no sample coordinate of the inputs; their sample coordinates "
                              f"are {coords}")
        source = have[0]
    return resolve_groups(groups, n_samples, source)


def make_splits(n_samples: int, cv: Any = 5, groups: Any = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train, test)`` index pairs.

    ``cv``: an int (``KFold`` without shuffling, or ``GroupKFold`` when ``groups`` are given), a
    scikit-learn splitter, or an iterable of ``(train, test)`` pairs. Raises :class:`ConfigError` when
    there are fewer samples (or groups) than folds, and when ``groups`` are given with a splitter that would
    ignore them (``KFold``, explicit pairs): whole groups (subjects, sessions, runs, trials) must stay on one
    side of every split, or the held-out score leaks.
    """
    from sklearn.model_selection import GroupKFold, KFold
    from sklearn.model_selection._split import GroupsConsumerMixin

    if groups is not None and not isinstance(cv, (int, np.integer)) and not isinstance(cv, GroupsConsumerMixin):
        raise ConfigError(f"groups were given but the cross-validation {type(cv).__name__} ignores them; pass an int "
                          "(GroupKFold), a group splitter (GroupKFold, LeaveOneGroupOut, GroupShuffleSplit) or no groups")

    if isinstance(cv, (int, np.integer)):
        if cv < 2:
            raise ConfigError(f"cv must be >= 2 folds, got {cv}")
        if groups is not None:
            groups = np.asarray(groups)
            if len(groups) != n_samples:
                raise DimensionError(f"groups has {len(groups)} entries for {n_samples} samples")
            n_groups = len(np.unique(groups))
            if n_groups < cv:
                raise ConfigError(f"fewer groups ({n_groups}) than folds ({cv}); lower cv or add groups")
            splitter = GroupKFold(n_splits=int(cv))
            splits = list(splitter.split(np.zeros(n_samples), groups=groups))
        else:
            if n_samples < cv:
                raise ConfigError(f"fewer samples ({n_samples}) than folds ({cv}): n_samples={n_samples} < cv={cv}; "
                                  "lower cv or add samples")
            splits = list(KFold(n_splits=int(cv)).split(np.zeros(n_samples)))
    elif hasattr(cv, "split"):
        try:
            splits = list(cv.split(np.zeros(n_samples), groups=groups))
        except ValueError as exc:
            raise ConfigError(f"the cross-validation splitter failed on {n_samples} samples: {exc}") from exc
    elif isinstance(cv, Iterable):
        splits = [(np.asarray(tr), np.asarray(te)) for tr, te in cv]
    else:
        raise InputTypeError(f"cv must be an int, a scikit-learn splitter or (train, test) pairs, got {type(cv).__name__}")
    for tr, te in splits:
        if len(tr) == 0 or len(te) == 0:
            raise ConfigError("a cross-validation split has an empty train or test set")
    return splits


def as_array2d(x: Any, name: str, dtype: torch.dtype | None = None, device: Any = None,
               nan_policy: str = "raise") -> torch.Tensor:
    """A finite 2-D float tensor from Activations / tensor / array (1-D becomes one column); the library's one
    matrix boundary (:func:`interp._matrix.as_matrix`) with each stimulus a row (``features="rest"``).

    Parameters
    ----------
    x : Activations, torch.Tensor or array-like
        The input.
    name : str
        Its name in error messages.
    dtype : torch.dtype, optional
        The result's dtype; None keeps float32/float64, anything else becomes float64.
    device : str or torch.device, optional
        The result's device; None keeps a tensor's device.
    nan_policy : {"raise", "drop"}, optional
        NaN/inf raise :class:`~interp.errors.NaNError` (default) or drop the columns that hold them.
    """
    return as_matrix(x, what=name, features="rest", one_d="column", dtype=dtype, device=device,
                     nan_policy=check_nan_policy(nan_policy))


def validate_X(est: Any, X: Any, *, reset: bool, dtype: torch.dtype | None = None, device: Any = None) -> torch.Tensor:
    """``X`` of a probe's ``fit`` (``reset=True``: records ``n_features_in_``) or ``predict`` (checks it).

    A tensor or :class:`~interp.Activations` goes through :func:`as_array2d` (device kept); anything else
    through scikit-learn's ``validate_data`` (dense, numeric, finite, 2-D, at least one sample and feature),
    so the messages are scikit-learn's, raised as named errors: :class:`DimensionError` (shape),
    :class:`NaNError`, :class:`InputTypeError` (sparse, strings) or
    :class:`~interp.errors.UnsupportedInputError` (complex); see :func:`~interp.errors.named_array_error`.
    """
    if isinstance(X, (torch.Tensor, Activations)):
        # 1-D refused for tensors as scikit-learn refuses it for arrays: an estimator's X is 2-D
        t = as_matrix(X, what="X", features="rest", one_d="refuse", dtype=dtype, device=device)
        if reset:
            est.n_features_in_ = t.shape[1]
        elif t.shape[1] != est.n_features_in_:
            raise DimensionError(f"X has {t.shape[1]} features, but {type(est).__name__} is expecting "
                                 f"{est.n_features_in_} features as input")
        return t
    from sklearn.utils.validation import validate_data

    try:
        arr = validate_data(est, X, reset=reset, accept_sparse=False, dtype=[np.float64, np.float32])
    except (TypeError, ValueError) as exc:
        raise named_array_error(exc) from exc
    t = torch.from_numpy(np.ascontiguousarray(arr))
    if dtype is None:
        dtype = t.dtype
    return t.to(device=device, dtype=dtype)


NAN_POLICIES = ("raise", "drop")


def check_nan_policy(nan_policy: Any) -> str:
    """``nan_policy`` must be ``"raise"`` or ``"drop"``: a :class:`ConfigError` otherwise (a misspelt ``"omit"``
    would otherwise raise on NaN as if ``"raise"`` were meant, or drop where the user meant something else).

    Parameters
    ----------
    nan_policy : str
        The value given.
    """
    if nan_policy not in NAN_POLICIES:
        raise ConfigError(f"nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
    return nan_policy


def check_alphas(alphas: Any) -> np.ndarray:
    """Ridge penalties as a non-empty 1-D float array of positive finite values (:class:`ConfigError` otherwise).

    Parameters
    ----------
    alphas : sequence of float or float
        The candidate penalties.
    """
    try:
        a = np.asarray(alphas, dtype=float).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"alphas must be positive numbers, got {alphas!r}") from exc
    if a.size == 0 or not np.isfinite(a).all() or (a <= 0).any():
        raise ConfigError(f"alphas must be a non-empty list of positive finite numbers, got {a.tolist()[:8]}")
    return a


def check_y_given(est: Any, y: Any) -> None:
    """Raise :class:`ConfigError` (scikit-learn's wording) when a supervised probe's ``fit`` gets ``y=None``."""
    if y is None:
        raise ConfigError(f"{type(est).__name__} requires y to be passed, but the target y is None; pass one "
                          "target (label or value) per sample")
