"""The store's safety guarantees: one writer (lock), fingerprinted resumes, checked reads, kill -9 at every
point of an append, several ranks into one store, and rank-partitioned shuffled minibatches."""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import interp
import interp.store.activation_store
from interp.errors import CorruptFileError, FingerprintError, SchemaError, StoreLockedError
from interp.store import ActivationStore, _lock, rank_range
from interp.store._ranks import read_ledger

sys.path.insert(0, str(Path(__file__).parent))
from _store_job import FINGERPRINT, N_INPUTS, kill_at, rows_of, run_job  # noqa: E402

FORK = multiprocessing.get_context("fork")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(interp.__file__).parents[1])}  # this checkout


def assert_same_store(got: ActivationStore, want: ActivationStore) -> None:
    """Same rows (sample_index, pos) in the same order, bit-identical values, every checksum good."""
    got, want = ActivationStore.open(got.path).verify(), ActivationStore.open(want.path)
    assert got.complete and got.n_rows == want.n_rows and got.inputs_done == want.inputs_done
    a, b = got.sample_coords(), want.sample_coords()
    assert a.equals(b)
    assert not a.duplicated(["sample_index", "pos"]).any()
    for name in want.arrays:
        assert np.array_equal(got.rows(name, slice(None)), want.rows(name, slice(None))), name


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return run_job(tmp_path_factory.mktemp("ref") / "store", rank=0, world_size=1)


def _in_child(target, *args) -> int:
    proc = FORK.Process(target=target, args=args)
    proc.start()
    proc.join(60)
    assert proc.exitcode is not None, "child did not finish"
    return proc.exitcode


# --------------------------------------------------------------------------- lock
def _hold_and_die(path):
    ActivationStore.create(path, {"a": (2,)})
    os.kill(os.getpid(), signal.SIGKILL)


def test_second_writer_is_refused_or_waits_and_dead_holders_never_block(tmp_path):
    path = tmp_path / "s"
    first = ActivationStore.create(path, {"a": (2,)})
    with pytest.raises(StoreLockedError, match=rf"pid {os.getpid()} .*this very process.*wait=True"):
        ActivationStore.create(path, {"a": (2,)})
    t = time.monotonic()
    with pytest.warns(UserWarning, match="waiting for the activation store"), pytest.raises(StoreLockedError, match="after waiting"):
        ActivationStore.create(path, {"a": (2,)}, wait=0.8)
    assert time.monotonic() - t >= 0.8
    first.append({"a": np.ones((3, 2))}, inputs_done=3)
    threading.Timer(0.3, first.finish).start()  # the holder finishes while the second one waits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        second = ActivationStore.create(path, {"a": (2,)}, wait=True)
    assert second.complete and second.n_rows == 3 and not second._writer  # complete: nothing to write, lock let go
    # a holder killed with SIGKILL leaves its lock file (naming a dead pid) behind: it does not block
    dead = tmp_path / "dead"
    assert _in_child(_hold_and_die, dead) == -signal.SIGKILL
    assert _lock.holder(dead / "writer.lock")["pid"] != os.getpid() and not _lock.is_held(dead / "writer.lock")
    ActivationStore.create(dead, {"a": (2,)}).close()


def _model_and_inputs():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    return model, torch.randn(40, 5, generator=torch.Generator().manual_seed(3))


def _capture_child(path, mode, go, report):
    model, x = _model_and_inputs()
    if mode == "slow":
        model[0].register_forward_hook(lambda m, a, o: time.sleep(0.1))
    else:
        go.wait(60)
    warnings.simplefilter("ignore")
    try:
        store = ActivationStore.create(path, wait=True) if mode == "wait" else path
        out = interp.capture(model, x, ["0", "2"], store=store, batch_size=4, progress=False)
    except StoreLockedError as exc:
        report.put((mode, f"REFUSED {exc}"))
        sys.exit(3)
    report.put((mode, f"DONE {out.n_rows}"))


