"""Writing MATLAB v7.3 (HDF5) files the way MATLAB lays them out, for the loader tests.

MATLAB stores arrays column-major, so HDF5 sees them transposed; every variable carries a
``MATLAB_class`` attribute; a 1 x 1 struct is a group; a struct array is a group whose fields are
arrays of object references (no ``MATLAB_class``) into ``#refs#``; a char array is uint16 codes; the
file starts with a 512-byte user block holding the "MATLAB 7.3 MAT-file" header. (Checked against
files written by MATLAB R2019-R2023 in the public test suite of the ``mat73`` package.)
"""

from __future__ import annotations

import itertools
from typing import Any

import h5py
import numpy as np

_CLASSES = {np.dtype(np.float64): "double", np.dtype(np.float32): "single", np.dtype(np.uint8): "uint8",
            np.dtype(np.int8): "int8", np.dtype(np.uint16): "uint16", np.dtype(np.int16): "int16",
            np.dtype(np.int32): "int32", np.dtype(np.uint32): "uint32", np.dtype(np.int64): "int64",
            np.dtype(np.uint64): "uint64"}


def write_mat73(path: str, variables: dict[str, Any]) -> None:
    """Write ``variables`` (2-D arrays in MATLAB's shape, str, dict = struct, list of dicts = 1 x N struct array)."""
    counter = itertools.count()
    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")

        def put(group: h5py.Group, name: str, value: Any) -> Any:
            if isinstance(value, dict):
                g = group.create_group(name)
                g.attrs["MATLAB_class"] = np.bytes_("struct")
                for key, item in value.items():
                    put(g, key, item)
                return g
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                g = group.create_group(name)
                g.attrs["MATLAB_class"] = np.bytes_("struct")
                for key in value[0]:
                    targets = [put(refs, f"r{next(counter)}", v[key]).ref for v in value]
                    g.create_dataset(key, data=np.array(targets, dtype=h5py.ref_dtype).reshape(len(value), 1))
                return g
            if isinstance(value, str):
                ds = group.create_dataset(name, data=np.array([ord(c) for c in value], dtype=np.uint16).reshape(-1, 1))
                ds.attrs["MATLAB_class"] = np.bytes_("char")
                ds.attrs["MATLAB_int_decode"] = np.int32(2)
                return ds
            array = np.asarray(value)
            if array.ndim < 2:
                array = array.reshape(1, -1)
            if array.dtype == bool:
                ds = group.create_dataset(name, data=array.T.astype(np.uint8))
                ds.attrs["MATLAB_class"] = np.bytes_("logical")
                ds.attrs["MATLAB_int_decode"] = np.int32(1)
                return ds
            ds = group.create_dataset(name, data=array.T)
            ds.attrs["MATLAB_class"] = np.bytes_(_CLASSES[array.dtype])
            return ds

        for name, value in variables.items():
            put(f, name, value)
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    block = header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as raw:
        raw.write(block.ljust(128, b"\x00"))
