"""Recorded data sets (interp.data) and the generic loaders (interp.data.loaders).

Reference checks: rsatoolbox for the Kriegeskorte RSA number, NumPy/h5py/MNE re-reads of the raw
files, nelpy's published epoch durations for the linear track, known biology (AVA is active during
reversals; mu/beta desynchronisation over motor cortex during movement).
"""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from interp import Activations, ConfigError, DataNotFoundError, DimensionError, MissingDependencyError, NaNError
from interp.cache import shared_dir
from interp.data import available, load
from interp.data import loaders as L
from interp.errors import SchemaError

CELEGANS = shared_dir("data", "celegans_flavell")
EEG = shared_dir("data", "eeg_eegmmidb_s001")
HIPPO = shared_dir("data", "hippocampus_nelpy")
needs_celegans = pytest.mark.skipif(not (CELEGANS / "swf702_with_id").is_dir(),
                                    reason=f"C. elegans data (no licence, not vendored) absent: {CELEGANS}")
needs_eeg = pytest.mark.skipif(not EEG.is_dir(), reason=f"EEGMMIDB files absent: {EEG}")
needs_hippo = pytest.mark.skipif(not HIPPO.is_dir(), reason=f"nelpy example data absent: {HIPPO}")


# ------------------------------------------------------------------------------ registry
def test_registry_lists_the_four_data_sets_and_rejects_unknown_names():
    assert available() == ["celegans", "eegmmidb", "hippocampus", "kriegeskorte92"]
    with pytest.raises(ConfigError, match="did you mean 'kriegeskorte92'"):
        load("kriegeskorte")


# ------------------------------------------------------------------------- kriegeskorte92
@pytest.fixture(scope="module")
def k92():
    return load("kriegeskorte92")


def test_kriegeskorte_images_and_category_labels(k92):
    assert k92.images.shape == (92, 175, 175, 3) and k92.images.dtype == np.uint8
    assert k92.images.std() > 20  # real photographs, not blank
    s = k92.stimuli
    assert s["stimulus"].is_unique and len(s) == 92
    assert s["animacy"].value_counts().to_dict() == {"animate": 48, "inanimate": 44}
    assert s["category4"].value_counts().to_dict() == {"face": 24, "body": 24, "natural": 23, "artificial": 21}
    assert s.loc[s.animacy == "animate", "species"].value_counts().to_dict() == {"human": 24, "nonhuman": 24}
    # the derived labels agree with the paper's own category vectors
    assert (s["face"] == (s["category4"] == "face")).all()
    assert (s["animate"] == (s["animacy"] == "animate")).all()
    assert (s["natural_object"] == (s["category4"] == "natural")).all()
    assert (s["human"] == (s["species"] == "human")).all()
    assert k92.images_tensor().shape == (92, 3, 175, 175)


def test_kriegeskorte_monkey_vs_mean_human_it_matches_rsatoolbox_and_the_paper(k92):
    from rsatoolbox.rdm import RDMs, compare
    from scipy.stats import spearmanr

    humans = k92.select(kind="brain", species="human", subject=lambda v: v > 0)
    assert humans.shape == (8, 92, 92)  # 4 subjects x 2 sessions
    mean_human = humans.data.mean(0).numpy()
    rho = spearmanr(k92.upper("monkey_IT"), mean_human[np.triu_indices(92, 1)])[0]
    reference = compare(RDMs(k92.rdm("monkey_IT")[None]), RDMs(mean_human[None]), method="spearman")[0, 0]
    assert rho == pytest.approx(reference, abs=1e-9)
    assert rho == pytest.approx(0.4389, abs=5e-4)  # "about 0.44" (Kriegeskorte et al. 2008)
    # the paper's Figure 1 hIT RDM is that mean
    np.testing.assert_allclose(k92.rdm("human_IT"), mean_human, atol=1e-6)


