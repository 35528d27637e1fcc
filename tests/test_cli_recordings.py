"""Anyone's recording through ``interp label/decompose`` (issue 19 acceptance).

Each test writes a fixture in a lab's own layout to tmp_path -- an NWB file with trials and gaps
between them, a MATLAB struct array of ragged trials with float-coded targets and a 2-column velocity,
a suite2p folder with a behaviour table -- and runs the command line. The planted unit must get the
planted label under its own name; untuned units must not be labeled.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from interp.cli import main

P = "300"


def _nwb_with_gaps(path, rng):
    """20 trials of 1-2 s separated by 0.5-1 s gaps; 5 units named cell_A..cell_E; cell_C fires more in
    target 3 (float codes 1..4 in the trials table)."""
    from pynwb import NWBHDF5IO, NWBFile

    nwb = NWBFile(session_description="t", identifier="t", session_start_time=datetime(2020, 1, 1, tzinfo=timezone.utc))
    nwb.add_trial_column(name="target", description="reach target (a double, as MATLAB exports write it)")
    t, trials = 0.5, []
    for i in range(24):
        dur = rng.uniform(1.0, 2.0)
        trials.append((t, t + dur, float(1 + i % 4)))
        t += dur + rng.uniform(0.5, 1.0)
    for start, stop, target in trials:
        nwb.add_trial(start_time=start, stop_time=stop, target=target)
    nwb.add_unit_column(name="unit_name", description="the lab's name")
    for name in "ABCDE":
        spikes = list(np.sort(rng.uniform(0, t, int(5 * t))))  # 5 Hz background
        if name == "C":
            for start, stop, target in trials:
                if target == 3.0:
                    spikes += list(rng.uniform(start, stop, int(20 * (stop - start))))
        nwb.add_unit(spike_times=np.sort(spikes), unit_name=f"cell_{name}")
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


def test_nwb_with_trials_and_gaps_labels_units_by_their_names(tmp_path, capsys):
    pytest.importorskip("pynwb")
    _nwb_with_gaps(tmp_path / "s.nwb", np.random.default_rng(0))
    csv = tmp_path / "u.csv"
    assert main(["label", str(tmp_path / "s.nwb"), "--series", "units", "--bin-size", "0.1", "--annotations", "target",
                 "--groups", "trial", "--n-permutations", P, "--out", str(tmp_path / "u.html"), "--csv", str(csv)]) == 0
    t = pd.read_csv(csv)
    assert t["name"].tolist() == [f"cell_{c}" for c in "ABCDE"] and t["unit"].tolist() == list(range(5))
    assert t.loc[2, "label"].startswith("target-selective") and np.isfinite(t.loc[2, "score"])
    assert (t.drop(index=2)["label"] == "no significant behaviour tuning").all()
    out = capsys.readouterr().out
    assert "samples outside the trials/epochs were excluded" in out and "category codes stored as floats" in out
    # keeping the gaps: no trial columns, said by name
    assert main(["label", str(tmp_path / "s.nwb"), "--series", "units", "--bin-size", "0.1", "--annotations", "target",
                 "--intervals", "none", "--n-permutations", "20", "--out", str(tmp_path / "v.html")]) == 2
    assert "has no sample coordinate ['target']" in capsys.readouterr().err
    # an annotation missing between trials (as the old loader made it): a named error naming the flag, or dropped
    import interp
    from interp.data import nwb_intervals

    rec = interp.data.load_nwb(tmp_path / "s.nwb", series="units", bin_size=0.1, intervals=None)
    trials = nwb_intervals(tmp_path / "s.nwb")
    which = trials.index_of(rec.coord("time"))
    target = np.where(which >= 0, trials.labels["target"].to_numpy()[np.clip(which, 0, None)], np.nan)
    rec = rec.replace(coords={**rec.coords, "sample": rec.coords["sample"].assign(target=target)})
    rec.save(tmp_path / "gappy.safetensors")
    args = ["label", str(tmp_path / "gappy.safetensors"), "--annotations", "target", "--n-permutations", P,
            "--out", str(tmp_path / "w.html"), "--csv", str(csv)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "'target' is missing (NaN/None) for" in err and "--nan-policy drop" in err
    assert main(args + ["--nan-policy", "drop"]) == 0
    assert pd.read_csv(csv).loc[2, "label"].startswith("target-selective")


def _reach_mat(path, rng, n_trials=32, units=6):
    """Ragged trials (18-30 samples) with rates, a per-sample 2-column velocity and a double-coded target;
    unit 1 prefers target 2, unit 4 is cosine-tuned to the velocity's direction (preferred 0 degrees)."""
    from scipy.io import savemat

    trials = np.zeros((1, n_trials), dtype=[("rates", object), ("velocity", object), ("target", object)])
    for i in range(n_trials):
        T = int(rng.integers(18, 31))
        target = float(1 + i % 4)
        theta = rng.uniform(0, 2 * np.pi) + np.linspace(0, 1.5, T)
        vel = np.c_[np.cos(theta), np.sin(theta)]
        rates = rng.normal(size=(T, units))
        rates[:, 1] += 2.0 * (target == 2.0)
        rates[:, 4] += 2.0 * np.cos(theta)
        trials[0, i] = (rates, vel, target)
    names = np.array([["m1_a", "m1_b", "m1_c", "m1_d", "m1_e", "m1_f"]], dtype=object)
    savemat(path, {"trials": trials, "cell_names": names})


