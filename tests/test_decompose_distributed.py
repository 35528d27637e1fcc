"""Distributed SAE training: two gloo ranks on CPU give the weights of one process (issue 15, item 4).

One ``torchrun --standalone --nproc-per-node 2`` job (this file run as a script, one thread per rank)
trains every case below and saves each rank's weights; the tests compare them with single-process fits
in the test process: data parallel for every SAE kind (from memory and from a store), latents sharded
across ranks, and several SAEs from one pass against separate fits. Relative weight difference <= 1e-4.
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
import torch

import interp
from interp.decompose import BatchTopKSAE, JumpReLUSAE, ReLUSAE, TopKSAE, planted_features, train

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parent.parent
# 7 full batches of 128 and one of 1 row per epoch: in the last global batch rank 0 has no rows at all
N_ROWS, TOLERANCE = 7 * 128 + 1, 1e-4
COMMON = dict(lr=3e-3, batch_size=128, n_epochs=2, dead_after=128, seed=0, progress=False)
KINDS = {  # dead_after = one batch: AuxK and resampling are active on most steps
    "topk": (TopKSAE, dict(n_components=64, k=4)),
    "batchtopk": (BatchTopKSAE, dict(n_components=64, k=4)),
    "jumprelu": (JumpReLUSAE, dict(n_components=64, sparsity_coefficient=0.5, bandwidth=1.0, initial_threshold=0.3)),
    # a strong penalty and a large step kill latents fast: resampling runs at steps 8 (a one-row batch) and 12
    "relu": (ReLUSAE, dict(n_components=64, l1_coefficient=10.0, resample_every=4, resample_until=1.0, lr=3e-2)),
}
WIDTHS = [32, 64]


def make(kind: str):
    cls, params = KINDS[kind]
    return cls(**{**COMMON, **params})


def data() -> dict[str, torch.Tensor]:
    a = planted_features(n_samples=N_ROWS, n_units=32, n_features=12, active=3, seed=0).X.data
    b = planted_features(n_samples=N_ROWS, n_units=24, n_features=10, active=2, seed=1).X.data
    return {"a": a, "b": b}


def make_store(path: Path):
    """A store whose rows are (pos, unit) blocks: 4 positions of 32 units per stored row."""
    from interp.store import ActivationStore

    X = data()["a"][: 224 * 4].reshape(224, 4, 32)
    store = ActivationStore.create(path, {"mlp": (4, 32)}, dims={"mlp": ("sample", "pos", "unit")})
    for i in range(0, 224, 64):
        store.append({"mlp": X[i:i + 64]}, inputs_done=i + 64)
    return store


def _state(sae) -> dict:
    tensors = {name: getattr(sae, name).detach().clone() for name in sae._tensor_attrs}
    return {"tensors": tensors, "steps": sae.n_steps_, "samples": sae.n_samples_seen_,
            "distributed": sae.distributed_, "history": sae.history_}


def _worker(out: Path) -> None:
    """Run under torchrun: every case on every rank; each rank saves what it got (or the error).

    No ``init_process_group`` here: the first fit finds torchrun's environment and initialises the group.
    """
    import torch.distributed as dist

    from interp.store import ActivationStore

    torch.set_num_threads(1)
    X = data()
    cases = {f"dp-{kind}": (lambda kind=kind: make(kind).fit(X["a"])) for kind in KINDS}
    cases.update({f"shard-{kind}": (lambda kind=kind: make(kind).fit(X["a"], shard_latents=True)) for kind in KINDS})
    cases["dp-store"] = lambda: make("topk").fit(ActivationStore.open(out / "store"))
    cases["dp-multi"] = lambda: train(X, "topk", n_components=WIDTHS, k=4, **COMMON)
    cases["shard-multi"] = lambda: train(X, "batchtopk", n_components=WIDTHS, k=4, shard_latents=True, **COMMON)
    cases["bad-shard"] = lambda: TopKSAE(n_components=33, k=4, **COMMON).fit(X["a"], shard_latents=True)
    results = {}
    for name, run in cases.items():
        try:
            fitted = run()
            results[name] = ({f"{s}/{w}": _state(sae) for (s, w), sae in fitted.items()} if isinstance(fitted, dict)
                             else _state(fitted))
        except Exception as exc:  # noqa: BLE001 - reported to the test
            results[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    torch.save(results, out / f"rank{dist.get_rank()}.pt")
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """Both ranks' results of one two-rank gloo job."""
    out = tmp_path_factory.mktemp("ddp")
    make_store(out / "store")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", __file__, str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


def _result(job, name: str, rank: int = 0) -> dict:
    got = job[rank][name]
    assert "error" not in got, got.get("traceback", got)
    return got


def assert_same_weights(got: dict, sae, tol: float = TOLERANCE) -> None:
    assert got["steps"] == sae.n_steps_ and got["samples"] == sae.n_samples_seen_
    for name, value in got["tensors"].items():
        ref = getattr(sae, name).detach()
        rel = float((value - ref).norm() / ref.norm().clamp_min(1e-12))
        assert rel <= tol, f"{name}: relative difference {rel:.2e} > {tol:g}"


def assert_ranks_agree(job, name: str) -> None:
    """Replicated weights are bitwise equal on both ranks (every rank took the same step)."""
    a, b = _result(job, name, 0), _result(job, name, 1)
    for key, value in a["tensors"].items():
        assert torch.equal(value, b["tensors"][key]), f"{name}: {key} differs between ranks"


