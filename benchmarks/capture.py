"""Capture and store benchmarks (issues: Foundation; 23 "Close to the floor").

Prints, in one run:

1. capture of all 30 ``blocks.*.mlp.hook_post`` sites of ``smollm2-135m`` (and of the 4 sites of a random
   4-layer width-256 Llama) in interleaved rounds against a plain bridge forward, the wrapped Hugging Face
   model's forward and ``run_with_cache`` of the same sites, both to the logits and stopping early (ours
   after the last site, ``run_with_cache`` with ``stop_at_layer=n_layers``); per-round ratios, median
   [min-max] (issue 23's goals: to the logits <= 1.00x ``run_with_cache`` and <= 1.05x a plain forward on
   smollm2, <= 1.10x on the small model);
2. peak RSS while streaming ``--tokens`` tokens of those sites to the store (goal: under 4 GB at 200k);
3. store write and random-minibatch read throughput vs a plain NumPy memmap (goal: at least 0.8x)
   and vs Hugging Face ``datasets``.

Run: ``.venv/bin/python benchmarks/capture.py [--tokens 200000] [--device cuda] [--overhead-only --threads 1]``
"""

from __future__ import annotations

import argparse
import platform
import resource
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import torch

import interp
from interp.engine import resolve_sites
from interp.store import ActivationStore


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


class PeakRSS:
    """Samples this process's RSS every 10 ms in a thread."""

    def __enter__(self):
        self.proc, self.peak, self.stop = psutil.Process(), 0, False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self):
        while not self.stop:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.01)

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join()


def interleaved(fns: dict, rounds: int) -> dict[str, list[float]]:
    """Time every function once per round, rounds interleaved (the order rotates each round):
    ``{name: [seconds of each round]}``. One warm-up call each first."""
    for fn in fns.values():
        fn()
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            t = time.perf_counter()
            fns[name]()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t)
    return times


def ratio(stats: dict, a: str, b: str) -> str:
    """The per-round ratios ``a / b`` (same round, back to back): median [min-max]."""
    r = [x / y for x, y in zip(stats[a], stats[b])]
    return f"{statistics.median(r):.3f}x [{min(r):.3f}-{max(r):.3f}]"


def small_model(device: str):
    """A random 4-layer width-256 Llama (4 heads of 64, MLP 1024, smollm2's tokenizer and vocabulary 49152)
    wrapped in a bridge like smollm2-135m."""
    import transformers

    from interp.models.hf import bridge_model

    _, tok = interp.models.load("smollm2-135m")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=49152, hidden_size=256, intermediate_size=1024, num_hidden_layers=4,
                                   num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                                   tie_word_embeddings=True, attn_implementation="eager")
    hf = transformers.LlamaForCausalLM(cfg).eval()
    model, _ = bridge_model(hf, tok, device=device)
    return model


def bench_capture_overhead(model, tokens: torch.Tensor, repeats: int, sites_glob: str = "blocks.*.mlp.hook_post"
                           ) -> dict[str, tuple[float, float, float]]:
    """Interleaved rounds: a plain bridge forward, the wrapped HF model's forward, capture to the logits
    and stopping after the last site, and ``run_with_cache`` of the same sites both ways."""
    sites = resolve_sites(model, sites_glob)
    wanted = set(sites)
    batch = tokens.shape[0]
    hf = getattr(model, "original_model", None)

    def plain():
        with torch.no_grad():
            model(tokens)

    def hf_plain():
        with torch.no_grad():
            hf(tokens)

    def ours_stop():
        with torch.no_grad():
            interp.capture(model, tokens, sites, batch_size=batch, progress=False, out_device=tokens.device)

    def ours_full():  # same work as the plain pass: the forward runs to the logits, which are kept
        with torch.no_grad():
            interp.capture(model, tokens, sites, batch_size=batch, progress=False, out_device=tokens.device,
                           keep_outputs=True)

    def cache_full():
        with torch.no_grad():
            model.run_with_cache(tokens, names_filter=lambda n: n in wanted)

    def cache_stop():  # stops before the final norm and the unembedding
        with torch.no_grad():
            model.run_with_cache(tokens, names_filter=lambda n: n in wanted, stop_at_layer=model.cfg.n_layers)

    fns = {"plain": plain, "ours_full": ours_full, "run_with_cache": cache_full, "ours_stop": ours_stop,
           "run_with_cache_stop": cache_stop}
    if hf is not None:
        fns["hf_plain"] = hf_plain
    stats = interleaved(fns, repeats)
    stats["sites"] = len(sites)  # type: ignore[assignment]
    return stats


