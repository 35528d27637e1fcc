"""Recording formats and intervals (issue 19): suite2p folders, spike times, phy folders, interval sets,
peri-event epochs, and the boundary checks the issue found missing. Fixtures are written to tmp_path in
each format's own layout, with a planted answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import interp
from interp.data import IntervalError, IntervalSet, epochs, from_spike_times, load_phy, load_suite2p, restrict
from interp.data._recording import RecordingShapeError
from interp.errors import SchemaError

RNG = np.random.default_rng(0)


def write_suite2p(folder, n_rois=5, n_frames=600, fs=10.0, seed=0):
    """A suite2p plane0 folder: ROI 1 is not a cell; cell k has a transient of 0.5 dF/F at frame 100 * k + 50."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    dff = np.zeros((n_rois, n_frames))
    for k in range(n_rois):
        dff[k, 100 * k + 50: 100 * k + 60] = 0.5
    fneu = 50 + 5 * rng.random((n_rois, n_frames))
    F = 200 * (1 + dff) + 0.7 * fneu
    np.save(folder / "F.npy", F.astype(np.float32))
    np.save(folder / "Fneu.npy", fneu.astype(np.float32))
    iscell = np.c_[np.ones(n_rois), np.linspace(0.9, 0.99, n_rois)]
    iscell[1, 0] = 0
    np.save(folder / "iscell.npy", iscell)
    stat = np.array([{"med": [10 * k, 20 + k], "npix": 40 + k, "ypix": np.arange(3), "xpix": np.arange(3)}
                     for k in range(n_rois)], dtype=object)
    np.save(folder / "stat.npy", stat, allow_pickle=True)
    np.save(folder / "ops.npy", np.array({"fs": fs, "nframes": n_frames}, dtype=object), allow_pickle=True)
    return dff


def test_suite2p_folder_gives_dff_of_the_cells_with_positions(tmp_path):
    planted = write_suite2p(tmp_path / "suite2p" / "plane0")
    rec = load_suite2p(tmp_path / "suite2p")
    assert rec.coord("name").tolist() == ["roi0", "roi2", "roi3", "roi4"] and rec.attrs["dt"] == pytest.approx(0.1)
    np.testing.assert_allclose(rec.numpy(), planted[[0, 2, 3, 4]].T, atol=1e-4)
    assert rec.coord("x").tolist() == [20, 22, 23, 24] and rec.coord("y").tolist() == [0, 20, 30, 40]
    assert len(load_suite2p(tmp_path / "suite2p", cells_only=False).coord("name")) == 5
    with pytest.raises(SchemaError, match="baseline at or below zero"):
        F = np.load(tmp_path / "suite2p/plane0/F.npy")
        np.save(tmp_path / "suite2p/plane0/F.npy", F * 0 + 1)
        load_suite2p(tmp_path / "suite2p")


def test_spike_times_bin_into_counts_and_phy_quality_is_a_unit_coordinate(tmp_path):
    rec = from_spike_times([[0.01, 0.02, 0.31], [0.5]], bin_size=0.1, names=["a", "b"])
    assert rec.numpy()[:, 0].tolist() == [2, 0, 0, 1, 0, 0] and rec.coord("time")[0] == pytest.approx(0.05)
    phy = tmp_path / "ks"
    phy.mkdir()
    times = np.array([100, 200, 30000, 31000, 45000, 60000])  # samples at 30 kHz
    clusters = np.array([3, 3, 7, 3, 9, 7])
    np.save(phy / "spike_times.npy", times.astype(np.uint64))
    np.save(phy / "spike_clusters.npy", clusters.astype(np.int32))
    (phy / "params.py").write_text("dat_path = 'x.bin'\nn_channels_dat = 4\nsample_rate = 30000.0\n")
    (phy / "cluster_group.tsv").write_text("cluster_id\tgroup\n3\tgood\n7\tmua\n9\tnoise\n")
    rec = load_phy(phy, bin_size=0.5)
    assert rec.coord("name").tolist() == ["cluster3", "cluster7"] and rec.coord("quality").tolist() == ["good", "mua"]
    assert rec.numpy().sum(0).tolist() == [3, 2]
    assert load_phy(phy, bin_size=0.5, qualities=None).coord("quality").tolist() == ["good", "mua", "noise"]