def test_two_capture_processes_one_refused_one_waits_store_equals_single_writer(tmp_path):
    path = tmp_path / "store"
    go, report = FORK.Event(), FORK.Queue()
    procs = {mode: FORK.Process(target=_capture_child, args=(path, mode, go, report)) for mode in ("slow", "refuse", "wait")}
    try:
        for p in procs.values():
            p.start()
        deadline = time.time() + 60
        while (_lock.holder(path / "writer.lock") or {}).get("pid") != procs["slow"].pid:
            assert time.time() < deadline and procs["slow"].is_alive()
            time.sleep(0.005)
        go.set()  # the writer holds the lock and has ten slow batches to go
        for p in procs.values():
            p.join(60)
        out = dict(report.get(timeout=5) for _ in procs)
    finally:
        for p in procs.values():
            if p.is_alive():
                p.kill()
    assert procs["slow"].exitcode == 0 and out["slow"] == "DONE 40", out
    assert procs["refuse"].exitcode == 3 and f"being written by pid {procs['slow'].pid}" in out["refuse"], out
    assert procs["wait"].exitcode == 0 and out["wait"] == "DONE 40", out
    model, x = _model_and_inputs()
    ref = interp.capture(model, x, ["0", "2"], batch_size=4, progress=False)
    store = ActivationStore.open(path).verify()
    assert store.sample_coords()["sample_index"].tolist() == list(range(40))
    for site in ("0", "2"):
        assert torch.equal(store.read(site).data, ref[site].data)


# -------------------------------------------------------------------- fingerprint
def test_resume_with_other_corpus_positions_sites_or_dtype_is_refused(tiny_bridge, tmp_path, monkeypatch):
    x = torch.randint(0, 50, (12, 6), generator=torch.Generator().manual_seed(0))
    path = tmp_path / "s"
    seen = {"n": 0}

    def stop(point):  # the third append fails: the store holds two
        if point == "shards":
            seen["n"] += 1
            if seen["n"] == 3:
                raise KeyboardInterrupt

    monkeypatch.setattr(interp.store.activation_store, "_crash", stop)
    with pytest.raises(KeyboardInterrupt):
        interp.capture(tiny_bridge, x, "blocks.0.hook_resid_post", store=path, batch_size=4, progress=False)
    monkeypatch.setattr(interp.store.activation_store, "_crash", None)
    assert ActivationStore.open(path).inputs_done == 8
    edited = x.clone()
    edited[11, 2] = (edited[11, 2] + 1) % 50  # a row not even reached yet
    for kwargs, what in (({"inputs": edited}, "inputs"), ({"positions": "last"}, "positions"),
                         ({"sites": "blocks.1.hook_resid_post"}, "sites"), ({"dtype": torch.float16}, "dtype")):
        args = {"inputs": x, "sites": "blocks.0.hook_resid_post", **kwargs}
        with pytest.raises(FingerprintError, match=rf"{what}: .*overwrite=True") as err:
            interp.capture(tiny_bridge, args.pop("inputs"), args.pop("sites"), store=path, batch_size=4, progress=False, **args)
        named = [k for k in ("inputs", "model", "parameters", "sites", "positions", "dtype") if f"{k}:" in str(err.value)]
        assert named == [what] and str(err.value).count(f"{what}:") == 1  # the one difference, named once
    assert ActivationStore.open(path).inputs_done == 8  # refused runs wrote nothing
    store = interp.capture(tiny_bridge, x, "blocks.0.hook_resid_post", store=path, batch_size=4, progress=False)
    mem = interp.capture(tiny_bridge, x, "blocks.0.hook_resid_post", positions="tokens", batch_size=4, progress=False)
    assert store.complete and torch.equal(store.read("blocks.0.hook_resid_post").data, mem.data)
    with pytest.raises(FingerprintError, match="sites: .*blocks.1"):  # a complete store is not returned for other sites
        interp.capture(tiny_bridge, x, "blocks.1.hook_resid_post", store=path, progress=False)
    again = interp.capture(tiny_bridge, x, "blocks.1.hook_resid_post", store=path, overwrite=True, progress=False)
    assert again.arrays == ["blocks.1.hook_resid_post"] and again.n_rows == 72