@pytest.mark.parametrize("kind", list(KINDS))
def test_data_parallel_equals_one_process(job, kind):
    reference = make(kind).fit(data()["a"])
    got = _result(job, f"dp-{kind}")
    assert_same_weights(got, reference)
    assert_ranks_agree(job, f"dp-{kind}")
    assert got["distributed"]["world_size"] == 2 and not got["distributed"]["shard_latents"]
    assert [h["samples"] for h in got["history"]] == [h["samples"] for h in reference.history_]
    assert all(h["fvu"] == h["fvu"] for h in reference.history_)  # a one-row batch does not poison the log with NaN
    if kind in ("topk", "batchtopk"):  # the case is not vacuous: latents are dead, so AuxK ran
        assert reference.dead_latents_.any()


def test_relu_resampling_runs_and_matches(job, monkeypatch):
    """The ReLU case resamples dead latents (rows gathered across ranks), so the equality above covers it."""
    counts = []
    resample = ReLUSAE._resample
    monkeypatch.setattr(ReLUSAE, "_resample", lambda self, *a: counts.append(resample(self, *a)) or counts[-1])
    assert_same_weights(_result(job, "dp-relu"), make("relu").fit(data()["a"]))
    assert sum(counts) > 0


@pytest.mark.parametrize("kind", list(KINDS))
def test_sharded_latents_equal_unsharded(job, kind):
    reference = make(kind).fit(data()["a"])
    got = _result(job, f"shard-{kind}")
    assert_same_weights(got, reference)
    assert_ranks_agree(job, f"shard-{kind}")  # gathered whole on every rank at the end
    memory = got["distributed"]
    assert memory["shard_latents"]
    # each rank held half of every per-latent parameter and its Adam state (b_dec is replicated)
    b_dec = 3 * 32 * 4
    assert memory["param_bytes_per_rank"] - b_dec == (memory["param_bytes_unsharded"] - b_dec) // 2


def test_store_data_parallel_equals_one_process(job, tmp_path):
    reference = make("topk").fit(make_store(tmp_path / "store"))
    got = _result(job, "dp-store")
    assert got["samples"] == 2 * 224 * 4
    assert_same_weights(got, reference)
    assert_ranks_agree(job, "dp-store")


@pytest.mark.parametrize("case, kind", [("dp-multi", "topk"), ("shard-multi", "batchtopk")])
def test_several_saes_from_one_pass_equal_separate_fits(job, case, kind):
    got = _result(job, case)
    X = data()
    assert sorted(got) == sorted(f"{s}/{w}" for s in X for w in WIDTHS)
    cls = KINDS[kind][0]
    for site in X:
        for width in WIDTHS:
            separate = cls(n_components=width, k=4, **COMMON).fit(X[site])
            assert_same_weights(got[f"{site}/{width}"], separate)


def test_one_pass_in_one_process_is_bitwise_separate_fits():
    X = data()
    saes = train(X, "jumprelu", n_components=WIDTHS, sparsity_coefficient=0.5, **COMMON)
    for (site, width), sae in saes.items():
        separate = JumpReLUSAE(n_components=width, sparsity_coefficient=0.5, **COMMON).fit(X[site])
        for name in sae._tensor_attrs:
            assert torch.equal(getattr(sae, name), getattr(separate, name)), (site, width, name)
        assert sae.distributed_["world_size"] == 1


@pytest.mark.parametrize("source", ["memory", "store", "iterable"])
def test_rank_slices_partition_every_global_batch(source, tmp_path):
    """The ranks' reads of a global batch are disjoint and concatenate, in rank order, to one process's batch."""
    from interp.decompose._data import BatchSource

    X = data()
    if source == "memory":
        args = (X, ["a", "b"], 100)
    elif source == "store":
        args = (make_store(tmp_path / "store"), ["mlp"], 30)
    else:
        args = ([{"a": X["a"][i:i + 100], "b": X["b"][i:i + 100]} for i in range(0, N_ROWS, 100)], ["a", "b"], 100)

    def make_source():
        return BatchSource(*args, n_epochs=2, seed=3)

    whole = list(make_source().batches())
    for world in (2, 3):
        parts = [list(make_source().batches(rank, world)) for rank in range(world)]
        assert all(len(p) == len(whole) for p in parts)
        for i, (batch, counts) in enumerate(whole):
            for site, rows in batch.items():
                assert counts[site] == rows.shape[0] and all(p[i][1] == counts for p in parts)
                assert torch.equal(torch.cat([p[i][0][site] for p in parts]), rows)


def test_bad_distributed_configurations(job):
    for rank in range(2):
        err = job[rank]["bad-shard"].get("error", "")
        assert err.startswith("ConfigError") and "divisible" in err
    with pytest.raises(interp.ConfigError, match="torchrun"):
        make("topk").fit(data()["a"], distributed=True)
    with pytest.raises(interp.ConfigError, match="torchrun"):
        make("topk").fit(data()["a"], shard_latents=True)
    with pytest.raises(interp.ConfigError, match="must share"):
        from interp.decompose._training import fit_saes

        fit_saes([(make("topk"), None), (TopKSAE(k=4, **{**COMMON, "batch_size": 64}), None)], data()["a"])
    with pytest.raises(interp.ConfigError, match="unknown SAE kind"):
        train(data(), "gated")
    with pytest.raises(interp.ConfigError, match="no parameter"):
        train(data(), "topk", kk=3)


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
