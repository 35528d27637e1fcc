"""Property-based fuzzing (Hypothesis) of what users type and pass: the CLI's arguments, study files, and the
public statistics and probes on bad input. Every case ends in a result, a named :class:`interp.InterpError`,
or argparse's usage error (exit 2): never a raw traceback, a hang, or a silent NaN.

The examples are derandomized (the same cases on every run, so CI is reproducible) and bounded
(``max_examples`` per test, no deadline on a busy machine); the number of cases each test tried is printed
(``pytest -s``) and recorded in benchmarks/results/store_safety.md.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from interp.errors import InterpError  # noqa: E402

CASES: Counter = Counter()


def fuzz(n: int) -> settings:
    """Bounded, derandomized settings: ``n`` cases, no deadline (a busy CI machine), no example database."""
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module", autouse=True)
def _report_cases():
    yield
    print("\nfuzz cases tried: " + ", ".join(f"{k} {v}" for k, v in sorted(CASES.items())))


def _usage_error(argv: list[str]) -> bool:
    """True if argparse refuses ``argv`` with its usage error (exit 2); False if it parses."""
    from interp.cli import build_parser

    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        assert exc.code == 2, argv
        return True
    return False


# ----------------------------------------------------------------------------------------------- CLI flags
BASE = {  # a valid command line per subcommand, and its numeric flags with the lowest value each accepts
    "capture": (["capture", "induction-2l", "--sites", "x", "--dry-run"],
                {"--n-tokens": 1, "--seq-len": 1, "--batch-size": 1}),
    "decompose": (["decompose", "store", "--out", "e.safetensors"], {"--n-components": 1, "--k": 1, "--epochs": 1, "--max-iter": 1, "--seed": 0,
                                           "--batch-size": 1}),
    "label": (["label", "induction-2l"], {"--n-tokens": 1, "--seq-len": 1, "--k": 1, "--simulate": 0, "--seed": 0,
                                          "--max-cards": 1, "--n-permutations": 1, "--batch-size": 1}),
    "paths": (["paths", "induction-2l"], {"--n": 1, "--steps": 1, "--top-k": 1, "--n-random": 1, "--seed": 0}),
    "compare": (["compare", "m", "--data", "d"], {"--n-bootstraps": 0, "--n-permutations": 0, "--seed": 0,
                                                   "--batch-size": 1}),
}
FLAGS = [(cmd, flag, low) for cmd, (_, flags) in BASE.items() for flag, low in flags.items()]


def test_the_fuzzed_command_lines_parse_as_given():
    for argv, _ in BASE.values():
        assert not _usage_error(argv), argv


@fuzz(150)
@given(st.sampled_from(FLAGS), st.one_of(st.integers(-10**30, 10**30), st.floats(allow_nan=True), st.text(max_size=6)))
def test_cli_numeric_flags_parse_or_give_the_usage_error(case, value):
    cmd, flag, low = case
    argv = BASE[cmd][0] + [flag, str(value)]
    CASES["cli flags"] += 1
    refused = _usage_error(argv)
    ok = isinstance(value, int) and low <= value <= 1000  # well inside every flag's range
    bad = (not isinstance(value, int) and not (isinstance(value, str) and value.strip().lstrip("+-").isdigit())
           or isinstance(value, int) and (value < low or value > 10**13))
    assert not (ok and refused), argv
    assert not (bad and not refused), argv  # used to parse, then crash or run forever (--seed -1, --n -1, --seq-len 0)


@fuzz(60)
@given(st.one_of(st.sampled_from(["cuda", "cuda:0", "cuda:7", "mps", "bogus", "cpu:0", "meta", "xla", "cpu", "", "-1"]),
                 st.text(max_size=8)))
def test_cli_device_exists_or_usage_error(device):
    CASES["cli --device"] += 1
    refused = _usage_error(["capture", "induction-2l", "--sites", "x", "--dry-run", "--device", device])
    if not refused:  # accepted: torch knows it and this machine has it
        dev = torch.device(device)
        assert dev.type == "cpu" or (dev.type == "cuda" and torch.cuda.is_available())


@fuzz(30)
@given(st.binary(min_size=1, max_size=64))
def test_capture_texts_that_are_not_text_are_a_named_error(tmp_path_factory, data):
    from interp.cli import main

    try:
        data.decode("utf-8")
        assume(False)  # valid text would run a capture; this test is about files that are not text
    except UnicodeDecodeError:
        pass
    CASES["cli --texts binary"] += 1
    folder = tmp_path_factory.mktemp("bin")
    (folder / "t.bin").write_bytes(data)
    assert main(["capture", "induction-2l", "--sites", "blocks.0.hook_resid_post", "--texts", str(folder / "t.bin"),
                 "--out", str(folder / "s"), "--quiet"]) == 2
    assert not (folder / "s").exists()


def test_capture_out_on_a_file_or_a_folder_that_is_not_a_store_is_a_named_error(tmp_path, capsys):
    from interp.cli import main

    (tmp_path / "t.txt").write_text("1 2 3\n")
    (tmp_path / "f").write_text("keep")
    args = ["capture", "induction-2l", "--sites", "blocks.0.hook_resid_post", "--texts", str(tmp_path / "t.txt"), "--quiet"]
    assert main(args + ["--out", str(tmp_path / "f")]) == 2 and "is a file" in capsys.readouterr().err
    assert (tmp_path / "f").read_text() == "keep"
    assert main(args + ["--out", str(tmp_path)]) == 2 and "not an activation store" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ studies
STUDY = {
    "title": "fuzz",
    "model": {"native": {"d_model": 16, "n_layers": 2, "n_heads": 2, "d_head": 8, "n_ctx": 16, "d_vocab": 40,
                         "attn_only": True, "normalization_type": "LN", "seed": 0}},
    "data": {"kind": "tokens", "clean": [[1, 5, 9, 3, 7, 2], [4, 8, 6, 1, 2, 9]],
             "corrupted": [[1, 5, 9, 11, 7, 2], [4, 8, 6, 12, 2, 9]], "correct": [3, 4], "incorrect": [5, 6]},
    "metric": {"name": "logit_diff"},
    "grid": [{"intervention": "zero", "site": "blocks.{layer}.attn.hook_z", "layer": [0, 1], "head": [0, 1]}],
}
PATHS = [("title",), ("output",), ("batch_size",), ("seed",), ("model", "native", "d_model"),
         ("model", "native", "n_layers"), ("model", "native", "n_heads"), ("model", "native", "d_vocab"),
         ("model", "native", "n_ctx"), ("data", "n"), ("data", "kind"), ("data", "clean"), ("data", "correct"),
         ("metric", "position"), ("metric", "name"), ("grid", 0, "layer"), ("grid", 0, "head"), ("grid", 0, "position"),
         ("grid", 0, "unit"), ("grid", 0, "intervention"), ("grid", 0, "site"), ("grid", 0, "factor")]
VALUES = st.one_of(
    st.integers(-10**20, 10**20), st.sampled_from([-1, 0, 1, 2, 5, 6, 7, 39, 40, 10**6, 10**7, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.sampled_from(["../../..", "/tmp/x", "~/x", "runs/ok", "a/../../b", "", "blocks.{layer}.attn.hook_z", "zero",
                     "scale", "kl", "induction", "ioi", "prompts"]),
    st.lists(st.integers(-10**12, 10**12), max_size=4), st.lists(st.lists(st.integers(-5, 10**6), max_size=3), max_size=3),
)


def _set(config: dict, path: tuple, value) -> dict:
    config = copy.deepcopy(config)
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return config


@fuzz(250)
@given(st.lists(st.tuples(st.sampled_from(PATHS), VALUES), min_size=1, max_size=3))
def test_study_files_validate_or_raise_a_named_error(edits):
    from patching import study_schema

    config = STUDY
    for path, value in edits:
        config = _set(config, path, value)
    CASES["study validate"] += 1
    try:
        study_schema.validate(config)
    except InterpError:
        return
    # accepted: everything it would allocate is bounded, and its output stays inside the folder it runs from
    out = config.get("output")
    if out is not None:
        assert not Path(out).is_absolute() and ".." not in Path(out).parts
    native = config["model"]["native"]
    assert all(1 <= native[k] <= study_schema.NATIVE_SIZES[k] for k in ("d_model", "n_layers", "n_heads") if k in native)
    assert config["data"].get("n", 1) <= study_schema.MAX_INPUTS
    assert abs(config["metric"].get("position", 0)) <= study_schema.MAX_INDEX


@fuzz(25)
@given(st.lists(st.tuples(st.sampled_from([p for p in PATHS if p[0] in ("grid", "metric", "data")]),
                          st.one_of(st.integers(-50, 50), st.lists(st.integers(-50, 50), min_size=1, max_size=3))),
                min_size=1, max_size=2))
def test_study_check_catches_every_index_before_anything_runs(tmp_path_factory, edits):
    """What passes ``interp study check`` runs: every row either runs or was refused by check."""
    from unittest import mock

    from patching import study

    config = STUDY
    for path, value in edits:
        config = _set(config, path, value)
    CASES["study check+run"] += 1
    folder = tmp_path_factory.mktemp("study")
    file = folder / "s.toml"
    file.write_text("# the configuration is passed in memory (no TOML writer is installed)\n")
    with mock.patch.object(study, "load_config", lambda path: study.validate(copy.deepcopy(config), str(path))):
        try:
            study.check_study(file)
        except InterpError:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = study.run_study(file, out=folder / "out", progress=False)  # must not raise: check passed it
    assert np.isfinite(result.to_frame()["metric"].to_numpy(dtype=float)).all()


# --------------------------------------------------------------------------------------------- statistics
def arrays(max_dims: int = 2, max_side: int = 5, min_side: int = 0):
    elements = st.one_of(st.floats(-1e6, 1e6), st.just(float("nan")), st.just(float("inf")), st.just(0.0))
    return st.integers(0, max_dims).flatmap(
        lambda d: st.lists(st.integers(min_side, max_side), min_size=d, max_size=d).flatmap(
            lambda shape: st.lists(elements, min_size=math.prod(shape), max_size=math.prod(shape)).map(
                lambda v: np.array(v, dtype=float).reshape(shape))))


def _finite_or_named(call, allowed_nan=None):
    """Run ``call``: a named InterpError is fine, a raw exception is not, and the result holds no NaN except
    where ``allowed_nan(result)`` marks it (documented per-entry undefined values)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = call()
    except InterpError:
        return None
    values = [np.asarray(v, dtype=float) for v in (out if isinstance(out, tuple) else (out,))]
    for v in values:
        nan = np.isnan(v)
        if allowed_nan is not None:
            nan = nan & ~allowed_nan(v)
        assert not nan.any(), f"silent NaN: {out}"
    return out


