"""Ranks of a torchrun job (two gloo ranks, one thread each, forked): the attribution methods (in one prompt
batch, in several, and shared out over ranks) and the label pass give the same result as one process."""

from __future__ import annotations

import os
import pickle
import socket
import sys

import pytest
import torch

import patching
from interp.errors import ConfigError
from patching import metrics


def _model():
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(d_model=32, n_layers=2, n_heads=4, d_head=8, n_ctx=32, d_vocab=64, attn_only=False,
                                  d_mlp=64, act_fn="gelu", normalization_type="LN", seed=0)
    model = TransformerBridge.boot_native(cfg)
    model.eval()
    return model


def _data():
    g = torch.Generator().manual_seed(1)
    clean, corrupted = torch.randint(1, 64, (5, 7), generator=g), torch.randint(1, 64, (5, 7), generator=g)
    corrupted[:, :2] = clean[:, :2]
    metric = metrics.logit_diff(torch.tensor([5, 6, 7, 8, 9]), torch.tensor([10, 11, 12, 13, 14]))
    return clean, corrupted, metric


SITES = ["resid_pre", "heads"]


def _edges(clean, corrupted, metric):
    """EAP-IG edge scores (prompt batches of 2) on an attention-only, norm-free bridge (the projected layout)."""
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(d_model=32, n_layers=2, n_heads=4, d_head=8, n_ctx=32, d_vocab=64, attn_only=True,
                                  normalization_type=None, seed=0)
    model = TransformerBridge.boot_native(cfg).eval()
    res = patching.edge_attribution(model, clean, corrupted, metric, method="eap-ig", steps=2, batch_size=2)
    return res.scores, res.clean_value


def _run_all(model, clean, corrupted, metric, **kwargs):
    out = {}
    for name, method in patching.METHODS.items():
        extra = {"steps": 4} if name == "ig" else {}
        res = method(model, clean, corrupted, metric, sites=SITES, **kwargs, **extra)
        out[name] = {s: res[s].effect.clone() for s in res.sites} | {"_values": (res.clean_value, res.corrupted_value)}
    return out


def _assert_same(a, b):
    for name in a:
        assert a[name]["_values"] == pytest.approx(b[name]["_values"], abs=1e-5), name
        for site in SITES:
            torch.testing.assert_close(a[name][site], b[name][site], atol=1e-5, rtol=1e-5, msg=f"{name} {site}")


def test_prompt_batches_equal_one_batch(one_thread):
    model = _model()
    clean, corrupted, metric = _data()
    _assert_same(_run_all(model, clean, corrupted, metric), _run_all(model, clean, corrupted, metric, batch_size=2))
    with pytest.raises(ConfigError, match="batch_size=None"):  # a plain callable cannot be split
        patching.attribution_patching(model, clean, corrupted, lambda out: out[:, -1, 3].mean(), batch_size=2)


def _label(model):
    """The label table of 12 units, and how many units this process explained."""
    from interp.label import pipeline

    calls = []
    original = pipeline.explain_safely
    pipeline.explain_safely = lambda *args: calls.append(1) or original(*args)
    try:
        tokens = torch.randint(0, 64, (12, 16), generator=torch.Generator().manual_seed(0))
        res = pipeline.label_neurons(model, "blocks.1.mlp.hook_post", tokens, k=4, window=(2, 1), n_random=50,
                                     units=range(12))
    finally:
        pipeline.explain_safely = original
    return res.table, len(calls)


def _capture(model, path):
    import interp

    tokens = torch.randint(0, 64, (11, 9), generator=torch.Generator().manual_seed(3))
    return interp.capture(model, tokens, ["blocks.0.hook_resid_post", "blocks.1.mlp.hook_post"], store=path,
                          positions="tokens", batch_size=3, progress=False)


