"""On-disk activation store: sharded ``.npy`` files + a JSON manifest.

Layout of a store directory::

    manifest.json                 schema (arrays, dims, unit coords, dtype), shards, progress
    shards/{array}/00000.npy      rows of one array written by one append
    shards/_coords/00000.parquet  the sample coordinates of those rows

Appends are atomic: every shard is written to a temporary file and renamed, and the manifest (also
written atomically) is updated only after all shards of an append exist, so a process killed
mid-append leaves the store as it was before that append. Orphan shard files of an interrupted
append are ignored and overwritten on resume. ``inputs_done`` in the manifest records how many
inputs of the producing job are fully stored, which is what :func:`interp.capture` resumes from.

Example
-------
>>> store = ActivationStore.create("/tmp/acts", {"mlp": (16,)}, dims={"mlp": ("sample", "unit")})  # doctest: +SKIP
>>> store.append({"mlp": torch.randn(8, 16)}, inputs_done=8)                                     # doctest: +SKIP
>>> for batch in store.minibatches("mlp", batch_size=4): ...                                     # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .errors import ConfigError, DimensionError, SchemaError, closest
from .tensor import Activations, _jsonable, atomic_write

__all__ = ["ActivationStore"]

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def _save_npy(path: str, value: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, value)


def _safe(name: str) -> str:
    return name.replace("/", "_").replace(":", "_")


class ActivationStore:
    """A directory of activations that grows by atomic appends and reads back as memmaps.

    Use :meth:`create` to make one (or open a compatible existing one), :meth:`open` to read one.
    """

    def __init__(self, path: str | os.PathLike, manifest: dict[str, Any]) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self._memmaps: dict[tuple[str, int], np.ndarray] = {}

    # ----------------------------------------------------------------- create/open
    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        arrays: Mapping[str, Sequence[int]],
        *,
        dims: Mapping[str, Sequence[str]] | None = None,
        dtype: str = "float32",
        unit_coords: Mapping[str, pd.DataFrame | Mapping[str, Sequence[Any]]] | None = None,
        attrs: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> ActivationStore:
        """Create a store for ``arrays`` (``{name: shape of one row}``), or reopen a compatible one.

        Reopening a store whose schema differs (arrays, row shapes, dims or dtype) raises
        :class:`SchemaError`; pass ``overwrite=True`` to replace it.
        """
        path = Path(path)
        dims = dims or {}
        schema = {
            name: {
                "shape": [int(s) for s in shape],
                "dims": list(dims.get(name, ("sample",) + tuple(f"dim{i}" for i in range(len(shape))))),
            }
            for name, shape in arrays.items()
        }
        for name, spec in schema.items():
            if len(spec["dims"]) != len(spec["shape"]) + 1:
                raise DimensionError(f"array {name!r}: dims {spec['dims']} must name the sample axis plus {len(spec['shape'])} row axes")
        np.dtype(dtype)
        if (path / MANIFEST).exists() and not overwrite:
            store = cls.open(path)
            store._check_schema(schema, dtype)
            return store
        if path.exists() and overwrite:
            shutil.rmtree(path)
        coords = {}
        for name, frame in (unit_coords or {}).items():
            frame = pd.DataFrame(frame) if not isinstance(frame, pd.DataFrame) else frame
            coords[name] = _jsonable(frame.to_dict(orient="list"))
        manifest = {
            "format": "interp-activation-store",
            "version": FORMAT_VERSION,
            "dtype": dtype,
            "arrays": schema,
            "unit_coords": coords,
            "attrs": _jsonable(dict(attrs or {})),
            "shards": [],
            "n_rows": 0,
            "inputs_done": 0,
            "complete": False,
        }
        store = cls(path, manifest)
        store._write_manifest()
        return store

    @classmethod
    def open(cls, path: str | os.PathLike) -> ActivationStore:
        """Open an existing store for reading (and appending)."""
        path = Path(path)
        file = path / MANIFEST
        if not file.exists():
            raise SchemaError(f"{path} is not an activation store (no {MANIFEST})")
        manifest = json.loads(file.read_text())
        if manifest.get("format") != "interp-activation-store":
            raise SchemaError(f"{file} is not an interp activation-store manifest")
        if manifest.get("version") != FORMAT_VERSION:
            raise SchemaError(f"{path} has store format version {manifest.get('version')}, expected {FORMAT_VERSION}")
        return cls(path, manifest)

    def _check_schema(self, schema: dict[str, Any], dtype: str) -> None:
        mine = self.manifest["arrays"]
        problems = []
        if set(mine) != set(schema):
            problems.append(f"arrays {sorted(mine)} vs requested {sorted(schema)}")
        for name in set(mine) & set(schema):
            if mine[name] != schema[name]:
                problems.append(f"array {name!r}: stored {mine[name]} vs requested {schema[name]}")
        if self.manifest["dtype"] != dtype:
            problems.append(f"dtype {self.manifest['dtype']} vs requested {dtype}")
        if problems:
            raise SchemaError(
                f"the store at {self.path} was created with a different schema: " + "; ".join(problems)
                + ". Use another path or overwrite=True."
            )

    def _write_manifest(self) -> None:
        text = json.dumps(self.manifest, indent=1)
        atomic_write(self.path / MANIFEST, lambda tmp: Path(tmp).write_text(text))

    # ---------------------------------------------------------------- properties
    @property
    def arrays(self) -> list[str]:
        """Names of the stored arrays (e.g. hook names)."""
        return list(self.manifest["arrays"])

    @property
    def n_rows(self) -> int:
        """Number of rows stored in each array."""
        return int(self.manifest["n_rows"])

    def __len__(self) -> int:
        return self.n_rows

    @property
    def inputs_done(self) -> int:
        """How many inputs of the producing job are fully stored (for resuming)."""
        return int(self.manifest["inputs_done"])

    @property
    def complete(self) -> bool:
        """True once the producing job called :meth:`finish`."""
        return bool(self.manifest.get("complete"))

    @property
    def attrs(self) -> dict[str, Any]:
        """Provenance recorded at creation."""
        return dict(self.manifest["attrs"])

    def __repr__(self) -> str:
        return f"ActivationStore({str(self.path)!r}, arrays={self.arrays}, rows={self.n_rows}, shards={len(self.manifest['shards'])})"

    def _spec(self, name: str) -> dict[str, Any]:
        if name not in self.manifest["arrays"]:
            hint = closest(name, self.arrays)
            raise DimensionError(f"the store has no array {name!r}; it has {self.arrays}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        return self.manifest["arrays"][name]

    # -------------------------------------------------------------------- write
    def append(
        self,
        rows: Mapping[str, torch.Tensor | np.ndarray],
        sample_coords: pd.DataFrame | Mapping[str, Sequence[Any]] | None = None,
        inputs_done: int | None = None,
    ) -> None:
        """Append one batch of rows to every array, atomically.

        ``rows`` must hold every array with the same number of rows; ``sample_coords`` one row per
        stored row; ``inputs_done`` the producing job's progress after this batch.
        """
        if set(rows) != set(self.arrays):
            raise SchemaError(f"append needs rows for exactly the arrays {self.arrays}, got {sorted(rows)}")
        dtype = np.dtype(self.manifest["dtype"])
        arrays: dict[str, np.ndarray] = {}
        n = None
        for name, value in rows.items():
            spec = self._spec(name)
            if isinstance(value, torch.Tensor):
                value = value.detach().to("cpu", dtype=torch.float32 if value.dtype == torch.bfloat16 else None).numpy()
            value = np.ascontiguousarray(value, dtype=dtype)
            if list(value.shape[1:]) != spec["shape"]:
                raise DimensionError(f"array {name!r} rows have shape {tuple(value.shape[1:])}, the store expects {tuple(spec['shape'])}")
            if n is not None and value.shape[0] != n:
                raise DimensionError(f"arrays in one append must have the same number of rows ({n} vs {value.shape[0]} for {name!r})")
            n = value.shape[0]
            arrays[name] = value
        coords = pd.DataFrame(sample_coords) if sample_coords is not None else pd.DataFrame(index=range(n or 0))
        if len(coords) != n:
            raise DimensionError(f"sample_coords has {len(coords)} rows, the arrays have {n}")
        shard = len(self.manifest["shards"])
        for name, value in arrays.items():
            file = self.path / "shards" / _safe(name) / f"{shard:05d}.npy"
            atomic_write(file, lambda tmp, v=value: _save_npy(tmp, v))
        if len(coords.columns):
            file = self.path / "shards" / "_coords" / f"{shard:05d}.parquet"
            atomic_write(file, lambda tmp: coords.reset_index(drop=True).to_parquet(tmp, index=False))
        self.manifest["shards"].append({"rows": int(n or 0), "start": self.n_rows, "coords": bool(len(coords.columns))})
        self.manifest["n_rows"] = self.n_rows + int(n or 0)
        if inputs_done is not None:
            self.manifest["inputs_done"] = int(inputs_done)
        self._write_manifest()

    def finish(self, **attrs: Any) -> None:
        """Mark the store complete (optionally recording more attrs)."""
        self.manifest["complete"] = True
        self.manifest["attrs"].update(_jsonable(attrs))
        self._write_manifest()

    # --------------------------------------------------------------------- read
    def _shard(self, name: str, i: int) -> np.ndarray:
        key = (name, i)
        if key not in self._memmaps:
            # a plain ndarray view of the memmap: fancy indexing skips the memmap subclass machinery
            self._memmaps[key] = np.asarray(np.load(self.path / "shards" / _safe(name) / f"{i:05d}.npy", mmap_mode="r"))
        return self._memmaps[key]

    def _offsets(self) -> np.ndarray:
        return np.array([s["start"] for s in self.manifest["shards"]] + [self.n_rows], dtype=np.int64)

    def rows(self, name: str, index: Sequence[int] | np.ndarray | slice) -> np.ndarray:
        """Rows of array ``name`` by global row index (any order), as a NumPy array."""
        self._spec(name)
        if isinstance(index, slice):
            index = np.arange(self.n_rows)[index]
        index = np.asarray(index, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= self.n_rows):
            raise DimensionError(f"row index out of range for a store of {self.n_rows} rows")
        offsets = self._offsets()
        out = np.empty((index.size, *self._spec(name)["shape"]), dtype=self.manifest["dtype"])
        ordered = bool(np.all(index[1:] >= index[:-1])) if index.size > 1 else True
        order = None if ordered else np.argsort(index, kind="stable")
        sorted_index = index if ordered else index[order]
        target = out if ordered else np.empty_like(out)
        bounds = np.searchsorted(sorted_index, offsets)
        for s in range(len(offsets) - 1):
            a, b = int(bounds[s]), int(bounds[s + 1])
            if a < b:
                # take into the output slice: no temporary (mode="clip": indices were checked above)
                np.take(self._shard(name, s), sorted_index[a:b] - offsets[s], axis=0, out=target[a:b], mode="clip")
        if not ordered:
            out[order] = target
        return out

    def sample_coords(self) -> pd.DataFrame:
        """The sample coordinates of every stored row."""
        frames = []
        for i, shard in enumerate(self.manifest["shards"]):
            if shard.get("coords"):
                frames.append(pd.read_parquet(self.path / "shards" / "_coords" / f"{i:05d}.parquet"))
            else:
                frames.append(pd.DataFrame(index=range(shard["rows"])))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def unit_coords(self, name: str) -> pd.DataFrame | None:
        """The unit coordinates recorded for array ``name``, if any."""
        coords = self.manifest["unit_coords"].get(name)
        return pd.DataFrame(coords) if coords is not None else None

    def read(self, name: str, rows: slice | Sequence[int] | None = None, device: str | torch.device = "cpu") -> Activations:
        """Array ``name`` (all rows, or the selected ones) as :class:`Activations`."""
        spec = self._spec(name)
        index = np.arange(self.n_rows) if rows is None else (np.arange(self.n_rows)[rows] if isinstance(rows, slice) else np.asarray(rows))
        data = torch.from_numpy(self.rows(name, index)).to(device)
        sample = self.sample_coords().iloc[index].reset_index(drop=True) if self.n_rows else None
        coords: dict[str, Any] = {spec["dims"][0]: sample}
        units = self.unit_coords(name)
        if units is not None:
            coords[spec["dims"][-1]] = units
        return Activations(data, spec["dims"], coords, {**self.attrs, "site": name})

    def minibatches(
        self,
        name: str,
        batch_size: int = 4096,
        *,
        shuffle: bool = True,
        seed: int | None = 0,
        drop_last: bool = False,
        device: str | torch.device = "cpu",
        epochs: int = 1,
    ) -> Iterator[torch.Tensor]:
        """Random-access minibatches of array ``name`` as tensors (for training SAEs and probes)."""
        self._spec(name)
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        rng = np.random.default_rng(seed)
        for _ in range(epochs):
            order = rng.permutation(self.n_rows) if shuffle else np.arange(self.n_rows)
            for start in range(0, self.n_rows, batch_size):
                idx = order[start : start + batch_size]
                if drop_last and idx.size < batch_size:
                    break
                if shuffle:  # the order inside a random minibatch carries no information; sorted reads are faster
                    idx = np.sort(idx)
                yield torch.from_numpy(self.rows(name, idx)).to(device)

    # ------------------------------------------------------------------- export
    def to_parquet(self, name: str, path: str | os.PathLike) -> Path:
        """Write array ``name`` with its sample coordinates to one parquet file (one row per sample)."""
        frame = self.sample_coords()
        values = self.rows(name, slice(None)).reshape(self.n_rows, -1)
        frame = frame.assign(values=list(values)) if len(frame) else pd.DataFrame({"values": list(values)})
        path = Path(path)
        atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))
        return path

    def to_dataset(self, name: str):
        """Array ``name`` as a Hugging Face :class:`datasets.Dataset` (streamed shard by shard)."""
        import datasets

        coords = self.sample_coords()
        spec = self._spec(name)

        def rows():
            for i, shard in enumerate(self.manifest["shards"]):
                block = self._shard(name, i)
                for j in range(shard["rows"]):
                    row = {"values": block[j]}
                    if len(coords.columns):
                        row.update(coords.iloc[shard["start"] + j].to_dict())
                    yield row

        ds = datasets.Dataset.from_generator(rows)
        ds.info.description = json.dumps({"site": name, "dims": spec["dims"], "attrs": self.attrs})
        return ds
