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


def head_to_head(model, name, pairs, kind, rounds, tl_rounds, tl_layers=None):
    """TL vs ours with and without the read-position cut on one resid sweep, interleaved: each round runs
    ours (cut), ours (no cut) and, in the first ``tl_rounds`` rounds, TL. Medians [min-max] of the rounds.

    ``tl_layers``: TL patches the cells of these layers only and its time is scaled by ``all cells / its
    cells`` (TL runs one full forward pass per cell, so its time is linear in the cells; an extrapolation,
    reported as such); the values are compared on those cells."""
    import statistics

    import transformer_lens.patching as tlp

    metric = pairs.metric()
    layers = list(range(model.cfg.n_layers))
    cells = pd.DataFrame([(la, p) for la in layers for p in range(pairs.clean.shape[1])], columns=["layer", "pos"])

    tl_cells = cells if tl_layers is None else cells[cells.layer.isin(tl_layers)].reset_index(drop=True)
    scale = len(cells) / len(tl_cells)

    def reference():
        _, cache = model.run_with_cache(pairs.clean)
        return tlp.generic_activation_patch(model, pairs.corrupted, cache, metric, tlp.layer_pos_patch_setter, kind,
                                            index_df=tl_cells)

    def ours(cut):
        return lambda: patching.activation_patching(model, pairs.clean, pairs.corrupted, metric, kind,
                                                    read_positions=cut)

    fns = {"ours": ours(True), "ours_no_cut": ours(False), "tl": reference}
    times = {k: [] for k in fns}
    values = {}
    for r in range(rounds):
        for key in (["tl"] if r < tl_rounds else []) + (["ours", "ours_no_cut"] if r % 2 == 0 else ["ours_no_cut", "ours"]):
            t = time.perf_counter()
            values[key] = fns[key]()
            times[key].append((time.perf_counter() - t) * (scale if key == "tl" else 1))
            print(name, kind, key, round(times[key][-1], 2), flush=True)
    ref = values["tl"]
    chosen = torch.as_tensor(cells.layer.isin(tl_cells.layer).to_numpy().copy())
    diff = float((values["ours"].values.reshape(-1)[chosen] - ref.double()).abs().max())
    med = {k: statistics.median(v) for k, v in times.items()}
    span = {k: f"{statistics.median(v):.2f} [{min(v):.2f}-{max(v):.2f}] (n={len(v)})" for k, v in times.items()}
    return dict(model=name, site=kind, cells=len(cells), tl_cells=len(tl_cells), batch=len(pairs),
                seq_len=pairs.clean.shape[1],
                tl_s=span["tl"], ours_s=span["ours"], ours_no_cut_s=span["ours_no_cut"],
                speedup=round(med["tl"] / med["ours"], 1), speedup_no_cut=round(med["tl"] / med["ours_no_cut"], 1),
                cut_gain=round(med["ours_no_cut"] / med["ours"], 2), max_abs_diff=f"{diff:.1e}")


def scaling(model, name, lengths, batch, rounds):
    """Sweep time vs sequence length T (random tokens, the second half corrupted at its first token, a
    logit difference at the last position): ours with and without the read-position cut, interleaved rounds;
    the exponent is the slope of log(median time) on log(T)."""
    import math
    import statistics

    from patching import metrics

    gen = torch.Generator().manual_seed(0)
    rows = []
    for t in lengths:
        clean = torch.randint(100, model.cfg.d_vocab, (batch, t), generator=gen)
        corrupted = clean.clone()
        corrupted[:, t // 2] = (clean[:, t // 2] + 1) % model.cfg.d_vocab
        metric = metrics.logit_diff(torch.arange(batch) + 5, torch.arange(batch) + 50)
        times = {True: [], False: []}
        for r in range(rounds + 1):  # the first round warms up and is dropped
            for cut in ((True, False) if r % 2 == 0 else (False, True)):
                t0 = time.perf_counter()
                res = patching.activation_patching(model, clean, corrupted, metric, "resid_pre", read_positions=cut)
                if r:
                    times[cut].append(time.perf_counter() - t0)
        rows.append(dict(model=name, seq_len=t, batch=batch, patched=res.extra["resid_pre"]["cells"]
                         - res.extra["resid_pre"]["skipped"], shared_prefix=res.extra["resid_pre"]["shared_prefix"],
                         ours_s=f"{statistics.median(times[True]):.3f} [{min(times[True]):.3f}-{max(times[True]):.3f}]",
                         no_cut_s=f"{statistics.median(times[False]):.3f} [{min(times[False]):.3f}-{max(times[False]):.3f}]",
                         cut_gain=round(statistics.median(times[False]) / statistics.median(times[True]), 2),
                         _ours=statistics.median(times[True]), _no_cut=statistics.median(times[False])))
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    slope = {"_ours": float("nan"), "_no_cut": float("nan")}
    for col in (("_ours", "_no_cut") if len(lengths) > 1 else ()):
        x = [math.log(v) for v in table.seq_len]
        y = [math.log(v) for v in table[col]]
        mx, my = sum(x) / len(x), sum(y) / len(y)
        slope[col] = sum((a - mx) * (b - my) for a, b in zip(x, y)) / sum((a - mx) ** 2 for a in x)
    return table.drop(columns=["_ours", "_no_cut"]), slope


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
    parser.add_argument("--head-to-head", action="store_true",
                        help="only smollm2's 30-layer resid_pre sweep: TL vs ours with/without the read cut, interleaved")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of ours (--head-to-head, --scaling)")
    parser.add_argument("--tl-rounds", type=int, default=1, help="rounds that also run TL (--head-to-head)")
    parser.add_argument("--tl-layers", default=None, help="comma list: TL patches these layers only, its time "
                        "scaled to all cells (--head-to-head; an extrapolation, for loaded machines)")
    parser.add_argument("--scaling", default=None, help="comma list of sequence lengths: sweep time vs T on a 4-layer "
                        "width-256 Llama (vocabulary 49152)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.head_to_head or args.scaling:
        extra_main(args)
        return

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


def extra_main(args) -> None:
    """``--head-to-head`` / ``--scaling``: print a markdown section (with its Command line) to add to a results file."""
    command = "python " + " ".join(sys.argv)
    out = [f"Command: `{command}`", "", f"Machine: {machine()}", ""]
    if args.head_to_head:
        model, _ = interp.models.load("smollm2-135m")
        pairs = datasets.ioi_pairs(model, args.smollm2_pairs, templates=datasets.IOI_TEMPLATES[:1])[0]
        row = head_to_head(model, "smollm2-135m", pairs, "resid_pre", args.rounds, args.tl_rounds,
                           None if args.tl_layers is None else [int(x) for x in args.tl_layers.split(",")])
        out.append(markdown(pd.DataFrame([row])))
    if args.scaling:
        sys.path.insert(0, str(_HERE))
        from capture import small_model  # noqa: E402 - the same 4-layer width-256 Llama as the capture benchmark

        model = small_model("cpu")
        table, slope = scaling(model, "llama-4l-w256", [int(x) for x in args.scaling.split(",")], 2, args.rounds)
        out += [markdown(table), "", f"Exponent of T (slope of log time on log T): with the cut {slope['_ours']:.2f}, "
                f"without it {slope['_no_cut']:.2f}"]
    print("\n".join(out))


if __name__ == "__main__":
    main()
