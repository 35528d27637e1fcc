"""Shuffled minibatch reads from an ActivationStore against a NumPy memmap of the same data (issue: scale out).

Prints, in one run, for the same rows, the same global permutation and the same minibatch size:

1. warm reads (the files in the page cache): one full shuffled epoch with
   ``ActivationStore.minibatches(shuffle=True)`` against sorted fancy-indexing of one ``.npy`` memmap, in
   rows/s and as a ratio (goal: at least 0.8x), repeated and alternated; the store's first epoch (which
   also verifies every shard's checksum once) separately;
2. the same epoch split over ``--world-size`` ranks (each rank's part read in turn in this process);
3. cold reads: ``--cold-batches`` minibatches after ``posix_fadvise(DONTNEED)`` evicted both copies from the
   page cache (only this benchmark's own files), i.e. random reads from the disk;
4. peak resident memory while reading: total RSS (which counts the mapped file pages that were touched)
   and anonymous RSS (the memory a reader really holds), for each reader.

Run: ``.venv/bin/python benchmarks/store_reads.py [--rows 500000] [--width 768] [--dtype float16]``
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import torch

from interp.store import ActivationStore


class PeakMemory:
    """Samples this process's RSS and anonymous RSS (``RssAnon``) every 5 ms in a thread."""

    def __enter__(self):
        self.rss = self.anon = 0
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self):
        while not self.stop:
            fields = dict(line.split(":", 1) for line in open("/proc/self/status") if line.startswith(("VmRSS", "RssAnon")))
            self.rss = max(self.rss, int(fields["VmRSS"].split()[0]) * 1024)
            self.anon = max(self.anon, int(fields["RssAnon"].split()[0]) * 1024)
            time.sleep(0.005)

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join()


