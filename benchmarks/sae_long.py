"""Benchmark: a long SAE training run, our TopKSAE vs SAELens's TopK SAE, on the same stored tokens.

``benchmarks/sae.py`` compares the two over about 100 optimiser steps, far from convergence. This script
runs the comparison that decides whether our training is as good as SAELens's at convergence:

1. capture ``blocks.{L}.mlp.hook_post`` (d_mlp 1536) of ``smollm2-135m`` over the offline corpus of
   ``benchmarks/sae.py`` (package descriptions, then standard-library and package docstrings) into two
   float16 :class:`interp.store.ActivationStore` directories, streamed to disk: a training store and a
   held-out store made of other contexts (the contexts are split at random before capture);
2. train our ``TopKSAE`` straight from the training store (``fit(store)``: shuffled store minibatches in the
   order of ``numpy.random.default_rng(seed).permutation``) and SAELens's ``TopKTrainingSAE`` through its
   ``SAETrainer`` on the very same minibatches in the same order, read from the same float16 shards by a
   NumPy reader in SAELens's own venv (a hash of every minibatch's row indices is compared at the end).
   Same width, k, batch size, Adam learning rate, linear warm-up, linear decay over the last fraction of
   training, dead-latent window and token budget (a fixed number of tokens, not a time budget); every
   other setting is each library's default (listed in the results file);
3. snapshot both SAEs at a few checkpoints and score every snapshot on held-out tokens with one shared
   scorer (FVU, L0, latents that never fire on the held-out tokens); score the final SAEs also with each
   library's own metric code (ours: ``ReconstructionAccumulator``; SAELens: ``ExplainedVarianceCalculator``);
4. write ``benchmarks/results/sae_long.md`` (command, machine, load average, the numbers, the FVU curve).

Usage (from the repository root, project venv, with this checkout's ``interp`` importable, e.g. ``PYTHONPATH=.``;
the SAELens venv is built on first use)::

    OMP_NUM_THREADS=2 python benchmarks/sae_long.py                        # ~1M tokens, width 3072, k 32
    OMP_NUM_THREADS=2 python benchmarks/sae_long.py --train-tokens 2097152 --checkpoints 64,128,256,512,1024,1536
    OMP_NUM_THREADS=2 python benchmarks/sae_long.py --train-tokens 65536 --eval-tokens 8192 --checkpoints 16,32
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sae import ROOT, corpus, ensure_venv  # noqa: E402  (benchmarks/sae.py: stdlib imports only)

WORK = ROOT / "benchmarks" / "_work" / "sae_long"
OUT = ROOT / "benchmarks" / "results" / "sae_long.md"


# ====================================================================== shared by both sides (numpy + torch only)


class NumpyStoreReader:
    """Rows of one array of an interp activation store, read with NumPy alone (the SAELens venv has no interp).

    The same layout :class:`interp.store.ActivationStore` reads: ``manifest.json`` lists shards with their
    first row; ``shards/{array}/{i:05d}.npy`` hold the rows.
    """

    def __init__(self, path: Path, name: str) -> None:
        import numpy as np

        manifest = json.loads((Path(path) / "manifest.json").read_text())
        folder = Path(path) / "shards" / name.replace("/", "_").replace(":", "_")
        self.shards = [np.load(folder / f"{s.get('name', f'{i:05d}')}.npy", mmap_mode="r")
                       for i, s in enumerate(manifest["shards"])]
        self.offsets = np.array([s["start"] for s in manifest["shards"]] + [manifest["n_rows"]])
        self.n_rows, self.dtype = int(manifest["n_rows"]), manifest["dtype"]
        self.n_features = int(manifest["arrays"][name]["shape"][-1])

    def rows(self, index):
        """float32 tensor of the rows at sorted global ``index``."""
        import numpy as np
        import torch

        out = np.empty((index.size, self.n_features), dtype=self.dtype)
        bounds = np.searchsorted(index, self.offsets)
        for s in range(len(self.shards)):
            a, b = int(bounds[s]), int(bounds[s + 1])
            if a < b:
                np.take(self.shards[s], index[a:b] - self.offsets[s], axis=0, out=out[a:b])
        return torch.from_numpy(out).float()


def batch_indices(n_rows: int, batch_size: int, steps: int, seed: int):
    """The sorted row indices of each training minibatch: what ``TopKSAE.fit(store)`` reads in its first epoch."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(n_rows)
    for start in range(0, steps * batch_size, batch_size):
        yield np.sort(order[start:start + batch_size])


