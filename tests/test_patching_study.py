"""Tests of ``interp study run``: schema validation, outputs, and resume after an interruption."""

from __future__ import annotations

import textwrap

import pandas as pd
import pytest
import torch

from interp.errors import ConfigError
from patching import study

STUDY = textwrap.dedent("""
    title = "tiny study"
    model = { native = { d_model = 32, n_layers = 2, n_heads = 4, d_head = 8, n_ctx = 16, d_vocab = 40, attn_only = false, act_fn = "gelu", normalization_type = "LN", d_mlp = 32, seed = 0 } }

    [data]
    kind = "tokens"
    clean = [[1, 5, 9, 3, 7, 2], [4, 8, 6, 1, 2, 9]]
    corrupted = [[1, 5, 9, 11, 7, 2], [4, 8, 6, 12, 2, 9]]
    correct = [3, 4]
    incorrect = [5, 6]

    [metric]
    name = "logit_diff"

    [[grid]]
    name = "heads"
    intervention = "zero"
    site = "blocks.{layer}.attn.hook_z"
    layer = [0, 1]
    head = [0, 1, 2, 3]

    [[grid]]
    name = "scale mlp"
    intervention = "scale"
    site = "blocks.{layer}.hook_mlp_out"
    layer = [0, 1]
    factor = [0.0, 2.0]

    [[sweep]]
    site = "resid_pre"
    by = ["pos"]
""")


@pytest.fixture
def study_file(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(STUDY)
    return path


def test_study_runs_and_writes_outputs(study_file, tmp_path):
    from interp.cli import main

    out = tmp_path / "run"
    assert main(["study", "run", str(study_file), "--out", str(out), "--quiet"]) == 0
    table = pd.read_parquet(out / "results.parquet")
    assert len(table[table.kind == "intervention"]) == 8 + 4
    assert len(table[table.kind == "sweep"]) == 2 * 6
    assert pd.read_csv(out / "results.csv").shape[0] == len(table)
    html = (out / "summary.html").read_text()
    assert "plotly-lazy" in html and "tiny study" in html
    loaded = study.StudyResult.load(out)  # the saved study reads back as the result run_study returned
    pd.testing.assert_frame_equal(loaded.to_frame(), table)
    assert loaded.config["title"] == "tiny study" and "largest effect" in loaded.summary()
    # the zero-ablation rows agree with a direct intervention
    from patching import intervene, metrics, zero

    model = study._load_model(study.load_config(study_file)["model"])
    clean = torch.tensor([[1, 5, 9, 3, 7, 2], [4, 8, 6, 1, 2, 9]])
    metric = metrics.logit_diff(torch.tensor([3, 4]), torch.tensor([5, 6]))
    with torch.no_grad(), intervene(model, zero("blocks.1.attn.hook_z", heads=[2])):
        expected = float(metric(model(clean)))
    row = table[(table.kind == "intervention") & (table["layer"] == 1) & (table["head"] == 2)]
    assert row["metric"].item() == pytest.approx(expected, abs=1e-5)


def test_study_resumes_without_recomputing(study_file, tmp_path, monkeypatch):
    out = tmp_path / "run"
    calls = {"n": 0}
    real = study.intervene

    def counting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # simulated interruption on the 5th intervention
        return real(*args, **kwargs)

    monkeypatch.setattr(study, "intervene", counting)
    with pytest.raises(KeyboardInterrupt):
        study.run_study(study_file, out, progress=False)
    assert len(pd.read_csv(out / "progress.csv")) == 4
    with pytest.raises(ConfigError, match="--resume"):
        study.run_study(study_file, out, progress=False)
    monkeypatch.setattr(study, "intervene", real)
    counted = {"n": 0}

    def counting2(*args, **kwargs):
        counted["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(study, "intervene", counting2)
    table = study.run_study(study_file, out, resume=True, progress=False).to_frame()
    assert counted["n"] == 12 - 4
    fresh = study.run_study(study_file, tmp_path / "fresh", progress=False).to_frame()
    pd.testing.assert_frame_equal(table.reset_index(drop=True), fresh.reset_index(drop=True))


def test_example_studies_are_valid():
    from pathlib import Path

    examples = sorted(Path(__file__).resolve().parents[1].joinpath("examples").glob("*.toml"))
    assert len(examples) >= 2
    for path in examples:
        study.load_config(path)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.replace('title = "tiny study"', 'title = "x"\nmodle = "induction-2l"'), "modle"),
    (lambda s: s.replace('name = "logit_diff"', 'name = "logit_diff"\npositon = -1'), "positon"),
    (lambda s: s.replace('intervention = "zero"', 'intervention = "zero"\nheads = [1]'), "heads"),
    (lambda s: s.replace('intervention = "zero"', 'intervention = "ablate"'), "intervention"),
    (lambda s: s.replace('name = "logit_diff"', 'name = "accuracy"'), "metric"),
    (lambda s: s.replace("head = [0, 1, 2, 3]", 'head = ["a"]'), "head[0] must be an integer"),
    (lambda s: s.replace("layer = [0, 1]\nhead", "layer = []\nhead"), "layer is an empty list"),
    (lambda s: s.replace("blocks.{layer}.attn.hook_z", "blocks.{lyr}.attn.hook_z"), "did you mean {layer}"),
    (lambda s: s.replace("blocks.{layer}.attn.hook_z", "blocks.0.attn.hook_z"), "has no {layer} field"),
    (lambda s: s.replace('title = "tiny study"', 'title = "x"\nbatch_size = "big"'), "batch_size must be an integer"),
    (lambda s: s.replace("factor = [0.0, 2.0]", 'factor = ["half"]'), "factor[0] must be a number"),
    (lambda s: s.replace('by = ["pos"]', 'by = ["position"]'), "did you mean 'pos'"),
    (lambda s: s.replace("correct = [3, 4]", "correct = [3, 4, 5]"), "3 answers for 2 inputs"),
    (lambda s: s.replace("corrupted = [[1, 5, 9, 11, 7, 2], [4, 8, 6, 12, 2, 9]]\n", ""), "add [data] corrupted"),
    (lambda s: s.replace("correct = [3, 4]\n", ""), "needs [data] correct"),
    (lambda s: s.replace('kind = "tokens"', 'kind = "tokens"\nn = 8'), "does not use ['n']"),
    (lambda s: s.replace("[[1, 5, 9, 3, 7, 2], [4, 8", "[[1, 5, 9, 3, 7], [4, 8"), "same length"),
])
def test_study_rejects_bad_files(tmp_path, edit, message):
    """Unknown keys, wrong types, bad templates and inconsistent data: a ConfigError naming the problem."""
    path = tmp_path / "bad.toml"
    text = edit(STUDY)
    assert text != STUDY
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        study.load_config(path)
    assert message in str(info.value)