# ----------------------------------------------------------------- checked reads
def test_short_flipped_or_rewritten_shards_raise_named_errors(tmp_path):
    path = tmp_path / "s"
    run_job(path, rank=0, world_size=1)
    shard = path / "shards" / "a" / "00002.npy"
    good = shard.read_bytes()
    shard.write_bytes(good[:-24])  # one row short: refused on open, never read by repeating rows
    with pytest.raises(CorruptFileError, match=r"00002\.npy has \d+ bytes, \d+ were written .*truncated"):
        ActivationStore.open(path)
    rows = np.load(io.BytesIO(good)).shape[0]
    np.save(shard, np.zeros((rows, 3), np.float64))  # another valid file of the same size: found on its first read
    store = ActivationStore.open(path)
    with pytest.raises(CorruptFileError, match=rf"holds \({rows}, 3\) float64, the manifest says \({rows}, 6\) float32"):
        store.rows("a", slice(None))
    flipped = bytearray(good)
    flipped[-5] ^= 0x10
    shard.write_bytes(bytes(flipped))
    store = ActivationStore.open(path)  # same size: found on the first read of that shard
    assert store.rows("b", slice(None)).shape[0] == store.n_rows  # other arrays read fine
    with pytest.raises(CorruptFileError, match="checksum"):
        next(iter(store.minibatches("a", batch_size=10_000)))
    with pytest.raises(CorruptFileError, match="checksum"):
        ActivationStore.open(path).verify()
    shard.write_bytes(good)
    coords = path / "shards" / "_coords" / "00001.parquet"
    data = bytearray(coords.read_bytes())
    data[len(data) // 2] ^= 0x01
    coords.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="00001.parquet"):
        ActivationStore.open(path).sample_coords()
    manifest = path / "manifest.json"
    manifest.write_text(manifest.read_text()[:-10])
    with pytest.raises(CorruptFileError, match="manifest"):
        ActivationStore.open(path)


def test_activations_and_estimator_files_are_checksummed(tmp_path):
    from interp.decompose import NMF

    acts = interp.Activations(torch.randn(20, 5), ("sample", "unit"))
    file = acts.save(tmp_path / "a.safetensors")
    assert interp.Activations.load(file).equals(acts)
    est = NMF(n_components=2, max_iter=5).fit(torch.rand(20, 5))
    efile = est.save(tmp_path / "nmf.safetensors")
    for f, load in ((file, interp.Activations.load), (efile, type(est).load)):
        good = f.read_bytes()
        bad = bytearray(good)
        bad[-3] ^= 0x40  # inside the tensor data: would load as a wrong number
        f.write_bytes(bytes(bad))
        with pytest.raises(CorruptFileError, match="checksum|corrupt"):
            load(f)
        f.write_bytes(good[: len(good) // 2])
        with pytest.raises(CorruptFileError, match="truncated or corrupt"):
            load(f)


# ---------------------------------------------------------------------- kill -9
def _killed_job(path, point, nth, flush):
    kill_at(point, nth)
    run_job(path, rank=0, world_size=1, flush=flush)


@pytest.mark.parametrize("flush", [True, False], ids=["commit-each", "group-commit"])
@pytest.mark.parametrize("kills", [[("shard", 2)], [("shards", 2)], [("synced", 2)], [("manifest", 2)], [("committed", 2)],
                                   [("manifest", 8)], [("synced", 1), ("shard", 2), ("manifest", 0)]])
def test_kill9_inside_an_append_resumes_bit_identically(tmp_path, reference, kills, flush):
    path = tmp_path / "s"
    for point, nth in kills:  # a chain of kills, each on a resumed run
        assert _in_child(_killed_job, path, point, nth, flush) == -signal.SIGKILL
        assert not ActivationStore.open(path).complete
    assert_same_store(run_job(path, rank=0, world_size=1), reference)


def test_a_failed_commit_ends_the_writer_and_the_store_resumes(tmp_path, reference, monkeypatch):
    seen = {"n": 0}

    def disk_full(point):  # the second commit cannot write
        seen["n"] += point == "synced"
        if point == "synced" and seen["n"] == 2:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(interp.store.activation_store, "_crash", disk_full)
    with pytest.raises(OSError, match="No space"):
        run_job(tmp_path / "s", rank=0, world_size=1, flush=True)
    monkeypatch.setattr(interp.store.activation_store, "_crash", None)
    assert ActivationStore.open(tmp_path / "s").inputs_done == 4  # the first append is durable, the writer let go
    assert_same_store(run_job(tmp_path / "s", rank=0, world_size=1), reference)


# ------------------------------------------------------------------------- ranks
def test_ranks_share_one_store_and_everyone_else_is_refused(tmp_path, reference):
    path = tmp_path / "s"
    rank0 = ActivationStore.create(path, fingerprint=FINGERPRINT, rank=0, world_size=2, job_id="job-a")
    with pytest.raises(StoreLockedError, match="job-a.*refused"):
        ActivationStore.create(path, rank=1, world_size=2, job_id="job-b")
    with pytest.raises(StoreLockedError, match="being written by"):
        ActivationStore.create(path)
    rank1 = ActivationStore.create(path, fingerprint=FINGERPRINT, rank=1, world_size=2, job_id="job-a")
    with pytest.raises(StoreLockedError, match="rank 1 of"):
        ActivationStore.create(path, rank=1, world_size=2, job_id="job-a")
    rank0.define({"a": (6,), "b": (2, 3)}, dims={"a": ("sample", "unit"), "b": ("sample", "x", "unit")})
    rank0.close(), rank1.close()
    with pytest.raises(SchemaError, match="begun by 2 rank"):
        run_job(path, rank=0, world_size=3, job_id="j")
    path = tmp_path / "three"
    threads = [threading.Thread(target=run_job, args=(path,), kwargs={"rank": r, "world_size": 3, "job_id": "j"})
               for r in range(3)]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    assert_same_store(ActivationStore.open(path), reference)


def _gloo_rank(rank, path, port, crash):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)  # the store takes rank, size and job id from here
    if crash and rank == crash[0]:
        kill_at(*crash[1:])
    run_job(path, flush=bool(crash))
    dist.destroy_process_group()


def _gloo_job(path, crash=()):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.start_processes(_gloo_rank, args=(path, port, crash), nprocs=2, start_method="fork")


def test_two_gloo_ranks_equal_one_process_and_a_killed_rank_resumes(tmp_path, reference):
    _gloo_job(tmp_path / "two")
    store = ActivationStore.open(tmp_path / "two")
    assert_same_store(store, reference)
    assert [s["name"][:6] for s in store.manifest["shards"]] == ["r00000"] * 4 + ["r00001"] * 4  # rank-major
    with pytest.raises(torch.multiprocessing.ProcessExitedException, match="SIGKILL"):
        _gloo_job(tmp_path / "killed", (1, "shard", 2))  # rank 1 dies inside its third append; rank 0 is stopped
    assert not ActivationStore.open(tmp_path / "killed").complete
    assert read_ledger(tmp_path / "killed", 1)["inputs_done"] == 8  # its two appends survived: resumed from there
    _gloo_job(tmp_path / "killed")
    assert_same_store(ActivationStore.open(tmp_path / "killed"), reference)


@pytest.mark.slow
def test_torchrun_two_ranks_equal_one_process(tmp_path, reference):
    job = Path(__file__).parent / "_store_job.py"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(job), str(tmp_path / "s")], env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_store(ActivationStore.open(tmp_path / "s"), reference)