def score(encode_decode, reader: NumpyStoreReader, n_rows: int, chunk: int = 2048) -> dict:
    """FVU, L0 and firing statistics on the first ``n_rows`` held-out rows (float64 sums).

    ``encode_decode(x) -> (x_hat, codes)`` in input units. FVU = sum ||x - x_hat||^2 / sum ||x - mean x||^2
    over all rows (``1 - explained variance`` of SAELens); a latent is dead when it fires on none of the rows.
    """
    import numpy as np
    import torch

    n, sum_x, sum_sq, resid, active, fired = 0, 0.0, 0.0, 0.0, 0.0, None
    with torch.no_grad():
        for start in range(0, n_rows, chunk):
            x = reader.rows(np.arange(start, min(start + chunk, n_rows)))
            x_hat, codes = encode_decode(x)
            xd = x.double()
            n += x.shape[0]
            sum_x = sum_x + xd.sum(0)
            sum_sq += float((xd ** 2).sum())
            resid += float(((xd - x_hat.double()) ** 2).sum())
            nz = codes != 0
            active += float(nz.sum())
            count = nz.sum(0).double()
            fired = count if fired is None else fired + count
    total = sum_sq - float((sum_x ** 2).sum()) / n
    freq = fired / n
    return {"fvu": resid / total, "l0": active / n, "dead": int((freq == 0).sum()),
            "dead_fraction": float((freq == 0).double().mean()), "rare_fraction": float((freq < 1e-4).double().mean()),
            "dense_fraction": float((freq > 0.1).double().mean()), "n_rows": n}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def schedule(args: argparse.Namespace) -> dict:
    """The training schedule both sides follow, in steps."""
    steps = args.train_tokens // args.batch_size
    decay = steps - int(steps * (1 - args.decay_fraction)) if args.decay_fraction > 0 else 0  # as TopKSAE._lr_at
    checkpoints = sorted({int(c) for c in args.checkpoints.split(",") if c and 0 < int(c) < steps})
    return {"steps": steps, "decay_steps": decay, "checkpoints": checkpoints}


# ====================================================================== the SAELens side