@fuzz(150)
@given(arrays(1, 4), arrays(2, 6))
def test_p_value_never_a_silent_nan(observed, null):
    from interp.stats import p_value

    CASES["stats.p_value"] += 1
    obs = np.asarray(observed)
    _finite_or_named(lambda: p_value(observed, null), lambda v: np.broadcast_to(np.isnan(obs), v.shape) if v.shape == obs.shape else np.zeros(v.shape, bool))


@fuzz(150)
@given(arrays(3, 5), st.sampled_from([0.05, 0.5]))
def test_t_interval_never_a_silent_nan(x, alpha):
    from interp.stats import t_interval

    CASES["stats.t_interval"] += 1
    one = x.ndim > 0 and x.shape[0] == 1 or x.ndim == 0  # one value: no spread to estimate (documented NaN bounds)
    _finite_or_named(lambda: t_interval(x, alpha), (lambda v: np.ones(v.shape, bool)) if one else None)


@fuzz(150)
@given(arrays(2, 6), st.one_of(st.none(), arrays(1, 6)), st.booleans())
def test_rayleigh_test_never_a_silent_nan(angles, weights, degrees):
    from interp.stats import rayleigh_test

    CASES["stats.rayleigh_test"] += 1
    if weights is not None:
        weights = np.abs(weights)
    _finite_or_named(lambda: rayleigh_test(angles, weights, degrees=degrees))


