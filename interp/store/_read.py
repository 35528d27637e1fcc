"""Reading an activation store: checked shards, row gathers, coordinates, shuffled minibatches, exports.

:class:`StoreReader` is the read side of :class:`interp.store.ActivationStore` (see that module for the
layout and guarantees): every shard file's size is checked against the manifest when a store is opened,
and each shard's header and checksum on its first read, so that a damaged file raises
:class:`~interp.errors.CorruptFileError` and is never read.

Example
-------
>>> store = ActivationStore.open("/tmp/acts")                    # doctest: +SKIP
>>> x = store.rows("blocks.3.mlp.hook_post", [0, 5, 7])          # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .._integrity import ALGORITHM, checksum
from ..errors import ConfigError, CorruptFileError, DimensionError, closest
from ..tensor import Activations, atomic_write
from ._manifest import safe_name as _safe
from ._ranks import rank_range

__all__ = ["StoreReader"]


class StoreReader:
    """The read side of an activation store: a directory ``path`` described by its ``manifest``."""

    def __init__(self, path: str | os.PathLike, manifest: dict[str, Any]) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self._memmaps: dict[tuple[str, int], np.ndarray] = {}
        self._coords_ok: set[int] = set()
        self._bounds: np.ndarray | None = None

    # ---------------------------------------------------------------- properties
    @property
    def arrays(self) -> list[str]:
        """Names of the stored arrays (e.g. hook names)."""
        return list(self.manifest["arrays"])

    @property
    def n_rows(self) -> int:
        """Number of rows stored in each array (for a rank before the commit: its own rows)."""
        return int(self.manifest["n_rows"])

    def __len__(self) -> int:
        return self.n_rows

    @property
    def inputs_done(self) -> int:
        """How many inputs of the producing job are fully stored (for a rank before the commit: of its own
        inputs); what a resumed job skips."""
        return int(self.manifest["inputs_done"])

    @property
    def complete(self) -> bool:
        """True once the producing job called :meth:`finish` (on every rank)."""
        return bool(self.manifest.get("complete"))

    @property
    def fingerprint(self) -> dict[str, Any] | None:
        """What the store was made from (see :func:`fingerprint`), if recorded."""
        return self.manifest.get("fingerprint")

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


    # ------------------------------------------------------------------- checks
    def _reset(self) -> None:
        self._memmaps.clear()
        self._coords_ok.clear()
        self._bounds = None

    def _file(self, name: str, i: int) -> Path:
        shard = self.manifest["shards"][i]
        return self.path / "shards" / _safe(name) / f"{shard.get('name', f'{i:05d}')}.npy"

    def _damaged(self, file: Path, problem: str) -> CorruptFileError:
        return CorruptFileError(
            f"the store at {self.path} is damaged: {file.relative_to(self.path)} {problem}. Its rows cannot be trusted; "
            "restore the file from a copy, or recompute the store (rerun with overwrite=True)."
        )

    def _check_files(self) -> None:
        """Every listed shard file exists and has the size it was written with: one ``stat`` per file, so a
        shorter (or longer) file is refused when the store is opened, before anything is read. Its header
        (dtype, row count, row shape) and checksum are checked on its first read (:meth:`_shard`).
        Stores written before sizes were recorded get their headers read now instead."""
        itemsize = np.dtype(self.manifest["dtype"]).itemsize
        row_bytes = [int(np.prod(self.manifest["arrays"][name]["shape"])) * itemsize for name in self.arrays]
        root = self.path.resolve()
        for j, name in enumerate(self.arrays):
            folder = (self.path / "shards" / _safe(name)).resolve()
            if self.manifest["shards"] and root not in folder.parents:
                raise self._damaged(self.path / "shards" / _safe(name), "lies outside the store (a symbolic link or a bad array name)")
            for i, shard in enumerate(self.manifest["shards"]):
                file = self._file(name, i)
                try:
                    size = os.stat(file).st_size
                except FileNotFoundError:
                    raise self._damaged(file, "is missing") from None
                if "bytes" not in shard:
                    self._check_header(file, name, shard, size)
                    continue
                if size != shard["bytes"][j]:
                    raise self._damaged(file, f"has {size} bytes, {shard['bytes'][j]} were written for its {shard['rows']} rows "
                                              "(truncated or appended to)")
                header = size - int(shard["rows"]) * row_bytes[j]
                if header <= 0 or header % 64:  # a .npy header pads the data's offset to a multiple of 64 bytes
                    raise self._damaged(file, f"has {size} bytes, which cannot hold the {shard['rows']} rows the manifest "
                                              "lists for it (the manifest or the file was changed)")
        for i, shard in enumerate(self.manifest["shards"]):
            file = self.path / "shards" / "_coords" / f"{shard.get('name', f'{i:05d}')}.parquet"
            if shard.get("coords") and not file.exists():
                raise self._damaged(file, "is missing")

    def _check_header(self, file: Path, name: str, shard: dict[str, Any], size: int) -> None:
        dtype = np.dtype(self.manifest["dtype"])
        expect = (int(shard["rows"]), *self.manifest["arrays"][name]["shape"])
        try:
            with open(file, "rb") as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, fortran, found = read(f)
                offset = f.tell()
        except (OSError, ValueError) as exc:
            raise self._damaged(file, f"has no valid .npy header ({exc})") from exc
        if found != dtype or tuple(shape) != expect or fortran:
            raise self._damaged(file, f"holds {tuple(shape)} {found}, the manifest says {expect} {dtype}")
        if size != offset + int(np.prod(expect)) * dtype.itemsize:
            raise self._damaged(file, f"has {size} bytes, {offset + int(np.prod(expect)) * dtype.itemsize} expected for "
                                      f"{expect[0]} rows (truncated or appended to)")

    def verify(self) -> StoreReader:
        """Check every shard's checksum now (reads the whole store once); raises :class:`CorruptFileError`."""
        for name in self.arrays:
            for i in range(len(self.manifest["shards"])):
                self._shard(name, i)
        self.sample_coords()
        return self

    # --------------------------------------------------------------------- read
    def _shard(self, name: str, i: int) -> np.ndarray:
        key = (name, i)
        block = self._memmaps.get(key)
        if block is None:
            file, shard = self._file(name, i), self.manifest["shards"][i]
            try:
                mm = np.load(file, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise self._damaged(file, f"cannot be read ({exc})") from exc
            expect = (int(shard["rows"]), *self.manifest["arrays"][name]["shape"])
            if mm.shape != expect or mm.dtype != np.dtype(self.manifest["dtype"]):
                raise self._damaged(file, f"holds {mm.shape} {mm.dtype}, the manifest says {expect} {self.manifest['dtype']}")
            sums = shard.get("sums")
            if sums is not None:
                got = checksum(mm)
                want = sums[self.arrays.index(name)]
                if got != want:
                    raise self._damaged(file, f"has {ALGORITHM} checksum {got}, {want} was recorded when it was written "
                                              "(flipped bits or a partial copy)")
            # a plain ndarray view of the memmap: fancy indexing skips the memmap subclass machinery
            block = self._memmaps[key] = np.asarray(mm)
        return block

    def _offsets(self) -> np.ndarray:
        if self._bounds is None:
            self._bounds = np.array([s["start"] for s in self.manifest["shards"]] + [self.n_rows], dtype=np.int64)
        return self._bounds

    def rows(self, name: str, index: Sequence[int] | np.ndarray | slice) -> np.ndarray:
        """Rows of array ``name`` by global row index (any order), as a NumPy array."""
        spec = self._spec(name)
        if isinstance(index, slice):
            index = np.arange(self.n_rows)[index]
        index = np.asarray(index, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= self.n_rows):
            raise DimensionError(f"row index out of range for a store of {self.n_rows} rows")
        offsets = self._offsets()
        out = np.empty((index.size, *spec["shape"]), dtype=self.manifest["dtype"])
        ordered = bool(np.all(index[1:] >= index[:-1])) if index.size > 1 else True
        order = None if ordered else np.argsort(index, kind="stable")
        sorted_index = index if ordered else index[order]
        target = out if ordered else np.empty_like(out)
        bounds = np.searchsorted(sorted_index, offsets)
        for s in range(len(offsets) - 1):
            a, b = int(bounds[s]), int(bounds[s + 1])
            if a < b:
                block = self._shard(name, s)
                if int(sorted_index[b - 1]) - int(offsets[s]) >= len(block):  # never clip: refuse instead
                    raise self._damaged(self._file(name, s), f"holds {len(block)} rows, row {int(sorted_index[b - 1])} of the "
                                                             f"store would lie beyond them")
                # take into the output slice, no temporary; mode="clip" never clips (checked just above)
                np.take(block, sorted_index[a:b] - offsets[s], axis=0, out=target[a:b], mode="clip")
        if not ordered:
            out[order] = target
        return out

    def _coords(self, i: int) -> pd.DataFrame:
        shard = self.manifest["shards"][i]
        if not shard.get("coords"):
            return pd.DataFrame(index=range(shard["rows"]))
        file = self.path / "shards" / "_coords" / f"{shard.get('name', f'{i:05d}')}.parquet"
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise self._damaged(file, f"cannot be read ({exc})") from exc
        if i not in self._coords_ok and shard.get("coords_sum") not in (None, got := checksum(data)):
            raise self._damaged(file, f"has {ALGORITHM} checksum {got}, {shard['coords_sum']} was recorded when it was written")
        try:
            frame = pd.read_parquet(io.BytesIO(data))
        except Exception as exc:  # pyarrow's ArrowInvalid and friends
            raise self._damaged(file, f"is not a readable parquet file ({exc})") from exc
        if len(frame) != shard["rows"]:
            raise self._damaged(file, f"has {len(frame)} rows, the manifest says {shard['rows']}")
        self._coords_ok.add(i)
        return frame

    def sample_coords(self) -> pd.DataFrame:
        """The sample coordinates of every stored row."""
        frames = [self._coords(i) for i in range(len(self.manifest["shards"]))]
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
        rank: int = 0,
        world_size: int = 1,
    ) -> Iterator[torch.Tensor]:
        """Minibatches of array ``name`` as tensors (for training SAEs and probes), streamed from disk.

        With ``shuffle`` epoch ``e`` draws a global permutation of all rows from ``seed + e`` (same seed,
        same order; ``epochs=2`` reads what ``seed`` then ``seed + 1`` read) and each minibatch is gathered
        shard by shard in sorted row order, so only the minibatch is in memory. ``batch_size`` is the global
        minibatch: with ``world_size`` > 1 rank ``r`` gets the ``r``-th contiguous part
        (:func:`~interp.store.rank_range`) of every sorted global minibatch, so the ranks read disjoint rows
        (each from fewer shards), yield the same number of batches, and their union is the one-process
        minibatch.

        >>> for x in store.minibatches("blocks.3.mlp.hook_post", 4096, seed=0, rank=r, world_size=n): ...  # doctest: +SKIP
        """
        self._spec(name)
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        if not (world_size >= 1 and 0 <= rank < world_size):
            raise ConfigError(f"rank must be in [0, world_size), got rank {rank}, world_size {world_size}")
        for epoch in range(epochs):
            rng = np.random.default_rng(None if seed is None else seed + epoch)
            order = rng.permutation(self.n_rows) if shuffle else np.arange(self.n_rows)
            for start in range(0, self.n_rows, batch_size):
                idx = order[start : start + batch_size]
                if drop_last and idx.size < batch_size:
                    break
                if shuffle:  # the order inside a random minibatch carries no information; sorted reads are faster
                    idx = np.sort(idx)
                if world_size > 1:
                    part = rank_range(idx.size, rank, world_size)
                    idx = idx[part.start : part.stop]
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
        view = StoreReader(self.path, self.manifest)  # a plain reader: datasets pickles the generator

        def rows():
            for i, shard in enumerate(view.manifest["shards"]):
                block = view._shard(name, i)
                for j in range(shard["rows"]):
                    row = {"values": block[j]}
                    if len(coords.columns):
                        row.update(coords.iloc[shard["start"] + j].to_dict())
                    yield row

        ds = datasets.Dataset.from_generator(rows)
        ds.info.description = json.dumps({"site": name, "dims": spec["dims"], "attrs": self.attrs})
        return ds