# ------------------------------------------------------------------ minibatches
def test_shuffled_minibatches_partition_across_ranks_and_repeat_per_seed(tmp_path):
    path = tmp_path / "s"
    run_job(path, rank=0, world_size=1)
    store = ActivationStore.open(path)
    full = store.rows("a", slice(None))
    key = lambda batch: sorted(map(tuple, batch.numpy().round(6).tolist()))  # noqa: E731
    single = [key(b) for b in store.minibatches("a", 7, seed=3)]
    assert sum(map(len, single)) == store.n_rows == len({tuple(r) for r in full.round(6).tolist()})
    assert single == [key(b) for b in store.minibatches("a", 7, seed=3)]  # same seed, same order
    later = [key(b) for b in store.minibatches("a", 7, seed=4)]
    assert single != later and [key(b) for b in store.minibatches("a", 7, seed=3, epochs=2)] == single + later
    parts = [[key(b) for b in store.minibatches("a", 7, seed=3, rank=r, world_size=3)] for r in range(3)]
    assert all(len(p) == len(single) for p in parts)  # every rank steps the same number of times
    for i, batch in enumerate(single):
        got = [row for p in parts for row in p[i]]
        assert sorted(got) == batch  # the ranks' parts are disjoint and make up the one-process batch
        assert [len(p[i]) for p in parts] == [len(rank_range(len(batch), r, 3)) for r in range(3)]
    # a rank's part is its block of the sorted global batch: it equals the rows read by index
    order = np.sort(np.random.default_rng(3).permutation(store.n_rows)[:7])
    first = next(iter(store.minibatches("a", 7, seed=3, rank=1, world_size=3))).numpy()
    assert np.array_equal(first, full[order[rank_range(7, 1, 3).start : rank_range(7, 1, 3).stop]])


def test_rank_range_blocks_cover_inputs_in_order():
    for n, w in ((10, 3), (2, 4), (0, 2), (7, 1)):
        blocks = [list(rank_range(n, r, w)) for r in range(w)]
        assert [i for b in blocks for i in b] == list(range(n))
        assert max(map(len, blocks)) - min(map(len, blocks)) <= 1
    vals, sample, pos = rows_of([0, 1, 2])
    assert vals.shape == (6, 6) and sample.tolist() == [0, 1, 1, 2, 2, 2] and pos.tolist() == [0, 0, 1, 0, 1, 2]
    assert N_INPUTS == 30