def test_interval_sets_restrict_and_epochs_cut_trials_with_a_baseline():
    with pytest.raises(IntervalError, match="overlap"):
        IntervalSet([0, 1], [2, 3])
    t = np.arange(1000) * 0.01
    X = RNG.normal(0, 0.1, (1000, 3)) + 5.0
    events = np.array([1.0, 3.0, 5.0, 7.0])
    for e in events:
        X[(t >= e) & (t < e + 0.2), 1] += 2.0  # unit 1 responds for 200 ms after each event
    rec = interp.data.from_numpy(X, time=t)
    trials = IntervalSet(events - 0.5, events + 0.5, labels={"target": [1.0, 2.0, 1.0, 2.0]})
    inside = restrict(rec, trials)
    assert inside.shape == (400, 3) and inside.attrs["intervals"]["excluded"] == 600
    assert sorted(set(inside.coord("trial").tolist())) == [0, 1, 2, 3] and (inside.coord("trial") >= 0).all()
    ep = epochs(rec, pd.DataFrame({"time": events, "target": [1.0, 2.0, 1.0, 2.0]}), window=(-0.2, 0.5),
                baseline=(-0.2, -0.05))
    assert ep.dims == ("sample", "time", "unit") and ep.shape == (4, 71, 3)
    assert ep.coord("target").tolist() == [1.0, 2.0, 1.0, 2.0] and ep.coord("time", "time")[20] == pytest.approx(0)
    mean = ep.numpy().mean(0)
    assert abs(mean[:20].mean()) < 0.05 and mean[22:38, 1].mean() == pytest.approx(2.0, abs=0.1)
    assert abs(mean[22:38, 0].mean()) < 0.1  # baseline removed the offset of 5
    with pytest.raises(IntervalError, match="run past"):
        epochs(rec, [0.1, 5.0], window=(-0.5, 0.5))
    assert epochs(rec, [0.1, 5.0], window=(-0.5, 0.5), incomplete="drop").attrs["dropped_events"] == [0.1]


def test_boundary_checks_that_were_missing(tmp_path):
    cells_by_time = RNG.random((20, 500))  # 20 cells x 500 frames
    with pytest.raises(RecordingShapeError, match="more units than time points"):
        interp.data.from_numpy(cells_by_time, dims=("time", "unit"))
    assert interp.data.from_numpy(cells_by_time, dims=("unit", "time")).shape == (500, 20)
    # coordinates of the axis that becomes the sample axis, under "sample" as the docstring shows
    rec = interp.data.from_numpy(cells_by_time, dims=("unit", "time"), coords={"sample": {"speed": np.arange(500.0)}})
    assert rec.coord("speed")[3] == 3.0
    # empty trials of a struct are said, not silently dropped
    from scipy.io import savemat

    trials = np.zeros((1, 3), dtype=[("rates", object), ("target", object)])
    for i, n in enumerate([5, 0, 4]):
        trials[0, i] = (RNG.random((n, 2)) if n else np.zeros((0, 0)), float(i + 1))
    savemat(tmp_path / "t.mat", {"trials": trials})
    with pytest.warns(UserWarning, match="1 empty trial"):
        rec = interp.data.load_mat(tmp_path / "t.mat", "trials", field="rates", dims=("time", "unit"))
    assert rec.attrs["empty_trials"] == [2] and rec.coord("trial").tolist() == [0] * 5 + [2] * 4


def test_celegans_canonical_names_identify_one_unit_per_worm():
    """Worm 3 labels two traces URADL; pooling by canonical name needs one unit per name (the surer one)."""
    from interp.errors import DataNotFoundError

    try:
        worms = interp.data.load("celegans")
    except DataNotFoundError as exc:
        pytest.skip(f"celegans data absent: {exc}")
    for worm in worms:
        canonical = worm.coords["unit"]["canonical"]
        named = canonical[canonical != ""]
        assert named.is_unique
    uradl = worms[3].coords["unit"].query("name == 'URADL'")
    assert uradl["canonical"].tolist() == ["URADL", ""] and uradl["confidence"].tolist() == [5.0, 3.0]


def test_spike_times_outside_start_end_are_not_counted_in_the_edge_bins():
    # bins are aligned on multiples of bin_size, so the first bin [0.0, 0.1) reaches before start=0.05 and the
    # last [0.2, 0.3) past end=0.25: the spikes at 0.01 and 0.29 are outside [start, end] and must not count
    rec = from_spike_times([[0.01, 0.06, 0.22, 0.29]], bin_size=0.1, start=0.05, end=0.25)
    assert rec.numpy()[:, 0].tolist() == [1.0, 0.0, 1.0]


def test_phy_folder_without_spikes_is_a_named_error(tmp_path):
    np.save(tmp_path / "spike_times.npy", np.zeros(0, np.uint64))
    np.save(tmp_path / "spike_clusters.npy", np.zeros(0, np.int32))
    (tmp_path / "params.py").write_text("sample_rate = 30000.0\n")
    with pytest.raises(SchemaError, match="no spikes"):
        load_phy(tmp_path, bin_size=0.5)
