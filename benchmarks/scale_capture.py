"""Scaling out benchmarks (issue 15): distributed capture into one store against one process, in the same run.

A language model's activations at several sites are captured over a text corpus into an activation store by

* ``1x1``: ``interp capture`` in one process, one torch thread (the baseline for speed-up);
* ``1x2``: one process, two torch threads (what one process gets out of this 2-core machine);
* ``2x1``: ``torchrun --standalone --nproc-per-node 2 -m interp capture``, one thread per rank, each rank
  capturing its contiguous block of the texts into the one store.

Every mode writes the same rows (checked: the stores' values agree to 1e-5 and their ``sample_index``/``pos``
coordinates are equal). Tokens/s is stored rows per second of the whole command (model loading included, the
same in every mode); efficiency is speed-up over ``1x1`` divided by the number of cores used. The corpus is
the package descriptions of the installed ``*.dist-info/METADATA`` files (offline).

Run (from the repository root; alone: two torch jobs at once slow each other down many times)::

    python benchmarks/scale_capture.py                 # writes benchmarks/results/scale_capture.md
    python benchmarks/scale_capture.py --model smollm2-135m --n-texts 256 --sites "blocks.*.mlp.hook_post"
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "_work" / "scale_capture"
MODES = {"1x1": (1, 1), "1x2": (1, 2), "2x1": (2, 1)}  # name: (ranks, threads per rank)


def corpus(n: int, words: int) -> Path:
    """``n`` lines of about ``words`` words from the installed packages' descriptions."""
    import importlib.metadata as md

    text = " ".join(d.metadata.get("Summary") or "" for d in md.distributions())
    text += " " + " ".join((d.read_text("METADATA") or "")[:4000] for d in list(md.distributions())[:200])
    tokens = [w for w in text.split() if w.isascii()]
    lines = [" ".join(tokens[i * words:(i + 1) * words]) for i in range(n)]
    path = WORK / f"corpus-{n}x{words}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def run_mode(name: str, args: argparse.Namespace, texts: Path) -> tuple[float, Path]:
    ranks, threads = MODES[name]
    out = WORK / f"store-{name}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = ["-m", "interp", "capture", args.model, "--sites", *args.sites, "--texts", str(texts), "--out", str(out),
           "--batch-size", str(args.batch_size), "--dtype", "float16", "--quiet"]
    launcher = [sys.executable] if ranks == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                    "--nproc-per-node", str(ranks)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    start = time.perf_counter()
    done = subprocess.run(launcher + cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    return seconds, out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--sites", nargs="+", default=["blocks.*.mlp.hook_post"])
    parser.add_argument("--n-texts", type=int, default=192)
    parser.add_argument("--words", type=int, default=48, help="words per text")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "scale_capture.md"))
    args = parser.parse_args(argv)

    import torch

    from interp.store import ActivationStore

    texts = corpus(args.n_texts, args.words)
    results = {}
    for name in MODES:
        seconds, path = run_mode(name, args, texts)
        results[name] = (seconds, ActivationStore.open(path))
        print(name, f"{seconds:.1f} s", flush=True)
    base_seconds, base = results["1x1"]
    rows = []
    for name, (seconds, store) in results.items():
        ranks, threads = MODES[name]
        same = store.n_rows == base.n_rows and all(
            torch.allclose(store.read(a).data.float(), base.read(a).data.float(), atol=1e-2) for a in base.arrays)
        cols = ["sample_index", "pos"]
        same = same and store.sample_coords()[cols].reset_index(drop=True).equals(
            base.sample_coords()[cols].reset_index(drop=True))
        speedup = base_seconds / seconds
        rows.append(f"| {name} | {seconds:.1f} | {store.n_rows / seconds:.0f} | {speedup:.2f} | "
                    f"{speedup / (ranks * threads):.2f} | {'yes' if same else 'NO'} |")
    command = "python benchmarks/scale_capture.py " + " ".join(argv or sys.argv[1:])
    text = f"""# Scaling out: capture into one store, 1 process vs 2 torchrun ranks

Command: `{command.strip()}`

Machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), torch {torch.__version__}, load
average {os.getloadavg()[0]:.1f} at the end. Model {args.model}, sites {' '.join(args.sites)}, {args.n_texts} texts
of {args.words} words, batch size {args.batch_size}, float16 store; {base.n_rows:,} rows.

| mode | seconds (whole command) | rows/s | speed-up vs 1x1 | efficiency (speed-up / cores) | same rows as 1x1 |
|---|---|---|---|---|---|
{chr(10).join(rows)}

`1x1` is one process with one thread, `1x2` one process with two threads, `2x1` two torchrun ranks with one
thread each (each capturing its block of the texts into the one store; rank 0 commits). The seconds include
loading the model in every process (the same in every mode).
"""
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