def print_overhead(name: str, stats: dict, shape: tuple[int, int], repeats: int) -> None:
    times = ", ".join(f"{k} {statistics.median(v):.3f}s [{min(v):.3f}-{max(v):.3f}]" for k, v in stats.items()
                      if k != "sites")
    print(f"[capture overhead] {name}: {stats['sites']} sites, batch {shape[0]} x {shape[1]} tokens, "
          f"{torch.get_num_threads()} thread(s), {repeats} interleaved rounds, medians [min-max]: {times}")
    print(f"[capture overhead] {name}: per-round ratios, median [min-max]:")
    print(f"[capture overhead] {name}: ours-to-logits/run_with_cache {ratio(stats, 'ours_full', 'run_with_cache')} "
          f"(goal <= 1.00); ours-to-logits/plain {ratio(stats, 'ours_full', 'plain')} (goal <= 1.05 smollm2, "
          f"<= 1.10 small); ours-stop/run_with_cache-stop {ratio(stats, 'ours_stop', 'run_with_cache_stop')}; "
          f"ours-stop/plain {ratio(stats, 'ours_stop', 'plain')}"
          + (f"; plain bridge/HF forward {ratio(stats, 'plain', 'hf_plain')}; ours-to-logits/HF forward "
             f"{ratio(stats, 'ours_full', 'hf_plain')}" if "hf_plain" in stats else ""))