def test_kriegeskorte_rdms_are_symmetric_and_the_model_file_copy_of_monkey_it_agrees(k92):
    from scipy.io import loadmat

    data = k92.rdms.numpy()
    np.testing.assert_allclose(data, data.transpose(0, 2, 1), atol=1e-6)
    assert np.abs(np.diagonal(data, axis1=1, axis2=2)).max() < 1e-6
    models = loadmat(str(k92.attrs["path"]) + "/92_modelRDMs.mat")["Models"].ravel()
    monkey = next(m["RDM"] for m in models if str(m["name"].ravel()[0]) == "monkeyIT")
    np.testing.assert_allclose(k92.rdm("monkey_IT"), monkey, atol=1e-6)
    frame = k92.to_frame()
    assert frame["kind"].value_counts().to_dict() == {"behaviour": 16, "brain": 10, "model": 7}
    assert k92.rdms.attrs["kind"] == "recording" and "Neuron" in k92.rdms.attrs["citation"]
    with pytest.raises(ConfigError, match="did you mean 'monkey_IT'"):
        k92.rdm("monkey_it")
    assert k92.plot("human_IT").data[0].z.shape == (92, 92)


# ----------------------------------------------------------------------------- hippocampus
@pytest.fixture(scope="module")
def track():
    return load("hippocampus", environment="linear-track", bin_size=0.1)


@needs_hippo
def test_hippocampus_unit_counts_and_binning_match_numpy(track):
    from interp.data.hippocampus import read_spikes

    assert track.dims == ("sample", "unit") and track.sizes["unit"] == 31
    assert track.attrs["dt"] == 0.1 and track.attrs["kind"] == "recording"
    spikes = read_spikes(HIPPO / "linear-track" / "spikes.mat")
    time = track.coord("time")
    edges = np.r_[time - 0.05, time[-1] + 0.05]
    expected = np.stack([np.histogram(t, edges)[0] for t in spikes["times"]], axis=1)
    np.testing.assert_array_equal(track.numpy(), expected)
    units = track.coords["unit"]
    assert units["name"].is_unique and set(units["tetrode"]) == {1, 3, 4, 9, 10, 13}
    w_maze = load("hippocampus", environment="w-maze", bin_size=1.0)
    assert w_maze.sizes["unit"] == 25  # non-empty clusters (22 if the 3 single-unit tetrodes were skipped)


@needs_hippo
def test_hippocampus_position_speed_and_track_epoch(track):
    from interp.data.hippocampus import read_position

    pos = read_position(HIPPO / "linear-track" / "trajectory.videoPositionTracking")
    s = track.coords["sample"]
    i = 5000
    assert s["x"][i] == pytest.approx(np.interp(s["time"][i], pos["time"], pos["x"]))
    # nelpy's LinearTrackDemo finds a 959 s run on the track between two rest-box periods
    on = s["on_track"].to_numpy()
    assert np.count_nonzero(np.diff(on.astype(int))) == 2
    assert on.sum() * 0.1 == pytest.approx(959.1, abs=2)
    assert s.loc[on, "speed"].median() > 5 * s.loc[~on, "speed"].median()
    running = load("hippocampus", bin_size=0.1, on_track_only=True)
    assert running.sizes["sample"] == on.sum()
    assert np.ptp(s.loc[on, "linear_position"]) > 300  # pixels along the track


def test_hippocampus_bad_options():
    with pytest.raises(ConfigError, match="did you mean 'w-maze'"):
        load("hippocampus", environment="w_maze")
    with pytest.raises(ConfigError, match="bin_size"):
        load("hippocampus", bin_size=0)


# ---------------------------------------------------------------------------------- celegans
@pytest.fixture(scope="module")
def worms():
    return load("celegans")