@fuzz(100)
@given(arrays(3, 6), st.one_of(st.none(), arrays(2, 6)))
def test_bootstrap_never_a_raw_error_or_silent_nan(x, y):
    from interp.stats import bootstrap

    CASES["stats.bootstrap"] += 1
    data = (x,) if y is None else (x, y)

    def stat(*d):
        return float(np.mean(d[0]))

    def run():
        res = bootstrap(stat, *data, n_bootstraps=20, seed=0)
        return res.estimate, res.low, res.high

    _finite_or_named(run)


# ---------------------------------------------------------------------------------------------------- probes
@fuzz(120)
@given(arrays(3, 6), arrays(3, 6))
def test_pearson_per_target_never_a_raw_error_or_silent_nan(Y, P):
    from probes import pearson_per_target

    CASES["probes.pearson_per_target"] += 1
    _finite_or_named(lambda: pearson_per_target(Y, P))


@fuzz(60)
@given(arrays(3, 6, 0), st.one_of(arrays(2, 6), st.lists(st.sampled_from(["a", "b"]), max_size=7).map(np.array)))
def test_logistic_probe_never_a_raw_error(X, y):
    from probes import LogisticProbe

    CASES["probes.LogisticProbe"] += 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            probe = LogisticProbe(max_iter=50).fit(X, y)
    except InterpError:
        return
    assert np.isfinite(probe.coef_).all()


@pytest.mark.parametrize("path, value, match", [
    (("data",), {"kind": "induction", "n": 10**9}, "n must be an integer in \\[1, 100000\\]"),
    (("metric", "position"), 10**20, "position must be an integer in"),
    (("metric", "position"), -100, r"position \[-100\] out of range"),
    (("grid", 0, "layer"), list(range(5000)), r"layer \[2, 3, 4"),
    (("grid", 0, "position"), [6], r"position \[6\] out of range"),
    (("model", "native", "d_model"), -1, "d_model must be an integer in"),
    (("model", "native", "d_model"), 60000, "weights"),
    (("output",), "../../..", "outside the folder"),
    (("output",), "/etc", "outside the folder"),
    (("grid", 0, "factor"), [float("nan")], "finite"),
    (("grid", 0, "unit"), [8], r"unit \(of blocks.0.attn.hook_z\) \[8\] out of range; the site has 8 units"),
])
def test_study_check_bounds_what_run_would_allocate(tmp_path, path, value, match):
    """These passed ``study check`` and then died in ``run`` (MemoryError, minutes of work, an IndexError, files
    written outside the study folder)."""
    from unittest import mock

    from interp.errors import ConfigError
    from patching import study

    config = _set(STUDY, path, value)
    if path == ("grid", 0, "factor"):
        config["grid"][0]["intervention"] = "scale"
    file = tmp_path / "s.toml"
    file.write_text("# in memory\n")
    with mock.patch.object(study, "load_config", lambda p: study.validate(copy.deepcopy(config), str(p))):
        with pytest.raises(ConfigError, match=match):
            study.check_study(file)