def test_study_checks_everything_before_the_first_row(tmp_path):
    """A bad value (checked by the schema) or a site the model lacks (checked once the model is loaded) stops
    the study before any row runs: no progress rows are saved."""
    bad = tmp_path / "bad.toml"
    bad.write_text(STUDY.replace('title = "tiny study"', 'title = "x"\nbatch_size = "big"'))
    with pytest.raises(ConfigError, match="batch_size"):
        study.run_study(bad, tmp_path / "a", progress=False)
    assert not (tmp_path / "a" / "progress.csv").exists()
    missing = tmp_path / "missing.toml"
    missing.write_text(STUDY.replace("blocks.{layer}.hook_mlp_out", "blocks.{layer}.hook_mlp_outt"))
    from interp.errors import SiteError

    with pytest.raises(SiteError, match="hook_mlp_outt"):
        study.run_study(missing, tmp_path / "b", progress=False)
    assert not (tmp_path / "b" / "progress.csv").exists()


def test_resume_discards_a_progress_row_cut_mid_line(study_file, tmp_path):
    out = tmp_path / "run"
    fresh = study.run_study(study_file, out, progress=False).to_frame()
    progress = out / "progress.csv"
    lines = progress.read_text().splitlines(keepends=True)
    sweep_rows = sum(1 for line in lines[1:] if ",sweep," in line)
    assert sweep_rows == 2 * 6  # one sweep unit: 2 layers x 6 positions
    # a crash left the file cut in the middle of the 3rd sweep row (the sweep unit is incomplete)
    cut = "".join(lines[: len(lines) - 4]) + lines[-4][: len(lines[-4]) // 2]
    progress.write_text(cut)
    from patching.study_schema import load_progress

    # discarded: the cut row and the 8 complete rows of its unit before it
    with pytest.warns(UserWarning, match="discarded 9 incomplete progress row"):
        done = load_progress(progress)
    assert done["metric"].notna().all() and (done["kind"] == "intervention").sum() == 12
    assert (done["kind"] == "sweep").sum() == 0  # the partial sweep unit is dropped whole, to run again
    with pytest.warns(UserWarning, match="incomplete progress row"):
        resumed = study.run_study(study_file, out, resume=True, progress=False).to_frame()
    assert not resumed["metric"].isna().any()
    pd.testing.assert_frame_equal(resumed.reset_index(drop=True), fresh.reset_index(drop=True))