@needs_celegans
def test_celegans_worms_traces_and_labels(worms):
    import h5py

    assert len(worms) == 7
    for w in worms:
        assert w.dims == ("sample", "unit") and w.sizes["sample"] == 800
        assert 130 <= w.sizes["unit"] <= 146
        assert w.attrs["dt"] == pytest.approx(1 / 1.66, abs=0.01)
        assert w.coords["sample"]["reversal"].dtype == bool
    first = worms[0]
    with h5py.File(CELEGANS / "swf702_with_id" / f"{first.attrs['worm']}-data.h5", "r") as f:
        np.testing.assert_array_equal(first.numpy(), f["gcamp/trace_array"][()].astype(np.float32))
        np.testing.assert_array_equal(first.coord("reversal"), f["behavior/reversal_vec"][()] > 0)
    labels = pd.read_csv(CELEGANS / "labels_csv" / f"{first.attrs['worm']}-labels.csv")
    units = first.coords["unit"].set_index("index")
    assert (units.loc[labels["trace_col"], "name"].to_numpy() == labels["label"].to_numpy()).all()
    assert units.loc[~units.index.isin(labels["trace_col"]), "name"].str.startswith("unk_").all()
    assert load("celegans", worm=first.attrs["worm"]).equals(first)
    assert load("celegans", worm=0).equals(first)


@needs_celegans
def test_celegans_names_agree_with_the_upstream_neuropal_sheet(worms):
    first = worms[0]
    sheet = pd.read_excel(CELEGANS / "neuropal_id_xlsx" / f"{first.attrs['worm']}_NeuronID.xlsx",
                          sheet_name="labels v3 (1st audit)").dropna(subset=["ROI ID"])
    by_roi = dict(zip(sheet["ROI ID"].astype(int), sheet["Neuron Class"].astype(str)))
    units = first.coords["unit"]
    labelled = units[units["neuropal_roi"] >= 0]
    assert len(labelled) == 100
    assert [by_roi[r] for r in labelled["neuropal_roi"]] == labelled["name"].tolist()


@needs_celegans
def test_celegans_ava_is_active_during_reversals(worms):
    # AVA is the command interneuron for backward locomotion (Chalfie et al. 1985; Atanas et al. 2023)
    for w in worms:
        ava = w.sel(canonical=["AVAL", "AVAR"]).numpy().mean(1)
        reversal = w.coord("reversal")
        assert ava[reversal].mean() - ava[~reversal].mean() > 0.2, w.attrs["worm"]


@needs_celegans
def test_celegans_nans_are_counted_or_dropped(tmp_path):
    import h5py

    uid = "2022-07-26-31"
    (tmp_path / "swf702_with_id").mkdir()
    shutil.copytree(CELEGANS / "labels_csv", tmp_path / "labels_csv")
    target = tmp_path / "swf702_with_id" / f"{uid}-data.h5"
    shutil.copy(CELEGANS / "swf702_with_id" / f"{uid}-data.h5", target)
    target.chmod(0o644)
    with h5py.File(target, "r+") as f:
        traces = f["gcamp/trace_array"]
        block = traces[()]
        block[10:15, 3] = np.nan
        block[0, 7] = np.nan
        traces[...] = block
    with pytest.raises(NaNError, match="6 NaN/inf values in 2 of 146 units"):
        load("celegans", root=tmp_path)
    dropped = load("celegans", worm=uid, root=tmp_path, nan_policy="drop")
    assert dropped.sizes["unit"] == 144 and dropped.attrs["dropped_nan"] == 2
    assert not {3, 7} & set(dropped.coord("index"))


def test_celegans_bad_input(tmp_path):
    with pytest.raises(DataNotFoundError):
        load("celegans", root=tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="trace"):
        load("celegans", trace="dff")
    if (CELEGANS / "swf702_with_id").is_dir():
        with pytest.raises(ConfigError, match="no worm '2022-07-26-32'.*did you mean '2022-07-2"):
            load("celegans", worm="2022-07-26-32")
        with pytest.raises(ConfigError, match="out of range"):
            load("celegans", worm=7)


# --------------------------------------------------------------------------------------- EEG
@pytest.fixture(scope="module")
def executed():
    return load("eegmmidb", task="executed")


