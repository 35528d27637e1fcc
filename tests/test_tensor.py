"""Activations: selection, alignment, flattening, reductions, conversions and save/load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import interp
from interp import Activations


@pytest.fixture
def acts():
    data = torch.arange(24, dtype=torch.float32).reshape(4, 2, 3)
    return Activations(
        data,
        ("sample", "pos", "unit"),
        coords={
            "sample": {"stimulus": ["s0", "s1", "s2", "s3"], "condition": ["a", "b", "a", "b"]},
            "unit": {"site": ["x", "x", "y"], "name": ["x0", "x1", "y0"]},
        },
        attrs={"source": "test", "kind": "model"},
    )


def test_construction_validates_dims():
    with pytest.raises(interp.DimensionError, match="2 axes"):
        Activations(torch.zeros(2, 3), ("sample",))
    with pytest.raises(interp.DimensionError, match="3 rows"):
        Activations(torch.zeros(2, 3), ("sample", "unit"), coords={"sample": {"id": [1, 2, 3]}})
    with pytest.raises(interp.DimensionError, match="not in dims"):
        Activations(torch.zeros(2, 3), ("sample", "unit"), coords={"time": {"t": [1, 2]}})


def test_sel_by_value_list_glob_and_callable(acts):
    assert acts.sel(condition="a").coord("stimulus").tolist() == ["s0", "s2"]
    assert acts.sel(name=["x1", "y0"]).shape == (4, 2, 2)
    assert acts.sel(site="x*").shape == (4, 2, 2)
    sel = acts.sel(stimulus=lambda v: np.isin(v, ["s3"]))
    assert torch.equal(sel.data, acts.data[3:4])
    with pytest.raises(interp.DimensionError, match="did you mean 'condition'"):
        acts.sel(conditon="a")
    with pytest.raises(interp.DimensionError, match="no sample has"):
        acts.sel(condition="zzz")


def test_isel_int_drops_dim(acts):
    one = acts.isel(pos=1)
    assert one.dims == ("sample", "unit")
    assert torch.equal(one.data, acts.data[:, 1])
    with pytest.raises(interp.DimensionError):
        acts.isel(pos=5)


def test_flatten_and_reductions(acts):
    flat = acts.flatten(("sample", "pos"), into="sample")
    assert flat.shape == (8, 3)
    assert flat.coord("stimulus").tolist() == ["s0", "s0", "s1", "s1", "s2", "s2", "s3", "s3"]
    assert flat.coord("pos_index").tolist() == [0, 1] * 4
    assert torch.equal(flat.data, acts.data.reshape(8, 3))
    m = acts.mean("pos")
    assert m.dims == ("sample", "unit") and torch.allclose(m.data, acts.data.mean(1))
    assert torch.allclose(acts.std(["sample", "pos"]).data, acts.data.reshape(8, 3).std(0))
    assert torch.equal(acts.max("sample").data, acts.data.amax(0))


def test_align_reorders_and_reports_unmatched(acts):
    other = Activations(torch.arange(4.0)[[2, 0, 3, 1]][:, None], ("sample", "unit"),
                        coords={"sample": {"stimulus": ["s2", "s0", "s3", "s1"]}})
    a, b = acts.align(other, on="stimulus")
    assert b.coord("stimulus").tolist() == ["s0", "s1", "s2", "s3"]
    assert b.data[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0]
    bad = Activations(torch.zeros(2, 1), ("sample", "unit"), coords={"sample": {"stimulus": ["s0", "zz"]}})
    with pytest.raises(interp.MismatchError, match="zz"):
        acts.align(bad, on="stimulus")


def test_nan_policy():
    data = torch.ones(5, 4)
    data[1, 2] = float("nan")
    data[3, 2] = float("nan")
    rec = Activations(data, ("sample", "unit"), attrs={"source": "rec"})
    with pytest.raises(interp.NaNError, match="2 NaN/inf values in 1 of 4 units"):
        rec.check_finite()
    dropped = rec.check_finite("drop")
    assert dropped.shape == (5, 3) and dropped.attrs["dropped_nan"] == 1
    assert torch.isfinite(rec.check_finite("zero").data).all()


def test_save_load_roundtrip_bit_exact(tmp_path, acts):
    path = acts.save(tmp_path / "a.safetensors")
    back = Activations.load(path)
    assert back.equals(acts) and back.attrs == acts.attrs
    assert not list(tmp_path.glob(".*tmp"))


def test_xarray_frame_numpy_roundtrip(acts):
    xr_back = Activations.from_xarray(acts.to_xarray())
    assert torch.equal(xr_back.data, acts.data) and xr_back.coord("stimulus").tolist() == acts.coord("stimulus").tolist()
    frame = acts.to_frame()
    assert len(frame) == 24 and frame["value"].sum() == acts.data.sum().item()
    wide = pd.DataFrame({"id": ["a", "b"], "cond": ["x", "y"], "u1": [1.0, 2.0], "u2": [3.0, 4.0]})
    fw = Activations.from_frame(wide, sample="id")
    assert fw.shape == (2, 2) and fw.coord("id").tolist() == ["a", "b"] and fw.coord("name").tolist() == ["u1", "u2"]
    with pytest.raises(interp.InputTypeError):
        Activations.from_numpy([1, 2], ("unit",))


def test_dataset_roundtrip(acts):
    ds = acts.to_dataset()
    assert len(ds) == 4 and "stimulus" in ds.column_names
    back = Activations.from_dataset(ds)
    assert back.equals(acts)


def test_concat(acts):
    both = interp.concat([acts, acts.isel(sample=[0])], dim="sample")
    assert both.shape == (5, 2, 3) and both.coord("stimulus").tolist()[-1] == "s0"
    with pytest.raises(interp.DimensionError):
        interp.concat([acts, acts.isel(unit=[0])], dim="sample")


def test_atomic_write_leaves_a_normal_file_and_nothing_half_written(tmp_path):
    import os

    from interp.tensor import atomic_write

    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.txt", lambda tmp: open(tmp, "w").write("done"))
        assert (tmp_path / "a.txt").read_text() == "done"
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644  # not mkstemp's owner-only 0o600

        def fail(tmp):
            open(tmp, "w").write("half")
            raise RuntimeError("interrupted")

        with pytest.raises(RuntimeError):
            atomic_write(tmp_path / "b.txt", fail)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    finally:
        os.umask(old)