def saelens_side(args: argparse.Namespace) -> None:
    """Runs in benchmarks/.venv-saelens: train SAELens's TopK SAE on the same minibatches, score its snapshots."""
    import numpy as np
    import torch
    from sae_lens import __version__ as saelens_version
    from sae_lens.evals import ExplainedVarianceCalculator
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer, SAETrainerConfig

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    work, plan = Path(args.work), schedule(args)
    train, held = NumpyStoreReader(work / "train", args.site), NumpyStoreReader(work / "eval", args.site)
    cfg = TopKTrainingSAEConfig(d_in=train.n_features, d_sae=args.width, k=args.k,
                                normalize_activations="expected_average_only_in", device="cpu", dtype="float32")
    sae = TopKTrainingSAE(cfg)
    # SAELens counts a latent dead after more than `window` steps without firing; ours after >= dead_after rows
    window = math.ceil(args.dead_after / args.batch_size) - 1
    trainer_cfg = SAETrainerConfig(
        total_training_samples=plan["steps"] * args.batch_size, train_batch_size_samples=args.batch_size, lr=args.lr,
        lr_end=args.lr, lr_warm_up_steps=args.warmup_steps, lr_decay_steps=plan["decay_steps"], device="cpu",
        dead_feature_window=window, feature_sampling_window=10 ** 9, n_batches_for_norm_estimate=1)
    snapshots, digest, state = {}, hashlib.sha256(), {}

    def provider():
        # the norm estimate takes one batch before training: give it batch 0, then the training batches from 0
        yield train.rows(next(batch_indices(train.n_rows, args.batch_size, 1, args.seed)))
        for i, index in enumerate(batch_indices(train.n_rows, args.batch_size, plan["steps"], args.seed)):
            if i in plan["checkpoints"]:
                snapshots[i] = ({k: v.detach().clone() for k, v in sae.state_dict().items()},
                                float(state["trainer"].activation_scaler.scaling_factor), os.getloadavg()[0])
            digest.update(index.astype(np.int64).tobytes())
            yield train.rows(index)

    trainer = SAETrainer(trainer_cfg, sae, data_provider=provider())
    state["trainer"] = trainer
    load_before, cpu0, started = os.getloadavg()[0], cpu_seconds(), time.perf_counter()
    trained = trainer.fit()
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu0
    trained.eval()
    scaler = trainer.activation_scaler

    def final(x):
        codes = trained.encode(scaler.scale(x))
        return scaler.unscale(trained.decode(codes)), codes

    curve = []
    for step, (weights, factor, load) in sorted(snapshots.items()):
        snap = TopKTrainingSAE(cfg)
        snap.load_state_dict(weights)
        snap.eval()

        def at(x, snap=snap, factor=factor):
            codes = snap.encode(x * factor)
            return snap.decode(codes) / factor, codes

        curve.append({"step": step, "tokens": step * args.batch_size, "load": load,
                      **score(at, held, min(args.curve_tokens, held.n_rows))})
    curve.append({"step": plan["steps"], "tokens": plan["steps"] * args.batch_size, "load": os.getloadavg()[0],
                  **score(final, held, min(args.curve_tokens, held.n_rows))})
    full = score(final, held, held.n_rows)
    # the final SAE's held-out outputs, for our metric code; both SAEs scored with SAELens's metric code
    recon, codes_idx, codes_val, calc_saelens, calc_ours = [], [], [], ExplainedVarianceCalculator(), ExplainedVarianceCalculator()
    ours_recon = np.load(work / "ours_recon.npy", mmap_mode="r")
    with torch.no_grad():
        for start in range(0, held.n_rows, 2048):
            x = held.rows(np.arange(start, min(start + 2048, held.n_rows)))
            x_hat, codes = final(x)
            vals, idx = codes.topk(args.k, dim=1)
            recon.append(x_hat)
            codes_idx.append(idx.int())
            codes_val.append(vals)
            calc_saelens.add_batch(x_hat, x)
            calc_ours.add_batch(torch.from_numpy(np.array(ours_recon[start:start + x.shape[0]])), x)
    np.save(work / "saelens_recon.npy", torch.cat(recon).numpy())
    np.save(work / "saelens_codes_idx.npy", torch.cat(codes_idx).numpy())
    np.save(work / "saelens_codes_val.npy", torch.cat(codes_val).numpy())
    result = {
        "saelens_version": saelens_version, "seconds": seconds, "cpu_seconds": cpu, "tokens": trainer.n_training_samples,
        "steps": trainer.n_training_steps, "load_before": load_before, "load_after": os.getloadavg()[0],
        "dead_by_trainer_window": int(trainer.dead_neurons.sum()), "batches_sha256": digest.hexdigest(),
        "curve": curve, "final": full,
        "fvu_by_saelens_code": {"saelens": 1.0 - calc_saelens.compute(), "ours": 1.0 - calc_ours.compute()},
    }
    (work / "saelens_result.json").write_text(json.dumps(result, indent=2))


# ====================================================================== the main side