@needs_eeg
def test_eeg_epochs_equal_mne_and_carry_labels(executed):
    import mne

    assert executed.dims == ("sample", "time", "unit") and executed.shape == (45, 801, 64)
    assert executed.attrs["sfreq"] == 160.0 and executed.attrs["units"] == "V"
    s = executed.coords["sample"]
    assert s.groupby("run").size().to_dict() == {3: 15, 7: 15, 11: 15}
    assert (s["condition"] == s["event"].map({"T1": "left", "T2": "right"})).all()
    # reference: slice the raw signal by hand at every T1/T2 annotation of run 7
    raw = mne.io.read_raw_edf(str(EEG / "S001R07.edf"), preload=True, verbose="error")
    onsets = [(round(o * 160), d) for o, d in zip(raw.annotations.onset, raw.annotations.description) if d != "T0"]
    signal = raw.get_data()
    mine = executed.sel(run=7)
    assert list(mine.coord("event")) == [d for _, d in onsets]
    for i, (start, _) in enumerate(onsets):
        np.testing.assert_allclose(mine.numpy()[i], signal[:, start - 160:start + 641].T, atol=1e-9)
    assert list(executed.coord("name")[:3]) == ["FC5", "FC3", "FC1"]


@needs_eeg
def test_eeg_motor_cortex_desynchronises_during_movement():
    epochs = load("eegmmidb", task="executed", l_freq=8.0, h_freq=30.0)
    time = epochs.coord("time")

    def log_power_ratio(channel):
        x = epochs.sel(name=channel).numpy()[:, :, 0]
        before = (x[:, (time >= -1) & (time < 0)] ** 2).mean(1)
        during = (x[:, (time >= 0.5) & (time < 2.5)] ** 2).mean(1)
        return np.log(during / before).mean()

    motor = (log_power_ratio("C3") + log_power_ratio("C4")) / 2
    assert motor < -0.1 and motor < log_power_ratio("Oz") - 0.1


def test_eeg_bad_input(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'imagined'"):
        load("eegmmidb", task="imagine")
    with pytest.raises(ConfigError, match="tmax"):
        load("eegmmidb", tmin=1.0, tmax=0.5)
    with pytest.raises(DataNotFoundError):
        load("eegmmidb", root=tmp_path / "nowhere")
    with pytest.raises(DataNotFoundError, match="run 3"):
        load("eegmmidb", root=tmp_path)


# ------------------------------------------------------------------------- generic loaders
def test_numpy_loaders_roundtrip_with_coords(tmp_path):
    data = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "a.npy", data)
    assert np.array_equal(L.load_array(tmp_path / "a.npy").numpy(), data)
    np.savez(tmp_path / "b.npz", data=data, **{"sample.stimulus": np.array(["w", "x", "y", "z"]),
                                              "unit.name": np.array(["u0", "u1", "u2"])})
    acts = L.load_array(tmp_path / "b.npz")
    assert acts.dims == ("sample", "unit") and list(acts.coord("stimulus")) == ["w", "x", "y", "z"]
    assert acts.sel(name="u1").numpy()[:, 0].tolist() == [1, 4, 7, 10]
    np.savez(tmp_path / "c.npz", left=data, right=data)
    with pytest.raises(ConfigError, match="pass key"):
        L.load_array(tmp_path / "c.npz")
    assert L.load_array(tmp_path / "c.npz", key="right").attrs["kind"] == "recording"
    with pytest.raises(DataNotFoundError):
        L.load_array(tmp_path / "missing.npy")
    with pytest.raises(DimensionError):
        L.from_numpy(np.zeros((2, 2, 2, 2)))
    assert L.from_numpy(np.zeros((2, 5, 3))).dims == ("sample", "time", "unit")