def test_mat_with_float_codes_and_ragged_trials_labels_units_by_their_names(tmp_path):
    _reach_mat(tmp_path / "reach.mat", np.random.default_rng(1))
    csv = tmp_path / "r.csv"
    common = ["label", str(tmp_path / "reach.mat"), "--variable", "trials", "--field", "rates", "--dims", "time", "unit",
              "--groups", "trial", "--unit-names", "cell_names", "--n-permutations", P, "--out", str(tmp_path / "r.html"),
              "--csv", str(csv)]
    # the target is constant within trials: whole (ragged) trials swap
    assert main(common + ["--annotations", "target"]) == 0
    t = pd.read_csv(csv)
    assert t["name"].tolist() == ["m1_a", "m1_b", "m1_c", "m1_d", "m1_e", "m1_f"]
    assert t.loc[1, "label"].startswith("target-selective")
    assert (t.drop(index=1)["label"] == "no significant behaviour tuning").all()
    # the velocity varies within trials of different lengths: circular shifts within each trial
    assert main(common + ["--annotations", "velocity", "--null", "circular"]) == 0
    t = pd.read_csv(csv)
    assert t.loc[4, "label"].startswith("velocity direction-tuned")
    assert (t.drop(index=4)["label"] == "no significant behaviour tuning").all()


def test_suite2p_folder_with_a_behaviour_table(tmp_path):
    from test_data_formats import write_suite2p

    rng = np.random.default_rng(3)
    write_suite2p(tmp_path / "suite2p" / "plane0", n_rois=5, n_frames=600)
    F = np.load(tmp_path / "suite2p/plane0/F.npy")
    fneu = np.load(tmp_path / "suite2p/plane0/Fneu.npy")
    running = np.repeat(rng.random(30) < 0.5, 20)
    dff = rng.normal(0, 0.05, F.shape)
    dff[3] += 0.6 * running  # roi3 is active while running
    np.save(tmp_path / "suite2p/plane0/F.npy", (200 * (1 + dff) + 0.7 * fneu).astype(np.float32))
    pd.DataFrame({"running": running.astype(int)}).to_csv(tmp_path / "frames.csv", index=False)
    csv = tmp_path / "c.csv"
    assert main(["label", str(tmp_path / "suite2p"), "--behavior", str(tmp_path / "frames.csv"), "--annotations",
                 "running", "--n-permutations", P, "--out", str(tmp_path / "c.html"), "--csv", str(csv)]) == 0
    t = pd.read_csv(csv)
    assert t["name"].tolist() == ["roi0", "roi2", "roi3", "roi4"]
    assert t.loc[2, "label"].startswith("running ↑")
    assert (t.drop(index=2)["label"] == "no significant behaviour tuning").all()