def evict(paths) -> None:
    """Drop these files' pages from the page cache (nobody else's)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def build(root: Path, rows: int, width: int, dtype: str, shard_rows: int) -> tuple[ActivationStore, Path]:
    rng = np.random.default_rng(0)
    mm_path = root / "plain.npy"
    mm = np.lib.format.open_memmap(mm_path, mode="w+", dtype=dtype, shape=(rows, width))
    with ActivationStore.create(root / "store", {"x": (width,)}, dims={"x": ("sample", "unit")}, dtype=dtype) as store:
        for start in range(0, rows, shard_rows):
            block = rng.standard_normal((min(shard_rows, rows - start), width), dtype=np.float32).astype(dtype)
            store.append({"x": block}, inputs_done=start + len(block))
            mm[start : start + len(block)] = block
        store.finish()
    mm.flush()
    del mm
    return ActivationStore.open(root / "store"), mm_path


def numpy_batches(mm: np.ndarray, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
    """The memmap reader: the same permutation and minibatches as ``ActivationStore.minibatches``."""
    order = np.random.default_rng(seed).permutation(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        if world_size > 1:
            lo, hi = rank * len(idx) // world_size, (rank + 1) * len(idx) // world_size
            idx = idx[lo:hi]
        yield torch.from_numpy(np.asarray(mm[np.sort(idx)]))


def epoch(batches) -> tuple[float, int]:
    t, rows = time.perf_counter(), 0
    for b in batches:
        rows += b.shape[0]
    return time.perf_counter() - t, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    parser.add_argument("--shard-rows", type=int, default=8192, help="rows per append (one shard)")
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--world-size", type=int, default=2)
    parser.add_argument("--cold-batches", type=int, default=8)
    parser.add_argument("--workdir", default=None, help="where the data are written (default: a temp dir)")
    args = parser.parse_args()

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor())
    print(f"machine: {psutil.cpu_count()} cores, {cpu}; {psutil.virtual_memory().total / 1e9:.0f} GB RAM; "
          f"load average {os.getloadavg()[0]:.1f}; torch {torch.__version__}, numpy {np.__version__}")
    root = Path(tempfile.mkdtemp(prefix="interp-store-reads-", dir=args.workdir))
    try:
        t = time.perf_counter()
        store, mm_path = build(root, args.rows, args.width, args.dtype, args.shard_rows)
        gb = args.rows * args.width * np.dtype(args.dtype).itemsize / 1e9
        print(f"data: {args.rows} rows x {args.width} {args.dtype} = {gb:.2f} GB in {len(store.manifest['shards'])} shards "
              f"(and one {gb:.2f} GB .npy), written in {time.perf_counter() - t:.1f} s; minibatches of {args.batch_size}")
        mm = np.load(mm_path, mmap_mode="r")
        n, bs = store.n_rows, args.batch_size

        # 1. warm: first epoch (checksums), then alternated repeats
        first, rows = epoch(store.minibatches("x", bs, seed=0))
        assert rows == n
        ours, theirs, mem = [], [], {}
        for r in range(args.repeats):
            with PeakMemory() as peak:
                ours.append(epoch(store.minibatches("x", bs, seed=r + 1))[0])
            mem["store"] = (max(mem.get("store", (0, 0))[0], peak.rss), max(mem.get("store", (0, 0))[1], peak.anon))
            with PeakMemory() as peak:
                theirs.append(epoch(numpy_batches(mm, n, bs, seed=r + 1))[0])
            mem["numpy"] = (max(mem.get("numpy", (0, 0))[0], peak.rss), max(mem.get("numpy", (0, 0))[1], peak.anon))
        o, m = statistics.median(ours), statistics.median(theirs)
        print(f"[warm] shuffled epoch: store {n / o:,.0f} rows/s, numpy memmap {n / m:,.0f} rows/s -> {m / o:.2f}x "
              f"(goal >= 0.8; medians of {args.repeats}, alternated; best epochs {n / min(ours):,.0f} vs "
              f"{n / min(theirs):,.0f} rows/s -> {min(theirs) / min(ours):.2f}x); the store's first epoch, with every "
              f"checksum verified once: {n / first:,.0f} rows/s ({first - o:+.2f} s)")
        for name, (rss, anon) in mem.items():
            print(f"[memory] {name}: peak RSS {rss / 1e9:.2f} GB (mapped file pages included), peak anonymous RSS "
                  f"{anon / 1e9:.2f} GB")

        # 2. ranks: each rank's part of every global minibatch (the parts' disjointness is tested in tests/)
        w = args.world_size
        if w > 1:
            per_rank = [epoch(store.minibatches("x", bs, seed=7, rank=rank, world_size=w)) for rank in range(w)]
            assert sum(c for _, c in per_rank) == n
            print(f"[ranks] world_size {w}, read in turn: " + ", ".join(
                f"rank {r} {c:,} rows at {c / s:,.0f} rows/s" for r, (s, c) in enumerate(per_rank)))

        # 3. cold: unmap and evict both copies, then read a few minibatches from the disk
        if args.cold_batches:
            files = [store._file("x", i) for i in range(len(store.manifest["shards"]))] + [mm_path]
            store._memmaps.clear()
            del mm
            cold = {}
            for name in ("store", "numpy"):
                evict(files)
                if name == "store":  # a fresh open: the first touch of each shard also verifies its checksum
                    batches = ActivationStore.open(root / "store").minibatches("x", bs, seed=99)
                else:
                    batches = numpy_batches(np.load(mm_path, mmap_mode="r"), n, bs, seed=99)
                t, rows = time.perf_counter(), 0
                for _, b in zip(range(args.cold_batches), batches):
                    rows += b.shape[0]
                cold[name] = rows / (time.perf_counter() - t)
                del batches
            print(f"[cold] first {args.cold_batches} minibatches after evicting the files from the page cache: store "
                  f"{cold['store']:,.0f} rows/s (its first minibatch reads and verifies every shard it touches, sequentially), "
                  f"numpy memmap {cold['numpy']:,.0f} rows/s (random reads) -> {cold['store'] / cold['numpy']:.2f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