def build_stores(args: argparse.Namespace) -> dict:
    """Capture the training and held-out stores (float16, streamed; resumed if interrupted)."""
    import numpy as np
    import torch

    import interp

    wanted = {"site": args.site, "train_tokens": args.train_tokens, "eval_tokens": args.eval_tokens, "ctx": args.ctx,
              "seed": args.seed}
    work = Path(args.work)
    meta_path = work / "stores.json"
    if meta_path.exists() and json.loads(meta_path.read_text()).get("wanted") == wanted:
        return json.loads(meta_path.read_text())
    work.mkdir(parents=True, exist_ok=True)
    n_train, n_eval = args.train_tokens // args.ctx, -(-args.eval_tokens // args.ctx)
    model, tok = interp.models.load("smollm2-135m")
    started = time.perf_counter()
    texts = corpus(min_chars=(n_train + n_eval) * args.ctx * 5)
    ids: list[int] = []
    for text in texts:
        ids += tok(text)["input_ids"]
    rows = len(ids) // args.ctx
    if rows < n_train + n_eval:
        raise SystemExit(f"the offline corpus gave {rows} contexts of {args.ctx} tokens; {n_train + n_eval} needed")
    contexts = torch.tensor(ids[: rows * args.ctx]).reshape(rows, args.ctx)
    pick = np.random.default_rng(args.seed).permutation(rows)
    split = {"eval": np.sort(pick[:n_eval]), "train": np.sort(pick[n_eval:n_eval + n_train])}
    corpus_seconds = time.perf_counter() - started
    seconds = {}
    for name, index in split.items():
        started = time.perf_counter()
        interp.capture(model, contexts[torch.from_numpy(index)], args.site, positions="tokens", batch_size=32,
                       store=work / name, dtype=torch.float16, overwrite=True)
        seconds[name] = time.perf_counter() - started
    meta = {"wanted": wanted, "texts": len(texts), "corpus_tokens": len(ids), "corpus_seconds": corpus_seconds,
            "capture_seconds": seconds, "train_contexts": int(n_train), "eval_contexts": int(n_eval),
            "store_bytes": sum(f.stat().st_size for d in ("train", "eval") for f in (work / d).rglob("*") if f.is_file())}
    meta_path.write_text(json.dumps(meta))
    return meta


class _CheckpointingStore:
    """Wraps the training store: records the row indices of every minibatch and snapshots the SAE at checkpoints."""

    def __new__(cls, path: Path, sae, checkpoints: list[int]):
        from interp.store import ActivationStore

        class Store(ActivationStore):
            def rows(self, name, index):
                import numpy as np

                i = self.calls
                self.calls += 1
                if i in checkpoints:
                    t = time.perf_counter()
                    snap = copy.deepcopy(sae)
                    snap._finish()
                    self.snapshots[i] = (snap, os.getloadavg()[0])
                    self.snapshot_seconds += time.perf_counter() - t
                self.digest.update(np.asarray(index, dtype=np.int64).tobytes())
                return super().rows(name, index)

        store = Store.open(path)
        store.calls, store.snapshots, store.snapshot_seconds, store.digest = 0, {}, 0.0, hashlib.sha256()
        return store