def test_table_loaders_count_and_drop_nans(tmp_path):
    frame = pd.DataFrame({"trial": ["a", "b", "c"], "condition": ["x", "y", "x"],
                          "n1": [1.0, 2.0, 3.0], "n2": [0.5, np.nan, np.nan], "n3": [7.0, 8.0, 9.0]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(NaNError, match="2 NaN/inf values in 1 of 3 units"):
        L.load_csv(tmp_path / "t.csv", sample="trial")
    acts = L.load_csv(tmp_path / "t.csv", sample="trial", nan_policy="drop")
    assert list(acts.coord("name")) == ["n1", "n3"] and list(acts.coord("id")) == ["a", "b", "c"]
    assert acts.coords["sample"]["condition"].tolist() == ["x", "y", "x"]
    with pytest.raises(ConfigError, match="nan_policy"):
        L.load_csv(tmp_path / "t.csv", nan_policy="skip")
    with pytest.raises(ConfigError, match="unit columns"):
        L.load_csv(tmp_path / "t.csv", unit_columns=["n9"])
    frame.fillna(0).to_parquet(tmp_path / "t.parquet")
    wide = L.load_parquet(tmp_path / "t.parquet", sample="trial")
    assert wide.shape == (3, 3) and wide.numpy()[1].tolist() == [2.0, 0.0, 8.0]
    vectors = pd.DataFrame({"stimulus": ["s0", "s1"], "values": [np.ones(4), np.zeros(4)]})
    vectors.to_parquet(tmp_path / "v.parquet")
    stacked = L.load_parquet(tmp_path / "v.parquet")
    assert stacked.shape == (2, 4) and list(stacked.coord("stimulus")) == ["s0", "s1"]
    with pytest.raises(DataNotFoundError):
        L.load_parquet(tmp_path / "nope.parquet")


def test_hf_dataset_loader(tmp_path):
    import datasets

    acts = Activations(torch.randn(5, 3), ("sample", "unit"),
                       {"sample": {"stimulus": list("abcde")}, "unit": {"name": ["x", "y", "z"]}}, {"source": "t"})
    acts.to_dataset().save_to_disk(str(tmp_path / "ds"))
    back = L.load_hf_dataset(tmp_path / "ds")
    assert back.equals(acts) and back.attrs["source"] == "t"
    plain = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"label": [0, 1], "f1": [0.5, 1.5], "f2": [2.0, 3.0]})})
    plain.save_to_disk(str(tmp_path / "plain"))
    table = L.load_hf_dataset(tmp_path / "plain", unit_columns=["f1", "f2"])
    assert table.shape == (2, 2) and list(table.coord("label")) == [0, 1]
    with pytest.raises(DataNotFoundError, match="offline"):
        L.load_hf_dataset("qsimeon/celegans_neural_data")
    with pytest.raises(ConfigError, match="did you mean 'train'"):
        L.load_hf_dataset(tmp_path / "plain", split="trian")


def test_nwb_loader_reads_timeseries_and_units(tmp_path):
    pytest.importorskip("pynwb")
    from datetime import datetime, timezone

    from pynwb import NWBHDF5IO, NWBFile, TimeSeries

    nwb = NWBFile(session_description="t", identifier="t", session_start_time=datetime(2020, 1, 1, tzinfo=timezone.utc))
    signal = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    nwb.add_acquisition(TimeSeries(name="lfp", data=signal, unit="V", rate=10.0, starting_time=1.0))
    nwb.add_unit(spike_times=[0.05, 0.15, 0.16, 0.95])
    nwb.add_unit(spike_times=[0.55])
    with NWBHDF5IO(str(tmp_path / "x.nwb"), "w") as io:
        io.write(nwb)
    with pytest.raises(ConfigError, match="pass series"):
        L.load_nwb(tmp_path / "x.nwb")
    lfp = L.load_nwb(tmp_path / "x.nwb", series="lfp")
    np.testing.assert_array_equal(lfp.numpy(), signal)
    assert lfp.coord("time")[:2].tolist() == [1.0, 1.1] and lfp.attrs["dt"] == pytest.approx(0.1)
    units = L.load_nwb(tmp_path / "x.nwb", series="units", bin_size=0.1)
    assert units.numpy().sum(0).tolist() == [4.0, 1.0] and units.numpy()[0].tolist() == [1.0, 0.0]
    with pytest.raises(ConfigError, match="did you mean 'lfp'"):
        L.load_nwb(tmp_path / "x.nwb", series="lpf")


