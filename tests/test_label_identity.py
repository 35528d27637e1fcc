"""Labels you can trust on anyone's recording (issue 19): unit identity, annotation kinds, missing values.

Each test plants the answer in synthetic data and fails on the code before the issue:
* the ``unit`` column was the rank of the unit's name in lexicographic order (n10 before n2);
* units sharing a name were merged into one row;
* float-coded categories (MATLAB doubles, NWB trial columns) were correlated with their codes;
* missing annotation values gave NaN p-values or a misleading binary-annotation error.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import interp
from interp.label import label_recordings
from interp.label.kinds import MissingAnnotationError, annotation_kind
from interp.label.recordings import DuplicateUnitError

P = 200


def _session(n_units=12, n=900, seed=2, names=None):
    """Independent noise units; unit 3 responds to target 2 (float codes 1..4), the last unit to speed.

    Seed 2: the two annotations are nearly uncorrelated in this draw (r 0.02 between speed and target 2); with
    seed 0 they correlate at 0.51 by chance and every unit tuned to one is, correctly, found tuned to the other.
    """
    rng = np.random.default_rng(seed)
    speed = np.convolve(rng.normal(size=n), np.ones(15) / 15, "same") * 4
    target = np.repeat(rng.integers(1, 5, size=n // 30), 30).astype(float)
    X = rng.normal(size=(n, n_units))
    X[:, 3] += 2.5 * (target == 2)
    X[:, -1] += 2 * speed
    names = names if names is not None else [f"n{i}" for i in range(n_units)]
    return interp.data.from_numpy(X, coords={"sample": {"speed": speed, "target": target}, "unit": {"name": names}})


def test_rows_carry_each_units_own_index_and_name_in_recording_order():
    rec = _session(n_units=12)
    res = label_recordings(rec, ["speed", "target"], n_permutations=P)
    t = res.to_frame()
    assert t["unit"].tolist() == list(range(12)) and t["name"].tolist() == [f"n{i}" for i in range(12)]
    assert "target" in t.loc[3, "label"] and "speed" in t.loc[11, "label"]
    # the concept table joins by the same index
    c = res.concepts.frame
    assert set(c.loc[c["significant"], "unit"]) == {3, 11}
    assert (c["name"] == c["unit"].map(lambda u: f"n{u}")).all()


def test_duplicate_names_are_an_error_unless_the_user_says_how_to_tell_units_apart():
    names = ["mua"] * 10 + ["good1", "good2"]
    rec = _session(n_units=12, names=names)
    with pytest.raises(DuplicateUnitError, match="'mua' x10.*unit_names='index'"):
        label_recordings(rec, ["speed"], n_permutations=P)
    by_index = label_recordings(rec, ["target"], n_permutations=P, unit_names="index").to_frame()
    assert len(by_index) == 12 and by_index["name"].tolist() == names and by_index["n_recordings"].max() == 1
    assert "target" in by_index.loc[3, "label"]
    suffixed = label_recordings(rec, ["target"], n_permutations=P, unit_names="suffix").to_frame()
    assert suffixed["name"].tolist()[:3] == ["mua#1", "mua#2", "mua#3"] and suffixed.loc[11, "name"] == "good2"


def test_float_codes_are_categories_and_the_result_says_why():
    assert annotation_kind(np.array([1.0, 2.0, 3.0, 8.0]))[0] == "categorical"
    assert annotation_kind(np.array([0.0, 1.0, 1.0]))[0] == "binary"
    assert annotation_kind(np.linspace(0, 1, 50))[0] == "continuous"
    assert annotation_kind(np.zeros((5, 2)))[0] == "circular"
    rec = _session()
    res = label_recordings(rec, ["target"], n_permutations=P)
    label = res.to_frame().loc[3, "label"]
    assert label.startswith("target-selective") and "↓" not in label and "↑" not in label
    assert "category codes stored as floats" in " ".join(res.notes)
    assert set(res.concepts.frame["annotation_kind"]) == {"categorical"}
    declared = label_recordings(rec, ["target"], n_permutations=P, kinds={"target": "continuous"})
    assert set(declared.concepts.frame["kind_reason"]) == {"declared"}
    assert set(declared.concepts.frame["kind"]) == {"correlation"}


def test_missing_annotation_values_are_a_named_error_or_dropped():
    rec = _session()
    speed = rec.coord("speed").copy()
    speed[::7] = np.nan  # e.g. samples between trials
    target = rec.coord("target").astype(object)
    target[::9] = None  # a None category is missing, not a level "None"
    sample = rec.coords["sample"].assign(speed=speed, target=target)
    gappy = rec.replace(coords={**rec.coords, "sample": sample})
    with pytest.raises(MissingAnnotationError, match="'speed' is missing .* for 129 of 900.*nan_policy='drop'"):
        label_recordings(gappy, ["speed"], n_permutations=P)
    # a 0/1 annotation with gaps: the missing values are named, not "must have both true and false samples"
    with pytest.raises(MissingAnnotationError, match="'reward' is missing"):
        label_recordings(gappy.replace(coords={**gappy.coords, "sample": sample.assign(
            reward=np.where(np.isnan(speed), np.nan, speed > 0))}), ["reward"], n_permutations=P)
    # the direct concept tests name them too; a None is not a category "None"
    from interp.label import concept_test, pooled_concept_test

    with pytest.raises(MissingAnnotationError):
        concept_test(gappy, ["target"], n_permutations=P)
    with pytest.raises(MissingAnnotationError):
        pooled_concept_test([gappy], "speed", n_permutations=P)
    res = label_recordings(gappy, ["speed", "target"], n_permutations=P, nan_policy="drop")
    t = res.to_frame()
    assert "speed ↑" in t.loc[11, "label"] and np.isfinite(res.concepts.frame["p_value"]).all()
    assert "target-selective" in t.loc[3, "label"]


def test_two_column_annotation_is_tested_as_a_direction():
    rng = np.random.default_rng(1)
    n = 800
    theta = np.repeat(rng.uniform(0, 2 * np.pi, n // 20), 20)
    vel = np.c_[np.cos(theta), np.sin(theta)] * rng.uniform(0.5, 1.5, (n, 1))
    X = rng.normal(size=(n, 5))
    X[:, 2] += 2 * np.cos(theta - np.pi / 2)  # preferred direction 90 degrees
    rec = interp.data.from_numpy(X, coords={"sample": {"velocity": list(vel)}})
    res = label_recordings(rec, ["velocity"], n_permutations=P)
    t = res.to_frame()
    found = re.match(r"velocity direction-tuned \(PD (\d+)°", t.loc[2, "label"])
    assert found and 80 <= int(found.group(1)) <= 100 and t.loc[2, "score"] > 0.5
    assert (t.drop(index=2)["label"] == "no significant behaviour tuning").all()


def test_two_numeric_levels_are_binary_everywhere_like_two_labels():
    import dataclasses

    from interp.label import concept_test
    from interp.label.phenomena import Phenomena

    # {1, 2} (a MATLAB condition code) is two levels, like {"a", "b"} and {0, 1}: binary in the kinds and in
    # concept_test, with the larger level as "true" (it was categorical in one path and broke the other)
    for values in (np.array([1, 2, 2, 1]), np.array([1.0, 2.0, 2.0, 1.0]), np.array(["a", "b", "b", "a"])):
        assert annotation_kind(values)[0] == "binary"
    rng = np.random.default_rng(0)
    code = np.repeat([1.0, 2.0], 50)
    X = rng.normal(size=(100, 3))
    X[code == 2.0, 1] += 2
    res = concept_test(X, {"condition": code}, null="permutation", n_permutations=199)
    f = res.frame
    assert set(f["kind"]) == {"auroc"}
    assert bool(f.loc[1, "significant"]) and f.loc[1, "direction"] == "+" and f.loc[1, "statistic"] > 0.8
    # Phenomena.FLAGS is a class constant, not a dataclass field one could pass
    assert "FLAGS" not in {fl.name for fl in dataclasses.fields(Phenomena)} and "dead" in Phenomena.FLAGS
