"""The ``interp`` command: one package, shared flags, ``python -m interp``, user data in, ``capture --dry-run``.

Smoke runs use the smallest zoo model (``induction-2l``) or small planted recordings; the label tests
check that planted tuning is found (and untuned units are not), the dry-run test checks the planned
store size against a real capture.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import interp
from interp import Activations, ConfigError, DataNotFoundError
from interp.cli import SUBCOMMANDS, build_parser, main
from interp.cli.inputs import classify

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = [ROOT / "interp", ROOT / "patching", ROOT / "probes"]


# --------------------------------------------------------------------------------------- layout and help
@functools.cache
def _imports(path: Path) -> list[str]:
    """Absolute module names imported by ``path`` (relative imports resolved against its package)."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names.append(mod)
            names += [f"{mod}.{a.name}" for a in node.names]
    return names


def _library_modules():
    for root in LIBRARY:
        yield from sorted(root.rglob("*.py"))


def test_no_argparse_outside_the_cli_package():
    offenders = [str(p.relative_to(ROOT)) for p in _library_modules()
                 if "argparse" in _imports(p) and (ROOT / "interp" / "cli") not in p.parents]
    assert offenders == [], f"argparse belongs in interp/cli/ only; found in {offenders}"


def test_the_cli_is_the_top_layer():
    """Nothing in the library imports interp.cli; interp imports patching/probes only in the CLI and reports."""
    entry = ROOT / "interp" / "__main__.py"  # `python -m interp` is the CLI's own entry point
    below = [str(p.relative_to(ROOT)) for p in _library_modules() if (ROOT / "interp" / "cli") not in p.parents
             and p != entry and any(n == "interp.cli" or n.startswith("interp.cli.") for n in _imports(p))]
    assert below == []
    upward = [str(p.relative_to(ROOT)) for p in (ROOT / "interp").rglob("*.py")
              if not {ROOT / "interp" / "cli", ROOT / "interp" / "report"} & set(p.parents)
              and any(n.split(".")[0] in {"patching", "probes"} for n in _imports(p))]
    assert upward == []


def test_every_subcommand_has_one_module_and_documented_flags():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(SUBCOMMANDS) == {"capture", "label", "compare", "decompose", "study", "paths",
                                                    "circuits", "demo"}
    for name, p in sub.choices.items():
        assert SUBCOMMANDS[name].__name__ == f"interp.cli.{name}"
        parsers = [p] + [q for a in p._actions if a.dest == "action" for q in a.choices.values()]
        for q in parsers:
            for action in q._actions:
                if action.dest in ("help", "action"):
                    continue
                assert action.help, f"interp {name}: {action.option_strings or action.dest} has no help text"
            options = {o for a in q._actions for o in a.option_strings}
            # one spelling per idea: the old spellings are gone
            assert not options & {"--report", "--store", "--model", "--activations", "--site", "--n-perm",
                                  "--n-boot", "--no-progress"}, (name, options)
            if "--sites" in options:
                assert next(a for a in q._actions if "--sites" in a.option_strings).nargs == "+"


