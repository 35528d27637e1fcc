"""Benchmark: batched activation patching (patching.activation_patching) vs transformer_lens.patching.

Runs both on the same cells in the same process, checks that the values agree (max abs difference)
and reports wall time, the speed-up and the peak resident memory added during each call.

    python benchmarks/patching.py                       # induction-2l full sweeps + smollm2 selected layers
    python benchmarks/patching.py --smollm2-layers all  # full 30-layer smollm2 sweep (slow on CPU)
    python benchmarks/patching.py --out benchmarks/results/patching.md
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

# this file is named like the package it benchmarks: keep its folder off the import path
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import pandas as pd  # noqa: E402
import psutil  # noqa: E402
import torch  # noqa: E402

import interp  # noqa: E402
import patching  # noqa: E402
from patching import datasets  # noqa: E402


class PeakRSS:
    """Peak resident memory (MiB) above the level at entry, sampled every 5 ms."""

    def __enter__(self):
        self.proc = psutil.Process(os.getpid())
        self.start = self.peak = self.proc.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.mib = (self.peak - self.start) / 2**20


def timed(fn, repeats=1):
    """Output, best wall time of ``repeats`` runs (one run when it takes over 5 s), and the peak memory
    added by the first."""
    with PeakRSS() as mem:
        t = time.perf_counter()
        out = fn()
        best = time.perf_counter() - t
    for _ in range(repeats - 1 if best < 5 else 0):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return out, best, mem.mib


def compare(model, name, pairs, kinds, layers=None, repeats=1):
    import transformer_lens.patching as tlp

    metric = pairs.metric()
    n_layers = model.cfg.n_layers
    layers = list(range(n_layers)) if layers is None else layers
    rows = []
    for kind in kinds:
        by = None
        if kind == "z":
            cells = pd.DataFrame([(la, h) for la in layers for h in range(model.cfg.n_heads)], columns=["layer", "head_index"])
            setter = tlp.layer_head_vector_patch_setter
        elif kind == "z_by_pos":
            kind, by = "z", ("pos", "head")
            cells = pd.DataFrame([(la, p, h) for la in layers for p in range(pairs.clean.shape[1])
                                  for h in range(model.cfg.n_heads)], columns=["layer", "pos", "head_index"])
            setter = tlp.layer_pos_head_vector_patch_setter
        else:
            cells = pd.DataFrame([(la, p) for la in layers for p in range(pairs.clean.shape[1])], columns=["layer", "pos"])
            setter = tlp.layer_pos_patch_setter
        def reference():
            _, cache = model.run_with_cache(pairs.clean)  # part of TL's cost: it needs the clean cache
            return tlp.generic_activation_patch(model, pairs.corrupted, cache, metric, setter, kind,  # noqa: B023
                                                index_df=cells)  # noqa: B023

        ref, t_ref, m_ref = timed(reference, repeats)
        ours, t_ours, m_ours = timed(lambda: patching.activation_patching(  # noqa: B023
            model, pairs.clean, pairs.corrupted, metric, kind, layers=layers, by=by), repeats)  # noqa: B023
        diff = float((ours.values.reshape(-1) - ref.double()).abs().max())
        rows.append(dict(model=name, site=kind if by is None else "z by pos", cells=len(cells), batch=len(pairs), seq_len=pairs.clean.shape[1],
                         tl_s=round(t_ref, 2), ours_s=round(t_ours, 2), speedup=round(t_ref / t_ours, 1),
                         max_abs_diff=f"{diff:.1e}", tl_peak_mib=round(m_ref), ours_peak_mib=round(m_ours),
                         ours_forward_calls=ours.extra[kind]["forward_calls"], skipped=ours.extra[kind]["skipped"],
                         blocks_replayed=ours.extra[kind]["blocks_replayed"],
                         shared_prefix=ours.extra[kind]["shared_prefix"]))
        print(rows[-1], flush=True)
    return rows


def markdown(table: pd.DataFrame) -> str:
    """A markdown table without the optional 'tabulate' dependency."""
    head = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def machine() -> str:
    try:
        cpu = [line.split(":", 1)[1].strip() for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout
               .splitlines() if line.startswith("Model name")][0]
    except Exception:  # noqa: BLE001
        cpu = platform.processor()
    load = os.getloadavg()
    return (f"{os.cpu_count()} CPUs ({cpu}), torch {torch.__version__}, {torch.get_num_threads()} threads; "
            f"load average at the end {load[0]:.1f} (machine shared with other jobs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/patching.md")
    parser.add_argument("--induction-pairs", type=int, default=32)
    parser.add_argument("--smollm2-pairs", type=int, default=4)
    parser.add_argument("--smollm2-layers", default="all", help="comma list or 'all'")
    parser.add_argument("--skip-smollm2", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="timings are the best of this many runs")
    args = parser.parse_args()

    rows = []
    model, _ = interp.models.load("induction-2l")
    pairs = datasets.induction_pairs(args.induction_pairs, seed=0, corrupt="key")
    rows += compare(model, "induction-2l", pairs, ["resid_pre", "attn_out", "z", "z_by_pos"],
                    repeats=args.repeats)
    if not args.skip_smollm2:
        model, _ = interp.models.load("smollm2-135m")
        pairs = datasets.ioi_pairs(model, args.smollm2_pairs, templates=datasets.IOI_TEMPLATES[:1])[0]
        layers = None if args.smollm2_layers == "all" else [int(x) for x in args.smollm2_layers.split(",")]
        rows += compare(model, "smollm2-135m", pairs, ["resid_pre", "attn_out", "mlp_out", "z"], layers,
                        repeats=args.repeats)
    table = pd.DataFrame(rows)
    command = "python benchmarks/patching.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out" and v is not False and v is not None)
    text = f"""# Activation patching: ours vs transformer_lens.patching

Command: `{command}`

Machine: {machine()}

Both implementations patch the same cells (TL through `generic_activation_patch` with an explicit
`index_df`, timed including the `run_with_cache` of the clean run it needs; ours through
`patching.activation_patching`, which records both runs itself) in the same process; `max_abs_diff` is the
largest difference of the patched metric over all cells. Peak memory is the resident-set growth
during the call. Ours batches many patches into one forward pass (`ours_forward_calls`), skips
patches whose source equals the activation already there (`skipped`: positions before the first
token where clean and corrupted differ), and on Hugging Face-backed bridges runs only the tokens
after the shared prefix on a KV cache (`shared_prefix` tokens). Patches are grouped by layer and
the blocks below the patched one are not recomputed: their recorded output is replayed
(`blocks_replayed`: block-forwards saved, summed over patches). Times are the best of
{args.repeats} runs for calls under 5 s, else of one run.

induction-2l: induction pairs with the key token corrupted; smollm2-135m: IOI pairs (subject name
swapped), layers {args.smollm2_layers}, every position.

{markdown(table)}

Speed-up (geometric mean over rows): {float(torch.tensor(table.speedup.tolist()).log().mean().exp()):.1f}x
"""
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