def test_decompose_recordings_nmf_on_dff_assemblies_and_fvu_warning(tmp_path, capsys, monkeypatch):
    import interp

    rng = np.random.default_rng(0)
    X = rng.normal(0, 0.3, (1500, 12))  # dF/F: below baseline half the time
    X[np.ix_(rng.random(1500) < 0.05, [2, 5, 7])] += 3.0  # an assembly of units 2, 5, 7
    interp.data.from_numpy(X).save(tmp_path / "dff.safetensors")
    base = ["decompose", str(tmp_path / "dff.safetensors"), "--quiet"]
    assert main(base + ["--method", "nmf", "--n-components", "2", "--out", str(tmp_path / "n.safetensors")]) == 2
    assert "--negative shift" in capsys.readouterr().err
    assert main(base + ["--method", "assemblies", "--assembly-method", "ica", "--out", str(tmp_path / "a.html"),
                        "--csv", str(tmp_path / "a.csv")]) == 0
    assert pd.read_csv(tmp_path / "a.csv")["members"].tolist() == ["[2, 5, 7]"]
    # a reconstruction worse than the mean is said (FVU 1.45 was printed without a word)
    import interp.decompose.metrics as metrics

    real = metrics.reconstruction_metrics

    def worse(*args, **kwargs):
        out = real(*args, **kwargs)
        out.fvu = 1.45
        return out

    monkeypatch.setattr(metrics, "reconstruction_metrics", worse)
    assert main(base + ["--method", "nmf", "--n-components", "2", "--negative", "shift", "--max-iter", "20",
                        "--out", str(tmp_path / "n.safetensors")]) == 0
    assert "warning: FVU 1.45 >= 1" in capsys.readouterr().err