def test_help_of_every_subcommand_via_python_m_interp():
    """``python -m interp --help`` and ``python -m interp SUBCOMMAND --help`` for every subcommand, run in one
    subprocess through ``runpy.run_module('interp', run_name='__main__')``, which is what ``-m`` does."""
    names = ["", *SUBCOMMANDS, "study run", "study check"]
    script = (
        "import runpy, sys\n"
        f"for name in {names!r}:\n"
        "    sys.argv = ['interp', *name.split(), '--help']\n"
        "    try:\n"
        "        runpy.run_module('interp', run_name='__main__', alter_sys=True)\n"
        "    except SystemExit as exc:\n"
        "        print(f'@@exit {name} {exc.code}')\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr
    for name in names:
        assert f"@@exit {name} 0" in run.stdout, run.stdout[-2000:]
        assert f"usage: interp {name}".strip() in run.stdout
    top = run.stdout.split("@@exit  0")[0]
    for name in SUBCOMMANDS:
        assert re.search(rf"^\s+{name}\b", top, re.M), name
    assert "--dry-run" in run.stdout and "--annotations" in run.stdout


# ------------------------------------------------------------------------------------------- dispatch
def test_model_versus_recording_dispatch(tmp_path):
    rec = Activations(torch.zeros(4, 2), ("sample", "unit")).save(tmp_path / "rec.safetensors")
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "manifest.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("x")
    assert classify("induction-2l").kind == "model"
    assert classify(str(rec)).kind == "recording"
    assert classify(str(tmp_path / "hf")).kind == "model"
    assert classify(str(tmp_path / "store")).kind == "store"
    assert classify("celegans", datasets=["celegans"]).kind == "dataset"
    with pytest.raises(ConfigError, match="a zoo model .*induction-2l.*a recording file.*did you mean 'induction-2l'"):
        classify("induction-2", accept=("model", "recording"))
    with pytest.raises(DataNotFoundError, match="does not exist"):
        classify(str(tmp_path / "missing.mat"))
    with pytest.raises(ConfigError, match="cannot read"):
        classify(str(tmp_path / "notes.txt"))
    with pytest.raises(ConfigError, match="recording file, which this command does not take"):
        classify(str(rec), accept=("model",))


# ---------------------------------------------------------------------------------- planted recordings
def _planted_recording(n: int = 2400, seed: int = 0) -> Activations:
    """Unit a0 fires while 'running' (on/off blocks), a1 follows 'speed', a2-a5 are noise."""
    rng = np.random.default_rng(seed)
    running = np.zeros(n)
    t = 0
    while t < n:
        length = int(rng.integers(40, 120))
        running[t: t + length] = rng.integers(0, 2)
        t += length
    speed = np.convolve(rng.normal(size=n + 50), np.ones(50) / 50, mode="valid")[:n]
    speed = (speed - speed.mean()) / speed.std()
    x = rng.normal(size=(n, 6))
    x[:, 0] += 2.0 * running
    x[:, 1] += 1.5 * speed
    return Activations(torch.tensor(x, dtype=torch.float32), ("sample", "unit"),
                       {"sample": {"time": np.arange(n) * 0.1, "running": running, "speed": speed},
                        "unit": {"name": [f"a{i}" for i in range(6)]}},
                       {"kind": "recording", "source": "planted", "dt": 0.1})


def _check_planted_labels(csv: Path) -> None:
    """Units in their recorded order (names sort as a0..a5, 0..5 or x[0]..x[5])."""
    table = pd.read_csv(csv, keep_default_na=False).sort_values("name").reset_index(drop=True)
    found = table["phenomena"].tolist()  # the significant annotations of each unit
    assert found == ["running", "speed", "", "", "", ""], table[["name", "label"]]
    assert "running" in table.loc[0, "label"] and "speed" in table.loc[1, "label"]
    assert float(table.loc[0, "score"]) > 0.8  # held-out AUROC of the planted unit


@pytest.fixture(scope="module")
def planted():
    return _planted_recording()


def test_label_a_saved_activations_file(planted, tmp_path, capsys):
    path = planted.save(tmp_path / "rec.safetensors")
    # the old failure: a saved recording asked for --sites, then said "unknown model"
    assert main(["label", str(path), "--out", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err
    assert "give --annotations" in err and "running" in err and "unknown model" not in err
    out, csv = tmp_path / "units.html", tmp_path / "units.csv"
    assert main(["label", str(path), "--annotations", "running", "speed", "--n-permutations", "1000", "--alpha",
                 "0.01", "--quiet", "--out", str(out), "--csv", str(csv)]) == 0
    _check_planted_labels(csv)
    assert "planted units" in out.read_text()
    assert main(["label", str(path), "--annotations", "runing"]) == 2
    assert "no sample coordinate ['runing']" in capsys.readouterr().err


def test_label_a_recording_in_trials(planted, tmp_path, capsys):
    """--groups names the trial coordinate: the tests swap whole trials and the labels are scored on held-out trials."""
    units = planted.coords["unit"]
    sample = planted.coords["sample"].assign(trial=np.repeat(np.arange(40), 60))
    path = planted.replace(coords={"sample": sample, "unit": units}).save(tmp_path / "trials.safetensors")
    out, csv = tmp_path / "units.html", tmp_path / "units.csv"
    assert main(["label", str(path), "--annotations", "running", "speed", "--groups", "trial", "--n-permutations",
                 "2000", "--quiet", "--out", str(out), "--csv", str(csv)]) == 0
    table = pd.read_csv(csv, keep_default_na=False).sort_values("name").reset_index(drop=True)
    assert "running" in table.loc[0, "label"] and "speed" in table.loc[1, "label"]
    assert (table.loc[2:, "phenomena"] == "").all()
    # the null is chosen from the design and named (whole-trial swaps, or the autocorrelation-corrected test when the
    # activity runs on across trial boundaries, as it does here)
    page = out.read_text()
    assert re.search(r"\b(group|trial|effective_n) null", page) and "trials" in page
    assert main(["label", "celegans", "--groups", "trial"]) == 2
    assert "has no trials" in capsys.readouterr().err


def test_label_a_mat_file(planted, tmp_path, capsys):
    scipy_io = pytest.importorskip("scipy.io")
    path = tmp_path / "session.mat"
    scipy_io.savemat(path, {"spikes": planted.numpy(), "running": planted.coord("running"),
                            "speed": planted.coord("speed")})
    csv = tmp_path / "units.csv"
    code = main(["label", str(path), "--variable", "spikes", "--annotations", "running", "speed", "--n-permutations",
                 "1000", "--alpha", "0.01", "--quiet", "--out", str(tmp_path / "units.html"), "--csv", str(csv)])
    if not hasattr(interp.data, "load_mat"):  # the MATLAB reader lands with the recordings work
        assert code == 2 and "interp.data.load_mat" in capsys.readouterr().err
        return
    assert code == 0
    _check_planted_labels(csv)


def test_recording_flags_are_checked(planted, tmp_path, capsys):
    path = planted.save(tmp_path / "rec.safetensors")
    assert main(["label", str(path), "--annotations", "running", "--variable", "x"]) == 2
    assert "--variable read .mat files" in capsys.readouterr().err
    assert main(["label", "induction-2l", "--sites", "heads", "--series", "units"]) == 2
    assert "--series read recording files; 'induction-2l' is a model" in capsys.readouterr().err
    assert main(["label", str(path), "--annotations", "running", "--sites", "blocks.0.hook_resid_post"]) == 2
    assert "a recording file is labelled as a whole" in capsys.readouterr().err


# ------------------------------------------------------------------------------------- compare / decompose
def test_compare_an_activations_file_with_a_recording_file(tmp_path, capsys):
    """A recording that is a rotation of the model's activations (plus noise) is far more similar to them than
    to unrelated activations; rows are matched by stimulus id even when stored in another order."""
    rng = np.random.default_rng(1)
    acts = rng.normal(size=(40, 12))
    rotation = np.linalg.qr(rng.normal(size=(12, 12)))[0]
    brain = acts @ rotation + 0.1 * rng.normal(size=(40, 12))
    ids = [f"s{i}" for i in range(40)]
    order = rng.permutation(40)
    Activations(torch.tensor(acts), ("sample", "unit"), {"sample": {"stimulus": ids}}, {"site": "layer"}).save(
        tmp_path / "model.safetensors")
    Activations(torch.tensor(rng.normal(size=(40, 12))), ("sample", "unit"), {"sample": {"stimulus": ids}}).save(
        tmp_path / "random.safetensors")
    Activations(torch.tensor(brain[order]), ("sample", "unit"), {"sample": {"image": [ids[i] for i in order]}}).save(
        tmp_path / "brain.safetensors")
    scores = {}
    for name in ("model", "random"):
        csv = tmp_path / f"{name}.csv"
        assert main(["compare", str(tmp_path / f"{name}.safetensors"), "--data", str(tmp_path / "brain.safetensors"),
                     "--annotations", "image", "--method", "cka", "--n-bootstraps", "0", "--quiet", "--csv", str(csv)]) == 0
        scores[name] = pd.read_csv(csv)["score"].item()
    assert scores["model"] > 0.9 > 0.5 > scores["random"], scores
    assert main(["compare", "induction-2l", "--data", str(tmp_path / "brain.safetensors")]) == 2
    assert "holds no stimuli" in capsys.readouterr().err


def test_decompose_a_store_and_a_recording(tmp_path, planted, capsys):
    model, _ = interp.models.load("induction-2l")
    tokens = torch.randint(1, 100, (16, 12), generator=torch.Generator().manual_seed(0))
    interp.capture(model, tokens, "blocks.*.hook_resid_post", store=tmp_path / "store", progress=False)
    assert main(["decompose", str(tmp_path / "store"), "--out", str(tmp_path / "sae.safetensors")]) == 2
    assert "pick one with --sites" in capsys.readouterr().err
    assert main(["decompose", str(tmp_path / "store"), "--sites", "blocks.1.*", "--method", "topk", "--n-components",
                 "32", "--k", "4", "--batch-size", "64", "--quiet", "--out", str(tmp_path / "sae.safetensors")]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["method"] == "topk" and 0 <= printed["fvu"] < 1.5
    rec = planted.replace(data=planted.data - planted.data.min())  # NMF needs non-negative data
    path = rec.save(tmp_path / "rec.safetensors")
    assert main(["decompose", str(path), "--method", "nmf", "--n-components", "3", "--max-iter", "50", "--quiet",
                 "--out", str(tmp_path / "nmf.safetensors")]) == 0
    from interp.decompose import load

    assert load(tmp_path / "nmf.safetensors").components_.shape == (3, 6)


def test_decompose_an_nwb_file(tmp_path, capsys):
    pytest.importorskip("pynwb")
    from datetime import datetime, timezone

    from pynwb import NWBHDF5IO, NWBFile, TimeSeries

    rng = np.random.default_rng(2)
    signal = (rng.random((200, 2)) @ rng.random((2, 5))).astype(np.float32)  # rank 2, non-negative
    nwb = NWBFile(session_description="t", identifier="t", session_start_time=datetime(2020, 1, 1, tzinfo=timezone.utc))
    nwb.add_acquisition(TimeSeries(name="dff", data=signal, unit="a.u.", rate=10.0))
    nwb.add_acquisition(TimeSeries(name="other", data=signal[:, :2], unit="a.u.", rate=10.0))
    with NWBHDF5IO(str(tmp_path / "x.nwb"), "w") as io:
        io.write(nwb)
    out = str(tmp_path / "nmf.safetensors")
    assert main(["decompose", str(tmp_path / "x.nwb"), "--method", "nmf", "--n-components", "2", "--out", out]) == 2
    assert "series= is --series NAME" in capsys.readouterr().err  # two series: the loader asks which
    assert main(["decompose", str(tmp_path / "x.nwb"), "--series", "dff", "--method", "nmf", "--n-components", "2",
                 "--max-iter", "300", "--quiet", "--out", out]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["fvu"] < 1e-3  # a rank-2 non-negative matrix is reconstructed by 2 components


# ------------------------------------------------------------------------------------------------ capture
@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    rng = np.random.default_rng(0)
    lines = [" ".join(str(int(t)) for t in rng.integers(1, 128, size=int(rng.integers(4, 40)))) for _ in range(50)]
    path = tmp_path_factory.mktemp("texts") / "corpus.txt"
    path.write_text("\n".join(lines) + "\n\n")
    return path


def _number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, (pattern, text)
    return float(match.group(1).replace(",", ""))


def test_capture_and_its_dry_run_agree(texts, tmp_path, capsys):
    """The dry run's store size is within 2% of the store that the same command then writes, and its
    bytes per token are exact (2 sites x d_model 64 x 4 bytes)."""
    sites = ["blocks.*.hook_resid_post"]
    common = ["capture", "induction-2l", "--sites", *sites, "--texts", str(texts), "--batch-size", "8"]
    assert main(common + ["--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert _number(r"bytes per token: ([\d,]+) \(activations\)", plan) == 2 * 64 * 4
    planned_kb = _number(r"store size ([\d.]+) KB", plan)
    n_tokens = _number(r"tokens: ([\d,]+) in", plan)
    assert not (tmp_path / "store").exists()
    assert main(common + ["--out", str(tmp_path / "store"), "--quiet"]) == 0
    store = interp.ActivationStore.open(tmp_path / "store")
    real = sum(f.stat().st_size for f in (tmp_path / "store").rglob("*") if f.is_file())
    assert store.n_rows == n_tokens
    assert abs(planned_kb * 1000 - real) / real < 0.02, (planned_kb, real)
    rows = store.read("blocks.1.hook_resid_post")
    assert rows.shape == (n_tokens, 64)


@pytest.mark.parametrize("batch_size", [3, 8])
def test_plan_capture_memory_matches_a_measured_run(tmp_path, batch_size):
    """The batch peak, extrapolated from probes of one and two sequences per batch, is within 5% of the live
    tensor peak measured during a real capture of 24 sequences into a store."""
    from interp.capture_plan import _LiveTensorBytes, plan_capture

    model, _ = interp.models.load("induction-2l")
    sites = ["blocks.0.attn.hook_z", "blocks.1.hook_resid_post"]
    tokens = torch.randint(1, 100, (24, 32), generator=torch.Generator().manual_seed(0))
    with _LiveTensorBytes() as live:
        interp.capture(model, tokens, sites, store=tmp_path / "s", batch_size=batch_size, progress=False)
    plan = plan_capture(model, sites, n_tokens=24 * 32, seq_len=32, batch_size=batch_size)
    assert plan.row_shapes == {"blocks.0.attn.hook_z": (4, 16), "blocks.1.hook_resid_post": (64,)}
    assert plan.bytes_per_token == (4 * 16 + 64) * 4
    assert abs(plan.batch_bytes["cpu"] - live.peak["cpu"]) / live.peak["cpu"] < 0.05, (plan.batch_bytes, live.peak)
    assert "store size" in plan.summary() and len(plan.to_frame()) == 2
    with pytest.raises(ConfigError, match="texts or n_tokens"):
        plan_capture(model, sites)


def test_capture_flag_errors(texts, capsys):
    assert main(["capture", "induction-2l", "--sites", "blocks.0.hook_resid_post"]) == 2
    assert "--texts and --out" in capsys.readouterr().err
    assert main(["capture", "induction-2l", "--sites", "blocks.0.hook_resid_post", "--dry-run"]) == 2
    assert "--dry-run needs --texts or --n-tokens" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- the others
def test_label_smoke_on_the_smallest_model(tmp_path):
    out = tmp_path / "heads.html"
    assert main(["label", "induction-2l", "--sites", "heads", "--quiet", "--out", str(out),
                 "--csv", str(tmp_path / "heads.csv")]) == 0
    table = pd.read_csv(tmp_path / "heads.csv")
    assert len(table) == 8 and out.stat().st_size > 0  # 2 layers x 4 heads
    assert table[table["layer"] == 1]["label"].str.contains("induction").any()


def test_study_check_and_demo_smoke(tmp_path, capsys):
    assert main(["study", "check", str(ROOT / "examples" / "induction_heads.toml")]) == 0
    assert "ok" in capsys.readouterr().out
    out = tmp_path / "demo.html"
    assert main(["demo", "--sections", "decompose", "--quick", "--out", str(out)]) == 0
    assert "behaviour components" in out.read_text()
    assert main(["demo", "--sections", "nope", "--out", str(out)]) == 2
    assert "unknown demo sections ['nope']" in capsys.readouterr().err
