"""The common tensor interface: :class:`Activations`.

A model's activations and a brain recording are the same type: a torch tensor with named axes
(``dims``), per-axis metadata (``coords``, one :class:`pandas.DataFrame` per axis, one row per
index) and provenance (``attrs``).

Example
-------
>>> import torch
>>> from interp import Activations
>>> acts = Activations(torch.randn(4, 3), dims=("sample", "unit"),
...                    coords={"unit": {"name": ["a", "b", "c"]}}, attrs={"kind": "model"})
>>> acts.sel(name=["a", "c"]).shape
(4, 2)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ._files import _jsonable, atomic_write
from ._integrity import read_safetensors, tensor_checksum
from ._tensor_interop import Interop
from .checks import reading
from .errors import (
    DimensionError,
    InputTypeError,
    MismatchError,
    NaNError,
    closest,
)

__all__ = ["Activations", "concat", "atomic_write"]

CoordsLike = Mapping[str, "pd.DataFrame | Mapping[str, Sequence[Any]]"]


# pandas >= 3 copies on write: a shallow copy of a caller's frame can never change it, nor be changed by it
_SHALLOW_COPY_IS_SAFE = int(pd.__version__.split(".")[0]) >= 3


def _as_frame(dim: str, value: Any, size: int) -> pd.DataFrame:
    if value is None:
        return pd.DataFrame(index=pd.RangeIndex(size))
    frame = value.copy(deep=not _SHALLOW_COPY_IS_SAFE) if isinstance(value, pd.DataFrame) else pd.DataFrame(dict(value))
    if len(frame.columns) and len(frame) != size:
        raise DimensionError(f"coords for dim {dim!r} have {len(frame)} rows but the dim has size {size}")
    if not len(frame.columns):
        frame = pd.DataFrame(index=pd.RangeIndex(size))
    index = frame.index
    if isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1:
        return frame
    return frame.reset_index(drop=True)


class Activations(Interop):
    """A labeled tensor shared by model activations and recordings.

    Parameters
    ----------
    data:
        A tensor (or anything :func:`torch.as_tensor` accepts) on any device and dtype.
    dims:
        One name per axis, e.g. ``("sample", "unit")`` or ``("sample", "pos", "unit")``.
    coords:
        Per-axis metadata: ``{dim: DataFrame or {coord_name: values}}``, one row per index.
    attrs:
        Provenance, e.g. ``{"source": "induction-2l", "kind": "model"}`` or ``{"kind": "recording",
        "dt": 0.6}``.
    """

    def __init__(
        self,
        data: Any,
        dims: Sequence[str],
        coords: CoordsLike | None = None,
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(data, np.ndarray) and data.dtype == object:
            raise InputTypeError("data must be numeric, got a NumPy array of dtype object")
        tensor = data if isinstance(data, torch.Tensor) else torch.as_tensor(np.asarray(data))
        dims = tuple(dims)
        if len(dims) != tensor.ndim:
            raise DimensionError(f"data has {tensor.ndim} axes {tuple(tensor.shape)} but {len(dims)} dims {dims} were given")
        if len(set(dims)) != len(dims):
            raise DimensionError(f"dims must be unique, got {dims}")
        coords = dict(coords or {})
        unknown = set(coords) - set(dims)
        if unknown:
            raise DimensionError(f"coords given for dims {sorted(unknown)} that are not in dims {dims}")
        self.data: torch.Tensor = tensor
        self.dims: tuple[str, ...] = dims
        self.coords: dict[str, pd.DataFrame] = {
            d: _as_frame(d, coords.get(d), n) for d, n in zip(dims, tensor.shape)
        }
        self.attrs: dict[str, Any] = dict(attrs or {})

    # ------------------------------------------------------------------ basics
    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of :attr:`data` as a tuple."""
        return tuple(self.data.shape)

    @property
    def sizes(self) -> dict[str, int]:
        """``{dim: size}``."""
        return dict(zip(self.dims, self.shape))

    @property
    def device(self) -> torch.device:
        """The device of :attr:`data`."""
        return self.data.device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of :attr:`data`."""
        return self.data.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        sizes = ", ".join(f"{d}: {n}" for d, n in self.sizes.items())
        coords = {d: list(f.columns) for d, f in self.coords.items() if len(f.columns)}
        src = self.attrs.get("source", "?")
        return f"Activations({sizes}; dtype={self.dtype}, device={self.device}, source={src!r}, coords={coords})"

    def axis(self, dim: str) -> int:
        """The axis number of ``dim`` (raises :class:`DimensionError` naming the dims that exist).

        Parameters
        ----------
        dim : str
            A dim name.
        """
        if dim not in self.dims:
            hint = closest(dim, self.dims)
            raise DimensionError(f"no dim {dim!r}; dims are {self.dims}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        return self.dims.index(dim)

    def coord(self, name: str, dim: str | None = None) -> np.ndarray:
        """The values of coordinate ``name`` (searched on every dim unless ``dim`` is given).

        Parameters
        ----------
        name : str
            Coordinate (column) name; a dim name itself is not a coordinate here.
        dim : str, optional
            The dim to look on; None: the one dim that has the coordinate (ambiguity raises :class:`DimensionError`).
        """
        dim = dim or self._dim_of(name)
        if name not in self.coords.get(dim, pd.DataFrame()).columns:
            have = list(self.coords.get(dim, pd.DataFrame()).columns)
            hint = closest(name, have)
            raise DimensionError(f"no coordinate {name!r} on dim {dim!r}; it has {have}"
                                 + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        return self.coords[dim][name].to_numpy()

    def _dim_of(self, name: str) -> str:
        if name in self.dims:
            return name
        found = [d for d, f in self.coords.items() if name in f.columns]
        if not found:
            every = [c for f in self.coords.values() for c in f.columns]
            hint = closest(name, every)
            raise DimensionError(
                f"no coordinate {name!r}; coordinates are {sorted(set(every))}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
            )
        if len(found) > 1:
            raise DimensionError(f"coordinate {name!r} exists on dims {found}; pass dim=... to choose")
        return found[0]

    def replace(self, data: torch.Tensor | None = None, dims: Sequence[str] | None = None,
                coords: CoordsLike | None = None, attrs: Mapping[str, Any] | None = None) -> Activations:
        """A copy with some fields replaced (coords default to the current ones for kept dims).

        Parameters
        ----------
        data : torch.Tensor, optional
            New data; None keeps the current data.
        dims : sequence of str, optional
            New dim names; None keeps the current ones.
        coords : mapping, optional
            New coords; None keeps the current coords of the dims that are kept.
        attrs : mapping, optional
            New attrs; None keeps the current attrs.
        """
        dims = tuple(dims) if dims is not None else self.dims
        if coords is None:
            coords = {d: self.coords[d] for d in dims if d in self.coords}
        return Activations(self.data if data is None else data, dims, coords, self.attrs if attrs is None else attrs)

    # --------------------------------------------------------------- selection
    def isel(self, **indexers: int | slice | Sequence[int] | np.ndarray | torch.Tensor) -> Activations:
        """Select by position along dims, e.g. ``acts.isel(sample=slice(0, 10), unit=[1, 5])``.

        An integer drops the dim; a slice, list or boolean mask keeps it.
        """
        data, dims, coords = self.data, list(self.dims), dict(self.coords)
        for dim, idx in indexers.items():
            ax = dims.index(dim) if dim in dims else self.axis(dim)
            if isinstance(idx, torch.Tensor):
                idx = idx.cpu().numpy()
            if isinstance(idx, (int, np.integer)):
                n = data.shape[ax]
                if not -n <= idx < n:
                    raise DimensionError(f"index {idx} out of range for dim {dim!r} of size {n}")
                data = data.select(ax, int(idx))
                dims.pop(ax)
                coords.pop(dim)
                continue
            if isinstance(idx, slice):
                positions = np.arange(data.shape[ax])[idx]
            else:
                positions = np.asarray(idx)
                if positions.dtype == bool:
                    if positions.shape != (data.shape[ax],):
                        raise DimensionError(f"boolean mask for {dim!r} has shape {positions.shape}, expected ({data.shape[ax]},)")
                    positions = np.flatnonzero(positions)
                positions = positions.astype(np.int64).reshape(-1)
                if positions.size and (positions.max() >= data.shape[ax] or positions.min() < -data.shape[ax]):
                    raise DimensionError(f"indices out of range for dim {dim!r} of size {data.shape[ax]}")
            data = data.index_select(ax, torch.as_tensor(positions, device=data.device))
            coords[dim] = coords[dim].iloc[positions].reset_index(drop=True)
        return Activations(data, dims, coords, self.attrs)

    def sel(self, **selectors: Any) -> Activations:
        """Select by coordinate value, e.g. ``acts.sel(site="blocks.0.*", condition=["left", "right"])``.

        A selector is a value, a list of values, a callable returning a boolean mask, or (for string
        coordinates) a glob pattern with ``*``.
        """
        import fnmatch

        masks: dict[str, np.ndarray] = {}
        for name, want in selectors.items():
            dim = self._dim_of(name)
            values = np.arange(self.sizes[dim]) if name == dim else self.coords[dim][name].to_numpy()
            if callable(want):
                mask = np.asarray(want(values), dtype=bool)
            elif isinstance(want, str) and any(ch in want for ch in "*?["):
                mask = np.array([fnmatch.fnmatchcase(str(v), want) for v in values])
            elif isinstance(want, (list, tuple, set, np.ndarray, pd.Index)):
                mask = pd.Series(values).isin(list(want)).to_numpy()
            else:
                mask = values == want
            if not mask.any():
                raise DimensionError(f"no {dim} has {name} matching {want!r}")
            masks[dim] = masks[dim] & mask if dim in masks else mask
        return self.isel(**masks)

    def transpose(self, *dims: str) -> Activations:
        """Reorder the axes."""
        if sorted(dims) != sorted(self.dims):
            raise DimensionError(f"transpose needs a permutation of {self.dims}, got {dims}")
        order = [self.dims.index(d) for d in dims]
        return Activations(self.data.permute(*order), dims, self.coords, self.attrs)

    def flatten(self, dims: Sequence[str] = ("sample", "pos"), into: str = "sample") -> Activations:
        """Merge adjacent ``dims`` into one dim ``into`` (e.g. token positions into samples).

        The coordinates of the merged dims are combined: each new row carries the coordinates of its
        sample and of its position (columns of later dims are prefixed with the dim name on clashes),
        plus ``{dim}_index`` columns recording where it came from.

        Parameters
        ----------
        dims : sequence of str, optional
            Adjacent dims to merge, in axis order (default ``("sample", "pos")``).
        into : str, optional
            Name of the merged dim (default ``"sample"``).
        """
        dims = tuple(dims)
        axes = [self.axis(d) for d in dims]
        if axes != list(range(axes[0], axes[0] + len(axes))):
            raise DimensionError(f"flatten needs adjacent dims in order; {dims} are at axes {axes} of {self.dims}")
        shape = [self.sizes[d] for d in dims]
        data = self.data.flatten(axes[0], axes[-1])
        grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
        frame = pd.DataFrame({f"{d}_index": g.reshape(-1) for d, g in zip(dims, grids)})
        for d, g in zip(dims, grids):
            part = self.coords[d].iloc[g.reshape(-1)].reset_index(drop=True)
            for col in part.columns:
                name = col if col not in frame.columns else f"{d}_{col}"
                frame[name] = part[col].to_numpy()
        new_dims = list(self.dims[: axes[0]]) + [into] + list(self.dims[axes[-1] + 1 :])
        coords = {d: self.coords[d] for d in new_dims if d != into}
        coords[into] = frame
        return Activations(data, new_dims, coords, self.attrs)

    def where(self, mask_coord: str) -> Activations:
        """Keep the rows where a boolean coordinate is true (e.g. ``"is_real"`` tokens after flatten).

        Parameters
        ----------
        mask_coord : str
            Name of a boolean coordinate; its dim is the one filtered.
        """
        dim = self._dim_of(mask_coord)
        return self.isel(**{dim: self.coords[dim][mask_coord].to_numpy().astype(bool)})

    def align(self, other: Activations, on: str = "stimulus", dim: str = "sample") -> tuple[Activations, Activations]:
        """Reorder both objects so that their ``dim`` rows match on coordinate ``on``.

        Raises :class:`MismatchError` listing the ids present in one and not the other.

        Parameters
        ----------
        other : Activations
            The object to reorder to match this one's row order.
        on : str, optional
            Coordinate whose values identify the rows; unique on both sides (default ``"stimulus"``).
        dim : str, optional
            The dim to align (default ``"sample"``).
        """
        mine = self._align_key(on, dim)
        theirs = other._align_key(on, dim)
        if len(set(mine)) != len(mine) or len(set(theirs)) != len(theirs):
            raise MismatchError(f"coordinate {on!r} must be unique along {dim!r} to align on it")
        missing_here = [v for v in theirs if v not in set(mine)]
        missing_there = [v for v in mine if v not in set(theirs)]
        if missing_here or missing_there:
            raise MismatchError(
                f"stimuli do not line up on {on!r}: {len(missing_there)} only in the first "
                f"({missing_there[:10]}), {len(missing_here)} only in the second ({missing_here[:10]})"
            )
        pos = {v: i for i, v in enumerate(theirs)}
        return self, other.isel(**{dim: np.array([pos[v] for v in mine], dtype=np.int64)})

    def _align_key(self, on: str, dim: str) -> list:
        self.axis(dim)
        if on in self.coords[dim].columns:
            return self.coords[dim][on].tolist()
        raise MismatchError(f"{self.attrs.get('source', 'object')} has no {dim} coordinate {on!r} to align on; "
                            f"it has {list(self.coords[dim].columns)}")

    # --------------------------------------------------------------- reductions
    def _reduce(self, fn: Callable[..., torch.Tensor], dim: str | Sequence[str]) -> Activations:
        names = [dim] if isinstance(dim, str) else list(dim)
        axes = [self.axis(d) for d in names]
        data = fn(self.data, dim=axes)
        kept = [d for d in self.dims if d not in names]
        return Activations(data, kept, {d: self.coords[d] for d in kept}, self.attrs)

    def mean(self, dim: str | Sequence[str]) -> Activations:
        """Mean over the named dim(s).

        Parameters
        ----------
        dim : str or sequence of str
            The dim(s) to reduce; integer data are cast to float32 first.
        """
        return self._reduce(lambda x, dim: x.float().mean(dim=dim) if not x.is_floating_point() else x.mean(dim=dim), dim)

    def sum(self, dim: str | Sequence[str]) -> Activations:
        """Sum over the named dim(s).

        Parameters
        ----------
        dim : str or sequence of str
            The dim(s) to reduce.
        """
        return self._reduce(lambda x, dim: x.sum(dim=dim), dim)

    def std(self, dim: str | Sequence[str]) -> Activations:
        """Standard deviation (unbiased) over the named dim(s).

        Parameters
        ----------
        dim : str or sequence of str
            The dim(s) to reduce; integer data are cast to float32 first, floating data keep their dtype.
        """
        return self._reduce(lambda x, dim: (x if x.is_floating_point() else x.float()).std(dim=dim), dim)

    def max(self, dim: str | Sequence[str]) -> Activations:
        """Maximum over the named dim(s).

        Parameters
        ----------
        dim : str or sequence of str
            The dim(s) to reduce.
        """
        return self._reduce(lambda x, dim: x.amax(dim=dim), dim)

    def min(self, dim: str | Sequence[str]) -> Activations:
        """Minimum over the named dim(s).

        Parameters
        ----------
        dim : str or sequence of str
            The dim(s) to reduce.
        """
        return self._reduce(lambda x, dim: x.amin(dim=dim), dim)

    # ------------------------------------------------------------ conversions
    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> Activations:
        """Move to a device and/or cast to a dtype.

        Parameters
        ----------
        device : str or torch.device, optional
            Target device; None keeps it.
        dtype : torch.dtype, optional
            Target dtype; None keeps it.
        """
        return Activations(self.data.to(device=device, dtype=dtype), self.dims, self.coords, self.attrs)

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (moved to CPU; bfloat16 becomes float32)."""
        data = self.data.detach().cpu()
        if data.dtype == torch.bfloat16:
            data = data.float()
        return data.numpy()

    to_numpy = numpy

    def matrix(self, rows: str = "sample") -> torch.Tensor:
        """A 2-D tensor with ``rows`` first and every other dim flattened into columns.

        Parameters
        ----------
        rows : str, optional
            The dim that becomes the rows (default ``"sample"``).
        """
        ax = self.axis(rows)
        return self.data.movedim(ax, 0).reshape(self.shape[ax], -1)

    def check_finite(self, nan_policy: str = "raise", dim: str = "unit") -> Activations:
        """Validate that the data are finite.

        ``nan_policy``: ``"raise"`` (count them in a :class:`NaNError`), ``"drop"`` (drop every ``dim``
        index that holds a NaN, recording how many in ``attrs["dropped_nan"]``), ``"zero"`` (replace
        with 0) or ``"ignore"``.

        Parameters
        ----------
        nan_policy : str, optional
            ``"raise"`` (default), ``"drop"``, ``"zero"`` or ``"ignore"``; non-float data are returned as they are.
        dim : str, optional
            The dim counted in the error and dropped by ``"drop"`` (default ``"unit"``); dropped rows keep their
            original position in an ``index`` coordinate.
        """
        if not self.data.is_floating_point() or nan_policy == "ignore":
            return self
        bad = ~torch.isfinite(self.data)
        n_bad = int(bad.sum())
        if n_bad == 0:
            return self
        if nan_policy == "raise":
            where = ""
            if dim in self.dims:
                ax = self.axis(dim)
                per = bad.movedim(ax, 0).reshape(self.shape[ax], -1).any(1)
                where = f" in {int(per.sum())} of {self.shape[ax]} {dim}s"
            raise NaNError(f"{n_bad} NaN/inf values{where} of {self.attrs.get('source', 'the data')}; "
                           "pass nan_policy='drop' (drop those units), 'zero' or 'ignore'")
        if nan_policy == "zero":
            return self.replace(data=torch.nan_to_num(self.data, nan=0.0, posinf=0.0, neginf=0.0))
        if nan_policy == "drop":
            ax = self.axis(dim)
            keep = ~bad.movedim(ax, 0).reshape(self.shape[ax], -1).any(1)
            src = self if "index" in self.coords[dim] else self.replace(coords={**self.coords, dim: self.coords[dim].assign(
                index=np.arange(self.shape[ax]))})  # the kept ones keep their original index
            out = src.isel(**{dim: keep.cpu().numpy()})
            out.attrs = {**self.attrs, "dropped_nan": int((~keep).sum())}
            return out
        raise NaNError(f"unknown nan_policy {nan_policy!r}; use 'raise', 'drop', 'zero' or 'ignore'")

    # ------------------------------------------------------------- save/load
    def _meta(self, exclude: str | None = None) -> dict[str, Any]:
        return {
            "dims": list(self.dims),
            "shape": list(self.shape),
            "dtype": str(self.dtype).replace("torch.", ""),
            "numpy_dtype": str(self.numpy().dtype) if self.data.numel() < 2 else str(np.dtype(str(self.dtype).replace("torch.", "")) if self.dtype != torch.bfloat16 else "float32"),
            "coords": {d: _jsonable(f.to_dict(orient="list")) for d, f in self.coords.items() if d != exclude},
            "attrs": _jsonable(self.attrs),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (safetensors with the dims, coords and attrs as JSON metadata), atomically.

        Parameters
        ----------
        path : str or os.PathLike
            The ``.safetensors`` file to write (replaced if it exists).
        """
        from safetensors.torch import save_file

        path = Path(path)
        meta = self._meta()
        tensor = self.data.detach().cpu().contiguous()
        text = json.dumps(meta)
        metadata = {"interp": text, "interp.checksum": tensor_checksum({"data": tensor}, text)}
        atomic_write(path, lambda tmp: save_file({"data": tensor}, tmp, metadata=metadata))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> Activations:
        """Read a file written by :meth:`save`; its checksum is verified (:class:`CorruptFileError` if it differs).

        A truncated, corrupt or foreign file (unreadable metadata included) raises :class:`CorruptFileError`,
        a missing one :class:`~interp.errors.DataNotFoundError`.
        """
        with reading(path, "saved Activations file", "save it again with Activations.save (a file cut short by a "
                     "crash or a partial copy cannot be repaired)"):
            return cls._load(path, device)

    @classmethod
    def _load(cls, path: str | os.PathLike, device: str | torch.device) -> Activations:
        text, tensors = read_safetensors(path, "interp", "Activations.save", "save it again with Activations.save")
        data = tensors["data"].to(device)
        meta = json.loads(text)
        coords = {d: pd.DataFrame(c) for d, c in meta["coords"].items()}
        return cls(data, meta["dims"], coords, meta["attrs"])

    # --------------------------------------------------------------- helpers
    def __array__(self, dtype=None, copy=None):
        arr = self.numpy()
        return arr.astype(dtype) if dtype is not None else arr

    def equals(self, other: Activations) -> bool:
        """True when data, dims and coords are identical.

        Parameters
        ----------
        other : Activations
            The object to compare with (attrs are not compared).
        """
        return (
            self.dims == other.dims
            and self.shape == other.shape
            and bool(torch.equal(self.data.cpu(), other.data.cpu()))
            and all(self.coords[d].equals(other.coords[d]) for d in self.dims)
        )


def concat(items: Iterable[Activations], dim: str = "sample") -> Activations:
    """Concatenate along ``dim`` (other dims must match; coords of ``dim`` are stacked).

    Parameters
    ----------
    items : iterable of Activations
        At least one object; all with the same dims and the same sizes outside ``dim``.
    dim : str, optional
        The dim to concatenate along (default ``"sample"``); the other dims' coords and the attrs come from
        the first item.
    """
    items = list(items)
    if not items:
        raise DimensionError("concat needs at least one Activations")
    first = items[0]
    for other in items[1:]:
        if other.dims != first.dims:
            raise DimensionError(f"cannot concat dims {other.dims} with {first.dims}")
        for d in first.dims:
            if d != dim and other.sizes[d] != first.sizes[d]:
                raise DimensionError(f"dim {d!r} has size {other.sizes[d]} vs {first.sizes[d]}")
    ax = first.axis(dim)
    data = torch.cat([a.data for a in items], dim=ax)
    coords = {d: first.coords[d] for d in first.dims}
    coords[dim] = pd.concat([a.coords[dim] for a in items], ignore_index=True)
    return Activations(data, first.dims, coords, first.attrs)
