"""Every bad input of issue 14 ("every error named") raises a named ``InterpError`` with a useful message.

One row per case of the issue's list: a callable that triggers it, the expected error class and a piece
of the message that says what was expected or what to do. One parametrised test walks the table. The
rows run on ``induction-2l`` (cached), tiny synthetic data and files in ``tmp_path``: seconds in all.
Store-file corruption beyond these rows (shortened shards, bit flips, checksums) is tested in
``tests/test_store_safety.py``.
"""

from __future__ import annotations

import errno
import functools
import json
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import interp
from interp.errors import (
    ConfigError,
    DataNotFoundError,
    DimensionError,
    InputTypeError,
    InterpError,
    MismatchError,
    MissingDependencyError,
    NaNError,
    SchemaError,
    SiteError,
    StorageError,
)


@functools.lru_cache(maxsize=1)
def induction():
    model, _ = interp.models.load("induction-2l")
    return model


def pairs(n: int = 4):
    from patching.datasets import induction_pairs

    return induction_pairs(n=n, corrupt="key")


def capture(inputs, **kwargs):
    return interp.capture(induction(), inputs, "blocks.0.hook_resid_post", progress=False, **kwargs)


TOKENS = torch.tensor([[0, 5, 9], [0, 1, 2]])


def cli_long_text(tmp: Path):
    from interp.cli import build_parser

    corpus = tmp / "corpus.txt"
    corpus.write_text("1 2 3\n" + LONG_TEXT + "\n")
    args = build_parser().parse_args(["capture", "induction-2l", "--sites", "blocks.0.hook_resid_post", "--texts",
                                      str(corpus), "--out", str(tmp / "store"), "--quiet"])
    return args._run(args)
LONG_TEXT = "1 2 3 " * 100  # 301 tokens; induction-2l's context is 64


# ------------------------------------------------------------------------------------------ study files
STUDY = textwrap.dedent("""
    title = "bad study"
    model = "induction-2l"
    batch_size = 8

    [data]
    kind = "induction"
    n = 4

    [metric]
    name = "logit_diff"

    [[grid]]
    intervention = "zero"
    site = "blocks.{layer}.attn.hook_z"
    layer = [0, 1]
    head = [0, 1]
""")


def study(tmp: Path, old: str, new: str, run: bool = False):
    from patching import study as st

    text = STUDY.replace(old, new)
    assert text != STUDY, f"the edit {old!r} -> {new!r} did not apply"
    path = tmp / "study.toml"
    path.write_text(text)
    return st.run_study(path, tmp / "run", progress=False) if run else st.load_config(path)


# ------------------------------------------------------------------------------------------------ files
def saved(tmp: Path) -> Path:
    path = tmp / "acts.safetensors"
    interp.Activations(torch.randn(50, 4), ("sample", "unit"), attrs={"source": "test"}).save(path)
    return path


def corrupt_activations(tmp: Path, how: str):
    path = saved(tmp)
    raw = path.read_bytes()
    if how == "garbage":
        path.write_bytes(b"not a safetensors file" * 8)
    elif how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    else:  # a valid safetensors file whose JSON metadata is cut short
        from safetensors.torch import save_file

        save_file({"data": torch.zeros(2, 2)}, str(path), metadata={"interp": '{"dims": ["sample", "un'})
    return interp.Activations.load(path)


def corrupt_parquet(tmp: Path):
    import pandas as pd

    from interp.data.loaders import load_parquet

    path = tmp / "table.parquet"
    pd.DataFrame({"a": np.arange(100.0), "b": np.arange(100.0)}).to_parquet(path)
    path.write_bytes(path.read_bytes()[:-40])
    return load_parquet(path)


def store(tmp: Path, damage: str):
    from interp.store import ActivationStore

    path = tmp / "store"
    capture(TOKENS, store=path)
    if damage == "manifest":
        (path / "manifest.json").write_text('{"format": "interp-activation-store", "vers')
    elif damage == "manifest list":
        (path / "manifest.json").write_text("[1, 2, 3]")
    else:
        coords = next((path / "shards" / "_coords").glob("*.parquet"))
        coords.write_bytes(coords.read_bytes()[:20])
        return ActivationStore.open(path).sample_coords()
    return ActivationStore.open(path)