def main_side(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    from interp.decompose import TopKSAE
    from interp.decompose.metrics import ReconstructionAccumulator

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    if not Path(interp_path := __import__("interp").__file__).is_relative_to(ROOT):
        raise SystemExit(f"interp is imported from {interp_path}, not from {ROOT}: run with PYTHONPATH={ROOT}")
    python = ensure_venv()
    meta = build_stores(args)
    plan = schedule(args)
    held = NumpyStoreReader(work / "eval", args.site)
    ours = TopKSAE(args.width, k=args.k, lr=args.lr, batch_size=args.batch_size, n_epochs=1,
                   max_samples=plan["steps"] * args.batch_size, warmup_steps=args.warmup_steps,
                   decay_fraction=args.decay_fraction, dead_after=args.dead_after, seed=args.seed, progress=True)
    store = _CheckpointingStore(work / "train", ours, plan["checkpoints"])
    if store.n_rows < plan["steps"] * args.batch_size:
        raise SystemExit(f"the training store has {store.n_rows} rows; {plan['steps'] * args.batch_size} needed")
    load_before, cpu0, started = os.getloadavg()[0], cpu_seconds(), time.perf_counter()
    ours.fit(store, site=args.site)
    seconds = time.perf_counter() - started - store.snapshot_seconds
    cpu = cpu_seconds() - cpu0
    load_after = os.getloadavg()[0]
    ours.save(work / "ours.safetensors")

    def with_sae(sae):
        def run(x):
            codes = sae.transform(x)
            return sae.inverse_transform(codes), codes
        return run

    curve = [{"step": step, "tokens": step * args.batch_size, "load": load,
              **score(with_sae(snap), held, min(args.curve_tokens, held.n_rows))}
             for step, (snap, load) in sorted(store.snapshots.items())]
    curve.append({"step": ours.n_steps_, "tokens": ours.n_samples_seen_, "load": load_after,
                  **score(with_sae(ours), held, min(args.curve_tokens, held.n_rows))})
    full = score(with_sae(ours), held, held.n_rows)
    recon = np.lib.format.open_memmap(work / "ours_recon.npy", mode="w+", dtype=np.float32,
                                      shape=(held.n_rows, held.n_features))
    for start in range(0, held.n_rows, 2048):
        recon[start:start + 2048] = ours.reconstruct(held.rows(np.arange(start, min(start + 2048, held.n_rows)))).numpy()
    recon.flush()
    del recon
    import interp

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    report = {"args": vars(args), "plan": plan, "stores": meta, "interp": str(Path(interp.__file__).parent),
              "commit": commit.strip(),
              "ours": {"seconds": seconds, "cpu_seconds": cpu, "tokens": ours.n_samples_seen_, "steps": ours.n_steps_,
                       "load_before": load_before, "load_after": load_after,
                       "dead_by_trainer_window": int(ours.dead_latents_.sum()),
                       "batches_sha256": store.digest.hexdigest(), "curve": curve, "final": full,
                       "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}
    (work / "report.json").write_text(json.dumps(report, indent=2))

    cmd = [str(python), str(Path(__file__).resolve()), "--saelens-side", "--work", str(work)]
    for key in ("site", "width", "k", "lr", "batch_size", "train_tokens", "warmup_steps", "decay_fraction",
                "dead_after", "checkpoints", "curve_tokens", "seed", "threads"):
        cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    subprocess.run(cmd, check=True)
    side = json.loads((work / "saelens_result.json").read_text())

    # both final SAEs scored with our metric code
    theirs_recon = np.load(work / "saelens_recon.npy", mmap_mode="r")
    idx, val = np.load(work / "saelens_codes_idx.npy"), np.load(work / "saelens_codes_val.npy")
    ours_recon = np.load(work / "ours_recon.npy", mmap_mode="r")
    acc = {"ours": ReconstructionAccumulator(), "saelens": ReconstructionAccumulator()}
    for start in range(0, held.n_rows, 2048):
        stop = min(start + 2048, held.n_rows)
        x = held.rows(np.arange(start, stop))
        acc["ours"].add(x, torch.from_numpy(np.array(ours_recon[start:stop])), ours.transform(x))
        dense = torch.zeros(stop - start, args.width).scatter_(1, torch.from_numpy(idx[start:stop]).long(),
                                                               torch.from_numpy(val[start:stop]))
        acc["saelens"].add(x, torch.from_numpy(np.array(theirs_recon[start:stop])), dense)
    report["fvu_by_our_code"] = {name: a.result().fvu for name, a in acc.items()}
    report["dead_by_our_code"] = {name: a.result().dead_fraction for name, a in acc.items()}
    report["saelens"] = side
    report["same_batches"] = side["batches_sha256"] == report["ours"]["batches_sha256"]
    (work / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k not in ("args",)}, indent=2, default=str))
    write_markdown(report)


def write_markdown(r: dict) -> None:
    a, plan, st, o, s = r["args"], r["plan"], r["stores"], r["ours"], r["saelens"]
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    try:
        ram = int(next(line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal"))) / 2 ** 20
    except (OSError, StopIteration):
        ram = float("nan")
    of, sf = o["final"], s["final"]
    loads = [p["load"] for p in o["curve"] + s["curve"]] + [o["load_before"], o["load_after"], s["load_before"],
                                                             s["load_after"]]
    flags = (f"--layer {a['layer']} --width {a['width']} --k {a['k']} --batch-size {a['batch_size']} --lr {a['lr']} "
             f"--train-tokens {a['train_tokens']} --eval-tokens {a['eval_tokens']} --warmup-steps {a['warmup_steps']} "
             f"--decay-fraction {a['decay_fraction']} --dead-after {a['dead_after']} --checkpoints {a['checkpoints']} "
             f"--curve-tokens {a['curve_tokens']} --threads {a['threads']}")
    lines = [
        "# SAE training, long run: interp TopKSAE vs SAELens TopK SAE on the same tokens",
        "",
        f"Command: `OMP_NUM_THREADS={a['threads']} python benchmarks/sae_long.py {flags}`",
        f"Machine: {os.cpu_count()} CPU cores ({cpu}), {ram:.0f} GiB RAM, no GPU; torch threads {a['threads']} on each "
        f"side; shared with other jobs: load average {min(loads):.1f}-{max(loads):.1f} during training (sampled at the "
        f"start, end and every checkpoint). SAELens {s['saelens_version']} in its own venv (`benchmarks/.venv-saelens`).",
        f"Data: smollm2-135m `{a['site']}` (d_mlp 1536), float16 activation stores on disk "
        f"({st['store_bytes'] / 1e9:.2f} GB): {st['train_contexts']} training contexts and {st['eval_contexts']} "
        f"held-out contexts of {a['ctx']} tokens, split at random from a {st['corpus_tokens']:,}-token offline corpus "
        f"(package descriptions, then docstrings of the standard library and installed packages; "
        f"`benchmarks/sae.py:corpus`). Capture (streamed, layer {a['layer']} then stop): "
        f"{st['capture_seconds']['train'] + st['capture_seconds']['eval']:.0f} s, not counted in either trainer.",
        "",
        f"Same for both: {o['tokens']:,} training tokens ({plan['steps']} steps of {a['batch_size']}, each token seen "
        f"once), the same minibatches in the same order (SHA-256 of every minibatch's row indices equal on both "
        f"sides: **{'yes' if r['same_batches'] else 'NO'}**), width {a['width']}, k {a['k']}, Adam lr {a['lr']} with "
        f"{a['warmup_steps']} linear warm-up steps and linear decay to 0 over the last {plan['decay_steps']} steps, "
        f"inputs scaled to E||x||^2 = d (estimated on the first batch), a latent counts as dead for AuxK after "
        f"{a['dead_after']:,} tokens without firing. Each library's own defaults otherwise: ours AuxK coefficient "
        "1/32 (Gao et al.), unit-norm decoder rows (projected gradients), b_dec initialised at the data mean, no "
        "gradient clipping; SAELens AuxK coefficient 1.0, decoder rows initialised at norm 0.1 with activations "
        "rescaled by the decoder norm, b_dec initialised at 0, gradient norm clipped at 1.0.",
        "",
        "| | interp TopKSAE | SAELens TopKTrainingSAE | ours / SAELens |",
        "|---|---|---|---|",
        f"| training tokens | {o['tokens']:,} | {s['tokens']:,} | |",
        f"| training wall seconds | {o['seconds']:.0f} | {s['seconds']:.0f} | |",
        f"| training CPU seconds (user + system) | {o['cpu_seconds']:.0f} | {s['cpu_seconds']:.0f} | |",
        f"| tokens/s (wall) | {o['tokens'] / o['seconds']:.0f} | {s['tokens'] / s['seconds']:.0f} | "
        f"**{(o['tokens'] / o['seconds']) / (s['tokens'] / s['seconds']):.2f}** |",
        f"| tokens per CPU-second | {o['tokens'] / o['cpu_seconds']:.0f} | {s['tokens'] / s['cpu_seconds']:.0f} | "
        f"{(o['tokens'] / o['cpu_seconds']) / (s['tokens'] / s['cpu_seconds']):.2f} |",
        f"| held-out FVU ({of['n_rows']:,} tokens) | {of['fvu']:.4f} | {sf['fvu']:.4f} | **{of['fvu'] / sf['fvu']:.3f}** |",
        f"| FVU, our metric code (`ReconstructionAccumulator`) | {r['fvu_by_our_code']['ours']:.4f} | "
        f"{r['fvu_by_our_code']['saelens']:.4f} | |",
        f"| FVU, SAELens metric code (`ExplainedVarianceCalculator`) | {s['fvu_by_saelens_code']['ours']:.4f} | "
        f"{s['fvu_by_saelens_code']['saelens']:.4f} | |",
        f"| held-out L0 | {of['l0']:.2f} | {sf['l0']:.2f} | |",
        f"| dead latents (fire on none of the held-out tokens) | {of['dead']} ({of['dead_fraction']:.2%}) | "
        f"{sf['dead']} ({sf['dead_fraction']:.2%}) | |",
        f"| rare latents (fire on < 1e-4 of held-out tokens, dead included) | {of['rare_fraction']:.2%} | "
        f"{sf['rare_fraction']:.2%} | |",
        f"| dense latents (fire on > 10% of held-out tokens) | {of['dense_fraction']:.2%} | {sf['dense_fraction']:.2%} | |",
        f"| dead by the trainer's own window at the end (AuxK's set) | {o['dead_by_trainer_window']} | "
        f"{s['dead_by_trainer_window']} | |",
        f"| peak RSS of the process (MB; includes the memory-mapped store pages read) | {o['peak_rss_mb']:.0f} | "
        "(subprocess) | |",
        "",
        f"FVU against training tokens, held-out ({min(a['curve_tokens'], of['n_rows']):,} tokens; each snapshot is taken "
        "before the step it names, the same on both sides):",
        "",
        "| step | tokens | ours FVU | SAELens FVU | ours / SAELens | ours dead (on these tokens) | SAELens dead |",
        "|---|---|---|---|---|---|---|",
    ]
    for p, q in zip(o["curve"], s["curve"]):
        lines.append(f"| {p['step']} | {p['tokens']:,} | {p['fvu']:.4f} | {q['fvu']:.4f} | {p['fvu'] / q['fvu']:.3f} | "
                     f"{p['dead_fraction']:.1%} | {q['dead_fraction']:.1%} |")
    lines += ["", "Tokens/s are wall-clock over each trainer's fit (reading its minibatches from the store "
              "included, snapshots excluded); with the machine shared, tokens per CPU-second is the steadier "
              "speed number. FVU = sum ||x - x_hat||^2 / sum ||x - mean x||^2 over the held-out tokens, the "
              "same definition in all three scorers.", ""]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines))
    print(f"wrote {OUT}")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--saelens-side", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--work", default=str(WORK), help=argparse.SUPPRESS)
    p.add_argument("--site", default=None, help=argparse.SUPPRESS)
    p.add_argument("--layer", type=int, default=6)
    p.add_argument("--width", type=int, default=3072)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--train-tokens", type=int, default=1024 * 1024, help="training tokens, each seen once by each side")
    p.add_argument("--eval-tokens", type=int, default=65_536, help="held-out tokens (other contexts)")
    p.add_argument("--curve-tokens", type=int, default=16_384, help="held-out tokens scoring each checkpoint")
    p.add_argument("--ctx", type=int, default=128)
    p.add_argument("--warmup-steps", type=int, default=50)
    p.add_argument("--decay-fraction", type=float, default=0.2, help="linear decay to 0 over this last fraction")
    p.add_argument("--dead-after", type=int, default=131_072, help="tokens without firing before AuxK counts a latent dead")
    p.add_argument("--checkpoints", default="32,64,128,256,512,768", help="steps at which both SAEs are snapshotted")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    args = p.parse_args(argv)
    args.site = args.site or f"blocks.{args.layer}.mlp.hook_post"
    return args


if __name__ == "__main__":
    arguments = parse()
    if os.environ.get("SAE_BENCH_RENDER"):  # re-render the markdown from a saved report.json
        write_markdown(json.loads(Path(os.environ["SAE_BENCH_RENDER"]).read_text()))
    elif arguments.saelens_side:
        saelens_side(arguments)
    else:
        main_side(arguments)
