"""Scaling out benchmarks (issue 15): distributed capture and SAE training against one process, in the same run.

``--part capture`` runs ``benchmarks/scale_capture.py`` (capture into one store: 1 process vs 2 torchrun
ranks; its options are that script's defaults); ``--part sae`` the SAE part below; ``--part all`` (default)
both, one after the other.

SAE part: a TopK SAE trained from an ActivationStore by

* ``1x1``: one process, one torch thread (the baseline for speed-up);
* ``1x2``: one process, two torch threads (what one process gets out of this 2-core machine);
* ``2x1 data parallel``: ``torchrun --standalone --nproc-per-node 2``, one thread per rank, each rank reading
  its slice of every global batch;
* ``2x1 latents sharded``: the same with ``shard_latents=True`` (each rank holds half of the latents).

Every mode trains on the same global batches from the same seed (the distributed weights are compared with
the ``1x2`` ones); tokens/s are global rows per second of the timed fit, after a short warm-up fit that
absorbs one-time costs (lazy imports, allocations). Peak memory is each process's peak RSS; parameter
memory is parameters + Adam state per rank (``sae.distributed_``). The data are synthetic sparse mixtures
(``--n-features`` unit directions in ``--d`` dims, ``--active`` per row), which costs the same to train
on as real activations of that width and keeps the benchmark offline and quick.

Run (from the repository root)::

    python benchmarks/scale.py                      # writes benchmarks/results/scale_{capture,sae}.md
    python benchmarks/scale.py --part sae --n-units 576 --width 4608 --k 32 --batch-size 2048 --steps 30 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "_work" / "scale"
MODES = {  # name: (ranks, threads per rank, shard_latents)
    "1x1": (1, 1, False),
    "1x2": (1, 2, False),
    "2x1 data parallel": (2, 1, False),
    "2x1 latents sharded": (2, 1, True),
}


# ====================================================================== data


def make_store(args: argparse.Namespace) -> Path:
    """Synthetic sparse activations in a store (rebuilt when the shape arguments change)."""
    import torch

    from interp.store import ActivationStore

    rows = (args.steps + args.warmup_steps) * args.batch_size
    path = WORK / f"store-d{args.d}-n{rows}-f{args.n_features}-a{args.active}"
    if (path / "manifest.json").exists():
        return path
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(args.n_features, args.d, generator=gen)
    features /= features.norm(dim=1, keepdim=True)
    store = ActivationStore.create(path, {"resid": (args.d,)}, dims={"resid": ("sample", "unit")}, overwrite=True)
    for start in range(0, rows, 1024):
        n = min(1024, rows - start)
        idx = torch.randint(0, args.n_features, (n, args.active), generator=gen)
        mags = torch.empty(n, args.active).exponential_(generator=gen)
        x = torch.einsum("na,nad->nd", mags, features[idx]) + 0.01 * torch.randn(n, args.d, generator=gen)
        store.append({"resid": x}, inputs_done=start + n)
    store.finish()
    return path


# ====================================================================== one mode (run in its own process)


def sae_worker(args: argparse.Namespace) -> None:
    """Train once for warm-up and once timed; rank 0 writes the numbers (and the decoder) to ``args.out``."""
    import torch

    from interp.decompose import TopKSAE
    from interp.store import ActivationStore

    torch.set_num_threads(args.threads)
    distributed = "RANK" in os.environ
    if distributed:
        import torch.distributed as dist

        dist.init_process_group("gloo")
    store = ActivationStore.open(args.store)

    def make(steps: int) -> TopKSAE:
        return TopKSAE(args.width, k=args.k, lr=args.lr, batch_size=args.batch_size, max_samples=steps * args.batch_size,
                       warmup_steps=10, seed=0, device="cpu", progress=False)

    make(args.warmup_steps).fit(store, shard_latents=args.shard)
    if distributed:
        dist.barrier()
    started = time.perf_counter()
    sae = make(args.steps).fit(store, shard_latents=args.shard)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MB (Linux reports KB)
    peaks = [peak]
    if distributed:
        peaks = [None] * dist.get_world_size()
        dist.all_gather_object(peaks, peak)
    if not distributed or dist.get_rank() == 0:
        torch.save(sae.components_, Path(args.out) / "components.pt")
        result = {"seconds": seconds, "tokens": sae.n_samples_seen_, "tokens_per_s": sae.n_samples_seen_ / seconds,
                  "peak_rss_mb": peaks, "fvu": sae.history_[-1]["fvu"] if sae.history_ else None,
                  **sae.distributed_}
        (Path(args.out) / "result.json").write_text(json.dumps(result))
    if distributed:
        dist.destroy_process_group()


def run_mode(name: str, args: argparse.Namespace, store: Path) -> dict:
    ranks, threads, shard = MODES[name]
    out = WORK / "runs" / name.replace(" ", "_")
    out.mkdir(parents=True, exist_ok=True)
    worker = [str(Path(__file__).resolve()), "--sae-worker", "--store", str(store), "--out", str(out),
              "--threads", str(threads), "--n-units", str(args.d), "--width", str(args.width), "--k", str(args.k),
              "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--warmup-steps",
              str(args.warmup_steps), "--lr", str(args.lr)] + (["--shard"] if shard else [])
    launcher = [sys.executable] if ranks == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                      "--nproc-per-node", str(ranks)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    started = time.perf_counter()
    proc = subprocess.run(launcher + worker, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"mode {name!r} failed:\n{proc.stderr[-4000:]}")
    result = json.loads((out / "result.json").read_text())
    result.update(name=name, ranks=ranks, threads=threads, wall_seconds=time.perf_counter() - started)
    peaks = ", ".join(f"{p:.0f}" for p in result["peak_rss_mb"])
    print(f"{name:22s} {result['tokens_per_s']:8.0f} tokens/s  peak RSS {peaks} MB", flush=True)
    return result


# ====================================================================== report


def sae_scaling(args: argparse.Namespace) -> str:
    """Run every mode and return the markdown report."""
    import torch

    store = make_store(args)
    rounds = [{name: run_mode(name, args, store) for name in MODES} for _ in range(args.rounds)]
    # best of the rounds per mode: the machine is shared, and other jobs only ever slow a mode down
    results = {name: max((r[name] for r in rounds), key=lambda r: r["tokens_per_s"]) for name in MODES}
    reference = torch.load(WORK / "runs" / "1x2" / "components.pt")
    base, one = results["1x1"]["tokens_per_s"], results["1x2"]["tokens_per_s"]

    def rel(name: str) -> str:
        other = torch.load(WORK / "runs" / name.replace(" ", "_") / "components.pt")
        return f"{float((other - reference).norm() / reference.norm()):.1e}"

    lines = [
        "# Scaling out: distributed SAE training vs one process",
        "",
        f"Command: `python benchmarks/scale.py --part sae --n-units {args.d} --width {args.width} --k {args.k} "
        f"--batch-size {args.batch_size} --steps {args.steps} --rounds {args.rounds}`",
        f"Machine: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
        f"{'shared with other jobs' if max(args.load, os.getloadavg()[0]) > (os.cpu_count() or 1) else 'otherwise idle'}; "
        f"torch {torch.__version__}, gloo backend; load average {args.load:.1f} before the run and "
        f"{os.getloadavg()[0]:.1f} after it. Each mode ran {args.rounds} times, modes interleaved; the table "
        "shows each mode's fastest run.",
        f"Task: TopKSAE, {args.width} latents on d={args.d}, k={args.k}, global batch {args.batch_size}, "
        f"{args.steps} timed steps ({args.steps * args.batch_size} tokens) after {args.warmup_steps} warm-up steps, "
        f"trained from an ActivationStore of synthetic sparse activations ({args.n_features} directions, "
        f"{args.active} active per row). Every mode trains on the same global batches.",
        "",
        "| mode | ranks x threads | tokens/s | vs 1x2 (same cores) | speed-up vs 1x1 | efficiency (speed-up / cores) "
        "| peak RSS per rank (MB) | params + Adam per rank (MB) | vs unsharded | decoder rel. diff vs 1x2 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        cores = r["ranks"] * r["threads"]
        speed = r["tokens_per_s"] / base
        lines.append(
            f"| {name} | {r['ranks']} x {r['threads']} | {r['tokens_per_s']:.0f} | {r['tokens_per_s'] / one:.2f} "
            f"| {speed:.2f} | {speed / cores:.2f} | {' / '.join(f'{p:.0f}' for p in r['peak_rss_mb'])} "
            f"| {r['param_bytes_per_rank'] / 2**20:.1f} | {r['param_bytes_per_rank'] / r['param_bytes_unsharded']:.2f} "
            f"| {'-' if name == '1x2' else rel(name)} |")
    dp, sh = results["2x1 data parallel"], results["2x1 latents sharded"]
    lines += [
        "",
        "Every round's tokens/s: " + "; ".join(
            f"{name} " + " / ".join(f"{r[name]['tokens_per_s']:.0f}" for r in rounds) for name in MODES) + ".",
        "",
        f"**Scaling efficiency, 2 ranks x 1 thread against 1 rank x 2 threads: {dp['tokens_per_s'] / one:.2f} "
        f"(data parallel), {sh['tokens_per_s'] / one:.2f} (latents sharded).**",
        "",
        "How to read it: on two cores, two ranks of one thread compete with one process that uses both cores "
        "through its BLAS threads; the distributed path adds one all-reduce of the gradients per step (one "
        "buffer), and for sharded latents two all-gathers of top-k candidates and two all-reduces of the "
        "reconstructions. Caveat: when the machine is shared (load average above its cores, as stated above), "
        "a process with two BLAS threads loses more than two one-thread processes do (every parallel region "
        "waits for its slower thread while other jobs hold the cores), so the ratio against 1x2 then overstates "
        "what distribution gains on an idle machine; the speed-up against 1x1 is the steadier number. Latent "
        "sharding halves each rank's parameters and Adam state (params + Adam column); every rank still sees "
        "the whole global batch. The distributed decoders equal the one-process decoder to float rounding "
        "(last column). Peak RSS includes the Python/torch runtime (about 0.3-0.4 GB per process) and the "
        "memory-mapped store pages each rank touched.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-units", dest="d", type=int, default=576, help="activation width (smollm2-135m d_model)")
    parser.add_argument("--width", type=int, default=4608, help="SAE latents (a multiple of the ranks)")
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=30, help="timed optimiser steps")
    parser.add_argument("--warmup-steps", type=int, default=3, help="steps of the untimed warm-up fit")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--rounds", type=int, default=2, help="runs of every mode (the fastest is reported)")
    parser.add_argument("--n-features", type=int, default=2048)
    parser.add_argument("--active", type=int, default=20)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "scale_sae.md"))
    parser.add_argument("--part", choices=["all", "sae", "capture"], default="all")
    parser.add_argument("--sae-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--shard", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sae_worker:
        sae_worker(args)
        return
    if args.part in ("all", "capture"):
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import scale_capture

        scale_capture.main([])
        if args.part == "capture":
            return
    args.load = os.getloadavg()[0]
    WORK.mkdir(parents=True, exist_ok=True)
    report = sae_scaling(args)
    Path(args.out).write_text(report)
    print(report)


if __name__ == "__main__":
    main()