def corrupt_model_cache(tmp: Path, monkeypatch, which: str):
    from interp.cache import cache_dir

    source = cache_dir("models", which)
    target = tmp / "cache"
    shutil.copytree(source, target / "models" / which)
    monkeypatch.setenv("INTERP_CACHE", str(target))
    files = sorted(p for p in (target / "models" / which).iterdir() if p.suffix in {".safetensors", ".pt"})
    for p in files:
        p.write_bytes(p.read_bytes()[:100])
    if which == "digits-vit":
        from interp.models.digits import _digits_vit

        _digits_vit.cache_clear()
    return interp.models.load(which)


def disk_error(tmp: Path, monkeypatch, code: int):
    import safetensors.torch

    def failing(*args, **kwargs):
        raise OSError(code, "simulated")

    monkeypatch.setattr(safetensors.torch, "save_file", failing)
    return interp.Activations(torch.zeros(3, 2), ("sample", "unit")).save(tmp / "out.safetensors")


def unwritable_folder(tmp: Path, monkeypatch, what: str):
    blocker = tmp / "a-file"
    blocker.write_text("not a folder")
    if what == "cache":
        monkeypatch.setenv("INTERP_CACHE", str(blocker / "cache"))
        return interp.models.load("induction-2l")
    from patching import study as st

    path = tmp / "study.toml"
    path.write_text(STUDY)
    return st.run_study(path, blocker / "run", progress=False)


def fit_several_sites():
    from interp.decompose import SNMF

    acts = interp.capture(induction(), TOKENS, "blocks.*.hook_resid_post", progress=False)
    return SNMF(n_components=2).fit(acts)