def _worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # as torchrun sets them (the store's job id)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        model = _model()
        clean, corrupted, metric = _data()
        results = {"one": _run_all(model, clean, corrupted, metric),
                   "batches": _run_all(model, clean, corrupted, metric, batch_size=2),
                   "labels": _label(model), "edges": _edges(clean, corrupted, metric)}
        _capture(model, out + ".store")  # both ranks write one store
        with open(f"{out}.{rank}", "wb") as fh:
            pickle.dump(results, fh)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(sys.platform != "linux", reason="gloo over TCP on linux")
def test_two_ranks_equal_one_process(tmp_path, one_thread):
    import torch.multiprocessing as mp

    model = _model()
    clean, corrupted, metric = _data()
    single = _run_all(model, clean, corrupted, metric)
    out = str(tmp_path / "rank")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.start_processes(_worker, args=(2, _free_port(), out), nprocs=2, join=True, start_method="fork")
    for rank in range(2):
        with open(f"{out}.{rank}", "rb") as fh:
            got = pickle.load(fh)
        _assert_same(single, got["one"])      # one prompt batch: patches (and IG sites) shared out
        _assert_same(single, got["batches"])  # three prompt batches shared out over two ranks
        import pandas as pd

        table, explained = _label(model)
        pd.testing.assert_frame_equal(got["labels"][0], table)  # every rank returns the one-process table ...
        assert explained == 12 and got["labels"][1] == 6  # ... though each rank explained half of the units
        edges, value = _edges(clean, corrupted, metric)  # edge attribution: prompt batches shared out
        torch.testing.assert_close(got["edges"][0], edges, atol=1e-6, rtol=1e-5)
        assert got["edges"][1] == pytest.approx(value, abs=1e-6)
    from interp.store import ActivationStore

    two, one = ActivationStore.open(out + ".store"), _capture(model, str(tmp_path / "one"))
    assert two.n_rows == one.n_rows == 11 * 9 and two.complete
    for site in one.arrays:  # same rows, same order (sample_index, pos), same values as one process
        torch.testing.assert_close(two.read(site).data, one.read(site).data, atol=1e-5, rtol=0)
    cols = ["sample_index", "pos"]
    assert two.sample_coords()[cols].reset_index(drop=True).equals(one.sample_coords()[cols].reset_index(drop=True))


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="torchrun with gloo on linux")
def test_torchrun_capture_equals_one_process_and_a_killed_rank_resumes(tmp_path):
    """``torchrun --nproc-per-node 2 -m interp capture``: one store, the rows of a one-process capture; a rank
    SIGKILLed inside its second append leaves the store incomplete, and the same command resumes it."""
    import subprocess

    import interp
    from interp.store import ActivationStore

    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(" ".join(str(5 * i + j + 1) for j in range(3 + i % 4)) for i in range(11)) + "\n")
    job = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(os.path.join(os.path.dirname(__file__), "_capture_job.py")), str(texts)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    killed = subprocess.run(job + [str(tmp_path / "two"), "1:shard:1"], env=env, capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode != 0 and "SIGKILL" in killed.stderr, killed.stderr[-2000:]
    manifest = tmp_path / "two" / "manifest.json"
    assert not manifest.exists() or not ActivationStore.open(tmp_path / "two").complete
    assert (tmp_path / "two" / "ranks").exists()  # the ranks' durable progress is there to resume from
    done = subprocess.run(job + [str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    model, _ = interp.models.load("induction-2l")
    one = interp.capture(model, texts.read_text().splitlines(), "blocks.*.hook_resid_post", store=tmp_path / "one",
                         batch_size=2, progress=False)
    two = ActivationStore.open(tmp_path / "two")
    assert two.complete and two.n_rows == one.n_rows
    cols = ["sample_index", "pos"]
    assert two.sample_coords()[cols].reset_index(drop=True).equals(one.sample_coords()[cols].reset_index(drop=True))
    for site in one.arrays:
        torch.testing.assert_close(two.read(site).data, one.read(site).data, atol=1e-5, rtol=0)
