"""Conversions of :class:`interp.Activations` to and from NumPy, xarray, pandas and Hugging Face datasets
(a mixin of the class; ``Activations.from_xarray(...)``, ``acts.to_frame()`` ...)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from .errors import DimensionError, InputTypeError, SchemaError, require

__all__: list[str] = []

CoordsLike = Mapping[str, "pd.DataFrame | Mapping[str, Sequence[Any]]"]


class Interop:
    """NumPy, xarray, pandas and ``datasets`` conversions of :class:`interp.Activations`."""

    @classmethod
    def from_numpy(cls, array: np.ndarray, dims: Sequence[str], coords: CoordsLike | None = None,
                   attrs: Mapping[str, Any] | None = None) -> Any:
        """Build from a NumPy array (no copy where possible)."""
        if not isinstance(array, np.ndarray):
            raise InputTypeError(f"from_numpy expects a numpy.ndarray, got {type(array).__name__}")
        return cls(torch.from_numpy(np.ascontiguousarray(array)), dims, coords, attrs)

    def to_xarray(self):
        """Convert to an :class:`xarray.DataArray` (coords become non-index coordinates)."""
        xr = require("xarray", extra="data")

        coords = {}
        for d, frame in self.coords.items():
            for col in frame.columns:
                coords[col if col not in self.dims else f"{col}_"] = (d, frame[col].to_numpy())
        return xr.DataArray(self.numpy(), dims=self.dims, coords=coords, attrs=dict(self.attrs))

    @classmethod
    def from_xarray(cls, array) -> Any:
        """Build from an :class:`xarray.DataArray` (1-D coordinates become per-dim coords)."""
        coords: dict[str, dict[str, Any]] = {d: {} for d in array.dims}
        for name, coord in array.coords.items():
            if coord.ndim == 1:
                coords[coord.dims[0]][name.rstrip("_") if name.rstrip("_") in array.dims else name] = coord.values
        return cls(torch.from_numpy(np.ascontiguousarray(array.values)), array.dims, coords, dict(array.attrs))

    def to_frame(self, name: str = "value") -> pd.DataFrame:
        """A long table, one row per element, with the coordinates of each axis as columns.

        Parameters
        ----------
        name : str, optional
            Name of the value column (default ``"value"``).
        """
        grids = np.meshgrid(*[np.arange(n) for n in self.shape], indexing="ij")
        out = pd.DataFrame({f"{d}_index": g.reshape(-1) for d, g in zip(self.dims, grids)})
        for d, g in zip(self.dims, grids):
            part = self.coords[d].iloc[g.reshape(-1)].reset_index(drop=True)
            for col in part.columns:
                out[col if col not in out.columns else f"{d}_{col}"] = part[col].to_numpy()
        out[name] = self.numpy().reshape(-1)
        return out

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, sample: str | None = None, unit_columns: Sequence[str] | None = None,
                   attrs: Mapping[str, Any] | None = None) -> Any:
        """Build a ``(sample, unit)`` object from a wide table: numeric ``unit_columns`` become units,
        the other columns become sample coordinates (``sample`` names the id column if any)."""
        if not isinstance(frame, pd.DataFrame):
            raise InputTypeError(f"from_frame expects a pandas.DataFrame, got {type(frame).__name__}")
        if unit_columns is None:
            unit_columns = [c for c in frame.columns if c != sample and pd.api.types.is_numeric_dtype(frame[c])]
        if not unit_columns:
            raise DimensionError("the table has no numeric columns to use as units")
        meta = frame.drop(columns=list(unit_columns)).reset_index(drop=True)
        if sample is not None:
            meta = meta.rename(columns={sample: "id"})
        data = np.array(frame[list(unit_columns)].to_numpy(dtype=np.float32), copy=True)
        return cls(torch.from_numpy(data), ("sample", "unit"),
                   {"sample": meta, "unit": {"name": [str(c) for c in unit_columns]}}, attrs)

    def to_dataset(self, dim: str = "sample"):
        """A Hugging Face :class:`datasets.Dataset` with one row per ``dim`` index.

        The row holds the values (column ``values``, the other dims kept as nested lists) and the
        ``dim`` coordinates; the other coordinates and attrs travel in the dataset's ``info``.

        Parameters
        ----------
        dim : str, optional
            The dim whose indices become the dataset rows (default ``"sample"``).
        """
        datasets = require("datasets", extra="data")

        moved = self.transpose(dim, *[d for d in self.dims if d != dim])
        columns = {"values": moved.numpy()}
        for col in self.coords[dim].columns:
            columns[col] = self.coords[dim][col].tolist()
        ds = datasets.Dataset.from_dict(columns)
        ds.info.description = json.dumps(moved._meta(exclude=dim))
        return ds

    @classmethod
    def from_dataset(cls, ds) -> Any:
        """Inverse of :meth:`to_dataset`."""
        meta = json.loads(ds.info.description or "{}")
        if "dims" not in meta:
            raise SchemaError("this dataset was not written by Activations.to_dataset (no dims in its info)")
        dims = meta["dims"]
        values = np.asarray(ds.with_format("numpy")["values"], dtype=meta.get("numpy_dtype", "float32"))
        coords = {d: pd.DataFrame(c) for d, c in meta["coords"].items()}
        coords[dims[0]] = pd.DataFrame({c: ds[c] for c in ds.column_names if c != "values"})
        return cls(torch.from_numpy(values), dims, coords, meta["attrs"])