def without_datasets(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    return interp.Activations(torch.zeros(3, 2), ("sample", "unit")).to_dataset()


def tampered_sae(tmp: Path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    from interp.decompose import TopKSAE

    sae = TopKSAE(n_components=8, k=2, batch_size=32, progress=False).fit(torch.randn(64, 6))
    path = sae.save(tmp / "sae.safetensors")
    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["interp.decompose"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta["params"]["n_components"] = 99
    save_file(tensors, str(path), metadata={"interp.decompose": json.dumps(meta)})
    return TopKSAE.load(path)


# -------------------------------------------------------------------------------------------- numbers
def rsa_zero_stimulus():
    from interp.similarity import rsa

    X = torch.randn(10, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    X[3] = 0
    return rsa(X, torch.randn(10, 5, dtype=torch.float64))


def label_typo():
    from interp.label import label_recordings

    rng = np.random.default_rng(0)
    rec = interp.Activations(torch.randn(60, 3), ("sample", "unit"),
                             coords={"sample": {"reversal": rng.random(60) > 0.5}, "unit": {"name": ["A", "B", "C"]}})
    return label_recordings([rec], ["reversl"], n_permutations=10)


def nan_metric():
    import patching

    p = pairs()
    return patching.activation_patching(induction(), p.clean, p.corrupted, lambda logits: logits[:, -1, 0].mean() * float("nan"),
                                         sites="heads")


def atp_explicit_mlp():
    import patching

    p = pairs()
    return patching.attribution_patching(induction(), p.clean, p.corrupted, p.metric(), sites=["mlp_out", "z"])


def float_tokens_patching():
    import patching

    p = pairs()
    return patching.activation_patching(induction(), p.clean.float(), p.corrupted.float(), p.metric(), sites="heads")


def tokens_out_of_vocab_patching():
    import patching

    p = pairs()
    clean = p.clean.clone()
    clean[0, 1] = 999
    return patching.activation_patching(induction(), clean, p.corrupted, p.metric(), sites="heads")


def long_prompt_patching():
    import patching

    return patching.attribution_patching(induction(), [LONG_TEXT], [LONG_TEXT], pairs().metric())


# id, trigger(tmp, monkeypatch), expected class, piece of the message
CASES = [
    ("token ids out of range", lambda t, m: capture(torch.tensor([[0, 500, 3]])), DimensionError,
     "outside the model's vocabulary 0..127"),
    ("negative token ids", lambda t, m: capture(torch.tensor([[0, -1, 3]])), DimensionError, "outside the model's vocab"),
    ("token ids out of range (patching)", lambda t, m: tokens_out_of_vocab_patching(), DimensionError,
     "Tokenize with this model's own tokenizer"),
    ("positions int out of range", lambda t, m: capture(TOKENS, positions=99), DimensionError, "use an index in -3..2"),
    ("positions per input out of range", lambda t, m: capture(TOKENS, positions=[1, 7]), DimensionError,
     "positions[1] = 7 is out of range"),
    ("positions too few", lambda t, m: capture(TOKENS, positions=[1]), DimensionError, "give one index per input"),
    ("sample_ids wrong length", lambda t, m: capture(TOKENS, sample_ids=["a"]), MismatchError,
     "sample_ids has 1 entries but there are 2 inputs"),
    ("float tokens", lambda t, m: capture(TOKENS.float()), InputTypeError, "integer dtype"),
    ("float tokens (patching)", lambda t, m: float_tokens_patching(), InputTypeError, "must be integer token ids"),
    ("text longer than the context", lambda t, m: capture([LONG_TEXT]), DimensionError, "pass truncate=True"),
    ("text longer than the context (interp capture)", lambda t, m: cli_long_text(t), DimensionError,
     "pass truncate=True"),
    ("prompt longer than the context (patching)", lambda t, m: long_prompt_patching(), DimensionError,
     "longer than the model's context of 64 tokens"),
    ("unknown annotation", lambda t, m: label_typo(), DimensionError, "did you mean 'reversal'"),
    ("study site template typo", lambda t, m: study(t, "blocks.{layer}", "blocks.{lyr}"), ConfigError,
     "did you mean {layer}"),
    ("study head not an int", lambda t, m: study(t, "head = [0, 1]", 'head = ["a"]'), ConfigError,
     "head[0] must be an integer >= 0, got 'a'"),
    ("study n not an int", lambda t, m: study(t, "n = 4", 'n = "eight"'), ConfigError, "n must be an integer >= 1"),
    ("study batch_size not an int", lambda t, m: study(t, "batch_size = 8", 'batch_size = "big"', run=True),
     ConfigError, "batch_size must be an integer >= 1, got 'big'"),
    ("study empty layer list", lambda t, m: study(t, "layer = [0, 1]", "layer = []"), ConfigError,
     "layer is an empty list"),
    ("study head out of range", lambda t, m: study(t, "head = [0, 1]", "head = [0, 9]", run=True), ConfigError,
     "the model has 4 heads"),
    ("study site that does not exist", lambda t, m: study(t, "blocks.{layer}.attn.hook_z", "blocks.{layer}.hook_mlp_out",
                                                          run=True), SiteError, "no site matching"),
    ("Activations file: garbage", lambda t, m: corrupt_activations(t, "garbage"), SchemaError,
     "save it again with Activations.save"),
    ("Activations file: truncated", lambda t, m: corrupt_activations(t, "truncated"), SchemaError, "truncated"),
    ("Activations file: JSON cut short", lambda t, m: corrupt_activations(t, "json"), SchemaError, "JSONDecodeError"),
    ("Activations file: missing", lambda t, m: interp.Activations.load(t / "nope.safetensors"), DataNotFoundError,
     "does not exist"),
    ("parquet file: truncated", lambda t, m: corrupt_parquet(t), SchemaError, "parquet file"),
    ("store manifest: JSON cut short", lambda t, m: store(t, "manifest"), SchemaError, "rerun with overwrite=True"),
    ("store manifest: not a table", lambda t, m: store(t, "manifest list"), SchemaError, "rerun with overwrite=True"),
    ("store coordinates: truncated parquet", lambda t, m: store(t, "coords"), SchemaError,
     "rerun with overwrite=True"),
    ("model cache: corrupt induction-2l", lambda t, m: corrupt_model_cache(t, m, "induction-2l"), SchemaError,
     "the next load rebuilds the cache"),
    ("model cache: corrupt digits-vit", lambda t, m: corrupt_model_cache(t, m, "digits-vit"), SchemaError,
     "the next load rebuilds the cache"),
    ("disk full", lambda t, m: disk_error(t, m, errno.ENOSPC), StorageError, "no space left on the device"),
    ("read-only location", lambda t, m: disk_error(t, m, errno.EROFS), StorageError, "read-only or not writable"),
    ("model cache folder not writable", lambda t, m: unwritable_folder(t, m, "cache"), StorageError,
     "set INTERP_CACHE to a folder you can write to"),
    ("study output folder not writable", lambda t, m: unwritable_folder(t, m, "study"), StorageError,
     "choose another --out"),
    ("decomposition of a several-site capture", lambda t, m: fit_several_sites(), InputTypeError,
     "fit one site at a time"),
    ("to_dataset without datasets", lambda t, m: without_datasets(m), MissingDependencyError, "pip install"),
    ("SAE metadata n_components = 99", lambda t, m: tampered_sae(t), SchemaError,
     "n_components=99, n_features_in_=6, but components_ has shape (8, 6)"),
    ("RSA with an all-zero stimulus", lambda t, m: rsa_zero_stimulus(), NaNError, "at index [3]"),
    ("CKA of a constant input", lambda t, m: interp.similarity.cka(torch.ones(10, 4), torch.randn(10, 4)), NaNError,
     "constant across samples"),
    ("noise ceiling of constant RDMs", lambda t, m: interp.similarity.rsa_noise_ceiling(np.zeros((3, 5, 5))),
     NaNError, "RDMs are constant"),
    ("split_half_ceiling on 2-D input", lambda t, m: __import__("probes").split_half_ceiling(np.ones((20, 5))),
     DimensionError, "for one target pass responses[..., None]"),
    ("patching metric returns NaN", lambda t, m: nan_metric(), NaNError, "returned nan"),
    ("AtP: a named site kind the model lacks", lambda t, m: atp_explicit_mlp(), SiteError,
     "the model has no 'mlp_out' sites"),
]


@pytest.mark.parametrize("name, trigger, expected, message", CASES,
                         ids=[c[0] for c in CASES])
def test_bad_input_raises_a_named_error(name, trigger, expected, message, tmp_path, monkeypatch, one_thread):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(expected) as info:
            trigger(tmp_path, monkeypatch)
    assert isinstance(info.value, InterpError)
    assert message in str(info.value), f"{name}: {info.value}"


def test_truncate_cuts_long_texts_with_a_warning(tmp_path):
    from interp.engine import tokenize

    with pytest.warns(UserWarning, match="cut 1 of 2 texts to the model's context of 64 tokens"):
        tokens, mask = tokenize(induction(), [LONG_TEXT, "1 2 3"], truncate=True)
    assert tokens.shape == (2, 64) and int(mask[0].sum()) == 64 and int(mask[1].sum()) == 4
    with pytest.warns(UserWarning, match="cut 1 of 1"):
        acts = capture([LONG_TEXT], truncate=True)
    assert acts.sizes["pos"] == 64
    from interp.cli import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("1 2 3\n" + LONG_TEXT + "\n")
    argv = ["capture", "induction-2l", "--sites", "blocks.0.hook_resid_post", "--texts", str(corpus), "--quiet"]
    with pytest.warns(UserWarning, match="cut 1 of 2"):
        assert main([*argv, "--dry-run", "--truncate"]) == 0
    with pytest.warns(UserWarning, match="cut 1 of 2"):
        assert main([*argv, "--out", str(tmp_path / "store"), "--truncate"]) == 0


def test_valid_inputs_still_pass():
    """The checks refuse only bad input: in-range ids, positions and lengths give the same numbers."""
    ids = capture(TOKENS, positions=[1, 2], sample_ids=["a", "b"])
    full = capture(TOKENS)
    assert torch.equal(ids.data, torch.stack([full.data[0, 1], full.data[1, 2]]))
    assert capture(TOKENS, positions=-1).data.equal(full.data[:, -1])


def test_default_attribution_sites_skip_what_the_model_lacks():
    import patching

    p = pairs()
    for fn in (patching.attribution_patching, patching.relevance_patching):
        result = fn(induction(), p.clean, p.corrupted, p.metric())
        assert "mlp_out" not in result.sites and len(result.sites) >= 2  # skipped on the attention-only model


def test_similarity_compare_imports_as_the_function():
    """``from interp.similarity import compare`` in a fresh interpreter gave RecursionError (and the module
    after the submodule was imported); it must give the function both times."""
    code = ("from interp.similarity import compare as first\n"
            "import interp.similarity.compare\n"
            "from interp.similarity import compare as second\n"
            "assert first is second and first.__name__ == 'compare' and callable(first), (first, second)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