def test_nwb_without_pynwb_names_the_pip_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynwb", None)
    (tmp_path / "x.nwb").write_bytes(b"")
    with pytest.raises(MissingDependencyError, match="pip install"):
        L.load_nwb(tmp_path / "x.nwb")


# ------------------------------------------------------------------ homogenized C. elegans
@needs_celegans
def test_homogenized_celegans_fixture_roundtrip(worms, tmp_path):
    from interp.data.celegans import canonical_neurons

    path = L.write_homogenized_celegans(worms, tmp_path / "worms.parquet")
    table = pd.read_parquet(path)
    assert list(table.columns) == list(L.HOMOGENIZED_COLUMNS)
    assert table["worm"].nunique() == 7 and table.groupby(["worm", "neuron"]).size().max() == 1
    for _, rows in table.groupby("worm"):
        assert rows["slot"].is_monotonic_increasing
        assert all(canonical_neurons()[s] == n for s, n in zip(rows["slot"], rows["neuron"]))
    back = L.load_homogenized_celegans(path)
    assert [b.attrs["worm"] for b in back] == [f"worm{i}" for i in range(7)]
    original = L.load_homogenized_celegans(path, value="original_calcium_data")
    for worm, read in zip(worms, original):
        name = read.coord("name")[0]
        np.testing.assert_array_equal(read.sel(name=name).numpy(), worm.sel(canonical=name).numpy()[:, :1])
    first, resampled = worms[0], back[0]
    time = first.coord("time")
    grid = resampled.coord("time")
    assert grid[1] - grid[0] == pytest.approx(np.median([w.attrs["dt"] for w in worms]), rel=1e-5)
    np.testing.assert_allclose(resampled.sel(name="AVAL").numpy()[:, 0],
                               np.interp(grid, time, first.sel(name="AVAL").numpy()[:, 0]), atol=1e-5)
    padded = L.load_homogenized_celegans(path, worms=["worm0"], canonical=True)[0]
    assert padded.sizes["unit"] == 302 and padded.coords["unit"]["recorded"].sum() == resampled.sizes["unit"]
    assert np.isnan(padded.sel(recorded=False).numpy()).all()


def test_homogenized_celegans_schema_and_duplicates(tmp_path):
    time = np.arange(10) * 0.5
    worm = Activations(torch.arange(40, dtype=torch.float32).reshape(10, 4), ("sample", "unit"),
                       {"sample": {"time": time},
                        "unit": {"name": ["AVAL", "AVAL", "unk_2", "VB02"], "confidence": [2.0, 5.0, np.nan, 4.0]}},
                       {"dt": 0.5})
    path = L.write_homogenized_celegans([worm], tmp_path / "w.parquet", dt=1.0, include_unlabeled=True)
    table = pd.read_parquet(path)
    assert table["neuron"].tolist() == ["AVAL", "VB2", "unk_2"]
    assert table["is_unlabeled_neuron"].tolist() == [False, False, True]
    np.testing.assert_array_equal(table["original_calcium_data"][0], worm.numpy()[:, 1])  # higher confidence
    assert table["max_timesteps"][0] == 5 and table["median_dt"][0] == 1.0
    table.drop(columns=["calcium_data"]).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(SchemaError, match="calcium_data"):
        L.load_homogenized_celegans(tmp_path / "bad.parquet")
    with pytest.raises(DataNotFoundError):
        L.load_homogenized_celegans(tmp_path / "none.parquet")
    with pytest.raises(DimensionError):
        L.write_homogenized_celegans([worm.transpose("unit", "sample")], tmp_path / "x.parquet")
