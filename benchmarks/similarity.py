"""Benchmark: linear CKA and RSA on 10k stimuli x 4,096 features, and ridge with per-target alpha on
2k samples x 1k features x 10k targets, ours vs the references, side by side in one run.

Every candidate runs in its own subprocess so that its peak memory (ru_maxrss above the post-import
baseline) is its own. Usage::

    python benchmarks/similarity.py            # everything (several minutes on 2 cores)
    python benchmarks/similarity.py --quick    # smaller sizes, for a smoke test
    python benchmarks/similarity.py --naive-full   # also run the O(n^3) naive HKH CKA at n = 10k

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--one")
    parser.add_argument("--sizes")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--naive-full", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "similarity.md"))
    parser.add_argument("--only", default="", help="comma-separated candidates to rerun; the others are read from "
                                                   "the JSON of the previous run (benchmarks/results/similarity.json)")
    args = parser.parse_args()
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
