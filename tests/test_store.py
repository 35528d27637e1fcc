"""ActivationStore: bit-exact round trips, random minibatches, schema checks, kill-and-resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

import interp
from interp.errors import DimensionError
from interp.store import ActivationStore


def test_capture_roundtrips_through_store_bit_exactly(tiny_bridge, tmp_path):
    x = torch.randint(0, 50, (9, 7), generator=torch.Generator().manual_seed(0))
    mem = interp.capture(tiny_bridge, x, "blocks.*.mlp.hook_post", positions="tokens", batch_size=4, progress=False)
    store = interp.capture(tiny_bridge, x, "blocks.*.mlp.hook_post", store=tmp_path / "s", batch_size=4, progress=False)
    assert isinstance(store, ActivationStore) and store.complete and store.n_rows == 63
    for site in mem:
        back = store.read(site)
        assert torch.equal(back.data, mem[site].data)
        assert back.coord("pos").tolist() == mem[site].coord("pos").tolist()
        assert back.coord("name").tolist() == mem[site].coord("name").tolist()
    reopened = ActivationStore.open(tmp_path / "s")
    assert torch.equal(reopened.read("blocks.1.mlp.hook_post").data, mem["blocks.1.mlp.hook_post"].data)


def test_minibatches_cover_every_row_once(tmp_path):
    store = ActivationStore.create(tmp_path / "s", {"a": (3,)}, dims={"a": ("sample", "unit")})
    full = np.arange(60, dtype=np.float32).reshape(20, 3)
    for start in range(0, 20, 6):
        store.append({"a": full[start : start + 6]}, {"row": np.arange(start, min(start + 6, 20))})
    seen = torch.cat(list(store.minibatches("a", batch_size=7, seed=1)))
    assert seen.shape == (20, 3)
    assert sorted(seen[:, 0].tolist()) == full[:, 0].tolist()
    assert not torch.equal(seen, torch.from_numpy(full))  # shuffled
    idx = np.array([19, 0, 7, 6, 13])
    assert np.array_equal(store.rows("a", idx), full[idx])
    for idx in (np.array([0, 5, 6, 6, 11, 12, 19]), np.array([12, 12, 3, 18, 0, 5, 6])):  # sorted/unsorted, repeats
        assert np.array_equal(store.rows("a", idx), full[idx])
    with pytest.raises(DimensionError):
        store.rows("a", [20])
    assert store.sample_coords()["row"].tolist() == list(range(20))


def test_schema_mismatch_and_bad_appends(tmp_path):
    ActivationStore.create(tmp_path / "s", {"a": (3,)}, dims={"a": ("sample", "unit")})
    with pytest.raises(interp.SchemaError, match="different schema"):
        ActivationStore.create(tmp_path / "s", {"a": (4,)}, dims={"a": ("sample", "unit")})
    with pytest.raises(interp.StoreLockedError, match="not a writer"):
        ActivationStore.open(tmp_path / "s").append({"a": np.zeros((2, 3))})
    store = ActivationStore.create(tmp_path / "s", {"a": (3,)}, dims={"a": ("sample", "unit")})
    with pytest.raises(interp.DimensionError, match="expects"):
        store.append({"a": np.zeros((2, 4))})
    with pytest.raises(interp.SchemaError, match="exactly the arrays"):
        store.append({"b": np.zeros((2, 3))})
    with pytest.raises(interp.SchemaError, match="not an activation store"):
        ActivationStore.open(tmp_path)
    with pytest.raises(interp.DimensionError, match="did you mean 'a'"):
        store.read("aa")


def test_export_parquet_and_dataset(tmp_path):
    store = ActivationStore.create(tmp_path / "s", {"a": (2,)}, dims={"a": ("sample", "unit")})
    store.append({"a": np.ones((3, 2))}, {"id": ["x", "y", "z"]})
    import pandas as pd

    frame = pd.read_parquet(store.to_parquet("a", tmp_path / "a.parquet"))
    assert frame["id"].tolist() == ["x", "y", "z"] and len(frame["values"][0]) == 2
    ds = store.to_dataset("a")
    assert len(ds) == 3 and ds[1]["id"] == "y"


SCRIPT = textwrap.dedent(
    """
    import sys, time, torch, interp
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    x = torch.randn(40, 5, generator=torch.Generator().manual_seed(3))
    if sys.argv[2] == "slow":
        model[0].register_forward_hook(lambda m, a, o: time.sleep(0.2))
    interp.capture(model, x, ["0", "2"], store=sys.argv[1], batch_size=4, progress=False)
    torch.save(model.state_dict(), sys.argv[1] + ".pt")
    """
)


def test_killed_capture_resumes_without_duplicates_or_gaps(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    path = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, str(script), str(path), "slow"])
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if ActivationStore.open(path).n_rows >= 3 * 4:
                break
        except (interp.SchemaError, FileNotFoundError, ValueError):
            pass
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = ActivationStore.open(path)
    assert 0 < partial.inputs_done < 40 and not partial.complete
    subprocess.run([sys.executable, str(script), str(path), "fast"], check=True)
    resumed = ActivationStore.open(path)
    assert resumed.complete and resumed.n_rows == 40
    assert resumed.sample_coords()["sample_index"].tolist() == list(range(40))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    model.load_state_dict(torch.load(str(path) + ".pt"))
    x = torch.randn(40, 5, generator=torch.Generator().manual_seed(3))
    ref = interp.capture(model, x, ["0", "2"], batch_size=4, progress=False)  # same batches: other sizes differ by an ulp
    for site in ("0", "2"):
        assert torch.equal(resumed.read(site).data, ref[site].data)
