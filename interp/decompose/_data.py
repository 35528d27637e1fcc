"""Turning what users pass to ``fit``/``transform`` into 2-D float tensors and minibatches.

Accepted inputs: :class:`interp.Activations` (``("sample", "unit")``, or any dims ending in ``unit``
whose other dims are flattened into samples, e.g. ``("sample", "pos", "unit")``), a 2-D
:class:`torch.Tensor` or :class:`numpy.ndarray` (rows are samples), an :class:`interp.store.ActivationStore`
(streamed in random-access minibatches), or any iterable of 2-D minibatches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DimensionError, InputTypeError, NaNError
from ..tensor import Activations


def _unit_last(acts: Activations) -> Activations:
    if "unit" not in acts.dims:
        raise DimensionError(
            f"decomposition needs a 'unit' dim (features) and sample dims; got dims {acts.dims}. "
            "Rename or transpose so that units are a dim called 'unit'."
        )
    if acts.dims[-1] != "unit":
        acts = acts.transpose(*[d for d in acts.dims if d != "unit"], "unit")
    if acts.data.ndim == 1:
        raise DimensionError(f"need at least one sample dim besides 'unit'; got dims {acts.dims}")
    if acts.data.ndim > 2:
        acts = acts.flatten(acts.dims[:-1], into="sample")
    return acts


def as_activations(X: Activations) -> Activations:
    """``X`` as a ``("sample", "unit")`` object (other leading dims flattened into ``sample``)."""
    return _unit_last(X)


def check_finite(x: torch.Tensor, what: str = "the data") -> torch.Tensor:
    """Raise :class:`NaNError` when ``x`` holds NaN or inf."""
    if x.is_floating_point():
        bad = ~torch.isfinite(x)
        if bool(bad.any()):
            rows = int(bad.reshape(x.shape[0], -1).any(1).sum()) if x.ndim else 1
            raise NaNError(
                f"{int(bad.sum())} NaN/inf values in {rows} rows of {what}; decompositions need finite data "
                "(clean it first, e.g. Activations.check_finite(nan_policy='drop'))"
            )
    return x


def as_matrix(X: Any, dtype: torch.dtype = torch.float32, device: str | torch.device | None = None,
              what: str = "X") -> torch.Tensor:
    """A finite 2-D ``(n_samples, n_features)`` tensor from an Activations, tensor or array."""
    if isinstance(X, Activations):
        data = _unit_last(X).data
    elif isinstance(X, torch.Tensor):
        data = X
    elif isinstance(X, np.ndarray):
        if X.dtype == object:
            raise InputTypeError(f"{what} must be numeric, got a NumPy array of dtype object")
        data = torch.from_numpy(np.ascontiguousarray(X))
    else:
        raise InputTypeError(
            f"{what} must be an interp.Activations, a torch.Tensor or a numpy.ndarray; got {type(X).__name__}"
        )
    if data.ndim != 2:
        raise DimensionError(f"{what} must be 2-D (n_samples, n_features); got shape {tuple(data.shape)}")
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise DimensionError(f"{what} is empty: shape {tuple(data.shape)}")
    data = data.detach().to(device=device if device is not None else data.device, dtype=dtype)
    return check_finite(data, what)


def is_store(X: Any) -> bool:
    """True for an :class:`interp.store.ActivationStore` or a ``(store, array_name)`` pair."""
    if isinstance(X, tuple) and len(X) == 2 and isinstance(X[1], str):
        X = X[0]
    return hasattr(X, "manifest") and hasattr(X, "minibatches")


def store_array(X: Any, site: str | None = None) -> tuple[Any, str]:
    """``(store, array name)`` from a store (with one array, or ``site`` naming one) or a pair."""
    if isinstance(X, tuple):
        X, site = X
    arrays = list(X.arrays)
    if site is None:
        if len(arrays) != 1:
            raise ConfigError(f"this store holds several arrays {arrays}; pass (store, name) or site=name to choose")
        site = arrays[0]
    if site not in arrays:
        from ..errors import closest

        hint = closest(site, arrays)
        raise DimensionError(f"the store has no array {site!r}; it has {arrays}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    return X, site


def check_store(X: Any, site: str | None = None) -> tuple[Any, str, int, int]:
    """Validate a store array for decomposition; returns (store, name, rows per stored row, n_features)."""
    store, name = store_array(X, site)
    spec = store.manifest["arrays"][name]
    dims, shape = tuple(spec["dims"]), tuple(spec["shape"])
    if dims[-1] != "unit" or len(dims) < 2:
        raise DimensionError(
            f"store array {name!r} has dims {dims}; a decomposition needs rows of units, i.e. dims ending in 'unit' "
            "such as ('sample', 'unit') or ('sample', 'pos', 'unit')"
        )
    per_row = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    return store, name, per_row, int(shape[-1])


def store_rows(X: Any) -> int:
    store, name, per_row, _ = check_store(X)
    return store.n_rows * per_row


def _as_batch(batch: Any, n_features: int | None, what: str) -> torch.Tensor:
    if isinstance(batch, dict):  # a store may yield {site: tensor}; take the only one
        if len(batch) != 1:
            raise InputTypeError(f"minibatches with several sites {sorted(batch)}: pass one site's store")
        batch = next(iter(batch.values()))
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], (torch.Tensor, np.ndarray, Activations)):
        batch = batch[0]  # (x, meta) pairs
    x = as_matrix(batch if not isinstance(batch, torch.Tensor) or batch.ndim == 2 else batch.reshape(-1, batch.shape[-1]),
                  what=what)
    if n_features is not None and x.shape[1] != n_features:
        raise DimensionError(f"{what} has {x.shape[1]} features but the first minibatch had {n_features}")
    return x


def minibatches(X: Any, batch_size: int, n_epochs: int = 1, seed: int = 0,
                device: str | torch.device | None = None) -> Iterator[torch.Tensor]:
    """Yield shuffled ``(batch, n_features)`` float32 minibatches from any accepted input.

    In-memory inputs are reshuffled each epoch; a store is asked for ``n_epochs`` passes of random
    minibatches; another iterable is consumed once per epoch (an iterator only once).
    """
    if isinstance(X, (Activations, torch.Tensor, np.ndarray)):
        data = as_matrix(X)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(n_epochs):
            order = torch.randperm(data.shape[0], generator=gen)
            for start in range(0, data.shape[0], batch_size):
                yield data[order[start:start + batch_size].to(data.device)].to(device=device)
        return
    if is_store(X):
        store, name, _, n_features = check_store(X)
        for epoch in range(n_epochs):
            for batch in store.minibatches(name, batch_size=batch_size, shuffle=True, seed=seed + epoch):
                x = check_finite(batch.reshape(-1, n_features).float(), f"store array {name!r}")
                yield x.to(device=device)
        return
    if isinstance(X, Iterable) and not isinstance(X, (str, bytes)):
        n_features = None
        reusable = not isinstance(X, Iterator)
        for _ in range(n_epochs if reusable else 1):
            for i, batch in enumerate(X):
                x = _as_batch(batch, n_features, f"minibatch {i}")
                n_features = x.shape[1]
                yield x.to(device=device)
        return
    raise InputTypeError(
        f"cannot fit on {type(X).__name__}: pass an interp.Activations, a 2-D tensor/array, an ActivationStore "
        "or an iterable of 2-D minibatches"
    )


def wrap_like(X: Any, out: torch.Tensor, unit_prefix: str, unit_coords: dict | None = None) -> Any:
    """Return ``out`` (rows = samples of ``X``) in the type of ``X``: Activations keep the sample coords."""
    if isinstance(X, Activations):
        acts = _unit_last(X)
        n = out.shape[1]
        coords = {"sample": acts.coords["sample"],
                  "unit": unit_coords or {"index": list(range(n)), "name": [f"{unit_prefix}{i}" for i in range(n)]}}
        return Activations(out, ("sample", "unit"), coords, {**acts.attrs, "decomposition": unit_prefix.rstrip("_")})
    if isinstance(X, np.ndarray):
        return out.detach().cpu().numpy()
    return out


def feature_names(X: Any) -> list[str] | None:
    """The unit ``name`` coordinate of an Activations (``None`` for other inputs)."""
    if isinstance(X, Activations):
        acts = _unit_last(X) if X.dims[-1] != "unit" else X
        frame = acts.coords["unit"]
        if "name" in frame.columns:
            return [str(v) for v in frame["name"].tolist()]
    return None


def unwrap_like(codes: Any, out: torch.Tensor, names: list[str] | None) -> Any:
    """Reconstructions in input space: Activations (unit names restored) if ``codes`` was one."""
    if isinstance(codes, Activations):
        acts = _unit_last(codes)
        unit = {"index": list(range(out.shape[1]))}
        if names is not None and len(names) == out.shape[1]:
            unit["name"] = names
        return Activations(out, ("sample", "unit"), {"sample": acts.coords["sample"], "unit": unit}, acts.attrs)
    if isinstance(codes, np.ndarray):
        return out.detach().cpu().numpy()
    return out