def bench_streaming(model, tok, n_tokens: int, seq_len: int, batch_size: int, root: Path, dtype: torch.dtype) -> dict[str, float]:
    n_seq = max(1, n_tokens // seq_len)
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(100, model.cfg.d_vocab, (n_seq, seq_len), generator=gen)
    base = psutil.Process().memory_info().rss
    t = time.perf_counter()
    with PeakRSS() as peak, torch.no_grad():
        store = interp.capture(model, tokens.to(next(model.parameters()).device), "blocks.*.mlp.hook_post",
                               store=root / "stream", batch_size=batch_size, dtype=dtype, progress=True)
    elapsed = time.perf_counter() - t
    size = sum(f.stat().st_size for f in (root / "stream").rglob("*") if f.is_file())
    return {"tokens": store.n_rows, "seconds": elapsed, "tokens_per_s": store.n_rows / elapsed,
            "peak_rss_gb": peak.peak / 1e9, "rss_before_gb": base / 1e9, "store_gb": size / 1e9}


def bench_store_io(root: Path, rows: int, width: int, batch: int, n_batches: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    chunk = 8192
    data = rng.standard_normal((chunk, width), dtype=np.float32)

    # write: ours (atomic shard per append) vs one preallocated memmap
    t = time.perf_counter()
    store = ActivationStore.create(root / "io_store", {"x": (width,)}, dims={"x": ("sample", "unit")}, overwrite=True)
    for start in range(0, rows, chunk):
        store.append({"x": data[: min(chunk, rows - start)]}, inputs_done=start + chunk)
    store.finish()  # until the rows are on disk (fsynced), as the memmap's flush() below
    t_ours_w = time.perf_counter() - t
    t = time.perf_counter()
    mm = np.lib.format.open_memmap(root / "plain.npy", mode="w+", dtype=np.float32, shape=(rows, width))
    for start in range(0, rows, chunk):
        mm[start : start + chunk] = data[: min(chunk, rows - start)]
    mm.flush()
    del mm
    t_np_w = time.perf_counter() - t

    # random minibatch reads
    mm = np.load(root / "plain.npy", mmap_mode="r")
    idx = [np.sort(rng.choice(rows, batch, replace=False)) for _ in range(n_batches)]

    def read_np():
        for i in idx:
            np.asarray(mm[i])

    def read_ours():
        for i in idx:
            store.rows("x", i)

    t_np_r = timed(read_np, 3)
    t_ours_r = timed(read_ours, 3)

    out = {"rows": rows, "width": width, "write_ours_mb_s": rows * width * 4 / 1e6 / t_ours_w,
           "write_numpy_mb_s": rows * width * 4 / 1e6 / t_np_w,
           "read_ours_rows_s": batch * n_batches / t_ours_r, "read_numpy_rows_s": batch * n_batches / t_np_r}
    out["write_ratio_vs_numpy"] = out["write_ours_mb_s"] / out["write_numpy_mb_s"]
    out["read_ratio_vs_numpy"] = out["read_ours_rows_s"] / out["read_numpy_rows_s"]

    # datasets (Arrow): write from the same rows, random reads
    try:
        import datasets

        sub = min(rows, 65536)
        t = time.perf_counter()
        ds = datasets.Dataset.from_dict({"x": np.tile(data, (sub // chunk + 1, 1))[:sub]})
        ds.save_to_disk(str(root / "ds"))
        t_ds_w = time.perf_counter() - t
        ds = datasets.load_from_disk(str(root / "ds")).with_format("numpy")
        idx_ds = [np.sort(rng.choice(sub, batch, replace=False)) for _ in range(max(1, n_batches // 4))]
        t_ds_r = timed(lambda: [ds[i]["x"] for i in idx_ds], 2)
        out["write_datasets_mb_s"] = sub * width * 4 / 1e6 / t_ds_w
        out["read_datasets_rows_s"] = batch * len(idx_ds) / t_ds_r
        out["read_ratio_vs_datasets"] = out["read_ours_rows_s"] / out["read_datasets_rows_s"]
    except Exception as exc:  # pragma: no cover - report, do not fail the benchmark
        out["datasets_error"] = repr(exc)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=200_000, help="tokens streamed to the store")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--store-dtype", default="float16", choices=["float16", "float32"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workdir", default=None, help="where the store is written (default: a temp dir)")
    parser.add_argument("--skip-stream", action="store_true")
    parser.add_argument("--skip-small", action="store_true", help="no 4-layer width-256 model")
    parser.add_argument("--overhead-only", action="store_true", help="only the capture-overhead comparisons")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor())
    print(f"machine: {psutil.cpu_count()} cores, {cpu}; torch {torch.__version__}; device {args.device}")
    if args.device == "cuda":
        print(f"gpu: {torch.cuda.get_device_name()}")
    model, tok = interp.models.load("smollm2-135m", device=args.device)
    root = Path(args.workdir or tempfile.mkdtemp(prefix="interp-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        tokens = torch.randint(100, model.cfg.d_vocab, (8, args.seq_len), generator=torch.Generator().manual_seed(1)).to(args.device)
        print_overhead("smollm2-135m", bench_capture_overhead(model, tokens, args.repeats), tuple(tokens.shape), args.repeats)
        if not args.skip_small:
            small = small_model(args.device)
            print_overhead("llama-4l-w256", bench_capture_overhead(small, tokens, args.repeats), tuple(tokens.shape),
                           args.repeats)
        if args.overhead_only:
            return
        if not args.skip_stream:
            st = bench_streaming(model, tok, args.tokens, args.seq_len, args.batch_size, root, getattr(torch, args.store_dtype))
            print(f"[streaming] {st['tokens']} tokens x 30 sites x 1536 ({args.store_dtype}) in {st['seconds']:.1f}s "
                  f"({st['tokens_per_s']:.0f} tok/s); peak RSS {st['peak_rss_gb']:.2f} GB (goal < 4), "
                  f"RSS before {st['rss_before_gb']:.2f} GB, store {st['store_gb']:.2f} GB on disk")
            shutil.rmtree(root / "stream", ignore_errors=True)
        io = bench_store_io(root, rows=131072, width=1536, batch=4096, n_batches=16)
        print(f"[store io] write ours {io['write_ours_mb_s']:.0f} MB/s vs numpy memmap {io['write_numpy_mb_s']:.0f} MB/s "
              f"-> {io['write_ratio_vs_numpy']:.2f}x; random 4096-row minibatches: ours {io['read_ours_rows_s']:.0f} rows/s vs "
              f"numpy memmap {io['read_numpy_rows_s']:.0f} rows/s -> {io['read_ratio_vs_numpy']:.2f}x (goal >= 0.8)")
        if "read_datasets_rows_s" in io:
            print(f"[store io] datasets: write {io['write_datasets_mb_s']:.0f} MB/s, random reads {io['read_datasets_rows_s']:.0f} rows/s "
                  f"-> ours {io['read_ratio_vs_datasets']:.1f}x datasets")
        print(f"max RSS of the process (getrusage): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
