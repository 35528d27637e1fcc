"""Bring your own recording: from_numpy/from_xarray/load_mat/load_nwb, shape checks at the boundary, register.

References: the arrays themselves (values must come back exactly, transposed where the axes say so),
scipy.io for MATLAB v5, files laid out as MATLAB v7.3 writes them (tests/matfiles.py), pynwb for NWB.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from matfiles import write_mat73
from scipy.io import savemat

import interp
import interp.data as D
from interp import ConfigError, DimensionError, InputTypeError
from interp.data import RecordingShapeError

RNG = np.random.default_rng(0)
CELLS_BY_TIME = RNG.random((6, 40))          # 6 cells x 40 frames
T = np.arange(40) * 0.05                      # 20 Hz


# --------------------------------------------------------------------------- from_numpy
def test_cells_by_time_needs_dims_and_is_transposed_when_named():
    with pytest.raises(RecordingShapeError, match=r"6 samples x 40 units.*dims=\('unit', 'time'\)"):
        D.from_numpy(CELLS_BY_TIME)
    with pytest.raises(RecordingShapeError, match="time series"):
        D.from_numpy(CELLS_BY_TIME, time=np.arange(6))
    rec = D.from_numpy(CELLS_BY_TIME, dims=("unit", "time"), time=T,
                       coords={"unit": {"name": [f"c{i}" for i in range(6)]}})
    assert rec.dims == ("sample", "unit") and rec.shape == (40, 6)
    np.testing.assert_array_equal(rec.numpy(), CELLS_BY_TIME.T)
    np.testing.assert_array_equal(rec.coord("time"), T)
    assert rec.attrs["dt"] == pytest.approx(0.05) and rec.attrs["kind"] == "recording"
    assert list(rec.coord("name")) == [f"c{i}" for i in range(6)]
    # an explicit ('sample', 'unit') says rows are samples: stimuli x voxels stay as given
    assert D.from_numpy(CELLS_BY_TIME, dims=("sample", "unit")).shape == (6, 40)


def test_coordinate_on_the_wrong_axis_says_transposed():
    with pytest.raises(RecordingShapeError, match="time has 6 values but axis 'sample' has 40.*length of axis 'unit'.*transposed"):
        D.from_numpy(CELLS_BY_TIME.T, time=np.arange(6))
    with pytest.raises(RecordingShapeError, match="coordinate 'name' of axis 'unit' has 6 values, the length of axis "
                                                  "'sample', not of 'unit' \\(40\\).*transposed"):
        D.from_numpy(CELLS_BY_TIME, dims=("sample", "unit"), coords={"unit": {"name": np.arange(6)}})
    with pytest.raises(RecordingShapeError, match="trial has 6 values.*axis 'unit'"):
        D.from_numpy(CELLS_BY_TIME.T, trial=np.arange(6))
    with pytest.raises(RecordingShapeError, match="has 7 values but the axis has 40"):
        D.from_numpy(CELLS_BY_TIME.T, coords={"sample": {"stimulus": np.arange(7)}})


def test_integer_counts_become_float32_exactly():
    counts = RNG.integers(0, 255, size=(50, 4)).astype(np.uint8)
    rec = D.from_numpy(counts)
    assert rec.dtype == interp.Activations(np.zeros(1, np.float32), ("sample",)).dtype
    np.testing.assert_array_equal(rec.numpy(), counts.astype(np.float32))
    assert rec.attrs["original_dtype"] == "uint8"
    assert D.from_numpy(np.array([[True, False]]), dims=("sample", "unit")).numpy().tolist() == [[1.0, 0.0]]
    with pytest.raises(InputTypeError, match="float32 cannot represent exactly"):
        D.from_numpy(np.array([[2 ** 30, 1], [0, 1], [1, 1]], dtype=np.int64))
    with pytest.raises(InputTypeError, match="complex"):
        D.from_numpy(np.ones((3, 2), dtype=complex))
    assert D.from_numpy(np.ones((3, 2))).dtype == interp.Activations(np.ones(1), ("sample",)).dtype  # float64 kept


def test_trial_axis_and_per_sample_trial_ids():
    cube = RNG.random((5, 30, 8))  # unit x time x trial, MATLAB style
    rec = D.from_numpy(cube, dims=("unit", "time", "trial"), time=np.arange(30) * 0.01, trial=np.arange(8) + 100)
    assert rec.dims == ("sample", "time", "unit") and rec.shape == (8, 30, 5)
    np.testing.assert_array_equal(rec.numpy(), cube.transpose(2, 1, 0))
    assert rec.coord("trial").tolist() == list(range(100, 108)) and rec.attrs["dt"] == pytest.approx(0.01)
    plain = D.from_numpy(cube.transpose(2, 1, 0), dims=("trial", "time", "unit"))
    assert plain.coord("trial").tolist() == list(range(8)) and plain.attrs["sample_axis"] == "trial"
    series = D.from_numpy(RNG.random((60, 3)), trial=np.repeat(np.arange(6), 10), time=np.arange(60) * 0.1)
    assert series.coords["sample"]["trial"].tolist() == np.repeat(np.arange(6), 10).tolist()
    with pytest.raises(DimensionError, match="both 'trial' and 'sample'"):
        D.from_numpy(cube, dims=("unit", "sample", "trial"))
    with pytest.raises(DimensionError, match="no 'unit' axis"):
        D.from_numpy(cube, dims=("cell", "time", "trial"))
    with pytest.raises(DimensionError, match="3 axes"):
        D.from_numpy(cube, dims=("unit", "time"))


def test_from_xarray_renames_axes_and_keeps_coordinates():
    da = xr.DataArray(CELLS_BY_TIME, dims=("neuron", "frame"),
                      coords={"frame": T, "neuron": [f"n{i}" for i in range(6)], "depth": ("neuron", np.arange(6.0))},
                      attrs={"units": "dF/F"}, name="dff")
    rec = D.from_xarray(da, dims={"neuron": "unit", "frame": "time"})
    assert rec.dims == ("sample", "unit")
    np.testing.assert_array_equal(rec.numpy(), CELLS_BY_TIME.T)
    np.testing.assert_array_equal(rec.coord("time"), T)
    assert list(rec.coord("name")) == [f"n{i}" for i in range(6)] and rec.coord("depth").tolist() == list(range(6))
    assert rec.attrs["units"] == "dF/F" and rec.attrs["source"] == "dff"
    ds = xr.Dataset({"dff": da, "other": da * 2})
    assert D.from_xarray(ds, dims={"neuron": "unit", "frame": "time"}, variable="dff").equals(rec)
    with pytest.raises(ConfigError, match="pass variable"):
        D.from_xarray(ds)
    with pytest.raises(DimensionError, match="no 'unit' axis"):
        D.from_xarray(da)
    with pytest.raises(DimensionError, match="not axes of the array"):
        D.from_xarray(da, dims={"cell": "unit"})


def test_table_time_and_trial_columns_are_sample_coordinates(tmp_path):
    import pandas as pd

    table = pd.DataFrame({"time": np.arange(6) * 0.5, "trial": [0, 0, 0, 1, 1, 1], "n1": RNG.random(6), "n2": RNG.random(6)})
    table.to_csv(tmp_path / "t.csv", index=False)
    rec = D.load_csv(tmp_path / "t.csv")
    assert list(rec.coord("name")) == ["n1", "n2"] and rec.coord("trial").tolist() == [0, 0, 0, 1, 1, 1]
    assert rec.attrs["dt"] == 0.5
    np.testing.assert_allclose(rec.numpy(), table[["n1", "n2"]].to_numpy(), rtol=1e-6)


# ------------------------------------------------------------------------------ register
def test_register_and_load_by_name(monkeypatch):
    monkeypatch.setattr(D, "_REGISTRY", dict(D._REGISTRY))

    def session(day: int = 1):
        return D.from_numpy(np.full((10, 2), float(day)), attrs={"source": f"day{day}"})

    D.register("lab-session", session)
    assert "lab-session" in D.available()
    assert D.load("lab-session", day=3).numpy()[0, 0] == 3.0
    with pytest.raises(ConfigError, match="already registered"):
        D.register("lab-session", session)
    D.register("lab-session", lambda: D.from_numpy(np.zeros((4, 2))), overwrite=True)
    assert D.load("lab-session").shape == (4, 2)
    with pytest.raises(ConfigError, match="built-in"):
        D.register("celegans", session, overwrite=True)
    D.register("lazy", "interp.decompose.synthetic:planted_assemblies")  # imported on first use
    assert D.load("lazy", n_units=20, n_samples=50, n_assemblies=1, size=5).recording.shape == (50, 20)
    D.register("broken", "interp.nowhere:thing")
    with pytest.raises(ConfigError, match="cannot be imported"):
        D.load("broken")
    with pytest.raises(ConfigError, match="module:function"):
        D.register("bad", "no_colon")
    with pytest.raises(InputTypeError):
        D.register("bad", 42)
    with pytest.raises(ConfigError, match="did you mean 'lab-session'.*register"):
        D.load("lab-sesion")


# ---------------------------------------------------------------------------------- MATLAB
def _contents():
    x, y = RNG.uniform(0, 100, 6), RNG.uniform(0, 100, 6)
    lengths = [12, 12, 12]
    trials = [{"rates": RNG.random((n, 6)), "target": np.array([[float(i % 2 + 1)]]), "label": f"t{i}",
               "t": (np.arange(n) * 0.02).reshape(1, -1)} for i, n in enumerate(lengths)]
    ragged = [dict(tr, rates=RNG.random((n, 6)), t=(np.arange(n) * 0.02).reshape(1, -1))
              for tr, n in zip(trials, [10, 12, 7])]
    return {"dff": CELLS_BY_TIME, "t": T.reshape(1, -1), "cell_x": x.reshape(-1, 1), "cell_y": y.reshape(-1, 1),
            "session": {"traces": CELLS_BY_TIME, "rate": np.array([[20.0]]), "animal": "fish3"},
            "trials": trials, "ragged": ragged, "spikes": RNG.integers(0, 5, size=(6, 40)).astype(np.uint8)}


def _write_v5(path, contents):
    out = dict(contents)
    for name in ("trials", "ragged"):
        items = contents[name]
        arr = np.zeros((1, len(items)), dtype=[(k, "O") for k in items[0]])
        for i, item in enumerate(items):
            for k, v in item.items():
                arr[0, i][k] = v
        out[name] = arr
    savemat(path, out)


@pytest.fixture(scope="module")
def matfiles(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mat")
    contents = _contents()
    _write_v5(folder / "v5.mat", contents)
    write_mat73(str(folder / "v73.mat"), contents)
    return contents, folder / "v5.mat", folder / "v73.mat"


@pytest.mark.parametrize("version", ["v5", "v73"])
def test_load_mat_matrix_with_time_and_positions(matfiles, version):
    contents, v5, v73 = matfiles
    path = v5 if version == "v5" else v73
    assert D.matlab.is_mat73(path) == (version == "v73")
    rec = D.load_mat(path, "dff", dims=("unit", "time"), time="t", coords={"unit": {"x": "cell_x", "y": "cell_y"}})
    assert rec.dims == ("sample", "unit")
    np.testing.assert_array_equal(rec.numpy(), contents["dff"].T)
    np.testing.assert_array_equal(rec.coord("time"), T)
    np.testing.assert_array_equal(rec.coord("x"), contents["cell_x"].ravel())
    assert rec.attrs["variable"] == "dff" and rec.attrs["format"] == ("mat-v7.3" if version == "v73" else "mat")
    nested = D.load_mat(path, "session.traces", dims=("unit", "time"))
    np.testing.assert_array_equal(nested.numpy(), contents["dff"].T)
    counts = D.load_mat(path, "spikes", dims=("unit", "time"))
    assert counts.attrs["original_dtype"] == "uint8"
    np.testing.assert_array_equal(counts.numpy(), contents["spikes"].T.astype(np.float32))
    with pytest.raises(RecordingShapeError, match="dims=\\('unit', 'time'\\)"):
        D.load_mat(path, "dff")
    with pytest.raises(RecordingShapeError, match="transposed"):
        D.load_mat(path, "dff", dims=("sample", "unit"), time="t")
    with pytest.raises(ConfigError, match="no variable 'dfff'.*did you mean 'dff'"):
        D.load_mat(path, "dfff", dims=("unit", "time"))
    with pytest.raises(ConfigError, match="pass variable"):
        D.load_mat(path)
    with pytest.raises(ConfigError, match="no field 'trace'.*did you mean 'traces'"):
        D.load_mat(path, "session.trace")
    with pytest.raises(ConfigError, match="struct with fields"):
        D.load_mat(path, "session")


@pytest.mark.parametrize("version", ["v5", "v73"])
def test_load_mat_trial_structures(matfiles, version):
    contents, v5, v73 = matfiles
    path = v5 if version == "v5" else v73
    with pytest.raises(ConfigError, match="pass field=.*rates"):
        D.load_mat(path, "trials")
    stacked = D.load_mat(path, "trials", field="rates", dims=("time", "unit"), time="t")
    assert stacked.dims == ("sample", "time", "unit") and stacked.shape == (3, 12, 6)
    np.testing.assert_array_equal(stacked.numpy(), np.stack([tr["rates"] for tr in contents["trials"]]))
    sample = stacked.coords["sample"]
    assert sample["trial"].tolist() == [0, 1, 2] and sample["target"].tolist() == [1.0, 2.0, 1.0]
    assert sample["label"].tolist() == ["t0", "t1", "t2"]
    np.testing.assert_allclose(stacked.coord("time"), np.arange(12) * 0.02)
    flat = D.load_mat(path, "ragged", field="rates", dims=("time", "unit"), time="t")
    assert flat.dims == ("sample", "unit") and flat.shape == (29, 6)
    np.testing.assert_array_equal(flat.numpy(), np.concatenate([tr["rates"] for tr in contents["ragged"]]))
    assert flat.coords["sample"]["trial"].tolist() == [0] * 10 + [1] * 12 + [2] * 7
    assert flat.coords["sample"]["target"].tolist()[9:11] == [1.0, 2.0]
    with pytest.raises(RecordingShapeError, match="stack=False"):
        D.load_mat(path, "ragged", field="rates", dims=("time", "unit"), stack=True)
    with pytest.raises(DimensionError, match="one trial's axes"):
        D.load_mat(path, "trials", field="rates")


def test_v5_and_v73_read_the_same(matfiles):
    _, v5, v73 = matfiles
    a, b = D.read_mat(v5), D.read_mat(v73)
    assert sorted(a) == sorted(b)
    np.testing.assert_array_equal(a["dff"], b["dff"])
    assert a["t"].shape == b["t"].shape == (1, 40)
    assert a["session"]["animal"] == b["session"]["animal"] == "fish3"
    assert a["trials"].shape == b["trials"].shape == (1, 3)
    assert a["trials"][0, 2]["label"] == b["trials"][0, 2]["label"] == "t2"
    table = D.mat_variables(v73).set_index("name")
    assert table.loc["dff", "shape"] == (6, 40) and table.loc["trials", "shape"] == (1, 3)
    assert D.mat_variables(v5).set_index("name").loc["dff", "shape"] == (6, 40)


# ------------------------------------------------------------------------------------- NWB
def test_nwb_trials_and_roi_positions(tmp_path):
    pytest.importorskip("pynwb")
    from datetime import datetime, timezone

    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.ophys import Fluorescence, ImageSegmentation, OpticalChannel, RoiResponseSeries

    nwb = NWBFile(session_description="t", identifier="t", session_start_time=datetime(2020, 1, 1, tzinfo=timezone.utc))
    device = nwb.create_device(name="scope")
    channel = OpticalChannel(name="green", description="g", emission_lambda=520.0)
    plane = nwb.create_imaging_plane(name="plane", optical_channel=channel, description="d", device=device,
                                     excitation_lambda=920.0, imaging_rate=10.0, indicator="GCaMP6s", location="tectum")
    seg = ImageSegmentation()
    ps = seg.create_plane_segmentation(name="rois", description="d", imaging_plane=plane)
    centres = [(2, 3), (10, 5), (6, 12)]
    for cx, cy in centres:
        mask = np.zeros((16, 16))
        mask[cx - 1:cx + 2, cy - 1:cy + 2] = 1.0
        ps.add_roi(image_mask=mask)
    module = nwb.create_processing_module(name="ophys", description="o")
    module.add(seg)
    region = ps.create_roi_table_region(region=[0, 1, 2], description="all")
    signal = RNG.random((50, 3)).astype(np.float32)
    fl = Fluorescence(roi_response_series=RoiResponseSeries(name="dff", data=signal, rois=region, unit="n.a.",
                                                             rate=10.0, starting_time=0.0))
    module.add(fl)
    nwb.add_trial_column(name="target", description="reach target")
    for start, stop, target in [(0.5, 1.5, 1), (2.0, 3.0, 4)]:
        nwb.add_trial(start_time=start, stop_time=stop, target=target)
    with NWBHDF5IO(str(tmp_path / "x.nwb"), "w") as io:
        io.write(nwb)
    everything = D.load_nwb(tmp_path / "x.nwb", series="dff", intervals=None)
    np.testing.assert_array_equal(everything.numpy(), signal)
    time = everything.coord("time")
    expected = np.where((time >= 0.5) & (time < 1.5), 0, np.where((time >= 2.0) & (time < 3.0), 1, -1))
    # samples between trials are excluded (issue 19), never a trial -1 with NaN trial columns
    rec = D.load_nwb(tmp_path / "x.nwb", series="dff")
    np.testing.assert_array_equal(rec.numpy(), signal[expected >= 0])
    assert rec.coord("trial").tolist() == expected[expected >= 0].tolist()
    assert rec.coords["sample"]["target"].tolist() == [1] * 10 + [4] * 10
    assert rec.attrs["intervals"]["excluded"] == 30 and "trial" not in everything.coords["sample"]
    np.testing.assert_allclose(np.c_[rec.coord("x"), rec.coord("y")], np.array(centres, dtype=float))


def test_loaders_are_exported_with_examples():
    for name in ("from_numpy", "from_xarray", "load_nwb", "load_mat", "register", "read_mat"):
        assert ">>>" in getattr(D, name).__doc__, name
