"""Turning what users pass to ``fit``/``transform`` into 2-D float tensors and minibatches.

Accepted inputs: :class:`interp.Activations` (``("sample", "unit")``, or any dims ending in ``unit``
whose other dims are flattened into samples, e.g. ``("sample", "pos", "unit")``), a 2-D
:class:`torch.Tensor` or :class:`numpy.ndarray` (rows are samples), an :class:`interp.store.ActivationStore`
(streamed in random-access minibatches), or any iterable of 2-D minibatches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch

from .._matrix import as_matrix as _as_matrix
from ..errors import ConfigError, DimensionError, InputTypeError, NaNError, named_array_error
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


def is_array_like(X: Any) -> bool:
    """True for array-likes other than the library's own inputs: a sparse matrix, a DataFrame, nested lists of
    numbers, anything with ``__array__`` (they go through :func:`checked_array`)."""
    if isinstance(X, (Activations, torch.Tensor, np.ndarray, Mapping, str, bytes)) or is_store(X):
        return False
    if isinstance(X, list) and X and isinstance(X[0], (list, tuple, int, float)):
        return True  # nested lists of numbers: one matrix (a list of arrays/tensors is a list of minibatches)
    import scipy.sparse as sp

    return sp.issparse(X) or hasattr(X, "__array__")


def checked_array(X: Any, what: str = "X") -> np.ndarray:
    """A dense, finite, 2-D float NumPy array with at least one row and column, by scikit-learn's ``check_array``
    (its messages, raised as named errors; see :func:`~interp.errors.named_array_error`)."""
    from sklearn.utils.validation import check_array

    try:
        return check_array(X, accept_sparse=False, dtype=[np.float64, np.float32], input_name=what)
    except (TypeError, ValueError) as exc:
        raise named_array_error(exc) from exc


def as_matrix(X: Any, dtype: torch.dtype = torch.float32, device: str | torch.device | None = None,
              what: str = "X") -> torch.Tensor:
    """A finite 2-D ``(n_samples, n_features)`` tensor from an Activations, tensor or array: the library's one
    matrix boundary (:func:`interp._matrix.as_matrix`) with units as the features (``features="unit"``: other
    dims become samples) and 1-D input refused, as scikit-learn refuses it for an estimator's ``X``.

    Parameters
    ----------
    X : Activations, torch.Tensor, numpy.ndarray or array-like
        The data (a store or minibatch iterable goes through :func:`minibatches` instead).
    dtype : torch.dtype, optional
        The result's dtype (default float32).
    device : str or torch.device, optional
        The result's device; None keeps a tensor's device.
    what : str, optional
        Its name in error messages.
    """
    if not isinstance(X, (Activations, torch.Tensor, np.ndarray)) and not is_array_like(X):
        _refuse_mapping(X, what)
        raise InputTypeError(
            f"{what} must be an interp.Activations, a torch.Tensor or a numpy.ndarray; got {type(X).__name__}"
        )
    return _as_matrix(X, what=what, features="unit", one_d="refuse", dtype=dtype, device=device)


def _refuse_mapping(X: Any, what: str) -> None:
    """A ``{site: Activations}`` mapping (``capture`` with several sites) is not one matrix: say how to pick one."""
    if isinstance(X, Mapping):
        raise InputTypeError(f"{what} is a mapping of {len(X)} sites {list(X)[:4]} (what capture returns for several "
                             "sites or a glob); fit one site at a time, e.g. X[" + repr(next(iter(X), "site")) + "]")


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
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], (torch.Tensor, np.ndarray, Activations)):
        batch = batch[0]  # (x, meta) pairs
    x = as_matrix(batch if not isinstance(batch, torch.Tensor) or batch.ndim == 2 else batch.reshape(-1, batch.shape[-1]),
                  what=what)
    if n_features is not None and x.shape[1] != n_features:
        raise DimensionError(f"{what} has {x.shape[1]} features but the first minibatch had {n_features}")
    return x


def rank_slice(n: int, rank: int, world_size: int) -> slice:
    """The rows of a global batch of ``n`` that ``rank`` of ``world_size`` trains on: contiguous, sizes differ by <= 1.

    Concatenating the ranks' slices in rank order gives the global batch back, which is what makes a
    distributed fit equal one process's fit on the same global batches.
    """
    return slice(n * rank // world_size, n * (rank + 1) // world_size)


class BatchSource:
    """Shuffled global minibatches of one or several sites, of which each rank reads its own slice.

    ``X`` is an Activations/tensor/array (one site, ``sites=[None]``), a mapping ``{site: Activations/
    tensor/array}`` with the same number of rows per site, an ActivationStore (``sites`` are array names;
    every site reads the same stored rows), or an iterable of minibatches (tensors, or ``{site: tensor}``
    mappings) taken as global batches. Every rank draws the same global order from ``seed``: in-memory
    inputs are reshuffled each epoch with ``torch.randperm``; a store is read in the order of
    ``ActivationStore.minibatches(shuffle=True, seed=seed + epoch)``. In-memory inputs are moved to
    ``device`` once.
    """

    def __init__(self, X: Any, sites: list[str | None], batch_size: int, n_epochs: int = 1, seed: int = 0,
                 device: str | torch.device | None = None) -> None:
        self.batch_size, self.n_epochs, self.seed = batch_size, n_epochs, seed
        self.sites = list(sites)
        self.per_row = {site: 1 for site in self.sites}
        self.names: dict[str | None, list[str] | None] = {site: None for site in self.sites}
        self.n_rows: int | None = None  # index rows per epoch (stored rows for a store)
        if isinstance(X, Mapping) and self.sites == [None]:
            _refuse_mapping(X, "X")  # {site: Activations} from capture, without saying which site to fit
        if is_array_like(X):  # sparse matrix, DataFrame, other array-likes: scikit-learn's checks and messages
            X = checked_array(X)
        if isinstance(X, (Activations, torch.Tensor, np.ndarray)):
            if self.sites != [None]:
                raise ConfigError(f"sites {self.sites} name arrays of a store or keys of a mapping; this input is one array")
            X = {None: X}
        if isinstance(X, Mapping) and all(isinstance(v, (Activations, torch.Tensor, np.ndarray)) for v in X.values()):
            missing = [s for s in self.sites if s not in X]
            if missing:
                raise ConfigError(f"sites {missing} are not in the mapping; it holds {list(X)}")
            self.kind = "memory"
            self.data = {s: as_matrix(X[s], device=device, what=f"X[{s!r}]" if s is not None else "X") for s in self.sites}
            self.names = {s: feature_names(X[s]) for s in self.sites}
            counts = {s: d.shape[0] for s, d in self.data.items()}
            if len(set(counts.values())) > 1:
                raise DimensionError(f"the sites have different numbers of rows {counts}; one pass needs the same rows")
            self.n_rows = next(iter(counts.values()))
        elif is_store(X):
            self.kind = "store"
            if isinstance(X, tuple):
                X, name = X
                self.sites = [name] if self.sites == [None] else self.sites
            self.store = X
            checked = {s: check_store(X, s) for s in self.sites}
            self.sites = [c[1] for c in checked.values()]
            self.per_row = {c[1]: c[2] for c in checked.values()}
            self.n_features = {c[1]: c[3] for c in checked.values()}
            self.names = {s: None for s in self.sites}
            self.n_rows = X.n_rows
        elif isinstance(X, Iterable) and not isinstance(X, (str, bytes)):
            self.kind = "iterable"
            self.data = X
        else:
            raise InputTypeError(
                f"cannot fit on {type(X).__name__}: pass an interp.Activations, a 2-D tensor/array, an ActivationStore "
                "or an iterable of 2-D minibatches")

    def n_vectors(self, site: str | None) -> int | None:
        """Training vectors of ``site`` per epoch (``None`` for an iterable)."""
        return None if self.n_rows is None else self.n_rows * self.per_row[site]

    def vectors_per_batch(self, site: str | None) -> int:
        return self.batch_size * self.per_row[site]

    def batches(self, rank: int = 0, world_size: int = 1,
                device: str | torch.device | None = None) -> Iterator[tuple[dict, dict]]:
        """``({site: this rank's rows}, {site: rows in the global batch})`` for every global minibatch."""
        if self.kind == "memory":
            gen = torch.Generator().manual_seed(self.seed)
            for _ in range(self.n_epochs):
                order = torch.randperm(self.n_rows, generator=gen)
                for start in range(0, self.n_rows, self.batch_size):
                    index = order[start:start + self.batch_size]
                    mine = index[rank_slice(index.numel(), rank, world_size)]
                    yield ({s: d[mine.to(d.device)].to(device=device) for s, d in self.data.items()},
                           {s: index.numel() for s in self.sites})
        elif self.kind == "store":
            yield from self._store_batches(rank, world_size, device)
        else:
            n_features: dict = {}
            reusable = not isinstance(self.data, Iterator)
            for _ in range(self.n_epochs if reusable else 1):
                for i, batch in enumerate(self.data):
                    local, counts = {}, {}
                    for site in self.sites:
                        item = self._pick(batch, site, i)
                        x = _as_batch(item, n_features.get(site), f"minibatch {i}")
                        n_features[site] = x.shape[1]
                        local[site] = x[rank_slice(x.shape[0], rank, world_size)].to(device=device)
                        counts[site] = x.shape[0]
                    yield local, counts

    def _pick(self, batch: Any, site: str | None, i: int) -> Any:
        if not isinstance(batch, Mapping):
            if site is not None:
                raise InputTypeError(f"minibatch {i} is one array; training on sites {self.sites} needs "
                                     "{site: tensor} mappings")
            return batch
        if site is None:
            if len(batch) != 1:
                raise InputTypeError(f"minibatch {i} holds several sites {sorted(batch)}; choose one with sites=")
            return next(iter(batch.values()))
        if site not in batch:
            raise InputTypeError(f"minibatch {i} has no site {site!r}; it holds {sorted(batch)}")
        return batch[site]

    def _store_batches(self, rank: int, world_size: int, device: Any) -> Iterator[tuple[dict, dict]]:
        """This rank's share of each global store minibatch (the one place that slices store reads by rank)."""
        n = self.n_rows
        for epoch in range(self.n_epochs):
            order = np.random.default_rng(self.seed + epoch).permutation(n)
            for start in range(0, n, self.batch_size):
                index = np.sort(order[start:start + self.batch_size])
                mine = index[rank_slice(index.size, rank, world_size)]
                local = {}
                for site in self.sites:
                    rows = torch.from_numpy(self.store.rows(site, mine)).reshape(-1, self.n_features[site])
                    local[site] = check_finite(rows.float(), f"store array {site!r}").to(device=device)
                yield local, {s: index.size * self.per_row[s] for s in self.sites}


def minibatches(X: Any, batch_size: int, n_epochs: int = 1, seed: int = 0,
                device: str | torch.device | None = None) -> Iterator[torch.Tensor]:
    """Yield shuffled ``(batch, n_features)`` float32 minibatches from any accepted input (one site).

    In-memory inputs are reshuffled each epoch; a store is read in ``n_epochs`` passes of random
    minibatches; another iterable is consumed once per epoch (an iterator only once).
    """
    site = None
    if is_store(X):
        X = store_array(X)
        site = X[1]
    for local, _ in BatchSource(X, [site], batch_size, n_epochs, seed).batches(device=device):
        yield local[site]


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
