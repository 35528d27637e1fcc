"""Benchmark: linear CKA and RSA on 10k stimuli x 4,096 features, and ridge with per-target alpha on
2k samples x 1k features x 10k targets, ours vs the references, side by side in one run.

Every candidate runs in its own subprocess so that its peak memory (ru_maxrss above the post-import
baseline) is its own. Usage::

    python benchmarks/similarity.py            # everything (several minutes on 2 cores)
    python benchmarks/similarity.py --quick    # smaller sizes, for a smoke test
    python benchmarks/similarity.py --naive-full   # also run the O(n^3) naive HKH CKA at n = 10k
    OMP_NUM_THREADS=1 python benchmarks/similarity.py --floor --memory --scaling
        # ours vs the plain formulas (numpy and torch, float32, one thread), interleaved rounds, at 2k x 1k and
        # 10k x 4096 -> benchmarks/results/similarity_floor.md

Results are printed as a markdown table and written to benchmarks/results/similarity.md.
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _data_patterns(n: int, p: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 64)).astype(np.float32)
    X = latent @ rng.standard_normal((64, p)).astype(np.float32) + rng.standard_normal((n, p), dtype=np.float32)
    Y = latent @ rng.standard_normal((64, p)).astype(np.float32) + 2 * rng.standard_normal((n, p), dtype=np.float32)
    return X, Y


def _data_ridge(n: int, p: int, t: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p), dtype=np.float32)
    W = rng.standard_normal((p, t), dtype=np.float32) * (rng.random(t, dtype=np.float32) < 0.5) / np.sqrt(p)
    Y = X @ W + rng.standard_normal((n, t), dtype=np.float32) * rng.uniform(0.5, 3, t).astype(np.float32)
    return X, Y


ALPHAS = np.logspace(-2, 5, 8)


# ---------------------------------------------------------------------------- candidates (run in a subprocess)
def run_candidate(name: str, sizes: dict) -> dict:
    import torch

    n, p = sizes["n"], sizes["p"]
    out: dict = {"name": name}
    if name.startswith(("cka", "rsa")):
        m = {"cka_naive": sizes["n_naive"], "rsa_rsatoolbox": sizes["n_rsa_ref"]}.get(name, n)
        X, Y = _data_patterns(m, p)
        out["n"] = m
    else:
        X, Y = _data_ridge(sizes["rn"], sizes["rp"], sizes["rt"])
    base = _rss_mb()
    t0 = time.perf_counter()
    if name == "cka_ours_f32":
        from interp.similarity import cka

        out["value"] = cka(torch.from_numpy(X), torch.from_numpy(Y), dtype="float32")
    elif name == "cka_ours_f64":
        from interp.similarity import cka

        out["value"] = cka(torch.from_numpy(X), torch.from_numpy(Y))
    elif name.startswith("cka_naive"):
        Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
        m = Xt.shape[0]
        H = torch.eye(m) - torch.full((m, m), 1.0 / m)
        K, L = Xt @ Xt.T, Yt @ Yt.T
        HKH, HLH = H @ K @ H, H @ L @ H
        out["value"] = float((HKH * HLH).sum() / torch.sqrt((HKH * HKH).sum() * (HLH * HLH).sum()))
    elif name == "cka_rsatoolbox":
        # rsatoolbox has no CKA; its whitened cosine on squared-Euclidean RDMs is exactly linear CKA
        from rsatoolbox.data import Dataset
        from rsatoolbox.rdm import calc_rdm, compare

        ra = calc_rdm(Dataset(X.astype(np.float64)), method="euclidean")
        rb = calc_rdm(Dataset(Y.astype(np.float64)), method="euclidean")
        out["value"] = float(compare(ra, rb, method="cosine_cov")[0, 0])
    elif name == "rsa_ours":
        from interp.similarity import rsa

        out["value"] = rsa(torch.from_numpy(X), torch.from_numpy(Y), method="spearman", dtype="float32")
    elif name == "rsa_rsatoolbox":
        from rsatoolbox.data import Dataset
        from rsatoolbox.rdm import calc_rdm, compare

        ra = calc_rdm(Dataset(X.astype(np.float64)), method="correlation")
        rb = calc_rdm(Dataset(Y.astype(np.float64)), method="correlation")
        out["value"] = float(compare(ra, rb, method="spearman")[0, 0])
    elif name == "ridge_ours":
        from probes import RidgeCV

        m = RidgeCV(alphas=ALPHAS, cv=5, fit_intercept=False, n_targets_batch=2500).fit(
            torch.from_numpy(X), torch.from_numpy(Y))
        out["alphas"] = m.best_alphas_.numpy().tolist()
    elif name.startswith("ridge_himalaya"):
        from himalaya.backend import set_backend
        from himalaya.ridge import RidgeCV as HRidgeCV

        set_backend("torch" if name.endswith("torch") else "numpy", on_error="raise")
        m = HRidgeCV(alphas=ALPHAS, cv=5, solver_params=dict(n_targets_batch=2500, warn=False)).fit(X, Y)
        a = m.best_alphas_
        out["alphas"] = (a.numpy() if hasattr(a, "numpy") else np.asarray(a)).tolist()
    elif name == "ridge_sklearn_gcv":
        from sklearn.linear_model import RidgeCV as SkRidgeCV

        m = SkRidgeCV(alphas=ALPHAS, alpha_per_target=True, fit_intercept=False).fit(X, Y)
        out["alphas"] = np.asarray(m.alpha_).tolist()
    elif name == "ridge_sklearn_grid":
        from sklearn.linear_model import Ridge
        from sklearn.model_selection import GridSearchCV, KFold

        k = sizes["grid_targets"]
        alphas = []
        for j in range(k):
            gs = GridSearchCV(Ridge(fit_intercept=False), {"alpha": ALPHAS[::-1]}, cv=KFold(5),
                              scoring="neg_mean_squared_error").fit(X, Y[:, j])
            alphas.append(gs.best_params_["alpha"])
        out["alphas_first"] = alphas
        out["targets_run"] = k
    else:
        raise SystemExit(f"unknown candidate {name}")
    out["seconds"] = time.perf_counter() - t0
    out["peak_mb"] = _rss_mb() - base
    return out


def spawn(name: str, sizes: dict) -> dict:
    cmd = [sys.executable, __file__, "--one", name, "--sizes", json.dumps(sizes)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        return {"name": name, "error": res.stderr.strip().splitlines()[-1] if res.stderr else f"rc {res.returncode}"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def machine() -> str:
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPU cores ({model or platform.processor()}), {platform.system()}, Python {platform.python_version()}"


# ---------------------------------------------------------------------------- the plain-formula floor (issue 23)
def _plain_cka_numpy(X: np.ndarray, Y: np.ndarray) -> float:
    """Textbook feature-space linear CKA (Kornblith et al. 2019, eq. 5) on centred data, numpy."""
    a, b = X - X.mean(0), Y - Y.mean(0)
    return float(np.linalg.norm(b.T @ a) ** 2 / (np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b)))


def _plain_cka_torch(X, Y) -> float:
    a, b = X - X.mean(0), Y - Y.mean(0)
    import torch

    return float(torch.linalg.norm(b.T @ a) ** 2 / (torch.linalg.norm(a.T @ a) * torch.linalg.norm(b.T @ b)))


def _plain_rsa_torch(X, Y) -> float:
    """Correlation RDMs (full n x n product), their upper triangles, ranks by one argsort each, Pearson of ranks."""
    import torch

    n = X.shape[0]
    iu = torch.triu_indices(n, n, offset=1)

    def ranks(A):
        Z = A - A.mean(1, keepdim=True)
        Z = Z / torch.linalg.vector_norm(Z, dim=1, keepdim=True)
        v = (1 - Z @ Z.T)[iu[0], iu[1]]
        r = torch.empty(v.numel(), dtype=torch.float64)
        r[v.argsort()] = torch.arange(1, v.numel() + 1, dtype=torch.float64)
        return r - (v.numel() + 1) / 2

    rx = ranks(X)
    ry = ranks(Y)
    return float(rx @ ry / (torch.linalg.vector_norm(rx) * torch.linalg.vector_norm(ry)))


def _plain_rsa_numpy(X: np.ndarray, Y: np.ndarray) -> float:
    """Correlation RDMs with a BLAS product, their upper triangles, scipy.stats.spearmanr."""
    import scipy.stats

    iu = np.triu_indices(X.shape[0], k=1)

    def vec(A):
        Z = A - A.mean(1, keepdims=True)
        Z /= np.linalg.norm(Z, axis=1, keepdims=True)
        return (1 - Z @ Z.T)[iu]

    return float(scipy.stats.spearmanr(vec(X), vec(Y)).statistic)


def floor_candidates(kind: str, X: np.ndarray, Y: np.ndarray, numpy_rsa: bool = True) -> dict:
    import torch

    from interp.similarity import cka, rsa

    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    if kind == "cka":
        return {"ours": lambda: cka(Xt, Yt, dtype="float32"), "plain numpy": lambda: _plain_cka_numpy(X, Y),
                "plain torch": lambda: _plain_cka_torch(Xt, Yt)}
    out = {"ours": lambda: rsa(Xt, Yt, method="spearman", dtype="float32"),
           "plain torch": lambda: _plain_rsa_torch(Xt, Yt)}
    if numpy_rsa:
        out["plain numpy + scipy"] = lambda: _plain_rsa_numpy(X, Y)
    return out


def floor_rounds(kind: str, n: int, p: int, rounds: int, numpy_rsa: bool = True, names: list | None = None) -> dict:
    """Interleaved rounds (every candidate once per round, the order rotating), one thread, float32.

    The values compared are those of the first round (no separate warm-up: at 10k x 4096 one call takes
    tens of seconds, far above any first-call cost).
    """
    import gc

    X, Y = _data_patterns(n, p)
    cands = floor_candidates(kind, X, Y, numpy_rsa)
    names = [k for k in cands if names is None or k in names or k == "ours"]
    values: dict = {}
    times: dict = {k: [] for k in names}
    for r in range(rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            gc.collect()
            t = time.perf_counter()
            value = cands[k]()
            times[k].append(time.perf_counter() - t)
            values.setdefault(k, value)
    ratios = {k: [a / b for a, b in zip(times["ours"], times[k])] for k in names}
    return {"kind": kind, "n": n, "p": p, "values": values, "times": times, "ratios": ratios}


def floor_memory(kind: str, name: str, n: int, p: int) -> float:
    """Peak RSS (MB) of one candidate run in a fresh subprocess above its RSS before the run (the data
    already made and one warm-up call done; the peak counter reset through ``/proc/self/clear_refs``)."""
    code = (f"import sys, resource; sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); "
            "import torch; torch.set_num_threads(1); import similarity as S; "
            f"X, Y = S._data_patterns({n}, {p}); c = S.floor_candidates({kind!r}, X, Y)[{name!r}]; "
            "import interp.similarity, scipy.stats, scipy.linalg.blas; "
            "hwm = lambda: int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]); "
            "rss = lambda: int(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1]); "
            "c(); open('/proc/self/clear_refs', 'w').write('5'); b = rss(); c(); print((hwm() - b) / 1024)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    return float(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else float("nan")


def _fit_exponent(xs: list, ys: list) -> float:
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


FLOOR_WORK = ROOT / "benchmarks" / "_work" / "similarity_floor"


def floor_main(args: argparse.Namespace) -> None:
    """Run the requested (kind, size) cells, each saved to its own JSON under benchmarks/_work/similarity_floor,
    then render every saved cell into benchmarks/results/similarity_floor.md (cells may run in separate
    processes: ``--cells cka:2000x1024,rsa:2000x1024`` ...)."""
    import statistics

    import torch

    torch.set_num_threads(1)
    FLOOR_WORK.mkdir(parents=True, exist_ok=True)
    cells = [] if args.render else [c for c in args.cells.split(",") if c] if args.cells else \
        [f"{k}:{n}x{p}" for n, p in ([(500, 256)] if args.quick else [(2000, 1024), (10_000, 4096)]) for k in ("cka", "rsa")]
    for cell in cells:
        kind, size = cell.split(":")
        n, p = (int(v) for v in size.split("x"))
        names = args.candidates.split(",") if args.candidates else None
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=ROOT).stdout.strip()  # the tree at the start of the cell
        res = floor_rounds(kind, n, p, args.rounds, numpy_rsa=not (kind == "rsa" and n > 5000 and args.skip_big_numpy),
                           names=names)
        if args.memory:
            res["peak_mb"] = {k: floor_memory(kind, k, n, p) for k in res["times"]}
        res["load"] = os.getloadavg()[0]
        res["commit"] = commit
        (FLOOR_WORK / f"{kind}_{n}x{p}.json").write_text(json.dumps(res))
        print(json.dumps(res), flush=True)
    if args.scaling:
        scaling = {}
        for kind, grid in (("cka", {"samples": [(2000, 1024), (4000, 1024), (8000, 1024)],
                                    "width": [(4000, 512), (4000, 1024), (4000, 2048)]}),):
            for axis, pts in grid.items():
                secs = []
                for n, p in pts:
                    X, Y = _data_patterns(n, p)
                    f = floor_candidates(kind, X, Y)["ours"]
                    f()
                    ts = []
                    for _ in range(3):
                        t = time.perf_counter()
                        f()
                        ts.append(time.perf_counter() - t)
                    secs.append(statistics.median(ts))
                xs = [n for n, _ in pts] if axis == "samples" else [p for _, p in pts]
                scaling[f"{kind} {axis}"] = {"points": list(zip(xs, secs)), "exponent": _fit_exponent(xs, secs)}
        (FLOOR_WORK / "scaling.json").write_text(json.dumps(scaling))
        print(json.dumps(scaling), flush=True)
    results = [json.loads(f.read_text()) for f in sorted(FLOOR_WORK.glob("*_*x*.json"))]
    results.sort(key=lambda r: (r["n"] * r["p"], r["kind"]))
    scaling_path = FLOOR_WORK / "scaling.json"
    write_floor(args, results, json.loads(scaling_path.read_text()) if scaling_path.exists() else {})


def write_floor(args: argparse.Namespace, results: list, scaling: dict) -> None:
    import statistics

    commits = sorted({r.get("commit", "?") for r in results})
    commit = ", ".join(commits)
    load = (max(r.get("load", 0.0) for r in results) if results else os.getloadavg()[0],)
    cmd = ("python benchmarks/similarity.py --floor --rounds R [--cells kind:NxP,...] [--candidates ...] [--memory] "
           "[--scaling]` (each cell's rounds are in its own section below)")
    lines = ["# Similarity against the plain formulas (issue 23)", "",
             f"Command: `OMP_NUM_THREADS=1 {cmd}  ", f"Commit: `{commit}` (the tree measured)  ",
             f"Machine: {machine()}; one torch/BLAS thread; load average up to {load[0]:.1f} (other jobs "
             "share the cores: read the same-run ratios, not the seconds)", "",
             "Every candidate runs once per round, the order rotating between rounds, in one process, float32 "
             "inputs (same data, `_data_patterns`: 64 shared latent dimensions plus noise). Ratio = ours / candidate "
             "in the same round; median [min-max] over rounds. Below 1 = ours faster.", ""]
    for res in results:
        n, p, kind = res["n"], res["p"], res["kind"]
        title = ("Linear CKA (biased HSIC)" if kind == "cka" else "RSA: correlation RDMs, Spearman") + \
            f", {n:,} x {p:,}, float32, {len(res['times']['ours'])} rounds"
        lines += [f"## {title}", "", "| candidate | value | seconds, median [min-max] | ours / candidate, median [min-max] |"
                  + (" peak MB (own process) |" if "peak_mb" in res else ""),
                  "|---|---|---|---|" + ("---|" if "peak_mb" in res else "")]
        for k, ts in res["times"].items():
            r = res["ratios"][k]
            row = (f"| {k} | {res['values'][k]:.7f} | {statistics.median(ts):.3f} [{min(ts):.3f}-{max(ts):.3f}] | "
                   f"{statistics.median(r):.3f} [{min(r):.3f}-{max(r):.3f}] |")
            if "peak_mb" in res:
                row += f" {res['peak_mb'][k]:.0f} |"
            lines.append(row)
        lines.append("")
    if scaling:
        lines += ["## Scaling (ours, one thread, median of 3)", "", "| measure | points (size, seconds) | exponent |",
                  "|---|---|---|"]
        for key, s in scaling.items():
            pts = ", ".join(f"{x}: {t:.3f}" for x, t in s["points"])
            lines.append(f"| {key} | {pts} | {s['exponent']:.2f} |")
        lines += ["", "CKA in feature space costs n(p^2 + q^2 + pq): expected exponents 1 in samples, 2 in width.", ""]
    lines += ["Peak MB: the growth of the resident set over a process that already ran the candidate once (the "
              "peak counter reset through /proc/self/clear_refs): memory the allocator kept from the warm-up call "
              "is not counted again, so small numbers are lower bounds; the inputs are 4 n p bytes each.", ""]
    lines += ["What ours does: CKA's two symmetric terms `||X^T X||_F^2` with BLAS `?syrk` (half the multiply-adds "
              "of a GEMM; numpy's `a.T @ a` also calls syrk, torch's `@` does not), the cross term as one GEMM "
              "(column blocks above 2**26 entries); RSA's RDMs as upper-triangle row blocks (half the product, "
              "no n x n matrix, no triu index vectors), ranks from one sort, and Spearman from integer ranks when there are no ties "
              "(average ranks, as scipy, when there are).", ""]
    out = ROOT / "benchmarks" / "results" / ("similarity_floor_quick.md" if args.quick else "similarity_floor.md")
    out.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--one")
    parser.add_argument("--sizes")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--naive-full", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "similarity.md"))
    parser.add_argument("--only", default="", help="comma-separated candidates to rerun; the others are read from "
                                                   "the JSON of the previous run (benchmarks/results/similarity.json)")
    parser.add_argument("--floor", action="store_true", help="ours vs the plain formulas, interleaved rounds (issue 23)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--memory", action="store_true", help="with --floor: peak RSS of each candidate in a subprocess")
    parser.add_argument("--scaling", action="store_true", help="with --floor: CKA time against samples and width")
    parser.add_argument("--skip-big-numpy", action="store_true", help="with --floor: no numpy/scipy RSA at n = 10k")
    parser.add_argument("--cells", default="", help="with --floor: comma-separated kind:NxP cells, e.g. cka:10000x4096")
    parser.add_argument("--candidates", default="", help="with --floor: only these candidates (ours always runs)")
    parser.add_argument("--render", action="store_true", help="with --floor: only re-render the saved cells")
    args = parser.parse_args()
    if args.floor:
        floor_main(args)
        return
    if args.one:
        print(json.dumps(run_candidate(args.one, json.loads(args.sizes))))
        return
    sizes = (dict(n=2000, p=512, n_naive=2000, n_rsa_ref=2000, rn=500, rp=200, rt=1000, grid_targets=5) if args.quick else
             dict(n=10_000, p=4096, n_naive=10_000 if args.naive_full else 2500,
                  n_rsa_ref=10_000 if args.naive_full else 2500, rn=2000, rp=1000, rt=10_000,
                  grid_targets=20))
    lines = ["# benchmarks/similarity.py\n", f"Command: `python benchmarks/similarity.py{' --quick' if args.quick else ''}"
             f"{' --naive-full' if args.naive_full else ''}`  ", f"Machine: {machine()} (shared with other jobs)  ",
             "torch threads: default; float32 inputs unless noted.\n"]
    # ---- CKA / RSA
    cache_path = Path(args.out).with_suffix(".json")
    only = {n for n in args.only.split(",") if n}
    cache = json.loads(cache_path.read_text()) if only and cache_path.exists() else {}

    def get(name: str) -> dict:
        if only and name not in only and name in cache:
            return cache[name]
        result = spawn(name, sizes)
        cache[name] = result
        cache_path.write_text(json.dumps(cache, indent=1))
        print({k: v for k, v in result.items() if not k.startswith("alphas")}, flush=True)
        return result

    rows = {}
    for name in ["cka_ours_f32", "cka_ours_f64", "cka_naive", "cka_rsatoolbox", "rsa_ours", "rsa_rsatoolbox"]:
        rows[name] = get(name)
    n_naive = rows["cka_naive"].get("n", sizes["n_naive"])
    scale = (sizes["n"] / n_naive) ** 3
    lines.append(f"## Linear CKA and RSA, {sizes['n']:,} stimuli x {sizes['p']:,} features\n")
    lines.append("| candidate | value | seconds | peak MB | ours faster by |")
    lines.append("|---|---|---|---|---|")
    ours_cka = rows["cka_ours_f32"].get("seconds", np.nan)

    def row(name, label, ref_seconds, scale_note=""):
        r = rows[name]
        if "error" in r:
            lines.append(f"| {label} | error: {r['error'][:80]} | | | |")
            return
        sec = r["seconds"] * (scale if scale_note else 1)
        ratio = sec / ref_seconds if ref_seconds else float("nan")
        lines.append(f"| {label} | {r.get('value', float('nan')):.6f} | {sec:.2f}{scale_note} | {r['peak_mb']:.0f} | "
                     f"{ratio:.1f}x |")

    row("cka_ours_f32", "ours, linear CKA, feature space, float32", ours_cka)
    row("cka_ours_f64", "ours, linear CKA, feature space, float64", ours_cka)
    if n_naive == sizes["n"]:
        row("cka_naive", "naive H K H (float32, explicit H)", ours_cka)
    else:
        row("cka_naive", f"naive H K H (float32; run at n={n_naive:,}, time x (n/{n_naive:,})^3, memory not scaled)",
            ours_cka, scale_note=" (extrapolated)")
    row("cka_rsatoolbox", "rsatoolbox cosine_cov on sq-Euclidean RDMs (= linear CKA), float64", ours_cka)
    row("rsa_ours", "ours, RSA (correlation RDMs, Spearman), float32 RDMs, float64 ranks", rows["rsa_ours"].get("seconds"))
    n_ref = rows["rsa_rsatoolbox"].get("n", sizes["n_rsa_ref"])
    if n_ref == sizes["n"]:
        row("rsa_rsatoolbox", "rsatoolbox calc_rdm correlation + compare spearman, float64", rows["rsa_ours"].get("seconds"))
    else:
        scale = (sizes["n"] / n_ref) ** 2
        row("rsa_rsatoolbox", f"rsatoolbox calc_rdm correlation + compare spearman, float64 (run at n={n_ref:,}, time x "
            f"(n/{n_ref:,})^2: its non-BLAS einsum is O(n^2 p); memory not scaled)", rows["rsa_ours"].get("seconds"),
            scale_note=" (extrapolated)")
    lines.append("\n'ours faster by' = candidate seconds / ours seconds (same measure).\n")
    # ---- ridge
    rrows = {}
    for name in ["ridge_ours", "ridge_himalaya_numpy", "ridge_himalaya_torch", "ridge_sklearn_gcv", "ridge_sklearn_grid"]:
        rrows[name] = get(name)
    ours = rrows["ridge_ours"]
    lines.append(f"## Ridge, per-target alpha: {sizes['rn']:,} samples x {sizes['rp']:,} features x {sizes['rt']:,} "
                 f"targets, {len(ALPHAS)} alphas, 5-fold\n")
    lines.append("| candidate | seconds | peak MB | ours faster by | chosen alphas equal to ours |")
    lines.append("|---|---|---|---|---|")
    ours_alpha = np.asarray(ours.get("alphas", []))
    for name, label in [("ridge_ours", "ours (probes.RidgeCV, primal SVD, float32)"),
                        ("ridge_himalaya_numpy", "himalaya RidgeCV, numpy backend"),
                        ("ridge_himalaya_torch", "himalaya RidgeCV, torch backend"),
                        ("ridge_sklearn_gcv", "scikit-learn RidgeCV(alpha_per_target) (GCV/LOO: its fastest path, "
                                              "different CV scheme)"),
                        ("ridge_sklearn_grid", f"scikit-learn GridSearchCV(Ridge) per target, same folds (run on "
                                               f"{sizes['grid_targets']} targets, time x {sizes['rt'] // sizes['grid_targets']})")]:
        r = rrows[name]
        if "error" in r:
            lines.append(f"| {label} | error: {r['error'][:80]} | | | |")
            continue
        sec = r["seconds"] * (sizes["rt"] / r["targets_run"] if "targets_run" in r else 1)
        if "alphas" in r and len(ours_alpha):
            agree = f"{np.mean(np.isclose(np.asarray(r['alphas']), ours_alpha, rtol=1e-4)) * 100:.2f}%"
        elif "alphas_first" in r and len(ours_alpha):
            k = len(r["alphas_first"])
            agree = f"{np.mean(np.isclose(r['alphas_first'], ours_alpha[:k], rtol=1e-4)) * 100:.0f}% (of {k})"
        else:
            agree = ""
        lines.append(f"| {label} | {sec:.2f} | {r['peak_mb']:.0f} | {sec / ours['seconds']:.1f}x | {agree} |")
    lines.append("\nGoals (issue 5): ridge at least 1x himalaya and at least 10x scikit-learn.\n")
    text = "\n".join(lines)
    print(text)
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