def test_mat_matrix_with_a_two_column_velocity_and_float_codes(tmp_path):
    """The README's own ``--annotations velocity target``: a T x 2 velocity crashed with a numpy traceback."""
    from scipy.io import savemat

    rng = np.random.default_rng(4)
    n = 1200
    theta = np.cumsum(rng.normal(0, 0.6, n))  # the hand turns, visiting every direction many times
    target = np.repeat(rng.integers(1, 5, n // 30), 30).astype(float)
    spikes = rng.normal(size=(n, 5))
    spikes[:, 0] += 2 * np.cos(theta)
    spikes[:, 3] += 2 * (target == 4.0)
    savemat(tmp_path / "s.mat", {"spikes": spikes, "velocity": np.c_[np.cos(theta), np.sin(theta)],
                                 "target": target[:, None]})
    csv = tmp_path / "s.csv"
    assert main(["label", str(tmp_path / "s.mat"), "--variable", "spikes", "--annotations", "velocity", "target",
                 "--n-permutations", P, "--out", str(tmp_path / "s.html"), "--csv", str(csv)]) == 0
    t = pd.read_csv(csv)
    assert t.loc[0, "label"].startswith("velocity direction-tuned") and t.loc[3, "label"].startswith("target-selective")
    assert (t.drop(index=[0, 3])["label"] == "no significant behaviour tuning").all()


def test_nan_data_intervals_table_and_declared_kinds(tmp_path, capsys):
    """NaN data: the error names the flag that exists (--nan-policy); --intervals takes a start/end table;
    --kinds / --categorical declare kinds (a 1..4 code declared continuous is correlated, and the notes say so)."""
    import interp

    rng = np.random.default_rng(5)
    n = 1000
    time = np.arange(n) * 0.1
    level = np.repeat(rng.integers(1, 5, n // 25), 25).astype(float)
    X = rng.normal(size=(n, 4))
    X[:, 1] += level
    X[10:20, 2] = np.nan  # a unit with a gap in its trace: dropped, the others keep their index
    rec = interp.data.from_numpy(X, time=time, coords={"sample": {"level": level}}, nan_policy="ignore")
    rec.save(tmp_path / "r.safetensors")
    pd.DataFrame({"start": [5.0, 40.0], "end": [35.0, 95.0]}).to_csv(tmp_path / "epochs.csv", index=False)
    csv = tmp_path / "r.csv"
    args = ["label", str(tmp_path / "r.safetensors"), "--annotations", "level", "--n-permutations", P,
            "--out", str(tmp_path / "r.html"), "--csv", str(csv)]
    assert main(args) == 2
    assert "--nan-policy drop" in capsys.readouterr().err
    assert main(args + ["--nan-policy", "drop", "--epochs", str(tmp_path / "epochs.csv"), "--kinds",
                        "level=continuous"]) == 0
    out = capsys.readouterr().out
    assert "level: continuous (declared)" in out and "150 samples outside the trials/epochs were excluded" in out
    t = pd.read_csv(csv)
    assert t["name"].tolist() == [0, 1, 3] and t["index"].tolist() == [0, 1, 3] and t.loc[1, "label"].startswith("level ↑")
    assert main(args + ["--nan-policy", "drop", "--categorical", "level"]) == 0
    assert pd.read_csv(csv).loc[1, "label"].startswith("level-selective")


def test_compare_takes_groups_and_the_nan_policy(tmp_path, capsys):
    """``interp compare --groups session`` resamples whole sessions; a recording with a NaN unit needs
    --nan-policy drop (compare had neither flag)."""
    import torch

    from interp import Activations

    rng = np.random.default_rng(6)
    acts = rng.normal(size=(40, 10))
    brain = acts @ np.linalg.qr(rng.normal(size=(10, 10)))[0] + 0.1 * rng.normal(size=(40, 10))
    brain[3, 4] = np.nan
    ids = [f"s{i}" for i in range(40)]
    Activations(torch.tensor(acts), ("sample", "unit"), {"sample": {"stimulus": ids}}, {"site": "layer"}).save(
        tmp_path / "model.safetensors")
    Activations(torch.tensor(brain), ("sample", "unit"), {"sample": {"stimulus": ids, "session": np.repeat(
        np.arange(8), 5)}}).save(tmp_path / "brain.safetensors")
    args = ["compare", str(tmp_path / "model.safetensors"), "--data", str(tmp_path / "brain.safetensors"), "--method",
            "cka", "--n-bootstraps", "50", "--quiet", "--csv", str(tmp_path / "c.csv")]
    assert main(args + ["--groups", "session"]) == 2
    assert "--nan-policy drop" in capsys.readouterr().err
    assert main(args + ["--groups", "session", "--nan-policy", "drop"]) == 0
    assert pd.read_csv(tmp_path / "c.csv")["score"].item() > 0.9


def test_decompose_groups_reports_the_fvu_on_held_out_trials(tmp_path, capsys):
    import json

    import interp

    rng = np.random.default_rng(0)
    X = rng.random((400, 2)) @ rng.random((2, 6)) + 0.01 * rng.random((400, 6))  # rank 2, non-negative
    rec = interp.data.from_numpy(X, trial=np.repeat(np.arange(20), 20))
    rec.save(tmp_path / "r.safetensors")
    base = ["decompose", str(tmp_path / "r.safetensors"), "--method", "nmf", "--n-components", "2", "--quiet",
            "--out", str(tmp_path / "n.safetensors")]
    assert main(base + ["--groups", "trial"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["heldout_groups"] == 4 and printed["heldout_fvu"] < 0.01  # 4 of 20 trials held out
    assert main(base[:3] + ["assemblies", "--quiet", "--out", str(tmp_path / "a.html"), "--groups", "trial"]) == 2
    assert "--groups holds out whole trials" in capsys.readouterr().err
